"""The T-mazes of ``envs/tmaze.py`` seen from above as small RGB images: a memory task in pixels.

**Pixel T-maze** (``rl_lstm/PixelTMaze-v0``, Bakker's active maze) and **pixel passive T-maze**
(``rl_lstm/PixelPassiveTMaze-v0``, the agent carried along the corridor as in Ni et al.) have exactly the
dynamics, rewards, step limits and ``info["is_success"]`` of ``rl_lstm/TMaze-v0`` and ``rl_lstm/PassiveTMaze-v0``
(the same task classes run them); only the observation differs. Instead of Bakker's 3 input units the agent sees
the whole maze from above, one cell as ``cell_pixels x cell_pixels`` pixels, in an image of
``3 * cell_pixels`` rows (up arm, corridor, down arm) by ``(length + 1) * cell_pixels`` columns (``3 x 11`` at
the defaults ``length=10, cell_pixels=1``; keep it within 32 x 32 to train on a CPU), RGB uint8:

- walls are black; open cells (the corridor and the two arm cells at the junction) are ``FLOOR``;
- the start cell is coloured by the cue, ``CUE_UP`` (blue) or ``CUE_DOWN`` (green), while the agent stands on it
  (Bakker's observation shows the cue there and only there), so in the passive maze only the first image shows it;
- the agent's cell has its red channel at 255 (all other cells 0), so the cue shows under the agent.

The agent always sees where it is; what it cannot see after the start is which arm holds the goal, so a policy
without memory picks an arm at random (50% success). The junction column shows both arms alike.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.batched import CopyRandom, TaskEnv, TaskVectorEnv
from envs.tmaze import (
    CORRIDOR,
    CUE_DOWN,
    CUE_UP,
    JUNCTION,
    OBSERVATION_CODINGS,
    PassiveTMazeTask,
    TMazeOracle,
    TMazeTask,
    _check_length,
)

# Cell colours (RGB) without the agent; the agent's cell gets AGENT_RED in the red channel.
WALL = (0, 0, 0)
FLOOR = (0, 128, 128)
CUE_UP_COLOR = (0, 0, 255)
CUE_DOWN_COLOR = (0, 255, 0)
AGENT_RED = 255
UP_ROW, CORRIDOR_ROW, DOWN_ROW = 0, 1, 2
DEFAULT_LENGTH = 10  # TMazeTask's


def _check_cell_pixels(cell_pixels: Any) -> int:
    if isinstance(cell_pixels, bool) or not isinstance(cell_pixels, numbers.Integral) or cell_pixels < 1:
        raise ValueError(f"cell_pixels must be an integer >= 1 (the side of one maze cell in pixels), got "
                         f"{cell_pixels!r}")
    return int(cell_pixels)


class PixelObservations:
    """Mixin for a T-maze task class: the maze drawn from above as the observation (see the module docstring)."""

    length: int
    num_copies: int
    corridor_position: np.ndarray
    goal_arm: np.ndarray
    cue_is_up: np.ndarray

    def __init__(self, num_copies: int, length: int = DEFAULT_LENGTH, cell_pixels: int = 1) -> None:
        super().__init__(num_copies, length)  # type: ignore[call-arg]  # the T-maze task's (num_copies, length)
        self.cell_pixels = _check_cell_pixels(cell_pixels)
        # The maze's cells without agent or cue, [3, length + 1, 3]: what every image starts from.
        background = np.zeros((3, self.length + 1, 3), dtype=np.uint8)
        background[:] = WALL
        background[CORRIDOR_ROW, :] = FLOOR
        background[[UP_ROW, DOWN_ROW], self.length] = FLOOR
        self.background = background
        shape = (3 * self.cell_pixels, (self.length + 1) * self.cell_pixels, 3)
        self.single_observation_space = spaces.Box(0, 255, shape=shape, dtype=np.uint8)

    def observe(self, random: CopyRandom) -> np.ndarray:
        """Every copy's maze image, ``[B, 3 * cell_pixels, (length + 1) * cell_pixels, 3]`` uint8."""
        cells = np.repeat(self.background[None], self.num_copies, axis=0)  # [B, 3, length + 1, 3]
        copies = np.arange(self.num_copies)
        at_start = np.flatnonzero(self.corridor_position == 0)
        cells[at_start, CORRIDOR_ROW, 0] = np.where(self.cue_is_up[at_start, None], CUE_UP_COLOR, CUE_DOWN_COLOR)
        agent_row = CORRIDOR_ROW - self.goal_arm.astype(np.int64)  # an entered arm: +1 up (row 0), -1 down (row 2)
        cells[copies, agent_row, self.corridor_position, 0] = AGENT_RED
        return cells.repeat(self.cell_pixels, axis=1).repeat(self.cell_pixels, axis=2)


class PixelTMazeTask(PixelObservations, TMazeTask):
    """Bakker's T-maze (``TMazeTask``) observed as an image."""


class PixelPassiveTMazeTask(PixelObservations, PassiveTMazeTask):
    """The passive T-maze (``PassiveTMazeTask``) observed as an image."""


class PixelTMazeEnv(TaskEnv):
    """Bakker's T-maze seen from above (``rl_lstm/PixelTMaze-v0``)."""

    task_class = PixelTMazeTask


class PixelTMazeVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`PixelTMazeEnv`."""

    task_class = PixelTMazeTask


class PixelPassiveTMazeEnv(TaskEnv):
    """The passive T-maze seen from above (``rl_lstm/PixelPassiveTMaze-v0``)."""

    task_class = PixelPassiveTMazeTask


class PixelPassiveTMazeVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`PixelPassiveTMazeEnv`."""

    task_class = PixelPassiveTMazeTask


def bakker_codings(images: np.ndarray, cell_pixels: int = 1) -> np.ndarray:
    """What each image shows in Bakker's coding, as rows of ``OBSERVATION_CODINGS``, ``[B]`` int.

    The cue where the start cell shows one, the junction where the agent stands in the last column, else the
    corridor: what the T-maze's 3 input units would say.
    """
    cells = np.asarray(images)[:, ::cell_pixels, ::cell_pixels]  # [B, 3, length + 1, 3]: one pixel per cell
    start = cells[:, CORRIDOR_ROW, 0, 1:]  # green and blue of the start cell
    at_junction = (cells[:, :, -1, 0] == AGENT_RED).any(axis=1)
    return np.where(
        (start == CUE_UP_COLOR[1:]).all(axis=1), CUE_UP,
        np.where((start == CUE_DOWN_COLOR[1:]).all(axis=1), CUE_DOWN, np.where(at_junction, JUNCTION, CORRIDOR)),
    )


class PixelTMazeOracle(TMazeOracle):
    """The T-maze oracle reading the images: it remembers the first image's cue and turns to it at the junction."""

    task_class = PixelTMazeTask

    def __init__(self, num_envs: int, length: int = DEFAULT_LENGTH, cell_pixels: int = 1):
        super().__init__(num_envs, _check_length(length))
        self.cell_pixels = _check_cell_pixels(cell_pixels)

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """The T-maze oracle's action for the Bakker coding of each image."""
        return super().act(OBSERVATION_CODINGS[bakker_codings(observations, self.cell_pixels)], episode_starts)


class PixelPassiveTMazeOracle(PixelTMazeOracle):
    """The pixel T-maze oracle on the passive maze: its corridor actions are ignored, its junction turn is right."""

    task_class = PixelPassiveTMazeTask
