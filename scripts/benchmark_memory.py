"""Memory span: how long a corridor each trainer can carry the T-maze's cue over, on the active and passive T-maze.

    python scripts/benchmark.py memory
    python scripts/benchmark.py memory --agents evolino --mazes passive --lengths 100 500 1000 2000 --seeds 1

For each trainer and maze, corridor lengths are tried in increasing order, each with the trainer's shipped preset
for that length (``rl_lstm.config.preset(agent, env_id, {"length": N})``), until the first length that no seed
solves. A run is solved at >= 95% success over 100 deterministic evaluation episodes; it stops when solved or
when its wall-clock budget ends.

Every finished run is recorded at once in ``docs/memory_span.json`` (with the command that ran it), and a run
already recorded there is not repeated: a sweep that is stopped resumes, and sweeps of different trainers run
as separate processes (one per core) add up. The table in docs/benchmarks.md (via scripts/benchmark.py), the
plot ``docs/img/memory_span.png`` and, from the saved checkpoint of the longest solved corridor,
``docs/img/tmaze_memory_trace.png`` are drawn from all recorded runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from benchmark_ppo import _positive_int
from matplotlib.figure import Figure

import envs  # noqa: F401  (registers the rl_lstm/ env ids with gymnasium)
from rl_lstm.evaluation import load_agent, record_memory
from rl_lstm.solving import EVALUATION_SEED, Task, train_until_solved

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "docs" / "img"
RESULTS_FILE = ROOT / "docs" / "memory_span.json"
CHECKPOINT_DIR = ROOT / "runs" / "memory_span"
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
    """One seed of one trainer at one length: solved or not, the last evaluation's success, steps, seconds."""

    agent: str
    maze: str
    length: int
    seed: int
    solved: bool
    success: float
    env_steps: int
    seconds: float
    max_seconds: float
    checkpoint: str | None = None  # the trained agent, kept for solved runs (for the memory trace)

    @property
    def key(self) -> str:
        """Identifies the run in the results file."""
        return f"{self.agent}/{self.maze}/{self.length}/{self.seed}"


