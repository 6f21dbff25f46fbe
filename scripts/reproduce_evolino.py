"""Supervised Evolino on the three tasks of the Evolino papers, each within a wall-clock budget.

    python scripts/reproduce_evolino.py                      # all three tasks, under 15 minutes
    python scripts/reproduce_evolino.py --sine-seconds 30 --waves 2 3 --no-write

1. a^n b^n c^n: evolve on n = 1..10 (next-symbol prediction), report the largest N such that every string with
   n = 1..N is predicted correctly (``envs.sequences.anbncn_largest_generalized_n``).
2. Mackey-Glass tau = 17: NRMSE84 over the task's 50 test runs.
3. Superimposed sines, 2..5 waves: NRMSE of the free-running test stretch (steps 400..699), and how many wave
   counts are learned (test NRMSE below ``LEARNED_NRMSE``, our threshold).

The time series are standardized with the training series' mean and standard deviation before training (a
learner's preprocessing, as Jaeger's tanh(x - 1) for Mackey-Glass); NRMSE is unchanged by it. The result table
goes into the ``evolino-reproduction`` section of docs/benchmarks.md. The papers' figures are not in our sources
(their full text could not be retrieved), so the table says so instead of quoting numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

import numpy as np
import torch
from benchmark import write_section

from agents.evolino_supervised import SupervisedEvolino, TrainingData
from envs.sequences import (
    ANBNCN_TRAIN_RANGE,
    SINE_WAVE_COUNTS,
    TimeSeriesTask,
    anbncn_largest_generalized_n,
    anbncn_sequence,
    anbncn_training_set,
    mackey_glass_task,
    superimposed_sines_task,
)

LEARNED_NRMSE = 0.1
"""A sine task counts as learned when its free-running test NRMSE is below this (OUR threshold)."""
PAPERS = "not available in our sources"

# Per task, the hyperparameters that differ from SupervisedEvolinoConfig's defaults (OURS, from short runs).
ANBNCN_HYPERPARAMS: dict[str, Any] = {"num_cells": 4, "init_scale": 0.1, "mutation_scale": 0.01, "burst_scale": 0.1}
MACKEY_GLASS_HYPERPARAMS: dict[str, Any] = {"fitness_horizon": 84, "fitness_starts": 10}
SINE_HYPERPARAMS: dict[str, Any] = {"fitness_horizon": 299}


def standardized(task: TimeSeriesTask) -> TimeSeriesTask:
    """The task with its series scaled to the training series' zero mean and unit variance (NRMSE unchanged)."""
    mean, std = float(task.train_series.mean()), float(task.train_series.std())
    return dataclasses.replace(
        task,
        train_series=(task.train_series - mean) / std,
        test_runs=(task.test_runs - mean) / std,
        target_variance=task.target_variance / std**2,
    )


def run_anbncn(seconds: float, seed: int, n_max: int) -> dict[str, Any]:
    """Evolve on a^n b^n c^n, n = 1..10; the largest n up to ``n_max`` generalized to."""
    evolino = SupervisedEvolino(seed=seed, **ANBNCN_HYPERPARAMS)
    history = evolino.learn(TrainingData.from_symbol_sequences(anbncn_training_set()), time_budget=seconds)
    # Every test string in one batched pass (zero padding after a string's end leaves its outputs unchanged),
    # then looked up by length: the same outputs as predicting each string alone from a fresh state.
    strings = [anbncn_sequence(n).inputs for n in range(1, n_max + 1)]
    padded = np.zeros((n_max, len(strings[-1]), strings[0].shape[1]))
    for index, inputs in enumerate(strings):
        padded[index, : len(inputs)] = inputs
    outputs = evolino.predict(padded)  # [n_max, 3 n_max + 1, 5]
    by_length = {len(inputs): outputs[index, : len(inputs)] for index, inputs in enumerate(strings)}
    largest = anbncn_largest_generalized_n(lambda inputs: by_length[len(inputs)], n_max)
    return {"history": history, "measure": largest}


