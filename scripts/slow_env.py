"""A stand-in for a slow third-party env: CartPole whose every step also does about 1 ms of pure Python work.

Importing the module registers ``SlowCartPole-v0``; trainers and Ray workers build it from the id
``slow_env:SlowCartPole-v0``, the form a user writes for an env of their own package (``scripts/`` must be on
``sys.path``, or ``PYTHONPATH`` for Ray workers). The work holds the GIL like a simulator written in Python does,
so only more processes make it faster: what ``scripts/benchmark.py ray`` measures.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

ENV_ID = "slow_env:SlowCartPole-v0"
WORK_PER_STEP = 26_000  # loop iterations per step: about 1 ms on the 2-core benchmark machine (the benchmark prints it)


def python_work(iterations: int) -> int:
    """A fixed amount of interpreted arithmetic, as a slow env's step would do."""
    total = 0
    for index in range(iterations):
        total += index * index % 7
    return total


class SlowStep(gym.Wrapper):
    """The wrapped env, every step preceded by ``work_per_step`` iterations of :func:`python_work`."""

    def __init__(self, env: gym.Env, work_per_step: int = WORK_PER_STEP) -> None:
        super().__init__(env)
        self.work_per_step = work_per_step

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Do the work, then step the env."""
        python_work(self.work_per_step)
        return self.env.step(action)


def make_slow_cartpole(work_per_step: int = WORK_PER_STEP, **kwargs: Any) -> gym.Env:
    """CartPole (``kwargs`` are CartPoleEnv's) with about 1 ms of Python work per step."""
    return SlowStep(CartPoleEnv(**kwargs), work_per_step)


if ENV_ID.split(":")[1] not in gym.registry:
    gym.register(ENV_ID.split(":")[1], entry_point=make_slow_cartpole, max_episode_steps=500)
