"""Vector environments from any gymnasium id: native numpy envs where registered, Sync/Async otherwise."""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers import FrameStackObservation
from gymnasium.wrappers.utils import RunningMeanStd, update_mean_var_count_from_moments
from gymnasium.wrappers.vector import NormalizeObservation, NormalizeReward, RecordEpisodeStatistics

import envs  # noqa: F401  (registers the built-in ids)
from envs.batched import TaskVectorEnv
from rl_lstm.config import require_next_step_autoreset
from rl_lstm.errors import ConfigError
from rl_lstm.exploration import DEFAULT_BITS, CountBonus

VECTORIZATION_MODES = ("auto", "native", "sync", "async")
WRAPPER_FORM = "'package.module:Wrapper' or {'package.module:Wrapper': {key: value}}"


def resolve_env_id(env_id: str) -> str:
    """Import the package of a ``"module:Env-v0"`` id, check the id exists, and return the bare id.

    An unknown id is a :class:`ConfigError` that lists the closest registered ids.
    """
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"cannot import module {module!r} for env {env_id!r}: {error}") from error
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        builtin = ", ".join(envs.BUILTIN_ENV_IDS[:4])
        raise ConfigError(
            f"unknown env id {env_id!r}.{hint} Built-in ids look like {builtin}, ...; "
            "a third-party env is written 'package.module:Env-v0'."
        )
    return env_id


@dataclass(frozen=True)
class WrapperEntry:
    """One ``env_wrappers`` entry, imported: the path as written, the wrapper class and its kwargs."""

    path: str
    wrapper: type
    kwargs: dict[str, Any]

    @property
    def is_vector(self) -> bool:
        """True for a ``gymnasium.vector.VectorWrapper``, which wraps the vector env instead of each copy."""
        return issubclass(self.wrapper, gym.vector.VectorWrapper)

    def apply(self, env: Any) -> Any:
        """``env`` inside this wrapper; a wrapper that refuses the env is a ConfigError naming the entry."""
        try:
            return self.wrapper(env, **self.kwargs)
        except Exception as error:
            raise ConfigError(
                f"env_wrappers entry {self.path!r} with kwargs {self.kwargs} could not wrap the env: "
                f"{type(error).__name__}: {error}"
            ) from error


def _wrapper_error(entry: Any, problem: str) -> ConfigError:
    return ConfigError(
        f"env_wrappers entry {entry!r}: {problem}. Each entry is {WRAPPER_FORM}, naming a subclass of "
        "gymnasium.Wrapper (wraps each env copy) or of gymnasium.vector.VectorWrapper (wraps the vector env)."
    )


def parse_wrappers(entries: Any) -> list[WrapperEntry]:
    """The ``env_wrappers`` of a config, imported and checked; a bad entry is a ConfigError naming it.

    Entries are ``"package.module:Wrapper"`` (or ``"package.module.Wrapper"``, rl-baselines3-zoo's form) or
    ``{"package.module:Wrapper": {key: value}}``. Per-copy wrappers must come before vector wrappers: a copy
    cannot be wrapped once it is inside the vector env.
    """
    if not isinstance(entries, (list, tuple)):
        raise ConfigError(f"env_wrappers must be a list whose entries are {WRAPPER_FORM}, got {entries!r}")
    parsed = []
    for entry in entries:
        if isinstance(entry, str):
            path, kwargs = entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            path, kwargs = next(iter(entry.items()))
            kwargs = {} if kwargs is None else kwargs
        else:
            raise _wrapper_error(entry, "not an import path nor a mapping of one import path to its kwargs")
        if not isinstance(path, str) or not isinstance(kwargs, dict):
            raise _wrapper_error(entry, "the import path must be a string and its kwargs a mapping")
        module_name, _, class_name = path.rpartition(":") if ":" in path else path.rpartition(".")
        if not module_name or not class_name:
            raise _wrapper_error(entry, f"{path!r} names no module")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise _wrapper_error(entry, f"cannot import module {module_name!r} ({error})") from error
        wrapper = getattr(module, class_name, None)
        if not (isinstance(wrapper, type) and issubclass(wrapper, (gym.Wrapper, gym.vector.VectorWrapper))):
            found = "nothing" if wrapper is None else repr(wrapper)
            raise _wrapper_error(entry, f"{module_name} has {found} named {class_name!r}, not a gymnasium wrapper")
        try:
            inspect.signature(wrapper).bind(None, **kwargs)
        except TypeError as error:
            raise _wrapper_error(entry, f"bad kwargs {kwargs} for {wrapper.__name__}: {error}") from error
        parsed.append(WrapperEntry(path, wrapper, dict(kwargs)))
    kinds = [entry.is_vector for entry in parsed]
    if kinds != sorted(kinds):
        first_vector = parsed[kinds.index(True)].path
        raise ConfigError(
            f"env_wrappers lists a per-copy wrapper after the vector wrapper {first_vector!r}; list the "
            "gymnasium.Wrapper entries first: each copy is wrapped before the copies become a vector env"
        )
    return parsed


