"""Recurrent PPO on CPU and on a CUDA GPU: env steps per second at 64 and 1024 envs, and a run to success on each.

    python scripts/benchmark.py device   # every device this machine has: the CPU, and CUDA where torch sees one

One prepared run for a machine with a GPU (issue 17): the throughput table times whole PPO iterations (collect, GAE,
the epochs of updates) of a pinned configuration on `rl_lstm/TMaze-v0` (a native numpy vector env) at each number of
env copies, on each device; then the same 1024-env configuration trains the T-maze of length 10 until 95% of 100
deterministic episodes succeed, on each device, from the same seed. Without CUDA the table says so and holds the
CPU's rows. ``add_parsers`` registers the subcommand on scripts/benchmark.py's parser.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from benchmark_ppo import _positive_int, learn_steps_per_second

from agents.ppo import RecurrentPPO
from rl_lstm.config import preset
from rl_lstm.solving import Task, train_until_solved

TASK = Task("rl_lstm/TMaze-v0", {"length": 10}, "success", 0.95)
# The task's PPO preset with the rollout's shape pinned over it, so the figures do not move when the preset's does.
# Four minibatches per epoch at every number of copies: a copy count changes the batch, not the optimizer steps.
HYPERPARAMS = {"n_steps": 64, "seq_len": 32, "n_epochs": 4, "hidden_size": 64}
MINIBATCHES = 4


def settings(num_envs: int) -> dict[str, Any]:
    """The task's preset and the pinned rollout at ``num_envs`` copies."""
    return {**preset("ppo", TASK.env_id, TASK.env_kwargs), **HYPERPARAMS, "num_envs": num_envs,
            "batch_size": num_envs * HYPERPARAMS["n_steps"] // MINIBATCHES}


def available_devices() -> list[str]:
    """``cpu``, and ``cuda`` where torch sees a CUDA device."""
    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def training_steps_per_second(device: str, num_envs: int, iterations: int) -> float:
    """Env steps per second of ``learn`` on ``device`` at ``num_envs`` copies, after one warm-up iteration."""
    agent = RecurrentPPO(TASK.env_id, seed=0, device=device, env_kwargs=TASK.env_kwargs, **settings(num_envs))
    try:
        return learn_steps_per_second(agent, iterations)
    finally:
        agent.close()


def benchmark_device(args: argparse.Namespace) -> str:
    """The throughput table and the runs to success, as one markdown section."""
    devices = available_devices()
    rates = {}
    for device in devices:
        for num_envs in args.envs:
            rates[device, num_envs] = training_steps_per_second(device, num_envs, args.iterations)
            print(f"{device}, {num_envs} envs: {rates[device, num_envs]:,.0f} env steps/s", flush=True)
    rows = []
    for num_envs in args.envs:
        cuda = (f"{rates['cuda', num_envs]:,.0f} | {rates['cuda', num_envs] / rates['cpu', num_envs]:.1f}x"
                if "cuda" in devices else "no CUDA device on this machine | -")
        rows.append(f"| {num_envs} | {rates['cpu', num_envs]:,.0f} | {cuda} |")
    runs = []
    for device in devices:
        start = time.perf_counter()
        _, progress = train_until_solved("ppo", TASK, 0, eval_every=args.eval_every, max_timesteps=args.max_timesteps,
                                         device=device, stop_at_first_solve=True, **settings(args.solve_envs))
        evaluation = progress.last_evaluation
        runs.append(f"| {device} | {'yes' if progress.solved else 'no'} | {evaluation.success_rate:.2f} | "
                    f"{progress.env_steps:,} | {progress.training_seconds:,.0f} | "
                    f"{progress.env_steps / progress.training_seconds:,.0f} | {time.perf_counter() - start:,.0f} |")
        print(runs[-1], flush=True)
    threads = torch.get_num_threads()
    return "\n".join([
        f"## Recurrent PPO on CPU and CUDA: `{TASK.env_id}` (length={TASK.env_kwargs['length']})",
        "",
        "| env copies | CPU env steps / s | CUDA env steps / s | CUDA / CPU |",
        "|---:|---:|---:|---:|",
        *rows,
        "",
        f"Whole PPO iterations of the task's preset (`rl_lstm/presets/ppo.yaml`) with `{HYPERPARAMS}` and "
        f"{MINIBATCHES} minibatches per epoch (`batch_size` = copies x n_steps / {MINIBATCHES}); each figure is "
        f"{args.iterations} iterations timed after one warm-up iteration. "
        f"The CPU runs with torch's {threads} threads on {os.cpu_count()} cores; the env is a native numpy vector env "
        "on the CPU either way, so on CUDA each step's observations go to the device and the actions come back.",
        "",
        f"The same configuration at {args.solve_envs} copies trained until {TASK.criterion} over 100 deterministic "
        f"episodes (evaluated every {args.eval_every:,} env steps, at most {args.max_timesteps:,}), seed 0, on each "
        "device:",
        "",
        "| device | solved | success | env steps | training s | env steps / s | wall-clock s |",
        "|---|---|---:|---:|---:|---:|---:|",
        *runs,
    ])


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``device`` benchmark."""
    parser = subparsers.add_parser(
        "device", help="PPO env steps/s on CPU and CUDA at 64 and 1024 envs, and a run to success on each",
        description="Time recurrent PPO on every device this machine has, and train the T-maze to success on each.",
    )
    parser.add_argument("--envs", type=_positive_int, nargs="+", default=[64, 1024], help="env copies per figure")
    parser.add_argument("--iterations", type=_positive_int, default=3, help="timed PPO iterations per figure")
    parser.add_argument("--solve-envs", type=_positive_int, default=1024, help="env copies of the runs to success")
    parser.add_argument("--eval-every", type=_positive_int, default=131_072, help="env steps between evaluations")
    parser.add_argument("--max-timesteps", type=_positive_int, default=3_000_000, help="env-step budget per run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.set_defaults(run=benchmark_device)