def run_time_series(task: TimeSeriesTask, hyperparams: dict[str, Any], seconds: float, seed: int) -> dict[str, Any]:
    """Evolve on the task's training series; the test NRMSE of the best network running freely."""
    task = standardized(task)
    evolino = SupervisedEvolino(seed=seed, **hyperparams)
    history = evolino.learn(TrainingData.from_time_series(task), time_budget=seconds)
    predictions = evolino.generate(task.test_runs[:, : task.test_warmup], task.free_run_steps)
    return {"history": history, "measure": task.score(predictions)}


def row(task: str, measure: str, result: dict[str, Any], ours: str, hyperparams: dict[str, Any]) -> str:
    """One table row: the task, what is measured, our figure, the papers', generations, seconds, settings."""
    last = result["history"][-1]
    settings = ", ".join(f"{key}={value}" for key, value in hyperparams.items())
    return (
        f"| {task} | {measure} | {ours} | {PAPERS} | {int(last['generation'])} | {last['seconds']:.0f} | "
        f"{last['best_error']:.2e} | {settings} |"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the three tasks with fixed seeds and budgets, print the table and write it to docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anbncn-seconds", type=float, default=60.0, help="wall-clock budget of a^n b^n c^n")
    parser.add_argument("--mackey-glass-seconds", type=float, default=240.0, help="budget of Mackey-Glass")
    parser.add_argument("--sine-seconds", type=float, default=130.0, help="budget of each sine task")
    parser.add_argument("--waves", type=int, nargs="+", default=list(SINE_WAVE_COUNTS), help="sine wave counts")
    parser.add_argument("--n-max", type=int, default=1000, help="largest a^n b^n c^n n tested for generalization")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = " ".join(["python scripts/reproduce_evolino.py", *(argv if argv is not None else sys.argv[1:])])
    start = time.perf_counter()

    rows = []
    result = run_anbncn(args.anbncn_seconds, args.seed, args.n_max)
    train = f"{ANBNCN_TRAIN_RANGE.start}..{ANBNCN_TRAIN_RANGE.stop - 1}"
    measure = f"largest n generalized to (trained on n = {train}, tested up to {args.n_max})"
    ours = f"{result['measure']}{' (every n tested)' if result['measure'] == args.n_max else ''}"
    rows.append(row("a^n b^n c^n", measure, result, ours, ANBNCN_HYPERPARAMS))
    print(rows[-1], flush=True)

    result = run_time_series(mackey_glass_task(), MACKEY_GLASS_HYPERPARAMS, args.mackey_glass_seconds, args.seed)
    rows.append(
        row("Mackey-Glass tau=17", "NRMSE84 (50 runs)", result, f"{result['measure']:.3g}", MACKEY_GLASS_HYPERPARAMS)
    )
    print(rows[-1], flush=True)

    learned = []
    for waves in args.waves:
        result = run_time_series(superimposed_sines_task(waves), SINE_HYPERPARAMS, args.sine_seconds, args.seed)
        if result["measure"] < LEARNED_NRMSE:
            learned.append(waves)
        measure = "NRMSE, free run over steps 400..699"
        rows.append(row(f"{waves} superimposed sines", measure, result, f"{result['measure']:.3g}", SINE_HYPERPARAMS))
        print(rows[-1], flush=True)

    body = "\n".join(
        [
            "## Supervised Evolino on the papers' tasks",
            "",
            f"Seed {args.seed}; budgets: a^n b^n c^n {args.anbncn_seconds:.0f} s, Mackey-Glass "
            f"{args.mackey_glass_seconds:.0f} s, each sine task {args.sine_seconds:.0f} s; one thread. "
            "Training error: the best network's fitness (NRMSE): for a^n b^n c^n of its teacher-forced "
            "regression, for Mackey-Glass and the sines of its free runs on the training series. Settings: those "
            "beside `SupervisedEvolinoConfig`'s defaults.",
            "",
            "| task | measure | ours | papers | generations | seconds | training error | settings |",
            "|---|---|---:|---|---:|---:|---:|---|",
            *rows,
            "",
            f"Sine wave counts learned (test NRMSE < {LEARNED_NRMSE}, our threshold): "
            f"**{len(learned)} of {len(args.waves)}**{' (' + ', '.join(map(str, learned)) + ')' if learned else ''}. "
            f"Total time {time.perf_counter() - start:.0f} s.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("evolino-reproduction", body, command)
        print("wrote the evolino-reproduction section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
