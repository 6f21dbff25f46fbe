"""The T-maze of Bakker (2002) and a passive T-maze after Ni et al. (2023): remember a cue over a long corridor.

Ni et al.'s own T-mazes, exactly as their code defines them, are ``envs/ni_tmaze.py``.

**T-maze** (``rl_lstm/TMaze-v0``, ``rl_lstm/NoisyTMaze-v0``), after B. Bakker, "Reinforcement
Learning with Long Short-Term Memory", Advances in Neural Information Processing Systems 14
(NIPS 2001), MIT Press 2002, pp. 1475-1482 (its T-maze task)::

              up arm
    S - - - - J
              down arm

The agent starts at ``S`` (corridor position 0), walks east along the corridor to the T-junction
``J`` at position ``length`` and there turns north or south. Which arm holds the goal is drawn at
random (probability 1/2) at every reset and is shown only at the start, so the agent must carry it
``length`` steps. As in the paper:

- observations are 3 input units: ``011`` at the start if the goal is up (north), ``110`` if it is
  down (south), ``101`` in the corridor, ``010`` at the junction;
- actions are ``0`` north, ``1`` east, ``2`` south, ``3`` west (Discrete(4));
- reward ``+4`` for entering the goal arm, ``-0.1`` for entering the other arm, ``-0.1`` for an
  action that leaves the agent where it is (north or south in the corridor, west at the start,
  east at the junction), ``0`` for every other move;
- entering either arm ends the episode (terminated); ``info["is_success"]`` says whether it was the
  goal. The optimal return is 4 for every length: ``length`` east moves, then the right turn.

Deviations from the paper, all for a benchmark that runs unattended:

- Episode step limit: the paper has none, so an agent that never turns at the junction would run
  forever. Episodes are truncated (``is_success`` False) after ``STEP_LIMIT_PER_CELL * (length + 1)``
  = ``10 * (length + 1)`` steps: ten times the optimal path, proportional to the memory span, and
  reached by a random agent (an unbiased walk needs about ``2 * length**2`` steps to the junction).
- ``noise_std > 0`` is this project's noisy variant, not the paper's: Gaussian noise of that
  standard deviation (drawn through :meth:`CopyRandom.normal`) is added to all three units of the
  corridor observations only; the cue and the junction stay exact. Noisy observations are clipped
  to ``[-10 noise_std, 1 + 10 noise_std]`` so the Box space is finite (gymnasium warns on infinite
  bounds); a 10-sigma clip changes no draw in practice.
- The paper says nothing of the observation after the episode ends (in a goal arm): it is the
  junction coding ``010``.
- ``length`` counts the steps from the start to the junction: the cue is at position 0, positions
  ``1 .. length - 1`` show the corridor coding (none when ``length`` is 1), the junction is at
  ``length``.

**Passive T-maze** (``rl_lstm/PassiveTMaze-v0``), after T. Ni, M. Ma, B. Eysenbach, P.-L. Bacon,
"When Do Transformers Shine in RL? Decoupling Memory from Credit Assignment", NeurIPS 2023
(their ``TMazeClassicPassive`` in github.com/twni2016/Memory-RL): the agent is carried one cell
east every step whatever it does, so only the memory of the cue is tested, not exploration.
Their horizon is ``T = length + 1``: ``length`` carried steps, then the action at the junction
decides. Actions are the same Discrete(4): at the junction ``0`` (north) enters the up arm and
``2`` (south) the down arm; ``1`` or ``3`` (east, west) choose no arm. Rewards as in Ni et al.:
``+1`` for entering the goal arm, ``0`` for everything else. Every episode ends (terminated) after
exactly ``length + 1`` steps, as their finite horizon does; ``is_success`` says whether the goal arm
was entered. Deviations: the observations use Bakker's 3-unit coding above (shared with the active
task) instead of their 2-unit one, and their penalty ``-1/length`` per step the agent lags behind
the junction schedule never applies, because the agent is carried on schedule.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedTask, CopyRandom, TaskEnv, TaskVectorEnv
from envs.rendering import Canvas, Color

NORTH, EAST, SOUTH, WEST = 0, 1, 2, 3

# Rows of OBSERVATION_CODINGS (Bakker 2002): an observation is the coding of the cell the agent is in.
CUE_UP, CUE_DOWN, CORRIDOR, JUNCTION = 0, 1, 2, 3
OBSERVATION_CODINGS = np.array([[0, 1, 1], [1, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32)

NOISE_CLIP_STDS = 10.0

# Rendering: three rows (up arm, corridor, down arm) of RENDER_COLUMNS cells; a longer maze is shown
# as the start, a window around the agent and the junction, with dots where cells are left out.
RENDER_COLUMNS = 11
RENDER_CELL = 24
RENDER_MARGIN = 4
GAP = -1
WALL_COLOR: Color = (70, 70, 70)
FLOOR_COLOR: Color = (235, 235, 235)
CUE_UP_COLOR: Color = (40, 90, 220)
CUE_DOWN_COLOR: Color = (240, 150, 30)
GOAL_COLOR: Color = (90, 190, 90)
AGENT_COLOR: Color = (210, 40, 40)


def _check_length(length: Any, meaning: str = "the steps from the cue to the T-junction") -> int:
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
        raise ValueError(f"length must be an integer >= 1 ({meaning}), got {length!r}")
    return int(length)


def _check_noise_std(noise_std: Any) -> float:
    if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real) or not math.isfinite(noise_std) \
            or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0 (0 means no noise), got {noise_std!r}")
    return float(noise_std)


def nearest_coding(observations: np.ndarray) -> np.ndarray:
    """Which row of ``OBSERVATION_CODINGS`` each observation is closest to, ``[B]`` int."""
    distances = ((observations[:, None, :] - OBSERVATION_CODINGS[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)


def _rendered_positions(junction: int, position: int) -> list[int]:
    """The corridor position drawn in each column (``GAP`` for a column of dots standing for left-out cells)."""
    if junction + 1 <= RENDER_COLUMNS:
        return list(range(junction + 1))
    if position <= 6:
        return [*range(9), GAP, junction]
    if position >= junction - 6:
        return [0, GAP, *range(junction - 8, junction + 1)]
    return [0, GAP, *range(position - 3, position + 4), GAP, junction]


def draw_tmaze(junction: int, position: int, arm: int, cue_is_up: bool) -> np.ndarray:
    """An RGB frame ``[H, W, 3]``: cue at 0, junction at ``junction``, agent in ``arm`` (+1 up, -1 down, 0 corridor)."""
    height = 3 * RENDER_CELL + 2 * RENDER_MARGIN
    width = RENDER_COLUMNS * RENDER_CELL + 2 * RENDER_MARGIN
    canvas = Canvas(height, width, background=WALL_COLOR)

    def cell(column: int, row: int, color: Color) -> None:
        left = RENDER_MARGIN + column * RENDER_CELL
        top = RENDER_MARGIN + row * RENDER_CELL
        canvas.rectangle(left + 1, top + 1, left + RENDER_CELL - 1, top + RENDER_CELL - 1, color)

    def center(column: int, row: int) -> tuple[float, float]:
        return (RENDER_MARGIN + (column + 0.5) * RENDER_CELL, RENDER_MARGIN + (row + 0.5) * RENDER_CELL)

    for column, shown in enumerate(_rendered_positions(junction, position)):
        if shown == GAP:
            for offset in (-6, 0, 6):
                x, y = center(column, 1)
                canvas.circle(x + offset, y, 2, FLOOR_COLOR)
            continue
        cell(column, 1, FLOOR_COLOR)
        if shown == 0:
            cell(column, 1, CUE_UP_COLOR if cue_is_up else CUE_DOWN_COLOR)
        if shown == junction:
            cell(column, 0, GOAL_COLOR if cue_is_up else FLOOR_COLOR)
            cell(column, 2, FLOOR_COLOR if cue_is_up else GOAL_COLOR)
        if shown == position:
            x, y = center(column, 1 - arm)
            canvas.circle(x, y, RENDER_CELL * 0.35, AGENT_COLOR)
    return canvas.pixels


class TMazeTask(BatchedTask):
    """Bakker's (2002) T-maze over a batch of copies: a cue at the start, a corridor of ``length``, a junction."""

    render_fps = 10
    GOAL_REWARD: ClassVar[float] = 4.0
    WRONG_GOAL_REWARD: ClassVar[float] = -0.1
    STAND_STILL_REWARD: ClassVar[float] = -0.1
    STEP_LIMIT_PER_CELL: ClassVar[int] = 10

    def __init__(self, num_copies: int, length: int = 10, noise_std: float = 0.0):
        super().__init__(num_copies)
        self.length = _check_length(length)
        self.noise_std = _check_noise_std(noise_std)
        self.max_steps = self.STEP_LIMIT_PER_CELL * (self.length + 1)
        margin = NOISE_CLIP_STDS * self.noise_std
        self.single_observation_space = spaces.Box(-margin, 1.0 + margin, shape=(3,), dtype=np.float32)
        self.single_action_space = spaces.Discrete(4)
        self.corridor_position = np.zeros(num_copies, dtype=np.int64)
        self.cue_is_up = np.zeros(num_copies, dtype=np.bool_)
        self.goal_arm = np.zeros(num_copies, dtype=np.int8)  # +1 up arm entered, -1 down arm, 0 none
        self.finished = np.zeros(num_copies, dtype=np.bool_)
        self.elapsed_steps = np.zeros(num_copies, dtype=np.int64)

    def reset_copies(self, copies: np.ndarray, random: CopyRandom) -> None:
        for i in copies:
            self.cue_is_up[i] = random.generators[i].random() < 0.5
        self.corridor_position[copies] = 0
        self.goal_arm[copies] = 0
        self.finished[copies] = False
        self.elapsed_steps[copies] = 0

    def _enter_arms(self, deciding: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copies in ``deciding`` that act north or south enter that arm: ``(entered[B], entered_goal[B])``."""
        enters_up = deciding & (actions == NORTH)
        enters_down = deciding & (actions == SOUTH)
        self.goal_arm[enters_up] = 1
        self.goal_arm[enters_down] = -1
        entered = enters_up | enters_down
        self.finished |= entered
        return entered, (enters_up & self.cue_is_up) | (enters_down & ~self.cue_is_up)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions).reshape(self.num_copies)
        # A copy whose episode ended stays where it ended until it is reset (the vector env steps it once more).
        playing = ~self.finished
        at_junction = self.corridor_position == self.length
        moves_east = playing & (actions == EAST) & ~at_junction
        moves_west = playing & (actions == WEST) & (self.corridor_position > 0)
        self.corridor_position += moves_east.astype(np.int64) - moves_west.astype(np.int64)
        entered, success = self._enter_arms(playing & at_junction, actions)
        stood_still = ~(entered | moves_east | moves_west)
        reward = np.where(
            success,
            self.GOAL_REWARD,
            np.where(entered, self.WRONG_GOAL_REWARD, np.where(stood_still, self.STAND_STILL_REWARD, 0.0)),
        )
        self.elapsed_steps += 1
        truncated = ~entered & (self.elapsed_steps >= self.max_steps)
        return reward, entered, truncated, success

    def observe(self, random: CopyRandom) -> np.ndarray:
        coding = np.where(
            self.corridor_position == 0,
            np.where(self.cue_is_up, CUE_UP, CUE_DOWN),
            np.where(self.corridor_position >= self.length, JUNCTION, CORRIDOR),
        )
        observations = OBSERVATION_CODINGS[coding]
        if self.noise_std > 0:
            # Every copy draws its noise every step, corridor or not, so each copy's stream of draws
            # is the same in the vector env as alone (batched.py's rule).
            noise = self.noise_std * random.normal((3,))
            in_corridor = (coding == CORRIDOR)[:, None]
            margin = NOISE_CLIP_STDS * self.noise_std
            observations = np.clip(observations + in_corridor * noise, -margin, 1.0 + margin).astype(np.float32)
        return observations

    def render_copy(self, index: int) -> np.ndarray:
        return draw_tmaze(
            self.length, int(self.corridor_position[index]), int(self.goal_arm[index]), bool(self.cue_is_up[index])
        )


class PassiveTMazeTask(TMazeTask):
    """Ni et al.'s (2023) passive T-maze: the agent is carried along the corridor; only its junction action counts."""

    GOAL_REWARD: ClassVar[float] = 1.0

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions).reshape(self.num_copies)
        playing = ~self.finished
        at_junction = playing & (self.corridor_position == self.length)
        self.corridor_position += (playing & ~at_junction).astype(np.int64)
        _, success = self._enter_arms(at_junction, actions)
        # East or west at the junction enters no arm, but the horizon (length + 1 steps) is over all the same.
        self.finished |= at_junction
        reward = np.where(success, self.GOAL_REWARD, 0.0)
        return reward, at_junction, np.zeros(self.num_copies, dtype=np.bool_), success


