"""Recurrent REINFORCE: policy gradients through whole episodes (Wierstra et al., "Recurrent Policy Gradients").

D. Wierstra, A. Foerster, J. Peters, J. Schmidhuber, "Solving Deep Memory POMDPs with Recurrent Policy
Gradients", ICANN 2007; journal version "Recurrent policy gradients", Logic Journal of the IGPL 18(5), 2010.
An LSTM policy acts for whole episodes; the gradient of the log-likelihood of every action, weighted by the
return that followed it minus a baseline, is backpropagated through the entire episode (full BPTT).

Read top to bottom: the hyperparameters, then ``_iterate`` = collect one complete episode from every env
copy -> returns-to-go and advantages -> one gradient step -> scalars to log. The training loop, logging,
checkpoints and configs are shared with the other agents (``rl_lstm``). An :class:`EpisodeCollector` plays the
episodes; with ``backend="ray"`` every Ray worker holds one over its own copies and plays their episodes, and the
learner puts the parts side by side (``rl_lstm.ray_workers``).

Deviations from the paper, both options that are off by default:
- ``bptt_truncation``: backpropagate through windows of that many steps, carrying the core state (without
  its gradient) from one window to the next, for episodes too long to backpropagate through whole.
- ``baseline="value"`` learns the baseline with a critic (its own core unless ``shared_core``); the paper
  subtracts a running average of the return, which is ``baseline="mean"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rl_lstm.agent import SCHEDULES, EnvConfig, PolicyConfig, RecurrentAgent, check_finite, scheduled
from rl_lstm.buffers import stack_observations
from rl_lstm.config import require
from rl_lstm.errors import NumericalError
from rl_lstm.exploration import ExplorationConfig
from rl_lstm.logger import EpisodeStatistics
from rl_lstm.policies import map_observation
from rl_lstm.ray_workers import RayBackend, RolloutWorkersConfig
from rl_lstm.rollouts import Collector, EpisodeRecords
from rl_lstm.vec_env import action_masks

BASELINES = ("value", "mean", "none")


@dataclass
class ReinforceConfig(EnvConfig, PolicyConfig, RolloutWorkersConfig, ExplorationConfig):
    """Hyperparameters of recurrent REINFORCE (plus the env and policy keys it shares with the other agents)."""

    num_envs: int = 16  # episodes per update: every env copy plays one complete episode
    learning_rate: float = 3e-3  # Adam step size (the start value under the linear schedule)
    lr_schedule: str = "constant"  # "constant" or "linear" (decays to 0 at the end of learn)
    gamma: float = 0.99  # discount of the returns-to-go
    baseline: str = "value"  # "value" (learned critic), "mean" (running mean of returns, as the paper) or "none"
    baseline_decay: float = 0.9  # weight of the old running mean per update, for baseline="mean"
    normalize_advantage: bool = True  # scale the batch's advantages to zero mean and unit variance
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight (baseline="value")
    max_grad_norm: float = 0.5  # clip the gradient's global norm
    bptt_truncation: int | None = None  # None: full BPTT through each episode (the paper); else window length
    max_episode_steps: int = 100_000  # an episode still running after this many steps is cut (safety net)
    skip_nonfinite_batches: bool = False  # skip an update whose loss or gradient is NaN/inf instead of stopping

    def validate(self) -> None:
        """Range checks: each error names the key and what is allowed."""
        self.validate_env()
        self.validate_backend()
        self.validate_exploration()
        require(
            not (self.backend == "ray" and self.normalize_rewards),
            "normalize_rewards with backend 'ray' is not supported by reinforce: in-process, the reward scale also "
            "sees the steps that copies done early keep taking, which Ray workers do not take; set one of them off",
        )
        require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        require(self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {', '.join(SCHEDULES)}")
        require(0 <= self.gamma <= 1, f"gamma must lie in [0, 1], got {self.gamma}")
        require(self.baseline in BASELINES, f"baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        require(0 <= self.baseline_decay < 1, f"baseline_decay must lie in [0, 1), got {self.baseline_decay}")
        require(self.max_grad_norm > 0, f"max_grad_norm must be positive, got {self.max_grad_norm}")
        require(self.bptt_truncation is None or self.bptt_truncation >= 1, "bptt_truncation must be >= 1 or null")
        require(self.max_episode_steps >= 1, f"max_episode_steps must be at least 1, got {self.max_episode_steps}")


@dataclass
class EpisodeBatch:
    """Complete episodes padded to the longest: arrays ``[T, num_episodes, ...]``; ``valid`` marks real steps."""

    observations: Any
    actions: np.ndarray
    action_masks: np.ndarray | None
    rewards: np.ndarray
    valid: np.ndarray

    @classmethod
    def side_by_side(cls, parts: list[EpisodeBatch]) -> EpisodeBatch:
        """The batches of several workers as one; a shorter part is padded with invalid steps repeating its last."""
        steps = max(len(part.valid) for part in parts)

        def padded(array: np.ndarray, mode: str) -> np.ndarray:
            return np.pad(array, [(0, steps - len(array))] + [(0, 0)] * (array.ndim - 1), mode=mode)

        join = lambda name, mode: np.concatenate([padded(getattr(p, name), mode) for p in parts], axis=1)  # noqa: E731
        return cls(
            observations=stack_observations(
                [map_observation(lambda array: padded(array, "edge"), part.observations) for part in parts],
                lambda arrays: np.concatenate(arrays, axis=1),
            ),
            actions=join("actions", "edge"),
            action_masks=None if parts[0].action_masks is None else join("action_masks", "edge"),
            rewards=join("rewards", "constant"),
            valid=join("valid", "constant"),
        )


def returns_to_go(rewards: np.ndarray, valid: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted sum of each step's reward and every later one of its episode, ``[T, B]``."""
    returns = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros(rewards.shape[1], dtype=np.float32)
    for t in reversed(range(rewards.shape[0])):
        running = (rewards[t] + gamma * running) * valid[t]
        returns[t] = running
    return returns


