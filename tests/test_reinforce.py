"""Recurrent REINFORCE: returns, the gradient through whole episodes, truncation, API and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs  # noqa: F401
from agents.reinforce import RecurrentReinforce, returns_to_go
from rl_lstm.cli import main
from rl_lstm.errors import ConfigError
from rl_lstm.logger import EpisodeStatistics

TINY = dict(num_envs=3, hidden_size=5, net_arch_pi=(), net_arch_vf=())


def test_returns_to_go_discount_within_each_episode_only() -> None:
    rewards = np.array([[1.0, 2.0], [0.0, 3.0], [4.0, 0.0]], dtype=np.float32)  # [T, B]
    valid = np.array([[True, True], [True, True], [True, False]])
    returns = returns_to_go(rewards, valid, gamma=0.5)
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 * 0 + 0.25 * 4, 0 + 0.5 * 4, 4])
    np.testing.assert_allclose(returns[:, 1], [2 + 0.5 * 3, 3, 0])


def _unrolled_loss(agent: RecurrentReinforce, batch, returns: np.ndarray) -> torch.Tensor:
    """The REINFORCE loss computed by hand: each episode alone, one step at a time, state carried forward."""
    total = torch.zeros(())
    episode_lengths = batch.valid.sum(axis=0)
    for episode, length in enumerate(episode_lengths):
        state = agent.policy.initial_state(1)
        for t in range(length):
            observation = torch.as_tensor(batch.observations[t, episode][None, None])  # [1, 1, F]
            starts = torch.tensor([[t == 0]])
            distribution, _, state = agent.policy.forward_sequence(observation, state, starts)
            log_prob = distribution.log_prob(torch.as_tensor(batch.actions[t, episode])[None, None])[0, 0]
            total = total - float(returns[t, episode]) * log_prob
    return total / episode_lengths.sum()


def _gradients(agent: RecurrentReinforce, loss: torch.Tensor) -> list[torch.Tensor]:
    agent.policy.zero_grad()
    loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in agent.policy.parameters()]


@pytest.mark.parametrize("core", ["lstm", "peephole"])
def test_gradient_equals_an_unrolled_hand_computation(core: str) -> None:
    agent = RecurrentReinforce(
        "rl_lstm/TMaze-v0",
        seed=2,
        env_kwargs={"length": 2},
        baseline="none",
        normalize_advantage=False,
        core=core,
        **TINY,
    )
    batch, _ = agent._collect_episodes(EpisodeStatistics())
    assert len(set(batch.valid.sum(axis=0))) > 1, "episodes of different lengths exercise the padding"
    returns = returns_to_go(batch.rewards, batch.valid, agent.config.gamma)
    loss, _ = agent._loss(batch, returns)
    by_padded_batch = _gradients(agent, loss)
    by_hand = _gradients(agent, _unrolled_loss(agent, batch, returns))
    for padded, hand in zip(by_padded_batch, by_hand):
        torch.testing.assert_close(padded, hand, atol=1e-6, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in by_hand)


def test_truncated_bptt_keeps_the_loss_but_cuts_the_gradient_through_time() -> None:
    full = RecurrentReinforce("rl_lstm/TMaze-v0", seed=0, env_kwargs={"length": 4}, baseline="none", **TINY)
    truncated = RecurrentReinforce(
        "rl_lstm/TMaze-v0", seed=0, env_kwargs={"length": 4}, baseline="none", bptt_truncation=1, **TINY
    )
    batch, _ = full._collect_episodes(EpisodeStatistics())
    returns = returns_to_go(batch.rewards, batch.valid, 0.99)
    full_loss, _ = full._loss(batch, returns)
    truncated_loss, _ = truncated._loss(batch, returns)
    torch.testing.assert_close(full_loss, truncated_loss)
    recurrent_weight = dict(full.policy.named_parameters())["actor_core.rnn.weight_hh_l0"]
    full_gradient = torch.autograd.grad(full_loss, recurrent_weight)[0]
    truncated_weight = dict(truncated.policy.named_parameters())["actor_core.rnn.weight_hh_l0"]
    truncated_gradient = torch.autograd.grad(truncated_loss, truncated_weight)[0]
    assert not torch.allclose(full_gradient, truncated_gradient)


def test_a_batch_is_one_complete_episode_per_env() -> None:
    agent = RecurrentReinforce("rl_lstm/TMaze-v0", seed=0, env_kwargs={"length": 3}, **TINY)
    statistics = EpisodeStatistics()
    batch, _ = agent._collect_episodes(statistics)
    lengths = batch.valid.sum(axis=0)
    assert batch.valid.shape[1] == 3 and (lengths >= 3).all()
    assert (batch.valid[: lengths.min()]).all(), "every episode starts at t = 0 and has no hole"
    assert statistics.episodes == 3, "only the batch's own episodes are logged"
    assert agent.num_timesteps == int(lengths.sum())


def test_save_load_and_predict_follow_the_shared_api(tmp_path) -> None:
    agent = RecurrentReinforce("rl_lstm/TMaze-v0", seed=1, env_kwargs={"length": 3}, baseline="mean", **TINY)
    agent.learn(200, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    loaded = RecurrentReinforce.load(tmp_path / "agent.pt")
    assert loaded.baseline_mean == agent.baseline_mean != 0.0
    observations = np.eye(3, dtype=np.float32)
    np.testing.assert_array_equal(
        agent.predict(observations, deterministic=True)[0], loaded.predict(observations, deterministic=True)[0]
    )


def test_train_command_runs_reinforce(tmp_path) -> None:
    code = main(
        [
            "train",
            "--agent",
            "reinforce",
            "--env",
            "rl_lstm/TMaze-v0",
            "--env-kwargs",
            "length=2",
            "--timesteps",
            "300",
            "--no-progress",
            "--set",
            f"runs_dir={tmp_path}",
            "eval_every=150",
            "eval_episodes=3",
            "checkpoint_every=150",
            "num_envs=4",
        ]
    )
    assert code == 0
    (run_dir,) = (tmp_path / "rl_lstm_TMaze-v0").iterdir()
    assert run_dir.name.startswith("reinforce_") and (run_dir / "checkpoints" / "best.pt").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"baseline": "critic"}, "baseline must be one of value, mean, none"),
        ({"bptt_truncation": 0}, "bptt_truncation must be >= 1"),
        ({"n_steps": 32}, "Did you mean"),
    ],
)
def test_bad_hyperparameters_are_config_errors(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RecurrentReinforce("rl_lstm/TMaze-v0", **{**TINY, **override})
