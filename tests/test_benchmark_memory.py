"""The memory-span sweep (scripts/benchmark_memory.py): stopping, resuming, both protocols' mazes, table and plot."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.ni_tmaze import NiActiveTMazeEnv, NiPassiveTMazeEnv, NiTMazeOracle
from envs.tmaze import EAST, TMazeEnv
from rl_lstm.evaluation import MemoryTrace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
benchmark_memory = importlib.import_module("benchmark_memory")
SpanRun = benchmark_memory.SpanRun


def parse(*options: str) -> argparse.Namespace:
    """The memory benchmark's options as its own parser reads them."""
    parser = argparse.ArgumentParser()
    benchmark_memory.add_parsers(parser.add_subparsers())
    return parser.parse_args(["memory", *options])


def fake_training(solves: dict[tuple[str, str], int], calls: list[tuple[str, str, int, int]]):
    """A stand-in for train_at_length: solved up to the longest length ``solves`` gives the trainer and maze."""

    def train(agent_name: str, maze: str, length: int, seed: int, args: argparse.Namespace) -> SpanRun:
        calls.append((agent_name, maze, length, seed))
        solved = length <= solves[(agent_name, maze)]
        return SpanRun(agent_name, maze, length, seed, solved, 1.0 if solved else 0.5, 100 * length, 2.0,
                       args.max_seconds)

    return train


def test_mazes_of_both_protocols_are_offered_and_the_recorded_names_kept() -> None:
    args = parse()
    assert args.mazes == ["active", "passive", "ni-active", "ni-passive"]
    assert args.lengths[0] == 10 and args.lengths[-1] == 100_000
    assert {name: maze.env_id for name, maze in benchmark_memory.MAZES.items()} == {
        "active": "rl_lstm/TMaze-v0", "passive": "rl_lstm/PassiveTMaze-v0",
        "ni-active": "rl_lstm/NiActiveTMaze-v0", "ni-passive": "rl_lstm/NiPassiveTMaze-v0",
    }


def test_runs_recorded_before_steps_per_second_still_load() -> None:
    results = json.loads((ROOT / "docs" / "memory_span.json").read_text())
    for key, fields in results["runs"].items():
        run = SpanRun(**fields)
        assert run.key == key and run.maze in benchmark_memory.MAZES
    old = {"agent": "ppo", "maze": "passive", "length": 10, "seed": 0, "solved": True, "success": 1.0,
           "env_steps": 50_000, "seconds": 2.5, "max_seconds": 300.0, "checkpoint": None}
    assert SpanRun(**old).steps_per_second == 20_000


def test_sweep_stops_each_trainer_at_its_first_failed_length_on_each_maze(tmp_path, monkeypatch) -> None:
    solves = {("ppo", "passive"): 100, ("ppo", "ni-passive"): 0,
              ("evolino", "passive"): 10**6, ("evolino", "ni-passive"): 100}
    calls = []
    monkeypatch.setattr(benchmark_memory, "train_at_length", fake_training(solves, calls))
    args = parse("--agents", "ppo", "evolino", "--mazes", "passive", "ni-passive",
                 "--lengths", "1000", "10", "100", "10000", "--seeds", "2")
    benchmark_memory.sweep(args, tmp_path / "runs.json", "the command")
    tried = {pair: sorted({length for agent, maze, length, _ in calls if (agent, maze) == pair}) for pair in solves}
    assert tried == {("ppo", "passive"): [10, 100, 1000], ("ppo", "ni-passive"): [10],
                     ("evolino", "passive"): [10, 100, 1000, 10000], ("evolino", "ni-passive"): [10, 100, 1000]}
    assert len(calls) == 2 * sum(len(lengths) for lengths in tried.values())  # both seeds of every length tried


def test_one_solved_seed_lets_the_trainer_go_on(tmp_path, monkeypatch) -> None:
    calls = []

    def train(agent_name: str, maze: str, length: int, seed: int, args: argparse.Namespace) -> SpanRun:
        calls.append(length)
        solved = length == 10 or seed == 1
        return SpanRun(agent_name, maze, length, seed, solved, float(solved), 1000, 1.0, args.max_seconds)

    monkeypatch.setattr(benchmark_memory, "train_at_length", train)
    args = parse("--agents", "reinforce", "--mazes", "ni-active", "--lengths", "10", "20", "50", "--seeds", "2")
    benchmark_memory.sweep(args, tmp_path / "runs.json", "the command")
    assert calls == [10, 10, 20, 20, 50, 50]


