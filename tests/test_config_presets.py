"""Shipped presets: the env's entry, then the entries keyed ``ENV_ID:KEY=VALUE`` by env kwargs, over the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.ppo import PPOConfig
from rl_lstm import config
from rl_lstm.config import preset, split_env_spec
from rl_lstm.training import resolve_config

PRESETS = """
rl_lstm/TMaze-v0: {num_envs: 16, seq_len: 32, gamma: 0.99, ent_coef: 0.05, core_kwargs: {forget_bias: 3.0}}
rl_lstm/TMaze-v0:length=50: {seq_len: 64, gamma: 0.995}
rl_lstm/TMaze-v0:length=50,noise_std=0.1: {gamma: 0.999}
rl_lstm/PassiveTMaze-v0:length=50: {num_envs: 64}
"""


@pytest.fixture
def presets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A presets folder holding PRESETS as the ppo presets, in place of the shipped one."""
    (tmp_path / "ppo.yaml").write_text(PRESETS)
    monkeypatch.setattr(config, "PRESETS_DIR", tmp_path)
    return tmp_path


def test_env_spec_splits_the_id_from_its_kwargs() -> None:
    assert split_env_spec("rl_lstm/TMaze-v0:length=50,noise_std=0.1") == (
        "rl_lstm/TMaze-v0", {"length": 50, "noise_std": 0.1}
    )
    assert split_env_spec("rl_lstm/TMaze-v0") == ("rl_lstm/TMaze-v0", {})
    assert split_env_spec("my_package.tasks:Maze-v0") == ("my_package.tasks:Maze-v0", {})
    assert split_env_spec("my_package.tasks:Maze-v0:sizes=[1, 2],k=3") == (
        "my_package.tasks:Maze-v0", {"sizes": [1, 2], "k": 3}
    )


def test_two_argument_call_gives_the_env_entry(presets_dir: Path) -> None:
    assert preset("ppo", "rl_lstm/TMaze-v0") == {
        "num_envs": 16, "seq_len": 32, "gamma": 0.99, "ent_coef": 0.05, "core_kwargs": {"forget_bias": 3.0}
    }


def test_entry_with_matching_kwargs_applies_on_top_of_the_env_entry(presets_dir: Path) -> None:
    resolved = preset("ppo", "rl_lstm/TMaze-v0", {"length": 50})
    assert resolved == {
        "num_envs": 16, "seq_len": 64, "gamma": 0.995, "ent_coef": 0.05, "core_kwargs": {"forget_bias": 3.0}
    }


def test_entry_with_other_kwargs_or_another_env_does_not_apply(presets_dir: Path) -> None:
    env_entry_only = preset("ppo", "rl_lstm/TMaze-v0")
    assert preset("ppo", "rl_lstm/TMaze-v0", {"length": 20}) == env_entry_only
    assert preset("ppo", "rl_lstm/TMaze-v0", {"noise_std": 0.1}) == env_entry_only
    assert preset("ppo", "rl_lstm/TMaze-v0", {}) == env_entry_only
    assert preset("ppo", "rl_lstm/TMaze-v0", None) == env_entry_only
    assert preset("ppo", "rl_lstm/PassiveTMaze-v0", {"length": 50})["num_envs"] == 64
    assert preset("ppo", "rl_lstm/TMaze-v0", {"length": 50})["num_envs"] == 16


def test_kwargs_not_named_by_the_entry_do_not_stop_it_matching(presets_dir: Path) -> None:
    assert preset("ppo", "rl_lstm/TMaze-v0", {"length": 50, "noise_std": 0.0})["seq_len"] == 64


def test_entry_naming_more_kwargs_applies_last(presets_dir: Path) -> None:
    resolved = preset("ppo", "rl_lstm/TMaze-v0", {"noise_std": 0.1, "length": 50})
    assert resolved["gamma"] == 0.999 and resolved["seq_len"] == 64


def test_agent_without_a_presets_file_has_an_empty_preset(presets_dir: Path) -> None:
    assert preset("reinforce", "rl_lstm/TMaze-v0", {"length": 50}) == {}


def test_an_env_without_an_entry_gets_the_agent_defaults_alone() -> None:
    assert preset("ppo", "CartPole-v1") == {} and preset("reinforce", "CartPole-v1") == {}
    _, hyperparams = resolve_config({"agent": "ppo", "env": "CartPole-v1"})
    assert hyperparams == PPOConfig()


def test_training_config_takes_the_preset_of_its_env_kwargs(presets_dir: Path) -> None:
    values = {"agent": "ppo", "env": "rl_lstm/TMaze-v0", "env_kwargs": {"length": 50}}
    _, hyperparams = resolve_config(values)
    assert (hyperparams.seq_len, hyperparams.gamma, hyperparams.ent_coef) == (64, 0.995, 0.05)
    assert hyperparams.env_kwargs == {"length": 50}


def test_training_config_without_env_kwargs_takes_the_env_entry(presets_dir: Path) -> None:
    _, hyperparams = resolve_config({"agent": "ppo", "env": "rl_lstm/TMaze-v0"})
    assert (hyperparams.seq_len, hyperparams.gamma) == (32, 0.99)


def test_user_values_override_the_kwargs_entry(presets_dir: Path) -> None:
    values = {"agent": "ppo", "env": "rl_lstm/TMaze-v0", "env_kwargs": {"length": 50}, "gamma": 0.9}
    _, hyperparams = resolve_config(values)
    assert (hyperparams.seq_len, hyperparams.gamma) == (64, 0.9)


def test_every_shipped_kwargs_entry_names_a_registered_env_and_builds_a_valid_config() -> None:
    shipped = config.read_yaml(config.PRESETS_DIR / "ppo.yaml")
    kwargs_entries = [key for key in shipped if split_env_spec(key)[1]]
    for key in kwargs_entries:
        env_id, env_kwargs = split_env_spec(key)
        _, hyperparams = resolve_config({"agent": "ppo", "env": env_id, "env_kwargs": env_kwargs})
        assert all(getattr(hyperparams, name) == value for name, value in shipped[key].items()), key


def test_exponent_floats_are_numbers_in_set_and_in_config_files(tmp_path: Path) -> None:
    # PyYAML alone reads "3e-4" as a string (YAML 1.1 wants "3.0e-4"); the README writes --set learning_rate=3e-4.
    assert config.parse_assignments(["learning_rate=3e-4", "sizes=[1e-3, 2]"]) == {
        "learning_rate": 3e-4, "sizes": [1e-3, 2]
    }
    (tmp_path / "run.yaml").write_text("learning_rate: 3e-4\nclip_range: 2E-1\nname: 1e3x\n")
    assert config.read_yaml(tmp_path / "run.yaml") == {"learning_rate": 3e-4, "clip_range": 0.2, "name": "1e3x"}
    values = {"agent": "ppo", "env": "CartPole-v1", **config.parse_assignments(["learning_rate=3e-4"])}
    _, hyperparams = resolve_config(values)
    assert hyperparams.learning_rate == 3e-4
