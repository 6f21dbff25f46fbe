"""Training until a task's threshold, the measure of the benchmarks and the learning tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rl_lstm.results import read_run, read_scalars
from rl_lstm.solving import Task, train_until_solved

TINY = {"num_envs": 4, "hidden_size": 8}


def test_a_run_stops_at_the_budget_with_a_last_evaluation_and_keeps_a_run_folder(tmp_path: Path) -> None:
    task = Task("rl_lstm/TMaze-v0", {"length": 2}, "success", 1.01)  # a bar no run reaches: it ends at the budget
    agent, progress = train_until_solved("reinforce", task, 0, 500, eval_episodes=4, max_timesteps=1_500,
                                         run_dir=tmp_path / "run", **TINY)
    assert not progress.solved and agent.num_timesteps >= 1_500 and progress.env_steps == agent.num_timesteps
    assert progress.last_evaluation is not None and progress.last_evaluation.num_episodes == 4
    run = read_run(tmp_path / "run")  # what rl-lstm plot and compare read
    assert (run.agent, run.task, run.seed) == ("reinforce", "rl_lstm/TMaze-v0 length=2", 0)
    steps, values = read_scalars(tmp_path / "run", "eval/mean_reward")
    assert len(steps) >= 3 and steps[-1] == agent.num_timesteps
    assert values[-1] == np.float32(progress.last_evaluation.mean_return)  # TensorBoard keeps float32


def test_a_run_stops_at_the_first_evaluation_that_meets_the_threshold() -> None:
    task = Task("rl_lstm/TMaze-v0", {"length": 2}, "return", -1e9)  # every evaluation meets it
    agent, progress = train_until_solved("ppo", task, 0, 100, eval_episodes=4, max_timesteps=10_000,
                                         n_steps=8, seq_len=8, batch_size=32, **TINY)
    assert progress.solved and agent.num_timesteps == progress.env_steps < 10_000
