"""Wrappers and a third-party-style env for tests/test_wrappers.py and the README's "Your own env".

Importing this module registers ``MissionGrid-v0``, so ``wrapper_envs:MissionGrid-v0`` is an env id (with
``tests/`` on the Python path: pytest puts it there, the README's commands set ``PYTHONPATH=tests``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class AppendConstant(gym.ObservationWrapper):
    """Appends ``value`` to a Box vector observation: a mark that shows the wrapper ran, and with which kwargs."""

    def __init__(self, env: gym.Env, value: float = 1.0) -> None:
        super().__init__(env)
        self.value = value
        box = env.observation_space
        self.observation_space = spaces.Box(
            np.append(box.low, value).astype(box.dtype), np.append(box.high, value).astype(box.dtype), dtype=box.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The observation with ``value`` as one more component."""
        return np.append(observation, self.value).astype(self.observation_space.dtype)


class OffsetVectorObservation(gym.vector.VectorObservationWrapper):
    """Adds ``offset`` to the observations of every copy at once: a vector wrapper keeps the native vector env."""

    def __init__(self, env: gym.vector.VectorEnv, offset: float = 100.0) -> None:
        super().__init__(env)
        self.offset = offset
        self.single_observation_space = spaces.Box(
            env.single_observation_space.low + offset, env.single_observation_space.high + offset, dtype=np.float32
        )
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)

    def observations(self, observations: np.ndarray) -> np.ndarray:
        """Every copy's observation shifted by ``offset``."""
        return (observations + self.offset).astype(np.float32)


class NotAWrapper:
    """A class that is no gymnasium wrapper: naming it in ``env_wrappers`` is an error."""

    def __init__(self, env: Any) -> None:
        self.env = env


class MissionGridEnv(gym.Env):
    """MiniGrid's observation layout on a toy task: turn to the direction shown (+1 per step that matches).

    The observation is a Dict of an ``image`` (7x7x3 uint8), a ``direction`` (Discrete 4) and a ``mission``
    (gymnasium ``Text``): the mission string is what a policy network cannot encode, so it must be filtered out.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (7, 7, 3), dtype=np.uint8),
                "direction": spaces.Discrete(4),
                "mission": spaces.Text(max_length=32, charset="abcdefghijklmnopqrstuvwxyz "),
            }
        )
        self.action_space = spaces.Discrete(4)
        self.direction = 0

    def _observation(self) -> dict[str, Any]:
        image = np.zeros((7, 7, 3), dtype=np.uint8)
        image[3, 3] = (10, self.direction, 0)
        return {"image": image, "direction": self.direction, "mission": "turn to the direction shown"}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """A random direction to match."""
        super().reset(seed=seed)
        self.direction = int(self.np_random.integers(4))
        return self._observation(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """+1 if ``action`` is the direction shown; then a new direction."""
        reward = float(int(action) == self.direction)
        self.direction = int(self.np_random.integers(4))
        return self._observation(), reward, False, False, {}


gym.register("MissionGrid-v0", entry_point=MissionGridEnv, max_episode_steps=10)
