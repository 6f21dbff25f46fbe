"""The T-mazes seen in pixels: the T-maze's dynamics exactly, an image that shows the cue only at the start.

The checks every built-in env gets (gymnasium's checker, native vector env = SyncVectorEnv, the oracle) run for
both ids in tests/test_envs.py; these are the pixel mazes' own rules.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the rl_lstm/ ids)
from envs.oracle import run_oracle
from envs.pixel_tmaze import (
    AGENT_RED,
    CUE_DOWN_COLOR,
    CUE_UP_COLOR,
    PixelPassiveTMazeEnv,
    PixelTMazeEnv,
    bakker_codings,
)
from envs.tmaze import EAST, NORTH, SOUTH, nearest_coding

PIXEL_IDS = {"rl_lstm/PixelTMaze-v0": "rl_lstm/TMaze-v0", "rl_lstm/PixelPassiveTMaze-v0": "rl_lstm/PassiveTMaze-v0"}


@pytest.mark.parametrize(("env_id", "env_class"), list(zip(PIXEL_IDS, [PixelTMazeEnv, PixelPassiveTMazeEnv])))
@pytest.mark.parametrize("cell_pixels", [1, 3])
def test_gymnasium_env_checker_passes_without_warnings(env_id: str, env_class: type[gym.Env], cell_pixels: int) -> None:
    env = gym.make(env_id, render_mode="rgb_array", length=4, cell_pixels=cell_pixels)
    assert isinstance(env.unwrapped, env_class)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    assert env.observation_space.shape == (3 * cell_pixels, 5 * cell_pixels, 3)
    assert env.observation_space.dtype == np.uint8
    env.close()


@pytest.mark.parametrize(("pixel_id", "vector_id"), list(PIXEL_IDS.items()))
def test_dynamics_and_what_the_image_shows_equal_the_vector_tmaze_step_for_step(pixel_id: str, vector_id: str) -> None:
    """Same seed, same actions: the same rewards, ends and successes, and each image decodes to Bakker's coding."""
    pixel = gym.make_vec(pixel_id, num_envs=8, vectorization_mode="vector_entry_point", length=5, cell_pixels=2)
    vector = gym.make_vec(vector_id, num_envs=8, vectorization_mode="vector_entry_point", length=5)
    pixel_images, _ = pixel.reset(seed=11)
    observations, _ = vector.reset(seed=11)
    rng = np.random.default_rng(0)
    episodes = 0
    for step in range(400):
        np.testing.assert_array_equal(bakker_codings(pixel_images, 2), nearest_coding(observations), f"step {step}")
        # East more often than not, so the active maze's episodes reach the junction.
        actions = rng.choice(4, size=8, p=[0.2, 0.5, 0.2, 0.1])
        pixel_images, pixel_rewards, pixel_terminated, pixel_truncated, pixel_info = pixel.step(actions)
        observations, rewards, terminated, truncated, info = vector.step(actions)
        np.testing.assert_array_equal(pixel_rewards, rewards)
        np.testing.assert_array_equal(pixel_terminated, terminated)
        np.testing.assert_array_equal(pixel_truncated, truncated)
        np.testing.assert_array_equal(pixel_info.get("is_success"), info.get("is_success"))
        episodes += int(np.sum(terminated | truncated))
    assert episodes >= 16
    pixel.close()
    vector.close()


def _passive_episode_images(cue_is_up: bool, length: int = 4) -> list[np.ndarray]:
    """The images of a passive episode whose cue is ``cue_is_up``, up to the junction."""
    env = PixelPassiveTMazeEnv(length=length)
    for seed in range(100):
        image, _ = env.reset(seed=seed)
        if bool(env.unwrapped.task.cue_is_up[0]) == cue_is_up:
            return [image] + [env.step(EAST)[0] for _ in range(length)]
    raise AssertionError("no seed in 0..99 drew the requested cue")


def test_only_the_first_image_shows_the_cue() -> None:
    up, down = _passive_episode_images(True), _passive_episode_images(False)
    np.testing.assert_array_equal(up[0][1, 0], (AGENT_RED, *CUE_UP_COLOR[1:]))  # the agent stands on the cue
    np.testing.assert_array_equal(down[0][1, 0], (AGENT_RED, *CUE_DOWN_COLOR[1:]))
    for step, (image_up, image_down) in enumerate(zip(up[1:], down[1:]), start=1):
        np.testing.assert_array_equal(image_up, image_down, f"step {step} must not tell the cues apart")


def test_the_agent_is_red_where_it_stands_and_in_the_arm_it_entered() -> None:
    env = PixelTMazeEnv(length=3)
    env.reset(seed=0)
    for position in range(1, 4):
        image, *_ = env.step(EAST)
        assert np.argwhere(image[..., 0] == AGENT_RED).tolist() == [[1, position]]
    arm = NORTH if env.unwrapped.task.cue_is_up[0] else SOUTH
    image, reward, terminated, _, info = env.step(arm)
    assert terminated and info["is_success"] and reward == 4.0
    assert np.argwhere(image[..., 0] == AGENT_RED).tolist() == [[0 if arm == NORTH else 2, 3]]


def test_bigger_cells_draw_the_same_image_scaled() -> None:
    small, big = PixelTMazeEnv(length=6), PixelTMazeEnv(length=6, cell_pixels=4)
    small_image, _ = small.reset(seed=5)
    big_image, _ = big.reset(seed=5)
    np.testing.assert_array_equal(big_image, small_image.repeat(4, axis=0).repeat(4, axis=1))


@pytest.mark.parametrize("env_id", list(PIXEL_IDS))
def test_oracle_reads_bigger_images_too(env_id: str) -> None:
    returns = run_oracle(env_id, num_episodes=40, num_envs=8, seed=1, length=6, cell_pixels=3)
    assert returns.min() == returns.max() > 0


@pytest.mark.parametrize(("kwargs", "message"), [({"cell_pixels": 0}, "cell_pixels"), ({"length": 0}, "length")])
def test_bad_arguments_are_errors_naming_them(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PixelTMazeEnv(**kwargs)