def wrap_env(env: gym.Env, wrappers: list[WrapperEntry], frame_stack: int = 1) -> gym.Env:
    """One env copy inside the per-copy ``wrappers`` (vector ones are skipped), then stacked ``frame_stack`` deep."""
    for entry in wrappers:
        if not entry.is_vector:
            env = entry.apply(env)
    # gymnasium has no vector frame stack: the copies stack their own observations, [frame_stack, *obs_shape].
    return FrameStackObservation(env, stack_size=frame_stack) if frame_stack > 1 else env


def wrap_vector_env(vector_env: gym.vector.VectorEnv, wrappers: list[WrapperEntry]) -> gym.vector.VectorEnv:
    """``vector_env`` inside the vector ``wrappers`` (per-copy ones are skipped: :func:`wrap_env` applies them)."""
    for entry in wrappers:
        if entry.is_vector:
            vector_env = entry.apply(vector_env)
    return vector_env


PREV_ACTION_KEY, PREV_REWARD_KEY = "prev_action", "prev_reward"
# Unbounded like the rewards it holds: the policy encodes a Box as its values, so no bound is ever read, and
# gymnasium 1.x's env checker does not warn on infinite observation bounds.
PREV_REWARD_SPACE = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
PREV_ACTION_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def prev_action_reward_space(observation_space: gym.Space, action_space: gym.Space) -> gym.spaces.Dict:
    """The observation space with the previous action and reward: two keys added to a Dict, or a Dict around it."""
    if not isinstance(action_space, PREV_ACTION_SPACES):
        raise ConfigError(
            f"prev_action_reward observes the previous action, but the action space {action_space} is not one of "
            f"{', '.join(space.__name__ for space in PREV_ACTION_SPACES)}; set prev_action_reward: false"
        )
    is_dict = isinstance(observation_space, gym.spaces.Dict)
    parts = dict(observation_space.spaces) if is_dict else {"observation": observation_space}
    taken = [key for key in (PREV_ACTION_KEY, PREV_REWARD_KEY) if key in parts]
    if taken:
        raise ConfigError(
            f"prev_action_reward adds the keys {PREV_ACTION_KEY!r} and {PREV_REWARD_KEY!r} to the env's Dict "
            f"observation, which has {', '.join(map(repr, taken))} already; rename them with a wrapper in "
            "env_wrappers, or set prev_action_reward: false"
        )
    return gym.spaces.Dict({**parts, PREV_ACTION_KEY: action_space, PREV_REWARD_KEY: PREV_REWARD_SPACE})


def _no_action(action_space: gym.Space, batch: tuple[int, ...] = ()) -> np.ndarray:
    """The previous action at an episode's first observation: zeros (the first action of a Discrete or
    MultiDiscrete space that starts elsewhere, so that it stays in the space and its one-hot encoding)."""
    return np.full((*batch, *action_space.shape), getattr(action_space, "start", 0), dtype=action_space.dtype)


def _with_previous(observation: Any, prev_action: np.ndarray, prev_reward: np.ndarray) -> dict[str, Any]:
    """``observation`` (a Dict's dict, or any other) with the previous action and reward as two more keys."""
    parts = dict(observation) if isinstance(observation, dict) else {"observation": observation}
    return {**parts, PREV_ACTION_KEY: prev_action, PREV_REWARD_KEY: prev_reward}


