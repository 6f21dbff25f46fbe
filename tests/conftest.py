"""Test-wide settings."""

import os

import pytest
import torch
from hypothesis import settings

# Small recurrent nets run fastest on one thread, and pytest-xdist already uses both cores.
torch.set_num_threads(1)

# In CI the property-based tests replay a fixed set of examples, so a run cannot fail on a new random draw
# that no developer has seen; locally they keep exploring.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Learning tests take their seed from the fixture `learning_seed`: 0 unless `--learning-seeds 0,1,2,3,4` (or the
# variable RL_LSTM_LEARNING_SEEDS) names others, so anyone can rerun them on the seeds their budgets were measured on.
LEARNING_SEEDS_VARIABLE = "RL_LSTM_LEARNING_SEEDS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--learning-seeds",
        default=os.environ.get(LEARNING_SEEDS_VARIABLE, "0"),
        help=f"comma-separated seeds for the learning tests (default 0, or ${LEARNING_SEEDS_VARIABLE}), e.g. 0,1,2,3,4",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "learning_seed" not in metafunc.fixturenames:
        return
    text = metafunc.config.getoption("--learning-seeds")
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        message = f"--learning-seeds must be comma-separated integers such as 0,1,2,3,4, got {text!r}"
        raise pytest.UsageError(message) from None
    metafunc.parametrize("learning_seed", seeds, ids=[f"seed{seed}" for seed in seeds])
