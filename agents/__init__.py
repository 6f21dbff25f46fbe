"""The trainers, one module each; :func:`agent_class` finds one by its name on the command line."""

from __future__ import annotations

import difflib
import importlib

from rl_lstm.errors import ConfigError

AGENTS: dict[str, str] = {
    "ppo": "agents.ppo:RecurrentPPO",
    "reinforce": "agents.reinforce:RecurrentReinforce",
    "evolino": "agents.evolino:RecurrentEvolino",
}


def agent_class(name: str) -> type:
    """The agent class registered as ``name``; an unknown name is an error listing the agents and close matches."""
    if name not in AGENTS:
        close = difflib.get_close_matches(name, list(AGENTS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown agent {name!r}.{hint} Agents: {', '.join(AGENTS)}.")
    module, _, cls = AGENTS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
