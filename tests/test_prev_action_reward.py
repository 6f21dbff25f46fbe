"""prev_action_reward: each observation carries the previous action and reward, zeros at an episode's first one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import NormalizeObservation
from test_checkpoints import EVOLINO, NORMALIZED, PPO, REINFORCE, _parameters

from agents.evolino import PopulationEvaluator, RecurrentEvolino, evaluator_spec
from agents.ppo import RecurrentPPO
from agents.reinforce import RecurrentReinforce
from envs.tmaze import EAST, NORTH, OBSERVATION_CODINGS, SOUTH, WEST
from rl_lstm import checkpoints
from rl_lstm.checkpoints import load_checkpoint
from rl_lstm.errors import ConfigError
from rl_lstm.evaluation import record_memory
from rl_lstm.vec_env import (
    PREV_REWARD_SPACE,
    PrevActionReward,
    SinglePrevActionReward,
    find_wrapper,
    make_vector_env,
    prev_action_reward_space,
)

CUE_UP = OBSERVATION_CODINGS[0]
GOAL_ARM, WRONG_ARM, BUMP = 4.0, -0.1, -0.1  # T-maze rewards (Bakker 2002)
FOREIGN_ID = "foreign_envs:foreign/Spaces-v0"


def assert_previous(observations: dict[str, Any], actions: Any, rewards: Any) -> None:
    """The observations' previous actions and rewards are exactly these (dtype included)."""
    np.testing.assert_array_equal(observations["prev_action"], np.asarray(actions))
    assert observations["prev_action"].dtype == np.asarray(actions).dtype
    np.testing.assert_array_equal(observations["prev_reward"], np.asarray(rewards, dtype=np.float32).reshape(-1, 1))
    assert observations["prev_reward"].dtype == np.float32


