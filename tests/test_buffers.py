"""The rollout buffer: sequence layout, GAE with gymnasium 1.x autoreset, and the training pass it feeds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.ppo import RecurrentPPO
from rl_lstm import buffers
from rl_lstm.buffers import PieceLayout, RolloutBuffer, whole_chunks_are_cheaper
from rl_lstm.logger import EpisodeStatistics


def test_chunks_are_cut_into_pieces_at_episode_starts() -> None:
    episode_starts = np.zeros((6, 3), dtype=bool)  # [seq_len, chunks]
    episode_starts[0, 0] = True
    episode_starts[3, 0] = True
    episode_starts[[2, 5], 2] = True
    layout = PieceLayout.from_episode_starts(episode_starts)
    assert layout.chunk.tolist() == [0, 0, 1, 2, 2, 2]
    assert layout.offset.tolist() == [0, 3, 0, 0, 2, 5]
    assert layout.length.tolist() == [3, 3, 6, 2, 3, 1]
    assert layout.resets.tolist() == [True, True, False, False, True, True]
    assert layout.pieces_of(np.array([2, 0])).tolist() == [3, 4, 5, 0, 1]


def _buffer_with(
    rewards: list[float], terminated: list[bool], truncated: list[bool], values: list[float]
) -> RolloutBuffer:
    buffer = RolloutBuffer(n_steps=len(rewards), n_envs=1, seq_len=1, device=torch.device("cpu"))
    buffer.rewards[:, 0] = rewards
    buffer.terminated[:, 0] = terminated
    buffer.truncated[:, 0] = truncated
    buffer.values[:, 0] = values
    buffer.step = len(rewards)
    return buffer


def test_gae_stops_at_termination_and_bootstraps_at_truncation() -> None:
    gamma, lam = 0.9, 0.8
    # Step 1 terminates; step 2 is the autoreset step (reward 0, value of the terminal observation);
    # step 4 is truncated: it bootstraps from step 5's value, the value of its (truncated) last observation.
    buffer = _buffer_with(
        rewards=[1.0, 2.0, 0.0, 1.0, 1.0, 0.0],
        terminated=[False, True, False, False, False, False],
        truncated=[False, False, False, False, True, False],
        values=[0.5, 0.4, 0.3, 0.2, 0.1, 3.0],
    )
    buffer.compute_advantages(last_values=np.array([7.0]), gamma=gamma, gae_lambda=lam)
    advantages = buffer.advantages[:, 0]
    delta1 = 2.0 - 0.4  # terminal: no bootstrap from the autoreset step's value
    delta0 = 1.0 + gamma * 0.4 - 0.5
    delta4 = 1.0 + gamma * 3.0 - 0.1  # truncated: bootstraps
    delta3 = 1.0 + gamma * 0.1 - 0.2
    np.testing.assert_allclose(advantages[1], delta1, rtol=1e-6)
    np.testing.assert_allclose(advantages[0], delta0 + gamma * lam * delta1, rtol=1e-6)
    np.testing.assert_allclose(advantages[4], delta4, rtol=1e-6)
    np.testing.assert_allclose(advantages[3], delta3 + gamma * lam * delta4, rtol=1e-6)
    np.testing.assert_allclose(buffer.returns[:, 0], advantages + buffer.values[:, 0], rtol=1e-6)


@pytest.mark.parametrize(
    ("core", "shared_core"), [("lstm", False), ("lstm", True), ("gru", False), ("peephole", False)]
)
@pytest.mark.parametrize("batch_size", [32, 128])  # 128: one minibatch holds the whole rollout
@pytest.mark.parametrize("whole_chunks", [False, True])
def test_training_pass_reproduces_the_rollout_exactly(
    core: str, shared_core: bool, batch_size: int, whole_chunks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short T-maze episodes start inside most chunks: the pieces, their start states and the padding, or the whole
    # chunks an LSTM core resets inside, must give back the log-probabilities and values the policy computed step
    # by step while acting.
    monkeypatch.setattr(buffers, "whole_chunks_are_cheaper", lambda *sizes: whole_chunks)
    agent = RecurrentPPO(
        "rl_lstm/TMaze-v0",
        seed=3,
        num_envs=4,
        n_steps=32,
        seq_len=8,
        batch_size=batch_size,
        env_kwargs={"length": 3},
        core=core,
        shared_core=shared_core,
    )
    agent._collect_rollout(EpisodeStatistics())
    agent.buffer.prepare()
    assert agent.buffer.episode_starts[1:].any(), "episodes must start inside the rollout"
    assert not agent.buffer.valid.all(), "the rollout must contain autoreset steps"
    steps_seen = 0
    whole_chunk_batches = 0
    with torch.no_grad():
        for batch in agent.buffer.minibatches(batch_size, agent.rng):
            whole_chunk_batches += batch.whole_chunks
            log_prob, _, values = agent.policy.evaluate_actions(
                batch.observations, batch.actions, batch.initial_state, batch.episode_starts, batch.action_masks
            )
            torch.testing.assert_close(log_prob[batch.valid], batch.old_log_probs[batch.valid], atol=1e-5, rtol=0)
            torch.testing.assert_close(values[batch.valid], batch.old_values[batch.valid], atol=1e-5, rtol=0)
            steps_seen += int(batch.valid.sum())
    assert steps_seen == int(agent.buffer.valid.sum()), "every real step is trained on once per epoch"
    # Whole chunks only where every core resets inside its kernel: the LSTM's.
    assert bool(whole_chunk_batches) == (whole_chunks and core == "lstm")


def test_every_minibatch_holds_batch_size_steps_and_an_epoch_covers_the_rollout_once() -> None:
    agent = RecurrentPPO(
        "rl_lstm/TMaze-v0", seed=0, num_envs=4, n_steps=32, seq_len=8, batch_size=64, env_kwargs={"length": 2}
    )
    agent._collect_rollout(EpisodeStatistics())
    agent.buffer.prepare()
    batches = list(agent.buffer.minibatches(64, agent.rng))
    assert len(batches) == 4 * 32 // 64
    for batch in batches:
        assert int(batch.inside.sum()) == 64
    covered = sorted(float(r) for batch in batches for r in batch.returns[batch.inside])
    np.testing.assert_allclose(covered, np.sort(agent.buffer.returns.ravel()), rtol=1e-6)


def test_a_minibatch_of_the_whole_rollout_is_gathered_once_per_rollout_and_never_reused_after_it() -> None:
    # batch_size = n_steps * num_envs (the zoo's recurrent presets): every epoch trains on all the pieces.
    agent = RecurrentPPO(
        "rl_lstm/TMaze-v0", seed=0, num_envs=4, n_steps=32, seq_len=8, batch_size=128, env_kwargs={"length": 2}
    )
    for _ in range(2):
        agent._collect_rollout(EpisodeStatistics())
        agent.buffer.prepare()
        epochs = [list(agent.buffer.minibatches(128, agent.rng)) for _ in range(3)]
        assert all(len(batches) == 1 for batches in epochs)
        batch = epochs[0][0]
        assert all(batches[0] is batch for batches in epochs), "the epochs of one rollout share the gathered batch"
        assert int(batch.inside.sum()) == 128
        covered = sorted(float(r) for r in batch.returns[batch.inside])
        np.testing.assert_allclose(covered, np.sort(agent.buffer.returns.ravel()), rtol=1e-6)


@pytest.mark.parametrize("batch_size", [64, 256])
def test_updates_on_whole_chunks_train_as_updates_on_padded_pieces(
    batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rollouts and minibatches, laid out either way: the same parameters after three updates, to float
    rounding (the kernel sums in another order)."""
    parameters = {}
    for whole_chunks in (False, True):
        monkeypatch.setattr(buffers, "whole_chunks_are_cheaper", lambda *sizes: whole_chunks)  # noqa: B023
        agent = RecurrentPPO("rl_lstm/TMaze-v0", seed=5, num_envs=8, n_steps=32, seq_len=32, batch_size=batch_size,
                             n_epochs=2, env_kwargs={"length": 4}, shared_core=False)
        agent.learn(3 * 8 * 32, progress_bar=False)
        parameters[whole_chunks] = [parameter.detach().clone() for parameter in agent.policy.parameters()]
        agent.close()
    for chunked, padded in zip(parameters[True], parameters[False]):
        torch.testing.assert_close(chunked, padded, rtol=1e-4, atol=1e-5)


