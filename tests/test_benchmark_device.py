"""The device benchmark (scripts/benchmark_device.py): the table of every device this machine has, the runs to
success, and a CUDA column that says when there is no GPU."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
benchmark_device = importlib.import_module("benchmark_device")


def parse(*options: str) -> argparse.Namespace:
    """The device benchmark's options as its own parser reads them."""
    parser = argparse.ArgumentParser()
    benchmark_device.add_parsers(parser.add_subparsers())
    return parser.parse_args(["device", *options])


def test_every_device_gets_its_throughput_and_a_run_to_success() -> None:
    """A tiny real run: 8 and 16 copies timed, one run of 16 copies on a budget too small to solve the T-maze."""
    args = parse("--envs", "8", "16", "--iterations", "1", "--solve-envs", "16", "--eval-every", "1024",
                 "--max-timesteps", "2048", "--no-write")
    section = benchmark_device.benchmark_device(args)
    throughput = [line for line in section.splitlines() if line.startswith(("| 8 |", "| 16 |"))]
    assert len(throughput) == 2
    runs = [line for line in section.splitlines() if line.startswith(("| cpu |", "| cuda |"))]
    assert [line.split(" | ")[0] for line in runs] == [f"| {device}" for device in benchmark_device.available_devices()]
    assert all(int(line.split(" | ")[3].replace(",", "")) >= 2048 for line in runs)  # the whole budget, then evaluated
    if not torch.cuda.is_available():
        assert all("no CUDA device on this machine" in line for line in throughput)


def test_the_batch_keeps_four_minibatches_at_every_number_of_copies() -> None:
    for copies in (64, 1024):
        settings = benchmark_device.settings(copies)
        assert settings["num_envs"] * settings["n_steps"] == 4 * settings["batch_size"]
