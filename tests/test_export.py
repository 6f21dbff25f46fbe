"""``rl-lstm export``: an exported policy (ONNX run by onnxruntime, TorchScript run by torch) with its state fed back
acts, values and remembers exactly as the torch policy, step by step through whole episodes and autoresets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium.wrappers.vector import NormalizeObservation
from torch import Tensor, nn

from agents.evolino import RecurrentEvolino
from agents.ppo import RecurrentPPO
from rl_lstm.agent import RecurrentAgent
from rl_lstm.cli import main
from rl_lstm.errors import ConfigError, RLLSTMError
from rl_lstm.evaluation import MissingDependencyError
from rl_lstm.export import export_policy, load_exported, observation_inputs
from rl_lstm.policies import RecurrentActorCritic
from rl_lstm.vec_env import find_wrapper, make_vector_env

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-5
TINY = dict(num_envs=2, n_steps=8, seq_len=4, batch_size=8, n_epochs=1, hidden_size=8, net_arch_pi=[8], net_arch_vf=[8])

# Untrained policies are enough to check equality; the normalized one trains 160 steps so its statistics are not
# the initial zero mean and unit variance.
AGENTS = {
    # Separate actor and critic cores (PPO shares one by default): four state tensors.
    "tmaze_lstm_2_layers": lambda: RecurrentPPO("rl_lstm/TMaze-v0", env_kwargs={"length": 3}, num_layers=2,
                                                shared_core=False, **TINY),
    "tmaze_gru_shared": lambda: RecurrentPPO("rl_lstm/TMaze-v0", env_kwargs={"length": 3}, core="gru",
                                             shared_core=True, **TINY),
    "cartpole_peephole_normalized": lambda: RecurrentPPO(
        "rl_lstm/CartPolePositionOnly-v0", core="peephole", normalize_observations=True, **TINY
    ).learn(160, progress_bar=False),
    "pendulum_mlp_box_actions": lambda: RecurrentPPO("rl_lstm/PendulumPositionOnly-v0", core="mlp", **TINY),
    "dict_observations_multidiscrete": lambda: RecurrentPPO(
        "foreign_envs:foreign/Spaces-v0", env_kwargs={"observation": "dict", "action": "multidiscrete"},
        shared_core=False, **TINY
    ),
    "nested_observations_box_actions": lambda: RecurrentPPO(
        "foreign_envs:foreign/Spaces-v0", env_kwargs={"observation": "nested", "action": "box"}, **TINY
    ),
    "evolino_tmaze": lambda: RecurrentEvolino("rl_lstm/TMaze-v0", env_kwargs={"length": 3}, num_cells=4,
                                              subpopulation_size=4, trials_per_chromosome=1, episodes_per_network=1),
}


def _observation_normalizer(agent: RecurrentAgent) -> NormalizeObservation | None:
    """The agent's own normalizer, frozen: the torch policy sees normalized observations, the export raw ones."""
    normalizer = find_wrapper(agent.env, NormalizeObservation)
    if normalizer is not None:
        normalizer.update_running_mean = False
    return normalizer


def _assert_close(actual: np.ndarray, expected: Tensor, what: str) -> None:
    expected = expected.numpy()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=TOLERANCE, atol=TOLERANCE, err_msg=what)


