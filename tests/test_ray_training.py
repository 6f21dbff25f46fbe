"""PPO and REINFORCE on Ray: rollout workers repeat the in-process run exactly, survive a dead worker, resume.

One local Ray cluster of 2 CPUs serves the module; every agent closes its workers before the next one starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.utils import RunningMeanStd

from agents.ppo import RecurrentPPO, RolloutCollector, RolloutPart
from agents.reinforce import RecurrentReinforce
from rl_lstm.checkpoints import load_checkpoint
from rl_lstm.errors import ConfigError
from rl_lstm.policies import make_action_head
from rl_lstm.ray_workers import start_local_cluster
from rl_lstm.rollouts import sample_actions
from rl_lstm.training import resolve_config
from rl_lstm.vec_env import merge_observation_statistics

TMAZE = "rl_lstm/TMaze-v0"
PPO = {"n_steps": 16, "seq_len": 8, "batch_size": 32, "n_epochs": 2, "hidden_size": 16, "env_kwargs": {"length": 3}}
REINFORCE = {"hidden_size": 16, "env_kwargs": {"length": 3}}


def _parameters(agent: RecurrentPPO | RecurrentReinforce) -> torch.Tensor:
    return torch.cat([parameter.detach().flatten() for parameter in agent.policy.parameters()])


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray")
    # The workers import this module (DiesInItsSecondRollout) by name, as pytest does.
    ray = start_local_cluster(2, [str(Path(__file__).resolve().parent)])
    yield ray
    ray.shutdown()


class DiesInItsSecondRollout(RolloutCollector):
    """A worker's collector whose process exits at the 5th step of its second rollout, unless ``marker`` exists."""

    def __init__(self, *args, marker: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marker, self.rollouts = Path(marker), 0

    def collect(self, reset_seed: int | None, noise_key: int) -> RolloutPart:
        self.rollouts += 1
        if self.rollouts == 2 and not self.marker.exists():
            step, steps = self.env.step, []

            def dying_step(actions: np.ndarray) -> tuple:
                steps.append(actions)
                if len(steps) == 5:
                    self.marker.touch()
                    os._exit(1)  # the process ends mid-rollout, its env 4 steps on
                return step(actions)

            self.env.step = dying_step
        return super().collect(reset_seed, noise_key)


# ---- without Ray: what makes the runs equal -----------------------------------------------------------------------
@pytest.mark.parametrize("space", [gym.spaces.Discrete(5, start=2), gym.spaces.MultiDiscrete([3, 4]),
                                   gym.spaces.Box(-1.0, 1.0, (2,))], ids=["discrete", "multidiscrete", "box"])
def test_a_copys_action_noise_does_not_depend_on_the_batch_it_is_stepped_in(space: gym.Space) -> None:
    head = make_action_head(space, 8, log_std_init=0.0)
    latent = torch.randn(1, 8, 8)
    whole = sample_actions(head(latent), noise_key=7, copies=np.arange(8), step=3)
    halves = [sample_actions(head(latent[:, k : k + 4]), 7, np.arange(k, k + 4), 3) for k in (0, 4)]
    assert torch.equal(whole, torch.cat(halves, dim=1))
    assert all(space.contains(action) for action in head.clip(whole)[0].detach().numpy().astype(space.dtype))
    assert not torch.equal(whole, sample_actions(head(latent), 7, np.arange(8), step=4)), "a new step, new noise"


def test_the_action_noise_samples_the_distribution() -> None:
    head = make_action_head(gym.spaces.Discrete(3), 4, log_std_init=0.0)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.log(torch.tensor([0.2, 0.3, 0.5])))
    distribution = head(torch.zeros(1, 4000, 4))
    counts = np.bincount(sample_actions(distribution, 1, np.arange(4000), 0)[0].numpy(), minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.2, 0.3, 0.5], atol=0.03)