@dataclass
class EpisodePart:
    """What a collector hands the learner: its copies' episodes and their statistics."""

    batch: EpisodeBatch
    episodes: EpisodeRecords
    memory_magnitude: float  # mean |cell state| over the steps


class EpisodeCollector(Collector):
    """Plays every copy of a vector env from a reset to the end of its episode: a batch, or a Ray worker's part."""

    def __init__(self, *args: Any, max_episode_steps: int) -> None:
        super().__init__(*args)
        self.max_episode_steps = max_episode_steps

    def collect(self, reset_seed: int, noise_key: int) -> EpisodePart:
        """Run every copy from a reset (seeded ``reset_seed`` + its index) to the end of its episode; copies that
        finish first wait, masked."""
        num_envs = self.env.num_envs
        observations, infos = self.reset_env(reset_seed)
        state = self.policy.initial_state(num_envs)
        episode_starts = np.ones(num_envs, dtype=bool)
        finished = np.zeros(num_envs, dtype=bool)
        steps: list[dict[str, Any]] = []
        infos_per_step: list[dict[str, Any]] = []
        cell_magnitude = torch.zeros((), device=self.policy.device)  # summed on the device, read once at the end
        self.policy.eval()
        with torch.no_grad():
            while not finished.all():
                masks = action_masks(self.env, infos)
                actions, _, _, state = self.act(observations, state, episode_starts, masks, noise_key, len(steps))
                cell_magnitude += self.policy.memory(state).abs().mean()
                steps.append(
                    {
                        "observations": map_observation(np.copy, observations),
                        "actions": actions.cpu().numpy(),
                        "action_masks": masks,
                        "valid": ~finished,
                    }
                )
                observations, rewards, terminated, truncated, infos = self.step_env(actions)
                steps[-1]["rewards"] = np.where(finished, 0.0, rewards)
                # Only the batch's own episodes count: a copy that finished goes on (autoreset) unrecorded.
                infos_per_step.append(_only_copies(infos, ~finished))
                # A copy's episode may end after max_episode_steps (the safety net), counted as truncated.
                finished = finished | terminated | truncated | (len(steps) >= self.max_episode_steps)
                episode_starts = np.zeros(num_envs, dtype=bool)
        batch = EpisodeBatch(
            observations=stack_observations([step["observations"] for step in steps]),
            actions=np.stack([step["actions"] for step in steps]),
            action_masks=None if steps[0]["action_masks"] is None else np.stack([s["action_masks"] for s in steps]),
            rewards=np.stack([step["rewards"] for step in steps]).astype(np.float32),
            valid=np.stack([step["valid"] for step in steps]),  # [T, B]
        )
        episodes = EpisodeRecords.from_infos(infos_per_step, num_envs)
        return EpisodePart(batch, episodes, cell_magnitude.item() / len(steps))

    def episode_state(self) -> None:
        """No episodes are carried from one batch to the next: every batch starts from a reset."""
        return None


