"""What every benchmark record carries so that it can be rerun: the code, the packages and the machine it ran on.

A record is a JSON object a benchmark writes per run; :func:`provenance` is the part every record shares (the git
commit of the measured checkout and whether its code had changes, package versions, CPU model, cores and torch's
threads and kernels). The benchmark adds the run's own keys: its command, seed, resolved config, evaluation
protocol and figures.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The packages a figure can depend on; one not installed is recorded as None.
PACKAGES = ("rl-lstm", "torch", "numpy", "gymnasium", "stable-baselines3", "sb3-contrib", "popgym")


def code_state() -> dict[str, Any]:
    """The commit of the code measured (the checkout this script lies in), and whether its code had changes.

    docs/ holds the records themselves (benchmarks.md, the JSON files, images): a benchmark writing them is no change
    to the code it measures.
    """

    def git(*arguments: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *arguments], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--", ".", ":(exclude)docs"))}


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (the platform's processor string elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages in :data:`PACKAGES`, with Python's."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict[str, Any]:
    """The code, packages and machine of this process: the part every record shares."""
    import torch

    return {
        **code_state(),
        "packages": package_versions(),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            # The kernels torch dispatches to (AVX512, AVX2, ...; ATEN_CPU_CAPABILITY chooses) round differently, and
            # a training run's trajectory follows the rounding.
            "torch_kernels": torch.backends.cpu.get_cpu_capability(),
        },
    }


def write_records(path: Path, records: list[dict[str, Any]], command: str) -> None:
    """Write ``records`` to ``path`` as JSON, with the command that measured them; atomically, so that a stopped
    benchmark leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps({"command": command, "records": records}, indent=1, sort_keys=True) + "\n")
    temporary.replace(path)
