"""Recurrent PPO: clipped PPO over stored sequences with truncated backpropagation through time.

Read top to bottom: the hyperparameters, then ``learn`` = collect a rollout -> compute GAE targets
-> update on minibatches of whole sequences -> log. What other agents share (cores, policy, buffer,
logging, checkpoints, configs) is imported from ``rl_lstm``.

Collection: a :class:`RolloutCollector` steps a vector env with the policy; in-process PPO holds one over all its
copies. With ``backend="ray"`` each Ray worker holds one over its own copies and the learner assembles their parts
into the same buffer (``rl_lstm.ray_workers``); the targets and the update are the same code either way.

Sequences: the rollout of ``n_steps`` per env is cut into chunks of ``seq_len`` steps whose core
state is stored when the rollout reaches them (truncated BPTT: gradients flow ``seq_len`` steps
back). A minibatch is ``batch_size / seq_len`` whole chunks, so it always holds ``batch_size`` steps;
the chunks are cut at episode starts and padded so the core runs once over the minibatch
(``rl_lstm.buffers``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rl_lstm.agent import SCHEDULES, EnvConfig, PolicyConfig, RecurrentAgent, check_finite, scheduled
from rl_lstm.buffers import RolloutBuffer
from rl_lstm.checkpoints import env_state, load_env_state
from rl_lstm.config import require
from rl_lstm.errors import NumericalError
from rl_lstm.exploration import ExplorationConfig
from rl_lstm.logger import EpisodeStatistics
from rl_lstm.policies import map_observation
from rl_lstm.ray_workers import RayBackend, RolloutWorkersConfig
from rl_lstm.rollouts import Collector, EpisodeRecords
from rl_lstm.vec_env import NormalizeReward, RolloutRewardNormalizer, action_masks, find_wrapper


@dataclass
class PPOConfig(EnvConfig, PolicyConfig, RolloutWorkersConfig, ExplorationConfig):
    """Hyperparameters of recurrent PPO (plus the env and policy keys it shares with the other agents)."""

    num_envs: int = 16  # env copies stepped together
    # One core for actor and critic: with separate ones only the critic learned the cue (its values differed by cue,
    # the actor's choices did not); shared, the critic's regression hands its memory to the actor.
    shared_core: bool = True
    # Rewards scaled by the running std of the returns: in a shared core, large returns (position-only CartPole's
    # reach 100) let the value loss take over the core's gradient; without it PPO's defaults solved CartPole on 1 of
    # 5 seeds, with it on 5 of 5.
    normalize_rewards: bool = True
    # Sequences of 128 steps: with 32 the gradient never reached a cue more than 32 steps before the decision, and
    # the T-maze of length 50 (51-step episodes) stayed at chance on 2 of 5 seeds; with 128 (a 2-chunk minibatch,
    # so as many updates per env step as before) it is solved on 5 of 5, as are the other tasks 32 solved.
    n_steps: int = 128  # steps per env per rollout
    seq_len: int = 128  # truncated-BPTT length in steps; n_steps must be a multiple of it
    batch_size: int = 256  # steps per minibatch (whole sequences): a multiple of seq_len, at most n_steps * num_envs
    n_epochs: int = 4  # passes over each rollout
    learning_rate: float = 1e-3  # Adam step size (the start value under the linear schedule)
    lr_schedule: str = "linear"  # "constant" or "linear" (decays to 0 at the end of learn)
    clip_range: float = 0.2  # PPO's ratio clip (the start value under the linear schedule)
    clip_schedule: str = "constant"  # "constant" or "linear"
    clip_range_vf: float | None = None  # clip value updates to this distance from the old values; None: no clip
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE's lambda
    # Off: once the policy is right, normalizing near-zero advantages turns value noise into full-size updates that
    # erase what memory holds (every memory preset turned it off; on the T-maze success fell from 98% to 50% with it).
    normalize_advantage: bool = False  # per minibatch, over real steps
    ent_coef: float = 0.01  # entropy bonus weight: keeps a decision that memory must inform exploring
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # clip the gradient's global norm
    target_kl: float | None = None  # stop the epochs of an update once approx KL exceeds 1.5 x this; None: never
    skip_nonfinite_batches: bool = False  # skip a minibatch whose loss or gradient is NaN/inf instead of stopping

    def validate(self) -> None:
        """Range checks: each error names the key and what is allowed."""
        self.validate_env()
        self.validate_backend()
        self.validate_exploration()
        require(self.n_steps >= 1, f"n_steps must be at least 1, got {self.n_steps}")
        require(self.seq_len >= 1, f"seq_len must be at least 1, got {self.seq_len}")
        require(
            self.n_steps % self.seq_len == 0, f"n_steps ({self.n_steps}) must be a multiple of seq_len ({self.seq_len})"
        )
        require(
            self.batch_size >= self.seq_len and self.batch_size % self.seq_len == 0,
            f"batch_size ({self.batch_size}) must be a positive multiple of seq_len ({self.seq_len})",
        )
        require(
            self.batch_size <= self.n_steps * self.num_envs,
            f"batch_size ({self.batch_size}) is larger than a rollout (n_steps * num_envs = "
            f"{self.n_steps * self.num_envs}); lower batch_size or raise n_steps or num_envs",
        )
        require(self.n_epochs >= 1, f"n_epochs must be at least 1, got {self.n_epochs}")
        require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        require(self.clip_range > 0, f"clip_range must be positive, got {self.clip_range}")
        require(self.clip_range_vf is None or self.clip_range_vf > 0, "clip_range_vf must be positive or null")
        require(0 <= self.gamma <= 1, f"gamma must lie in [0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"gae_lambda must lie in [0, 1], got {self.gae_lambda}")
        require(self.max_grad_norm > 0, f"max_grad_norm must be positive, got {self.max_grad_norm}")
        require(self.target_kl is None or self.target_kl > 0, "target_kl must be positive or null")
        for key in ("lr_schedule", "clip_schedule"):
            require(getattr(self, key) in SCHEDULES, f"{key} must be one of {', '.join(SCHEDULES)}")


@dataclass
class RolloutPart:
    """What a collector hands the learner: its buffer, the env's own rewards, values after the last step, episodes."""

    buffer: RolloutBuffer
    env_rewards: np.ndarray  # [n_steps, copies], before reward normalization (a Ray worker's env does none)
    last_values: np.ndarray  # [copies]
    episodes: EpisodeRecords
    memory_magnitude: float  # mean |cell state| over the steps