def expected_previous(
    action_space: gym.Space, actions: Any, rewards: Any, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The specification: the step's actions and rewards, but the space's first action (0 unless the space starts
    elsewhere) and reward 0 where an episode starts: after reset, and at the autoreset step after an episode ended."""
    first = np.asarray(getattr(action_space, "start", 0), dtype=action_space.dtype)
    actions = np.asarray(actions, dtype=action_space.dtype)
    return np.where(starts.reshape(-1, *[1] * (actions.ndim - 1)), first, actions), np.where(starts, 0.0, rewards)


# ---- the semantics, step by step -----------------------------------------------------------------------------------
def test_tmaze_step_by_step_through_an_episode_end_and_the_autoreset_step() -> None:
    env = make_vector_env("rl_lstm/TMaze-v0", 2, env_kwargs={"length": 2}, vectorization="native",
                          prev_action_reward=True)
    observations, _ = env.reset(seed=0)
    assert env.single_observation_space == gym.spaces.Dict(
        {"observation": gym.spaces.Box(-0.0, 1.0, (3,), np.float32), "prev_action": gym.spaces.Discrete(4),
         "prev_reward": PREV_REWARD_SPACE}
    )
    assert_previous(observations, np.array([0, 0]), [0.0, 0.0])
    goal_up = [bool(np.array_equal(cue, CUE_UP)) for cue in observations["observation"]]
    right = [NORTH if up else SOUTH for up in goal_up]
    wrong = [SOUTH if up else NORTH for up in goal_up]
    # actions, the env's rewards, terminated, and the previous actions and rewards the next observation carries
    script = [
        ([EAST, WEST], [0.0, BUMP], [False, False], [EAST, WEST], [0.0, BUMP]),
        ([EAST, EAST], [0.0, 0.0], [False, False], [EAST, EAST], [0.0, 0.0]),
        # copy 0 turns into the wrong arm and its episode ends; copy 1 reaches the junction
        ([wrong[0], EAST], [WRONG_ARM, 0.0], [True, False], [wrong[0], EAST], [WRONG_ARM, 0.0]),
        # copy 0's autoreset step returns its next episode's first observation: zeros; copy 1 turns right
        ([EAST, right[1]], [0.0, GOAL_ARM], [False, True], [0, right[1]], [0.0, GOAL_ARM]),
        # copy 0 walks its new episode; copy 1's autoreset step
        ([EAST, WEST], [0.0, 0.0], [False, False], [EAST, 0], [0.0, 0.0]),
    ]
    for actions, rewards, terminated, prev_actions, prev_rewards in script:
        observations, step_rewards, step_terminated, _, _ = env.step(np.array(actions))
        np.testing.assert_allclose(step_rewards, rewards)
        np.testing.assert_array_equal(step_terminated, terminated)
        assert_previous(observations, np.array(prev_actions), prev_rewards)
    env.close()


def _inner(observations: dict[str, Any], space: gym.spaces.Dict) -> Any:
    """The env's own observation inside the wrapped one: the "observation" key, or the Dict without the new keys."""
    if "observation" in space.spaces:
        return observations["observation"]
    return {key: value for key, value in observations.items() if key not in ("prev_action", "prev_reward")}


@pytest.mark.parametrize(
    ("env_id", "env_kwargs", "steps"),
    [
        ("CartPole-v1", {}, 60),  # Discrete; random actions end episodes within tens of steps
        ("Pendulum-v1", {}, 205),  # Box; truncated after 200 steps
        (FOREIGN_ID, {"observation": "dict", "action": "multidiscrete"}, 12),  # MultiDiscrete, added to a Dict
        (FOREIGN_ID, {"observation": "box", "action": "discrete_start"}, 12),  # Discrete(3, start=-1)
    ],
    ids=["cartpole-discrete", "pendulum-box", "multidiscrete-dict", "discrete-start"],
)
def test_gymnasium_envs_observe_the_previous_action_and_reward(env_id: str, env_kwargs: dict, steps: int) -> None:
    plain = make_vector_env(env_id, 3, env_kwargs)
    wrapped = make_vector_env(env_id, 3, env_kwargs, prev_action_reward=True)
    action_space, space = plain.single_action_space, wrapped.single_observation_space
    assert space["prev_action"] == action_space and space["prev_reward"] == PREV_REWARD_SPACE
    expected_observations, _ = plain.reset(seed=4)
    observations, _ = wrapped.reset(seed=4)
    after_reset = np.ones(3, dtype=bool)
    any_actions = plain.action_space.sample()
    assert_previous(observations, *expected_previous(action_space, any_actions, np.ones(3), after_reset))
    plain.action_space.seed(1)
    starts = ~after_reset  # the step after a reset returns no episode's first observation
    episode_ends = 0
    for _ in range(steps):
        np.testing.assert_equal(_inner(observations, space), expected_observations)
        assert wrapped.observation_space.contains(observations)
        actions = plain.action_space.sample()
        expected_observations, rewards, terminated, truncated, infos = plain.step(actions)
        observations, wrapped_rewards, _, _, wrapped_infos = wrapped.step(actions)
        np.testing.assert_array_equal(wrapped_rewards, rewards)
        np.testing.assert_equal(wrapped_infos.get("_episode"), infos.get("_episode"))  # episode statistics as before
        assert_previous(observations, *expected_previous(action_space, actions, rewards, starts))
        starts = terminated | truncated
        episode_ends += int(starts.sum())
    assert episode_ends > 0, "the steps pass an episode end and its autoreset step"
    plain.close()
    wrapped.close()


def test_a_partial_reset_starts_only_the_copies_it_resets() -> None:
    env = make_vector_env("CartPole-v1", 3, vectorization="sync", prev_action_reward=True)
    env.reset(seed=0)
    env.step(np.array([1, 1, 1]))
    observations, _ = env.reset(options={"reset_mask": np.array([True, False, True])})
    assert_previous(observations, np.array([0, 1, 0]), [0.0, 1.0, 0.0])
    env.close()


def test_a_single_env_observes_what_a_copy_of_the_vector_env_observes() -> None:
    vector = make_vector_env("CartPole-v1", 1, vectorization="sync", prev_action_reward=True)
    single = SinglePrevActionReward(gym.make("CartPole-v1"))
    assert single.observation_space == vector.single_observation_space
    vector_observations, _ = vector.reset(seed=3)
    observation, _ = single.reset(seed=3)
    done = False
    for step in range(200):
        np.testing.assert_equal({key: value[0] for key, value in vector_observations.items()}, observation)
        if done:  # the vector env's autoreset step and the single env's reset: an episode's first observation
            break
        action = step % 2
        vector_observations, *_ = vector.step(np.array([action]))
        observation, _, terminated, truncated, _ = single.step(action)
        done = terminated or truncated
        if done:
            vector_observations, *_ = vector.step(np.array([action]))
            observation, _ = single.reset()
    assert done and observation["prev_reward"] == 0.0
    vector.close()


# ---- composition with the other wrappers ---------------------------------------------------------------------------
def test_normalization_sees_the_env_observation_and_the_previous_reward_is_the_env_reward() -> None:
    plain = make_vector_env("CartPole-v1", 2, **NORMALIZED)
    wrapped = make_vector_env("CartPole-v1", 2, **NORMALIZED, prev_action_reward=True)
    # gymnasium's NormalizeObservation keeps one mean of the observation's shape and cannot take a Dict: it sits below.
    assert find_wrapper(wrapped, NormalizeObservation).single_observation_space == plain.single_observation_space
    expected, _ = plain.reset(seed=0)
    observations, _ = wrapped.reset(seed=0)
    for _ in range(5):
        np.testing.assert_array_equal(observations["observation"], expected)
        actions = np.array([1, 0])
        expected, rewards, *_ = plain.step(actions)
        observations, wrapped_rewards, *_ = wrapped.step(actions)
        np.testing.assert_array_equal(wrapped_rewards, rewards)
        assert not np.allclose(rewards, 1.0), "the trainer's rewards are normalized"
        assert_previous(observations, actions, [1.0, 1.0])  # CartPole's own reward
    plain.close()
    wrapped.close()


def test_frame_stack_and_per_copy_wrappers_act_on_the_env_below_the_option() -> None:
    env = make_vector_env("CartPole-v1", 2, frame_stack=3, prev_action_reward=True,
                          env_wrappers=[{"gymnasium.wrappers:ClipReward": {"min_reward": 0.0, "max_reward": 0.5}}])
    env.reset(seed=0)
    assert env.single_observation_space["observation"].shape == (3, 4)
    observations, *_ = env.step(np.array([1, 0]))
    assert observations["observation"].shape == (2, 3, 4)
    assert_previous(observations, np.array([1, 0]), [0.5, 0.5])  # the clipped reward, not stacked
    env.close()


def test_the_option_twice_or_a_same_step_autoreset_env_is_a_config_error() -> None:
    env = make_vector_env("CartPole-v1", 2, prev_action_reward=True)
    with pytest.raises(ConfigError, match="keys 'prev_action' and 'prev_reward'.*has 'prev_action', 'prev_reward'"):
        PrevActionReward(env)
    same_step = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2, autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ConfigError, match="autoresets on the next step.*AutoresetMode.SAME_STEP"):
        PrevActionReward(same_step)
    with pytest.raises(ConfigError, match=r"action space Tuple\(.*set prev_action_reward: false"):
        prev_action_reward_space(gym.spaces.Box(0, 1), gym.spaces.Tuple([gym.spaces.Discrete(2)]))


