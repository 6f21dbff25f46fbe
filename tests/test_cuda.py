"""Every trainer on CUDA: each trains there, keeps its tensors there, and computes what it computes on the CPU.

Every test here skips without a CUDA device (the CPU versions of the same paths run everywhere). On a machine with
one: ``.venv/bin/pytest -q tests/test_cuda.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import NumpyToTorch as SingleNumpyToTorch
from gymnasium.wrappers.vector import NumpyToTorch
from test_collection import TINY as PPO_TINY
from test_evolino import SMALL as EVOLINO_SMALL
from test_evolino_supervised import SMALL as SUPERVISED_SMALL
from test_evolino_supervised import double_sine_data
from test_foreign_envs import ActionSeen, ActionsSeen

import envs  # noqa: F401
from agents.evolino import PopulationEvaluator, RecurrentEvolino
from agents.evolino_supervised import SupervisedEvolino
from agents.ppo import RecurrentPPO
from agents.reinforce import RecurrentReinforce
from rl_lstm.esp import PopulationLSTM
from rl_lstm.evaluation import main as evaluate_main
from rl_lstm.logger import EpisodeStatistics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def on_cuda(tensors: list[torch.Tensor]) -> bool:
    """True if every tensor lives on a CUDA device."""
    return all(tensor.device.type == "cuda" for tensor in tensors)


def test_ppo_collects_and_updates_on_cuda() -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=0, device="cuda", env_kwargs={"length": 3}, **PPO_TINY)
    agent.learn(128, progress_bar=False)
    assert on_cuda(list(agent.policy.parameters()))
    assert on_cuda(list(agent.collector.rollout["state"]))
    assert np.isfinite(agent.latest_scalars["train/value_loss"])
    actions, _ = agent.predict(np.zeros((2, 3), dtype=np.float32), deterministic=True)
    assert actions.shape == (2,)


def test_ppo_training_pass_on_cuda_reproduces_the_rollout() -> None:
    # tests/test_buffers.py's check on CUDA: cuDNN's sequence kernel gives back what the cell kernel computed while
    # acting, from the rollout's records that stayed on the device until its end.
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=1, device="cuda", env_kwargs={"length": 3}, **PPO_TINY)
    agent._collect_rollout(EpisodeStatistics())
    agent.buffer.prepare()
    assert agent.buffer.episode_starts[1:].any(), "episodes must start inside the rollout"
    agent.policy.eval()
    with torch.no_grad():
        for batch in agent.buffer.minibatches(32, agent.rng):
            log_prob, _, values = agent.policy.evaluate_actions(
                batch.observations, batch.actions, batch.initial_state, batch.episode_starts, batch.action_masks
            )
            torch.testing.assert_close(log_prob[batch.valid], batch.old_log_probs[batch.valid], atol=1e-4, rtol=0)
            torch.testing.assert_close(values[batch.valid], batch.old_values[batch.valid], atol=1e-4, rtol=0)


def test_a_ppo_agent_trained_on_cuda_loads_on_the_cpu_and_resumes_on_cuda(tmp_path: Path) -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=2, device="cuda", env_kwargs={"length": 3}, **PPO_TINY)
    agent.learn(64, progress_bar=False)
    agent.save(tmp_path / "ppo.pt")
    observations = np.eye(3, dtype=np.float32)
    on_cpu = RecurrentPPO.load(tmp_path / "ppo.pt", device="cpu")
    assert np.array_equal(on_cpu.predict(observations, deterministic=True)[0],
                          agent.predict(observations, deterministic=True)[0])
    resumed = RecurrentPPO.load(tmp_path / "ppo.pt", device="cuda")
    resumed.learn(64, progress_bar=False)
    assert on_cuda([state for group in resumed.optimizer.state.values() for state in group.values()
                    if torch.is_tensor(state) and state.dim() > 0])


def test_rl_lstm_evaluate_runs_a_saved_policy_on_cuda(tmp_path: Path) -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=3, env_kwargs={"length": 3}, **PPO_TINY)
    agent.save(tmp_path / "ppo.pt")
    assert evaluate_main([str(tmp_path / "ppo.pt"), "--episodes", "4", "--device", "cuda"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["num_episodes"] == 4


@pytest.mark.parametrize("handover", ["vector env", "gymnasium.Env"])
def test_ppo_trains_on_an_env_that_speaks_torch_on_cuda(handover: str) -> None:
    # An env simulated on the GPU: its observations come to the host at its boundary, its actions go back as CUDA
    # tensors (tests/test_foreign_envs.py checks the same on the CPU).
    if handover == "vector env":
        vector_env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
        env, spy = ActionsSeen(NumpyToTorch(vector_env, device="cuda")), None
    else:
        env = spy = ActionSeen(SingleNumpyToTorch(gym.make("CartPole-v1"), device="cuda"))
    copies = 2 if spy is None else 1
    agent = RecurrentPPO(env, seed=0, device="cuda", **{**PPO_TINY, "num_envs": copies, "batch_size": 8 * copies})
    agent.learn(128, progress_bar=False)
    assert on_cuda(list(agent.policy.parameters())) and np.isfinite(agent.latest_scalars["train/value_loss"])
    actions = (spy or env).actions
    assert actions and all(isinstance(a, torch.Tensor) and a.device.type == "cuda" for a in actions)
    agent.close()


def test_reinforce_plays_and_updates_on_cuda() -> None:
    agent = RecurrentReinforce("rl_lstm/TMaze-v0", seed=0, device="cuda", env_kwargs={"length": 3}, num_envs=4)
    agent.learn(200, progress_bar=False)
    assert agent.iterations >= 2
    assert on_cuda(list(agent.policy.parameters()))
    assert np.isfinite(agent.latest_scalars["train/policy_gradient_loss"])
    actions, _ = agent.predict(np.zeros((2, 3), dtype=np.float32), deterministic=True)
    assert actions.shape == (2,)


def test_evolino_evaluates_a_population_on_cuda_as_on_the_cpu() -> None:
    agent = RecurrentEvolino("rl_lstm/TMaze-v0", seed=0, **EVOLINO_SMALL)
    networks = agent.esp.chromosomes(agent.esp.sample_networks(2))
    seeds = np.arange(len(networks[0]))
    config = agent.config
    results = {
        device: PopulationEvaluator(agent.env, agent.layout, config.max_episode_steps, agent.env_id, 8,
                                    device).evaluate(networks, seeds)
        for device in ("cpu", "cuda")
    }
    np.testing.assert_allclose(results["cuda"].returns, results["cpu"].returns, atol=1e-9)
    assert np.array_equal(results["cuda"].lengths, results["cpu"].lengths)
    assert np.array_equal(results["cuda"].visited_buckets, results["cpu"].visited_buckets)


def test_evolino_trains_on_cuda_and_its_policy_acts_there() -> None:
    agent = RecurrentEvolino("rl_lstm/TMaze-v0", seed=1, device="cuda", **EVOLINO_SMALL)
    agent.learn(1, progress_bar=False)
    assert agent.evaluator.device.type == "cuda"
    assert on_cuda(list(agent.policy.parameters()))
    actions, _ = agent.predict(np.zeros((2, 3), dtype=np.float32), deterministic=True)
    assert actions.shape == (2,)


def test_supervised_evolino_scores_a_population_on_cuda_as_on_the_cpu() -> None:
    data = double_sine_data(length=120, washout=30)
    evolinos = {device: SupervisedEvolino(seed=0, device=device, **SUPERVISED_SMALL) for device in ("cpu", "cuda")}
    errors = {}
    for device, evolino in evolinos.items():
        evolino._build(input_size=1)  # the same seed draws the same population on each device
        networks = PopulationLSTM(evolino.layout, evolino.esp.chromosomes(evolino.esp.sample_networks(2)),
                                  device=evolino.device)
        errors[device] = evolino._evaluate(networks, data)[0]
    np.testing.assert_allclose(errors["cuda"], errors["cpu"], rtol=1e-6)
    evolinos["cuda"].learn(data, generations=2)
    predictions = evolinos["cuda"].predict(data.inputs[:, 0])
    assert predictions.shape == (len(data.inputs), 1) and np.isfinite(predictions).all()