class RolloutCollector(Collector):
    """Steps a vector env with the policy for ``n_steps`` into its buffer: a whole rollout, or a Ray worker's part."""

    def __init__(self, *args: Any, n_steps: int, seq_len: int) -> None:
        super().__init__(*args)
        self.buffer = RolloutBuffer(n_steps, self.env.num_envs, seq_len, self.policy.device,
                                    self.policy.resets_in_kernel)
        self.rollout: dict[str, Any] | None = None  # what one rollout hands the next: observations, core state, ...

    def collect(self, reset_seed: int | None, noise_key: int) -> RolloutPart:
        """Fill the buffer, from a reset seeded ``reset_seed`` (+ first copy) when no rollout ran before."""
        num_envs = self.env.num_envs
        if self.rollout is None:
            observations, infos = self.reset_env(reset_seed)
            self.rollout = {
                "observations": observations,
                "infos": infos,
                "state": self.policy.initial_state(num_envs),
                "episode_starts": np.ones(num_envs, dtype=bool),
                "autoresetting": np.zeros(num_envs, dtype=bool),
            }
        rollout, buffer = self.rollout, self.buffer
        buffer.reset()
        env_rewards, infos_per_step = [], []
        memory_magnitude = torch.zeros((), device=self.policy.device)  # summed on the device, read once at the end
        self.policy.eval()
        with torch.inference_mode():
            for step in range(buffer.n_steps):
                masks = action_masks(self.env, rollout["infos"])
                state_before = rollout["state"]
                actions, log_probs, values, rollout["state"] = self.act(
                    rollout["observations"], state_before, rollout["episode_starts"], masks, noise_key, step
                )
                memory_magnitude += self.policy.memory(rollout["state"]).abs().mean()
                # The step after an episode ends is gymnasium's autoreset step: no transition, masked from the loss.
                buffer.add(
                    rollout["observations"],
                    actions,
                    masks,
                    log_probs,
                    values,
                    rollout["episode_starts"],
                    ~rollout["autoresetting"],
                    state_before,
                )
                observations, rewards, terminated, truncated, infos = self.step_env(actions)
                buffer.add_outcome(rewards, terminated, truncated)
                env_rewards.append(rewards)
                infos_per_step.append(infos)
                rollout["episode_starts"] = rollout["autoresetting"]
                rollout["autoresetting"] = terminated | truncated
                rollout["observations"], rollout["infos"] = observations, infos
            last_values = self.policy.predict_values(
                rollout["observations"], rollout["state"], torch.as_tensor(rollout["episode_starts"])
            )
        episodes = EpisodeRecords.from_infos(infos_per_step, num_envs)
        return RolloutPart(buffer, np.stack(env_rewards), last_values.cpu().numpy(), episodes,
                           memory_magnitude.item() / buffer.n_steps)

    def episode_state(self) -> dict[str, Any] | None:
        """The rollout carried to the next and the env's state, or None where the env's cannot be read."""
        state = None if self.rollout is None else env_state(self.env)
        return None if state is None else {"env": state, "rollout": self.rollout}

    def resume(self, state: dict[str, Any]) -> None:
        """Continue the rollout :meth:`episode_state` saved."""
        load_env_state(self.env, state["env"])
        rollout = state["rollout"]
        self.rollout = {
            **rollout,
            # Writable copies: Ray hands a worker read-only arrays.
            "observations": map_observation(np.array, rollout["observations"]),
            "episode_starts": np.array(rollout["episode_starts"]),
            "autoresetting": np.array(rollout["autoresetting"]),
            "state": tuple(tensor.to(self.policy.device) for tensor in rollout["state"]),
        }


