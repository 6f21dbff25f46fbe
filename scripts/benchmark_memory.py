"""Memory span: how long a corridor each trainer can carry the T-maze's cue over, on the active and passive T-maze.

    python scripts/benchmark.py memory
    python scripts/benchmark.py memory --agents evolino --mazes passive --lengths 100 500 1000 2000 --seeds 1

For each trainer and maze, corridor lengths are tried in increasing order, each with the trainer's shipped preset
for that length (``rl_lstm.config.preset(agent, env_id, {"length": N})``), until the first length that no seed
solves. A run is solved at >= 95% success over 100 deterministic evaluation episodes; it stops when solved or
when its wall-clock budget ends. Writes the table into docs/benchmarks.md (via scripts/benchmark.py), the plot
``docs/img/memory_span.png`` and, for the longest solved corridor, ``docs/img/tmaze_memory_trace.png``.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from benchmark_ppo import EVALUATION_SEED, EvaluateUntilSolved, Task, _positive_int, seeds_text
from matplotlib.figure import Figure

import envs  # noqa: F401  (registers the rl_lstm/ env ids with gymnasium)
from agents import agent_class
from rl_lstm.config import preset
from rl_lstm.evaluation import plot_memory

IMAGE_DIR = Path(__file__).resolve().parent.parent / "docs" / "img"
MAZES = {"active": "rl_lstm/TMaze-v0", "passive": "rl_lstm/PassiveTMaze-v0"}
DEFAULT_LENGTHS = (10, 20, 50, 100, 200, 500, 1000, 2000)

# What others report, on the task each paper defines (which differs from ours in details; see envs/tmaze.py).
# Only figures we could read in our sources are given a number; the others are named for the reader to look up.
REFERENCES = (
    ("passive", 1500, "Ni et al. 2023: transformer agents remember 1500 steps (their abstract)"),
)
REFERENCES_WITHOUT_FIGURES = (
    "Bakker 2002 (RL-LSTM, active T-maze), Wierstra et al. 2007/2010 (Recurrent Policy Gradients, T-maze) and "
    "Gomez & Schmidhuber 2005 (ESP, deep-memory T-mazes) report their longest corridors in the papers' result "
    "sections, which our search corpus did not hold; Ni et al. 2023 also report LSTM agents, in figures we could "
    "not read. Check those papers before comparing."
)


@dataclass
class SpanRun:
    """One seed at one length: solved or not, the last evaluation's success rate, steps and seconds."""

    seed: int
    solved: bool
    success: float
    env_steps: int
    seconds: float


def train_at_length(agent_name: str, maze: str, length: int, seed: int, args: argparse.Namespace
                    ) -> tuple[SpanRun, object]:
    """Train ``agent_name`` with its preset for this length until solved or out of budget."""
    env_id = MAZES[maze]
    task = Task(env_id, {"length": length}, "success", args.threshold)
    hyperparameters = preset(agent_name, env_id, {"length": length})
    env_kwargs = {**hyperparameters.pop("env_kwargs", {}), "length": length}
    agent = agent_class(agent_name)(env_id, seed=seed, device="cpu", env_kwargs=env_kwargs, **hyperparameters)
    progress = EvaluateUntilSolved(task, args.eval_every, args.eval_episodes, args.max_seconds)
    agent.learn(args.max_timesteps, callback=progress, progress_bar=False)
    agent.close()
    evaluation = progress.last_evaluation
    success = float(np.mean(evaluation.successes)) if evaluation is not None else 0.0
    return SpanRun(seed, progress.solved, success, progress.env_steps, progress.training_seconds), agent


