"""T-maze (Bakker 2002) and passive T-maze (Ni et al. 2023): API, vector = single, oracle, hand-checked rules."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the rl_lstm/ ids)
from envs.oracle import make_oracle, run_oracle
from envs.tmaze import EAST, NORTH, SOUTH, WEST, PassiveTMazeEnv, TMazeEnv, TMazeOracle, TMazeTask

ACTIVE = "rl_lstm/TMaze-v0"
PASSIVE = "rl_lstm/PassiveTMaze-v0"
NOISY = "rl_lstm/NoisyTMaze-v0"

CUE_UP = np.array([0, 1, 1], dtype=np.float32)
CUE_DOWN = np.array([1, 1, 0], dtype=np.float32)
CORRIDOR = np.array([1, 0, 1], dtype=np.float32)
JUNCTION = np.array([0, 1, 0], dtype=np.float32)


def _reset_with_cue(env: gym.Env, cue_up: bool) -> np.ndarray:
    """Reset ``env`` with the first seed whose start observation shows the requested cue."""
    for seed in range(100):
        observation, _ = env.reset(seed=seed)
        if np.array_equal(observation, CUE_UP if cue_up else CUE_DOWN):
            return observation
    raise AssertionError("no seed in 0..99 gave the requested cue")


def _walk_to_junction(env: gym.Env, length: int) -> None:
    for _ in range(length):
        env.step(EAST)


@pytest.mark.parametrize(
    ("env_class", "kwargs"),
    [
        (TMazeEnv, {"length": 4}),
        (TMazeEnv, {"length": 4, "noise_std": 0.1}),
        (PassiveTMazeEnv, {"length": 4}),
        (PassiveTMazeEnv, {"length": 4, "noise_std": 0.1}),
    ],
)
def test_gymnasium_env_checker_passes_without_warnings(env_class: type[gym.Env], kwargs: dict[str, Any]) -> None:
    env_id = ACTIVE if env_class is TMazeEnv else PASSIVE
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    assert isinstance(env.unwrapped, env_class)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("length", [1, 5, 50])
@pytest.mark.parametrize(("env_id", "noise_kwargs"), [
    (ACTIVE, {}), (NOISY, {}), (PASSIVE, {}), (PASSIVE, {"noise_std": 0.1}),
])
def test_native_vector_env_equals_sync_vector_env_through_autoresets(
    env_id: str, noise_kwargs: dict[str, Any], length: int
) -> None:
    num_envs, num_steps = 8, 2000
    native = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", length=length,
                          **noise_kwargs)
    sync = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", length=length, **noise_kwargs)
    native_observations, _ = native.reset(seed=123)
    sync_observations, _ = sync.reset(seed=123)
    np.testing.assert_array_equal(native_observations, sync_observations)
    rng = np.random.default_rng(0)
    # Drift east so that even length 50 ends many episodes at the junction, not only by the step limit.
    action_probabilities = [0.15, 0.55, 0.15, 0.15]
    episodes_ended = 0
    successes = 0
    for _ in range(num_steps):
        actions = rng.choice(4, size=num_envs, p=action_probabilities)
        native_step = native.step(actions)
        sync_step = sync.step(actions)
        for native_value, sync_value in zip(native_step[:4], sync_step[:4]):
            np.testing.assert_array_equal(native_value, sync_value)
        native_info, sync_info = native_step[4], sync_step[4]
        done = native_step[2] | native_step[3]
        no_success = np.zeros(num_envs, dtype=bool)
        np.testing.assert_array_equal(native_info.get("_is_success", no_success), done)
        np.testing.assert_array_equal(sync_info.get("_is_success", no_success), done)
        np.testing.assert_array_equal(native_info.get("is_success", no_success),
                                      sync_info.get("is_success", no_success))
        episodes_ended += int(done.sum())
        successes += int(native_info.get("is_success", no_success).sum())
    assert episodes_ended >= 50
    assert 0 < successes < episodes_ended
    native.close()
    sync.close()


@pytest.mark.parametrize("env_id", [ACTIVE, PASSIVE, NOISY])
@pytest.mark.parametrize(("length", "num_envs"), [(1, 20), (10, 20), (1000, 100), (10_000, 100)])
def test_oracle_reaches_the_optimal_return_every_episode(env_id: str, length: int, num_envs: int) -> None:
    returns = run_oracle(env_id, num_episodes=100, num_envs=num_envs, seed=7, length=length)
    oracle = make_oracle(env_id, 1, length=length)
    assert len(returns) == 100
    assert returns.mean() == oracle.expected_return
    # The optimal return comes only from entering the goal arm, so every episode succeeded.
    assert np.all(returns == oracle.expected_return)


@pytest.mark.parametrize("env_id", [ACTIVE, PASSIVE, NOISY])
def test_oracle_success_rate_is_one(env_id: str) -> None:
    assert _success_rate(env_id, make_oracle(env_id, 16, length=10), length=10) == 1.0


class _AlwaysUp(TMazeOracle):
    """The oracle without its memory: it walks to the junction and always turns north."""

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        actions = super().act(observations, episode_starts)
        return np.where(actions == SOUTH, NORTH, actions)


@pytest.mark.parametrize("env_id", [ACTIVE, PASSIVE, NOISY])
def test_cue_blind_policy_succeeds_only_half_the_time(env_id: str) -> None:
    success_rate = _success_rate(env_id, _AlwaysUp(16, length=10), length=10, num_episodes=400)
    assert 0.4 < success_rate < 0.6


def _success_rate(env_id: str, policy: TMazeOracle, length: int, num_episodes: int = 100) -> float:
    vector_env = gym.make_vec(env_id, num_envs=16, vectorization_mode="vector_entry_point", length=length)
    observations, _ = vector_env.reset(seed=3)
    episode_starts = np.ones(16, dtype=bool)
    autoresetting = np.zeros(16, dtype=bool)
    outcomes: list[bool] = []
    while len(outcomes) < num_episodes:
        observations, _, terminated, truncated, infos = vector_env.step(policy.act(observations, episode_starts))
        # Under NEXT_STEP autoreset the step after an episode ends returns the next episode's first observation.
        episode_starts = autoresetting
        autoresetting = terminated | truncated
        outcomes.extend(infos["is_success"][autoresetting].tolist() if autoresetting.any() else [])
    vector_env.close()
    return float(np.mean(outcomes[:num_episodes]))


@pytest.mark.parametrize("cue_up", [True, False])
def test_observations_show_cue_then_corridor_then_junction(cue_up: bool) -> None:
    length = 4
    env = gym.make(ACTIVE, length=length)
    _reset_with_cue(env, cue_up)
    seen = [env.step(EAST)[0] for _ in range(length)]
    for observation in seen[:-1]:
        np.testing.assert_array_equal(observation, CORRIDOR)
    np.testing.assert_array_equal(seen[-1], JUNCTION)
    _, reward, terminated, truncated, info = env.step(NORTH if cue_up else SOUTH)
    assert (reward, terminated, truncated, info["is_success"]) == (4.0, True, False, True)


def test_both_cues_occur_and_length_one_goes_straight_to_the_junction() -> None:
    env = gym.make(ACTIVE, length=1)
    starts = {tuple(env.reset(seed=seed)[0]) for seed in range(20)}
    assert starts == {tuple(CUE_UP), tuple(CUE_DOWN)}
    np.testing.assert_array_equal(env.step(EAST)[0], JUNCTION)


def test_wrong_goal_ends_the_episode_with_penalty_and_no_success() -> None:
    env = gym.make(ACTIVE, length=3)
    _reset_with_cue(env, cue_up=True)
    _walk_to_junction(env, 3)
    _, reward, terminated, truncated, info = env.step(SOUTH)
    assert (reward, terminated, truncated, info["is_success"]) == (-0.1, True, False, False)


def test_bumping_into_walls_costs_the_papers_penalty_and_moving_costs_nothing() -> None:
    env = gym.make(ACTIVE, length=3)
    _reset_with_cue(env, cue_up=True)
    observation, reward, *_ = env.step(WEST)  # wall behind the start
    assert reward == pytest.approx(-0.1)
    np.testing.assert_array_equal(observation, CUE_UP)
    observation, reward, *_ = env.step(EAST)
    assert reward == 0.0
    for wall in (NORTH, SOUTH):  # corridor walls
        observation, reward, terminated, *_ = env.step(wall)
        assert (reward, terminated) == (pytest.approx(-0.1), False)
        np.testing.assert_array_equal(observation, CORRIDOR)
    observation, reward, *_ = env.step(WEST)  # back to the start: the cue shows again
    assert reward == 0.0
    np.testing.assert_array_equal(observation, CUE_UP)
    _walk_to_junction(env, 3)
    observation, reward, terminated, *_ = env.step(EAST)  # wall beyond the junction
    assert (reward, terminated) == (pytest.approx(-0.1), False)
    np.testing.assert_array_equal(observation, JUNCTION)


def test_episode_is_truncated_after_ten_steps_per_cell_without_success() -> None:
    length = 2
    env = gym.make(ACTIVE, length=length)
    env.reset(seed=0)
    limit = TMazeTask.STEP_LIMIT_PER_CELL * (length + 1)
    for _ in range(limit - 1):
        assert env.step(NORTH)[2:4] == (False, False)
    _, _, terminated, truncated, info = env.step(NORTH)
    assert (terminated, truncated, info["is_success"]) == (False, True, False)


def test_noise_perturbs_only_corridor_observations() -> None:
    length = 5
    env = gym.make(NOISY, length=length)
    _reset_with_cue(env, cue_up=False)
    corridor = np.array([env.step(EAST)[0] for _ in range(length - 1)])
    assert not np.any(np.all(corridor == CORRIDOR, axis=1))
    assert np.abs(corridor - CORRIDOR).max() < 1.0
    np.testing.assert_array_equal(env.step(EAST)[0], JUNCTION)
    assert not np.array_equal(env.step(WEST)[0], CORRIDOR)
    np.testing.assert_array_equal(env.step(EAST)[0], JUNCTION)
    assert env.observation_space.low.min() < 0 < 1 < env.observation_space.high.max()


@pytest.mark.parametrize("corridor_action", [NORTH, EAST, SOUTH, WEST])
def test_passive_maze_carries_the_agent_and_only_the_junction_action_counts(corridor_action: int) -> None:
    length = 6
    env = gym.make(PASSIVE, length=length)
    _reset_with_cue(env, cue_up=False)
    for _ in range(length - 1):
        observation, reward, terminated, truncated, _ = env.step(corridor_action)
        np.testing.assert_array_equal(observation, CORRIDOR)
        assert (reward, terminated, truncated) == (0.0, False, False)
    observation, reward, terminated, _, _ = env.step(corridor_action)
    np.testing.assert_array_equal(observation, JUNCTION)
    assert (reward, terminated) == (0.0, False)
    _, reward, terminated, truncated, info = env.step(SOUTH)
    assert (reward, terminated, truncated, info["is_success"]) == (1.0, True, False, True)


@pytest.mark.parametrize("junction_action", [NORTH, EAST, WEST])
def test_passive_maze_ends_after_length_plus_one_steps_with_nothing_for_a_wrong_junction_action(
    junction_action: int,
) -> None:
    length = 3
    env = gym.make(PASSIVE, length=length)
    _reset_with_cue(env, cue_up=False)
    _walk_to_junction(env, length)
    _, reward, terminated, truncated, info = env.step(junction_action)
    assert (reward, terminated, truncated, info["is_success"]) == (0.0, True, False, False)


def test_make_with_long_corridor_works() -> None:
    env = gym.make(ACTIVE, length=500)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert env.action_space == gym.spaces.Discrete(4)
    observation, *_ = env.step(EAST)
    np.testing.assert_array_equal(observation, CORRIDOR)


def test_huge_length_needs_no_per_cell_memory() -> None:
    env = TMazeEnv(length=10**12, render_mode="rgb_array")
    env.reset(seed=0)
    np.testing.assert_array_equal(env.step(EAST)[0], CORRIDOR)
    assert env.render().shape == TMazeEnv(length=1, render_mode="rgb_array").task.render_copy(0).shape


@pytest.mark.parametrize("length", [0, -3, 2.5, "10", True, None])
def test_bad_length_raises_value_error_naming_the_allowed_values(length: Any) -> None:
    with pytest.raises(ValueError, match=r"length must be an integer >= 1"):
        gym.make(ACTIVE, length=length)
    with pytest.raises(ValueError, match=r"length must be an integer >= 1"):
        gym.make_vec(PASSIVE, num_envs=2, vectorization_mode="vector_entry_point", length=length)
    with pytest.raises(ValueError, match=r"length must be an integer >= 1"):
        TMazeOracle(2, length=length)


@pytest.mark.parametrize("noise_std", [-0.1, float("nan"), float("inf"), "0.1"])
def test_bad_noise_raises_value_error_naming_the_allowed_values(noise_std: Any) -> None:
    with pytest.raises(ValueError, match=r"noise_std must be a finite number >= 0"):
        gym.make(ACTIVE, noise_std=noise_std)
    with pytest.raises(ValueError, match=r"noise_std must be a finite number >= 0"):
        PassiveTMazeEnv(noise_std=noise_std)


@pytest.mark.parametrize("env_id", [ACTIVE, PASSIVE])
def test_rgb_frame_is_fixed_size_uint8_and_shows_the_cue(env_id: str) -> None:
    frames = {}
    for cue_up in (True, False):
        env = gym.make(env_id, length=8, render_mode="rgb_array")
        _reset_with_cue(env, cue_up)
        frames[cue_up] = env.render()
    assert frames[True].dtype == np.uint8 and frames[True].ndim == 3 and frames[True].shape[2] == 3
    assert not np.array_equal(frames[True], frames[False])
    long_env = gym.make(env_id, length=10_000, render_mode="rgb_array")
    long_env.reset(seed=0)
    for _ in range(5000):
        long_env.step(EAST)
    assert long_env.render().shape == frames[True].shape
    assert long_env.metadata["render_fps"] > 0