def shown(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it (what the results file and report hold)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def read_results(path: Path) -> dict:
    """The results file: ``{"runs": {key: SpanRun fields}, "commands": [...]}`` (empty if there is none)."""
    return json.loads(path.read_text()) if path.exists() else {"runs": {}, "commands": []}


def write_results(path: Path, results: dict) -> None:
    """Write the results file whole, through a temporary file, so a killed sweep never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    temporary.replace(path)


def train_at_length(agent_name: str, maze: str, length: int, seed: int, args: argparse.Namespace) -> SpanRun:
    """Train ``agent_name`` with its preset for this length until solved or out of budget."""
    task = Task(MAZES[maze], {"length": length}, "success", args.threshold)
    agent, progress = train_until_solved(agent_name, task, seed, args.eval_every, args.eval_episodes,
                                         args.max_seconds, args.max_timesteps)
    success = float(np.mean(progress.last_evaluation.successes))
    run = SpanRun(agent_name, maze, length, seed, progress.solved, success, progress.env_steps,
                  progress.training_seconds, args.max_seconds)
    if run.solved:
        checkpoint = Path(args.checkpoint_dir) / f"{agent_name}_{maze}_{length}_{seed}.pt"
        agent.save(checkpoint)
        run.checkpoint = shown(checkpoint)
    return run


def plot_span(runs: list[SpanRun], path: Path) -> None:
    """Success rate (mean over seeds of the last evaluation) against corridor length, one panel per maze."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = dict(zip(MAZES, figure.subplots(1, len(MAZES), sharey=True)))
    for agent_name, maze in sorted({(run.agent, run.maze) for run in runs}):
        lengths = sorted({run.length for run in runs if (run.agent, run.maze) == (agent_name, maze)})
        success = [np.mean([r.success for r in runs if (r.agent, r.maze, r.length) == (agent_name, maze, length)])
                   for length in lengths]
        axes[maze].plot(lengths, success, marker="o", label=agent_name)
    for maze, ax in axes.items():
        for reference_maze, length, label in REFERENCES:
            if reference_maze == maze:
                ax.axvline(length, color="grey", linestyle="--", linewidth=1)
                ax.text(length, 0.05, label, rotation=90, fontsize=7, color="grey", ha="right", va="bottom")
        ax.axhline(0.95, color="black", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("corridor length N (steps the cue must be held)")
        ax.set_title(f"{maze} T-maze ({MAZES[maze]})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left")
    axes["active"].set_ylabel("evaluation success rate (mean over seeds)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def record(results_path: Path, command: str, run: SpanRun | None = None) -> dict:
    """Add ``run`` and ``command`` to the results file as it is now on disk (other sweeps may have added runs)."""
    results = read_results(results_path)
    if command not in results["commands"]:
        results["commands"].append(command)
    if run is not None:
        results["runs"][run.key] = asdict(run)
    write_results(results_path, results)
    return results


def plot_cue_traces(agent: object, path: Path, length: int) -> Path:
    """The cell states of two episodes, goal up and goal down, unit by unit on a shared scale per unit.

    Units whose colour differs between the two panels all along the corridor are the ones holding the cue.
    """
    traces = {}
    for seed in range(EVALUATION_SEED, EVALUATION_SEED + 100):
        trace = record_memory(agent, seed=seed, max_steps=20 * (length + 1))
        cue = "up" if trace.observations[0].tolist() == [0.0, 1.0, 1.0] else "down"  # Bakker's 011 / 110
        traces.setdefault(cue, trace)
        if len(traces) == 2:
            break
    magnitudes = np.maximum(np.max([np.abs(t.cell_states).max(axis=0) for t in traces.values()], axis=0), 1e-6)
    panels = [(f"goal {cue}: return {trace.episode_return:.2f} over {len(trace.rewards)} steps", trace.cell_states,
               magnitudes, "|c|") for cue, trace in sorted(traces.items(), reverse=True)]
    if len(traces) == 2:
        # The cue's whole trace in memory: what differs between the two episodes, step by step. A cell holding the
        # cue shows a difference that neither fades nor flips along the corridor.
        steps = min(len(t.cell_states) for t in traces.values())
        difference = traces["up"].cell_states[:steps] - traces["down"].cell_states[:steps]
        scale = np.maximum(np.abs(difference).max(axis=0), 1e-9)
        panels.append(("goal up minus goal down: where the cue is held", difference, scale, "|diff|"))
    figure = Figure(figsize=(12, 3 * len(panels)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(panels), 1, sharex=True))
    for ax, (title, states, scale, what) in zip(axes, panels):
        steps, units = states.shape
        image = ax.imshow((states / scale).T, aspect="auto", interpolation="nearest", cmap="RdBu_r",
                          vmin=-1, vmax=1, extent=(-0.5, steps - 0.5, units - 0.5, -0.5))
        ax.set_yticks(range(units), [f"{unit} ({what} <= {scale[unit]:.3g})" for unit in range(units)])
        ax.set_ylabel("memory cell")
        ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label="value / the unit's largest (per panel)")
    axes[-1].set_xlabel("step (the cue is shown at step 0 only)")
    figure.suptitle(f"{traces[next(iter(traces))].env_id}, N = {length}: what the memory cells hold")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def sweep(args: argparse.Namespace, results_path: Path) -> None:
    """Run what the results file does not hold yet, trainer by trainer, recording each run as it ends."""
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    results = record(results_path, command)
    for maze in args.mazes:
        for agent_name in args.agents:
            for length in sorted(args.lengths):
                runs = []
                for seed in range(args.seeds):
                    key = f"{agent_name}/{maze}/{length}/{seed}"
                    if key not in results["runs"]:
                        run = train_at_length(agent_name, maze, length, seed, args)
                        results = record(results_path, command, run)
                        print(f"{key}: {'solved' if run.solved else 'not solved'}, success {run.success:.2f}, "
                              f"{run.env_steps:,} env steps, {run.seconds:,.0f} s", flush=True)
                    runs.append(SpanRun(**results["runs"][key]))
                if not any(run.solved for run in runs):
                    break  # a trainer stops at the first length it fails


def benchmark_memory(args: argparse.Namespace) -> str:
    """The sweep, then the table, plot and memory trace of every recorded run; returns the markdown section."""
    torch.set_num_threads(1)
    results_path = Path(args.results)
    sweep(args, results_path)
    results = read_results(results_path)
    runs = [SpanRun(**fields) for fields in results["runs"].values()]
    image_dir = Path(args.image_dir)
    plot_span(runs, image_dir / "memory_span.png")
    lines = [
        "## Memory span: the longest T-maze corridor each trainer solves",
        "",
        "| maze | trainer | N | solved seeds | success per seed | median env steps (solved) | "
        "median training s (solved) | budget per run (s) |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    groups = sorted({(run.maze, run.agent, run.length) for run in runs})
    for maze, agent_name, length in groups:
        group = sorted((r for r in runs if (r.maze, r.agent, r.length) == (maze, agent_name, length)),
                       key=lambda r: r.seed)
        solved = [run for run in group if run.solved]
        steps = f"{statistics.median(r.env_steps for r in solved):,.0f}" if solved else "—"
        seconds = f"{statistics.median(r.seconds for r in solved):,.0f}" if solved else "—"
        budgets = "/".join(sorted({f"{r.max_seconds:,.0f}" for r in group}))
        lines.append(f"| {maze} | {agent_name} | {length} | {len(solved)}/{len(group)} | "
                     f"{', '.join(f'{r.success:.2f}' for r in group)} | {steps} | {seconds} | {budgets} |")
    with_checkpoints = [r for r in runs if r.solved and r.checkpoint and (ROOT / r.checkpoint).exists()]
    if with_checkpoints:
        longest = max(with_checkpoints, key=lambda r: (r.length, r.maze == "active"))
        agent = load_agent(ROOT / longest.checkpoint)
        trace = plot_cue_traces(agent, image_dir / "tmaze_memory_trace.png", longest.length)
        lines += ["", f"Cell states over one episode of the longest solved corridor ({longest.maze} T-maze, "
                      f"N = {longest.length}, {longest.agent}, seed {longest.seed}):", "",
                  f"![memory trace](img/{trace.name})"]
    lines += [
        "",
        "![success rate against corridor length](img/memory_span.png)",
        "",
        "Each trainer's lengths in increasing order, stopping at the first length no seed solves; each run with "
        f"the trainer's shipped preset for the length (`rl_lstm/presets/<agent>.yaml`), `torch.set_num_threads(1)`, "
        f"evaluated every {args.eval_every:,} env steps (Evolino: after the first generation past that) on "
        f"{args.eval_episodes} deterministic episodes seeded from {EVALUATION_SEED}; solved at success >= "
        f"{args.threshold}; training seconds exclude evaluations. Sweeps that ran concurrently (one process per "
        f"core) share the machine's two cores. The runs are recorded in `{shown(results_path)}`, made "
        "by:",
        "",
        *(f"- `{command}`" for command in results["commands"]),
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
    parser.add_argument("--results", default=str(RESULTS_FILE), help="JSON of recorded runs (read, then extended)")
    parser.add_argument("--checkpoint-dir", default=str(CHECKPOINT_DIR), help="where solved agents are saved")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.set_defaults(run=benchmark_memory)