def test_sweep_resumes_from_the_results_file(tmp_path, monkeypatch) -> None:
    results_path = tmp_path / "runs.json"
    args = parse("--agents", "ppo", "--mazes", "ni-passive", "--lengths", "10", "20", "--seeds", "2")
    calls = []
    monkeypatch.setattr(benchmark_memory, "train_at_length", fake_training({("ppo", "ni-passive"): 20}, calls))
    benchmark_memory.sweep(args, results_path, "first command")
    assert len(calls) == 4
    results = json.loads(results_path.read_text())
    assert results["runs"]["ppo/ni-passive/20/1"]["steps_per_second"] == 1000.0  # 2,000 env steps in 2 s
    del results["runs"]["ppo/ni-passive/20/1"]  # as if the sweep had been stopped during that run
    results_path.write_text(json.dumps(results))
    calls.clear()
    benchmark_memory.sweep(args, results_path, "second command")
    assert calls == [("ppo", "ni-passive", 20, 1)]
    results = json.loads(results_path.read_text())
    assert len(results["runs"]) == 4 and results["commands"] == ["first command", "second command"]


def recorded_runs() -> list[SpanRun]:
    """Runs on all four mazes, three lengths each, as a sweep of two trainers records them."""
    runs = []
    for maze in benchmark_memory.MAZES:
        for agent_name, longest in (("ppo", 100), ("evolino", 1000)):
            for length in (10, 100, 1000):
                runs += [SpanRun(agent_name, maze, length, seed, length <= longest, 1.0 if length <= longest else 0.5,
                                 10 * length, 1.0, 60.0) for seed in range(2)]
    return runs


def test_plot_marks_the_published_spans_on_the_passive_panels(tmp_path) -> None:
    path = tmp_path / "img" / "memory_span.png"
    figure = benchmark_memory.plot_span(recorded_runs(), path)
    assert path.stat().st_size > 0
    panels = figure.get_axes()
    assert len(panels) == 4
    for maze in benchmark_memory.MAZES.values():
        (ax,) = [ax for ax in panels if maze.env_id in ax.get_title()]
        vertical = {line.get_xdata()[0] for line in ax.get_lines() if len(set(line.get_xdata())) == 1}
        labels = " ".join(text.get_text() for text in ax.texts)
        assert ax.get_xscale() == "log"
        if maze.passive:
            assert vertical == {1500, 10_000}
            assert "Ni et al. 2023: 1,500" in labels and "AMAGO 2024: 10,000" in labels
        else:
            assert vertical == set() and labels == ""
        assert ax.get_xlim()[1] > 10_000  # the references lie inside the shared length axis


def test_span_table_crosses_lengths_trainers_and_mazes_with_the_references() -> None:
    lines = benchmark_memory.span_table(recorded_runs())
    assert lines[0] == "| maze | trainer | 10 | 100 | 1,000 | longest solved |"
    assert "| passive T-maze (Bakker) `passive` | ppo | 2/2 | 2/2 | 0/2 | 100 |" in lines
    assert "| active T-maze (Ni et al.) `ni-active` | evolino | 2/2 | 2/2 | 2/2 | 1,000 |" in lines
    references = [line for line in lines if "(published)" in line]
    assert len(references) == 2 and all("`ni-passive`" in line for line in references)
    assert references[0].endswith("| 1,500 |") and references[1].endswith("| 10,000 |")


def ni_oracle(length: int):
    """Ni et al.'s scripted agent for one env, as ``actions(observation, step)``."""
    oracle = NiTMazeOracle(1, length=length)
    return lambda observation, step: oracle.act(observation[None], [step == 0])[0]


def play(env: object, actions: object, seed: int) -> np.ndarray:
    """The observations of one episode of ``env``, the first at reset, acting by ``actions(observation, step)``."""
    observation, _ = env.reset(seed=seed)
    observations = [observation]
    for step in range(1000):
        observation, _, terminated, truncated, _ = env.step(actions(observation, step))
        if terminated or truncated:
            break
        observations.append(observation)
    return np.array(observations, dtype=np.float64)