def _play_alongside(agent: RecurrentAgent, path: Path, format: str, num_envs: int, min_episodes: int = 2) -> int:
    """Step ``num_envs`` copies with the torch policy's actions, feeding the exported policy the same observations
    and its own state; every step's outputs must equal the policy's. Returns the steps played."""
    run = load_exported(path, format)
    normalizer = _observation_normalizer(agent)
    env = make_vector_env(agent.env_id, num_envs, env_kwargs=agent.config.env_kwargs)  # raw observations
    observations, _ = env.reset(seed=3)
    torch_state = agent.policy.initial_state(num_envs)
    exported_state = [tensor.numpy() for tensor in torch_state]
    episode_starts = np.ones(num_envs, dtype=bool)
    autoresetting = np.zeros(num_envs, dtype=bool)
    episodes_begun = np.zeros(num_envs, dtype=int)
    steps = 0
    while episodes_begun.min() < min_episodes:
        policy_observations = observations if normalizer is None else normalizer.observations(observations)
        with torch.no_grad():
            actions, _, values, torch_state = agent.policy.act(
                policy_observations, torch_state, torch.as_tensor(episode_starts), deterministic=True
            )
        inputs = observation_inputs(env.single_observation_space, observations)
        outputs = run([*inputs.values(), *exported_state, episode_starts])
        num_parameters = len(outputs) - 2 - len(exported_state)
        exported_actions, exported_values = outputs[0], outputs[1 + num_parameters]
        exported_state = outputs[2 + num_parameters :]
        _assert_close(exported_actions, actions, f"actions at step {steps}")
        _assert_close(exported_values, values, f"values at step {steps}")
        for index, (exported, expected) in enumerate(zip(exported_state, torch_state)):
            _assert_close(exported, expected, f"state_{index} at step {steps}")
        episodes_begun += episode_starts
        observations, _, terminated, truncated, _ = env.step(actions.numpy())
        # gymnasium's NEXT_STEP autoreset: the observation after the done step starts the next episode.
        episode_starts, autoresetting = autoresetting, terminated | truncated
        steps += 1
    env.close()
    return steps


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("name", list(AGENTS))
def test_exported_policy_equals_the_policy_step_by_step_through_episodes(name: str, format: str, tmp_path) -> None:
    agent = AGENTS[name]()
    exported = export_policy(agent, tmp_path / f"policy.{format}", format)
    assert exported.normalization_baked == ("normalized" in name)
    # 3 copies where the export traced 2: the batch dimension is dynamic.
    steps = _play_alongside(agent, exported.path, format, num_envs=3)
    assert steps > 3
    agent.close()


@pytest.mark.parametrize("format", FORMATS)
def test_exported_distribution_parameters_equal_the_policy_distribution(format: str, tmp_path) -> None:
    """MultiDiscrete [2, 3] pads its first dimension's logits to 3 categories; Box actions give mean and log std."""
    for action, names in (("multidiscrete", ["action", "logits"]), ("box", ["action", "mean", "log_std"])):
        agent = RecurrentPPO("foreign_envs:foreign/Spaces-v0", env_kwargs={"observation": "box", "action": action},
                             **TINY)
        exported = export_policy(agent, tmp_path / f"{action}.{format}", format)
        assert exported.output_names[: len(names)] == names
        observations = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
        state = agent.policy.initial_state(4)
        starts = np.array([True, False, True, False])
        outputs = load_exported(exported.path, format)([observations, *(s.numpy() for s in state), starts])
        with torch.no_grad():
            distribution, _, _ = agent.policy.forward_sequence(
                torch.as_tensor(observations)[None], state, torch.as_tensor(starts)[None]
            )
        if action == "multidiscrete":
            logits = distribution.categorical.logits[0]  # [4, 2, 3]: the first dimension's third category padded
            _assert_close(outputs[1], logits, "logits")
            assert (outputs[1][:, 0, 2] < -1e7).all()
            np.testing.assert_array_equal(outputs[0], outputs[1].argmax(-1))
        else:
            _assert_close(outputs[1], distribution.normal.mean[0], "mean")
            _assert_close(outputs[2], distribution.normal.scale.log()[0], "log_std")
            assert np.all(np.abs(outputs[0]) <= 1.0)  # the action is clipped into the Box bounds, the mean is not
        agent.close()


@pytest.mark.parametrize("batch_size", [1, 5])
def test_onnx_batch_size_is_dynamic(batch_size: int, tmp_path) -> None:
    agent = AGENTS["tmaze_lstm_2_layers"]()
    exported = export_policy(agent, tmp_path / "policy.onnx")
    _play_alongside(agent, exported.path, "onnx", num_envs=batch_size, min_episodes=1)
    agent.close()


