"""Results across seeds and tasks: curves with bootstrap bands, rliable's aggregates with stratified bootstrap CIs,
score normalization, ``rl-lstm plot`` / ``compare``, and the hparams a training run logs for TensorBoard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from torch.utils.tensorboard import SummaryWriter

from envs.oracle import make_oracle
from rl_lstm.cli import main
from rl_lstm.errors import ConfigError
from rl_lstm.logger import flatten_hparams
from rl_lstm.results import (
    AGGREGATES,
    ScoreRange,
    compare_runs,
    iqm,
    learning_curves,
    mean_score,
    median_score,
    optimality_gap,
    parse_score_ranges,
    score_range,
    stratified_bootstrap,
)

TMAZE = "rl_lstm/TMaze-v0"


def _write_run(
    root: Path,
    name: str,
    env: str = TMAZE,
    agent: str = "ppo",
    seed: int = 0,
    hyperparams: dict[str, Any] | None = None,
    curve: dict[int, float] | None = None,
    eval_return: float | None = None,
    eval_beside_checkpoints: bool = False,
) -> Path:
    """A run folder as rl-lstm train writes it: config.yaml, TensorBoard events of eval/mean_reward, eval.json."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = {"agent": agent, "env": env, "timesteps": 1000, "seed": seed, "runs_dir": str(root),
              "hyperparams": {"env_kwargs": {}, "learning_rate": 0.001, **(hyperparams or {})}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if curve is not None:
        writer = SummaryWriter(log_dir=str(run_dir))
        for step, value in curve.items():
            writer.add_scalar("eval/mean_reward", value, step)
        writer.close()
    if eval_return is not None:
        eval_dir = run_dir / "checkpoints" if eval_beside_checkpoints else run_dir
        eval_dir.mkdir(exist_ok=True)
        report = {"agent": agent, "env_id": env, "env_kwargs": config["hyperparams"]["env_kwargs"],
                  "mean_return": eval_return}
        (eval_dir / "eval.json").write_text(json.dumps(report))
    return run_dir


# ---- curves ----------------------------------------------------------------------------------------------------
def test_curve_is_the_mean_over_seeds_with_a_band_around_it(tmp_path: Path) -> None:
    seeds = {0: [0.0, 1.0, 2.0], 1: [1.0, 2.0, 4.0], 2: [2.0, 6.0, 3.0]}
    for seed, values in seeds.items():
        _write_run(tmp_path, f"ppo_{seed}", seed=seed, curve=dict(zip([100, 200, 300], values)))
    (curve,) = learning_curves([tmp_path])
    assert curve.steps.tolist() == [100, 200, 300]
    np.testing.assert_allclose(curve.mean, np.mean(list(seeds.values()), axis=0))
    assert np.all(curve.low <= curve.mean) and np.all(curve.mean <= curve.high)
    assert np.all(curve.high - curve.low > 0)
    assert len(curve.runs) == 3


def test_band_of_identical_seeds_has_zero_width(tmp_path: Path) -> None:
    for seed in range(3):
        _write_run(tmp_path, f"ppo_{seed}", seed=seed, curve={100: 1.5, 200: 2.5})
    (curve,) = learning_curves([tmp_path])
    np.testing.assert_allclose(curve.low, curve.mean)
    np.testing.assert_allclose(curve.high, curve.mean)


