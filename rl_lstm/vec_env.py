"""Vector environments from any gymnasium id: native numpy envs where registered, Sync/Async otherwise."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.vector import NormalizeObservation, NormalizeReward, RecordEpisodeStatistics

import envs  # noqa: F401  (registers the built-in ids)
from rl_lstm.errors import ConfigError

VECTORIZATION_MODES = ("auto", "native", "sync", "async")


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


def make_vector_env(
    env_id: str,
    num_envs: int,
    env_kwargs: dict[str, Any] | None = None,
    vectorization: str = "auto",
    normalize_observations: bool = False,
    normalize_rewards: bool = False,
    gamma: float = 0.99,
    render_mode: str | None = None,
) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies with episode statistics in ``infos["episode"]``.

    ``vectorization="auto"`` takes the env's native ``vector_entry_point`` when it has one and
    ``SyncVectorEnv`` otherwise; ``"native"``, ``"sync"`` and ``"async"`` force one. Normalization uses
    gymnasium's own running-statistics wrappers (their statistics are saved with checkpoints).
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
    mode = {
        "auto": "vector_entry_point" if has_native else "sync",
        "native": "vector_entry_point",
        "sync": "sync",
        "async": "async",
    }[vectorization]
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        vector_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
    except TypeError as error:
        raise ConfigError(f"bad env_kwargs {kwargs} for {env_id}: {error}") from error
    vector_env = RecordEpisodeStatistics(vector_env)
    if normalize_observations:
        vector_env = NormalizeObservation(vector_env)
    if normalize_rewards:
        vector_env = NormalizeReward(vector_env, gamma=gamma)
    return vector_env


def find_wrapper(vector_env: gym.vector.VectorEnv, wrapper_type: type) -> Any | None:
    """The first wrapper of ``wrapper_type`` around ``vector_env``, or ``None``."""
    current = vector_env
    while True:
        if isinstance(current, wrapper_type):
            return current
        if not hasattr(current, "env"):
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


def action_masks(vector_env: gym.vector.VectorEnv, infos: dict[str, Any]) -> np.ndarray | None:
    """The allowed actions of every copy, ``[num_envs, n]`` bool, or ``None`` if the env has no masks.

    Read as sb3-contrib's MaskablePPO reads them: the env's ``action_masks()`` method (native vector
    envs have a batched one; otherwise each copy's is called), else ``infos["action_mask"]``.
    """
    unwrapped = vector_env.unwrapped
    if isinstance(unwrapped, envs.batched.TaskVectorEnv):
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
    if getattr(vector_env, "_rl_lstm_has_action_masks", True) is False:
        return None
    try:
        masks = vector_env.call("action_masks")
    except AttributeError:
        masks = (None,)
    # An env without masks is asked once only: the answer does not change from step to step.
    vector_env._rl_lstm_has_action_masks = all(mask is not None for mask in masks)
    if not vector_env._rl_lstm_has_action_masks:
        return None
    return np.stack([np.asarray(mask, dtype=bool) for mask in masks])
