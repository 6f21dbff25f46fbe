"""Evaluation of saved agents: exact episode counts, autoreset bookkeeping, bootstrap CI, eval.json, plots, videos."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.vector import NormalizeObservation

from agents.ppo import RecurrentPPO
from envs.oracle import make_oracle
from envs.tmaze import EAST
from rl_lstm import evaluation
from rl_lstm.errors import CheckpointError, ConfigError
from rl_lstm.evaluation import (
    EvaluationResult,
    MissingDependencyError,
    evaluate_agent,
    load_agent,
    main,
    plot_memory,
    record_memory,
    record_video,
)
from rl_lstm.vec_env import find_wrapper

TMAZE = "rl_lstm/TMaze-v0"
LENGTH = 3
STEP_LIMIT = 10 * (LENGTH + 1)  # TMazeTask.STEP_LIMIT_PER_CELL * (length + 1)
HIDDEN_SIZE = 16


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Batches of a few observations are ~20x slower with two threads on a machine busy with other jobs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_agent(**hyperparams: object) -> RecurrentPPO:
    return RecurrentPPO(TMAZE, num_envs=4, n_steps=16, seq_len=8, batch_size=32, hidden_size=HIDDEN_SIZE,
                        env_kwargs={"length": LENGTH}, **hyperparams)


@pytest.fixture
def agent() -> RecurrentPPO:
    return tiny_agent()


@pytest.fixture
def run_dir(tmp_path: Path, agent: RecurrentPPO) -> Path:
    agent.save(tmp_path / "run" / "checkpoints" / "latest.pt")
    return tmp_path / "run"


def use_oracle(monkeypatch: pytest.MonkeyPatch, agent: RecurrentPPO, num_envs: int) -> None:
    """Replace ``agent.predict`` by the T-maze oracle, which succeeds only if told exactly where episodes start."""
    oracle = make_oracle(TMAZE, num_envs, length=LENGTH)

    def predict(observation, state=None, episode_start=None, deterministic=False, action_masks=None):
        return oracle.act(observation, episode_start), state

    monkeypatch.setattr(agent, "predict", predict)


# ---- evaluate_agent -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("num_episodes", "num_envs"), [(1, 4), (30, 4), (7, 3)])
def test_evaluate_runs_exactly_the_requested_episodes(agent: RecurrentPPO, num_episodes: int, num_envs: int) -> None:
    result = evaluate_agent(agent, num_episodes=num_episodes, deterministic=False, num_envs=num_envs)
    assert len(result.returns) == len(result.lengths) == len(result.successes) == num_episodes


def test_returns_and_lengths_follow_the_tmaze_rewards(agent: RecurrentPPO) -> None:
    result = evaluate_agent(agent, num_episodes=40, deterministic=False, num_envs=4)
    # Every return is +4 for the goal (or nothing) minus 0.1 per penalized step.
    penalties = (4.0 * result.successes - result.returns) / 0.1
    assert np.allclose(penalties, np.round(penalties), atol=1e-6)
    assert (np.round(penalties) >= 0).all()
    assert ((result.lengths >= LENGTH) & (result.lengths <= STEP_LIMIT)).all()
    assert len(set(result.lengths.tolist())) > 1, "a stochastic untrained agent should end episodes at varied times"


def test_success_rate_is_the_fraction_of_goal_returns(agent: RecurrentPPO) -> None:
    result = evaluate_agent(agent, num_episodes=60, deterministic=False, num_envs=6)
    # A success is 4 - 0.1 k with k < STEP_LIMIT, so > 0; a failure is never positive.
    assert result.success_rate == pytest.approx(np.mean(result.returns > 0))
    assert 0 < result.success_rate < 1


@pytest.mark.parametrize(("num_episodes", "num_envs"), [(25, 3), (16, 16)])
def test_oracle_scores_the_optimum_so_episode_starts_follow_next_step_autoreset(
    agent: RecurrentPPO, monkeypatch: pytest.MonkeyPatch, num_episodes: int, num_envs: int
) -> None:
    use_oracle(monkeypatch, agent, num_envs)
    result = evaluate_agent(agent, num_episodes=num_episodes, num_envs=num_envs)
    assert result.mean_return == pytest.approx(4.0)
    assert result.success_rate == 1.0
    assert (result.lengths == LENGTH + 1).all()


def test_same_seed_repeats_a_stochastic_evaluation_and_another_seed_does_not(agent: RecurrentPPO) -> None:
    first = evaluate_agent(agent, num_episodes=20, deterministic=False, seed=3, num_envs=4)
    torch.rand(7)  # whatever the caller did to torch's generator in between
    again = evaluate_agent(agent, num_episodes=20, deterministic=False, seed=3, num_envs=4)
    other = evaluate_agent(agent, num_episodes=20, deterministic=False, seed=4, num_envs=4)
    assert np.array_equal(first.returns, again.returns) and np.array_equal(first.lengths, again.lengths)
    assert not np.array_equal(first.returns, other.returns)


def test_evaluation_leaves_the_callers_torch_generator_as_it_was(agent: RecurrentPPO) -> None:
    before = torch.get_rng_state()
    evaluate_agent(agent, num_episodes=4, deterministic=False, num_envs=2)
    assert torch.equal(torch.get_rng_state(), before)


def test_evaluation_normalizes_observations_with_the_frozen_training_statistics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = tiny_agent(normalize_observations=True)
    training_rms = find_wrapper(agent.env, NormalizeObservation).obs_rms
    training_rms.mean, training_rms.var = np.full(3, 0.5), np.full(3, 0.25)
    seen: list[np.ndarray] = []

    def predict(observation, state=None, episode_start=None, deterministic=False, action_masks=None):
        seen.append(np.array(observation))
        return np.full(len(observation), EAST), state

    monkeypatch.setattr(agent, "predict", predict)
    evaluate_agent(agent, num_episodes=4, num_envs=2)
    # Codings of 0/1 normalized by mean 0.5 and std 0.5 are -1/+1 at every step: the statistics never moved.
    assert np.allclose(np.abs(np.concatenate(seen)), 1.0, atol=1e-6)
    assert np.array_equal(training_rms.mean, np.full(3, 0.5)) and np.array_equal(training_rms.var, np.full(3, 0.25))


# ---- EvaluationResult ---------------------------------------------------------------------------------------------
def synthetic_result(episodes: int) -> EvaluationResult:
    returns = np.random.default_rng(0).normal(2.0, 1.0, size=episodes)
    return EvaluationResult(returns, np.ones(episodes, dtype=int), None)


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_episodes() -> None:
    few, many = synthetic_result(20), synthetic_result(2000)
    for result in (few, many):
        low, high = result.confidence_interval()
        assert low < result.mean_return < high
    few_width = np.subtract(*few.confidence_interval()[::-1])
    many_width = np.subtract(*many.confidence_interval()[::-1])
    assert many_width < few_width / 5  # the width shrinks as 1/sqrt(episodes): 10x here


def test_a_higher_confidence_level_gives_a_wider_interval_and_the_seed_repeats_it() -> None:
    result = synthetic_result(50)
    low_80, high_80 = result.confidence_interval(level=0.8)
    low_99, high_99 = result.confidence_interval(level=0.99)
    assert low_99 < low_80 < high_80 < high_99
    assert result.confidence_interval(seed=5) == result.confidence_interval(seed=5)


def test_to_dict_is_json_with_the_summary_and_every_episode() -> None:
    result = EvaluationResult(np.array([4.0, -0.1, 3.9]), np.array([4, 6, 5]), np.array([True, False, True]))
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["num_episodes"] == 3
    assert summary["mean_return"] == pytest.approx(7.8 / 3)
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert summary["mean_length"] == pytest.approx(5.0)
    assert summary["successes"] == [True, False, True]
    low, high = summary["confidence_interval_95"]
    assert low <= summary["mean_return"] <= high


# ---- loading ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("relative", ["", "checkpoints/latest.pt"])
def test_load_agent_from_a_run_folder_or_a_file_acts_like_the_saved_agent(
    agent: RecurrentPPO, run_dir: Path, relative: str
) -> None:
    loaded = load_agent(run_dir / relative)
    assert isinstance(loaded, RecurrentPPO) and loaded.env_id == TMAZE
    observations = np.eye(4, 3, dtype=np.float32)
    expected, expected_state = agent.predict(observations, deterministic=True)
    actions, state = loaded.predict(observations, deterministic=True)
    assert np.array_equal(actions, expected)
    assert all(np.allclose(a, b) for a, b in zip(state, expected_state))


def test_load_agent_of_a_missing_path_raises_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nowhere.pt"):
        load_agent(tmp_path / "nowhere.pt")


# ---- memory and video ---------------------------------------------------------------------------------------------
def test_memory_trace_holds_every_unit_at_every_step_of_one_episode(agent: RecurrentPPO) -> None:
    trace = record_memory(agent, seed=1, deterministic=False)
    steps = len(trace.rewards)
    assert 1 <= steps <= STEP_LIMIT
    assert trace.observations.shape == (steps, 3)
    assert trace.cell_states.shape == (steps, HIDDEN_SIZE)
    assert np.abs(trace.cell_states).max() > 0
    assert trace.observations[0].tolist() in ([0, 1, 1], [1, 1, 0]), "the first observation is the cue"


def test_record_video_without_moviepy_names_the_extra_to_install(
    agent: RecurrentPPO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "moviepy", None)  # makes `import moviepy` fail
    with pytest.raises(MissingDependencyError, match=r"rl-lstm\[video\]"):
        record_video(agent, tmp_path / "videos")


# ---- command line -------------------------------------------------------------------------------------------------
def test_main_writes_eval_json_into_the_run_folder(run_dir: Path) -> None:
    assert main([str(run_dir), "--episodes", "6", "--num-envs", "2"]) == 0
    report = json.loads((run_dir / "eval.json").read_text())
    assert {"checkpoint", "env_id", "deterministic", "seed", "num_episodes", "mean_return", "std_return",
            "confidence_interval_95", "success_rate", "mean_length", "returns", "lengths"} <= set(report)
    assert report["num_episodes"] == len(report["returns"]) == 6
    assert report["env_id"] == TMAZE and report["deterministic"] is True


def test_main_writes_eval_json_next_to_a_checkpoint_file_or_into_output(run_dir: Path, tmp_path: Path) -> None:
    assert main([str(run_dir / "checkpoints" / "latest.pt"), "--episodes", "2", "--stochastic"]) == 0
    assert json.loads((run_dir / "checkpoints" / "eval.json").read_text())["deterministic"] is False
    assert main([str(run_dir), "--episodes", "2", "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "eval.json").is_file()


def test_main_plot_memory_writes_a_png(run_dir: Path, tmp_path: Path) -> None:
    assert main([str(run_dir), "--episodes", "1", "--plot-memory", "--output", str(tmp_path)]) == 0
    png = (tmp_path / "memory.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_main_video_writes_an_mp4(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    assert main([str(run_dir), "--episodes", "1", "--video", "--output", str(tmp_path)]) == 0
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    assert json.loads((tmp_path / "eval.json").read_text())["videos"] == [str(videos[0])]


def test_main_with_a_missing_path_exits_2_naming_the_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no_such_run"
    assert main([str(missing)]) == 2
    error = capsys.readouterr().err
    assert str(missing) in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1


def test_main_with_a_corrupt_checkpoint_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint = tmp_path / "broken.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    assert main([str(checkpoint)]) == 2
    error = capsys.readouterr().err
    assert "corrupted" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "eval.json").exists()


def test_main_runs_the_policy_on_the_device_asked_for_and_names_the_choices_for_an_unknown_one(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(run_dir), "--episodes", "2", "--device", "cpu", "--output", str(tmp_path)]) == 0
    assert main([str(run_dir), "--episodes", "2", "--device", "gpu", "--output", str(tmp_path / "gpu")]) == 2
    error = capsys.readouterr().err
    assert "'cpu', 'cuda' or 'auto'" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "gpu" / "eval.json").exists()


class Unregistered(gym.Env):
    """An env class gymnasium has no id for: five steps of noise, reward 1 each."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.steps += 1
        return self.observation_space.sample(), 1.0, False, self.steps >= 5, {}


