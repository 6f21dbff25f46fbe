"""Memory span: how long a corridor each trainer can carry a T-maze's cue over, on two protocols' T-mazes.

    python scripts/benchmark.py memory
    python scripts/benchmark.py memory --agents evolino --mazes ni-passive --lengths 100 1000 10000 --seeds 1

Four mazes (``--mazes``, default all): Bakker's active T-maze and our passive one (``active``, ``passive``:
``rl_lstm/TMaze-v0``, ``rl_lstm/PassiveTMaze-v0``, envs/tmaze.py) and Ni et al.'s passive and active T-mazes
(``ni-passive``, ``ni-active``: ``rl_lstm/NiPassiveTMaze-v0``, ``rl_lstm/NiActiveTMaze-v0``, envs/ni_tmaze.py,
where the length is their L). For each trainer and maze, corridor lengths are tried in increasing order, each with
the trainer's shipped preset for that length (``rl_lstm.config.preset(agent, env_id, {"length": N})``), until the
first length that no seed solves. A run is solved at >= 95% success (``info["is_success"]``) over 100
deterministic evaluation episodes; it stops when solved or when its wall-clock budget ends.

Every finished run is recorded at once in ``docs/memory_span.json`` (with the command that ran it and its training
env steps per second), and a run already recorded there is not repeated: a sweep that is stopped resumes, and
sweeps of different trainers run as separate processes (one per core) add up. ``--report-only`` trains nothing and
redraws the tables, plot and trace from the recorded runs. The tables in docs/benchmarks.md
(via scripts/benchmark.py), the plot ``docs/img/memory_span.png`` (with the published spans of Ni et al. and AMAGO
marked) and, from the saved checkpoint of the longest solved corridor, ``docs/img/tmaze_memory_trace.png`` are
drawn from all recorded runs.
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
from benchmark_ppo import IMAGE_DIR, ROOT, _positive_int
from matplotlib.figure import Figure

import envs  # noqa: F401  (registers the rl_lstm/ env ids with gymnasium)
from rl_lstm.evaluation import load_agent, record_memory
from rl_lstm.solving import EVALUATION_SEED, Task, train_until_solved

RESULTS_FILE = ROOT / "docs" / "memory_span.json"
CHECKPOINT_DIR = ROOT / "runs" / "memory_span"
DEFAULT_LENGTHS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)


@dataclass(frozen=True)
class Maze:
    """One T-maze of the sweep: its env id, whose protocol it follows and the observations that show its cue."""

    env_id: str
    protocol: str
    passive: bool
    cue_codings: dict[tuple[float, ...], str]  # observation at the cue -> the goal arm it names

    @property
    def title(self) -> str:
        """E.g. ``passive T-maze (Ni et al.)``, as the tables and the plot name it."""
        return f"{'passive' if self.passive else 'active'} T-maze ({self.protocol})"


BAKKER_CUES = {(0.0, 1.0, 1.0): "up", (1.0, 1.0, 0.0): "down"}  # Bakker's 011 / 110, at the start
NI_CUES = {(0.0, 1.0): "up", (0.0, -1.0): "down"}  # their [0, goal_y] on the first visit to x = 0
# The keys name the runs in docs/memory_span.json ("agent/maze/length/seed"): "active" and "passive" were recorded
# before Ni et al.'s mazes joined, so they keep their names. The order lays out the plot: one row per protocol.
MAZES = {
    "active": Maze("rl_lstm/TMaze-v0", "Bakker", passive=False, cue_codings=BAKKER_CUES),
    "passive": Maze("rl_lstm/PassiveTMaze-v0", "Bakker", passive=True, cue_codings=BAKKER_CUES),
    "ni-active": Maze("rl_lstm/NiActiveTMaze-v0", "Ni et al.", passive=False, cue_codings=NI_CUES),
    "ni-passive": Maze("rl_lstm/NiPassiveTMaze-v0", "Ni et al.", passive=True, cue_codings=NI_CUES),
}


@dataclass(frozen=True)
class Reference:
    """A span others report on a passive T-maze: drawn on every passive panel of the plot, a row of the table."""

    maze: str
    length: int
    agent: str  # who solved it, as the plot and the table name it
    source: str  # what was reported and where


# What others report, on the task each paper defines: Ni et al.'s own maze is ni-passive; Bakker's passive maze
# (ours) differs in details (see envs/tmaze.py), so on its panel the lines are for orientation only.
REFERENCES = (
    Reference("ni-passive", 1500, "transformer, Ni et al. 2023",
              "Ni et al. (NeurIPS 2023): transformer agents solve their passive T-maze at memory length 1,500; they "
              "ran passive lengths 50-1,500 and active 20-500"),
    Reference("ni-passive", 10_000, "transformer on a GPU, AMAGO 2024",
              "AMAGO (Grigsby, Fan & Zhu, ICLR 2024): a passive T-maze solved at H = 10,000 with a transformer on a "
              "GPU, \"several days to converge\""),
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
    steps_per_second: float | None = None  # training env steps / training seconds (evaluations excluded)
    # The corridor length training had reached when an unsolved run ended inside its preset's curriculum; None:
    # the run trained on the task itself (or was recorded before this field existed)
    stage_length: int | None = None

    def __post_init__(self) -> None:
        # Runs recorded before this field existed hold what it is computed from.
        if self.steps_per_second is None:
            self.steps_per_second = self.env_steps / self.seconds if self.seconds > 0 else 0.0

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
    task = Task(MAZES[maze].env_id, {"length": length}, "success", args.threshold)
    agent, progress = train_until_solved(agent_name, task, seed, args.eval_every, args.eval_episodes,
                                         args.max_seconds, args.max_timesteps, stop_at_first_solve=True)
    success = float(np.mean(progress.last_evaluation.successes))
    run = SpanRun(agent_name, maze, length, seed, progress.solved, success, progress.env_steps,
                  progress.training_seconds, args.max_seconds)
    if agent.curriculum is not None and not agent.curriculum.finished:
        run.stage_length = agent.training_env_kwargs["length"]
    if run.solved:
        checkpoint = Path(args.checkpoint_dir) / f"{agent_name}_{maze}_{length}_{seed}.pt"
        agent.save(checkpoint)
        run.checkpoint = shown(checkpoint)
    return run


def plot_span(runs: list[SpanRun], path: Path) -> Figure:
    """Success rate (mean over seeds of the last evaluation) against length, one panel per maze, saved to ``path``.

    The passive panels mark the published spans (:data:`REFERENCES`) as vertical lines. Returns the figure.
    """
    figure = Figure(figsize=(12, 8), layout="constrained")
    axes = dict(zip(MAZES, figure.subplots(2, 2, sharex=True, sharey=True).flat))
    for agent_name, maze in sorted({(run.agent, run.maze) for run in runs}):
        lengths = sorted({run.length for run in runs if (run.agent, run.maze) == (agent_name, maze)})
        success = [np.mean([r.success for r in runs if (r.agent, r.maze, r.length) == (agent_name, maze, length)])
                   for length in lengths]
        axes[maze].plot(lengths, success, marker="o", label=agent_name)
    # One length axis for all four panels, wide enough for every run and every reference.
    all_lengths = [run.length for run in runs] + [reference.length for reference in REFERENCES]
    for maze, ax in axes.items():
        if MAZES[maze].passive:
            for reference in REFERENCES:
                ax.axvline(reference.length, color="grey", linestyle="--", linewidth=1)
                ax.text(reference.length, 0.05, f"{reference.agent}: {reference.length:,}", rotation=90, fontsize=7,
                        color="grey", ha="right", va="bottom")
        ax.axhline(0.95, color="black", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlim(min(all_lengths) / 1.5, max(all_lengths) * 1.5)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{MAZES[maze].title}: {MAZES[maze].env_id}", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left")
    for maze in ("ni-active", "ni-passive"):
        axes[maze].set_xlabel("corridor length (N; Ni et al.'s L): steps the cue must be held")
    for maze in ("active", "ni-active"):
        axes[maze].set_ylabel("evaluation success rate (mean over seeds)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return figure


def record(results_path: Path, command: str, run: SpanRun | None = None) -> dict:
    """Add ``run`` and ``command`` to the results file as it is now on disk (other sweeps may have added runs)."""
    results = read_results(results_path)
    if command not in results["commands"]:
        results["commands"].append(command)
    if run is not None:
        results["runs"][run.key] = asdict(run)
    write_results(results_path, results)
    return results


def shown_cue(maze: Maze, observations: np.ndarray) -> tuple[int, str] | None:
    """The first step whose observation shows the cue and the goal arm it names; None if the episode never shows it."""
    for step, observation in enumerate(observations):
        arm = maze.cue_codings.get(tuple(observation.tolist()))
        if arm is not None:
            return step, arm
    return None


def plot_cue_traces(agent: object, path: Path, maze: str, length: int) -> Path:
    """The cell states of two episodes, goal up and goal down, unit by unit on a shared scale per unit.

    Units whose colour differs between the two panels all along the corridor are the ones holding the cue.
    """
    traces = {}  # goal arm -> (step showing the cue, trace)
    for seed in range(EVALUATION_SEED, EVALUATION_SEED + 100):
        trace = record_memory(agent, seed=seed, max_steps=20 * (length + 1))
        cue = shown_cue(MAZES[maze], trace.observations)
        if cue is not None:
            traces.setdefault(cue[1], (cue[0], trace))
        if len(traces) == 2:
            break
    magnitudes = np.maximum(np.max([np.abs(t.cell_states).max(axis=0) for _, t in traces.values()], axis=0), 1e-6)
    panels = [(f"goal {arm} (cue at step {step}): return {trace.episode_return:.2f} over {len(trace.rewards)} steps",
               trace.cell_states, magnitudes, "|c|") for arm, (step, trace) in sorted(traces.items(), reverse=True)]
    if len(traces) == 2:
        # The cue's whole trace in memory: what differs between the two episodes, step by step. A cell holding the
        # cue shows a difference that neither fades nor flips along the corridor.
        up, down = traces["up"][1].cell_states, traces["down"][1].cell_states
        steps = min(len(up), len(down))
        difference = up[:steps] - down[:steps]
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
    axes[-1].set_xlabel("step")
    figure.suptitle(f"{MAZES[maze].title}, {MAZES[maze].env_id}, length {length}: what the memory cells hold")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def sweep(args: argparse.Namespace, results_path: Path, command: str) -> None:
    """Run what the results file does not hold yet, trainer by trainer, recording each run as it ends."""
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
                              f"{run.env_steps:,} env steps, {run.seconds:,.0f} s, "
                              f"{run.steps_per_second:,.0f} env steps/s", flush=True)
                    runs.append(SpanRun(**results["runs"][key]))
                if not any(run.solved for run in runs):
                    break  # a trainer stops at the first length it fails, on each maze


def span_table(runs: list[SpanRun]) -> list[str]:
    """Lengths x trainers x mazes: solved seeds per length and the longest solved, with the references as rows."""
    lengths = sorted({run.length for run in runs})
    lines = [
        "| maze | trainer | " + " | ".join(f"{length:,}" for length in lengths) + " | longest solved |",
        "|---|---|" + "---:|" * len(lengths) + "---:|",
    ]
    for maze_name, maze in MAZES.items():
        for agent_name in sorted({run.agent for run in runs if run.maze == maze_name}):
            cells, longest = [], "—"
            for length in lengths:
                group = [r for r in runs if (r.maze, r.agent, r.length) == (maze_name, agent_name, length)]
                solved = sum(run.solved for run in group)
                cells.append(f"{solved}/{len(group)}" if group else "")
                if solved:
                    longest = f"{length:,}"
            lines.append(f"| {maze.title} `{maze_name}` | {agent_name} | {' | '.join(cells)} | {longest} |")
        for reference in REFERENCES:
            if reference.maze == maze_name:
                lines.append(f"| {maze.title} `{maze_name}` | {reference.agent} (published) | "
                             + " | ".join("" for _ in lengths) + f" | {reference.length:,} |")
    return lines


def benchmark_memory(args: argparse.Namespace) -> str:
    """The sweep, then the tables, plot and memory trace of every recorded run; returns the markdown section."""
    torch.set_num_threads(1)
    results_path = Path(args.results)
    if not args.report_only:
        sweep(args, results_path, "python scripts/benchmark.py " + " ".join(sys.argv[1:]))
    results = read_results(results_path)
    runs = [SpanRun(**fields) for fields in results["runs"].values()]
    image_dir = Path(args.image_dir)
    plot_span(runs, image_dir / "memory_span.png")
    lines = [
        "## Memory span: the longest T-maze corridor each trainer solves",
        "",
        "Solved seeds per corridor length (N; Ni et al.'s L), on Bakker's T-mazes and on Ni et al.'s, beside the "
        "longest spans published (an empty cell: not run, because a shorter length failed or the sweep did not "
        "reach it):",
        "",
        *span_table(runs),
        "",
        "Every run:",
        "",
        "| maze | trainer | N | solved seeds | success per seed | median env steps (solved) | "
        "median training s (solved) | median env steps/s | budget per run (s) | curriculum stage reached (unsolved) |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    groups = sorted({(run.maze, run.agent, run.length) for run in runs})
    for maze, agent_name, length in groups:
        group = sorted((r for r in runs if (r.maze, r.agent, r.length) == (maze, agent_name, length)),
                       key=lambda r: r.seed)
        solved = [run for run in group if run.solved]
        steps = f"{statistics.median(r.env_steps for r in solved):,.0f}" if solved else "—"
        seconds = f"{statistics.median(r.seconds for r in solved):,.0f}" if solved else "—"
        rate = statistics.median(r.steps_per_second for r in group)
        budgets = "/".join(sorted({f"{r.max_seconds:,.0f}" for r in group}))
        stages = ", ".join(f"seed {r.seed}: {r.stage_length:,}" for r in group if r.stage_length is not None)
        lines.append(f"| {maze} | {agent_name} | {length} | {len(solved)}/{len(group)} | "
                     f"{', '.join(f'{r.success:.2f}' for r in group)} | {steps} | {seconds} | {rate:,.0f} | "
                     f"{budgets} | {stages} |")
    with_checkpoints = [r for r in runs if r.solved and r.checkpoint and (ROOT / r.checkpoint).exists()]
    if with_checkpoints:
        longest = max(with_checkpoints, key=lambda r: (r.length, not MAZES[r.maze].passive))
        agent = load_agent(ROOT / longest.checkpoint)
        trace = plot_cue_traces(agent, image_dir / "tmaze_memory_trace.png", longest.maze, longest.length)
        lines += ["", f"Cell states over one episode of the longest solved corridor ({MAZES[longest.maze].title}, "
                      f"N = {longest.length}, {longest.agent}, seed {longest.seed}):", "",
                  f"![memory trace](img/{trace.name})"]
    lines += [
        "",
        "![success rate against corridor length](img/memory_span.png)",
        "",
        "Each trainer's lengths in increasing order, stopping at the first length no seed solves; each run with "
        f"the trainer's shipped preset for the length (`rl_lstm/presets/<agent>.yaml`; where it holds a "
        "`curriculum`, training starts on shorter corridors, the stages' evaluations count as training time, and "
        "the task is evaluated once training reaches it), `torch.set_num_threads(1)`, "
        f"evaluated every {args.eval_every:,} env steps (Evolino: after the first generation past that) on "
        f"{args.eval_episodes} deterministic episodes seeded from {EVALUATION_SEED}; solved at success >= "
        f"{args.threshold}; training seconds exclude evaluations, and env steps/s is training env steps over "
        "training seconds. Sweeps that ran concurrently (one process per core) share the machine's two cores. "
        "The mazes: " + "; ".join(f"`{name}` {maze.title}, `{maze.env_id}`" for name, maze in MAZES.items())
        + f". The runs are recorded in `{shown(results_path)}`, made by:",
        "",
        *(f"- `{command}`" for command in results["commands"]),
        "",
        "References: " + "; ".join(reference.source for reference in REFERENCES) + ". " + REFERENCES_WITHOUT_FIGURES,
    ]
    return "\n".join(lines)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``memory`` benchmark."""
    parser = subparsers.add_parser(
        "memory", help="memory span: longest T-maze corridor solved by each trainer, Bakker's and Ni et al.'s mazes",
        description="Train each trainer on the active and passive T-mazes of Bakker and of Ni et al. at increasing "
        "corridor lengths until the first length no seed solves; write tables, a plot and a memory trace.",
    )
    parser.add_argument("--agents", nargs="+", default=["ppo", "reinforce", "evolino"])
    parser.add_argument("--mazes", nargs="+", choices=list(MAZES), default=list(MAZES),
                        help="active, passive: Bakker's (envs/tmaze.py); ni-active, ni-passive: Ni et al.'s "
                        "(envs/ni_tmaze.py)")
    parser.add_argument("--lengths", nargs="+", type=_positive_int, default=list(DEFAULT_LENGTHS))
    parser.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0 .. N-1 per length")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="training-time budget per run (s)")
    # No step limit by default: the 30 minutes are the budget (10^9 steps cut Evolino's runs at L = 10,000 after
    # 19 minutes, at 890k env steps/s).
    parser.add_argument("--max-timesteps", type=_positive_int, default=10**15, help="env-step budget per run")
    parser.add_argument("--eval-every", type=_positive_int, default=50_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=_positive_int, default=100, help="episodes per evaluation")
    parser.add_argument("--threshold", type=float, default=0.95, help="success rate that counts as solved")
    parser.add_argument("--image-dir", default=str(IMAGE_DIR), help="where the PNGs go")
    parser.add_argument("--results", default=str(RESULTS_FILE), help="JSON of recorded runs (read, then extended)")
    parser.add_argument("--checkpoint-dir", default=str(CHECKPOINT_DIR), help="where solved agents are saved")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: the tables, plot and trace from the runs the results file holds (e.g. "
                        "after merging runs recorded elsewhere with --results)")
    parser.set_defaults(run=benchmark_memory)
