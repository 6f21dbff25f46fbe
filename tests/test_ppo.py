"""Recurrent PPO: its API in Stable-Baselines3's shape, action masking with recurrence, and safety checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from agents.ppo import RecurrentPPO
from rl_lstm.errors import CheckpointError, ConfigError, NumericalError

TINY = dict(num_envs=4, n_steps=16, seq_len=8, batch_size=32, n_epochs=2)


def test_predict_follows_sb3_contrib_recurrent_contract() -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", env_kwargs={"length": 3}, **TINY)
    env = gym.make_vec("rl_lstm/TMaze-v0", num_envs=3, length=3)
    observations, _ = env.reset(seed=0)
    state, episode_starts = None, np.ones(3, dtype=bool)
    for _ in range(20):
        actions, state = agent.predict(observations, state=state, episode_start=episode_starts, deterministic=True)
        assert actions.shape == (3,) and env.action_space.contains(actions)
        assert all(isinstance(s, np.ndarray) and s.shape[1] == 3 for s in state)
        observations, _, terminated, truncated, _ = env.step(actions)
        episode_starts = terminated | truncated
    single_action, _ = agent.predict(observations[0])
    assert np.shape(single_action) == ()


def test_episode_start_resets_the_memory_in_predict() -> None:
    agent = RecurrentPPO("rl_lstm/CartPolePositionOnly-v0", **TINY)
    observation = np.array([[0.01, -0.02]], dtype=np.float32)
    _, state = agent.predict(observation)
    for _ in range(5):
        _, state = agent.predict(observation, state=state, episode_start=np.array([False]))
    _, fresh = agent.predict(observation, state=None)
    _, reset = agent.predict(observation, state=state, episode_start=np.array([True]))
    for a, b in zip(fresh, reset):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_save_and_load_give_the_same_policy(tmp_path) -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=1, env_kwargs={"length": 3}, **TINY)
    agent.learn(256, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    loaded = RecurrentPPO.load(tmp_path / "agent.pt")
    assert loaded.num_timesteps == agent.num_timesteps == 256
    observations = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    for a, b in zip(agent.policy.state_dict().values(), loaded.policy.state_dict().values()):
        torch.testing.assert_close(a, b)
    np.testing.assert_array_equal(
        agent.predict(observations, deterministic=True)[0], loaded.predict(observations, deterministic=True)[0]
    )


def test_load_rejects_a_checkpoint_of_another_env(tmp_path) -> None:
    RecurrentPPO("rl_lstm/TMaze-v0", **TINY).save(tmp_path / "agent.pt")
    with pytest.raises(CheckpointError, match="observation space"):
        RecurrentPPO.load(tmp_path / "agent.pt", env="rl_lstm/CartPolePositionOnly-v0")


def test_box_actions_are_sent_clipped_and_trained_unclipped() -> None:
    agent = RecurrentPPO("rl_lstm/PendulumPositionOnly-v0", log_std_init=1.0, **TINY)
    agent.learn(128, progress_bar=False)
    stored = agent.buffer.actions
    assert np.abs(stored).max() > 2.0, "stored samples are the policy's own, outside the bounds"
    actions, _ = agent.predict(np.zeros((64, 2), dtype=np.float32))
    assert np.abs(actions).max() <= 2.0


def test_any_gymnasium_id_trains_including_module_prefixed_ids() -> None:
    agent = RecurrentPPO("gymnasium.envs.classic_control.acrobot:Acrobot-v1", **TINY)
    assert isinstance(agent.env.unwrapped, gym.vector.SyncVectorEnv)
    agent.learn(128, progress_bar=False)
    assert agent.num_timesteps == 128


def test_a_users_vector_env_is_accepted() -> None:
    env = gym.vector.SyncVectorEnv([lambda: gym.make("rl_lstm/TMaze-v0", length=2) for _ in range(4)])
    agent = RecurrentPPO(env, **TINY)
    agent.learn(64, progress_bar=False)
    assert agent.num_timesteps == 64


class MaskedCueEnv(gym.Env):
    """A cue at the first step, then a blank; at the second step only actions 0 and 1 are allowed, one is right."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2))
        self.t = 0
        return np.eye(2, dtype=np.float32)[self.cue], {}

    def action_masks(self) -> np.ndarray:
        return np.array([True, True, False, False]) if self.t == 1 else np.ones(4, dtype=bool)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_masks()[action], f"masked action {action} taken at step {self.t}"
        self.t += 1
        if self.t == 1:
            return np.zeros(2, dtype=np.float32), 0.0, False, False, {}
        return np.zeros(2, dtype=np.float32), float(action == self.cue), True, False, {"is_success": action == self.cue}