class PrevActionReward(gym.vector.VectorWrapper):
    """Each observation as a Dict ``{"observation": obs, "prev_action": a, "prev_reward": [r]}`` (or a Dict
    observation with those two keys added), the ``prev_action_reward`` option.

    RLlib's LSTM wrapper has the same inputs (``lstm_use_prev_action`` / ``lstm_use_prev_reward``): a recurrent
    policy that sees what it did and what that earned need not also learn to remember it. The previous action is in
    the action space's own form (the policy one-hots Discrete/MultiDiscrete and flattens Box), the reward a float32
    ``[1]``. At an episode's first observation both are zeros: after ``reset`` and at the NEXT_STEP autoreset step,
    which returns the next episode's first observation; otherwise they are the action sent with the step that
    produced the observation and that step's reward (below reward normalization: the env's own reward).
    """

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        require_next_step_autoreset(env, "prev_action_reward")
        self.single_observation_space = prev_action_reward_space(env.single_observation_space, env.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._no_actions = _no_action(env.single_action_space, (self.num_envs,))
        # Per copy, saved with checkpoints (EPISODE_WRAPPER_STATE, below) so a resumed run goes on alike.
        self.prev_actions = self._no_actions.copy()
        self.prev_rewards = np.zeros((self.num_envs, 1), dtype=np.float32)
        self.prev_dones = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
        """Reset the copies (those of ``options["reset_mask"]`` only, where given); their episodes start anew."""
        # Read before the reset: gymnasium's RecordEpisodeStatistics pops the mask from the options.
        reset_mask = (options or {}).get("reset_mask")
        resets = np.ones(self.num_envs, dtype=bool) if reset_mask is None else np.array(reset_mask, dtype=bool)
        observations, infos = self.env.reset(seed=seed, options=options)
        self.prev_dones = self.prev_dones & ~resets
        return self._observe(observations, resets, self.prev_actions, self.prev_rewards), infos

    def step(self, actions: Any) -> tuple[dict[str, Any], Any, np.ndarray, np.ndarray, dict]:
        """Step the copies; each observation comes with the action sent now and the reward it earned."""
        observations, rewards, terminated, truncated, infos = self.env.step(actions)
        # A copy whose episode ended on the last step autoresets now, returning the next episode's first observation.
        observations = self._observe(observations, self.prev_dones, actions, rewards)
        self.prev_dones = np.logical_or(terminated, truncated)
        return observations, rewards, terminated, truncated, infos

    def _observe(self, observations: Any, starts: np.ndarray, actions: Any, rewards: Any) -> dict[str, Any]:
        """``observations`` with ``actions`` and ``rewards`` as the previous ones, zeros where an episode ``starts``."""
        actions = np.asarray(actions, dtype=self._no_actions.dtype).reshape(self._no_actions.shape)
        # New arrays every step, never written in place: observations already returned must not change.
        self.prev_actions = np.where(starts.reshape(-1, *[1] * (actions.ndim - 1)), self._no_actions, actions)
        self.prev_rewards = np.where(starts[:, None], 0.0, np.reshape(rewards, (-1, 1))).astype(np.float32)
        return _with_previous(observations, self.prev_actions, self.prev_rewards)


class SinglePrevActionReward(gym.Wrapper):
    """:class:`PrevActionReward` for one env (videos and memory plots play one): the same observations."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = prev_action_reward_space(env.observation_space, env.action_space)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
        """Reset the env: an episode's first observation has zeros for the previous action and reward."""
        observation, info = self.env.reset(seed=seed, options=options)
        return _with_previous(observation, _no_action(self.action_space), np.zeros(1, dtype=np.float32)), info

    def step(self, action: Any) -> tuple[dict[str, Any], Any, bool, bool, dict]:
        """Step the env; the observation comes with ``action`` and the reward it earned."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        prev_action = np.asarray(action, dtype=self.action_space.dtype).reshape(self.action_space.shape)
        observation = _with_previous(observation, prev_action, np.array([reward], dtype=np.float32))
        return observation, reward, terminated, truncated, info


def make_vector_env(
    env_id: str,
    num_envs: int,
    env_kwargs: dict[str, Any] | None = None,
    vectorization: str = "auto",
    normalize_observations: bool = False,
    normalize_rewards: bool = False,
    gamma: float = 0.99,
    render_mode: str | None = None,
    env_wrappers: Any = (),
    frame_stack: int = 1,
    prev_action_reward: bool = False,
    count_bonus: float = 0.0,
    count_bonus_bits: int = DEFAULT_BITS,
) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies with episode statistics in ``infos["episode"]``.

    ``vectorization="auto"`` takes the env's native ``vector_entry_point`` when it has one and
    ``SyncVectorEnv`` otherwise; ``"native"``, ``"sync"`` and ``"async"`` force one. ``env_wrappers``
    (see :func:`parse_wrappers`) wrap each copy, or the vector env for ``gymnasium.vector.VectorWrapper``s;
    ``frame_stack > 1`` stacks each copy's last observations. A native vector env steps its copies as arrays, so
    per-copy wrappers and frame stacking make "auto" fall back to ``SyncVectorEnv``. Normalization uses
    gymnasium's own running-statistics wrappers (their statistics are saved with checkpoints).
    ``prev_action_reward`` adds the previous action and reward to each observation (:class:`PrevActionReward`);
    ``count_bonus > 0`` adds a reward bonus for rarely seen observations (:class:`rl_lstm.exploration.CountBonus`).
    """
    if vectorization not in VECTORIZATION_MODES:
        raise ConfigError(f"vectorization={vectorization!r} is not one of {', '.join(VECTORIZATION_MODES)}")
    if num_envs < 1:
        raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
    env_id = resolve_env_id(env_id)
    spec = gym.spec(env_id)
    has_native = spec.vector_entry_point is not None
    if vectorization == "native" and not has_native:
        raise ConfigError(f"{env_id} has no native vector env; use vectorization 'sync' or 'async'")
    wrappers = parse_wrappers(env_wrappers)
    wraps_copies = frame_stack > 1 or not all(entry.is_vector for entry in wrappers)
    if vectorization == "native" and wraps_copies:
        raise ConfigError(
            f"{env_id}'s native vector env steps its copies as arrays, so it cannot wrap each copy (frame_stack="
            f"{frame_stack}, env_wrappers={list(env_wrappers)}); use vectorization 'auto', 'sync' or 'async', or "
            "gymnasium.vector.VectorWrapper wrappers"
        )
    mode = {
        "auto": "vector_entry_point" if has_native and not wraps_copies else "sync",
        "native": "vector_entry_point",
        "sync": "sync",
        "async": "async",
    }[vectorization]
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    copy_wrappers = [functools.partial(wrap_env, wrappers=wrappers, frame_stack=frame_stack)] if wraps_copies else None
    try:
        vector_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, wrappers=copy_wrappers, **kwargs)
    except TypeError as error:
        raise ConfigError(f"bad env_kwargs {kwargs} for {env_id}: {error}") from error
    return add_training_layers(vector_env, wrappers, normalize_observations, normalize_rewards, gamma,
                               prev_action_reward, count_bonus, count_bonus_bits)


