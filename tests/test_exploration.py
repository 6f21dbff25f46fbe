"""count_bonus: a reward bonus count_bonus / sqrt(n) for an observation whose SimHash bucket was seen n times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from test_checkpoints import PPO, REINFORCE, _parameters

from agents import agent_class
from agents.ppo import RecurrentPPO
from envs.ni_tmaze import EAST, UP, WEST
from rl_lstm.errors import ConfigError
from rl_lstm.evaluation import evaluate_agent
from rl_lstm.exploration import CountBonus, EpisodeVisits, SimHash, flatten_batch, population_novelty
from rl_lstm.vec_env import find_wrapper, make_vector_env, normalization_state

ROOT = Path(__file__).resolve().parents[1]
NI_ACTIVE = "rl_lstm/NiActiveTMaze-v0"


def run_in_fresh_python(code: str) -> str:
    """``code`` run by a new interpreter in the checkout (nothing imported before it); its stdout."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_bonus_falls_as_one_over_the_square_root_of_the_visits() -> None:
    """Ni's active maze (L = 2: start x = 1, junction x = 3, 5 steps), 2 copies side by side: each step pays
    3/sqrt(n), n counting both copies' visits to the bucket reached; the episode statistics keep the env's own
    rewards; the autoreset step is neither paid nor counted; the cue, a bucket never seen, pays the full 3."""
    env = make_vector_env(NI_ACTIVE, 2, {"length": 2}, count_bonus=3.0)
    bonus = find_wrapper(env, CountBonus)
    env.reset(seed=0)
    for actions, visits in (([EAST, EAST], 2), ([EAST, EAST], 2), ([UP, UP], 2), ([UP, UP], 4)):
        _, rewards, terminated, _, _ = env.step(np.array(actions))  # the corridor, the junction, the arm twice
        np.testing.assert_allclose(rewards, [3 / np.sqrt(visits)] * 2)
        assert not terminated.any()
    _, rewards, terminated, _, infos = env.step(np.array([UP, UP]))  # the arm's 5th and 6th visit; the end
    assert terminated.all()
    env_rewards = rewards - 3 / np.sqrt(6)
    assert set(np.round(env_rewards, 6)) <= {0.0, 1.0}  # 1 in the goal arm, else 0
    np.testing.assert_allclose(infos["episode"]["r"], env_rewards)
    _, rewards, *_ = env.step(np.array([WEST, WEST]))  # the autoreset step
    np.testing.assert_array_equal(rewards, [0.0, 0.0])
    assert bonus.counts.sum() == 10
    _, rewards, *_ = env.step(np.array([WEST, EAST]))  # copy 0 steps back onto the cue, copy 1 into the corridor
    np.testing.assert_allclose(rewards, [3.0, 3 / np.sqrt(3)])
    assert bonus.counts.sum() == 12


def test_the_hash_tells_the_t_mazes_observations_apart() -> None:
    """Every observation of Ni's maze has a bucket of its own, scale included ([0, 1] and [0, 2])."""
    env = make_vector_env(NI_ACTIVE, 1, count_bonus=1.0)
    bonus = find_wrapper(env, CountBonus)
    observations = np.array([[0, 0], [0, 1], [0, -1], [1, 0], [1, 1], [1, -1], [0, 2]], dtype=np.float32)
    buckets = [int(bonus.buckets(row[None])[0]) for row in observations]
    assert len(set(buckets)) == len(buckets)


@pytest.mark.parametrize(("space", "observations", "expected"), [
    (gym.spaces.Discrete(3, start=1), np.array([1, 3]), [[1, 0, 0], [0, 0, 1]]),
    (gym.spaces.Box(0, 1, (2, 2)), np.arange(8).reshape(2, 2, 2), [[0, 1, 2, 3], [4, 5, 6, 7]]),
    (gym.spaces.Dict({"a": gym.spaces.Discrete(2), "b": gym.spaces.Box(0, 1, (1,))}),
     {"a": np.array([1, 0]), "b": np.array([[0.5], [0.25]])}, [[0, 1, 0.5], [1, 0, 0.25]]),
])
def test_observations_are_flattened_per_copy(space: gym.Space, observations: object, expected: list) -> None:
    np.testing.assert_allclose(flatten_batch(space, observations, 2), expected)


