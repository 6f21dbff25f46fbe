"""Test-wide settings."""

import torch

# Small recurrent nets run fastest on one thread, and pytest-xdist already uses both cores.
torch.set_num_threads(1)
