"""The fast paths of collection and update: each must compute what the plain version computes, bit for bit where the
arithmetic is the same (tests/test_cuda.py runs them on CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.wrappers.utils import RunningMeanStd
from torch.distributions import Categorical

import envs  # noqa: F401
from agents.ppo import RecurrentPPO
from rl_lstm.policies import MASKED_LOGIT, make_action_head
from rl_lstm.rollouts import NOISE_BLOCK, action_noise, draw_actions, sample_actions
from rl_lstm.vec_env import NormalizeObservation, NormalizeReward, RunningStatistics, find_wrapper

TINY = dict(num_envs=4, n_steps=16, seq_len=8, batch_size=32, n_epochs=2)


def test_categorical_log_prob_and_entropy_equal_torch_categoricals_with_padding_and_masks() -> None:
    torch.manual_seed(0)
    head = make_action_head(spaces.MultiDiscrete([3, 2]), latent_size=5, log_std_init=0.0)  # 2nd dimension padded
    latent = torch.randn(4, 6, 5)
    masks = torch.ones(4, 6, 5, dtype=torch.bool)
    masks[..., 1] = False  # the first dimension's second choice
    distribution = head(latent, masks)
    actions = distribution.sample()
    logits = head.linear(latent).masked_fill(~masks, MASKED_LOGIT)
    reference = [Categorical(logits=logits[..., :3]), Categorical(logits=logits[..., 3:])]
    expected_log_prob = sum(part.log_prob(actions[..., d]) for d, part in enumerate(reference))
    expected_entropy = sum(part.entropy() for part in reference)
    torch.testing.assert_close(distribution.log_prob(actions), expected_log_prob)
    torch.testing.assert_close(distribution.entropy(), expected_entropy)
    assert not (actions[..., 0] == 1).any(), "a masked choice was sampled"


@pytest.mark.parametrize("space", [spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,))], ids=["discrete", "box"])
def test_action_noise_drawn_for_a_block_of_steps_equals_the_noise_of_each_step(space: spaces.Space) -> None:
    head = make_action_head(space, latent_size=4, log_std_init=0.0)
    distribution = head(torch.randn(1, 5, 4))
    copies = np.arange(3, 8)
    block = action_noise(distribution, 12345, copies, np.arange(NOISE_BLOCK, 2 * NOISE_BLOCK))
    for step in (NOISE_BLOCK, NOISE_BLOCK + 1, 2 * NOISE_BLOCK - 1):
        assert torch.equal(block[step - NOISE_BLOCK], action_noise(distribution, 12345, copies, step))
        assert torch.equal(draw_actions(distribution, block[step - NOISE_BLOCK]),
                           sample_actions(distribution, 12345, copies, step))


def test_a_rollout_acts_with_the_noise_of_its_key_and_step() -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=3, env_kwargs={"length": 3}, **TINY)
    collector = agent.collector
    observations, _ = collector.reset_env(0)
    state = agent.policy.initial_state(4)
    starts = np.ones(4, dtype=bool)
    with torch.no_grad():
        for step in (0, 5, NOISE_BLOCK + 2, 1):  # crossing into another block and back
            actions, _, _, _ = collector.act(observations, state, starts, None, 99, step)
            distribution, _, _ = agent.policy.forward_sequence(observations[None], state, torch.ones(1, 4), None)
            assert torch.equal(actions, sample_actions(distribution, 99, collector.copies, step)[0])


@pytest.mark.parametrize("shape, dtype", [((8, 2), np.float32), ((8,), np.float64), ((64, 3, 2), np.float32)])
def test_running_statistics_equal_gymnasiums_bit_for_bit(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(0)
    reference, fast = RunningMeanStd(shape=shape[1:], dtype=dtype), RunningMeanStd(shape=shape[1:], dtype=dtype)
    fast = RunningStatistics.like(fast)
    for _ in range(200):
        batch = (rng.normal(size=shape) * 3 + 1).astype(dtype)
        reference.update(batch)
        fast.update(batch)
    assert np.array_equal(reference.mean, fast.mean) and np.array_equal(reference.var, fast.var)
    assert reference.count == fast.count and fast.mean.dtype == reference.mean.dtype


def test_training_envs_normalize_with_the_faster_statistics() -> None:
    agent = RecurrentPPO("rl_lstm/CartPolePositionOnly-v0", normalize_observations=True, normalize_rewards=True, **TINY)
    assert isinstance(find_wrapper(agent.env, NormalizeObservation).obs_rms, RunningStatistics)
    assert isinstance(find_wrapper(agent.env, NormalizeReward).return_rms, RunningStatistics)


def test_minibatch_weights_average_over_real_steps_and_normalized_advantages_are_standard() -> None:
    agent = RecurrentPPO("rl_lstm/CartPolePositionOnly-v0", normalize_advantage=True, **TINY)
    agent.learn(64, progress_bar=False)
    agent.buffer.prepare()
    for batch in agent.buffer.minibatches(32, agent.rng):
        valid = batch.valid
        torch.testing.assert_close(batch.weights.sum(), torch.tensor(1.0))
        assert (batch.weights[~valid] == 0).all()
        advantages = batch.normalized_advantages[valid]
        torch.testing.assert_close(advantages.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
        torch.testing.assert_close(advantages.std(unbiased=False), torch.tensor(1.0), atol=1e-3, rtol=0)
        assert batch.weights is batch.weights, "computed once per minibatch"