def tensors_to_numpy(value: Any) -> Any:
    """``value`` with every torch tensor in it, nested in dicts, tuples and lists, as a numpy array on the host."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: tensors_to_numpy(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(tensors_to_numpy(item) for item in value)
    return value


def _first_tensor(value: Any) -> torch.Tensor | None:
    """The first torch tensor in ``value`` (a tensor, or dicts and tuples of them), or None."""
    if isinstance(value, torch.Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    return next((tensor for tensor in map(_first_tensor, items) if tensor is not None), None)


class _TorchBoundary:
    """Reset and step of an env that may speak torch, as seen from one that speaks numpy.

    An env simulated in torch (on the CPU or a GPU) returns tensors, which gymnasium's episode statistics,
    normalizers and vector envs, and our rollout buffers, cannot take. Whether it does is seen at ``reset``: then its
    observations, rewards, flags and infos come back as numpy arrays, and the actions go to it as tensors on the
    device its observations were on. An env that returns numpy arrays passes through untouched.
    """

    env: Any
    env_device: torch.device | None = None  # the device of the env's tensors; None: it speaks numpy

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observations, infos = self.env.reset(seed=seed, options=options)
        tensor = _first_tensor(observations)
        self.env_device = None if tensor is None else tensor.device
        if self.env_device is None:
            return observations, infos
        return tensors_to_numpy(observations), tensors_to_numpy(infos)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self.env_device is None:
            return self.env.step(actions)
        return tensors_to_numpy(self.env.step(torch.as_tensor(actions, device=self.env_device)))


ENV_EPISODE_KEY = "env_episode"  # where an env's own episode statistics go, out of the way of ours


class ForeignEnvBoundary(_TorchBoundary, gym.vector.VectorWrapper):
    """The boundary between a vector env rl_lstm did not build and the layers rl_lstm puts around it.

    Above it:

    - everything is numpy (an env that speaks torch is converted, as in :class:`_TorchBoundary`);
    - rewards and the ``terminated`` and ``truncated`` flags hold one value per copy, ``[num_envs]``, the flags bool:
      integer flags would be masked wrong (``~1`` is -2, true), and rewards ``[n, 1]`` or a list are the ``[n]``
      they hold;
    - ``infos["episode"]`` is free for rl_lstm's own episode statistics: those the env reports there itself (its
      copies wrapped in gymnasium's RecordEpisodeStatistics, as CleanRL builds envs, or a vector one) move to
      ``infos["env_episode"]``, which gymnasium's RecordEpisodeStatistics above would otherwise refuse to
      overwrite, stopping the run at its first episode's end.
    """

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observations, infos = super().reset(seed=seed, options=options)
        return observations, _move_env_episode(infos)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        observations, rewards, terminated, truncated, infos = super().step(actions)
        rewards = self._per_copy("rewards", np.asarray(rewards))
        terminated = self._per_copy("terminated", np.asarray(terminated, dtype=bool))
        truncated = self._per_copy("truncated", np.asarray(truncated, dtype=bool))
        return observations, rewards, terminated, truncated, _move_env_episode(infos)

    def _per_copy(self, name: str, values: np.ndarray) -> np.ndarray:
        """``values`` as one per copy, ``[num_envs]``; a ValueError naming ``name`` if they are not as many."""
        if values.shape == (self.num_envs,):
            return values
        if values.size != self.num_envs:
            raise ValueError(f"it returned {name} of shape {values.shape}; a vector env of {self.num_envs} copies "
                             f"returns one per copy, shape ({self.num_envs},)")
        return values.reshape(self.num_envs)


def _move_env_episode(infos: dict[str, Any]) -> dict[str, Any]:
    """``infos`` with the env's own ``episode`` (and its ``_episode`` mask) under ``env_episode``."""
    for key in ("episode", "_episode"):
        if key in infos:
            infos[key.replace("episode", ENV_EPISODE_KEY)] = infos.pop(key)
    return infos


