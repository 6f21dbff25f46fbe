"""Write a task's dynamics once, over a batch of copies; get the single env and the native vector env from it.

gymnasium writes each environment twice (``CartPoleEnv`` and ``CartPoleVectorEnv``) and the two
can drift apart. Here a task is a :class:`BatchedTask` whose state is a batch of copies held in
numpy arrays. :class:`TaskEnv` is that task with one copy, :class:`TaskVectorEnv` with N copies,
so the single env and the vector env run the same code and agree step for step.

Rules a task follows so that the vector env equals N single envs seeded ``seed, seed+1, ...``
(as ``SyncVectorEnv`` seeds them):

- Randomness is drawn only in :meth:`BatchedTask.reset_copies`, copy by copy, each from its own
  generator (``random.generators[i]``), and as observation noise through :meth:`CopyRandom.normal`,
  which every copy consumes once per observation.
- :meth:`BatchedTask.step` is deterministic given the state and the actions.
- Everything that changes during an episode is held in numpy-array attributes of the task: that is
  what :meth:`BatchedTask.state_dict` saves, so a checkpoint can continue the episodes in flight.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

NOISE_BLOCK_STEPS = 256


class CopyRandom:
    """One random generator per copy, with block-buffered Gaussian noise for the whole batch.

    Drawing noise copy by copy would cost a Python call per copy per step; drawing it in blocks
    of ``NOISE_BLOCK_STEPS`` observations keeps each copy's stream its own (so a copy sees the
    same noise in the vector env as alone) while the per-step cost is one array slice.
    """

    def __init__(self, generators: Sequence[np.random.Generator]):
        self.generators = list(generators)
        self._noise_blocks: dict[tuple[int, ...], np.ndarray] = {}
        self._noise_position: dict[tuple[int, ...], int] = {}

    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        """Standard normal noise of ``shape`` for every copy: an array ``[num_copies, *shape]``."""
        position = self._noise_position.get(shape, NOISE_BLOCK_STEPS)
        if position == NOISE_BLOCK_STEPS:
            self._noise_blocks[shape] = np.stack(
                [g.standard_normal((NOISE_BLOCK_STEPS, *shape)) for g in self.generators], axis=1
            )  # [NOISE_BLOCK_STEPS, num_copies, *shape]
            position = 0
        self._noise_position[shape] = position + 1
        return self._noise_blocks[shape][position]

    def state_dict(self) -> dict[str, Any]:
        """Every generator's state and the noise drawn but not yet used, as plain data."""
        return {
            "generators": [generator.bit_generator.state for generator in self.generators],
            "noise": [
                {"shape": list(shape), "block": block.copy(), "position": self._noise_position[shape]}
                for shape, block in self._noise_blocks.items()
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state of another number of copies is a ``ValueError``."""
        if len(state["generators"]) != len(self.generators):
            raise ValueError(f"the state holds {len(state['generators'])} generators, not {len(self.generators)}")
        for generator, generator_state in zip(self.generators, state["generators"]):
            generator.bit_generator.state = generator_state
        self._noise_blocks = {tuple(noise["shape"]): np.array(noise["block"]) for noise in state["noise"]}
        self._noise_position = {tuple(noise["shape"]): int(noise["position"]) for noise in state["noise"]}


class BatchedTask(ABC):
    """The dynamics of a task over a batch of copies; subclass it to write a new task.

    Subclasses set ``single_observation_space`` and ``single_action_space`` in ``__init__``
    (after validating their parameters and raising ``ValueError`` that says what is allowed),
    and implement :meth:`reset_copies`, :meth:`step`, :meth:`observe` and, to draw frames,
    :meth:`render_copy`.
    """

    render_fps: ClassVar[int] = 10
    single_observation_space: gym.Space
    single_action_space: gym.Space

    def __init__(self, num_copies: int):
        if num_copies < 1:
            raise ValueError(f"num_copies must be at least 1, got {num_copies}")
        self.num_copies = num_copies

    @abstractmethod
    def reset_copies(self, copies: np.ndarray, random: CopyRandom) -> None:
        """Start a new episode in each copy whose index is in ``copies``."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Advance every copy by one step: ``(reward[B] float, terminated[B], truncated[B], is_success[B] or None)``.

        ``truncated`` is the task's own episode limit (tasks with no limit return all False);
        ``is_success`` is read only where the episode ended, and is ``None`` for tasks with no
        notion of success.
        """

    @abstractmethod
    def observe(self, random: CopyRandom) -> np.ndarray:
        """The current observation of every copy, ``[B, *single_observation_space.shape]``."""

    @abstractmethod
    def render_copy(self, index: int) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` uint8 of copy ``index``."""

    def action_masks(self) -> np.ndarray | None:
        """Which actions are allowed now, ``[B, n]`` bool, or ``None`` if every action always is."""
        return None

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state of every copy: copies of the task's numpy-array attributes (constant tables included)."""
        return {name: value.copy() for name, value in vars(self).items() if isinstance(value, np.ndarray)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` into a task built with the same arguments; any mismatch is a ``ValueError``."""
        current = self.state_dict()
        mismatched = sorted(
            name for name in current.keys() | state.keys()
            if name not in current or name not in state or np.shape(state[name]) != current[name].shape
        )
        if mismatched:
            raise ValueError(
                f"the saved state of {type(self).__name__} does not fit this one (arrays {', '.join(mismatched)} "
                "differ); restore it into a task built with the same arguments and number of copies"
            )
        for name, value in state.items():
            # The saved dtype, not the current one: a step may change it (Pendulum's torque becomes float32).
            setattr(self, name, np.array(value, copy=True))


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode={render_mode!r} is not supported; use None or 'rgb_array'")


class TaskEnv(gym.Env):
    """A :class:`BatchedTask` with one copy, as a ``gymnasium.Env``."""

    task_class: ClassVar[type[BatchedTask]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **task_kwargs: Any):
        _check_render_mode(render_mode)
        self.task = self.task_class(1, **task_kwargs)
        self.observation_space = self.task.single_observation_space
        self.action_space = self.task.single_action_space
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "render_fps": self.task.render_fps}
        self._random: CopyRandom | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self._random is None or seed is not None:
            self._random = CopyRandom([self.np_random])
        self.task.reset_copies(np.zeros(1, dtype=np.int64), self._random)
        return self.task.observe(self._random)[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._random is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        reward, terminated, truncated, success = self.task.step(np.asarray(action)[None])
        observation = self.task.observe(self._random)[0]
        info: dict[str, Any] = {}
        done = bool(terminated[0] or truncated[0])
        if success is not None and done:
            info["is_success"] = bool(success[0])
        return observation, float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self.task.render_copy(0)
        return None

    def action_masks(self) -> np.ndarray | None:
        """The allowed actions now (MaskablePPO's convention), or ``None`` if all are."""
        masks = self.task.action_masks()
        return None if masks is None else masks[0]


class TaskVectorEnv(VectorEnv):
    """A :class:`BatchedTask` with ``num_envs`` copies, stepped in one array operation.

    Autoreset follows gymnasium 1.x (``AutoresetMode.NEXT_STEP``): the step after an episode
    ends returns the next episode's first observation with reward 0, ignoring that copy's action.
    """

    task_class: ClassVar[type[BatchedTask]]
    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ):
        _check_render_mode(render_mode)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer or None, got {max_episode_steps}")
        self.task = self.task_class(num_envs, **task_kwargs)
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "render_fps": self.task.render_fps}
        self.single_observation_space = self.task.single_observation_space
        self.single_action_space = self.task.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._random: CopyRandom | None = None
        self._elapsed_steps = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=np.bool_)
        self._all_copies = np.arange(num_envs)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        if isinstance(seed, int):
            seeds: Sequence[int | None] = [seed + i for i in range(self.num_envs)]
        elif seed is None:
            seeds = [None] * self.num_envs
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} envs; pass one int or one per env")
        if self._random is None or any(s is not None for s in seeds):
            previous = self._random.generators if self._random is not None else [None] * self.num_envs
            self._random = CopyRandom(
                [
                    seeding.np_random(s)[0] if s is not None or old is None else old
                    for s, old in zip(seeds, previous)
                ]
            )
            if seed is not None:
                self._np_random_seed = seeds[0]
        self.task.reset_copies(self._all_copies, self._random)
        self._elapsed_steps[:] = 0
        self._needs_reset[:] = False
        return self.task.observe(self._random), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if self._random is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        reward, terminated, truncated, success = self.task.step(np.asarray(actions))
        reward = np.array(reward, dtype=np.float64)  # a copy: the autoreset below writes into it
        self._elapsed_steps += 1
        if self.max_episode_steps is not None:
            truncated = truncated | (self._elapsed_steps >= self.max_episode_steps)
        resetting = self._needs_reset
        if resetting.any():
            self.task.reset_copies(np.flatnonzero(resetting), self._random)
            self._elapsed_steps[resetting] = 0
            reward[resetting] = 0.0
            terminated = terminated & ~resetting
            truncated = truncated & ~resetting
        observations = self.task.observe(self._random)
        done = terminated | truncated
        self._needs_reset = done
        infos: dict[str, Any] = {}
        if success is not None and done.any():
            infos["is_success"] = success & done
            infos["_is_success"] = done.copy()
        return observations, reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode == "rgb_array":
            return tuple(self.task.render_copy(i) for i in range(self.num_envs))
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything ``step`` and ``reset`` read, as plain data: what a checkpoint needs to continue the episodes.

        That is the task's arrays, each copy's generator and unused noise, the step counts and the autoreset flags.
        """
        if self._random is None:
            raise gym.error.ResetNeeded("Call reset() before state_dict(): the env has no episodes yet.")
        return {
            "task": self.task.state_dict(),
            "random": self._random.state_dict(),
            "elapsed_steps": self._elapsed_steps.copy(),
            "needs_reset": self._needs_reset.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into an env built with the same arguments; a mismatch is a ``ValueError``."""
        for name in ("elapsed_steps", "needs_reset"):
            if np.shape(state[name]) != (self.num_envs,):
                raise ValueError(f"the saved {name} has shape {np.shape(state[name])}, not ({self.num_envs},)")
        self.task.load_state_dict(state["task"])
        # Fresh generators of the kind reset() makes (PCG64), whose state the saved one then replaces.
        random = CopyRandom([np.random.default_rng() for _ in range(self.num_envs)])
        random.load_state_dict(state["random"])
        self._random = random
        self._elapsed_steps = np.array(state["elapsed_steps"], dtype=np.int64)
        self._needs_reset = np.array(state["needs_reset"], dtype=np.bool_)

    def action_masks(self) -> np.ndarray | None:
        """The allowed actions of every copy, ``[num_envs, n]``, or ``None`` if all are."""
        return self.task.action_masks()
