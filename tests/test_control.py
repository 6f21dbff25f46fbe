"""Position-only CartPole and Pendulum follow gymnasium's own dynamics with the velocities removed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)

CASES = [
    ("CartPole-v1", "rl_lstm/CartPolePositionOnly-v0", [0, 2], 0.0),
    ("Pendulum-v1", "rl_lstm/PendulumPositionOnly-v0", [0, 1], 1e-9),
]


@pytest.mark.parametrize(("gymnasium_id", "env_id", "position_indices", "reward_rtol"), CASES)
def test_position_only_env_equals_gymnasium_env_without_velocities(
    gymnasium_id: str, env_id: str, position_indices: list[int], reward_rtol: float
) -> None:
    reference = gym.make(gymnasium_id)
    ours = gym.make(env_id)
    reference.action_space.seed(0)
    steps = 0
    for episode in range(20):
        reference_obs, _ = reference.reset(seed=episode)
        our_obs, _ = ours.reset(seed=episode)
        np.testing.assert_array_equal(our_obs, reference_obs[position_indices])
        done = False
        while not done:
            action = reference.action_space.sample()
            reference_obs, reference_reward, reference_terminated, reference_truncated, _ = reference.step(action)
            our_obs, our_reward, our_terminated, our_truncated, _ = ours.step(action)
            steps += 1
            np.testing.assert_array_equal(our_obs, reference_obs[position_indices])
            # Pendulum's float32 torque cost rounds an ulp apart between numpy scalars and arrays.
            assert our_reward == pytest.approx(reference_reward, rel=reward_rtol, abs=0.0)
            assert (our_terminated, our_truncated) == (reference_terminated, reference_truncated)
            done = reference_terminated or reference_truncated
    assert steps > 300, "the comparison must cover many steps"


@pytest.mark.parametrize("env_id", ["rl_lstm/CartPolePositionOnly-v0", "rl_lstm/PendulumPositionOnly-v0"])
def test_observation_hides_the_velocities(env_id: str) -> None:
    assert gym.make(env_id).observation_space.shape == (2,)


def test_noise_perturbs_observations_but_not_dynamics() -> None:
    clean = gym.make("rl_lstm/CartPolePositionOnly-v0")
    noisy = gym.make("rl_lstm/CartPolePositionOnly-v0", noise_std=0.05)
    clean_obs, _ = clean.reset(seed=4)
    noisy_obs, _ = noisy.reset(seed=4)
    differences = [noisy_obs - clean_obs]
    for action in [0, 1, 1, 0, 1, 0, 0, 1] * 4:
        clean_obs, *_ = clean.step(action)
        noisy_obs, *_ = noisy.step(action)
        differences.append(noisy_obs - clean_obs)
        np.testing.assert_array_equal(clean.unwrapped.task.state, noisy.unwrapped.task.state)
    assert 0.02 < np.std(differences) < 0.1


@pytest.mark.parametrize("noise_std", [-0.1, float("nan"), "loud"])
def test_bad_noise_is_a_value_error(noise_std: object) -> None:
    with pytest.raises(ValueError, match="noise_std must be a finite number >= 0"):
        gym.make("rl_lstm/PendulumPositionOnly-v0", noise_std=noise_std)
