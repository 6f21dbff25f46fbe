"""rl-lstm tune: an Optuna study over a search space, resumable after a kill, that writes a config train takes."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from rl_lstm.cli import main
from rl_lstm.errors import ConfigError
from rl_lstm.tuning import TuneSettings, load_search_space, tune

# Tiny trials: 4 copies x 16 steps per rollout, 256 env steps, 4 evaluation episodes on a 3-step T-maze.
TINY_SPACE = """
num_envs: {type: categorical, choices: [4]}
n_steps: {type: categorical, choices: [16]}
seq_len: {type: categorical, choices: [8, 16]}
batch_size: {type: categorical, choices: [32, 64]}
hidden_size: {type: categorical, choices: [8]}
n_epochs: {type: int, low: 1, high: 2}
learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
core_kwargs.init: {type: categorical, choices: [default, chrono]}
core_kwargs.forget_bias: {type: float, low: 0.0, high: 3.0, when: {core_kwargs.init: default}}
core_kwargs.t_max: {type: float, low: 4.0, high: 20.0, when: {core_kwargs.init: chrono}}
"""
TUNE_ARGS = ["--env", "rl_lstm/TMaze-v0", "--env-kwargs", "length=3", "--trial-timesteps", "256",
             "--eval-every", "128", "--eval-episodes", "4", "--no-progress"]


def finished(study):
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPACE)
    return path


def test_tiny_study_writes_a_best_config_that_train_takes(tmp_path, space_file):
    runs = tmp_path / "runs"
    assert main(["tune", *TUNE_ARGS, "--n-trials", "3", "--search-space", str(space_file),
                 "--runs-dir", str(runs)]) == 0
    output = runs / "tune" / "rl_lstm_TMaze-v0_ppo"
    study = optuna.load_study(study_name="rl_lstm_TMaze-v0_ppo", storage=f"sqlite:///{runs}/tune/rl_lstm_TMaze-v0_ppo.db")
    assert len(finished(study)) == 3
    for trial in study.trials:  # each trial is a run folder with its config, TensorBoard events and checkpoints
        run_dir = output / f"trial_{trial.number}"
        assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "latest.pt").is_file()
        assert list(run_dir.glob("events.out.tfevents.*"))
    best = yaml.safe_load((output / "best_config.yaml").read_text())
    assert best["agent"] == "ppo" and best["env"] == "rl_lstm/TMaze-v0" and best["env_kwargs"] == {"length": 3}
    assert best["learning_rate"] == study.best_trial.params["learning_rate"]
    assert best["core_kwargs"]["init"] in ("default", "chrono")
    assert "## Best trials" in (output / "tune_report.md").read_text()
    assert (output / "history.png").is_file()

    train_runs = tmp_path / "train_runs"
    assert main(["train", "--config", str(output / "best_config.yaml"), "--timesteps", "64", "--no-progress",
                 "--set", f"runs_dir={train_runs}", "eval_every=0"]) == 0
    (run_dir,) = (train_runs / "rl_lstm_TMaze-v0").iterdir()
    trained = yaml.safe_load((run_dir / "config.yaml").read_text())["hyperparams"]
    assert trained["learning_rate"] == best["learning_rate"] and trained["core_kwargs"] == best["core_kwargs"]


def test_a_killed_study_resumes_without_losing_finished_trials(tmp_path, space_file):
    runs, name = tmp_path / "runs", "killed"
    storage = f"sqlite:///{runs}/tune/rl_lstm_TMaze-v0_ppo.db"
    command = [sys.executable, "-m", "rl_lstm.cli", "tune", *TUNE_ARGS, "--n-trials", "6", "--study", name,
               "--search-space", str(space_file), "--runs-dir", str(runs)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    before = []
    while not before and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if not (runs / "tune" / name).is_dir():  # the first trial's folder: the study exists
            continue
        before = finished(optuna.load_study(study_name=name, storage=storage))
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert before and process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    killed_at = len(finished(optuna.load_study(study_name=name, storage=storage)))
    assert 1 <= killed_at < 6

    assert main(["tune", *TUNE_ARGS, "--n-trials", "6", "--study", name, "--search-space", str(space_file),
                 "--runs-dir", str(runs)]) == 0
    after = finished(optuna.load_study(study_name=name, storage=storage))
    assert len(after) == 6
    kept = {trial.number: (trial.state, trial.value, trial.params) for trial in after}
    for trial in before:
        assert kept[trial.number] == (trial.state, trial.value, trial.params)


def test_an_invalid_combination_is_pruned_with_the_reason(tmp_path):
    # A rollout of 4 copies x 16 steps holds 64 steps: a batch of 128 is refused by the config, so the trial is pruned.
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE.replace("choices: [32, 64]", "choices: [128]"))
    study = tune(TuneSettings(env="rl_lstm/TMaze-v0", env_kwargs={"length": 3}, n_trials=1, trial_timesteps=256,
                              search_space=str(space), runs_dir=str(tmp_path / "runs"), progress_bar=False))
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert "batch_size" in trial.user_attrs["pruned_because"]
    assert "No trial completed" in (tmp_path / "runs" / "tune" / "rl_lstm_TMaze-v0_ppo" / "tune_report.md").read_text()


@pytest.mark.parametrize("text, named", [
    ("learning_rat: {type: float, low: 1.0e-4, high: 1.0e-2}", "learning_rat"),
    ("learning_rate: {type: uniform, low: 1.0e-4, high: 1.0e-2}", "uniform"),
    ("learning_rate: {type: float, lo: 1.0e-4, high: 1.0e-2}", "'lo'"),
    ("core_kwargs.t_max: {type: float, low: 4, high: 9, when: {core_kwargs.init: chrono}}", "core_kwargs.init"),
])
def test_a_bad_search_space_is_a_config_error_naming_the_key(tmp_path, text, named):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named) as error:
        load_search_space("ppo", path)
    if named == "learning_rat":
        assert "learning_rate" in str(error.value)  # the valid keys are listed


@pytest.mark.parametrize("agent", ["ppo", "reinforce", "evolino"])
def test_the_shipped_search_spaces_are_valid(agent):
    assert load_search_space(agent)


def test_parallel_jobs_are_processes_sharing_one_study(tmp_path, space_file):
    runs = tmp_path / "runs"
    # Trials long enough (1,024 steps, ~2 s each) that the first worker cannot finish all six before the spawned
    # one has started (importing torch takes seconds): both must take trials from the shared study.
    assert main(["tune", *TUNE_ARGS, "--trial-timesteps", "1024", "--n-trials", "6", "--n-jobs", "2",
                 "--search-space", str(space_file), "--runs-dir", str(runs)]) == 0
    study = optuna.load_study(study_name="rl_lstm_TMaze-v0_ppo", storage=f"sqlite:///{runs}/tune/rl_lstm_TMaze-v0_ppo.db")
    trials = finished(study)
    assert len(trials) >= 6  # trials still running when the total is reached finish too
    assert len({trial.user_attrs["worker_pid"] for trial in trials}) == 2
