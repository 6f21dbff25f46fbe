"""The main job as a user runs it: ``rl-lstm train`` (what ``make train`` runs), one fresh process per seed.

    python scripts/benchmark.py main-job --seeds 0 1 2 3 4              # the tuning and test seeds
    python scripts/benchmark.py main-job --seeds 100 101 102 103 104    # held out: the figure the README quotes
    python scripts/benchmark.py main-job --set shared_core=false         # the main job with a key changed
    python scripts/benchmark.py main-job-trace --seed 8                  # one run, iteration by iteration
    python scripts/benchmark.py main-job-trace --seed 4 --set "env_kwargs={length: 200}"  # another corridor

Each run is the main job's own command with ``--seed`` (and a run folder in a temporary directory), then the
README's ``rl-lstm evaluate RUN --episodes 100``. From the run's evaluations (``eval/success_rate``, every
``eval_every`` env steps and after the last update) come the env steps at which it first met the threshold; from
its ``final_eval.json`` the final policy's success, and which checkpoint is best. A run is solved if its final
policy meets the threshold, in the run's own final evaluation and in ``rl-lstm evaluate``'s.

``main-job-trace`` trains one seed of the main job in this process (through ``rl_lstm.training.train``, as the
command does) and records after every update what PPO logs (entropy loss, approx KL, clip fraction, value loss, gradient
norm, learning rate, rollout success) and what the policy does with the cue: both cues' optimal walks to the
junction are played through the policy, and the trace keeps the distance between the two cues' cell states there
and each cue's junction margin (the right arm's logit over the best other action's: the greedy policy is right for
that cue while it is positive).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.tmaze import EAST, NORTH, SOUTH, TMazeEnv
from rl_lstm.agent import RecurrentAgent
from rl_lstm.config import parse_assignments
from rl_lstm.results import read_scalars
from rl_lstm.training import RunCallback, RunConfig, read_final_evaluation, resolve_config, train

THRESHOLD = 0.95  # success rate over the evaluation's episodes


@dataclass
class MainJobRun:
    """One seed of the main job: its evaluations over training, its final one and ``rl-lstm evaluate``'s."""

    seed: int
    evaluations: list[tuple[int, float]]  # (env steps, success rate), in order
    final: dict  # final_eval.json
    evaluate_success: float  # rl-lstm evaluate RUN --episodes 100 (checkpoints/latest.pt)
    seconds: float  # the train command's wall-clock, start-up and evaluations included

    @property
    def first_solved_steps(self) -> int | None:
        """Env steps at the first evaluation that met the threshold; None if none did."""
        return next((steps for steps, success in self.evaluations if success >= THRESHOLD), None)

    @property
    def solved(self) -> bool:
        """The final policy meets the threshold in the run's final evaluation and in rl-lstm evaluate's."""
        return self.final["success_rate"] >= THRESHOLD and self.evaluate_success >= THRESHOLD

    @property
    def drops(self) -> int:
        """Evaluations below the threshold that follow one at or above it: how often the run unlearned the task."""
        successes = [success for _, success in self.evaluations]
        return sum(before >= THRESHOLD > after for before, after in zip(successes, successes[1:]))


