"""Ni et al.'s (2023) passive and active T-mazes: API, vector = single, oracle, rules worked from their code."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tmaze import _success_rate

import envs  # noqa: F401  (registers the rl_lstm/ ids)
from envs.ni_tmaze import DOWN, EAST, UP, WEST, NiActiveTMazeEnv, NiPassiveTMazeEnv, NiTMazeOracle
from envs.oracle import make_oracle, run_oracle

PASSIVE = "rl_lstm/NiPassiveTMaze-v0"
ACTIVE = "rl_lstm/NiActiveTMaze-v0"
BOTH = [PASSIVE, ACTIVE]
EXTRA_STEPS = {PASSIVE: 1, ACTIVE: 3}  # an episode lasts length + EXTRA_STEPS steps


def _reset_with_goal(env: gym.Env, goal_up: bool) -> np.ndarray:
    """Reset ``env`` with the first seed whose goal is the requested arm."""
    for seed in range(100):
        observation, _ = env.reset(seed=seed)
        if env.unwrapped.task.goal_y[0] == (1 if goal_up else -1):
            return observation
    raise AssertionError("no seed in 0..99 gave the requested goal")


def _play(env_id: str, length: int, goal_up: bool, actions: list[int]) -> tuple[list, list, list, bool]:
    """Observations (reset first), rewards and terminations of ``actions``, and the final ``is_success``."""
    env = gym.make(env_id, length=length)
    observations = [_reset_with_goal(env, goal_up).tolist()]
    rewards, ends = [], []
    info: dict[str, Any] = {}
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        assert not truncated, "their episodes end by the horizon, as terminal"
        observations.append(observation.tolist())
        rewards.append(reward)
        ends.append(terminated)
    return observations, rewards, ends, info["is_success"]


@pytest.mark.parametrize(("env_class", "env_id"), [(NiPassiveTMazeEnv, PASSIVE), (NiActiveTMazeEnv, ACTIVE)])
def test_gymnasium_env_checker_passes_without_warnings(env_class: type[gym.Env], env_id: str) -> None:
    env = gym.make(env_id, length=4, render_mode="rgb_array")
    assert isinstance(env.unwrapped, env_class)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("length", [1, 3, 20])
@pytest.mark.parametrize("env_id", BOTH)
def test_native_vector_env_equals_sync_vector_env_through_autoresets(env_id: str, length: int) -> None:
    num_envs = 8
    native = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", length=length)
    sync = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", length=length)
    observations, _ = native.reset(seed=123)
    np.testing.assert_array_equal(observations, sync.reset(seed=123)[0])
    # The oracle with a random action one step in five: episodes that succeed, fail and fall behind pace.
    oracle = NiTMazeOracle(num_envs, length=length)
    episode_starts = np.ones(num_envs, dtype=bool)
    rng = np.random.default_rng(0)
    outcomes, penalties = [], 0
    for _ in range(1500):
        actions = oracle.act(observations, episode_starts)
        actions = np.where(rng.random(num_envs) < 0.2, rng.integers(4, size=num_envs), actions)
        native_step, sync_step = native.step(actions), sync.step(actions)
        observations = native_step[0]
        for native_value, sync_value in zip(native_step[:4], sync_step[:4]):
            np.testing.assert_array_equal(native_value, sync_value)
        done = native_step[2] | native_step[3]
        for info in (native_step[4], sync_step[4]):
            np.testing.assert_array_equal(info.get("_is_success", np.zeros(num_envs, dtype=bool)), done)
        if done.any():
            np.testing.assert_array_equal(native_step[4]["is_success"], sync_step[4]["is_success"])
            outcomes.extend(native_step[4]["is_success"][done].tolist())
        penalties += int((native_step[1] < 0).sum())
        episode_starts = done  # under NEXT_STEP autoreset the next observation starts an episode
    assert len(outcomes) >= 100 and 0 < sum(outcomes) < len(outcomes)
    assert penalties > 0


@pytest.mark.parametrize(("length", "num_envs"), [(1, 20), (10, 20), (1000, 50)])
@pytest.mark.parametrize("env_id", BOTH)
def test_oracle_reaches_the_optimal_return_one_every_episode(env_id: str, length: int, num_envs: int) -> None:
    # Optimal return 1 in both: the active maze's step back to the cue keeps pace (x = t - 1), so it costs nothing.
    assert make_oracle(env_id, 1, length=length).expected_return == 1.0
    returns = run_oracle(env_id, num_episodes=100, num_envs=num_envs, seed=7, length=length)
    assert len(returns) == 100
    np.testing.assert_array_equal(returns, 1.0)


@pytest.mark.parametrize("env_id", BOTH)
def test_oracle_success_rate_is_one(env_id: str) -> None:
    assert _success_rate(env_id, NiTMazeOracle(16, length=10), length=10) == 1.0


class _AlwaysUp(NiTMazeOracle):
    """The oracle without its memory of the cue: it keeps pace to the junction and always turns up."""

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        actions = super().act(observations, episode_starts)
        return np.where(actions == DOWN, UP, actions)


@pytest.mark.parametrize("env_id", BOTH)
def test_cue_blind_policy_succeeds_only_half_the_time(env_id: str) -> None:
    success_rate = _success_rate(env_id, _AlwaysUp(16, length=10), length=10, num_episodes=400)
    assert 0.4 < success_rate < 0.6


# The sequences below are Ni et al.'s envs/tmaze.py (TMazeBase.position_encoding, reward_fn, step) worked by hand
# for L = 3 (penalty -1/3): the passive maze starts on the cue at x = 0 (junction x = 3, 4 steps), the active one at
# x = 1, one east of the cue (junction x = 4, 6 steps). Actions in their numbering: 0 east, 1 up, 2 west, 3 down.
P = -1.0 / 3


@pytest.mark.parametrize(
    ("env_id", "goal_up", "actions", "observations", "rewards", "success"),
    [
        pytest.param(  # the cue only at the start; [1, 0] at the junction, [1, y] in the arm entered
            PASSIVE, True, [EAST, EAST, EAST, UP],
            [[0, 1], [0, 0], [0, 0], [1, 0], [1, 1]], [0, 0, 0, 1], True, id="passive-goal-up",
        ),
        pytest.param(
            PASSIVE, False, [EAST, EAST, EAST, DOWN],
            [[0, -1], [0, 0], [0, 0], [1, 0], [1, -1]], [0, 0, 0, 1], True, id="passive-goal-down",
        ),
        pytest.param(  # the wrong arm pays 0 and shows the arm the agent is in, not the goal
            PASSIVE, False, [EAST, EAST, EAST, UP],
            [[0, -1], [0, 0], [0, 0], [1, 0], [1, 1]], [0, 0, 0, 0], False, id="passive-wrong-arm",
        ),
        pytest.param(  # x < t on every step before the last: -1/L each (the cue is not shown again at x = 0)
            PASSIVE, True, [WEST, EAST, EAST, EAST],
            [[0, 1], [0, 0], [0, 0], [0, 0], [1, 0]], [P, P, P, 0], False, id="passive-lagging-throughout",
        ),
        pytest.param(  # a bump into the corridor wall falls behind for good; the last step is never penalized
            PASSIVE, True, [EAST, UP, EAST, EAST],
            [[0, 1], [0, 0], [0, 0], [0, 0], [1, 0]], [0, P, P, 0], False, id="passive-wall-bump-lags",
        ),
        pytest.param(
            ACTIVE, False, [WEST, EAST, EAST, EAST, EAST, DOWN],
            [[0, 0], [0, -1], [0, 0], [0, 0], [0, 0], [1, 0], [1, -1]], [0, 0, 0, 0, 0, 1], True,
            id="active-optimal-path-costs-nothing",
        ),
        pytest.param(  # the cue shows only on the first visit to x = 0
            ACTIVE, True, [WEST, EAST, WEST, EAST, EAST, EAST],
            [[0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]], [0, 0, P, P, P, 0], False,
            id="active-second-visit-hides-cue",
        ),
        pytest.param(  # staying on the cue lags from t = 2 on: the worst return, -(L + 1)/L
            ACTIVE, True, [WEST, WEST, EAST, EAST, EAST, EAST],
            [[0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0], [1, 0]], [0, P, P, P, P, 0], False,
            id="active-lagging",
        ),
        pytest.param(  # skipping the cue is ahead of pace; arms can be left and crossed; wrong arm at the end
            ACTIVE, True, [EAST, EAST, EAST, UP, DOWN, DOWN],
            [[0, 0], [0, 0], [0, 0], [1, 0], [1, 1], [1, 0], [1, -1]], [0, 0, 0, 0, 0, 0], False,
            id="active-skip-cue-wrong-arm",
        ),
        pytest.param(  # walls (up in the corridor, east at the junction) cost nothing while ahead of pace
            ACTIVE, False, [EAST, UP, EAST, EAST, EAST, DOWN],
            [[0, 0], [0, 0], [0, 0], [0, 0], [1, 0], [1, 0], [1, -1]], [0, 0, 0, 0, 0, 1], True,
            id="active-walls-ahead-of-pace",
        ),
    ],
)
def test_observations_and_rewards_follow_their_code_step_by_step(
    env_id: str, goal_up: bool, actions: list[int], observations: list, rewards: list, success: bool
) -> None:
    seen, paid, ends, is_success = _play(env_id, 3, goal_up, actions)
    assert seen == observations
    assert paid == pytest.approx(rewards, abs=0, rel=0)
    assert ends == [False] * (len(actions) - 1) + [True]
    assert is_success == success


@pytest.mark.parametrize("length", [1, 2, 7])
@pytest.mark.parametrize("env_id", BOTH)
def test_every_episode_lasts_length_plus_one_passive_and_length_plus_three_active(env_id: str, length: int) -> None:
    env = gym.make(env_id, length=length)
    env.action_space.seed(0)
    for seed in range(20):
        env.reset(seed=seed)
        steps, terminated = 0, False
        while not terminated:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            assert not truncated
        assert steps == length + EXTRA_STEPS[env_id]


@pytest.mark.parametrize("env_id", BOTH)
def test_length_one_and_length_100000_are_solved_in_the_vector_env(env_id: str) -> None:
    for length, num_envs in ((1, 4), (100_000, 64)):
        vector_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", length=length)
        oracle = make_oracle(env_id, num_envs, length=length)
        observations, _ = vector_env.reset(seed=0)
        episode_starts = np.ones(num_envs, dtype=bool)
        returns = np.zeros(num_envs)
        for _ in range(length + EXTRA_STEPS[env_id]):
            observations, rewards, terminated, _, infos = vector_env.step(oracle.act(observations, episode_starts))
            episode_starts[:] = False
            returns += rewards
        assert terminated.all() and infos["is_success"].all()
        np.testing.assert_array_equal(returns, 1.0)


@pytest.mark.parametrize("length", [0, -3, 2.5, "10", True, None])
def test_bad_length_raises_value_error_naming_the_allowed_values(length: Any) -> None:
    with pytest.raises(ValueError, match=r"length must be an integer >= 1 \(the corridor length L"):
        gym.make(PASSIVE, length=length)
    with pytest.raises(ValueError, match=r"length must be an integer >= 1"):
        gym.make_vec(ACTIVE, num_envs=2, vectorization_mode="vector_entry_point", length=length)
    with pytest.raises(ValueError, match=r"length must be an integer >= 1"):
        NiTMazeOracle(2, length=length)


@settings(max_examples=100, deadline=None)
@given(env_id=st.sampled_from(BOTH), length=st.one_of(st.integers(-3, 50), st.floats(-1, 5), st.text(max_size=3)))
def test_any_length_either_makes_an_env_or_raises_a_value_error(env_id: str, length: object) -> None:
    try:
        env = gym.make(env_id, length=length)
    except ValueError:
        return
    env.reset(seed=0)
    env.step(env.action_space.sample())


@pytest.mark.parametrize("env_id", BOTH)
def test_rgb_frame_is_fixed_size_and_shows_the_goal(env_id: str) -> None:
    frames = {}
    for goal_up in (True, False):
        env = gym.make(env_id, length=8, render_mode="rgb_array")
        _reset_with_goal(env, goal_up)
        frames[goal_up] = env.render()
    assert not np.array_equal(frames[True], frames[False])
    long_env = gym.make(env_id, length=100_000, render_mode="rgb_array")
    long_env.reset(seed=0)
    for _ in range(500):
        long_env.step(EAST)
    assert long_env.render().shape == frames[True].shape