def test_seeds_logged_at_different_steps_are_interpolated_on_the_steps_all_of_them_cover(tmp_path: Path) -> None:
    _write_run(tmp_path, "ppo_0", seed=0, curve={0: 0.0, 10: 1.0, 20: 2.0, 30: 3.0})
    _write_run(tmp_path, "ppo_1", seed=1, curve={5: 0.0, 15: 0.0, 25: 0.0})
    (curve,) = learning_curves([tmp_path])
    assert curve.steps.tolist() == [5, 10, 15, 20, 25]
    np.testing.assert_allclose(curve.values[0], [0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(curve.mean, [0.25, 0.5, 0.75, 1.0, 1.25])


def test_runs_are_grouped_by_task_agent_and_the_config_values_that_differ(tmp_path: Path) -> None:
    curve = {100: 1.0}
    _write_run(tmp_path, "a0", seed=0, curve=curve)
    _write_run(tmp_path, "a1", seed=1, curve=curve)
    _write_run(tmp_path, "b0", seed=0, curve=curve, hyperparams={"learning_rate": 0.0003})
    _write_run(tmp_path, "c0", seed=0, curve=curve, agent="reinforce")
    _write_run(tmp_path, "d0", seed=0, curve=curve, hyperparams={"env_kwargs": {"length": 5}})
    _write_run(tmp_path, "d1", seed=1, curve=curve, hyperparams={"env_kwargs": {"length": 5}})
    _write_run(tmp_path, "e0", seed=0, curve=curve, env="CartPole-v1")
    # A run named twice, by itself and by the folder above it, counts once.
    groups = {(curve.task, curve.label): sorted(path.name for path in curve.runs)
              for curve in learning_curves([tmp_path, tmp_path / "a0"])}
    assert groups == {
        (TMAZE, "ppo learning_rate=0.001"): ["a0", "a1"],
        (TMAZE, "ppo learning_rate=0.0003"): ["b0"],
        (TMAZE, "reinforce"): ["c0"],
        (f"{TMAZE} length=5", "ppo"): ["d0", "d1"],
        ("CartPole-v1", "ppo"): ["e0"],
    }


def test_a_long_config_difference_is_labelled_by_a_short_hash(tmp_path: Path) -> None:
    long_values = {f"key_{index}": index for index in range(10)}
    _write_run(tmp_path, "a", curve={100: 1.0})
    _write_run(tmp_path, "b", curve={100: 1.0}, hyperparams={"core_kwargs": long_values})
    labels = sorted(curve.label for curve in learning_curves([tmp_path]))
    assert all(label.startswith("ppo config ") and len(label) == len("ppo config ") + 8 for label in labels)
    assert labels[0] != labels[1]


def test_a_missing_tag_is_an_error_naming_the_tags_there(tmp_path: Path) -> None:
    _write_run(tmp_path, "a", curve={100: 1.0})
    with pytest.raises(ConfigError, match="no scalar 'rollout/ep_rew_mean'.*eval/mean_reward"):
        learning_curves([tmp_path], tag="rollout/ep_rew_mean")


def test_a_folder_without_runs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run folder"):
        learning_curves([tmp_path])


# ---- aggregates ------------------------------------------------------------------------------------------------
TASK_SCORES = [np.array([0.1, 0.5, 0.9, 1.2]), np.array([0.0, 0.4, 0.6, 0.8]), np.array([0.2, 0.2, 0.2, 0.2])]


def _point(statistic: Any, scores: list[np.ndarray]) -> float:
    return float(statistic([task[None] for task in scores])[0])


def test_aggregates_equal_hand_computed_values() -> None:
    # Pooled and sorted: 0 .1 .2 .2 .2 .2 | .4 .5 .6 .8 .9 1.2; IQM drops 3 at each end: (.2+.2+.2+.4+.5+.6) / 6.
    assert _point(iqm, TASK_SCORES) == pytest.approx(0.35)
    # Task means: 0.675, 0.45, 0.2.
    assert _point(mean_score, TASK_SCORES) == pytest.approx((0.675 + 0.45 + 0.2) / 3)
    assert _point(median_score, TASK_SCORES) == pytest.approx(0.45)
    # max(0, 1 - score): .9 .5 .1 0 | 1 .6 .4 .2 | .8 .8 .8 .8, summed 6.9 over 12 runs.
    assert _point(optimality_gap, TASK_SCORES) == pytest.approx(6.9 / 12)


def test_intervals_contain_the_estimate_and_repeat_under_a_seed() -> None:
    for statistic in AGGREGATES.values():
        estimate, low, high = stratified_bootstrap(TASK_SCORES, statistic, resamples=2000, seed=3)
        assert low <= estimate <= high and low < high
        assert stratified_bootstrap(TASK_SCORES, statistic, resamples=2000, seed=3) == (estimate, low, high)
    assert stratified_bootstrap(TASK_SCORES, iqm, 2000, seed=4) != stratified_bootstrap(TASK_SCORES, iqm, 2000, seed=3)


def test_bootstrap_resamples_runs_within_each_task() -> None:
    # Every task's runs agree, so a stratified resample always holds the same scores; pooling the runs across tasks
    # before resampling would draw 0s and 1s in varying numbers.
    scores = [np.zeros(5), np.ones(5)]
    assert stratified_bootstrap(scores, mean_score, resamples=500) == (0.5, 0.5, 0.5)
    assert stratified_bootstrap(scores, iqm, resamples=500) == (0.5, 0.5, 0.5)


def test_a_built_in_task_is_normalized_by_its_oracles_optimum(tmp_path: Path) -> None:
    optimum = make_oracle(TMAZE, num_envs=1).expected_return
    for seed, value in enumerate([optimum / 2, optimum]):
        _write_run(tmp_path, f"ppo_{seed}", seed=seed, eval_return=value)
    comparison = compare_runs([tmp_path], resamples=200)
    (result,) = comparison.tasks
    np.testing.assert_allclose(result.scores, [0.5, 1.0])
    assert comparison.aggregates["ppo"]["mean"][0] == pytest.approx(0.75)
    assert comparison.aggregates["ppo"]["optimality gap"][0] == pytest.approx(0.25)


def test_a_task_with_a_negative_optimum_is_normalized_from_a_random_policys_return() -> None:
    span = score_range("rl_lstm/PendulumPositionOnly-v0", {})
    assert span.low_source == "random policy" and span.low < span.optimum < 0
    assert span.normalize(span.low) == 0 and span.normalize(span.optimum) == 1


def test_a_foreign_env_is_reported_raw_and_left_out_of_the_aggregates(tmp_path: Path) -> None:
    _write_run(tmp_path, "tmaze", eval_return=4.0)
    _write_run(tmp_path, "cartpole", env="CartPole-v1", eval_return=123.0)
    comparison = compare_runs([tmp_path], resamples=200)
    foreign = next(result for result in comparison.tasks if result.task == "CartPole-v1")
    assert foreign.scores is None and foreign.returns.tolist() == [123.0]
    assert comparison.aggregates["ppo"]["IQM"] == (1.0, 1.0, 1.0)
    assert any("CartPole-v1: no known optimum" in note for note in comparison.notes)
    assert comparison.to_dict()["tasks"][0]["runs"][0]["score"] is None


def test_a_foreign_env_is_normalized_by_a_score_range_given_for_it(tmp_path: Path) -> None:
    _write_run(tmp_path, "tmaze", eval_return=4.0)
    _write_run(tmp_path, "cartpole", env="CartPole-v1", eval_return=250.0)
    _write_run(tmp_path, "spaces", env="foreign_envs:foreign/Spaces-v0", eval_return=1.0)
    ranges = parse_score_ranges(["CartPole-v1=0:500", "foreign/Spaces-v0=-1:3"])  # the second without its module
    comparison = compare_runs([tmp_path], resamples=200, score_ranges=ranges)
    scores = {result.task: result.scores.tolist() for result in comparison.tasks}
    assert scores == {"CartPole-v1": [0.5], "foreign_envs:foreign/Spaces-v0": [0.5], TMAZE: [1.0]}
    assert comparison.aggregates["ppo"]["mean"][0] == pytest.approx(2 / 3)
    assert not any("no known optimum" in note for note in comparison.notes)
    cartpole = next(task for task in comparison.to_dict()["tasks"] if task["task"] == "CartPole-v1")
    assert (cartpole["low"], cartpole["low_source"], cartpole["optimum"], cartpole["optimum_source"]) == (
        0.0, "given", 500.0, "given")


def test_a_score_range_from_a_random_policy_and_one_over_a_built_in_task(tmp_path: Path) -> None:
    _write_run(tmp_path, "cartpole", env="CartPole-v1", eval_return=500.0)
    _write_run(tmp_path, "tmaze", eval_return=2.0)
    ranges = parse_score_ranges(["CartPole-v1=random:500", f"{TMAZE}=0:8"])
    comparison = compare_runs([tmp_path], resamples=200, score_ranges=ranges)
    cartpole, tmaze = (next(r for r in comparison.tasks if r.task == task) for task in ("CartPole-v1", TMAZE))
    # CartPole's random policy lasts about 22 steps; the same 100 seeded episodes on every machine.
    assert cartpole.score_range.low_source == "random policy" and 10 < cartpole.score_range.low < 40
    assert cartpole.scores.tolist() == [1.0]
    assert tmaze.score_range == ScoreRange(0.0, 8.0, "given", "given") and tmaze.scores.tolist() == [0.25]


@pytest.mark.parametrize("entry", ["CartPole-v1", "CartPole-v1=0", "CartPole-v1=a:500", "=0:500", "CartPole-v1=0:inf",
                                   "CartPole-v1=500:500"])
def test_a_malformed_score_range_is_an_error_showing_the_form(entry: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"--score-range {entry!r}")):
        parse_score_ranges([entry])


def test_a_score_range_for_an_env_no_run_trained_on_is_an_error_naming_the_runs_envs(tmp_path: Path) -> None:
    _write_run(tmp_path, "tmaze", eval_return=4.0)
    with pytest.raises(ConfigError, match=rf"names CartPole-v2, which no run trained on; the runs' envs: {TMAZE}"):
        compare_runs([tmp_path], score_ranges=parse_score_ranges(["CartPole-v2=0:500"]))


def test_compare_json_names_the_config_values_that_set_each_group_apart(tmp_path: Path) -> None:
    _write_run(tmp_path, "fast", eval_return=4.0)
    _write_run(tmp_path, "slow", eval_return=2.0, hyperparams={"learning_rate": 0.0003})
    report = compare_runs([tmp_path], resamples=200).to_dict()
    assert {task["algorithm"]: task["config"] for task in report["tasks"]} == {
        "ppo learning_rate=0.0003": {"learning_rate": 0.0003}, "ppo learning_rate=0.001": {"learning_rate": 0.001},
    }
    assert report["aggregates"]["ppo learning_rate=0.0003"]["IQM"] == {"estimate": 0.5, "ci_95": [0.5, 0.5]}


def test_eval_json_beside_the_checkpoints_is_read(tmp_path: Path) -> None:
    _write_run(tmp_path, "ppo_0", eval_return=2.0, eval_beside_checkpoints=True)
    (result,) = compare_runs([tmp_path], resamples=200).tasks
    assert result.eval_files == [tmp_path / "ppo_0" / "checkpoints" / "eval.json"]


def test_a_run_without_eval_json_is_an_error_naming_the_command_that_writes_it(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path, "ppo_0")
    with pytest.raises(ConfigError, match=f"rl-lstm evaluate {run_dir}"):
        compare_runs([run_dir])


# ---- commands and hparams --------------------------------------------------------------------------------------
def test_plot_command_writes_a_png(tmp_path: Path) -> None:
    for seed in range(2):
        _write_run(tmp_path / "runs", f"ppo_{seed}", seed=seed, curve={100: seed, 200: seed + 1.0})
    output = tmp_path / "out" / "curves.png"
    assert main(["plot", str(tmp_path / "runs"), "--tag", "eval/mean_reward", "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_command_writes_json_and_an_interval_plot(tmp_path: Path) -> None:
    for seed in range(3):
        _write_run(tmp_path / "runs", f"ppo_{seed}", seed=seed, eval_return=float(seed + 1))
    assert main(["compare", str(tmp_path / "runs"), "--output", str(tmp_path / "out"), "--resamples", "500"]) == 0
    report = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert report["aggregates"]["ppo"]["mean"]["estimate"] == pytest.approx(2 / 4)
    assert report["bootstrap"]["resamples"] == 500
    assert (tmp_path / "out" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_command_takes_score_ranges_and_reports_a_bad_one_in_one_line(tmp_path: Path, capsys) -> None:
    _write_run(tmp_path / "runs", "cartpole", env="CartPole-v1", eval_return=125.0)
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "runs"), "--output", str(out), "--resamples", "200",
                 "--score-range", "CartPole-v1=0:500"]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["tasks"][0]["mean_score"] == 0.25 and report["aggregates"]["ppo"]["IQM"]["estimate"] == 0.25
    assert main(["compare", str(tmp_path / "runs"), "--score-range", "CartPole-v1:500"]) == 2
    assert "ENV=LOW:OPTIMUM" in capsys.readouterr().err


def test_compare_command_reports_a_missing_eval_json_as_a_user_error(tmp_path: Path, capsys) -> None:
    _write_run(tmp_path, "ppo_0")
    assert main(["compare", str(tmp_path)]) == 2
    assert "rl-lstm evaluate" in capsys.readouterr().err


def test_hparams_are_flat_scalars_and_strings() -> None:
    flat = flatten_hparams({"core_kwargs": {"forget_bias": 3.0, "init": {"t_max": 5}}, "net_arch_pi": [64, 64],
                            "env_kwargs": {}, "target_kl": None, "agent": "ppo", "shared_core": True})
    assert flat == {"core_kwargs.forget_bias": 3.0, "core_kwargs.init.t_max": 5, "net_arch_pi": "[64, 64]",
                    "env_kwargs": "{}", "agent": "ppo", "shared_core": True}


def test_a_training_run_logs_its_config_as_hparams_in_its_own_event_file(tmp_path: Path) -> None:
    code = main(["train", "--env", TMAZE, "--env-kwargs", "length=3", "--timesteps", "256", "--seed", "5",
                 "--no-progress", "--set", f"runs_dir={tmp_path}", "num_envs=4", "n_steps=32", "seq_len=8",
                 "batch_size=64", "n_epochs=1", "eval_episodes=4", "eval_every=128", "checkpoint_every=256",
                 "core_kwargs={forget_bias: 2.0}"])
    assert code == 0
    (run_dir,) = (tmp_path / "rl_lstm_TMaze-v0").iterdir()
    assert [path.name for path in run_dir.iterdir() if path.is_dir()] == ["checkpoints"], "no sub-folder run"
    events = EventAccumulator(str(run_dir))
    events.Reload()
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)[hparams_metadata.SESSION_START_INFO_TAG]
    hparams = hparams_metadata.parse_session_start_info_plugin_data(content).hparams
    assert hparams["agent"].string_value == "ppo"
    assert hparams["seed"].number_value == 5
    assert hparams["env_kwargs.length"].number_value == 3
    assert hparams["core_kwargs.forget_bias"].number_value == 2.0
    assert hparams["net_arch_pi"].string_value == "[64]"
    # The HPARAMS tab's metric columns are the run's own scalars: the last eval/mean_reward is the final evaluation.
    assert [event.step for event in events.Scalars("eval/mean_reward")][-1] == 256