def test_observation_statistics_merged_from_workers_equal_those_of_all_their_observations() -> None:
    rng = np.random.default_rng(0)
    start = RunningMeanStd(shape=(3,))
    start.update(rng.normal(size=(50, 3)))
    as_dict = lambda rms: {"mean": rms.mean.copy(), "var": rms.var.copy(), "count": rms.count}  # noqa: E731
    everything = RunningMeanStd(shape=(3,))
    everything.mean, everything.var, everything.count = start.mean.copy(), start.var.copy(), start.count
    ends = []
    for scale in (1.0, 5.0):
        worker = RunningMeanStd(shape=(3,))
        worker.mean, worker.var, worker.count = start.mean.copy(), start.var.copy(), start.count
        for _ in range(4):
            batch = rng.normal(scale=scale, size=(8, 3)) + scale
            worker.update(batch)
            everything.update(batch)
        ends.append(as_dict(worker))
    merged = merge_observation_statistics(as_dict(start), ends)
    np.testing.assert_allclose(merged["mean"], everything.mean, rtol=1e-10)
    np.testing.assert_allclose(merged["var"], everything.var, rtol=1e-10)
    assert merged["count"] == pytest.approx(everything.count)


@pytest.mark.parametrize(
    ("agent_class", "hyperparams", "message"),
    [
        (RecurrentPPO, {**PPO, "num_envs": 6, "ray_workers": 4}, "must split evenly over ray_workers"),
        (RecurrentPPO, {**PPO, "num_envs": 8, "ray_workers": 2, "envs_per_worker": 2}, "set num_envs to 4"),
        (RecurrentPPO, {**PPO, "ray_workers": 0}, "ray_workers must be at least 1"),
        (RecurrentReinforce, {"normalize_rewards": True}, "normalize_rewards with backend 'ray'"),
    ],
)
def test_ray_settings_that_cannot_work_are_config_errors_saying_what_to_change(
    agent_class: type, hyperparams: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        agent_class(TMAZE, backend="ray", **hyperparams)


def test_backend_ray_reaches_ppo_and_reinforce_from_the_run_config() -> None:
    for agent in ("ppo", "reinforce"):
        _, hyperparams = resolve_config({"agent": agent, "env": TMAZE, "backend": "ray", "ray_workers": 4,
                                         "num_envs": 8, "ray_address": "auto"})
        assert (hyperparams.backend, hyperparams.ray_workers, hyperparams.ray_address) == ("ray", 4, "auto")


def test_backend_ray_needs_an_env_id() -> None:
    with pytest.raises(ConfigError, match="pass the env as a registered id"):
        RecurrentPPO(gym.make("CartPole-v1"), backend="ray", **{**PPO, "env_kwargs": {}})


# ---- on a local Ray cluster ---------------------------------------------------------------------------------------
def test_ppo_on_2_workers_of_4_envs_ends_equal_to_8_envs_in_process_even_when_one_dies_mid_rollout(
    ray_cluster, tmp_path: Path
) -> None:
    # Default reward normalization on: the learner scales the workers' rewards as the in-process env does.
    local = RecurrentPPO(TMAZE, seed=1, num_envs=8, **PPO)
    local.learn(3 * 16 * 8, progress_bar=False)
    remote = RecurrentPPO(TMAZE, seed=1, num_envs=8, backend="ray", ray_workers=2, envs_per_worker=4, **PPO)
    spec = remote.workers.specs[1]
    spec["collector"], spec["kwargs"] = DiesInItsSecondRollout, {**spec["kwargs"], "marker": str(tmp_path / "died")}
    try:
        remote.learn(3 * 16 * 8, progress_bar=False)
        assert (tmp_path / "died").exists(), "worker 1 died in its second rollout"
        assert remote.workers.pool.replaced_workers == 1
    finally:
        remote.close()
    assert remote.num_timesteps == local.num_timesteps
    assert torch.equal(_parameters(remote), _parameters(local))


def test_reinforce_on_2_workers_ends_equal_to_in_process_even_when_a_worker_dies(ray_cluster) -> None:
    local = RecurrentReinforce(TMAZE, seed=2, num_envs=4, **REINFORCE)
    for _ in range(3):
        local.learn(1, progress_bar=False)
    remote = RecurrentReinforce(TMAZE, seed=2, num_envs=4, backend="ray", ray_workers=2, **REINFORCE)
    try:
        remote.learn(1, progress_bar=False)
        remote.workers.kill(1)  # its episodes are played again, from the same seeds, by a new worker
        for _ in range(2):
            remote.learn(1, progress_bar=False)
        assert remote.workers.pool.replaced_workers == 1
    finally:
        remote.close()
    assert remote.num_timesteps == local.num_timesteps
    assert torch.equal(_parameters(remote), _parameters(local))


def test_ray_ppo_resumed_from_a_checkpoint_ends_as_the_run_that_never_stopped(ray_cluster, tmp_path: Path) -> None:
    agent = RecurrentPPO(TMAZE, seed=3, num_envs=4, backend="ray", ray_workers=2, **PPO)
    try:
        agent.learn(16 * 4, progress_bar=False)
        agent.save(tmp_path / "agent.pt")
        agent.learn(2 * 16 * 4, progress_bar=False)
    finally:
        agent.close()
    episodes = load_checkpoint(tmp_path / "agent.pt")["episodes"]
    assert all(carry is not None for carry in episodes["ray"]["carries"]), "every worker's episodes in flight"
    resumed = RecurrentPPO.load(tmp_path / "agent.pt")
    try:
        resumed.learn(2 * 16 * 4, progress_bar=False)
    finally:
        resumed.close()
    assert torch.equal(_parameters(resumed), _parameters(agent))


def test_ray_ppo_trains_on_gymnasiums_cartpole_and_goes_on_after_a_worker_dies(ray_cluster, tmp_path: Path) -> None:
    # CartPole-v1's own vector env hides its state: a replaced worker restarts its copies from its seed stream.
    agent = RecurrentPPO("CartPole-v1", seed=0, num_envs=4, backend="ray", ray_workers=2,
                         **{**PPO, "env_kwargs": {}, "normalize_observations": True})
    try:
        agent.learn(16 * 4, progress_bar=False)
        agent.workers.kill(1)
        agent.learn(16 * 4, progress_bar=False)
        assert agent.workers.pool.replaced_workers == 1
        assert agent.workers.restarted.tolist() == [False, True]
        agent.learn(16 * 4, progress_bar=False)
        agent.save(tmp_path / "agent.pt")
    finally:
        agent.close()
    assert agent.num_timesteps == 3 * 16 * 4
    assert agent.latest_scalars["rollout/ep_len_mean"] > 0
    count = load_checkpoint(tmp_path / "agent.pt")["normalization"]["observation"]["count"]
    # Every observation of every worker in the merged statistics: 4 first resets, 2 after the fault, 3 rollouts.
    assert count == pytest.approx(1e-4 + 4 + 2 + 3 * 16 * 4)


def test_ray_ppo_through_a_curriculum_ends_equal_to_in_process(ray_cluster) -> None:
    # The first stage ends at its first evaluation: the workers are rebuilt on the task's env (length 3) after it.
    curriculum = {"stages": {"length": [2]}, "until": "return>=-1e9", "eval_every": 1, "eval_episodes": 2}
    local = RecurrentPPO(TMAZE, seed=4, num_envs=8, curriculum=curriculum, **PPO)
    local.learn(3 * 16 * 8, progress_bar=False)
    remote = RecurrentPPO(TMAZE, seed=4, num_envs=8, backend="ray", ray_workers=2, envs_per_worker=4,
                          curriculum=curriculum, **PPO)
    try:
        remote.learn(3 * 16 * 8, progress_bar=False)
    finally:
        remote.close()
    assert local.curriculum.finished and remote.curriculum.finished
    assert torch.equal(_parameters(remote), _parameters(local))


def test_ray_ppo_with_the_count_bonus_on_one_worker_ends_equal_to_in_process(ray_cluster) -> None:
    # One worker counts every copy's observations, as the in-process env does; its rewards carry the same bonus.
    local = RecurrentPPO(TMAZE, seed=5, num_envs=8, count_bonus=1.0, **PPO)
    local.learn(3 * 16 * 8, progress_bar=False)
    remote = RecurrentPPO(TMAZE, seed=5, num_envs=8, backend="ray", ray_workers=1, envs_per_worker=8,
                          count_bonus=1.0, **PPO)
    try:
        remote.learn(3 * 16 * 8, progress_bar=False)
    finally:
        remote.close()
    assert torch.equal(_parameters(remote), _parameters(local))
