"""Faults, bad input and reproducibility: what a user running long trainings relies on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import envs  # noqa: F401
from agents import agent_class
from agents.evolino import EvolinoConfig
from agents.ppo import PPOConfig, RecurrentPPO
from agents.reinforce import RecurrentReinforce, ReinforceConfig
from rl_lstm import checkpoints
from rl_lstm.config import build_config
from rl_lstm.errors import CheckpointError, ConfigError, EnvStepError

TINY = {"ppo": dict(num_envs=4, n_steps=16, seq_len=8, batch_size=32, n_epochs=2), "reinforce": dict(num_envs=4)}


class ExplodingEnv(gym.Wrapper):
    """Raises in step after a few steps, as a buggy third-party env would."""

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        self.steps += 1
        if self.steps == 5:
            raise RuntimeError("simulator diverged")
        return self.env.step(action)


@pytest.mark.parametrize("agent", ["ppo", "reinforce"])
def test_an_env_that_raises_is_named_with_the_step(agent: str) -> None:
    env = gym.vector.SyncVectorEnv([lambda: ExplodingEnv(gym.make("rl_lstm/TMaze-v0", length=20))] * 4)
    trainer = agent_class(agent)(env, **TINY[agent])
    with pytest.raises(EnvStepError, match=r"raised RuntimeError in step\(\) at env step .*simulator diverged"):
        trainer.learn(1_000, progress_bar=False)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_loadable(tmp_path: Path, monkeypatch) -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", env_kwargs={"length": 3}, **TINY["ppo"])
    path = tmp_path / "latest.pt"
    agent.save(path)
    agent.learn(64, progress_bar=False)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while renaming")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        agent.save(path)
    monkeypatch.undo()
    assert RecurrentPPO.load(path).num_timesteps == 0, "the old checkpoint is whole"
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"], "no temporary file is left behind"


def test_truncated_and_corrupted_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "agent.pt"
    RecurrentPPO("rl_lstm/TMaze-v0", **TINY["ppo"]).save(path)
    data = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    for name in ("truncated.pt", "noise.pt"):
        with pytest.raises(CheckpointError, match="corrupted or truncated"):
            RecurrentPPO.load(tmp_path / name)
    with pytest.raises(CheckpointError, match="does not exist"):
        RecurrentPPO.load(tmp_path / "missing.pt")


def test_checkpoints_of_another_version_or_agent_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.pt"
    RecurrentPPO("rl_lstm/TMaze-v0", **TINY["ppo"]).save(path)
    with pytest.raises(CheckpointError, match="written by agent 'ppo', not 'reinforce'"):
        RecurrentReinforce.load(path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = checkpoints.FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format version"):
        RecurrentPPO.load(path)


# Constant schedules: a run extended with --timesteps then follows the same schedule as one trained to that total.
SMALL_RUN = {
    "ppo": ["num_envs=4", "n_steps=32", "seq_len=8", "batch_size=64", "n_epochs=2", "lr_schedule=constant",
            "clip_schedule=constant"],
    "reinforce": ["num_envs=4", "lr_schedule=constant"],
    "evolino": ["num_envs=16", "subpopulation_size=4", "trials_per_chromosome=1", "episodes_per_network=4"],
}


def _train_command(run_root: Path, *extra: str, agent: str = "ppo") -> list[str]:
    return [
        sys.executable,
        "-m",
        "rl_lstm.cli",
        "train",
        "--agent",
        agent,
        "--env",
        "rl_lstm/TMaze-v0",
        "--env-kwargs",
        "length=3",
        "--no-progress",
        "--set",
        f"runs_dir={run_root}",
        *SMALL_RUN[agent],
        "eval_every=0",
        "checkpoint_every=256",
        *extra,
    ]


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize("agent", ["ppo", "reinforce", "evolino"])
def test_a_killed_run_resumes_where_its_last_checkpoint_left_it_and_ends_as_if_never_stopped(
    tmp_path: Path, agent: str
) -> None:
    process = subprocess.Popen(
        _train_command(tmp_path, "--timesteps", "100000", agent=agent),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_root = tmp_path / "rl_lstm_TMaze-v0"
    _wait_for(run_root)
    (run_dir,) = run_root.iterdir()
    latest = run_dir / "checkpoints" / "latest.pt"
    _wait_for(latest)
    time.sleep(1.0)  # let it run on past the checkpoint, so that there is something to lose and purge
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    saved_steps = checkpoints.load_checkpoint(latest)["num_timesteps"]
    assert 0 < saved_steps < 100_000

    total = str(saved_steps + 512)
    uninterrupted_root = tmp_path / "uninterrupted"
    # The resumed run and one never stopped, trained to the same total, run side by side.
    runs = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for command in (
            _train_command(tmp_path, "--resume", str(run_dir), "--timesteps", total, agent=agent),
            _train_command(uninterrupted_root, "--timesteps", total, agent=agent),
        )
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    final = checkpoints.load_checkpoint(latest)
    final_steps = final["num_timesteps"]
    # PPO stops exactly (512 is a whole number of rollouts); REINFORCE and Evolino finish the batch they are in.
    assert final_steps == saved_steps + 512 if agent == "ppo" else final_steps >= saved_steps + 512
    (uninterrupted_dir,) = (uninterrupted_root / "rl_lstm_TMaze-v0").iterdir()
    uninterrupted = checkpoints.load_checkpoint(uninterrupted_dir / "checkpoints" / "latest.pt")
    assert final_steps == uninterrupted["num_timesteps"]
    for name, parameter in uninterrupted["policy"].items():
        assert torch.equal(final["policy"][name], parameter), f"{name} differs from the run never stopped"
    events = EventAccumulator(str(run_dir))
    events.Reload()
    steps = [event.step for event in events.Scalars("time/fps")]
    assert steps == sorted(set(steps)), "the curve neither folds back nor repeats a step"
    assert steps[-1] == final_steps and saved_steps in steps


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path: Path) -> None:
    process = subprocess.Popen(
        _train_command(tmp_path, "--timesteps", "1000000"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_root = tmp_path / "rl_lstm_TMaze-v0"
    _wait_for(run_root)
    (run_dir,) = run_root.iterdir()
    _wait_for(run_dir / "checkpoints" / "latest.pt")
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "rl-lstm train --resume" in " ".join(stdout.split())
    checkpoint = checkpoints.load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert 0 < checkpoint["num_timesteps"] < 1_000_000


def test_reinforce_same_seed_same_run_different_seed_different_run() -> None:
    def parameters(seed: int) -> torch.Tensor:
        agent = RecurrentReinforce("rl_lstm/TMaze-v0", seed=seed, env_kwargs={"length": 3}, **TINY["reinforce"])
        agent.learn(200, progress_bar=False)
        return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])

    assert torch.equal(parameters(4), parameters(4))
    assert not torch.equal(parameters(4), parameters(5))


CONFIG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5_000),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(-2, 128), max_size=3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config_class=st.sampled_from([PPOConfig, ReinforceConfig, EvolinoConfig]),
    values=st.dictionaries(
        st.sampled_from(
            [
                "n_steps",
                "seq_len",
                "batch_size",
                "learning_rate",
                "gamma",
                "num_envs",
                "clip_range",
                "baseline",
                "hidden_size",
                "lr_schedule",
                "bptt_truncation",
                "ent_coef",
                "subpopulation_size",
                "mutation_scale",
                "backend",
                "no_such_key",
            ]
        ),
        CONFIG_VALUES,
        max_size=5,
    ),
)
def test_any_config_either_builds_or_raises_our_config_error(config_class: type, values: dict) -> None:
    try:
        build_config(config_class, values)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    env_id=st.sampled_from(["rl_lstm/TMaze-v0", "rl_lstm/PassiveTMaze-v0", "rl_lstm/CartPolePositionOnly-v0"]),
    length=st.one_of(st.integers(-3, 50), st.floats(-1, 5), st.text(max_size=3)),
    noise_std=st.one_of(st.floats(allow_nan=True), st.integers(-2, 2)),
)
def test_any_env_parameters_either_make_an_env_or_raise_a_value_error(
    env_id: str, length: object, noise_std: object
) -> None:
    kwargs = {"noise_std": noise_std} | ({"length": length} if "TMaze" in env_id else {})
    try:
        env = gym.make(env_id, **kwargs)
    except ValueError:
        return
    env.reset(seed=0)
    env.step(env.action_space.sample())


@settings(max_examples=60, deadline=None)
@given(difficulty=st.one_of(st.sampled_from(["easy", "medium", "hard"]), st.text(max_size=6), st.integers()))
def test_any_difficulty_either_makes_a_recall_env_or_raises_a_value_error(difficulty: object) -> None:
    try:
        env = gym.make("rl_lstm/RepeatPreviousEasy-v0", difficulty=difficulty)
    except ValueError:
        return
    env.reset(seed=0)


class TextObservationEnv(gym.Env):
    """Observes free text: a space no encoder can read."""

    observation_space = gym.spaces.Text(8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return "hello", {}

    def step(self, action):
        return "hello", 0.0, True, False, {}


def test_an_observation_space_the_agent_cannot_read_is_named_in_a_config_error() -> None:
    env = gym.vector.SyncVectorEnv([TextObservationEnv])
    with pytest.raises(ConfigError, match="Text"):
        RecurrentPPO(env, **TINY["ppo"])