class TorchEnvToNumpy(_TorchBoundary, gym.Wrapper):
    """One env copy that speaks torch, as one that speaks numpy: what gymnasium's SyncVectorEnv stacks."""


# The vector wrappers rl_lstm puts around an env, with the per-copy arrays their step reads: what a checkpoint saves
# of the episodes in flight (rl_lstm.checkpoints.env_state; the normalizers' running statistics are saved on their
# own, by normalization_state). A new wrapper of ours is added here, once.
EPISODE_WRAPPER_STATE: dict[type, tuple[str, ...]] = {
    RecordEpisodeStatistics: ("episode_returns", "episode_lengths", "prev_dones"),
    NormalizeObservation: (),
    NormalizeReward: ("accumulated_reward", "_prev_dones"),
    PrevActionReward: ("prev_actions", "prev_rewards", "prev_dones"),
    CountBonus: ("autoresetting",),  # its counts are statistics, saved with the normalizers'
}


def is_built_in(vector_env: gym.vector.VectorEnv) -> bool:
    """Whether ``vector_env`` is a built-in native vector env inside none but the wrappers rl_lstm puts around envs
    (:data:`EPISODE_WRAPPER_STATE`'s): one that only speaks numpy and reports no episode statistics of its own. Any
    other gets a :class:`ForeignEnvBoundary`."""
    while type(vector_env) in EPISODE_WRAPPER_STATE:
        vector_env = vector_env.env
    return isinstance(vector_env, TaskVectorEnv)