class TMazeEnv(TaskEnv):
    """Bakker's T-maze (``rl_lstm/TMaze-v0``; ``noise_std`` > 0 for ``rl_lstm/NoisyTMaze-v0``)."""

    task_class = TMazeTask


class TMazeVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`TMazeEnv`."""

    task_class = TMazeTask


class PassiveTMazeEnv(TaskEnv):
    """A passive T-maze after Ni et al. in Bakker's coding (``rl_lstm/PassiveTMaze-v0``); theirs: envs/ni_tmaze.py."""

    task_class = PassiveTMazeTask


class PassiveTMazeVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`PassiveTMazeEnv`."""

    task_class = PassiveTMazeTask


class TMazeOracle:
    """Remembers the cue of each episode's first observation, walks east, and turns to the goal at the junction.

    It reads cells by the nearest coding, so Gaussian corridor noise far below the codings' half
    distance (0.7) never makes it mistake the corridor for the junction.
    """

    task_class: ClassVar[type[TMazeTask]] = TMazeTask

    def __init__(self, num_envs: int, length: int = 10, noise_std: float = 0.0):
        _check_length(length)
        _check_noise_std(noise_std)
        self.expected_return = self.task_class.GOAL_REWARD
        self.cue_is_up = np.zeros(num_envs, dtype=np.bool_)

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """East until the junction coding is seen, then north if the remembered cue was up, else south."""
        coding = nearest_coding(np.asarray(observations, dtype=np.float64))
        starts = np.asarray(episode_starts, dtype=np.bool_)
        self.cue_is_up[starts] = coding[starts] == CUE_UP
        return np.where(coding == JUNCTION, np.where(self.cue_is_up, NORTH, SOUTH), EAST).astype(np.int64)


class PassiveTMazeOracle(TMazeOracle):
    """The T-maze oracle on the passive T-maze: its corridor actions are ignored, its junction turn is right."""

    task_class = PassiveTMazeTask
