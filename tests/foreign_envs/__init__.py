"""Envs the project did not write: a third-party package that registers its ids with gymnasium when imported.

``SpacesEnv`` plays a few steps of random observations drawn from one of :data:`OBSERVATION_SPACES` and takes
actions from one of :data:`ACTION_SPACES`, so the tests can hand every trainer every kind of space by name,
either as ``foreign_envs:foreign/Spaces-v0`` with ``env_kwargs`` or as an object. Like gymnasium's own classic
envs it refuses an action outside its action space, so a policy that sends a wrong action fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

OBSERVATION_SPACES: dict[str, Callable[[], spaces.Space]] = {
    "box": lambda: spaces.Box(-1.0, 1.0, (3,), np.float32),
    "dict": lambda: spaces.Dict(
        {"position": spaces.Box(-1.0, 1.0, (2,), np.float32), "cue": spaces.Discrete(3), "flags": spaces.MultiBinary(2)}
    ),
    "nested": lambda: spaces.Dict(
        {"position": spaces.Box(-1.0, 1.0, (2,), np.float32), "parts": spaces.Tuple((spaces.Discrete(2, start=1),))}
    ),
    "tuple": lambda: spaces.Tuple((spaces.Discrete(4), spaces.Box(-1.0, 1.0, (2,), np.float32))),
    "multidiscrete": lambda: spaces.MultiDiscrete([2, 3, 4]),
    "multibinary": lambda: spaces.MultiBinary(5),
    "image": lambda: spaces.Box(0, 255, (8, 8, 3), np.uint8),
    "dict_image": lambda: spaces.Dict(
        {"camera": spaces.Box(0, 255, (8, 8, 3), np.uint8), "position": spaces.Box(-1.0, 1.0, (2,), np.float32)}
    ),
    "text": lambda: spaces.Text(8),
    "graph": lambda: spaces.Graph(node_space=spaces.Box(-1.0, 1.0, (2,), np.float32), edge_space=None),
}

ACTION_SPACES: dict[str, Callable[[], spaces.Space]] = {
    "discrete": lambda: spaces.Discrete(3),
    "discrete_start": lambda: spaces.Discrete(3, start=-1),
    "multidiscrete": lambda: spaces.MultiDiscrete([2, 3]),
    "box": lambda: spaces.Box(-1.0, 1.0, (2,), np.float32),
    "multibinary": lambda: spaces.MultiBinary(2),
}


class SpacesEnv(gym.Env):
    """``episode_steps`` steps of random observations from a named space; the reward prefers small actions."""

    metadata = {"render_modes": []}

    def __init__(self, observation: str = "box", action: str = "discrete", episode_steps: int = 4) -> None:
        self.observation_space = OBSERVATION_SPACES[observation]()
        self.action_space = ACTION_SPACES[action]()
        self.episode_steps = episode_steps
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        # The observations follow the env's seed, as a well-behaved env's do.
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in the action space {self.action_space}")
        self.steps += 1
        reward = -float(np.abs(np.asarray(action, dtype=np.float64)).mean())
        return self.observation_space.sample(), reward, self.steps >= self.episode_steps, False, {}


if "foreign/Spaces-v0" not in gym.registry:
    gym.register(id="foreign/Spaces-v0", entry_point=SpacesEnv)
