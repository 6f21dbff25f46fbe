"""ConvLSTM against a CNN + LSTM on a memory task seen in pixels: training speed and env steps to solve.

    python scripts/benchmark.py convlstm
    python scripts/benchmark.py convlstm --seeds 5 --cores convlstm mlp --no-write

Each core trains recurrent PPO with one configuration (:data:`PIXEL_TMAZE_PPO`) on the pixel passive T-maze
(:data:`PIXEL_TMAZE`, envs/pixel_tmaze.py) until 100 deterministic evaluation episodes reach 95% success
(``rl_lstm.solving.train_until_solved``, the measure the learning tests share). ``convlstm`` reads the image as maps
(``rl_lstm.cores.ConvLSTMCore``), ``lstm`` reads the flat features of the policy's CNN (``ImageEncoder``) and
``mlp`` is the same CNN with no memory, the control. Env steps per second count training only (rollouts and
updates), not the evaluations.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch
from benchmark_ppo import _positive_int

import envs  # noqa: F401  (registers the rl_lstm/ env ids with gymnasium)
from rl_lstm.solving import EvaluateUntilSolved, Task, train_until_solved

PIXEL_TMAZE = Task("rl_lstm/PixelPassiveTMaze-v0", {"length": 10}, "success", 0.95)
# The passive T-maze preset's recipe (rl_lstm/presets/ppo.yaml, rl_lstm/PassiveTMaze-v0): gamma 0, so only the
# junction's reward counts; seq_len = length + 2 and n_steps a multiple of it, so each chunk is one whole episode
# from the cue to the junction; no advantage or reward normalization; a shared core. The minibatch holds 16 such
# episodes (the preset's 8 made 4x as many small updates, which cost the convolutional core more than its rollouts).
PIXEL_TMAZE_PPO: dict[str, Any] = {
    "num_envs": 32,
    "n_steps": 24,
    "seq_len": 12,
    "batch_size": 192,
    "gamma": 0.0,
    "normalize_rewards": False,
    "normalize_advantage": False,
    "ent_coef": 0.01,
    "shared_core": True,
    "lr_schedule": "constant",
}
# hidden_size is channels per position for convlstm (8 x 3 x 11 state values at length 10), units for the others.
CORE_SETTINGS: dict[str, dict[str, Any]] = {
    "convlstm": {"core": "convlstm", "hidden_size": 8, "core_kwargs": {}},
    "lstm": {"core": "lstm", "hidden_size": 64, "core_kwargs": {}},
    "mlp": {"core": "mlp", "hidden_size": 64, "core_kwargs": {}},
}
CORE_TITLES = {"convlstm": "ConvLSTM (8 channels)", "lstm": "CNN + LSTM (64)", "mlp": "CNN, no memory (64)"}


def solve_pixel_tmaze(core: str, seed: int, max_timesteps: int, eval_every: int) -> EvaluateUntilSolved:
    """One PPO run of ``core`` on :data:`PIXEL_TMAZE` until solved or ``max_timesteps``; its progress."""
    _, progress = train_until_solved("ppo", PIXEL_TMAZE, seed, eval_every, max_timesteps=max_timesteps,
                                     use_preset=False, stop_at_first_solve=True, **PIXEL_TMAZE_PPO,
                                     **CORE_SETTINGS[core])
    return progress


def benchmark_convlstm(args: argparse.Namespace) -> str:
    """Every core on every seed: a row per run and a summary per core."""
    torch.set_num_threads(1)
    rows = ["| core | seed | solved | env steps | training s | env steps/s |", "|---|---:|---|---:|---:|---:|"]
    summary = ["| core | solved | median env steps to solve | slowest solved | median env steps/s |",
               "|---|---:|---:|---:|---:|"]
    for core in args.cores:
        solved_steps, rates = [], []
        for seed in range(args.seeds):
            progress = solve_pixel_tmaze(core, seed, args.max_timesteps, args.eval_every)
            rate = progress.env_steps / progress.training_seconds
            rates.append(rate)
            if progress.solved:
                solved_steps.append(progress.env_steps)
            success = progress.last_evaluation.success_rate
            row = (f"| {CORE_TITLES[core]} | {seed} | {'yes' if progress.solved else f'no ({success:.0%})'} | "
                   f"{progress.env_steps:,} | {progress.training_seconds:.1f} | {rate:,.0f} |")
            print(row, flush=True)
            rows.append(row)
        median_steps = f"{statistics.median(solved_steps):,.0f}" if solved_steps else "-"
        slowest = f"{max(solved_steps):,}" if solved_steps else "-"
        summary.append(f"| {CORE_TITLES[core]} | {len(solved_steps)} of {args.seeds} | {median_steps} | {slowest} | "
                       f"{statistics.median(rates):,.0f} |")
    return (
        f"## ConvLSTM: a memory task in pixels\n\nRecurrent PPO on {PIXEL_TMAZE.label} (a 3 x 11 RGB image; the cue "
        f"shows only in the first), solved at {PIXEL_TMAZE.criterion} over 100 deterministic evaluation episodes "
        f"every {args.eval_every:,} env steps, budget {args.max_timesteps:,} env steps, one thread. Configuration: "
        f"`{PIXEL_TMAZE_PPO}` with {', '.join(f'`{CORE_SETTINGS[core]}`' for core in args.cores)}.\n\n"
        + "\n".join(summary) + "\n\n" + "\n".join(rows)
    )


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``convlstm`` subcommand on scripts/benchmark.py's parser."""
    parser = subparsers.add_parser("convlstm", help="ConvLSTM against CNN + LSTM on the pixel passive T-maze")
    parser.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0 .. N-1 per core")
    parser.add_argument("--cores", nargs="+", choices=list(CORE_SETTINGS), default=["convlstm", "lstm"])
    parser.add_argument("--max-timesteps", type=_positive_int, default=100_000, help="env-step budget per run")
    parser.add_argument("--eval-every", type=_positive_int, default=2_000, help="env steps between evaluations")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.set_defaults(run=benchmark_convlstm)
