"""Checkpoints: written atomically (temp file, flush, fsync, rename), read back safely, with errors a user can act on.

A checkpoint holds only tensors and plain Python values, so it is read with ``torch.load(weights_only=True)``,
which runs no code from the file: a crafted ``.pt`` cannot execute anything on ``rl-lstm evaluate``. Numpy
arrays and scalars (RNG states, normalization statistics, ESP populations, the env's state) are written as
small tagged dicts (dtype, shape, raw bytes as a uint8 tensor) by :func:`to_plain` and read back by
:func:`from_plain`; gymnasium spaces are stored as :func:`describe_space`'s plain description. :func:`env_state`
reads the episodes running in a built-in vector env, so that a resumed run continues them.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.batched import TaskVectorEnv
from rl_lstm.errors import CheckpointError
from rl_lstm.vec_env import EPISODE_WRAPPER_STATE

FORMAT_VERSION = 2  # 2: plain data only, read with weights_only=True; 1 pickled numpy and gymnasium objects
REQUIRED_KEYS = (
    "agent",
    "env_id",
    "seed",
    "config",
    "observation_space",
    "action_space",
    "policy",
    "num_timesteps",
    "training_state",
    "normalization",
    "episodes",
    "extra",
)
NUMPY_TAG = "__numpy__"  # marks a dict that stands for a numpy array ("array") or scalar ("scalar")
# Modules whose objects format 1 pickled: a file that fails to load only because of them was written by an older
# rl_lstm, not crafted.
_FORMAT_1_MODULES = ("numpy.", "gymnasium.")


def to_plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` with every numpy array and scalar replaced by a tagged dict of plain data (``where`` names it).

    Tensors, dicts, lists, tuples, str, bytes, int, float, bool and None pass through; a container is copied
    only when something inside it changed, so a module's ``state_dict`` keeps its ``_metadata``. Any other
    type is a ``TypeError``: ``weights_only`` loading would refuse it.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"{where} is a numpy array of Python objects; a checkpoint holds numbers only")
        kind = "scalar" if isinstance(value, np.generic) else "array"
        # The raw bytes as a uint8 tensor: torch stores it as a record of its own, and pickle protocol 2 (torch's)
        # would write a bytes object through a global that weights_only refuses when it is empty.
        data = torch.from_numpy(np.ascontiguousarray(array).reshape(-1).view(np.uint8).copy())
        return {NUMPY_TAG: kind, "dtype": array.dtype.str, "shape": list(array.shape), "data": data}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; use str or int keys")
        return _same_or_new(value, {key: to_plain(item, f"{where}[{key!r}]") for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return _same_or_new(value, [to_plain(item, f"{where}[{index}]") for index, item in enumerate(value)])
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor)):
        return value
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__name__}; a checkpoint holds only tensors, numpy "
        "arrays and plain Python values (dict, list, tuple, str, bytes, int, float, bool, None)"
    )


def from_plain(value: Any) -> Any:
    """Undo :func:`to_plain`: the tagged dicts become numpy arrays and scalars again."""
    if isinstance(value, dict):
        if NUMPY_TAG in value:
            dtype, data = np.dtype(value["dtype"]), value["data"]
            if dtype.hasobject:
                raise ValueError(f"a stored numpy array has dtype {dtype}, which holds Python objects")
            if not (isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.dim() == 1):
                raise ValueError("a stored numpy array's data is not a flat uint8 tensor")
            array = data.numpy().view(dtype).reshape(value["shape"]).copy()
            return array[()] if value[NUMPY_TAG] == "scalar" else array
        return _same_or_new(value, {key: from_plain(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return _same_or_new(value, [from_plain(item) for item in value])
    return value


def _same_or_new(original: dict | list | tuple, items: dict | list) -> Any:
    """``original`` if ``items`` are the very objects it held, else a container of its kind (dict, list, tuple)."""
    old = original.values() if isinstance(original, dict) else original
    new = items.values() if isinstance(items, dict) else items
    if all(a is b for a, b in zip(new, old)):
        return original
    return tuple(items) if isinstance(original, tuple) else items


def describe_space(space: gym.Space) -> dict[str, Any]:
    """A gymnasium space as plain data (kind, shape, dtype, bounds), stored in checkpoints and compared on load.

    A Box bound that is the same everywhere is one number, so the description of an image space stays short.
    """
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {key: describe_space(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [describe_space(sub) for sub in space.spaces]}
    description: dict[str, Any] = {
        "type": type(space).__name__,
        "shape": None if space.shape is None else list(space.shape),
        "dtype": None if space.dtype is None else str(space.dtype),
    }
    for name in ("n", "start", "nvec", "low", "high"):
        if hasattr(space, name):
            bound = np.asarray(getattr(space, name))
            uniform = bound.size > 0 and bool((bound == bound.flat[0]).all())
            description[name] = bound.flat[0].item() if uniform else bound.tolist()
    return description


def env_state(vector_env: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The state of the episodes running in ``vector_env``, as plain data; None where it cannot be read.

    It can be read from a built-in native vector env (:class:`envs.batched.TaskVectorEnv`) inside the wrappers
    of :data:`EPISODE_WRAPPER_STATE`. Sync and Async vector envs of a user's env hide their state in the copies
    (or in other processes), and another wrapper may hold state we do not know of: for those it is None.
    """
    wrappers: list[dict[str, np.ndarray]] = []
    current = vector_env
    while isinstance(current, gym.vector.VectorWrapper):
        if type(current) not in EPISODE_WRAPPER_STATE:
            return None
        arrays = {name: np.copy(getattr(current, name)) for name in EPISODE_WRAPPER_STATE[type(current)]}
        wrappers.append({"type": type(current).__name__, "arrays": arrays})
        current = current.env
    if not isinstance(current, TaskVectorEnv):
        return None
    return {"wrappers": wrappers, "type": type(current).__name__, "env": current.state_dict()}