def test_checkpointed_env_state_continues_a_copy_at_its_autoreset_step() -> None:
    original, restored = (make_vector_env("rl_lstm/TMaze-v0", 3, env_kwargs={"length": 2}, prev_action_reward=True)
                          for _ in range(2))
    original.reset(seed=5)
    original.action_space.seed(0)
    while not original.prev_dones.any():  # save just after an episode ended: its next step is the autoreset step
        original.step(original.action_space.sample())
    state = checkpoints.from_plain(checkpoints.to_plain(checkpoints.env_state(original)))
    assert state["wrappers"][0]["type"] == "PrevActionReward"
    restored.reset(seed=99)
    checkpoints.load_env_state(restored, state)
    for _ in range(30):
        actions = original.action_space.sample()
        for name, a, b in zip(("observation", "reward", "terminated"), original.step(actions), restored.step(actions)):
            np.testing.assert_equal(a, b, err_msg=name)


# ---- every trainer -------------------------------------------------------------------------------------------------
TRAINERS = [(RecurrentPPO, PPO), (RecurrentReinforce, REINFORCE), (RecurrentEvolino, EVOLINO)]


@pytest.mark.parametrize(("agent_class", "hyperparams"), TRAINERS, ids=["ppo", "reinforce", "evolino"])
def test_every_trainer_trains_saves_loads_and_predicts_with_the_option(
    tmp_path: Path, agent_class, hyperparams: dict
) -> None:
    agent = agent_class("rl_lstm/TMaze-v0", seed=0, prev_action_reward=True, **hyperparams)
    assert find_wrapper(agent.env, PrevActionReward) is not None and set(agent.observation_space.spaces) == {
        "observation", "prev_action", "prev_reward"}
    agent.learn(10**6, callback=lambda agent: agent.iterations < 2, progress_bar=False)
    assert agent.iterations == 2
    agent.save(tmp_path / "agent.pt")
    loaded = agent_class.load(tmp_path / "agent.pt")  # the option is in the config: the env is rebuilt with it
    assert loaded.config.prev_action_reward and loaded.observation_space == agent.observation_space
    assert torch.equal(_parameters(loaded), _parameters(agent))
    observations, _ = loaded.env.reset(seed=1)
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0],
                                  agent.predict(observations, deterministic=True)[0])
    single = SinglePrevActionReward(gym.make("rl_lstm/TMaze-v0", **hyperparams["env_kwargs"]))
    action, _ = loaded.predict(single.reset(seed=0)[0], deterministic=True)
    assert loaded.action_space.contains(action)
    agent.close()
    loaded.close()