def run_main_job(seed: int, runs_dir: Path, assignments: tuple[str, ...] = ()) -> MainJobRun:
    """The main job's command at ``seed`` (with ``--set`` ``assignments``) in a fresh process, then ``rl-lstm
    evaluate`` of its run folder."""
    cli = [sys.executable, "-m", "rl_lstm.cli"]
    start = time.perf_counter()
    subprocess.run([*cli, "train", "--seed", str(seed), "--no-progress", "--set", f"runs_dir={runs_dir}",
                    *assignments], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (run_dir,) = runs_dir.glob("*/*")  # runs/<env>/<run>: the one run this scratch folder holds, whatever its env
    steps, successes = read_scalars(run_dir, "eval/success_rate")
    subprocess.run([*cli, "evaluate", str(run_dir), "--episodes", "100"], check=True, capture_output=True, text=True)
    evaluate_success = json.loads((run_dir / "eval.json").read_text())["success_rate"]
    run = MainJobRun(seed, [(int(s), float(v)) for s, v in zip(steps, successes)], read_final_evaluation(run_dir),
                     evaluate_success, seconds)
    first = "never" if run.first_solved_steps is None else f"{run.first_solved_steps:,}"
    print(f"seed {seed}: {'solved' if run.solved else 'NOT solved'}; first met {THRESHOLD:.0%} at {first} env "
          f"steps; final {run.final['success_rate']:.0%}, rl-lstm evaluate {evaluate_success:.0%}; {run.drops} "
          f"drops; {seconds:.0f} s", flush=True)
    return run


def benchmark_main_job(args: argparse.Namespace) -> str:
    """Every seed of the main job: where it first solved the T-maze, whether its final policy still does."""
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda seed: run_main_job(seed, Path(scratch) / str(seed), tuple(args.set)),
                             args.seeds))
    rows = []
    for run in runs:
        successes = " ".join(f"{success:.2f}" for _, success in run.evaluations)
        first = "—" if run.first_solved_steps is None else f"{run.first_solved_steps:,}"
        best = run.final["best"]
        rows.append(f"| {run.seed} | {'yes' if run.solved else 'no'} | {first} | {run.final['success_rate']:.2f} | "
                    f"{run.evaluate_success:.2f} | {run.drops} | {best['num_timesteps']:,} | {successes} | "
                    f"{run.seconds:.0f} |")
    solved = [run for run in runs if run.solved]
    first_solved = [run.first_solved_steps for run in runs if run.first_solved_steps is not None]
    budget = runs[0].final["num_timesteps"]
    slowest = f"{max(first_solved):,}" if first_solved else "—"
    ratio = f"{budget / max(first_solved):.2f}x" if first_solved else "—"
    config = RunConfig()
    changed = f" with `--set {shlex.join(args.set)}`" if args.set else ""
    return "\n".join([
        f"## The main job: `make train`{changed}, seed by seed",
        "",
        "| seed | solved (final policy) | first met 95% at env step | final evaluation success | `rl-lstm evaluate` "
        "success | drops below 95% after meeting it | best.pt from env step | evaluations over training | "
        "wall-clock s |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|",
        *rows,
        "",
        f"Solved by the final policy: **{len(solved)}/{len(runs)}** seeds; the budget ({budget:,} env steps) is "
        f"{ratio} the slowest first crossing ({slowest}); median wall-clock "
        f"{statistics.median(run.seconds for run in runs):.0f} s per run, {args.jobs} runs at a time on the machine.",
        "",
        f"Each run is the main job's command `rl-lstm train --seed SEED{changed and ' --set '}{shlex.join(args.set)}`"
        f" (recurrent PPO, `{config.env}`, "
        f"{config.timesteps:,} env steps, the shipped preset) in a fresh process. The run evaluates itself every "
        f"{config.eval_every:,} env steps and after its last update ({config.eval_episodes} deterministic episodes, "
        "env copies seeded from the run's seed); \"final evaluation\" is that last one (`final_eval.json`, "
        "`checkpoints/latest.pt`), and `rl-lstm evaluate RUN --episodes 100` evaluates the same checkpoint on the "
        "episodes of seed 0, as the README tells a user to. A run is solved if both reach 95% success.",
    ])


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``main-job`` benchmark."""
    parser = subparsers.add_parser(
        "main-job", help="the main job (rl-lstm train, what make train runs) seed by seed, judged at its end",
        description="Run the main job's command for each seed in a fresh process and judge its final policy.",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds to run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one per core)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--label", help="write the section main-job-LABEL, beside the others (e.g. held-out)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="keys to change in the main job's command (rl-lstm train --set), e.g. shared_core=false")
    parser.set_defaults(run=benchmark_main_job)
    trace = subparsers.add_parser(
        "main-job-trace", help="one seed of the main job, iteration by iteration, around each flipped decision",
        description="Train one seed of the main job and trace PPO's scalars and the policy's use of the cue.",
    )
    trace.add_argument("--seed", type=int, default=0)
    trace.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="keys to change, as in main-job")
    trace.add_argument("--context", type=int, default=5, help="updates shown before each flip")
    trace.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    trace.add_argument("--label", help="write the section main-job-trace-LABEL, beside the others")
    trace.set_defaults(run=trace_main_job)


TRACE_COLUMNS = ("env steps", "eval success", "rollout success", "margin (up cue)", "margin (down cue)",
                 "cue distance in cell state", "entropy loss", "approx KL", "clip fraction", "value loss", "grad norm",
                 "learning rate")


def cue_walks(length: int) -> np.ndarray:
    """Both cues' optimal walks from the start to the junction, ``[length + 1, 2, 3]``: cue up, then cue down."""
    walks: dict[bool, np.ndarray] = {}
    seed = 0
    while len(walks) < 2:
        env = TMazeEnv(length=length)
        observation, _ = env.reset(seed=seed)
        seed += 1
        steps = [observation] + [env.step(EAST)[0] for _ in range(length)]
        walks.setdefault(bool(env.task.cue_is_up[0]), np.stack(steps))
    return np.stack([walks[True], walks[False]], axis=1).astype(np.float32)