def load_env_state(vector_env: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Restore what :func:`env_state` read into ``vector_env``, built as the one it was read from."""
    layers = []
    current = vector_env
    while isinstance(current, gym.vector.VectorWrapper):
        layers.append(current)
        current = current.env
    saved_types = [wrapper["type"] for wrapper in state["wrappers"]] + [state["type"]]
    types = [type(layer).__name__ for layer in [*layers, current]]
    if types != saved_types:
        raise CheckpointError(
            f"the checkpoint's episodes ran in {' < '.join(saved_types)}, but this env is {' < '.join(types)}; "
            "load it with the env config it was trained with"
        )
    for layer, wrapper in zip(layers, state["wrappers"]):
        for name, value in wrapper["arrays"].items():
            setattr(layer, name, np.array(value, copy=True))
    try:
        current.load_state_dict(state["env"])
    except ValueError as error:
        raise CheckpointError(f"the checkpoint's env state does not fit this env: {error}") from error


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` so that ``path`` always holds either the old or the new checkpoint, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(to_plain({"format_version": FORMAT_VERSION, **payload}), buffer)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(buffer.getbuffer())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk, or a crash can bring the old name back.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


CHECKPOINT_NAMES = ("latest", "best")  # a run folder's checkpoints/latest.pt and checkpoints/best.pt


def checkpoint_file(path: str | Path, name: str | None = None) -> Path:
    """The checkpoint file ``path`` names: itself, or a run folder's ``checkpoints/<name>.pt`` (default latest)."""
    path = Path(path)
    if name is not None and name not in CHECKPOINT_NAMES:
        raise CheckpointError(f"checkpoint {name!r} is none of a run's: choose {' or '.join(CHECKPOINT_NAMES)}")
    if not path.is_dir():
        if name is not None:
            raise CheckpointError(f"{str(path)!r} is a checkpoint file already; a checkpoint name ({name!r}) picks "
                                  "one in a run folder: pass the run folder, or drop the name")
        return path
    name = name or "latest"
    for candidate in (path / "checkpoints" / f"{name}.pt", path / f"{name}.pt"):
        if candidate.is_file():
            return candidate
    hint = " (a run writes best.pt at its first evaluation; eval_every 0 writes none)" if name == "best" else ""
    raise CheckpointError(
        f"{str(path)!r} is a folder with no checkpoints/{name}.pt{hint}; pass a run folder or a .pt file"
    )


def load_checkpoint(path: str | Path, agent: str | None = None) -> dict[str, Any]:
    """Read a checkpoint without running any code from it; ``agent`` (e.g. ``"ppo"``) checks who wrote it."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file (EOFError, RuntimeError, UnpicklingError)
        raise _unreadable(path, error) from error
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{str(path)!r} is not an rl_lstm checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload['format_version']}; this rl_lstm reads version "
            f"{FORMAT_VERSION}. Load it with the rl_lstm version that wrote it."
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no {', '.join(repr(key) for key in missing)}: it is damaged or was not "
            "written by rl_lstm's save; use another checkpoint, e.g. checkpoints/best.pt or an earlier copy"
        )
    if agent is not None and payload["agent"] != agent:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by agent {payload['agent']!r}, not {agent!r}; "
            f"load it with that agent's class or pass --agent {payload['agent']}"
        )
    try:
        return from_plain(payload)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a damaged numpy array ({error})") from error


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    """Why ``weights_only`` loading failed: an older format, objects that would run code, or a damaged file."""
    try:
        # A static scan of the pickle's opcodes: it lists the globals the file names without importing or calling any.
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a torch zip file at all, or one cut short: the file is damaged
        names = []
    if names and all(name.startswith(_FORMAT_1_MODULES) for name in names):
        return CheckpointError(
            f"checkpoint {str(path)!r} was written by an older rl_lstm (format version 1, which stored numpy and "
            f"gymnasium objects: {', '.join(names[:3])}); this rl_lstm reads version {FORMAT_VERSION} only, which "
            "cannot run code on load. Retrain, or load it with the rl_lstm version that wrote it."
        )
    if names:
        return CheckpointError(
            f"checkpoint {str(path)!r} was refused: it holds Python objects ({', '.join(names[:5])}) that loading "
            "would have to call, which can run any code. rl_lstm checkpoints hold only tensors and plain values, "
            "so this file was not written by rl_lstm or was altered; do not load it from an untrusted source."
        )
    # torch's own message for a pickle it cannot read suggests weights_only=False, the very thing to avoid here.
    detail = type(error).__name__ if isinstance(error, pickle.UnpicklingError) else f"{type(error).__name__}: {error}"
    return CheckpointError(
        f"checkpoint {str(path)!r} is corrupted or truncated and cannot be read ({detail}); use another checkpoint, "
        "e.g. checkpoints/best.pt or an earlier copy"
    )
