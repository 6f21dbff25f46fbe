"""Scripted oracle policies with perfect memory, and the loop that runs them on a vector env."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from envs import builtin_env


class Oracle(Protocol):
    """A scripted policy over a batch of envs that remembers what the task needs.

    ``expected_return`` is the mean return it must reach: the optimum where one is known
    (T-maze, recall tasks), a solved-task threshold otherwise (control tasks).
    """

    expected_return: float

    def __init__(self, num_envs: int, **env_kwargs: Any) -> None: ...

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """Actions for the batch; ``episode_starts[i]`` says ``observations[i]`` begins an episode."""
        ...


def make_oracle(env_id: str, num_envs: int, **env_kwargs: Any) -> Oracle:
    """The oracle of a built-in env, for ``num_envs`` copies made with ``env_kwargs``."""
    env = builtin_env(env_id)
    oracle_class = getattr(importlib.import_module(env.module), env.oracle)
    return oracle_class(num_envs, **{**env.kwargs, **env_kwargs})


def run_oracle(env_id: str, num_episodes: int, num_envs: int = 16, seed: int = 0, **env_kwargs: Any) -> np.ndarray:
    """Run a built-in env's oracle on its native vector env; the returns of the first ``num_episodes`` episodes."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    oracle = make_oracle(env_id, num_envs, **env_kwargs)
    observations, _ = envs.reset(seed=seed)
    episode_starts = np.ones(num_envs, dtype=bool)
    autoresetting = np.zeros(num_envs, dtype=bool)
    running_returns = np.zeros(num_envs)
    returns: list[float] = []
    try:
        while len(returns) < num_episodes:
            actions = oracle.act(observations, episode_starts)
            observations, rewards, terminated, truncated, _ = envs.step(actions)
            # Under NEXT_STEP autoreset the step after an episode ends returns the next episode's
            # first observation (reward 0): that observation is where a new episode starts.
            episode_starts = autoresetting
            running_returns += rewards
            done = terminated | truncated
            returns.extend(running_returns[done].tolist())
            running_returns[done] = 0.0
            autoresetting = done
    finally:
        envs.close()
    return np.asarray(returns[:num_episodes])
