"""The ``rl-lstm`` command end to end: a run folder, TensorBoard, checkpoints, resume, evaluate, errors."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rl_lstm.cli import main

TINY = [
    "num_envs=4",
    "n_steps=32",
    "seq_len=8",
    "batch_size=64",
    "n_epochs=2",
    "eval_episodes=5",
    "eval_every=256",
    "checkpoint_every=256",
]


def _train(tmp_path: Path, *extra: str) -> Path:
    code = main(
        [
            "train",
            "--env",
            "rl_lstm/TMaze-v0",
            "--env-kwargs",
            "length=3",
            "--timesteps",
            "512",
            "--seed",
            "7",
            "--no-progress",
            "--set",
            f"runs_dir={tmp_path}",
            *TINY,
            *extra,
        ]
    )
    assert code == 0
    (run_dir,) = (tmp_path / "rl_lstm_TMaze-v0").iterdir()
    return run_dir


def _scalar_steps(run_dir: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def test_train_writes_a_complete_run_folder(tmp_path: Path) -> None:
    run_dir = _train(tmp_path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["seed"] == 7 and config["agent"] == "ppo"
    assert config["hyperparams"]["env_kwargs"] == {"length": 3}
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert _scalar_steps(run_dir, "time/fps")[-1] == 512
    events = EventAccumulator(str(run_dir))
    events.Reload()
    for tag in (
        "rollout/ep_rew_mean",
        "train/policy_gradient_loss",
        "train/value_loss",
        "train/entropy_loss",
        "train/approx_kl",
        "train/clip_fraction",
        "train/explained_variance",
        "train/learning_rate",
        "train/grad_norm",
        "train/cell_state_abs_mean",
        "eval/mean_reward",
        "eval/success_rate",
    ):
        assert tag in events.Tags()["scalars"], tag


def test_resume_continues_the_step_count_and_the_tensorboard_curve(tmp_path: Path) -> None:
    run_dir = _train(tmp_path)
    assert main(["train", "--resume", str(run_dir), "--timesteps", "1024", "--no-progress"]) == 0
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert checkpoint["num_timesteps"] == 1024
    steps = _scalar_steps(run_dir, "time/fps")
    assert steps == sorted(set(steps)), "no step is written twice"
    assert steps[-1] == 1024 and 512 in steps


def test_evaluate_reads_a_run_folder_and_writes_eval_json(tmp_path: Path) -> None:
    run_dir = _train(tmp_path)
    assert main(["evaluate", str(run_dir), "--episodes", "10"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["num_episodes"] == len(result["returns"]) == 10
    assert result["confidence_interval_95"][0] <= result["mean_return"] <= result["confidence_interval_95"][1]


def test_unknown_config_key_is_an_error_with_close_matches(tmp_path: Path, capsys) -> None:
    code = main(["train", "--timesteps", "64", "--set", f"runs_dir={tmp_path}", "learning_rat=0.1"])
    assert code == 2
    assert "Did you mean 'learning_rate'" in capsys.readouterr().err


def test_unknown_env_is_an_error_with_close_matches(capsys) -> None:
    assert main(["train", "--env", "rl_lstm/TMaz-v0"]) == 2
    assert "rl_lstm/TMaze-v0" in capsys.readouterr().err


def test_unknown_agent_is_an_error_listing_agents(capsys) -> None:
    assert main(["train", "--agent", "ppo2"]) == 2
    assert "Did you mean ppo" in capsys.readouterr().err


def test_resume_of_a_folder_without_a_run_says_so(tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_an_env_the_agent_refuses_stops_the_command_and_leaves_no_run_folder(tmp_path: Path, capsys) -> None:
    # MissionGrid's Dict observation holds a Text mission, which no encoder takes: the agent refuses it.
    code = main(["train", "--env", "wrapper_envs:MissionGrid-v0", "--timesteps", "64", "--no-progress",
                 "--set", f"runs_dir={tmp_path}"])
    assert code == 2
    assert "Unsupported observation space Text(" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