def test_an_agent_trained_on_an_env_object_without_an_id_is_evaluated_on_one_it_is_given() -> None:
    agent = RecurrentPPO(Unregistered(), seed=0, num_envs=1, n_steps=16, seq_len=8, batch_size=16)
    agent.learn(32, progress_bar=False)
    assert agent.env_id == "Unregistered"  # the env's class, not the SyncVectorEnv it is stepped in
    with pytest.raises(ConfigError, match=r"'Unregistered' is no registered env id.*evaluate_agent\(agent, env="):
        evaluate_agent(agent, num_episodes=2)
    result = evaluate_agent(agent, num_episodes=3, env=Unregistered())
    np.testing.assert_array_equal(result.lengths, [5, 5, 5])
    vector_env = gym.vector.SyncVectorEnv([Unregistered] * 2)
    np.testing.assert_array_equal(evaluate_agent(agent, num_episodes=4, env=vector_env).returns, [5.0] * 4)
    vector_env.step(np.zeros(2, dtype=np.int64))  # still open: the user's env is the user's to close
    vector_env.close()
    agent.close()


def test_an_env_object_given_to_evaluate_plays_as_a_fresh_one_of_the_agent_s_id() -> None:
    settings = dict(num_envs=2, n_steps=16, seq_len=8, batch_size=32, vectorization="sync", normalize_observations=True)
    agent = RecurrentPPO("CartPole-v1", seed=0, **settings)
    agent.learn(64, progress_bar=False)
    by_id = evaluate_agent(agent, num_episodes=4, seed=3)
    given = evaluate_agent(agent, num_episodes=4, seed=3, env=gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"))
    np.testing.assert_array_equal(given.returns, by_id.returns)
    np.testing.assert_array_equal(given.lengths, by_id.lengths)
    agent.close()


# ---- videos and memory plots of envs we did not write -------------------------------------------------------------
@pytest.fixture
def cartpole_checkpoint(tmp_path: Path) -> Path:
    agent = RecurrentPPO("CartPole-v1", seed=0, num_envs=2, n_steps=16, seq_len=8, batch_size=32,
                         normalize_observations=True)
    agent.learn(32, progress_bar=False)
    path = tmp_path / "checkpoints" / "latest.pt"
    agent.save(path)
    agent.close()
    return path


def test_the_cli_records_a_video_and_plots_the_memory_of_cartpole_in_a_fresh_process(
    cartpole_checkpoint: Path, tmp_path: Path
) -> None:
    """gymnasium's CartPole draws its frames with pygame (the video extra); the process imports it fresh."""
    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from rl_lstm.cli import main; sys.exit(main())", "evaluate",
         str(cartpole_checkpoint), "--episodes", "2", "--video", "--plot-memory", "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    (video,) = (tmp_path / "out" / "videos").glob("*.mp4")
    assert report["videos"] == [str(video)] and video.stat().st_size > 0
    assert report["num_episodes"] == 2
    assert (tmp_path / "out" / "memory.png").read_bytes().startswith(b"\x89PNG")


def test_a_video_of_an_env_whose_renderer_is_missing_stops_before_the_evaluation_naming_the_package(
    cartpole_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("moviepy")
    monkeypatch.setitem(sys.modules, "pygame", None)  # makes CartPole's `import pygame` fail
    assert main([str(cartpole_checkpoint), "--episodes", "2", "--video", "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "'CartPole-v1' draws its frames with a package that is not installed" in error
    assert "pygame" in error and "rl-lstm[video]" in error and "Traceback" not in error


def test_a_video_of_an_env_that_draws_no_frames_is_a_config_error_and_its_memory_plot_is_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """foreign/Spaces-v0's constructor takes no render_mode: no video, but the memory plot needs none."""
    pytest.importorskip("moviepy")
    agent = RecurrentPPO("foreign_envs:foreign/Spaces-v0", seed=0, num_envs=2, n_steps=8, seq_len=8, batch_size=16)
    agent.save(tmp_path / "agent.pt")
    assert main([str(tmp_path / "agent.pt"), "--episodes", "2", "--video"]) == 2
    assert "cannot be made with render_mode='rgb_array'" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()
    assert main([str(tmp_path / "agent.pt"), "--episodes", "2", "--plot-memory"]) == 0
    assert (tmp_path / "memory.png").read_bytes().startswith(b"\x89PNG")
    agent.close()


def test_an_agent_trained_on_an_env_object_is_recorded_and_plotted_on_one_it_is_given(tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    from gymnasium.envs.classic_control import CartPoleEnv

    agent = RecurrentPPO(CartPoleEnv(), seed=0, num_envs=1, n_steps=16, seq_len=8, batch_size=16)
    agent.learn(16, progress_bar=False)
    for call in (lambda: record_video(agent, tmp_path / "videos"), lambda: plot_memory(agent, tmp_path / "m.png")):
        with pytest.raises(ConfigError, match=r"'CartPoleEnv' is no registered env id.*env=YourEnv\("):
            call()
    with pytest.raises(ConfigError, match=r"renders None, not the 'rgb_array' frames.*render_mode='rgb_array'"):
        record_video(agent, tmp_path / "videos", env=CartPoleEnv())
    env = CartPoleEnv(render_mode="rgb_array")
    (video,) = record_video(agent, tmp_path / "videos", env=env)
    assert video.stat().st_size > 0
    assert plot_memory(agent, tmp_path / "m.png", env=env).read_bytes().startswith(b"\x89PNG")
    env.reset(seed=0)  # still open: the user's env is the user's to close
    assert env.render().shape[-1] == 3
    env.close()
    agent.close()


def test_eval_json_outlives_a_video_that_fails(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("moviepy")

    def full_disk(*_args: object, **_kwargs: object) -> list[Path]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluation, "_record_episodes", full_disk)
    assert main([str(run_dir), "--episodes", "3", "--video", "--output", str(tmp_path)]) == 2
    assert json.loads((tmp_path / "eval.json").read_text())["num_episodes"] == 3
