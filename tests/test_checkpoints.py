"""Checkpoints hold plain data only: a crafted file cannot run code, damaged ones are named, and resuming is exact."""

from __future__ import annotations

import io
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from agents.evolino import RecurrentEvolino
from agents.ppo import RecurrentPPO
from agents.reinforce import RecurrentReinforce
from rl_lstm import checkpoints
from rl_lstm.agent import rng_state
from rl_lstm.checkpoints import REQUIRED_KEYS, from_plain, load_checkpoint, to_plain
from rl_lstm.errors import CheckpointError
from rl_lstm.vec_env import make_vector_env, normalization_state

PPO = dict(num_envs=4, n_steps=16, seq_len=8, batch_size=32, n_epochs=2, env_kwargs={"length": 4})
REINFORCE = dict(num_envs=4, env_kwargs={"length": 4})
EVOLINO = dict(num_envs=8, env_kwargs={"length": 4}, subpopulation_size=4, trials_per_chromosome=1,
               episodes_per_network=2)
NORMALIZED = dict(normalize_observations=True, normalize_rewards=True)


class ShellCommand:
    """Unpickling it runs a shell command: what a crafted checkpoint would carry."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _parameters(agent) -> torch.Tensor:
    return torch.cat([parameter.detach().flatten() for parameter in agent.policy.parameters()])


def _crafted_checkpoint(tmp_path: Path, marker: Path) -> Path:
    """A real checkpoint whose payload also carries an object that creates ``marker`` when unpickled."""
    path = tmp_path / "agent.pt"
    RecurrentPPO("rl_lstm/TMaze-v0", **PPO).save(path)
    payload = torch.load(path, weights_only=True)
    payload["extra"] = {"note": ShellCommand(f"touch {marker}")}
    torch.save(payload, path)
    return path


# ---- a checkpoint cannot run code ----------------------------------------------------------------------------------
def test_the_crafted_payload_would_run_its_command_if_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(ShellCommand(f"touch {marker}")))
    assert marker.exists(), "the payload the next tests refuse is a working exploit"


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _crafted_checkpoint(tmp_path, marker)
    with pytest.raises(CheckpointError, match=r"refused.*posix\.system"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        RecurrentPPO.load(path)
    assert not marker.exists()


def test_rl_lstm_evaluate_refuses_a_checkpoint_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _crafted_checkpoint(tmp_path, marker)
    evaluated = subprocess.run([sys.executable, "-m", "rl_lstm.cli", "evaluate", str(path), "--episodes", "2"],
                               capture_output=True, text=True, timeout=120)
    assert evaluated.returncode == 2
    assert "refused" in evaluated.stderr + evaluated.stdout
    assert not marker.exists()


# ---- damaged, old or incomplete checkpoints ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("checkpoint") / "agent.pt"
    RecurrentPPO("rl_lstm/TMaze-v0", **PPO).save(path)
    return torch.load(path, weights_only=True)


def test_a_checkpoint_missing_a_required_key_names_it(tmp_path: Path, payload: dict) -> None:
    path = tmp_path / "agent.pt"
    for key in REQUIRED_KEYS:
        torch.save({name: value for name, value in payload.items() if name != key}, path)
        with pytest.raises(CheckpointError, match=f"has no '{key}'"):
            load_checkpoint(path)


def test_a_checkpoint_of_an_older_format_version_is_refused_naming_both_versions(tmp_path: Path, payload: dict) -> None:
    path = tmp_path / "agent.pt"
    torch.save({**payload, "format_version": 1}, path)
    with pytest.raises(CheckpointError, match="format version 1; this rl_lstm reads version 2"):
        load_checkpoint(path)


def test_a_format_1_checkpoint_of_pickled_numpy_and_gymnasium_objects_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"format_version": 1, "observation_space": gym.spaces.Box(0, 1, (3,)),
                "normalization": {"mean": np.zeros(3)}}, path)
    with pytest.raises(CheckpointError, match=r"older rl_lstm \(format version 1.*reads version 2"):
        load_checkpoint(path)


# ---- the codec -----------------------------------------------------------------------------------------------------
def test_numpy_values_survive_the_plain_codec_exactly() -> None:
    value = {
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),
        "arrays": [np.arange(6, dtype=np.int16).reshape(2, 3), np.array([True, False]), np.zeros((0, 4))],
        "scalars": (np.float64(0.1), np.float32(2.5), np.int64(-3)),
        "tensor": torch.arange(3),
    }
    buffer = io.BytesIO()
    torch.save(to_plain(value), buffer)
    buffer.seek(0)
    restored = from_plain(torch.load(buffer, weights_only=True))
    assert restored["python_rng"] == value["python_rng"]
    assert restored["numpy_rng"][0] == "MT19937" and np.array_equal(restored["numpy_rng"][1], value["numpy_rng"][1])
    assert restored["numpy_rng"][2:] == value["numpy_rng"][2:]
    for before, after in zip(value["arrays"], restored["arrays"]):
        assert after.dtype == before.dtype and after.shape == before.shape and np.array_equal(after, before)
    assert all(type(after) is type(before) and after == before for before, after in zip(value["scalars"],
                                                                                      restored["scalars"]))
    assert torch.equal(restored["tensor"], value["tensor"])


def test_an_object_a_checkpoint_cannot_hold_is_named_when_saving() -> None:
    with pytest.raises(TypeError, match=r"checkpoint\['training_state'\]\['space'\] is a gymnasium.spaces"):
        to_plain({"training_state": {"space": gym.spaces.Discrete(3)}})


# ---- round trips ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("agent_class", "hyperparams"),
    [(RecurrentPPO, {**PPO, **NORMALIZED}), (RecurrentReinforce, {**REINFORCE, **NORMALIZED}),
     (RecurrentEvolino, EVOLINO)],
    ids=["ppo", "reinforce", "evolino"],
)
def test_an_agent_round_trips_with_its_statistics_and_generators(tmp_path: Path, agent_class, hyperparams) -> None:
    agent = agent_class("rl_lstm/TMaze-v0", seed=2, **hyperparams)
    agent.learn(300, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    generators = rng_state()
    random.random(), np.random.random(), torch.rand(1)  # move the global generators on: load must set them back
    loaded = agent_class.load(tmp_path / "agent.pt")
    assert torch.equal(_parameters(loaded), _parameters(agent))
    assert loaded.rng.bit_generator.state == agent.rng.bit_generator.state
    restored = rng_state()
    assert restored["python"] == generators["python"] and torch.equal(restored["torch"], generators["torch"])
    assert np.array_equal(restored["numpy"][1], generators["numpy"][1])
    statistics = normalization_state(agent.env)
    assert statistics.keys() == normalization_state(loaded.env).keys()
    for kind, values in statistics.items():
        for name, value in values.items():
            assert np.array_equal(normalization_state(loaded.env)[kind][name], value), (kind, name)
    if agent_class is RecurrentEvolino:
        for before, after in zip(agent.esp.subpopulations, loaded.esp.subpopulations):
            assert np.array_equal(before, after)
        assert loaded.esp.best_fitness == agent.esp.best_fitness
    agent.close()
    loaded.close()


@pytest.mark.parametrize(
    ("agent_class", "env_id", "hyperparams"),
    [
        (RecurrentPPO, "rl_lstm/TMaze-v0", PPO),
        (RecurrentPPO, "rl_lstm/NoisyCartPolePositionOnly-v0", {**PPO, "env_kwargs": {}, **NORMALIZED}),
        (RecurrentReinforce, "rl_lstm/TMaze-v0", {**REINFORCE, **NORMALIZED}),
    ],
    ids=["ppo-tmaze", "ppo-noisy-cartpole-normalized", "reinforce-tmaze-normalized"],
)
def test_save_load_and_continue_equals_continuing(tmp_path: Path, agent_class, env_id: str, hyperparams) -> None:
    agent = agent_class(env_id, seed=1, **hyperparams)
    agent.learn(200, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    agent.learn(300, progress_bar=False)
    resumed = agent_class.load(tmp_path / "agent.pt")
    resumed.learn(300, progress_bar=False)
    assert resumed.num_timesteps == agent.num_timesteps
    assert torch.equal(_parameters(resumed), _parameters(agent)), "the episodes in flight continue where they were"


def test_a_sync_vector_env_restarts_its_episodes_from_the_restored_generator(tmp_path: Path) -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=1, vectorization="sync", **PPO)
    agent.learn(200, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    assert load_checkpoint(tmp_path / "agent.pt")["episodes"] is None, "a SyncVectorEnv's state cannot be read"
    runs = []
    for _ in range(2):
        resumed = RecurrentPPO.load(tmp_path / "agent.pt")
        assert resumed._rollout is None
        resumed.learn(300, progress_bar=False)
        runs.append(_parameters(resumed))
    assert torch.equal(runs[0], runs[1]), "resuming twice from one checkpoint gives the same run"


# ---- the native envs' state ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", envs.BUILTIN_ENV_IDS)
def test_a_native_env_restored_from_its_state_continues_step_for_step(env_id: str) -> None:
    original, restored = (make_vector_env(env_id, 3, vectorization="native") for _ in range(2))
    actions = original.action_space
    actions.seed(0)
    original.reset(seed=5)
    for _ in range(7):
        original.step(actions.sample())
    state = from_plain(to_plain(checkpoints.env_state(original)))
    restored.reset(seed=99)
    checkpoints.load_env_state(restored, state)
    for _ in range(300):  # long enough for episodes to end, autoreset and draw a new block of noise
        action = actions.sample()
        expected, got = original.step(action), restored.step(action)
        for name, a, b in zip(("observation", "reward", "terminated", "truncated"), expected, got):
            assert np.array_equal(a, b), name
        assert expected[4].keys() == got[4].keys()
        if "episode" in expected[4]:
            assert np.array_equal(expected[4]["episode"]["r"], got[4]["episode"]["r"])
            assert np.array_equal(expected[4]["episode"]["l"], got[4]["episode"]["l"])
