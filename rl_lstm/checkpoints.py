"""Checkpoints written atomically (temp file, flush, fsync, rename) and read back with errors a user can act on."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rl_lstm.errors import CheckpointError

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` so that ``path`` always holds either the old or the new checkpoint, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **payload}, buffer)
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


def load_checkpoint(path: str | Path, agent: str | None = None) -> dict[str, Any]:
    """Read a checkpoint; ``agent`` (e.g. ``"ppo"``) checks it was written by that agent."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "latest.pt", path / "latest.pt"):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise CheckpointError(
                f"{str(path)!r} is a folder with no checkpoints/latest.pt; pass a run folder or a .pt file"
            )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a damaged file (EOFError, RuntimeError, UnpicklingError)
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted or truncated and cannot be read ({type(error).__name__}: {error}); "
            "use another checkpoint, e.g. checkpoints/best.pt or an earlier copy"
        ) from error
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{str(path)!r} is not an rl_lstm checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload['format_version']}; this rl_lstm reads version "
            f"{FORMAT_VERSION}. Load it with the rl_lstm version that wrote it."
        )
    if agent is not None and payload.get("agent") != agent:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by agent {payload.get('agent')!r}, not {agent!r}; "
            f"load it with that agent's class or pass --agent {payload.get('agent')}"
        )
    return payload
