"""Count-based exploration for the gradient trainers: a reward bonus for observations the agent has seen rarely.

After #Exploration (H. Tang, R. Houthooft, D. Foote, A. Stooke, X. Chen, Y. Duan, J. Schulman, F. De Turck,
P. Abbeel, "#Exploration: A Study of Count-Based Exploration for Deep Reinforcement Learning", NeurIPS 2017): every
observation is hashed by SimHash, ``sign(A g(s))`` with ``A`` a fixed ``bits x D`` Gaussian matrix and ``g(s)`` the
observation flattened, and each step's reward gains ``count_bonus / sqrt(n)``, ``n`` the number of times the hash of
the observation it reached has been seen in training (this one included). Ours appends a constant 1 to ``g(s)``, so
the hyperplanes need not pass through the origin and observations that differ only in scale (``[0, 1]`` and
``[0, 2]``) can hash apart; Discrete parts are one-hot.

Why: where the information a memory must hold lies off the greedy path (Ni et al.'s active T-maze: the cue one step
behind the start, and stepping back costs pace), the policy stops visiting it before memory can make the visit
pay. The bonus pays the first visits of a rarely seen observation, and fades as it is seen (README, "Long memory").

The counts are a table of ``2 ** bits`` entries updated as arrays, no Python work per env copy per step. They are
statistics of the training env like the normalizers' (saved with checkpoints, carried from one curriculum stage to
the next); evaluation envs have no bonus. With ``backend: ray`` each worker counts what its own copies see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from rl_lstm.config import require, require_next_step_autoreset
from rl_lstm.errors import ConfigError

DEFAULT_BITS = 16  # 65,536 buckets: each observation of a small maze its own, 512 KiB of counts
MAX_BITS = 24  # a table of 2**24 counts (128 MiB as int64) is the most we allocate
PROJECTION_SEED = 0  # the hash is fixed, so a checkpoint's counts stay valid when it is loaded


@dataclass
class ExplorationConfig:
    """The count bonus's keys (shared by the gradient trainers' configs)."""

    # reward bonus count_bonus / sqrt(n) for reaching an observation whose SimHash has been seen n times (Tang et
    # al. 2017); 0: off. The env's own rewards are what episodes, evaluations and TensorBoard's returns report.
    count_bonus: float = 0.0
    count_bonus_bits: int = DEFAULT_BITS  # SimHash bits: 2 ** bits buckets of observations

    def validate_exploration(self) -> None:
        """Range checks of the count bonus's keys."""
        require(self.count_bonus >= 0, f"count_bonus must be 0 (off) or positive, got {self.count_bonus}")
        require(
            1 <= self.count_bonus_bits <= MAX_BITS,
            f"count_bonus_bits must lie in 1..{MAX_BITS}, got {self.count_bonus_bits}",
        )


def flatten_batch(space: gym.Space, observations: Any, num_envs: int) -> np.ndarray:
    """``observations`` of ``num_envs`` copies as ``[num_envs, D]`` float32: Box, MultiBinary and MultiDiscrete values
    as they are, Discrete one-hot, Dict and Tuple parts side by side."""
    if isinstance(space, gym.spaces.Discrete):
        return np.eye(space.n, dtype=np.float32)[np.asarray(observations).reshape(num_envs) - space.start]
    if isinstance(space, gym.spaces.Dict):
        return np.concatenate([flatten_batch(part, observations[key], num_envs) for key, part in space.items()], 1)
    if isinstance(space, gym.spaces.Tuple):
        return np.concatenate([flatten_batch(part, obs, num_envs) for part, obs in zip(space, observations)], 1)
    if isinstance(space, (gym.spaces.Box, gym.spaces.MultiBinary, gym.spaces.MultiDiscrete)):
        return np.asarray(observations, dtype=np.float32).reshape(num_envs, -1)
    raise ConfigError(f"count_bonus hashes Box, Discrete, MultiBinary, MultiDiscrete, Dict and Tuple observations, "
                      f"not {space}; set count_bonus: 0")


class CountBonus(gym.vector.VectorWrapper):
    """Adds ``scale / sqrt(n)`` to each step's reward, ``n`` the count of the reached observation's SimHash bucket.

    The step that autoresets a finished copy (gymnasium's NEXT_STEP mode) is no transition: it is neither counted nor
    paid. ``counts`` is the table a checkpoint keeps.
    """

    def __init__(self, env: gym.vector.VectorEnv, scale: float, bits: int) -> None:
        super().__init__(env)
        require_next_step_autoreset(env, "count_bonus")
        self.scale = scale
        space = env.single_observation_space
        size = flatten_batch(space, batch_space(space, 1).sample(), 1).shape[1]
        generator = np.random.default_rng(PROJECTION_SEED)
        self.projection = generator.standard_normal((size + 1, bits)).astype(np.float32)  # the last row: the constant
        self.powers = (1 << np.arange(bits, dtype=np.int64))
        self.counts = np.zeros(1 << bits, dtype=np.int64)
        self.autoresetting = np.zeros(self.num_envs, dtype=bool)

    def buckets(self, observations: Any) -> np.ndarray:
        """The SimHash bucket of each copy's observation, ``[num_envs]`` int64."""
        flat = flatten_batch(self.env.single_observation_space, observations, self.num_envs)
        signs = flat @ self.projection[:-1] + self.projection[-1] > 0
        return signs.astype(np.int64) @ self.powers

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the copies (those of ``options["reset_mask"]`` only, where given); none of them is autoresetting."""
        # Read before the reset: gymnasium's RecordEpisodeStatistics pops the mask from the options.
        reset_mask = (options or {}).get("reset_mask")
        resets = np.ones(self.num_envs, dtype=bool) if reset_mask is None else np.array(reset_mask, dtype=bool)
        observations, infos = self.env.reset(seed=seed, options=options)
        self.autoresetting = self.autoresetting & ~resets
        return observations, infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step the copies; each reward gains the bonus of the observation it reached."""
        observations, rewards, terminated, truncated, infos = self.env.step(actions)
        buckets = self.buckets(observations)
        transitions = ~self.autoresetting
        np.add.at(self.counts, buckets[transitions], 1)
        bonus = np.where(transitions, self.scale / np.sqrt(np.maximum(self.counts[buckets], 1)), 0.0)
        self.autoresetting = np.logical_or(terminated, truncated)
        return observations, np.asarray(rewards, dtype=np.float64) + bonus, terminated, truncated, infos