@pytest.mark.parametrize("seed", range(4))
def test_the_cue_is_read_in_each_protocols_coding_where_it_is_shown(seed: int) -> None:
    mazes = benchmark_memory.MAZES
    bakker = TMazeEnv(length=5)
    assert benchmark_memory.shown_cue(mazes["active"], play(bakker, lambda _, __: EAST, seed)) == (
        0, "up" if bakker.task.cue_is_up[0] else "down")
    for name, env, cue_step in (("ni-passive", NiPassiveTMazeEnv(length=5), 0),
                                ("ni-active", NiActiveTMazeEnv(length=5), 1)):
        observations = play(env, ni_oracle(5), seed)
        arm = "up" if env.task.goal_y[0] == 1 else "down"
        assert benchmark_memory.shown_cue(mazes[name], observations) == (cue_step, arm)
    assert benchmark_memory.shown_cue(mazes["ni-active"], np.zeros((7, 2))) is None  # never stepped to the cue


def test_cue_trace_plot_draws_ni_active_episodes(tmp_path, monkeypatch) -> None:
    def record_memory(agent: object, seed: int, max_steps: int) -> MemoryTrace:
        observations = play(NiActiveTMazeEnv(length=5), ni_oracle(5), seed)
        held = np.cumsum(observations[:, 1] * (observations[:, 0] == 0))  # a cell that keeps the cue once seen
        return MemoryTrace("rl_lstm/NiActiveTMaze-v0", observations, np.stack([held, np.ones_like(held)], axis=1),
                           np.zeros(len(observations)))

    monkeypatch.setattr(benchmark_memory, "record_memory", record_memory)
    path = benchmark_memory.plot_cue_traces(None, tmp_path / "trace.png", "ni-active", 5)
    assert path.stat().st_size > 0


def test_a_tiny_real_sweep_on_ni_passive_writes_its_run_plot_and_trace(tmp_path) -> None:
    results = tmp_path / "memory_span.json"
    completed = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "memory", "--agents", "evolino", "--mazes", "ni-passive",
         "--lengths", "2", "--seeds", "1", "--max-seconds", "20", "--results", str(results),
         "--image-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path), "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    (run,) = json.loads(results.read_text())["runs"].values()
    assert run["maze"] == "ni-passive" and run["length"] == 2 and run["steps_per_second"] > 0
    assert "median env steps/s" in completed.stdout
    assert run["solved"] and (tmp_path / "memory_span.png").exists() and (tmp_path / "tmaze_memory_trace.png").exists()


def test_report_only_trains_nothing_and_draws_the_recorded_runs(tmp_path, monkeypatch) -> None:
    results_path = tmp_path / "runs.json"
    runs = recorded_runs()
    results_path.write_text(json.dumps({"runs": {run.key: benchmark_memory.asdict(run) for run in runs},
                                        "commands": ["the sweep"]}))

    def no_training(*_args) -> SpanRun:
        raise AssertionError("--report-only must not train")

    monkeypatch.setattr(benchmark_memory, "train_at_length", no_training)
    args = parse("--report-only", "--agents", "ppo", "--lengths", "100000", "--results", str(results_path),
                 "--image-dir", str(tmp_path))
    section = benchmark_memory.benchmark_memory(args)
    assert "| maze | trainer | 10 | 100 | 1,000 | longest solved |" in section  # the recorded lengths, not --lengths
    assert (tmp_path / "memory_span.png").exists()
    assert json.loads(results_path.read_text())["commands"] == ["the sweep"]  # the report is not a run's command


def test_an_unsolved_run_records_the_curriculum_stage_it_reached(tmp_path) -> None:
    """PPO's Ni passive preset trains L = 30 through L = 10 and 20; one second of training ends on the first stage."""
    args = parse("--max-seconds", "1", "--eval-episodes", "2", "--checkpoint-dir", str(tmp_path))
    run = benchmark_memory.train_at_length("ppo", "ni-passive", 30, 0, args)
    assert not run.solved and run.stage_length == 10
    assert "seed 0: 10" in benchmark_memory.benchmark_memory(parse("--report-only", "--results", str(
        _results_file(tmp_path, run)), "--image-dir", str(tmp_path)))


def _results_file(tmp_path: Path, run: SpanRun) -> Path:
    """A results file holding ``run`` alone."""
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"runs": {run.key: benchmark_memory.asdict(run)}, "commands": ["the sweep"]}))
    return path