def test_evolino_ray_workers_build_the_same_env_from_the_spec() -> None:
    agent = RecurrentEvolino("rl_lstm/TMaze-v0", seed=0, prev_action_reward=True, **EVOLINO)
    spec = evaluator_spec(agent.env_id, agent.config, agent.layout)
    assert spec["prev_action_reward"] is True
    worker = PopulationEvaluator.from_spec(spec)
    assert worker.env.single_observation_space == agent.observation_space
    network = [chromosome[:1] for chromosome in agent.esp.chromosomes(agent.esp.sample_networks(1))]
    jobs, seeds = [np.repeat(chromosome, 4, axis=0) for chromosome in network], np.arange(4)
    np.testing.assert_array_equal(worker.evaluate(jobs, seeds).returns, agent.evaluator.evaluate(jobs, seeds).returns)
    worker.env.close()
    agent.close()


def test_memory_traces_observe_as_training_did(tmp_path: Path) -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=0, prev_action_reward=True, **PPO, **NORMALIZED)
    agent.learn(64, progress_bar=False)
    trace = record_memory(agent, seed=0, max_steps=12)
    # Flattened Dict, keys in order: observation (3, normalized), prev_action (one-hot of 4), prev_reward (1).
    assert trace.observations.shape[1] == 3 + 4 + 1
    np.testing.assert_array_equal(trace.observations[0, 3:], [1, 0, 0, 0, 0])  # first step: zeros (action 0)
    np.testing.assert_allclose(trace.observations[1:, -1], trace.rewards[:-1], rtol=1e-6)
    agent.close()


def test_rl_lstm_evaluate_runs_an_agent_trained_with_the_option(tmp_path: Path) -> None:
    agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=0, prev_action_reward=True, **PPO, **NORMALIZED)
    agent.learn(64, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    agent.close()
    evaluated = subprocess.run(
        [sys.executable, "-m", "rl_lstm.cli", "evaluate", str(tmp_path / "agent.pt"), "--episodes", "3",
         "--plot-memory"],
        capture_output=True, text=True, timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["num_episodes"] == 3 and Path(report["memory_plot"]).is_file()


@pytest.mark.parametrize(
    ("env_id", "hyperparams"),
    [("rl_lstm/TMaze-v0", PPO), ("rl_lstm/NoisyCartPolePositionOnly-v0", {**PPO, "env_kwargs": {}, **NORMALIZED})],
    ids=["tmaze", "noisy-cartpole-normalized"],
)
def test_ppo_with_the_option_resumes_bit_for_bit(tmp_path: Path, env_id: str, hyperparams: dict) -> None:
    agent = RecurrentPPO(env_id, seed=1, prev_action_reward=True, **hyperparams)
    agent.learn(200, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    agent.learn(300, progress_bar=False)
    episodes = load_checkpoint(tmp_path / "agent.pt")["episodes"]
    assert episodes is not None, "the episodes in flight, the option's arrays among them, are in the checkpoint"
    assert "PrevActionReward" in [wrapper["type"] for wrapper in episodes["env"]["wrappers"]]
    resumed = RecurrentPPO.load(tmp_path / "agent.pt")
    resumed.learn(300, progress_bar=False)
    assert resumed.num_timesteps == agent.num_timesteps
    assert torch.equal(_parameters(resumed), _parameters(agent))
