"""Training until a task's threshold, the measure of the benchmarks and the learning tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rl_lstm import solving
from rl_lstm.evaluation import EvaluationResult
from rl_lstm.results import read_run, read_scalars
from rl_lstm.solving import EvaluateUntilSolved, Task, train_until_solved

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


def test_a_run_told_to_stop_at_the_first_solve_stops_at_the_first_evaluation_that_meets_the_threshold() -> None:
    task = Task("rl_lstm/TMaze-v0", {"length": 2}, "return", -1e9)  # every evaluation meets it
    agent, progress = train_until_solved("ppo", task, 0, 100, eval_episodes=4, max_timesteps=10_000,
                                         stop_at_first_solve=True, n_steps=8, seq_len=8, batch_size=32, **TINY)
    assert progress.solved and agent.num_timesteps == progress.env_steps == progress.first_solved_steps < 10_000
    assert len(progress.evaluations) == 1


def test_a_run_trains_past_its_first_solve_to_the_end_of_the_budget_and_keeps_where_it_first_solved() -> None:
    task = Task("rl_lstm/TMaze-v0", {"length": 2}, "return", -1e9)  # every evaluation meets it
    agent, progress = train_until_solved("ppo", task, 0, 256, eval_episodes=4, max_timesteps=2_048,
                                         n_steps=8, seq_len=8, batch_size=32, **TINY)
    assert agent.num_timesteps == progress.env_steps >= 2_048, "trained to the end of the budget"
    assert progress.first_solved_steps == progress.evaluations[0][0] == 256
    assert progress.solved and not progress.collapsed
    assert [steps for steps, _ in progress.evaluations] == [256 * k for k in range(1, 9)]


def _evaluation(success_rate: float) -> EvaluationResult:
    successes = np.arange(100) < round(100 * success_rate)
    return EvaluationResult(np.where(successes, 4.0, -0.1), np.full(100, 11), successes)


def test_a_run_that_meets_the_threshold_and_then_loses_it_is_collapsed_not_solved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes = iter([_evaluation(rate) for rate in (0.5, 1.0, 1.0, 0.53)])
    monkeypatch.setattr(solving, "evaluate_agent", lambda *args, **kwargs: next(outcomes))
    progress = EvaluateUntilSolved(Task("rl_lstm/TMaze-v0", {}, "success", 0.95), 100, 100, float("inf"))
    agent = SimpleNamespace(num_timesteps=0, total_timesteps=400, curriculum=None,
                            logger=SimpleNamespace(record=lambda scalars, step: None))
    carry_on = []
    for steps in (100, 200, 300, 400):
        agent.num_timesteps = steps
        carry_on.append(progress(agent))
    assert carry_on == [True, True, True, False], "it trains on past the first solve and stops at the budget"
    assert progress.first_solved_steps == 200 and progress.env_steps == 400
    assert not progress.solved and progress.collapsed
    assert progress.last_evaluation.success_rate == pytest.approx(0.53)
