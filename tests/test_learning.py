"""Recurrent PPO learns the memory tasks, with small budgets and fixed seeds; a memoryless policy cannot.

Each pair runs the same preset and budget with the LSTM core and with the feed-forward ``mlp`` core, so
the threshold measures memory, not luck or reward shaping. Longer runs live in scripts/benchmark.py.
"""

from __future__ import annotations

import pytest

from agents import agent_class
from rl_lstm.config import preset
from rl_lstm.evaluation import evaluate_agent

pytestmark = pytest.mark.slow


def _train_and_evaluate(env_id: str, timesteps: int, seed: int, agent: str = "ppo", **overrides: object):
    env_kwargs = overrides.get("env_kwargs") or {}
    trainer = agent_class(agent)(env_id, seed=seed, **{**preset(agent, env_id, env_kwargs), **overrides})
    trainer.learn(timesteps, progress_bar=False)
    return evaluate_agent(trainer, num_episodes=100, seed=123)


def test_ppo_solves_the_tmaze_of_length_10() -> None:
    result = _train_and_evaluate("rl_lstm/TMaze-v0", 60_000, seed=1, env_kwargs={"length": 10})
    assert result.success_rate >= 0.95


def test_feed_forward_policy_cannot_solve_the_tmaze() -> None:
    result = _train_and_evaluate(
        "rl_lstm/TMaze-v0", 60_000, seed=1, env_kwargs={"length": 10}, core="mlp", core_kwargs={}
    )
    assert result.success_rate <= 0.75, "without memory the cue is a coin flip at the junction"


def test_ppo_solves_repeat_previous_easy() -> None:
    result = _train_and_evaluate("rl_lstm/RepeatPreviousEasy-v0", 100_000, seed=0)
    assert result.mean_return >= 0.9  # at least 95% of the answers right


def test_feed_forward_policy_cannot_solve_repeat_previous_easy() -> None:
    result = _train_and_evaluate("rl_lstm/RepeatPreviousEasy-v0", 100_000, seed=0, core="mlp")
    assert result.mean_return <= 0.0, "without memory the suit 4 cards back is a guess among 4"


def test_reinforce_solves_the_tmaze_of_length_10() -> None:
    result = _train_and_evaluate("rl_lstm/TMaze-v0", 400_000, seed=1, agent="reinforce", env_kwargs={"length": 10})
    assert result.success_rate >= 0.95


def test_reinforce_with_a_feed_forward_policy_cannot_solve_the_tmaze() -> None:
    result = _train_and_evaluate(
        "rl_lstm/TMaze-v0", 400_000, seed=1, agent="reinforce", env_kwargs={"length": 10}, core="mlp", core_kwargs={}
    )
    assert result.success_rate <= 0.75


def test_reinforce_solves_repeat_first_easy() -> None:
    result = _train_and_evaluate("rl_lstm/RepeatFirstEasy-v0", 400_000, seed=2, agent="reinforce")
    assert result.mean_return >= 0.9  # at least 95% of the answers right


# The passive T-maze at length 50 (the agent is carried; only its junction turn counts): with the shipped presets
# (gamma 0, chunks aligned with episodes for PPO) every seed of the preset sweep solved it within 77k (PPO) and
# 326k (REINFORCE) env steps; the budgets leave room above that. Without memory the turn is a coin flip.
@pytest.mark.parametrize(("agent", "timesteps"), [("ppo", 200_000), ("reinforce", 600_000)])
def test_gradient_trainers_solve_the_passive_tmaze_of_length_50(agent: str, timesteps: int) -> None:
    result = _train_and_evaluate("rl_lstm/PassiveTMaze-v0", timesteps, seed=0, agent=agent, env_kwargs={"length": 50})
    assert result.success_rate >= 0.95


@pytest.mark.parametrize(("agent", "timesteps"), [("ppo", 200_000), ("reinforce", 600_000)])
def test_feed_forward_policies_cannot_solve_the_passive_tmaze(agent: str, timesteps: int) -> None:
    result = _train_and_evaluate(
        "rl_lstm/PassiveTMaze-v0", timesteps, seed=0, agent=agent, env_kwargs={"length": 50}, core="mlp",
        core_kwargs={},
    )
    assert result.success_rate <= 0.75, "without memory the cue is a coin flip at the junction"