def test_whole_chunks_are_chosen_where_their_kernel_call_is_the_cheaper() -> None:
    # rl-baselines3-zoo's CartPoleNoVel minibatch: 8 chunks of 32 steps, cut into 13 pieces, 2 starts at most.
    assert whole_chunks_are_cheaper(chunks=8, chunk_steps=34, pieces=13, piece_steps=32)
    # A T-maze of length 10 in chunks of 128 steps: 2 chunks with 12 starts each, against 24 pieces of 11 steps.
    assert not whole_chunks_are_cheaper(chunks=2, chunk_steps=140, pieces=24, piece_steps=11)


def test_the_layout_benchmark_times_both_layouts_of_the_same_rollout() -> None:
    """scripts/benchmark.py ppo-layout, tiny: a row per iteration, both times measured, the layout named."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import benchmark_ppo

    threads = torch.get_num_threads()
    try:
        section = benchmark_ppo.benchmark_ppo_layout(
            argparse.Namespace(env="rl_lstm/CartPolePositionOnly-v0", at=[0, 1], rounds=1)
        )
    finally:
        torch.set_num_threads(threads)  # the benchmark times one thread
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert len(rows) == 2
    assert all(row[4] in ("whole chunks", "pieces") and float(row[5]) > 0 and float(row[6]) > 0 for row in rows)