@pytest.mark.parametrize("agent_name", ["ppo", "reinforce"])
def test_gradient_trainers_train_with_the_bonus_and_report_the_envs_own_returns(agent_name: str) -> None:
    """CartPole-v1 (an env we did not write) pays 1 per step: with the bonus, the logged returns are still the
    episodes' lengths, and the observations were counted."""
    hyperparams = {"ppo": PPO, "reinforce": REINFORCE}[agent_name]
    agent = agent_class(agent_name)("CartPole-v1", seed=0, count_bonus=0.5, **{**hyperparams, "env_kwargs": {}})
    agent.learn(600, progress_bar=False)
    episodes = find_wrapper(agent.env, RecordEpisodeStatistics)  # what TensorBoard's rollout/ep_rew_mean reads
    assert len(episodes.return_queue) > 0
    np.testing.assert_array_equal(episodes.return_queue, episodes.length_queue)
    assert find_wrapper(agent.env, CountBonus).counts.sum() > 0


def test_a_checkpoint_keeps_the_counts_and_a_resumed_run_goes_on_bit_for_bit(tmp_path: Path) -> None:
    agent = RecurrentPPO(NI_ACTIVE, seed=1, count_bonus=1.0, **{**PPO, "env_kwargs": {}})
    agent.learn(200, progress_bar=False)
    agent.save(tmp_path / "agent.pt")
    counts = find_wrapper(agent.env, CountBonus).counts.copy()
    agent.learn(300, progress_bar=False)
    resumed = RecurrentPPO.load(tmp_path / "agent.pt")
    np.testing.assert_array_equal(find_wrapper(resumed.env, CountBonus).counts, counts)
    resumed.learn(300, progress_bar=False)
    assert torch.equal(_parameters(resumed), _parameters(agent))
    np.testing.assert_array_equal(normalization_state(resumed.env)["observation_counts"],
                                  normalization_state(agent.env)["observation_counts"])


