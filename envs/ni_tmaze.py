"""The passive and active T-mazes of Ni et al. (2023), exactly as their code defines them.

T. Ni, M. Ma, B. Eysenbach, P.-L. Bacon, "When Do Transformers Shine in RL? Decoupling Memory from
Credit Assignment", NeurIPS 2023; code github.com/twni2016/Memory-RL, read at commit
``c9b8b398d4aedc8b25abc8b021c5019a6d12b85d`` (``envs/tmaze.py`` and ``configs/envs/tmaze_*.py`` are
unchanged there since their first commit ``fe890092``). Ids ``rl_lstm/NiPassiveTMaze-v0``
(their ``TMazeClassicPassive``) and ``rl_lstm/NiActiveTMaze-v0`` (their ``TMazeClassicActive``), with
``length`` their ``corridor_length`` ``L``, the memory length their configs call ``env_name``::

                   up arm   (x = J, y = +1)
    O (S) - - - - J         (y = 0)
                   down arm (x = J, y = -1)

Geometry (``TMazeBase.__init__``, its ``tmaze_map``): corridor cells ``x = 0 .. J`` at ``y = 0`` and
the two arm cells at ``x = J, y = +-1``, where ``J = o + L`` and ``o`` is their ``oracle_length``:
``o = 0`` in the passive maze, ``o = 1`` in the active one. The cue ("oracle") is at ``x = 0``; the
agent starts at ``x = o`` (``TMazeBase.reset``): on the cue in the passive maze, one cell east of it in
the active one, so the agent must step back west to see it. Which arm is the goal (``goal_y = +-1``) is
drawn with probability 1/2 at every reset.

Episode length (``TMazeClassicPassive``/``TMazeClassicActive.__init__``: ``episode_length``):
``T = L + 1 + 2 o``, i.e. ``L + 1`` steps passive and ``L + 3`` active. Every episode lasts exactly
``T`` steps whatever the agent does and ends ``terminated`` (their ``step`` returns ``done`` at
``time_step >= episode_length``; ``configs/envs/terminal_fns.py: finite_horizon_terminal`` treats it as
terminal, and the configs' ``max_episode_steps = T`` never cuts earlier), so ``truncated`` is always
False. ``info["is_success"]`` at the end says whether the agent stands in the goal arm.

Actions (``TMazeBase.action_mapping = [[1, 0], [0, 1], [-1, 0], [0, -1]]``), Discrete(4) in *their*
numbering, not that of ``envs/tmaze.py``: ``0`` east (x + 1), ``1`` up (y + 1), ``2`` west (x - 1),
``3`` down (y - 1). A move into a wall leaves the agent where it is; the agent can step from an arm
back to the junction and on into the other arm (``TMazeBase.step``).

Observations (``TMazeBase.position_encoding`` with ``ambiguous_position=True``, which both classes
set), Box(-1, 1, (2,), float32):

- ``[0, goal_y]`` at ``x = 0`` the first time the agent is there (at reset in the passive maze),
  ``[0, 0]`` at ``x = 0`` on every later visit (their ``oracle_visited``);
- ``[0, 0]`` in the corridor ``0 < x < J``;
- ``[1, y]`` at ``x = J``, with ``y`` the agent's own row: ``[1, 0]`` at the junction, ``[1, +1]``
  or ``[1, -1]`` in the up or down arm. It says where the agent is, never where the goal is.

Rewards (``TMazeBase.reward_fn``, with ``penalty=-1.0 / length`` from both configs' ``create_fn``),
``t`` counting the steps taken including this one:

- at the last step (``t = T``): ``1`` if the agent stands in the goal arm (``y == goal_y``), else
  ``0``; no penalty on that step;
- on every other step: ``-1/L`` if the agent is behind the pace ``x < t - o``, else ``0``. This
  applies in the passive maze too. In the active maze the step west to the cue keeps pace
  (``x = 0 = t - o`` at ``t = 1``), so the optimal return is ``1`` in both mazes: passive ``L`` steps
  east then the turn; active west, ``L + 1`` steps east, the turn. The lowest return is ``-1``
  passive (``L`` lagging steps) and ``-(L + 1)/L`` active (``t = 1`` can never lag).

Deviations, none of which changes a reward, an observation or an episode end:

- gymnasium 1.x API, and the goal drawn from each copy's seeded generator (``envs/batched.py``)
  instead of the global ``np.random.choice([-1, 1])``.
- Only what their T-maze configs use is offered: ``distract_reward`` (their extra reward at
  ``x = 0``) is 0 as the configs' default, ``goal_reward`` 1 and ``penalty`` ``-1/L`` are fixed, and
  ``TMazeBase``'s other options (``ambiguous_position=False``, ``expose_goal``, ``add_timestep``) are
  not offered.
- A step that keeps pace pays ``0.0``; theirs computes ``float(False) * penalty = -0.0`` (equal).
- Their ``tmaze_map`` is an array of ``O(L)`` cells; here walls are tested arithmetically, so the state
  is a few numbers per copy and ``L`` can be any positive integer (100,000 and beyond).
- Default ``length=10``: their ``get_config`` default (``config.env_name = 10``) in both config files,
  whose comment lists lengths 1 to 1000; the paper's runs (``budget.py``) start at 50 passive and 20
  active.

This module's ``rl_lstm/NiPassiveTMaze-v0`` is not ``rl_lstm/PassiveTMaze-v0`` of ``envs/tmaze.py``,
which carries the agent, uses Bakker's observations and never penalizes.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedTask, CopyRandom, TaskEnv, TaskVectorEnv
from envs.tmaze import _check_length, draw_tmaze

# Their action numbering (TMazeBase.action_mapping), not envs.tmaze's.
EAST, UP, WEST, DOWN = 0, 1, 2, 3
MOVES = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)  # [action, (dx, dy)]

GOAL_REWARD = 1.0
LENGTH_MEANING = "the corridor length L from the start to the T-junction, their corridor_length"


class NiTMazeTask(BatchedTask):
    """Ni et al.'s T-maze over a batch of copies; ``cue_offset`` is their ``oracle_length`` (0 passive, 1 active)."""

    def __init__(self, num_copies: int, length: int = 10, cue_offset: int = 0):
        super().__init__(num_copies)
        self.length = _check_length(length, LENGTH_MEANING)
        self.cue_offset = cue_offset
        self.junction = cue_offset + self.length
        self.episode_steps = self.length + 1 + 2 * cue_offset
        self.penalty = -1.0 / self.length
        self.single_observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.single_action_space = spaces.Discrete(4)
        self.x = np.zeros(num_copies, dtype=np.int64)
        self.y = np.zeros(num_copies, dtype=np.int64)
        self.goal_y = np.ones(num_copies, dtype=np.int64)
        self.cue_seen = np.zeros(num_copies, dtype=np.bool_)
        self.shows_cue = np.zeros(num_copies, dtype=np.bool_)  # on the cue for the first time, this step
        self.elapsed_steps = np.zeros(num_copies, dtype=np.int64)

    def reset_copies(self, copies: np.ndarray, random: CopyRandom) -> None:
        for i in copies:
            self.goal_y[i] = 1 if random.generators[i].random() < 0.5 else -1
        self.x[copies] = self.cue_offset
        self.y[copies] = 0
        self.elapsed_steps[copies] = 0
        self.shows_cue[copies] = self.cue_offset == 0
        self.cue_seen[copies] = self.cue_offset == 0

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions).reshape(self.num_copies)
        self.elapsed_steps += 1
        new_x = self.x + MOVES[actions, 0]
        new_y = self.y + MOVES[actions, 1]
        in_corridor = (new_y == 0) & (new_x >= 0) & (new_x <= self.junction)
        in_arm = (new_x == self.junction) & (np.abs(new_y) == 1)
        moves = in_corridor | in_arm
        self.x = np.where(moves, new_x, self.x)
        self.y = np.where(moves, new_y, self.y)
        # Their position_encoding shows the cue only on the first visit to x = 0 (oracle_visited).
        self.shows_cue = (self.x == 0) & ~self.cue_seen
        self.cue_seen |= self.shows_cue
        done = self.elapsed_steps >= self.episode_steps
        success = done & (self.y == self.goal_y)
        lagging = self.x < self.elapsed_steps - self.cue_offset
        reward = np.where(done, np.where(success, GOAL_REWARD, 0.0), np.where(lagging, self.penalty, 0.0))
        return reward, done, np.zeros(self.num_copies, dtype=np.bool_), success

    def observe(self, random: CopyRandom) -> np.ndarray:
        at_junction_column = self.x == self.junction
        observations = np.empty((self.num_copies, 2), dtype=np.float32)
        observations[:, 0] = at_junction_column
        observations[:, 1] = np.where(at_junction_column, self.y, np.where(self.shows_cue, self.goal_y, 0))
        return observations

    def render_copy(self, index: int) -> np.ndarray:
        return draw_tmaze(self.junction, int(self.x[index]), int(self.y[index]), bool(self.goal_y[index] == 1))