class RecurrentReinforce(RayBackend, RecurrentAgent):
    """Recurrent REINFORCE (Recurrent Policy Gradients) with an LSTM (or GRU, peephole LSTM) policy.

    ``RecurrentReinforce(env, seed=0, device="cpu", tensorboard_log=None, **hyperparams)``; ``hyperparams`` are the
    fields of :class:`ReinforceConfig`. The API is RecurrentPPO's: ``.learn``, ``.predict``, ``.save``, ``.load``.
    """

    name = "reinforce"
    config_class = ReinforceConfig

    def _setup(self) -> None:
        """The collector or the Ray workers, and the running mean of the returns (baseline="mean")."""
        self._start_collection(EpisodeCollector, max_episode_steps=self.config.max_episode_steps)
        self.baseline_mean = 0.0

    # ---- one iteration: collect -> targets -> update ------------------------------------------------------------
    def _iterate(self, statistics: EpisodeStatistics, progress: float) -> dict[str, float]:
        """Collect one episode per env copy, then take one policy-gradient step on them."""
        batch, episode_scalars = self._collect_episodes(statistics)
        returns = returns_to_go(batch.rewards, batch.valid, self.config.gamma)
        return {**episode_scalars, **self._update(batch, returns, progress)}

    # ---- 1. collect -----------------------------------------------------------------------------------------------
    def _collect_episodes(self, statistics: EpisodeStatistics) -> tuple[EpisodeBatch, dict[str, float]]:
        """One complete episode from every env copy (in-process, or its parts from the Ray workers)."""
        reset_seed = int(self.rng.integers(2**31))
        noise_key = int(self.rng.integers(2**63))  # the batch's action noise (rl_lstm.rollouts)
        if self.workers is None:
            parts = [self.collector.collect(reset_seed, noise_key)]
        else:
            parts = self.workers.collect(self.policy, self.env, reset_seed, noise_key)
        batch = EpisodeBatch.side_by_side([part.batch for part in parts])
        EpisodeRecords.side_by_side([part.episodes for part in parts]).replay(statistics)
        self.num_timesteps += int(batch.valid.sum())
        return batch, {
            "train/cell_state_abs_mean": float(np.mean([part.memory_magnitude for part in parts])),
            "rollout/batch_ep_len_mean": float(batch.valid.sum(0).mean()),
        }

    # ---- 2. update ------------------------------------------------------------------------------------------------
    def _update(self, batch: EpisodeBatch, returns: np.ndarray, progress: float) -> dict[str, float]:
        """One gradient step on the log-likelihood of the batch's actions, weighted by advantage."""
        config = self.config
        learning_rate = scheduled(config.learning_rate, config.lr_schedule, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        loss, parts = self._loss(batch, returns)
        self.optimizer.zero_grad(set_to_none=True)
        skipped = 0
        grad_norm = torch.full((), float("nan"))
        try:
            check_finite({"loss": loss})
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), config.max_grad_norm)
            check_finite({"gradient norm": grad_norm})
            self.optimizer.step()
        except NumericalError:
            if not config.skip_nonfinite_batches:
                raise
            skipped = 1
        check_finite(dict(self.policy.named_parameters()))
        if config.baseline == "mean":
            mean_return = float(returns[batch.valid].mean())
            self.baseline_mean = config.baseline_decay * self.baseline_mean + (1 - config.baseline_decay) * mean_return
        return {
            **{f"train/{name}": value.item() for name, value in parts.items()},
            "train/grad_norm": grad_norm.item(),
            "train/learning_rate": learning_rate,
            "train/baseline_mean": self.baseline_mean,
            "train/skipped_batches": skipped,
        }

    def _loss(self, batch: EpisodeBatch, returns: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """REINFORCE's loss over the padded episodes: its gradient is the policy gradient (plus baseline terms)."""
        config = self.config
        valid = torch.as_tensor(batch.valid, dtype=torch.float32, device=self.device)
        returns_t = torch.as_tensor(returns, device=self.device)
        log_prob, entropy, values = self._evaluate_episodes(batch)  # each [T, B]
        weights = valid / valid.sum()  # a mean over the real steps of all episodes
        if config.baseline == "value":
            advantages = returns_t - values.detach()
        elif config.baseline == "mean":
            advantages = returns_t - self.baseline_mean
        else:
            advantages = returns_t
        if config.normalize_advantage:
            mean = (advantages * weights).sum()
            std = (((advantages - mean) ** 2) * weights).sum().sqrt()
            advantages = (advantages - mean) / (std + 1e-8)
        policy_loss = -(advantages * log_prob * weights).sum()
        entropy_loss = -(entropy * weights).sum()
        value_loss = (((returns_t - values) ** 2) * weights).sum() if config.baseline == "value" else torch.zeros(())
        loss = policy_loss + config.ent_coef * entropy_loss + config.vf_coef * value_loss
        return loss, {"policy_gradient_loss": policy_loss, "value_loss": value_loss, "entropy_loss": entropy_loss}

    def _evaluate_episodes(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities, entropies and values of the batch ``[T, B]``: one core call per BPTT window.

        Every episode starts at t = 0 of its column, so no reset falls inside the padded batch and a window is one
        fused kernel call; without truncation the whole episode is one window (full BPTT).
        """
        horizon = batch.valid.shape[0]
        window = self.config.bptt_truncation or horizon
        state = self.policy.initial_state(batch.valid.shape[1])
        no_starts = torch.zeros(batch.valid.shape, dtype=torch.bool, device=self.device)
        actions = torch.as_tensor(batch.actions, device=self.device)
        masks = None if batch.action_masks is None else torch.as_tensor(batch.action_masks, device=self.device)
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for begin in range(0, horizon, window):
            end = min(begin + window, horizon)
            observations = map_observation(lambda array: array[begin:end], batch.observations)  # noqa: B023
            distribution, values, state = self.policy.forward_sequence(
                observations, state, no_starts[begin:end], None if masks is None else masks[begin:end]
            )
            parts.append((distribution.log_prob(actions[begin:end]), distribution.entropy(), values))
            state = tuple(tensor.detach() for tensor in state)  # truncation: no gradient across windows
        return tuple(torch.cat(columns) for columns in zip(*parts))  # type: ignore[return-value]

    # ---- saving ---------------------------------------------------------------------------------------------------
    def _training_state(self) -> dict[str, Any]:
        return {**super()._training_state(), "baseline_mean": self.baseline_mean}

    def _load_training_state(self, state: dict[str, Any]) -> None:
        super()._load_training_state(state)
        self.baseline_mean = state["baseline_mean"]


def _only_copies(infos: dict[str, Any], copies: np.ndarray) -> dict[str, Any]:
    """``infos`` with the end-of-episode entries (``episode``, ``env_episode``, ``is_success``) of other copies masked
    out."""
    kept = dict(infos)
    for key in ("episode", "env_episode", "is_success"):
        if f"_{key}" in kept:
            kept[f"_{key}"] = kept[f"_{key}"] & copies
    return kept