def test_evaluation_envs_have_no_bonus() -> None:
    """The bonus is a training signal: an evaluation's returns are the env's."""
    agent = RecurrentPPO(NI_ACTIVE, seed=0, count_bonus=5.0, **{**PPO, "env_kwargs": {}})
    result = evaluate_agent(agent, num_episodes=4, num_envs=4)
    assert all(-2.0 <= value <= 1.0 for value in result.returns)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("count_bonus", -1.0, "count_bonus must be 0 (off) or positive"),
    ("count_bonus_bits", 0, "count_bonus_bits must lie in 1..24"),
    ("count_bonus_bits", 25, "count_bonus_bits must lie in 1..24"),
])
def test_bad_values_are_refused_naming_the_key(key: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RecurrentPPO(NI_ACTIVE, **{key: value})


def test_evolino_has_no_count_bonus() -> None:
    """Evolino's bonus is novelty_bonus (per generation, in the fitness): count_bonus is refused."""
    with pytest.raises(ConfigError, match="count_bonus"):
        agent_class("evolino")(NI_ACTIVE, count_bonus=1.0)


def test_a_users_env_registered_in_a_fresh_process_trains_with_the_bonus() -> None:
    """The option on CartPole-v1 through the command line, in a fresh interpreter: the run's logged returns are
    CartPole's own (one per step), whatever the bonus paid."""
    code = (
        "import numpy as np\n"
        "from agents.ppo import RecurrentPPO\n"
        "from rl_lstm.exploration import CountBonus\n"
        "from gymnasium.wrappers.vector import RecordEpisodeStatistics\n"
        "from rl_lstm.vec_env import find_wrapper\n"
        "agent = RecurrentPPO('CartPole-v1', seed=3, count_bonus=2.0, count_bonus_bits=8, num_envs=2, n_steps=32,"
        " seq_len=8, batch_size=16)\n"
        "agent.learn(320, progress_bar=False)\n"
        "stats = find_wrapper(agent.env, RecordEpisodeStatistics)\n"
        "assert len(stats.return_queue) and np.array_equal(stats.return_queue, stats.length_queue)\n"
        "counts = find_wrapper(agent.env, CountBonus).counts\n"
        "print(len(counts), int(counts.sum()))\n"
    )
    table, counted = map(int, run_in_fresh_python(code).split())
    assert table == 256 and 0 < counted <= 320


def test_a_same_step_autoreset_env_is_a_config_error_naming_the_option() -> None:
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    with pytest.raises(ConfigError, match="count_bonus needs a vector env that autoresets on the next step"):
        CountBonus(env, 1.0, 8)


def test_a_partial_reset_ends_only_its_copies_autoreset_step() -> None:
    """After both copies' episodes end, resetting copy 0 alone makes its next step a paid transition; copy 1's next
    step is still its autoreset step."""
    env = make_vector_env(NI_ACTIVE, 2, {"length": 1}, count_bonus=2.0)
    env.reset(seed=0)
    terminated = np.zeros(2, dtype=bool)
    while not terminated.all():
        _, _, terminated, _, _ = env.step(np.array([EAST, EAST]))
    env.reset(options={"reset_mask": np.array([True, False])})
    _, rewards, *_ = env.step(np.array([WEST, WEST]))
    assert rewards[0] > 0 and rewards[1] == 0.0


def test_the_first_step_after_a_full_reset_counts_each_copys_own_observation() -> None:
    env = make_vector_env(NI_ACTIVE, 2, {"length": 3}, count_bonus=2.0)
    env.reset(seed=0)
    _, rewards, *_ = env.step(np.array([WEST, EAST]))  # the cue and the corridor: two buckets, each seen once
    np.testing.assert_allclose(rewards, [2.0, 2.0])
    assert find_wrapper(env, CountBonus).counts.sum() == 2


# ---- Evolino's novelty: distinct buckets per episode, counted over a batch of episodes -----------------------------
def test_population_novelty_sums_one_over_the_root_of_the_episodes_reaching_each_bucket() -> None:
    """Episode 0 reached buckets 1 and 2, episode 1 bucket 1, episode 2 buckets 1 and 3, episode 3 nothing: bucket 1
    was reached by 3 episodes, buckets 2 and 3 by one each."""
    episodes, buckets = np.array([0, 0, 1, 2, 2]), np.array([1, 2, 1, 1, 3])
    novelty = population_novelty(episodes, buckets, 4)
    np.testing.assert_allclose(novelty, [1 / np.sqrt(3) + 1, 1 / np.sqrt(3), 1 / np.sqrt(3) + 1, 0.0])


def test_episode_visits_keep_each_copys_distinct_buckets_through_many_steps() -> None:
    """Three copies over 300 steps (past the deduplication threshold), copy 2 idle every other step: the pairs are
    each copy's set of buckets, each bucket once."""
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    visits, simhash = EpisodeVisits(space, 6, 3), SimHash(space, 6)
    rng = np.random.default_rng(0)
    expected: list[set[int]] = [set(), set(), set()]
    for step in range(300):
        observations = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        copies = np.array([True, True, step % 2 == 0])
        visits.add(observations, copies)
        for copy, bucket in enumerate(simhash.buckets(observations, 3)):
            if copies[copy]:
                expected[copy].add(int(bucket))
    copies, buckets = visits.pairs()
    assert len(copies) == sum(len(reached) for reached in expected)
    for copy in range(3):
        assert set(buckets[copies == copy].tolist()) == expected[copy]
