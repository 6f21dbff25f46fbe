"""Shipped presets: the env's entry, then the entries keyed ``ENV_ID:KEY=VALUE`` by env kwargs, over the defaults."""

from __future__ import annotations

import re
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
        entry = config.resolve_env_rules(shipped[key], env_id, env_kwargs)
        assert all(getattr(hyperparams, name) == value for name, value in entry.items()), key


RULES = """
rl_lstm/NiPassiveTMaze-v0:
  n_steps: !from_env length + 2
  seq_len: !from_env length + 2
  batch_size: !from_env 4 * (length + 2)
  core_kwargs: {init: chrono, t_max: !from_env "max(length, 100)"}
"""


def test_a_from_env_rule_follows_the_env_kwargs_and_their_defaults(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ppo.yaml").write_text(RULES)
    monkeypatch.setattr(config, "PRESETS_DIR", tmp_path)
    assert preset("ppo", "rl_lstm/NiPassiveTMaze-v0", {"length": 1500}) == {
        "n_steps": 1502, "seq_len": 1502, "batch_size": 6008, "core_kwargs": {"init": "chrono", "t_max": 1500}
    }
    # No length given: the env's own default (10) is L.
    assert preset("ppo", "rl_lstm/NiPassiveTMaze-v0")["seq_len"] == 12
    _, hyperparams = resolve_config({"agent": "ppo", "env": "rl_lstm/NiPassiveTMaze-v0", "env_kwargs": {"length": 98}})
    assert (hyperparams.n_steps, hyperparams.batch_size, hyperparams.core_kwargs["t_max"]) == (100, 400, 100)


def test_a_from_env_rule_in_set_or_a_user_file_is_resolved_too() -> None:
    values = {"agent": "ppo", "env": "rl_lstm/NiPassiveTMaze-v0", "env_kwargs": {"length": 40},
              **config.parse_assignments(["seq_len=!from_env length + 2", "n_steps=!from_env 2 * (length + 2)",
                                          "batch_size=!from_env length + 2"])}
    _, hyperparams = resolve_config(values)
    assert (hyperparams.seq_len, hyperparams.n_steps, hyperparams.batch_size) == (42, 84, 42)


STAGE_RULES = """
rl_lstm/NiPassiveTMaze-v0:
  n_steps: &chunk !from_env length + 2
  seq_len: *chunk
  batch_size: *chunk
  curriculum:
    stages: {length: [!from_env "min(length, 10)", !from_env "min(length, 100)"]}
    hyperparameters:
      n_steps: *chunk
      seq_len: *chunk
      batch_size: *chunk
      n_epochs: [4, !from_env "max(1, 1000 // length)"]
"""


def test_a_curriculum_hyperparameter_written_as_one_rule_follows_each_stage(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule gives each stage its own value (the stage's kwargs over the env's); a list keeps the task's."""
    (tmp_path / "ppo.yaml").write_text(STAGE_RULES)
    monkeypatch.setattr(config, "PRESETS_DIR", tmp_path)
    settings = preset("ppo", "rl_lstm/NiPassiveTMaze-v0", {"length": 500})
    assert settings["n_steps"] == 502
    assert settings["curriculum"]["stages"] == {"length": [10, 100]}
    # n_steps: the rule at length 10 and 100; n_epochs: a list, each element a rule of the task's length.
    assert settings["curriculum"]["hyperparameters"] == {"n_steps": [12, 102], "seq_len": [12, 102],
                                                         "batch_size": [12, 102], "n_epochs": [4, 2]}
    _, hyperparams = resolve_config({"agent": "ppo", "env": "rl_lstm/NiPassiveTMaze-v0", "env_kwargs": {"length": 50}})
    assert hyperparams.curriculum["hyperparameters"]["n_steps"] == [12, 52]  # the stage min(50, 100)
    # From a user's --set, with the curriculum's stages given as plain numbers.
    values = {"agent": "ppo", "env": "rl_lstm/NiPassiveTMaze-v0", "env_kwargs": {"length": 40},
              **config.parse_assignments(["curriculum={stages: {length: [5, 20]}, hyperparameters: "
                                          "{seq_len: !from_env length + 2, n_steps: !from_env 2 * (length + 2)}}",
                                          "seq_len=!from_env length + 2", "n_steps=!from_env 2 * (length + 2)"])}
    _, hyperparams = resolve_config(values)
    assert hyperparams.curriculum["hyperparameters"] == {"seq_len": [7, 22], "n_steps": [14, 44]}


def test_a_stage_rule_works_on_an_env_we_did_not_write() -> None:
    """CartPole-v1's own kwarg as a curriculum stage, a hyperparameter following it."""
    values = {"agent": "reinforce", "env": "CartPole-v1", "env_kwargs": {"sutton_barto_reward": False},
              "curriculum": {"stages": {"sutton_barto_reward": [True]},
                             "hyperparameters": {"ent_coef": config.EnvRule("0.01 * sutton_barto_reward")}}}
    _, hyperparams = resolve_config(values)
    assert hyperparams.curriculum["hyperparameters"] == {"ent_coef": [0.01]}


def test_a_stage_rule_naming_no_kwarg_of_the_env_is_an_error_naming_it() -> None:
    values = {"agent": "ppo", "env": "rl_lstm/NiPassiveTMaze-v0",
              "curriculum": {"stages": {"length": [5]}, "hyperparameters": {"n_steps": config.EnvRule("lenght + 2")}}}
    with pytest.raises(config.ConfigError, match="uses 'lenght', which is not a kwarg of rl_lstm/NiPassiveTMaze-v0"):
        resolve_config(values)


@pytest.mark.parametrize(("expression", "message"), [
    ("lenght + 2", "uses 'lenght', which is not a kwarg of rl_lstm/NiPassiveTMaze-v0; its kwargs are: length"),
    ("__import__('os').getcwd()", "is not allowed"),
    ("length.bit_length()", "is not allowed"),
    ("length +", "is not an expression"),
])
def test_a_bad_from_env_rule_is_an_error_naming_it(expression: str, message: str) -> None:
    values = {"agent": "ppo", "env": "rl_lstm/NiPassiveTMaze-v0", "seq_len": config.EnvRule(expression)}
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        resolve_config(values)


def test_a_from_env_rule_works_on_an_env_we_did_not_write() -> None:
    values = {"agent": "ppo", "env": "CartPole-v1", "n_steps": config.EnvRule("64 * (2 if sutton_barto_reward else 1)"),
              "env_kwargs": {"sutton_barto_reward": True}}
    with pytest.raises(config.ConfigError, match="is not allowed"):  # no conditionals: arithmetic only
        resolve_config(values)
    values["n_steps"] = config.EnvRule("64 * (1 + sutton_barto_reward)")
    _, hyperparams = resolve_config(values)
    assert hyperparams.n_steps == 128


@pytest.mark.parametrize("agent", ["ppo", "reinforce", "evolino"])
@pytest.mark.parametrize("length", [1, 10, 1500, 100_000])
def test_every_shipped_entry_builds_a_valid_config_at_any_length(agent: str, length: int) -> None:
    shipped = config.read_yaml(config.PRESETS_DIR / f"{agent}.yaml")
    for key in shipped:
        env_id, _ = split_env_spec(key)
        if "TMaze" in env_id:
            _, hyperparams = resolve_config({"agent": agent, "env": env_id, "env_kwargs": {"length": length}})
            assert hyperparams.env_kwargs == {"length": length}
            # These mazes' episodes last a fixed length + 1 to length + 3 steps: a safety net that cut them would
            # never pay the final reward.
            if env_id != "rl_lstm/TMaze-v0" and hasattr(hyperparams, "max_episode_steps"):
                assert hyperparams.max_episode_steps > length + 3, (agent, env_id)


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