def vector_env_of(
    env: gym.Env | gym.vector.VectorEnv, wrappers: list[WrapperEntry], frame_stack: int
) -> tuple[gym.vector.VectorEnv, str]:
    """A user's env object as the vector env rl_lstm's layers go around, and its id: the registered one where it has
    one, else the env's class name. A ``gymnasium.Env`` is one copy inside the per-copy ``wrappers``."""
    if not isinstance(env, (gym.Env, gym.vector.VectorEnv)):
        raise ConfigError(f"env must be an env id, a gymnasium.Env or a gymnasium VectorEnv, got {type(env).__name__}")
    spec = env.envs[0].spec if env.spec is None and isinstance(env, gym.vector.SyncVectorEnv) else env.spec
    env_id = spec.id if spec is not None else type(env.unwrapped).__name__
    if isinstance(env, gym.Env):
        single = wrap_env(TorchEnvToNumpy(env), wrappers, frame_stack)
        return gym.vector.SyncVectorEnv([lambda: single]), env_id
    if frame_stack > 1 or not all(entry.is_vector for entry in wrappers):
        raise ConfigError(
            "frame_stack and per-copy env_wrappers cannot wrap the copies of a VectorEnv that is already built; "
            "pass an env id or a gymnasium.Env, or wrap the copies when you build the VectorEnv"
        )
    return env, env_id


def add_training_layers(
    vector_env: gym.vector.VectorEnv,
    wrappers: list[WrapperEntry],
    normalize_observations: bool = False,
    normalize_rewards: bool = False,
    gamma: float = 0.99,
    prev_action_reward: bool = False,
    count_bonus: float = 0.0,
    count_bonus_bits: int = DEFAULT_BITS,
) -> gym.vector.VectorEnv:
    """The layers around every training vector env, built from an id or handed over: the same order for both."""
    # Every collector takes the step after an episode ends as the autoreset step: no transition, and where the
    # memory resets. Under SAME_STEP it is the next episode's first transition, which would be dropped and seen with
    # the last episode's memory: refused here, not trained wrong.
    require_next_step_autoreset(vector_env, "Training")
    if not is_built_in(vector_env):  # numpy above it, and infos["episode"] left to our statistics
        vector_env = ForeignEnvBoundary(vector_env)
    vector_env = wrap_vector_env(vector_env, wrappers)
    # A built-in env the user wrapped in gymnasium's RecordEpisodeStatistics, or a vector wrapper of env_wrappers,
    # records them already; below a boundary, an env's own statistics are out of the way.
    if find_wrapper(vector_env, RecordEpisodeStatistics, until=ForeignEnvBoundary) is None:
        vector_env = RecordEpisodeStatistics(vector_env)
    if count_bonus > 0:
        # Above the episode statistics, which report the env's own returns; below observation normalization, whose
        # statistics move, so the hash sees the env's own observations.
        vector_env = CountBonus(vector_env, count_bonus, count_bonus_bits)
    if normalize_observations:
        vector_env = NormalizeObservation(vector_env)
        vector_env.obs_rms = RunningStatistics.like(vector_env.obs_rms)
    if prev_action_reward:
        # Above observation normalization, which cannot normalize a Dict (it keeps one mean of the observation's
        # shape), so it normalizes the env's observation alone; below reward normalization: the env's own reward.
        vector_env = PrevActionReward(vector_env)
    if normalize_rewards:
        vector_env = NormalizeReward(vector_env, gamma=gamma)
        vector_env.return_rms = RunningStatistics.like(vector_env.return_rms)
    return vector_env