class TraceCallback(RunCallback):
    """RunCallback that also records, after each update, PPO's scalars and what the policy does with the cue."""

    def __init__(self, run_dir: Path, run_config: RunConfig, hparams: dict[str, Any]) -> None:
        super().__init__(run_dir, run_config, hparams)
        if run_config.env != RunConfig.env:
            raise ValueError(f"main-job-trace follows the cue of {RunConfig.env}, not of {run_config.env}")
        # The task's corridor (a curriculum trains shorter ones first; the trace plays the task's own).
        self.walks = cue_walks(hparams["env_kwargs"].get("length", 10))
        self.rows: list[tuple[float, ...]] = []  # one per update, in TRACE_COLUMNS' order

    def __call__(self, agent: RecurrentAgent) -> bool:
        keep_going = super().__call__(agent)
        policy, steps = agent.policy, len(self.walks)
        episode_starts = torch.zeros(steps, 2, dtype=torch.bool)
        episode_starts[0] = True
        with torch.no_grad():
            distribution, _, state = policy.forward_sequence(torch.as_tensor(self.walks), policy.initial_state(2),
                                                             episode_starts)
            logits = distribution.log_probs[-1, :, 0]  # [2 cues, 4 actions] at the junction
            cells = policy.memory(state)  # [2 cues, H]
        margins = [float(logits[cue, arm] - logits[cue, [a for a in range(4) if a != arm]].max())
                   for cue, arm in ((0, NORTH), (1, SOUTH))]
        latest = agent.logger.latest
        evaluated = self.last_evaluation is not None and self.last_evaluation[0] == agent.num_timesteps
        self.rows.append((agent.num_timesteps, self.last_evaluation[1].success_rate if evaluated else float("nan"),
                          latest.get("rollout/success_rate", float("nan")), *margins,
                          float((cells[0] - cells[1]).norm()),
                          *(latest[f"train/{key}"] for key in ("entropy_loss", "approx_kl", "clip_fraction",
                                                               "value_loss", "grad_norm", "learning_rate"))))
        return keep_going


def trace_main_job(args: argparse.Namespace) -> str:
    """One seed of the main job, iteration by iteration: the rows around every flip of a cue's junction decision."""
    torch.set_num_threads(1)
    values = {"seed": args.seed, "progress_bar": False, **parse_assignments(args.set)}
    callbacks: list[TraceCallback] = []

    def make_callback(*callback_args: Any) -> TraceCallback:
        callbacks.append(TraceCallback(*callback_args))
        return callbacks[-1]

    with tempfile.TemporaryDirectory() as scratch:
        run_config, hyperparameters = resolve_config({**values, "runs_dir": scratch})
        train(run_config, hyperparameters, make_callback=make_callback)
    (callback,) = callbacks
    rows = callback.rows
    right = [margin_up > 0 and margin_down > 0 for _, _, _, margin_up, margin_down, *_ in rows]
    flips = [i for i in range(1, len(rows)) if right[i - 1] and not right[i]]
    shown = sorted({j for i in flips for j in range(max(0, i - args.context), min(len(rows), i + 2))}
                   | {i for i, row in enumerate(rows) if not np.isnan(row[1])})
    lines = [f"## The main job traced: seed {args.seed}" + (f", `--set {shlex.join(args.set)}`" if args.set else ""),
             "", "| " + " | ".join(TRACE_COLUMNS) + " |", "|" + "---:|" * len(TRACE_COLUMNS)]
    for previous, i in zip([None, *shown], shown):
        if previous is not None and i != previous + 1:
            lines.append("| … |" + " |" * (len(TRACE_COLUMNS) - 1))
        steps, *rest = rows[i]
        cells = ["" if np.isnan(value) else f"{value:.3g}" for value in rest]
        lines.append(f"| {steps:,} | " + " | ".join(cells) + (" |" if i not in flips else " | ← flip"))
    first = next((i for i, ok in enumerate(right) if ok), None)
    if first is None:
        outcome = "The greedy junction decision was never right for both cues."
    else:
        outcome = (f"The greedy junction decision was first right for both cues at {rows[first][0]:,} env steps, "
                   f"flipped {len(flips)} times after that, and was right for both on {np.mean(right[first:]):.0%} "
                   "of the updates from then to the end.")
    return "\n".join([*lines, "", f"{outcome} Rows: every evaluation, and the {args.context} updates before each "
                       "flip (marked) and the one after it."])
