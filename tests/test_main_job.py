"""The main job as a user runs it: `make train`'s command, in a fresh process, ends with its task solved.

Each test is one seed of ``python scripts/benchmark.py main-job`` (scripts/benchmark_main_job.py): the command
``rl-lstm train --seed SEED`` trains the full budget, then ``rl-lstm evaluate RUN --episodes 100`` evaluates the
checkpoint a user gets. Solved means solved by the final policy in both evaluations, not at a crossing on the way.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
benchmark_main_job = importlib.import_module("benchmark_main_job")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_the_main_job_ends_with_a_final_policy_that_solves_the_tmaze(seed: int, tmp_path: Path) -> None:
    """Budget 200k env steps (the main job's own); seeds 0-4 first met 95% at 50,176, 25,600, 25,600, 50,176 and
    75,776 env steps, and all five held it to the end: the budget (200,704 steps) is 2.65x the slowest.

    Measured with ``python scripts/benchmark.py main-job --seeds 0 1 2 3 4`` (docs/benchmarks.md, "The main job").
    """
    run = benchmark_main_job.run_main_job(seed, tmp_path)
    assert run.final["num_timesteps"] >= 200_000, "the main job trains its whole budget"
    assert run.solved, (
        f"seed {seed}: final success {run.final['success_rate']:.0%}, rl-lstm evaluate {run.evaluate_success:.0%}; "
        f"evaluations over training {run.evaluations}"
    )


def _arguments(benchmark: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    benchmark_main_job.add_parsers(parser.add_subparsers(dest="benchmark"))
    return parser.parse_args([benchmark, *argv, "--no-write"])


def test_the_main_job_benchmark_tabulates_each_seed_from_its_own_evaluations() -> None:
    args = _arguments("main-job", "--seeds", "3", "--jobs", "1", "--set", "timesteps=2048", "eval_every=1024",
                      "eval_episodes=4")
    section = args.run(args)
    (row,) = [line for line in section.splitlines() if line.startswith("| 3 |")]
    assert row.split(" | ")[1] in ("yes", "no") and "| 2,048 | " not in row.split(" | ")[2]
    assert "with `--set timesteps=2048 eval_every=1024 eval_episodes=4`" in section
    assert "`rl-lstm train --seed SEED --set timesteps=2048 eval_every=1024 eval_episodes=4`" in section


def test_the_trace_keeps_a_row_per_evaluation_and_says_how_often_the_decision_flipped() -> None:
    args = _arguments("main-job-trace", "--seed", "1", "--set", "timesteps=3072", "eval_every=1024",
                      "eval_episodes=4")
    section = args.run(args)
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 1,024", "| 2,048", "| 3,072"]
    assert all(len(row.split(" | ")) == len(benchmark_main_job.TRACE_COLUMNS) for row in rows)
    assert "The greedy junction decision was" in section