class NiPassiveTMazeTask(NiTMazeTask):
    """Their ``TMazeClassicPassive``: start on the cue, ``L + 1`` steps."""

    def __init__(self, num_copies: int, length: int = 10):
        super().__init__(num_copies, length, cue_offset=0)


class NiActiveTMazeTask(NiTMazeTask):
    """Their ``TMazeClassicActive``: start one cell east of the cue, ``L + 3`` steps."""

    def __init__(self, num_copies: int, length: int = 10):
        super().__init__(num_copies, length, cue_offset=1)


class NiPassiveTMazeEnv(TaskEnv):
    """Ni et al.'s passive T-maze (``rl_lstm/NiPassiveTMaze-v0``)."""

    task_class = NiPassiveTMazeTask


class NiPassiveTMazeVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`NiPassiveTMazeEnv`."""

    task_class = NiPassiveTMazeTask


class NiActiveTMazeEnv(TaskEnv):
    """Ni et al.'s active T-maze (``rl_lstm/NiActiveTMaze-v0``)."""

    task_class = NiActiveTMazeTask


class NiActiveTMazeVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`NiActiveTMazeEnv`."""

    task_class = NiActiveTMazeTask


class NiTMazeOracle:
    """West until the cue is seen (never, passive: it shows at reset), remember it, east to the junction, turn to it.

    It keeps pace (``x = t - o``) on every step, so it reaches the optimal return 1 in both mazes.
    """

    def __init__(self, num_envs: int, length: int = 10):
        _check_length(length, LENGTH_MEANING)
        self.expected_return = GOAL_REWARD
        self.goal_y = np.zeros(num_envs, dtype=np.int64)  # 0 until this episode's cue is seen

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """Actions in their numbering: ``WEST`` before the cue, then ``EAST``, then ``UP``/``DOWN`` at ``x = J``."""
        observations = np.asarray(observations)
        self.goal_y[np.asarray(episode_starts, dtype=np.bool_)] = 0
        shows_cue = (observations[:, 0] == 0) & (observations[:, 1] != 0)
        self.goal_y[shows_cue] = observations[shows_cue, 1].astype(np.int64)
        at_junction = observations[:, 0] == 1
        turn = np.where(self.goal_y > 0, UP, DOWN)
        return np.where(self.goal_y == 0, WEST, np.where(at_junction, turn, EAST)).astype(np.int64)