def plot_span(results: dict[tuple[str, str], dict[int, list[SpanRun]]], path: Path) -> None:
    """Success rate (mean over seeds of the last evaluation) against corridor length, one panel per maze."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = dict(zip(MAZES, figure.subplots(1, len(MAZES), sharey=True)))
    for (agent_name, maze), by_length in sorted(results.items()):
        lengths = sorted(by_length)
        success = [np.mean([run.success for run in by_length[length]]) for length in lengths]
        axes[maze].plot(lengths, success, marker="o", label=agent_name)
    for maze, ax in axes.items():
        for reference_maze, length, label in REFERENCES:
            if reference_maze == maze:
                ax.axvline(length, color="grey", linestyle="--", linewidth=1)
                ax.text(length, 0.05, label, rotation=90, fontsize=7, color="grey", ha="right", va="bottom")
        ax.axhline(0.95, color="black", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("corridor length N (steps the cue must be held)")
        ax.set_title(f"{maze} T-maze (`{MAZES[maze]}`)")
        ax.legend(loc="lower left")
    axes["active"].set_ylabel("evaluation success rate (mean over seeds)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def benchmark_memory(args: argparse.Namespace) -> str:
    """The sweep, the plot, the memory trace; returns the markdown section."""
    torch.set_num_threads(1)
    results: dict[tuple[str, str], dict[int, list[SpanRun]]] = {}
    longest_solved: tuple[int, object] | None = None
    for maze in args.mazes:
        for agent_name in args.agents:
            by_length = results.setdefault((agent_name, maze), {})
            for length in sorted(args.lengths):
                runs = []
                for seed in range(args.seeds):
                    run, agent = train_at_length(agent_name, maze, length, seed, args)
                    runs.append(run)
                    print(f"{agent_name} {maze} N={length} seed {seed}: {'solved' if run.solved else 'not solved'}, "
                          f"success {run.success:.2f}, {run.env_steps:,} env steps, {run.seconds:,.0f} s", flush=True)
                    if run.solved and (longest_solved is None or length > longest_solved[0]):
                        longest_solved = (length, agent)
                by_length[length] = runs
                if not any(run.solved for run in runs):
                    break  # a trainer stops at the first length it fails
    image_dir = Path(args.image_dir)
    plot_span(results, image_dir / "memory_span.png")
    lines = [
        "## Memory span: the longest T-maze corridor each trainer solves",
        "",
        "| maze | trainer | N | solved seeds | success per seed | median env steps (solved) | "
        "median s (solved) |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for (agent_name, maze), by_length in results.items():
        for length, runs in sorted(by_length.items()):
            solved = [run for run in runs if run.solved]
            steps = f"{statistics.median(r.env_steps for r in solved):,.0f}" if solved else "—"
            seconds = f"{statistics.median(r.seconds for r in solved):,.0f}" if solved else "—"
            lines.append(f"| {maze} | {agent_name} | {length} | {len(solved)}/{len(runs)} | "
                         f"{', '.join(f'{r.success:.2f}' for r in runs)} | {steps} | {seconds} |")
    if longest_solved is not None:
        length, agent = longest_solved
        trace = plot_memory(agent, image_dir / "tmaze_memory_trace.png", seed=EVALUATION_SEED, max_steps=20 * length)
        lines += ["", f"Cell states over one episode of the longest solved corridor (N = {length}, {agent.name}):", "",
                  f"![memory trace](img/{trace.name})"]
    lines += [
        "",
        "![success rate against corridor length](img/memory_span.png)",
        "",
        f"Trainers {', '.join(args.agents)} on the {' and '.join(args.mazes)} T-maze, lengths "
        f"{', '.join(str(n) for n in sorted(args.lengths))} in order, stopping a trainer at the first length no seed "
        f"solves; {seeds_text(args.seeds)} per length; each run budgeted {args.max_seconds:,.0f} s of training or "
        f"{args.max_timesteps:,} env steps, with `torch.set_num_threads(1)`; evaluation every {args.eval_every:,} "
        f"env steps (Evolino: after the first generation past it) on {args.eval_episodes} deterministic episodes "
        f"seeded from {EVALUATION_SEED}; solved at success >= {args.threshold}. Each trainer uses its shipped preset "
        "for the length (`rl_lstm/presets/<agent>.yaml`).",
        "",
        "References: " + "; ".join(label for _, _, label in REFERENCES) + ". " + REFERENCES_WITHOUT_FIGURES,
    ]
    return "\n".join(lines)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``memory`` benchmark."""
    parser = subparsers.add_parser(
        "memory", help="memory span: longest T-maze corridor solved by each trainer, active and passive",
        description="Train each trainer on the active and passive T-maze at increasing corridor lengths until the "
        "first length no seed solves; write a table, a plot and a memory trace.",
    )
    parser.add_argument("--agents", nargs="+", default=["ppo", "reinforce", "evolino"])
    parser.add_argument("--mazes", nargs="+", choices=list(MAZES), default=list(MAZES))
    parser.add_argument("--lengths", nargs="+", type=_positive_int, default=list(DEFAULT_LENGTHS))
    parser.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0 .. N-1 per length")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="training-time budget per run (s)")
    parser.add_argument("--max-timesteps", type=_positive_int, default=10**9, help="env-step budget per run")
    parser.add_argument("--eval-every", type=_positive_int, default=50_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=_positive_int, default=100, help="episodes per evaluation")
    parser.add_argument("--threshold", type=float, default=0.95, help="success rate that counts as solved")
    parser.add_argument("--image-dir", default=str(IMAGE_DIR), help="where the PNGs go")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.set_defaults(run=benchmark_memory)