class RecurrentPPO(RayBackend, RecurrentAgent):
    """Recurrent PPO with an LSTM (or GRU, peephole LSTM) actor-critic.

    ``RecurrentPPO(env, seed=0, device="cpu", tensorboard_log=None, **hyperparams)`` with ``env`` a gymnasium id
    (built-in ids use their native vector env), a gymnasium Env or a VectorEnv; ``hyperparams`` are the fields of
    :class:`PPOConfig`.
    """

    name = "ppo"
    config_class = PPOConfig
    adam_epsilon = 1e-5  # Stable-Baselines3's PPO and most PPO implementations

    def _setup(self) -> None:
        """The collector and its buffer, or the Ray workers, the learner's buffer and reward scaling."""
        config = self.config
        self._start_collection(RolloutCollector, n_steps=config.n_steps, seq_len=config.seq_len)
        if self.workers is not None:
            self.buffer = RolloutBuffer(config.n_steps, config.num_envs, config.seq_len, self.device,
                                        self.policy.resets_in_kernel)
            reward_wrapper = find_wrapper(self.env, NormalizeReward)
            self.reward_normalizer = None if reward_wrapper is None else RolloutRewardNormalizer(
                config.num_envs, config.gamma, reward_wrapper.return_rms
            )
        else:
            self.buffer = self.collector.buffer
        # A user's vector env may hold another number of copies than num_envs says.
        require(
            config.batch_size <= config.n_steps * self.buffer.n_envs,
            f"batch_size ({config.batch_size}) is larger than a rollout of this env (n_steps * num_envs = "
            f"{config.n_steps * self.buffer.n_envs})",
        )

    @property
    def _rollout(self) -> dict[str, Any] | None:
        """The in-process rollout carried from one iteration to the next (None before the first, and with Ray)."""
        return None if self.collector is None else self.collector.rollout

    # ---- one iteration: collect -> targets -> update (the loop, logging and callbacks are RecurrentAgent.learn) ---
    def _iterate(self, statistics: EpisodeStatistics, progress: float) -> dict[str, float]:
        """One PPO iteration: collect a rollout, compute GAE targets, update; the scalars to log."""
        collect_start = time.perf_counter()
        memory_magnitude = self._collect_rollout(statistics)
        update_start = time.perf_counter()
        train_scalars = self._update(progress)
        update_end = time.perf_counter()
        steps = self.buffer.n_steps * self.buffer.n_envs
        return {
            **train_scalars,
            "train/cell_state_abs_mean": memory_magnitude,
            "time/collect_steps_per_second": steps / (update_start - collect_start),
            "time/update_steps_per_second": steps / (update_end - update_start),
        }

    # ---- 1. collect -----------------------------------------------------------------------------------------------
    def _collect_rollout(self, statistics: EpisodeStatistics) -> float:
        """Fill the buffer with ``n_steps`` steps of every env copy and compute GAE; the mean |cell state| seen."""
        starting = self._rollout is None if self.workers is None else self.workers.needs_reset
        reset_seed = int(self.rng.integers(2**31)) if starting else None
        noise_key = int(self.rng.integers(2**63))  # the rollout's action noise (rl_lstm.rollouts)
        if self.workers is None:
            parts = [self.collector.collect(reset_seed, noise_key)]
        else:
            parts = self.workers.collect(self.policy, self.env, reset_seed, noise_key)
            self._assemble(parts, reset_seed is not None)
        EpisodeRecords.side_by_side([part.episodes for part in parts]).replay(statistics)
        self.num_timesteps += self.buffer.n_steps * self.buffer.n_envs
        last_values = np.concatenate([part.last_values for part in parts])
        self.buffer.compute_advantages(last_values, self.config.gamma, self.config.gae_lambda)
        return float(np.mean([part.memory_magnitude for part in parts]))

    def _assemble(self, parts: list[RolloutPart], reset: bool) -> None:
        """The workers' parts side by side in the learner's buffer, rewards scaled as an in-process env scales them."""
        self.buffer.fill_side_by_side([part.buffer for part in parts])
        rewards = np.concatenate([part.env_rewards for part in parts], axis=1)  # [n_steps, num_envs]
        if self.reward_normalizer is not None:
            if reset:
                self.reward_normalizer.restart(np.arange(self.buffer.n_envs))
            for worker in np.flatnonzero(self.workers.restarted):
                self.reward_normalizer.restart(self.workers.copies(worker))
            rewards = self.reward_normalizer.normalize(rewards, self.buffer.terminated, self.buffer.truncated)
        self.buffer.rewards[:] = rewards

    # ---- 2. update ------------------------------------------------------------------------------------------------
    def _update(self, progress: float) -> dict[str, float]:
        """PPO epochs over minibatches of whole sequences; the ``train/...`` scalars of this update."""
        config = self.config
        learning_rate = scheduled(config.learning_rate, config.lr_schedule, progress)
        clip_range = scheduled(config.clip_range, config.clip_schedule, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.policy.train()
        self.buffer.prepare()
        parameters = [parameter for group in self.optimizer.param_groups for parameter in group["params"]]
        # The three losses are one weighted sum over a stacked [3, L, P] tensor, and the loss their dot product with
        # these weights: fewer ops, forward and backward, which at these sizes cost more than their arithmetic.
        coefficients = torch.tensor([1.0, config.vf_coef, config.ent_coef], device=self.device)
        # Per-minibatch statistics stay tensors until the update ends: a .item() per value per minibatch costs
        # more than the arithmetic at these sizes. Each row: policy, value, entropy loss, approx KL, clip fraction,
        # gradient norm.
        statistics: list[torch.Tensor] = []
        skipped = 0
        stop = False
        for _ in range(config.n_epochs):
            for batch in self.buffer.minibatches(config.batch_size, self.rng):
                log_prob, entropy, values = self.policy.evaluate_actions(
                    batch.observations, batch.actions, batch.initial_state, batch.episode_starts, batch.action_masks
                )  # each [L, pieces], L the minibatch's longest piece
                weights = batch.weights  # a mean over the real steps
                advantages = batch.normalized_advantages if config.normalize_advantage else batch.advantages
                log_ratio = log_prob - batch.old_log_probs
                ratio = log_ratio.exp()
                clipped_ratio = ratio.clamp(1 - clip_range, 1 + clip_range)
                if config.clip_range_vf is not None:
                    values = batch.old_values + (values - batch.old_values).clamp(
                        -config.clip_range_vf, config.clip_range_vf
                    )
                policy_terms = -torch.min(advantages * ratio, advantages * clipped_ratio)
                terms = torch.stack([policy_terms, (batch.returns - values) ** 2, -entropy])  # [3, L, P]
                losses = (terms * weights).sum((1, 2))  # policy, value and entropy loss
                loss = losses @ coefficients
                with torch.no_grad():
                    ratio_change = ratio - 1
                    diagnostics = (
                        torch.stack([ratio_change - log_ratio, (ratio_change.abs() > clip_range).float()]) * weights
                    ).sum((1, 2))  # approx KL, clip fraction
                if config.target_kl is not None and diagnostics[0].item() > 1.5 * config.target_kl:
                    stop = True
                    break
                self.optimizer.zero_grad(set_to_none=True)
                try:
                    check_finite({"loss": loss})
                    loss.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
                    check_finite({"gradient norm": grad_norm})
                except NumericalError:
                    if not config.skip_nonfinite_batches:
                        raise
                    skipped += 1
                    continue
                self.optimizer.step()
                statistics.append(torch.cat([losses.detach(), diagnostics, grad_norm[None]]))
            if stop:
                break
        check_finite(dict(self.policy.named_parameters()))
        valid_steps = self.buffer.valid
        returns, predicted = self.buffer.returns[valid_steps], self.buffer.values[valid_steps]
        explained_variance = 1 - np.var(returns - predicted) / np.var(returns) if np.var(returns) > 0 else np.nan
        means = torch.stack(statistics).mean(0).tolist() if statistics else [float("nan")] * 6
        return {
            **dict(zip(("train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/approx_kl",
                        "train/clip_fraction", "train/grad_norm"), means)),
            "train/explained_variance": float(explained_variance),
            "train/learning_rate": learning_rate,
            "train/clip_range": clip_range,
            "train/skipped_batches": skipped,
            "train/n_updates": len(statistics),
        }

    # ---- saving: the rollout in flight ----------------------------------------------------------------------------
    def _episode_state(self) -> dict[str, Any] | None:
        """The rollout carried to the next iteration and the env's state (None where it cannot be read); with Ray,
        every worker's, their seed streams and the rewards' returns in flight."""
        if self.workers is None:
            return self.collector.episode_state()
        rewards = None if self.reward_normalizer is None else self.reward_normalizer.state_dict()
        return {"ray": self.workers.state_dict(), "rewards": rewards}

    def _resume_episodes(self, state: dict[str, Any] | None) -> None:
        """Continue the saved rollout; without one, the next rollout starts from a reset seeded by ``self.rng``."""
        if state is None:
            return
        if self.workers is None:
            self.collector.resume(state)
            return
        self.workers.load_state_dict(state["ray"])
        if self.reward_normalizer is not None:
            self.reward_normalizer.load_state_dict(state["rewards"])
