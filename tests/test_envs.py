"""Behaviour every built-in environment shares, checked for each row of the registration table."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.oracle import make_oracle, run_oracle

ENV_IDS = envs.BUILTIN_ENV_IDS
VECTOR_COPIES = 8


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_env_passes_gymnasium_checker(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_native_vector_env_matches_sync_vector_env_step_for_step(env_id: str) -> None:
    native = gym.make_vec(env_id, num_envs=VECTOR_COPIES, vectorization_mode="vector_entry_point")
    sync = gym.make_vec(env_id, num_envs=VECTOR_COPIES, vectorization_mode="sync")
    assert native.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"]
    native_obs, _ = native.reset(seed=123)
    sync_obs, _ = sync.reset(seed=123)
    np.testing.assert_array_equal(native_obs, sync_obs)
    native.action_space.seed(7)
    episodes_ended = 0
    for step in range(3000):
        actions = native.action_space.sample()
        native_obs, native_rewards, native_terminated, native_truncated, native_info = native.step(actions)
        sync_obs, sync_rewards, sync_terminated, sync_truncated, sync_info = sync.step(actions)
        np.testing.assert_array_equal(native_obs, sync_obs, err_msg=f"observations differ at step {step}")
        # numpy rounds float32 scalar arithmetic (one env) and array arithmetic (a batch) apart by an ulp.
        np.testing.assert_allclose(native_rewards, sync_rewards, rtol=1e-9, atol=1e-12, err_msg=f"step {step}")
        np.testing.assert_array_equal(native_terminated, sync_terminated, err_msg=f"terminated differ at step {step}")
        np.testing.assert_array_equal(native_truncated, sync_truncated, err_msg=f"truncated differ at step {step}")
        if "is_success" in sync_info:
            ended = sync_info["_is_success"]
            np.testing.assert_array_equal(native_info["_is_success"], ended)
            np.testing.assert_array_equal(native_info["is_success"][ended], sync_info["is_success"][ended])
        episodes_ended += int(np.sum(native_terminated | native_truncated))
    assert episodes_ended >= VECTOR_COPIES, "the comparison must run through autoresets"
    native.close()
    sync.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_with_memory_reaches_expected_return(env_id: str) -> None:
    oracle = make_oracle(env_id, num_envs=1)
    returns = run_oracle(env_id, num_episodes=100, num_envs=25, seed=3)
    assert len(returns) == 100
    assert returns.mean() >= oracle.expected_return - 1e-9


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_render_draws_a_frame(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.min() < first.max(), "a frame must show something"
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_renders_every_copy(env_id: str) -> None:
    vector = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", render_mode="rgb_array")
    vector.reset(seed=0)
    frames = vector.render()
    assert len(frames) == 2 and all(frame.dtype == np.uint8 for frame in frames)
    vector.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_render_mode_is_a_value_error(env_id: str) -> None:
    with pytest.raises(ValueError, match="rgb_array"):
        gym.make(env_id, render_mode="ansi")


def test_vector_env_reset_accepts_one_seed_per_copy() -> None:
    vector = gym.make_vec("rl_lstm/CartPolePositionOnly-v0", num_envs=3, vectorization_mode="vector_entry_point")
    from_list, _ = vector.reset(seed=[5, 6, 7])
    from_int, _ = vector.reset(seed=5)
    np.testing.assert_array_equal(from_list, from_int)
    with pytest.raises(ValueError, match="one per env"):
        vector.reset(seed=[1, 2])


def test_vector_env_time_limit_truncates_at_max_episode_steps() -> None:
    vector = gym.make_vec("rl_lstm/PendulumPositionOnly-v0", num_envs=4, vectorization_mode="vector_entry_point")
    vector.reset(seed=0)
    for _ in range(199):
        _, _, terminated, truncated, _ = vector.step(vector.action_space.sample())
        assert not truncated.any() and not terminated.any()
    _, _, _, truncated, _ = vector.step(vector.action_space.sample())
    assert truncated.all()
    _, rewards, _, truncated, _ = vector.step(vector.action_space.sample())
    assert not truncated.any() and (rewards == 0).all(), "the autoreset step pays nothing"
