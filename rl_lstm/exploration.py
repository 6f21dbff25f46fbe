"""Count-based exploration: a reward bonus for rarely seen observations (gradient trainers), novelty (Evolino).

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

Evolino ranks fixed networks, so a bonus inside its episodes' rewards would change the task between the networks of a
generation. Its ``novelty_bonus`` is a fitness term instead (``population_novelty``): an episode's novelty is the sum,
over the distinct buckets of the observations it reached (``EpisodeVisits``), of ``1 / sqrt(n)``, ``n`` the number of
the generation's episodes that reached that bucket: the rare behaviours of a generation count, however often an
episode repeats them, and a behaviour that spreads through the population stops paying (novelty search, J. Lehman
and K. O. Stanley, "Abandoning Objectives: Evolution through the Search for Novelty Alone", Evolutionary Computation
19(2), 2011, with #Exploration's counts as the measure of novelty).
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
        require_bonus_settings("count_bonus", self.count_bonus, "count_bonus_bits", self.count_bonus_bits)


def require_bonus_settings(bonus_key: str, bonus: float, bits_key: str, bits: int) -> None:
    """A bonus scale is 0 (off) or positive and its SimHash has 1 to ``MAX_BITS`` bits (ConfigError naming the key)."""
    require(bonus >= 0, f"{bonus_key} must be 0 (off) or positive, got {bonus}")
    require(1 <= bits <= MAX_BITS, f"{bits_key} must lie in 1..{MAX_BITS}, got {bits}")


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


class SimHash:
    """Buckets of observations: ``sign(A [g(s); 1])`` as a ``bits``-bit integer, ``A`` fixed by ``PROJECTION_SEED``.

    Fixed, so counts saved with a checkpoint, or kept by a Ray worker, hash the same observations alike.
    """

    def __init__(self, space: gym.Space, bits: int) -> None:
        self.space = space
        size = flatten_batch(space, batch_space(space, 1).sample(), 1).shape[1]
        generator = np.random.default_rng(PROJECTION_SEED)
        self.projection = generator.standard_normal((size + 1, bits)).astype(np.float32)  # the last row: the constant
        self.powers = (1 << np.arange(bits, dtype=np.int64))

    def buckets(self, observations: Any, num_envs: int) -> np.ndarray:
        """The bucket of each of ``num_envs`` copies' observations, ``[num_envs]`` int64."""
        flat = flatten_batch(self.space, observations, num_envs)
        signs = flat @ self.projection[:-1] + self.projection[-1] > 0
        return signs.astype(np.int64) @ self.powers


class CountBonus(gym.vector.VectorWrapper):
    """Adds ``scale / sqrt(n)`` to each step's reward, ``n`` the count of the reached observation's SimHash bucket.

    The step that autoresets a finished copy (gymnasium's NEXT_STEP mode) is no transition: it is neither counted nor
    paid. ``counts`` is the table a checkpoint keeps.
    """

    def __init__(self, env: gym.vector.VectorEnv, scale: float, bits: int) -> None:
        super().__init__(env)
        require_next_step_autoreset(env, "count_bonus")
        self.scale = scale
        self.hash = SimHash(env.single_observation_space, bits)
        self.counts = np.zeros(1 << bits, dtype=np.int64)
        self.autoresetting = np.zeros(self.num_envs, dtype=bool)

    def buckets(self, observations: Any) -> np.ndarray:
        """The SimHash bucket of each copy's observation, ``[num_envs]`` int64."""
        return self.hash.buckets(observations, self.num_envs)

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


class EpisodeVisits:
    """The distinct SimHash buckets each of a batch of episodes reached, kept sparse: ``(copy, bucket)`` pairs.

    For Evolino's novelty bonus. Pairs are deduplicated as they pile up, so a 100,000-step episode holds one entry
    per distinct bucket it reached, not one per step.
    """

    def __init__(self, space: gym.Space, bits: int, num_copies: int) -> None:
        self.hash = SimHash(space, bits)
        self.bits = bits
        self.num_copies = num_copies
        self.keys = np.empty(0, dtype=np.int64)  # copy << bits | bucket, unique
        self.pending: list[np.ndarray] = []
        self.pending_size = 0

    def add(self, observations: Any, copies: np.ndarray) -> None:
        """Record the observation of every copy where ``copies [num_copies]`` (bool) is True."""
        buckets = self.hash.buckets(observations, self.num_copies)
        keys = (np.flatnonzero(copies).astype(np.int64) << self.bits) | buckets[copies]
        self.pending.append(keys)
        self.pending_size += len(keys)
        if self.pending_size > 64 * self.num_copies:
            self._deduplicate()

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(copies, buckets)``: one entry for each distinct bucket each copy reached."""
        self._deduplicate()
        return self.keys >> self.bits, self.keys & ((1 << self.bits) - 1)

    def _deduplicate(self) -> None:
        self.keys = np.unique(np.concatenate([self.keys, *self.pending]))
        self.pending, self.pending_size = [], 0


def population_novelty(episodes: np.ndarray, buckets: np.ndarray, num_episodes: int) -> np.ndarray:
    """Each episode's novelty among a batch of episodes: the sum over the distinct buckets it reached of
    ``1 / sqrt(n)``, ``n`` the number of the batch's episodes that reached that bucket (it included).

    ``episodes`` and ``buckets`` are :meth:`EpisodeVisits.pairs` over the batch; returns ``[num_episodes]``.
    """
    _, bucket_index, reached_by = np.unique(buckets, return_inverse=True, return_counts=True)
    return np.bincount(episodes, weights=1.0 / np.sqrt(reached_by[bucket_index]), minlength=num_episodes)
