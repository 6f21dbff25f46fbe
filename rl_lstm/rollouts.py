"""What a gradient trainer's collection shares, in-process or in a Ray worker: acting, env calls, episode records.

Every random number an action is drawn with belongs to one env copy: it is a hash of (the rollout's noise key, the
copy's index in the whole rollout, the step), not the next draw of a generator shared by the batch. So a copy acts
the same whether it is stepped with all the others in one process or with a few of them in a Ray worker, and a Ray
run of 2 workers x 4 copies repeats the in-process run of 8 copies exactly (``tests/test_ray_training.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rl_lstm.errors import EnvStepError
from rl_lstm.logger import reported_episodes
from rl_lstm.policies import CategoricalDistribution, RecurrentActorCritic, map_observation

State = tuple[torch.Tensor, ...]

# SplitMix64 (Steele, Lea & Flood 2014): a fast bijective mixer of 64-bit words, good enough for action noise.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(words: np.ndarray) -> np.ndarray:
    words = (words ^ (words >> np.uint64(30))) * _MIX_1
    words = (words ^ (words >> np.uint64(27))) * _MIX_2
    return words ^ (words >> np.uint64(31))


def copy_uniforms(noise_key: int, copies: np.ndarray, steps: int | np.ndarray, count: int) -> np.ndarray:
    """Uniform numbers in (0, 1) that depend only on (key, copy, step, k): ``[len(copies), count]`` for one step,
    ``[len(steps), len(copies), count]`` for an array of steps."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around, as the mixer intends
        words = _mix(np.uint64(noise_key % 2**64) + copies.astype(np.uint64)[:, None] * _GOLDEN)  # [B, 1]
        step_words = np.asarray(steps, dtype=np.uint64)[..., None, None] * _GOLDEN  # [(S,) 1, 1]
        words = _mix(words + step_words + np.arange(count, dtype=np.uint64))
    return ((words >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53  # 53 random bits, never 0 or 1


def action_noise(distribution: Any, noise_key: int, copies: np.ndarray, steps: int | np.ndarray) -> torch.Tensor:
    """What draws ``distribution``'s actions at ``steps``, on its device: Gumbel noise per category, or standard
    normals per dimension (Box-Muller), ``[B, count]`` for one step, ``[len(steps), B, count]`` for an array."""
    if isinstance(distribution, CategoricalDistribution):
        log_probs = distribution.log_probs  # [1, B, D, K]
        uniforms = copy_uniforms(noise_key, copies, steps, int(np.prod(log_probs.shape[2:])))
        return torch.as_tensor(-np.log(-np.log(uniforms)), dtype=log_probs.dtype, device=log_probs.device)
    mean = distribution.normal.mean  # [1, B, D]
    half = mean.shape[-1]
    uniforms = copy_uniforms(noise_key, copies, steps, 2 * half)
    normals = np.sqrt(-2.0 * np.log(uniforms[..., :half])) * np.cos(2.0 * np.pi * uniforms[..., half:])
    return torch.as_tensor(normals, dtype=mean.dtype, device=mean.device)


def draw_actions(distribution: Any, noise: torch.Tensor) -> torch.Tensor:
    """A sample of ``distribution`` over ``[1, B]`` from one step's :func:`action_noise`, ``[B, count]``."""
    if isinstance(distribution, CategoricalDistribution):
        log_probs = distribution.log_probs  # [1, B, D, K]
        choices = (log_probs + noise.reshape(log_probs.shape)).argmax(-1)  # [1, B, D]: exactly a categorical sample
        return distribution.unflat(choices + distribution.start)
    mean, std = distribution.normal.mean, distribution.normal.stddev  # [1, B, D]
    return distribution.unflat(mean + std * noise.reshape(mean.shape))


def sample_actions(distribution: Any, noise_key: int, copies: np.ndarray, step: int) -> torch.Tensor:
    """A sample of ``distribution`` over ``[1, B]`` drawn with each copy's own noise at ``step``."""
    return draw_actions(distribution, action_noise(distribution, noise_key, copies, step))


# Steps of action noise drawn at once: one numpy computation and one host-to-device copy per block, not per step.
NOISE_BLOCK = 64


class Collector:
    """What every trainer's collector shares: a vector env, the policy acting in it, and which copies of the whole
    batch its copies are (``first_copy, first_copy + 1, ...``: the index picks a copy's reset seed and action noise,
    so a copy acts the same in-process and in any Ray worker)."""

    def __init__(self, env: gym.vector.VectorEnv, policy: RecurrentActorCritic, env_id: str, first_copy: int):
        self.env, self.policy, self.env_id = env, policy, env_id
        self.copies = np.arange(first_copy, first_copy + env.num_envs)
        self.env_steps = 0
        self._noise: tuple[int, int, torch.Tensor] | None = None  # key, first step, [NOISE_BLOCK, B, count]

    def act(self, observations: Any, state: State, episode_starts: np.ndarray, masks: np.ndarray | None,
            noise_key: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]:
        """``policy.act`` for training: unclipped actions drawn with each copy's noise at (``noise_key``, ``step``),
        their log-probs, values and the new state."""
        policy = self.policy
        distribution, values, state = policy.forward_sequence(
            map_observation(lambda array: np.asarray(array)[None], observations),
            state,
            torch.as_tensor(episode_starts, device=policy.device)[None],
            None if masks is None else torch.as_tensor(masks, device=policy.device)[None],
        )
        first = step - step % NOISE_BLOCK
        if self._noise is None or self._noise[:2] != (noise_key, first):
            steps = np.arange(first, first + NOISE_BLOCK)
            self._noise = (noise_key, first, action_noise(distribution, noise_key, self.copies, steps))
        actions = draw_actions(distribution, self._noise[2][step - first])
        return actions[0], distribution.log_prob(actions)[0], values[0], state

    def reset_env(self, seed: int) -> tuple[Any, dict[str, Any]]:
        """Reset every copy, copy ``i`` of the whole batch seeded ``seed + i`` (as one vector env seeds its copies)."""
        return self._call_env("reset", seed=seed + int(self.copies[0]))

    def step_env(self, actions: torch.Tensor) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy with ``actions`` clipped into the action space."""
        outcome = self._call_env("step", self.policy.clip_actions(actions).cpu().numpy())
        self.env_steps += self.env.num_envs
        return outcome

    def _call_env(self, call: str, *args: Any, **kwargs: Any) -> Any:
        """``env.reset``/``env.step``; an error names the env and the env step it happened at."""
        return call_env(self.env, self.env_id, call, f"env step {self.env_steps:,}", *args, **kwargs)


def call_env(env: gym.vector.VectorEnv, env_id: str, call: str, where: str, *args: Any, **kwargs: Any) -> Any:
    """``env.reset``/``env.step``; an error becomes an :class:`EnvStepError` naming the env and ``where`` it was."""
    try:
        return getattr(env, call)(*args, **kwargs)
    except Exception as error:
        raise EnvStepError(
            f"env {env_id!r} raised {type(error).__name__} in {call}() at {where}: "
            f"{error}. Checkpoints already written are intact; fix the env and resume the run."
        ) from error


@dataclass
class EpisodeRecords:
    """The episodes that ended at each step, per copy, ``[T, B]``: what ``EpisodeStatistics`` reads from infos.

    A Ray worker returns its copies' records; the learner puts them side by side and replays them step by step, so
    the statistics see the episodes in the order an in-process run sees them.
    """

    ended: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    success_reported: np.ndarray
    successes: np.ndarray
    # The episodes as the env's own statistics report them (``env_episode``: see rl_lstm.vec_env.ForeignEnvBoundary).
    env_ended: np.ndarray
    env_returns: np.ndarray
    env_lengths: np.ndarray

    @classmethod
    def from_infos(cls, infos_per_step: list[dict[str, Any]], num_envs: int) -> EpisodeRecords:
        """Read ``RecordEpisodeStatistics``'s ``episode``, the env's own ``env_episode`` and its ``is_success`` from
        every step's infos."""
        steps = len(infos_per_step)
        dtypes = (bool, float, np.int64, bool, bool, bool, float, np.int64)
        records = cls(*(np.zeros((steps, num_envs), dtype=dtype) for dtype in dtypes))
        for t, infos in enumerate(infos_per_step):
            ours, the_env_s = reported_episodes(infos, "episode"), reported_episodes(infos, "env_episode")
            if ours is not None:
                records.ended[t], records.returns[t], records.lengths[t] = ours
            if the_env_s is not None:
                records.env_ended[t], records.env_returns[t], records.env_lengths[t] = the_env_s
            if "is_success" in infos:
                records.success_reported[t] = infos["_is_success"]
                records.successes[t] = np.asarray(infos["is_success"], dtype=bool)
        return records

    @classmethod
    def side_by_side(cls, parts: list[EpisodeRecords]) -> EpisodeRecords:
        """The records of several workers' copies as one batch; a shorter part's last steps end nothing."""
        steps = max(len(part.ended) for part in parts)
        padded = [
            [np.pad(array, ((0, steps - len(array)), (0, 0))) for array in vars(part).values()] for part in parts
        ]
        return cls(*(np.concatenate(arrays, axis=1) for arrays in zip(*padded)))

    def replay(self, statistics: Any) -> None:
        """Feed ``statistics`` (an ``EpisodeStatistics``) the episodes step by step, copies in order."""
        reported = self.ended | self.success_reported | self.env_ended
        for t in np.flatnonzero(reported.any(axis=1)):
            statistics.update(
                {
                    "episode": {"r": self.returns[t], "l": self.lengths[t]},
                    "_episode": self.ended[t],
                    "env_episode": {"r": self.env_returns[t], "l": self.env_lengths[t]},
                    "_env_episode": self.env_ended[t],
                    "is_success": self.successes[t],
                    "_is_success": self.success_reported[t],
                }
            )
