"""Test-wide settings."""

import os

import torch
from hypothesis import settings

# Small recurrent nets run fastest on one thread, and pytest-xdist already uses both cores.
torch.set_num_threads(1)

# In CI the property-based tests replay a fixed set of examples, so a run cannot fail on a new random draw
# that no developer has seen; locally they keep exploring.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