class RunningStatistics(RunningMeanStd):
    """gymnasium's running mean and variance, the same arithmetic in fewer numpy calls: the normalization wrappers
    update it every step, where ``np.mean``'s and ``np.var``'s Python layers cost more than the math on a few copies.
    Its statistics equal gymnasium's bit for bit (``tests/test_collection.py``)."""

    @classmethod
    def like(cls, statistics: RunningMeanStd) -> RunningStatistics:
        """A copy of ``statistics`` that updates faster."""
        copy = cls(shape=statistics.mean.shape, dtype=statistics.mean.dtype)
        copy.mean, copy.var, copy.count = statistics.mean.copy(), statistics.var.copy(), statistics.count
        return copy

    def update(self, x: np.ndarray) -> None:
        """Update from a batch ``x [N, ...]``, as ``np.mean``/``np.var`` over its first axis would."""
        batch_count = x.shape[0]
        batch_mean = np.add.reduce(x, axis=0) / batch_count
        deviations = x - batch_mean
        batch_var = np.add.reduce(deviations * deviations, axis=0) / batch_count
        self.update_from_moments(batch_mean, batch_var, batch_count)


def find_wrapper(vector_env: gym.vector.VectorEnv, wrapper_type: type, until: type | None = None) -> Any | None:
    """The first wrapper of ``wrapper_type`` around ``vector_env`` (above the first ``until`` one, if given), or
    ``None``."""
    current = vector_env
    while True:
        if isinstance(current, wrapper_type):
            return current
        if not hasattr(current, "env") or (until is not None and isinstance(current, until)):
            return None
        current = current.env


def normalization_state(vector_env: gym.vector.VectorEnv) -> dict[str, Any]:
    """The running statistics of the normalization wrappers, to store in a checkpoint."""
    state: dict[str, Any] = {}
    observation_wrapper = find_wrapper(vector_env, NormalizeObservation)
    if observation_wrapper is not None:
        rms = observation_wrapper.obs_rms
        state["observation"] = {"mean": rms.mean.copy(), "var": rms.var.copy(), "count": rms.count}
    reward_wrapper = find_wrapper(vector_env, NormalizeReward)
    if reward_wrapper is not None:
        rms = reward_wrapper.return_rms
        state["reward"] = {"mean": rms.mean.copy(), "var": rms.var.copy(), "count": rms.count}
    bonus_wrapper = find_wrapper(vector_env, CountBonus)
    if bonus_wrapper is not None:
        state["observation_counts"] = bonus_wrapper.counts.copy()
    return state


def load_normalization_state(vector_env: gym.vector.VectorEnv, state: dict[str, Any], training: bool) -> None:
    """Restore the statistics saved by :func:`normalization_state`; ``training=False`` freezes them."""
    for key, wrapper_type, attribute in (
        ("observation", NormalizeObservation, "obs_rms"),
        ("reward", NormalizeReward, "return_rms"),
    ):
        wrapper = find_wrapper(vector_env, wrapper_type)
        if wrapper is None:
            continue
        if key in state:
            rms = getattr(wrapper, attribute)
            rms.mean = np.array(state[key]["mean"], copy=True)
            rms.var = np.array(state[key]["var"], copy=True)
            rms.count = state[key]["count"]
        wrapper.update_running_mean = training
    bonus_wrapper = find_wrapper(vector_env, CountBonus)
    counts = state.get("observation_counts")
    # Counts saved with another count_bonus_bits hash into another table: the run counts afresh.
    if bonus_wrapper is not None and counts is not None and len(counts) == len(bonus_wrapper.counts):
        bonus_wrapper.counts = np.array(counts, copy=True)


def action_masks(vector_env: gym.vector.VectorEnv, infos: dict[str, Any]) -> np.ndarray | None:
    """The allowed actions of every copy, ``[num_envs, n]`` bool, or ``None`` if the env has no masks.

    Read as sb3-contrib's MaskablePPO reads them: the env's ``action_masks()`` method (native vector
    envs have a batched one; otherwise each copy's is called), else ``infos["action_mask"]``.
    """
    unwrapped = vector_env.unwrapped
    if isinstance(unwrapped, TaskVectorEnv):
        masks = unwrapped.action_masks()
        if masks is not None:
            return np.asarray(masks, dtype=bool)
    elif isinstance(unwrapped, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv)):
        masks = _call_action_masks(unwrapped)
        if masks is not None:
            return masks
    if "action_mask" in infos:
        return np.asarray(infos["action_mask"], dtype=bool)
    return None


