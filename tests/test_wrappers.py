"""Env wrappers and frame stacking from configs: applied to every env copy, checked up front, kept by every rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import wrapper_envs
import yaml

from agents.evolino import PopulationEvaluator, RecurrentEvolino, evaluator_spec
from agents.ppo import RecurrentPPO
from envs.batched import TaskVectorEnv
from rl_lstm.cli import main
from rl_lstm.errors import ConfigError
from rl_lstm.evaluation import evaluate_agent, record_memory
from rl_lstm.policies import ImageEncoder, make_encoder
from rl_lstm.vec_env import make_vector_env

TINY = {"num_envs": 2, "n_steps": 32, "seq_len": 8, "batch_size": 32, "n_epochs": 1, "hidden_size": 8}
POSITION_ONLY = "rl_lstm/CartPolePositionOnly-v0"
DROP_MISSION = {"gymnasium.wrappers:FilterObservation": {"filter_keys": ["image", "direction"]}}


def _rollout_observations(agent: RecurrentPPO) -> np.ndarray:
    """The observations the agent collected in its last rollout, [n_steps, num_envs, ...]."""
    return np.stack(agent.buffer.observations)


def test_wrapper_from_a_module_path_wraps_every_copy_of_a_builtin_env() -> None:
    agent = RecurrentPPO(POSITION_ONLY, env_wrappers=["wrapper_envs:AppendConstant"], **TINY)
    agent.learn(64, progress_bar=False)
    observations = _rollout_observations(agent)
    assert agent.observation_space.shape == (3,) and observations.shape == (32, 2, 3)
    assert np.all(observations[..., 2] == 1.0) and np.any(observations[..., 0] != 1.0)
    # A native vector env steps its copies as arrays and cannot wrap each one: the copies are stepped by Sync.
    assert isinstance(agent.env.unwrapped, gym.vector.SyncVectorEnv)


def test_wrapper_kwargs_reach_the_wrapper_of_a_gymnasium_env() -> None:
    agent = RecurrentPPO("CartPole-v1", env_wrappers=[{"wrapper_envs:AppendConstant": {"value": 7.0}}], **TINY)
    agent.learn(32, progress_bar=False)
    observations = _rollout_observations(agent)
    assert observations.shape == (32, 2, 5) and np.all(observations[..., 4] == 7.0)


def test_vector_wrapper_wraps_the_native_vector_env() -> None:
    wrapped = make_vector_env(POSITION_ONLY, 3, env_wrappers=[{"wrapper_envs:OffsetVectorObservation": {"offset": 5}}])
    plain = make_vector_env(POSITION_ONLY, 3)
    assert isinstance(wrapped.unwrapped, TaskVectorEnv)
    np.testing.assert_allclose(wrapped.reset(seed=3)[0], plain.reset(seed=3)[0] + 5, rtol=1e-6)
    actions = np.array([0, 1, 1])
    np.testing.assert_allclose(wrapped.step(actions)[0], plain.step(actions)[0] + 5, rtol=1e-6)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("no_such_package.wrappers:Wrapper", "cannot import module 'no_such_package.wrappers'"),
        ("wrapper_envs:Missing", "nothing named 'Missing'"),
        ("wrapper_envs:NotAWrapper", "not a gymnasium wrapper"),
        ("AppendConstant", "names no module"),
        ({"wrapper_envs:AppendConstant": {"valeu": 2.0}}, "bad kwargs"),
        ({"wrapper_envs:AppendConstant": [2.0]}, "kwargs a mapping"),
        (42, "not an import path"),
    ],
)
def test_bad_wrapper_entry_is_a_config_error_naming_it(entry: object, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        RecurrentPPO("CartPole-v1", env_wrappers=[entry], **TINY)
    message = str(error.value)
    assert repr(entry) in message and problem in message
    assert "'package.module:Wrapper' or {'package.module:Wrapper': {key: value}}" in message


def test_bad_wrapper_on_the_command_line_stops_before_a_run_folder_exists(tmp_path: Path, capsys) -> None:
    code = main(["train", "--env", "CartPole-v1", "--set", f"runs_dir={tmp_path}", "env_wrappers=[wrapper_envs:Nope]"])
    assert code == 2
    assert "env_wrappers entry 'wrapper_envs:Nope'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_per_copy_wrapper_after_a_vector_wrapper_is_a_config_error() -> None:
    wrappers = ["wrapper_envs:OffsetVectorObservation", "wrapper_envs:AppendConstant"]
    with pytest.raises(ConfigError, match="list the gymnasium.Wrapper entries first"):
        RecurrentPPO(POSITION_ONLY, env_wrappers=wrappers)


def test_native_vectorization_refuses_per_copy_wrappers_and_frame_stack() -> None:
    with pytest.raises(ConfigError, match="use vectorization 'auto', 'sync' or 'async'"):
        make_vector_env(POSITION_ONLY, 2, vectorization="native", frame_stack=4)


def test_frame_stack_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="frame_stack must be at least 1"):
        RecurrentPPO(POSITION_ONLY, frame_stack=0)


def test_frame_stacked_mlp_baseline_sees_the_last_four_observations() -> None:
    agent = RecurrentPPO(POSITION_ONLY, core="mlp", frame_stack=4, **TINY)
    assert agent.observation_space.shape == (4, 2)
    assert agent.policy.encoder.out_features == 8
    agent.learn(192, progress_bar=False)
    assert agent.iterations == 3
    observations = _rollout_observations(agent)  # [T, B, 4, 2]
    # Within an episode, each step's first three frames are the previous step's last three.
    continuing = ~agent.buffer.episode_starts[1:]  # [T - 1, B]
    np.testing.assert_array_equal(observations[1:, :, :3][continuing], observations[:-1, :, 1:][continuing])


def test_stacked_image_frames_enter_the_cnn_as_channels() -> None:
    encoder = make_encoder(gym.spaces.Box(0, 255, (4, 8, 8, 3), dtype=np.uint8))
    assert isinstance(encoder, ImageEncoder) and encoder.cnn[0].in_channels == 12
    assert encoder(torch.zeros(5, 2, 4, 8, 8, 3, dtype=torch.uint8)).shape == (5, 2, 128)


def test_wrappers_and_frame_stack_survive_save_and_load(tmp_path: Path) -> None:
    wrappers = [{"wrapper_envs:AppendConstant": {"value": 7.0}}]
    agent = RecurrentPPO(POSITION_ONLY, env_wrappers=wrappers, frame_stack=3, **TINY)
    agent.learn(32, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    loaded = RecurrentPPO.load(tmp_path / "agent.pt")
    assert loaded.config.env_wrappers == wrappers and loaded.config.frame_stack == 3
    assert loaded.observation_space.shape == (3, 3)
    assert np.all(loaded.env.reset(seed=0)[0][..., 2] == 7.0)
    result = evaluate_agent(loaded, num_episodes=2)
    assert result.num_episodes == 2
    trace = record_memory(loaded, max_steps=5)
    assert trace.observations.shape[1] == 9 and np.all(trace.observations[:, 2::3] == 7.0)


def test_evolino_workers_build_the_wrapped_env_from_their_spec() -> None:
    agent = RecurrentEvolino(
        POSITION_ONLY, num_envs=4, subpopulation_size=4, trials_per_chromosome=1, episodes_per_network=1,
        env_wrappers=["wrapper_envs:AppendConstant"], frame_stack=2,
    )
    spec = evaluator_spec(agent.env_id, agent.config, agent.layout)
    evaluator = PopulationEvaluator.from_spec(spec)  # what each Ray worker runs
    assert evaluator.env.single_observation_space == agent.observation_space
    assert evaluator.env.single_observation_space.shape == (2, 3)
    agent.learn(1, progress_bar=False)
    assert agent.num_timesteps > 0


def test_dict_observation_with_text_is_refused_until_a_wrapper_drops_it() -> None:
    with pytest.raises(ConfigError, match=r"Unsupported observation space Text\("):
        RecurrentPPO("wrapper_envs:MissionGrid-v0", **TINY)
    agent = RecurrentPPO("wrapper_envs:MissionGrid-v0", env_wrappers=[DROP_MISSION], **TINY)
    assert set(agent.observation_space.spaces) == {"image", "direction"}
    agent.learn(64, progress_bar=False)
    assert agent.num_timesteps == 64


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``rl-lstm ARGS`` in a fresh process, with tests/ on the path for the wrapper module, as a user runs it."""
    tests_dir = str(Path(wrapper_envs.__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", "import sys; from rl_lstm.cli import main; sys.exit(main(sys.argv[1:]))", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_train_resume_and_evaluate_rebuild_the_wrapped_env(tmp_path: Path) -> None:
    settings = [f"{key}={value}" for key, value in TINY.items()] + ["eval_every=0", "checkpoint_every=64"]
    wrapper = "env_wrappers=[{gymnasium.wrappers:FilterObservation: {filter_keys: [image, direction]}}]"
    trained = _cli("train", "--env", "wrapper_envs:MissionGrid-v0", "--timesteps", "64", "--no-progress", "--set",
                   f"runs_dir={tmp_path}", "frame_stack=2", wrapper, *settings)
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (tmp_path / "wrapper_envs_MissionGrid-v0").iterdir()
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["hyperparams"]
    assert recorded["env_wrappers"] == [DROP_MISSION] and recorded["frame_stack"] == 2
    resumed = _cli("train", "--resume", str(run_dir), "--timesteps", "128", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert checkpoint["num_timesteps"] == 128
    assert checkpoint["config"]["env_wrappers"] == [DROP_MISSION] and checkpoint["config"]["frame_stack"] == 2
    assert RecurrentPPO.load(run_dir / "checkpoints" / "latest.pt").observation_space["image"].shape == (2, 7, 7, 3)
    evaluated = _cli("evaluate", str(run_dir), "--episodes", "3")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((run_dir / "eval.json").read_text())["num_episodes"] == 3