def test_onnx_inputs_and_outputs_are_named_with_the_batch_dimension_symbolic(tmp_path) -> None:
    import onnxruntime

    agent = AGENTS["dict_observations_multidiscrete"]()
    path = export_policy(agent, tmp_path / "policy.onnx").path
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {node.name: node for node in session.get_inputs()}
    assert list(inputs) == ["observation_cue", "observation_flags", "observation_position", "state_0", "state_1",
                            "state_2", "state_3", "episode_start"]
    assert inputs["state_0"].shape == [1, "batch", 8]
    assert inputs["episode_start"].type == "tensor(bool)"
    assert isinstance(inputs["observation_position"].shape[0], str)
    outputs = [node.name for node in session.get_outputs()]
    assert outputs == ["action", "logits", "value", "new_state_0", "new_state_1", "new_state_2", "new_state_3"]
    assert session.get_modelmeta().custom_metadata_map["observation_normalization"] == "none"
    agent.close()


class BatchLoopCore(nn.Module):
    """A user's core with a Python loop over the copies: tracing unrolls it for the batch size it sees."""

    hidden_size = 8

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, hidden_size)

    def forward(self, x: Tensor, state: tuple[Tensor, ...], episode_starts: Tensor) -> tuple[Tensor, tuple]:
        y = torch.stack([torch.tanh(self.linear(x[:, copy])) for copy in range(x.shape[1])], dim=1)  # [T, B, H]
        return y, (y[-1:],)

    def initial_state(self, batch_size: int, device: Any = None) -> tuple[Tensor, ...]:
        return (torch.zeros(1, batch_size, self.hidden_size, device=device),)

    def cell_state(self, state: tuple[Tensor, ...]) -> Tensor:
        return state[0][-1]


@pytest.mark.parametrize("format", FORMATS)
def test_a_core_that_does_not_trace_is_an_error_naming_it(format: str, tmp_path) -> None:
    agent = AGENTS["tmaze_gru_shared"]()
    # A core of one's own goes to the policy itself (agent configs name built-in cores).
    agent.policy = RecurrentActorCritic(agent.observation_space, agent.action_space, core=BatchLoopCore, hidden_size=8)
    with pytest.raises(RLLSTMError, match="BatchLoopCore"):
        export_policy(agent, tmp_path / "policy", format)
    assert not (tmp_path / "policy").exists()  # no file that acts otherwise than the policy is left behind
    agent.close()


def test_unknown_format_and_missing_exporter_are_errors_saying_what_to_do(tmp_path, monkeypatch) -> None:
    agent = AGENTS["tmaze_gru_shared"]()
    with pytest.raises(ConfigError, match="onnx, torchscript"):
        export_policy(agent, tmp_path / "policy.tflite", "tflite")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # an import of it raises ImportError
    with pytest.raises(MissingDependencyError, match=r"rl-lstm\[export\]"):
        export_policy(agent, tmp_path / "policy.onnx")
    agent.close()


def test_export_command_writes_a_run_folders_policy(tmp_path) -> None:
    assert main([
        "train", "--env", "rl_lstm/TMaze-v0", "--env-kwargs", "length=3", "--timesteps", "64", "--no-progress",
        "--set", f"runs_dir={tmp_path}", "num_envs=2", "n_steps=16", "seq_len=4", "batch_size=16", "n_epochs=1",
        "hidden_size=8", "eval_every=0", "checkpoint_every=64", "shared_core=false",  # actor and critic: 4 tensors
    ]) == 0
    (run_dir,) = (tmp_path / "rl_lstm_TMaze-v0").iterdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "rl_lstm.cli", "export", str(run_dir), "--format", "onnx", "--output",
               str(tmp_path / "tmaze.onnx")]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "inputs: observation, state_0, state_1, state_2, state_3, episode_start" in finished.stdout
    from rl_lstm.evaluation import load_agent

    _play_alongside(load_agent(run_dir), tmp_path / "tmaze.onnx", "onnx", num_envs=2, min_episodes=1)

    missing = subprocess.run([*command[:4], str(tmp_path / "nowhere")], capture_output=True, text=True, env=env,
                             timeout=300)
    assert missing.returncode == 2 and "rl-lstm export: error:" in missing.stderr