def _call_action_masks(vector_env: gym.vector.VectorEnv) -> np.ndarray | None:
    """Each copy's ``action_masks()`` stacked, or None if the envs have no such method or it returns None."""
    has_masks = getattr(vector_env, "_rl_lstm_has_action_masks", None)
    if has_masks is None:
        # Asked, not called and caught: an AttributeError inside an AsyncVectorEnv's worker shuts that worker down.
        has_masks = all(vector_env.call("has_wrapper_attr", "action_masks"))
    masks = vector_env.call("action_masks") if has_masks else (None,)
    # An env without masks is asked once only: the answer does not change from step to step.
    vector_env._rl_lstm_has_action_masks = all(mask is not None for mask in masks)
    if not vector_env._rl_lstm_has_action_masks:
        return None
    return np.stack([np.asarray(mask, dtype=bool) for mask in masks])


def merge_observation_statistics(start: dict[str, Any], ends: list[dict[str, Any]]) -> dict[str, Any]:
    """The running statistics of observations after several workers each continued ``start`` with their own.

    Each worker's own observations are what its end statistics added to ``start`` (recovered from the moments);
    they are merged with Chan et al.'s parallel algorithm, gymnasium's ``RunningMeanStd`` update. Every entry is
    ``{"mean", "var", "count"}`` as :func:`normalization_state` stores it.
    """
    if len(ends) == 1:
        return ends[0]
    mean, var, count = np.array(start["mean"], copy=True), np.array(start["var"], copy=True), start["count"]
    for end in ends:
        added = end["count"] - start["count"]
        if added <= 0:
            continue
        added_mean = start["mean"] + (end["mean"] - start["mean"]) * end["count"] / added
        squares = end["var"] * end["count"] - start["var"] * start["count"]
        added_var = (squares - np.square(added_mean - start["mean"]) * start["count"] * added / end["count"]) / added
        mean, var, count = update_mean_var_count_from_moments(mean, var, count, added_mean, added_var, added)
    return {"mean": mean, "var": var, "count": count}


class _RewardsOfARollout(gym.vector.VectorEnv):
    """A stand-in vector env whose step hands back the rewards, terminations and truncations it is given."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs

    def step(self, outcome: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[None, Any, Any, Any, dict]:
        rewards, terminated, truncated = outcome
        return None, rewards, terminated, truncated, {}


class RolloutRewardNormalizer:
    """gymnasium's ``NormalizeReward`` applied to a rollout's rewards ``[T, B]`` after it was collected.

    Ray workers return their env's own rewards; the learner scales the whole rollout's step by step with the very
    wrapper an in-process env carries, so the scale sees every copy's return in the same order and the rewards equal
    the in-process ones. ``return_rms`` is the learner env's wrapper's, so checkpoints and evaluation read it as usual.
    """

    def __init__(self, num_envs: int, gamma: float, return_rms: Any) -> None:
        self.wrapper = NormalizeReward(_RewardsOfARollout(num_envs), gamma=gamma)
        self.wrapper.return_rms = return_rms

    def normalize(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """The scaled rewards ``[T, B]``; the running statistics move on as the wrapper's would."""
        return np.stack([self.wrapper.step(step)[1] for step in zip(rewards, terminated, truncated)])

    def restart(self, copies: np.ndarray) -> None:
        """Forget the return in flight of ``copies`` whose envs were reset (as the wrapper's reset does)."""
        self.wrapper.accumulated_reward[copies] = 0
        self.wrapper._prev_dones[copies] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        """The per-copy return in flight (the statistics themselves are saved with the learner env's)."""
        wrapper = self.wrapper
        return {"accumulated_reward": wrapper.accumulated_reward.copy(), "prev_dones": wrapper._prev_dones.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.wrapper.accumulated_reward = np.array(state["accumulated_reward"], copy=True)
        self.wrapper._prev_dones = np.array(state["prev_dones"], copy=True)
