"""Behaviour of the card-recall tasks (RepeatPrevious, RepeatFirst, CountRecall) at every difficulty."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import recall
from envs.oracle import run_oracle
from envs.recall import CountRecallEnv, RepeatFirstEnv, RepeatPreviousEnv

RECALL_IDS = [env.id for env in envs.BUILTIN_ENVS if env.module == "envs.recall"]
REPEAT_IDS = [env_id for env_id in RECALL_IDS if "Repeat" in env_id]
NUM_ENVS = 8
Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def episode_returns(env_id: str, policy: Policy, num_episodes: int, num_envs: int = 25) -> np.ndarray:
    """The returns of the first ``num_episodes`` episodes of ``policy`` on the native vector env."""
    vector_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    rng = np.random.default_rng(0)
    observations, _ = vector_env.reset(seed=0)
    running = np.zeros(num_envs)
    returns: list[float] = []
    while len(returns) < num_episodes:
        observations, rewards, terminated, truncated, _ = vector_env.step(policy(observations, rng))
        running += rewards  # the autoreset step after an episode has reward 0
        done = terminated | truncated
        returns.extend(running[done].tolist())
        running[done] = 0.0
    vector_env.close()
    return np.asarray(returns[:num_episodes])


def num_answers(env_id: str) -> int:
    return int(gym.make(env_id).action_space.n)


@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_single_env_passes_gymnasium_env_checker(env_id: str) -> None:
    check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)


@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_native_vector_env_equals_sync_vector_env_through_autoresets(env_id: str) -> None:
    native = gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="vector_entry_point")
    sync = gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="sync")
    native_observations, _ = native.reset(seed=7)
    sync_observations, _ = sync.reset(seed=7)
    np.testing.assert_array_equal(native_observations, sync_observations)
    rng = np.random.default_rng(1)
    n = native.single_action_space.n
    episodes_ended = 0
    for _ in range(2500):
        actions = rng.integers(0, n, size=NUM_ENVS)
        native_step = native.step(actions)
        sync_step = sync.step(actions)
        for native_part, sync_part in zip(native_step[:4], sync_step[:4]):
            np.testing.assert_array_equal(native_part, sync_part)
        np.testing.assert_array_equal(native_step[4].get("is_success"), sync_step[4].get("is_success"))
        episodes_ended += int(native_step[2].sum())
    native.close()
    sync.close()
    assert episodes_ended >= 3 * NUM_ENVS


@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_oracle_returns_exactly_one_in_every_episode(env_id: str) -> None:
    returns = run_oracle(env_id, num_episodes=50, num_envs=25)
    assert len(returns) == 50
    assert np.all(returns == 1.0)


@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_random_answers_return_far_below_one_and_within_bounds(env_id: str) -> None:
    n = num_answers(env_id)
    returns = episode_returns(env_id, lambda observations, rng: rng.integers(0, n, size=len(observations)), 50)
    assert np.all((returns >= -1.0) & (returns <= 1.0))
    # Guessing one of n answers is right about 1/n of the time: the expected return is 2/n - 1 <= -0.5.
    assert returns.mean() < -0.3


@pytest.mark.parametrize("env_id", REPEAT_IDS)
def test_answering_the_current_card_without_memory_cannot_reach_one(env_id: str) -> None:
    returns = episode_returns(env_id, lambda observations, rng: observations.argmax(axis=1), 50)
    assert returns.max() < 0.5
    assert returns.mean() < 0.0


@pytest.mark.parametrize("difficulty, k, scored_steps", [("easy", 4, 47), ("medium", 32, 71), ("hard", 64, 91)])
def test_repeat_previous_rewards_exactly_the_suit_shown_k_steps_back(
    difficulty: str, k: int, scored_steps: int
) -> None:
    env = RepeatPreviousEnv(difficulty=difficulty)
    observation, _ = env.reset(seed=3)
    rng = np.random.default_rng(3)
    suits = [int(observation.argmax())]
    terminated, step = False, 0
    while not terminated:
        due = suits[step - k] if step >= k else None
        action = due if due is not None and rng.random() < 0.5 else int(rng.integers(4))
        observation, reward, terminated, truncated, _ = env.step(action)
        assert not truncated
        if due is None:
            assert reward == 0.0
        else:
            assert reward == pytest.approx(1 / scored_steps if action == due else -1 / scored_steps, rel=1e-12)
        suits.append(int(observation.argmax()))
        step += 1
    assert step == 52 * {"easy": 1, "medium": 2, "hard": 3}[difficulty] - 1


def test_repeat_first_rewards_exactly_the_first_suit() -> None:
    env = RepeatFirstEnv(difficulty="easy")
    observation, _ = env.reset(seed=4)
    first_suit = int(observation.argmax())
    rng = np.random.default_rng(4)
    terminated = False
    while not terminated:
        action = int(rng.integers(4))
        observation, reward, terminated, _, _ = env.step(action)
        assert (reward > 0) == (action == first_suit)
        assert abs(reward) == pytest.approx(1 / 51, rel=1e-12)


@pytest.mark.parametrize("difficulty, num_values", [("easy", 2), ("medium", 4), ("hard", 13)])
def test_count_recall_rewards_exactly_the_count_of_the_query_value_dealt_so_far(
    difficulty: str, num_values: int
) -> None:
    env = CountRecallEnv(difficulty=difficulty)
    observation, _ = env.reset(seed=5)
    rng = np.random.default_rng(5)
    dealt_counts = np.zeros(num_values, dtype=int)
    terminated = False
    while not terminated:
        dealt, query = observation.reshape(2, num_values).argmax(axis=1)
        dealt_counts[dealt] += 1
        due = int(dealt_counts[query])
        action = due if rng.random() < 0.5 else int(rng.integers(env.action_space.n))
        observation, reward, terminated, _, _ = env.step(action)
        assert (reward > 0) == (action == due)
    # All cards but the last were dealt, so some value was dealt in full: its count is the largest answer.
    assert dealt_counts.max() == env.action_space.n - 1


@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_observations_are_one_hot_codings_of_the_shown_cards(env_id: str) -> None:
    vector_env = gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="vector_entry_point")
    cards_per_step = 2 if "CountRecall" in env_id else 1
    observations, _ = vector_env.reset(seed=0)
    for _ in range(60):
        assert observations.dtype == np.float32
        assert set(np.unique(observations)) <= {0.0, 1.0}
        np.testing.assert_array_equal(observations.sum(axis=1), cards_per_step)
        observations, *_ = vector_env.step(vector_env.action_space.sample())
    vector_env.close()


@pytest.mark.parametrize("task_name", ["RepeatPrevious", "RepeatFirst", "CountRecall"])
def test_unknown_difficulty_raises_value_error_naming_the_allowed_ones(task_name: str) -> None:
    env_class = getattr(recall, f"{task_name}Env")
    vector_env_class = getattr(recall, f"{task_name}VectorEnv")
    with pytest.raises(ValueError, match="'easy', 'medium', 'hard'"):
        env_class(difficulty="extreme")
    with pytest.raises(ValueError, match="'easy', 'medium', 'hard'"):
        vector_env_class(num_envs=2, difficulty="Easy")
    with pytest.raises(ValueError, match="'easy', 'medium', 'hard'"):
        getattr(recall, f"{task_name}Oracle")(2, difficulty="")


@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_render_returns_fixed_size_uint8_frames_that_follow_the_cards(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first_frame = env.render()
    assert first_frame.dtype == np.uint8 and first_frame.ndim == 3 and first_frame.shape[2] == 3
    env.step(env.action_space.sample())
    next_frame = env.render()
    assert next_frame.shape == first_frame.shape
    assert not np.array_equal(next_frame, first_frame)
    vector_env = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", render_mode="rgb_array")
    vector_env.reset(seed=0)
    assert all(frame.shape == first_frame.shape for frame in vector_env.render())
