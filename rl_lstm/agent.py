"""What every agent shares: env and policy construction, seeding, predict, save and load.

An agent's algorithm (collect, compute targets, update) lives in its own file in ``agents/``; this
module holds only what is the same for all of them, in Stable-Baselines3's API shape.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from rl_lstm import checkpoints
from rl_lstm.config import build_config, config_to_dict, require
from rl_lstm.curriculum import Curriculum, CurriculumProgress
from rl_lstm.errors import CheckpointError, ConfigError, NumericalError
from rl_lstm.exploration import ExplorationConfig
from rl_lstm.logger import EpisodeStatistics, TrainingLogger
from rl_lstm.policies import RecurrentActorCritic, map_observation
from rl_lstm.ray_workers import RolloutWorkersConfig
from rl_lstm.vec_env import (
    add_training_layers,
    load_normalization_state,
    make_vector_env,
    normalization_state,
    parse_wrappers,
    vector_env_of,
)

Callback = Callable[["RecurrentAgent"], "bool | None"]


@dataclass
class PolicyConfig:
    """The policy's architecture (shared by every gradient agent's config)."""

    # "lstm" (fused nn.LSTM), "gru", "peephole" (Gers & Schmidhuber 2000), "mlp" (no memory), "convlstm" (Shi et al.
    # 2015: convolutional gates over image observations; hidden_size is then its channels per layer)
    core: str = "lstm"
    hidden_size: int = 64  # units per core layer
    num_layers: int = 1  # stacked core layers
    core_kwargs: dict = field(default_factory=dict)  # e.g. {forget_bias: 1.0}
    shared_core: bool = False  # one core for actor and critic; default: the critic has its own
    net_arch_pi: tuple[int, ...] = (64,)  # MLP between core and action head
    net_arch_vf: tuple[int, ...] = (64,)  # MLP between core and value head
    mlp_encoder: tuple[int, ...] = ()  # MLP between observation encoder and core
    activation: str = "tanh"  # "tanh" or "relu"
    ortho_init: bool = True  # SB3's orthogonal initialization
    log_std_init: float = 0.0  # initial log std of Box actions
    image_encoder_channels: int = 16  # convlstm: channels of the 3x3 conv between image and core; 0: the pixels
    image_encoder_stride: int = 1  # convlstm: that conv's stride (2 halves the image)
    image_head: str = "flatten"  # convlstm: "flatten" or "pool" the core's output maps for the action/value MLPs

    def policy_kwargs(self) -> dict[str, Any]:
        """The constructor arguments of :class:`RecurrentActorCritic`."""
        return {f.name: getattr(self, f.name) for f in fields(PolicyConfig)}


@dataclass
class EnvConfig:
    """How an agent given an env id builds its vector env (shared by every agent's config)."""

    num_envs: int = 8  # env copies stepped together
    env_kwargs: dict = field(default_factory=dict)  # constructor kwargs of the env
    vectorization: str = "auto"  # "auto" (native where registered), "native", "sync", "async"
    normalize_observations: bool = False  # running mean/std of observations (gymnasium's NormalizeObservation)
    normalize_rewards: bool = False  # scale rewards by the running std of returns (gymnasium's NormalizeReward)
    # gymnasium wrappers by import path, applied to every env copy (or around the vector env, for VectorWrappers):
    # [pkg.mod:Wrapper, {pkg.mod:Other: {key: value}}]
    env_wrappers: list = field(default_factory=list)
    frame_stack: int = 1  # observe the last k observations (gymnasium's FrameStackObservation); 1: off
    # observe {observation, prev_action, prev_reward}: the last action and reward, zeros at an episode's start
    # (RLlib's lstm_use_prev_action / lstm_use_prev_reward); see rl_lstm.vec_env.PrevActionReward
    prev_action_reward: bool = False
    # train on easier versions of the env first: {stages: {length: [100, 1000]}, until: success>=0.95} trains with
    # length=100 until a deterministic evaluation there succeeds, then 1000, then env_kwargs' own (see
    # rl_lstm.curriculum); needs an env id, so the env can be rebuilt with each stage's kwargs
    curriculum: dict = field(default_factory=dict)

    def validate_env(self) -> None:
        """Range checks of the env keys; every wrapper is imported and its kwargs checked."""
        require(self.num_envs >= 1, f"num_envs must be at least 1, got {self.num_envs}")
        require(self.frame_stack >= 1, f"frame_stack must be at least 1 (1: no stacking), got {self.frame_stack}")
        parse_wrappers(self.env_wrappers)
        if self.curriculum:
            Curriculum.from_config(self.curriculum, self.env_kwargs)


SCHEDULES = ("constant", "linear")
# The parts of _training_state that are not learned: a curriculum restart keeps them running.
RUN_STATE = ("rng", "agent_rng", "total_timesteps", "iterations")


def scheduled(start: float, schedule: str, progress: float) -> float:
    """The value of a hyperparameter at ``progress`` in [0, 1] of training: constant, or decayed linearly to 0."""
    return start * (1.0 - progress) if schedule == "linear" else start


def resolve_device(device: str) -> torch.device:
    """``"auto"``: CUDA when there is one, else CPU; ``"cuda"`` without CUDA is an error saying so."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but torch finds no CUDA device; use 'cpu' or 'auto'")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"device={device!r} is not a torch device; use 'cpu', 'cuda' or 'auto'") from error


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's global generator and torch, for runs that repeat exactly on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every global generator, to store in a checkpoint."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def check_finite(named_tensors: dict[str, torch.Tensor]) -> None:
    """Raise NumericalError naming the first tensor holding a NaN or inf, before it reaches the parameters."""
    for name, tensor in named_tensors.items():
        if tensor is not None and not torch.isfinite(tensor).all():
            raise NumericalError(
                f"{name} holds NaN or inf; the update was stopped before changing the model. "
                "Lower learning_rate, set max_grad_norm, or enable normalize_observations/normalize_rewards."
            )


class RecurrentAgent(ABC):
    """Base of every agent, gradient or evolution: ``Agent(env, **hyperparams)``, ``.learn``, ``.predict``, ``.save``.

    ``Agent.load(path)`` rebuilds one from a checkpoint.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    adam_epsilon: ClassVar[float] = 1e-8  # Adam's own default
    # Keys of the agent's own config that a curriculum stage may not change, beyond the network's, the env's and
    # the workers' (shared by every agent): what the agent builds once.
    fixed_hyperparameters: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        env: str | gym.vector.VectorEnv | gym.Env,
        seed: int = 0,
        device: str = "cpu",
        tensorboard_log: str | Path | None = None,
        **hyperparams: Any,
    ):
        self.config = build_config(self.config_class, hyperparams)
        self.seed = seed
        self.device = resolve_device(device)
        self.tensorboard_log = tensorboard_log
        seed_everything(seed)
        self.curriculum = (
            CurriculumProgress(Curriculum.from_config(self.config.curriculum, self.config.env_kwargs))
            if self.config.curriculum
            else None
        )
        if self.curriculum is not None and not self.curriculum.finished and not isinstance(env, str):
            raise ConfigError(
                "a curriculum rebuilds the env with each stage's kwargs, so it needs the env's id (e.g. "
                f"'rl_lstm/NiPassiveTMaze-v0' or 'my_pkg.envs:MyEnv-v0'), not a built {type(env).__name__}; pass the "
                "id with env_kwargs, or drop curriculum"
            )
        self._check_stage_hyperparameters()
        self.env = self._make_env(env)
        # self.config is what training reads: the task's config (saved in checkpoints) with the stage's values.
        self.task_config = self.config
        self.config = self._stage_config()
        self.observation_space = self.env.single_observation_space
        self.action_space = self.env.single_action_space
        self.policy = RecurrentActorCritic(self.observation_space, self.action_space, **self.config.policy_kwargs()).to(
            self.device
        )
        self.num_timesteps = 0
        self.total_timesteps = 0
        self.iterations = 0
        self.rng = np.random.default_rng(seed)
        self.optimizer = self._make_optimizer()
        self.latest_scalars: dict[str, float] = {}
        self._setup()
        if self.curriculum is not None:
            self.curriculum.remember_start(self)

    def _make_optimizer(self) -> torch.optim.Optimizer | None:
        """Adam over the policy's parameters; an agent that needs no gradients returns None."""
        # One fused kernel for all parameters: for small nets the per-tensor loop costs more than the math.
        return torch.optim.Adam(
            self.policy.parameters(), lr=self.config.learning_rate, eps=self.adam_epsilon, fused=True
        )

    @abstractmethod
    def _setup(self) -> None:
        """What an agent builds once its env, policy and optimizer exist (buffers, running statistics)."""

    def _attach_env(self) -> None:
        """Rebuild what stands on the training env after a curriculum stage replaced it: by default all of _setup."""
        self._setup()

    @property
    def training_env_kwargs(self) -> dict[str, Any]:
        """The kwargs the training env is built with: the curriculum stage's over the config's ``env_kwargs``."""
        return self.config.env_kwargs if self.curriculum is None else self.curriculum.env_kwargs(self.config.env_kwargs)

    @property
    def training_config(self) -> Any:
        """The config with the training env's kwargs: what Ray workers build their envs from."""
        return dataclasses.replace(self.config, env_kwargs=self.training_env_kwargs)

    def _check_stage_hyperparameters(self) -> None:
        """Every stage's hyperparameters checked now, before training: keys that may change, values in range."""
        if self.curriculum is None:
            return
        fixed = {f.name for base in (PolicyConfig, EnvConfig, RolloutWorkersConfig) for f in fields(base)}
        fixed |= set(self.fixed_hyperparameters)
        for settings in self.curriculum.curriculum.hyperparameters:
            unchangeable = sorted(set(settings) & fixed)
            if unchangeable:
                raise ConfigError(
                    f"curriculum hyperparameters cannot change {', '.join(unchangeable)}: the network, the env and "
                    "the workers are built once. Give a stage its env kwargs in stages; set these keys for the "
                    "whole run"
                )
            build_config(self.config_class, {**config_to_dict(self.config), **settings})

    def _stage_config(self) -> Any:
        """The task's config with the curriculum stage's hyperparameters (itself without a curriculum)."""
        settings = {} if self.curriculum is None else self.curriculum.hyperparameters
        if not settings:
            return self.task_config
        return build_config(self.config_class, {**config_to_dict(self.task_config), **settings})

    def _enter_stage(self) -> None:
        """Train on the curriculum's current stage: its hyperparameters, and the env built with its kwargs."""
        self.config = self._stage_config()
        self._rebuild_env()

    def _rebuild_env(self) -> None:
        """The training env built again with :attr:`training_env_kwargs`, keeping its normalization statistics."""
        statistics = normalization_state(self.env)
        self.close()
        self.env = self._make_env(self.env_id)
        load_normalization_state(self.env, statistics, training=True)
        self._attach_env()

    def _make_env(self, env: str | gym.vector.VectorEnv | gym.Env) -> gym.vector.VectorEnv:
        """The training vector env, from an id or the user's env, with the config's wrappers and episode statistics."""
        if isinstance(env, str):
            self.env_id = env
            return make_vector_env(
                env,
                self.config.num_envs,
                env_kwargs=self.training_env_kwargs,
                vectorization=self.config.vectorization,
                normalize_observations=self.config.normalize_observations,
                normalize_rewards=self.config.normalize_rewards,
                gamma=getattr(self.config, "gamma", 0.99),
                env_wrappers=self.config.env_wrappers,
                frame_stack=self.config.frame_stack,
                prev_action_reward=self.config.prev_action_reward,
                **self._exploration_kwargs(),
            )
        wrappers = parse_wrappers(self.config.env_wrappers)
        # The id, where the user's env has one, is what Agent.load and rl-lstm evaluate rebuild the env from.
        env, self.env_id = vector_env_of(env, wrappers, self.config.frame_stack)
        return add_training_layers(
            env,
            wrappers,
            normalize_observations=self.config.normalize_observations,
            normalize_rewards=self.config.normalize_rewards,
            gamma=getattr(self.config, "gamma", 0.99),
            prev_action_reward=self.config.prev_action_reward,
            **self._exploration_kwargs(),
        )

    def _exploration_kwargs(self) -> dict[str, Any]:
        """The count bonus of the training env, for the trainers whose config has one (rl_lstm.exploration)."""
        if not isinstance(self.config, ExplorationConfig):
            return {}
        return {"count_bonus": self.config.count_bonus, "count_bonus_bits": self.config.count_bonus_bits}

    # ---- acting -------------------------------------------------------------------------------------------------
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The actions for a batch of observations and the next core state (sb3-contrib RecurrentPPO's contract).

        ``state`` is what the previous call returned (``None`` at the start); ``episode_start[i]`` is True where
        ``observation[i]`` begins an episode, which resets that env's memory. A single unbatched observation
        returns a single action.
        """
        single = self._is_single_observation(observation)
        if single:
            observation = map_observation(lambda a: np.asarray(a)[None], observation)
        batch_size = len(np.asarray(_first_array(observation)))
        if episode_start is None:
            episode_start = np.zeros(batch_size, dtype=bool) if state is not None else np.ones(batch_size, dtype=bool)
        with torch.no_grad():
            torch_state = (
                self.policy.initial_state(batch_size)
                if state is None
                else tuple(torch.as_tensor(s, device=self.device) for s in state)
            )
            starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(batch_size), device=self.device)
            masks = (
                None
                if action_masks is None
                else torch.as_tensor(np.asarray(action_masks, dtype=bool).reshape(batch_size, -1), device=self.device)
            )
            actions, _, _, torch_state = self.policy.act(
                observation, torch_state, starts, deterministic=deterministic, action_masks=masks
            )
        actions = actions.cpu().numpy()
        new_state = tuple(s.cpu().numpy() for s in torch_state)
        return (actions[0] if single else actions), new_state

    def _is_single_observation(self, observation: Any) -> bool:
        space = self.observation_space
        while isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):  # the first array decides, however nested
            key = next(iter(space.spaces)) if isinstance(space, gym.spaces.Dict) else 0
            space, observation = space[key], observation[key]
        return np.asarray(observation).shape == space.shape

    # ---- training -----------------------------------------------------------------------------------------------
    @abstractmethod
    def _iterate(self, statistics: EpisodeStatistics, progress: float) -> dict[str, float]:
        """One iteration of the algorithm (collect, compute targets, update); returns the scalars to log."""

    def learn(
        self,
        total_timesteps: int,
        callback: Callback | None = None,
        progress_bar: bool = True,
        reset_num_timesteps: bool = False,
    ) -> RecurrentAgent:
        """Train for ``total_timesteps`` more env steps; ``callback(agent)`` returning False stops after an update."""
        if reset_num_timesteps:
            self.num_timesteps = 0
        self.total_timesteps = self.num_timesteps + total_timesteps
        logger = TrainingLogger(self.tensorboard_log, self.total_timesteps, progress_bar, start_step=self.num_timesteps)
        self.logger = logger  # callbacks record their own scalars (e.g. eval/...) through it
        statistics = EpisodeStatistics()
        try:
            while self.num_timesteps < self.total_timesteps:
                scalars = self._iterate(statistics, progress=self.num_timesteps / self.total_timesteps)
                self.iterations += 1
                scalars = {
                    **statistics.summary(),
                    **scalars,
                    "time/fps": logger.steps_per_second(self.num_timesteps),
                    "time/iterations": self.iterations,
                }
                if self.curriculum is not None:
                    scalars["curriculum/stage"] = self.curriculum.stage
                    scalars.update(self._advance_curriculum())
                logger.record(scalars, self.num_timesteps)
                logger.advance(self.num_timesteps)
                self.latest_scalars = logger.latest
                if callback is not None and callback(self) is False:
                    break
        finally:
            logger.close()
        return self

    def _advance_curriculum(self) -> dict[str, float]:
        """Evaluate the curriculum's stage when due; once it is met, train on the next stage's env. Scalars to log."""
        if not self.curriculum.due(self.num_timesteps):
            return {}
        scalars: dict[str, float] = {}
        while True:
            stage = self.curriculum.stage
            scalars.update(self.curriculum.evaluate(self))
            if self.curriculum.stage == stage:
                return scalars
            self._enter_stage()
            # A network that passed a short corridor often already passes the next (and PPO's first update on a
            # longer one can erase the cue it held), so evaluate_on_entry tries the new stage before training on it.
            if not (self.curriculum.curriculum.evaluate_on_entry and self.curriculum.evaluating):
                return scalars

    def close(self) -> None:
        """Close the training env (and whatever else an agent holds open, such as Ray workers)."""
        self.env.close()

    # ---- saving -------------------------------------------------------------------------------------------------
    def _training_state(self) -> dict[str, Any]:
        """Everything beyond the policy that a resumed run needs; agents with more state extend it."""
        return {
            "rng": rng_state(),
            "agent_rng": self.rng.bit_generator.state,
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "total_timesteps": self.total_timesteps,
            "iterations": self.iterations,
        }

    def _load_training_state(self, state: dict[str, Any]) -> None:
        set_rng_state(state["rng"])
        self.rng.bit_generator.state = state["agent_rng"]
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.total_timesteps = state["total_timesteps"]
        self.iterations = state["iterations"]

    def learned_state(self) -> dict[str, Any]:
        """A copy of what training has learned (the policy, the optimizer's moments, an agent's own such as Evolino's
        subpopulations), without the random streams and counters: what a curriculum stage restarts from."""
        training_state = {key: value for key, value in self._training_state().items() if key not in RUN_STATE}
        return copy.deepcopy({"policy": self.policy.state_dict(), "training_state": training_state})

    def restore_learned_state(self, state: dict[str, Any]) -> None:
        """Return to a :meth:`learned_state`; the random streams and counters go on, so training continues afresh."""
        self.policy.load_state_dict(state["policy"])
        self._load_training_state({**self._training_state(), **copy.deepcopy(state["training_state"])})

    def _episode_state(self) -> dict[str, Any] | None:
        """The episodes in flight, for an agent that carries them from one iteration to the next; None: none."""
        return None

    def _resume_episodes(self, state: dict[str, Any] | None) -> None:
        """Continue the episodes that :meth:`_episode_state` saved; an agent without any has nothing to do."""
        return None

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write the agent (config, policy, training state, normalization, episodes in flight) atomically."""
        checkpoints.save_checkpoint(
            path,
            {
                "agent": self.name,
                "env_id": self.env_id,
                "seed": self.seed,
                "config": config_to_dict(self.task_config),
                "observation_space": checkpoints.describe_space(self.observation_space),
                "action_space": checkpoints.describe_space(self.action_space),
                "policy": self.policy.state_dict(),
                "num_timesteps": self.num_timesteps,
                "training_state": self._training_state(),
                "normalization": normalization_state(self.env),
                "episodes": self._episode_state(),
                "curriculum": None if self.curriculum is None else self.curriculum.state_dict(),
                "extra": extra or {},
            },
        )

    @classmethod
    def load(
        cls, path: str | Path, env: str | gym.vector.VectorEnv | gym.Env | None = None, device: str = "cpu"
    ) -> RecurrentAgent:
        """An agent from a checkpoint; ``env`` defaults to the env id it was trained on, with its config.

        Built on its own env, the agent continues the episodes the checkpoint left in flight where it can (see
        :func:`rl_lstm.checkpoints.env_state`); on an ``env`` passed here they start from a reset.
        """
        payload = checkpoints.load_checkpoint(path, agent=cls.name)
        agent = cls(
            env if env is not None else payload["env_id"], seed=payload["seed"], device=device, **payload["config"]
        )
        progress = payload.get("curriculum")
        if progress is not None and agent.curriculum is not None:
            agent.curriculum = CurriculumProgress(agent.curriculum.curriculum, **progress)
            if progress["stage"] > 0:
                agent._enter_stage()  # the stage the run had reached
        spaces = (checkpoints.describe_space(agent.observation_space), checkpoints.describe_space(agent.action_space))
        if spaces != (payload["observation_space"], payload["action_space"]):
            raise CheckpointError(
                f"checkpoint {str(path)!r} was trained on observation space {payload['observation_space']} and action "
                f"space {payload['action_space']}, but the env has {spaces[0]} and {spaces[1]}"
            )
        try:
            agent.policy.load_state_dict(payload["policy"])
        except RuntimeError as error:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit the policy its config builds: {error}"
            ) from error
        agent.num_timesteps = payload["num_timesteps"]
        agent._load_training_state(payload["training_state"])
        load_normalization_state(agent.env, payload["normalization"], training=True)
        if env is None:
            agent._resume_episodes(payload["episodes"])
        agent.checkpoint_extra = payload["extra"]
        if agent.curriculum is not None and (
            progress is None or "stage_start" not in progress
        ):
            agent.curriculum.remember_start(agent)  # a checkpoint from before restarts existed
        return agent


def _first_array(observation: Any) -> Any:
    if isinstance(observation, dict):
        return _first_array(next(iter(observation.values())))
    if isinstance(observation, tuple):
        return _first_array(observation[0])
    return observation
