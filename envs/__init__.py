"""The memory-task environments, registered with gymnasium under the ``rl_lstm/`` namespace on import.

Each row of :data:`BUILTIN_ENVS` is one environment: its single env, its native numpy vector env
(``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``) and a scripted
oracle with perfect memory that shows the task is solvable and its rewards are right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class BuiltinEnv:
    """One registered environment: where its classes live and the kwargs its id stands for."""

    name: str
    module: str
    single: str
    vector: str
    oracle: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None

    @property
    def id(self) -> str:
        return f"rl_lstm/{self.name}"


_DIFFICULTIES = ("Easy", "Medium", "Hard")

BUILTIN_ENVS: tuple[BuiltinEnv, ...] = (
    BuiltinEnv("TMaze-v0", "envs.tmaze", "TMazeEnv", "TMazeVectorEnv", "TMazeOracle"),
    BuiltinEnv("PassiveTMaze-v0", "envs.tmaze", "PassiveTMazeEnv", "PassiveTMazeVectorEnv", "PassiveTMazeOracle"),
    BuiltinEnv("NoisyTMaze-v0", "envs.tmaze", "TMazeEnv", "TMazeVectorEnv", "TMazeOracle", {"noise_std": 0.1}),
    BuiltinEnv("NiPassiveTMaze-v0", "envs.ni_tmaze", "NiPassiveTMazeEnv", "NiPassiveTMazeVectorEnv", "NiTMazeOracle"),
    BuiltinEnv("NiActiveTMaze-v0", "envs.ni_tmaze", "NiActiveTMazeEnv", "NiActiveTMazeVectorEnv", "NiTMazeOracle"),
    BuiltinEnv("PixelTMaze-v0", "envs.pixel_tmaze", "PixelTMazeEnv", "PixelTMazeVectorEnv", "PixelTMazeOracle"),
    BuiltinEnv(
        "PixelPassiveTMaze-v0", "envs.pixel_tmaze", "PixelPassiveTMazeEnv", "PixelPassiveTMazeVectorEnv",
        "PixelPassiveTMazeOracle",
    ),
    BuiltinEnv(
        "CartPolePositionOnly-v0", "envs.control", "CartPolePositionOnlyEnv", "CartPolePositionOnlyVectorEnv",
        "CartPolePositionOnlyOracle", max_episode_steps=500,
    ),
    BuiltinEnv(
        "NoisyCartPolePositionOnly-v0", "envs.control", "CartPolePositionOnlyEnv", "CartPolePositionOnlyVectorEnv",
        "CartPolePositionOnlyOracle", {"noise_std": 0.05}, max_episode_steps=500,
    ),
    BuiltinEnv(
        "PendulumPositionOnly-v0", "envs.control", "PendulumPositionOnlyEnv", "PendulumPositionOnlyVectorEnv",
        "PendulumPositionOnlyOracle", max_episode_steps=200,
    ),
    BuiltinEnv(
        "NoisyPendulumPositionOnly-v0", "envs.control", "PendulumPositionOnlyEnv", "PendulumPositionOnlyVectorEnv",
        "PendulumPositionOnlyOracle", {"noise_std": 0.02}, max_episode_steps=200,
    ),
    *(
        BuiltinEnv(f"{task}{level}-v0", "envs.recall", f"{task}Env", f"{task}VectorEnv", f"{task}Oracle",
                   {"difficulty": level.lower()})
        for task in ("RepeatPrevious", "RepeatFirst", "CountRecall")
        for level in _DIFFICULTIES
    ),
)

BUILTIN_ENV_IDS: tuple[str, ...] = tuple(env.id for env in BUILTIN_ENVS)


def builtin_env(env_id: str) -> BuiltinEnv:
    """The table row of a built-in env id; ``KeyError`` naming the ids if it is not one."""
    for env in BUILTIN_ENVS:
        if env.id == env_id:
            return env
    raise KeyError(f"{env_id!r} is not a built-in env; built-in ids are: {', '.join(BUILTIN_ENV_IDS)}")


for _env in BUILTIN_ENVS:
    if _env.id not in gym.registry:
        gym.register(
            id=_env.id,
            entry_point=f"{_env.module}:{_env.single}",
            vector_entry_point=f"{_env.module}:{_env.vector}",
            max_episode_steps=_env.max_episode_steps,
            kwargs=dict(_env.kwargs),
        )