def test_action_masks_are_respected_and_learned_with_recurrence() -> None:
    env = gym.vector.SyncVectorEnv([MaskedCueEnv for _ in range(8)])
    agent = RecurrentPPO(
        env,
        seed=0,
        num_envs=8,
        n_steps=32,
        seq_len=8,
        batch_size=64,
        n_epochs=4,
        learning_rate=3e-3,
        normalize_advantage=False,
        ent_coef=0.0,
        shared_core=False,
        normalize_rewards=False,
        core_kwargs={"forget_bias": 1.0},
    )
    agent.learn(6000, progress_bar=False)  # MaskedCueEnv asserts no masked action is ever taken
    decisions = agent.buffer.actions[agent.buffer.action_masks.sum(-1) == 2]
    assert set(np.unique(decisions)) <= {0, 1}
    assert agent.latest_scalars["rollout/ep_rew_mean"] > 0.9, "the cue must be remembered through the blank step"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"batch_size": 1024}, "larger than a rollout"),
        ({"seq_len": 0}, "seq_len must be at least 1"),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"n_steps": 20}, "multiple of seq_len"),
        ({"learning_rat": 0.1}, "Did you mean 'learning_rate'"),
        ({"n_epochs": "four"}, "n_epochs must be int"),
        ({"lr_schedule": "cosine"}, "lr_schedule must be one of constant, linear"),
    ],
)
def test_bad_hyperparameters_are_config_errors_naming_the_key(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RecurrentPPO("rl_lstm/TMaze-v0", **{**TINY, **override})


def test_unknown_env_id_lists_close_matches() -> None:
    with pytest.raises(ConfigError, match="rl_lstm/TMaze-v0"):
        RecurrentPPO("rl_lstm/TMaze-v9", **TINY)


class NaNRewardWrapper(gym.Wrapper):
    """Pays NaN from the tenth step on: a broken env that would poison the value loss."""

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return observation, float("nan") if self.steps >= 10 else reward, terminated, truncated, info


def test_a_nan_loss_stops_training_before_the_parameters_change() -> None:
    env = gym.vector.SyncVectorEnv([lambda: NaNRewardWrapper(gym.make("rl_lstm/TMaze-v0", length=50))] * 4)
    agent = RecurrentPPO(env, **TINY)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    with pytest.raises(NumericalError, match="loss holds NaN"):
        agent.learn(64, progress_bar=False)
    for old, new in zip(before, agent.policy.parameters()):
        torch.testing.assert_close(old, new)


def test_skip_nonfinite_batches_keeps_training_going() -> None:
    env = gym.vector.SyncVectorEnv([lambda: NaNRewardWrapper(gym.make("rl_lstm/TMaze-v0", length=50))] * 4)
    agent = RecurrentPPO(env, skip_nonfinite_batches=True, **TINY)
    agent.learn(64, progress_bar=False)
    assert agent.latest_scalars["train/skipped_batches"] > 0


def test_same_seed_same_run_and_different_seeds_differ() -> None:
    def final_parameters(seed: int) -> torch.Tensor:
        agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=seed, env_kwargs={"length": 3}, **TINY)
        agent.learn(256, progress_bar=False)
        return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])

    first, again, other = final_parameters(5), final_parameters(5), final_parameters(6)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
