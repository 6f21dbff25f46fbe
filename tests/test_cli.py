"""The ``rl-lstm`` command end to end: a run folder, TensorBoard, checkpoints, resume, evaluate, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rl_lstm.cli import final_evaluation_text, main
from rl_lstm.logger import TrainingLogger

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


def test_train_ends_with_a_final_evaluation_of_its_latest_checkpoint_and_names_the_best(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _train(tmp_path)
    final = json.loads((run_dir / "final_eval.json").read_text())
    assert final["checkpoint"] == "checkpoints/latest.pt" and final["num_timesteps"] == 512
    assert final["num_episodes"] == 5 and _scalar_steps(run_dir, "eval/mean_reward")[-1] == 512
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert final["best"]["num_timesteps"] == best["num_timesteps"] in _scalar_steps(run_dir, "eval/mean_reward")
    assert final["best"]["mean_return"] >= final["mean_return"]
    printed = capsys.readouterr().out
    assert (f"Final evaluation of checkpoints/latest.pt at 512 env steps (5 deterministic episodes): success "
            f"{final['success_rate']:.1%}, mean return {final['mean_return']:.3f}") in printed
    assert f"Best checkpoint: checkpoints/best.pt, from {best['num_timesteps']:,} env steps" in printed


def test_a_best_checkpoint_of_unknown_origin_is_named_without_its_env_step() -> None:
    # A run resumed from a checkpoint written before best_timesteps was recorded.
    report = {"checkpoint": "checkpoints/latest.pt", "num_timesteps": 2048, "num_episodes": 5, "success_rate": None,
              "mean_return": 1.5, "best": {"checkpoint": "checkpoints/best.pt", "num_timesteps": None,
                                           "mean_return": 2.0}}
    assert final_evaluation_text(report).splitlines() == [
        "Final evaluation of checkpoints/latest.pt at 2,048 env steps (5 deterministic episodes): mean return 1.500",
        "Best checkpoint: checkpoints/best.pt (mean return 2.000)",
    ]


def test_the_last_update_is_evaluated_even_when_no_evaluation_falls_due(tmp_path: Path) -> None:
    run_dir = _train(tmp_path, "eval_every=100000")
    assert _scalar_steps(run_dir, "eval/mean_reward") == [512]
    assert json.loads((run_dir / "final_eval.json").read_text())["best"]["num_timesteps"] == 512


def test_a_run_without_evaluations_says_so_and_writes_no_final_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _train(tmp_path, "eval_every=0")
    assert not (run_dir / "final_eval.json").exists() and not (run_dir / "checkpoints" / "best.pt").exists()
    assert "No final evaluation: eval_every is 0" in capsys.readouterr().out


def test_a_resumed_run_remembers_which_evaluation_its_best_checkpoint_holds(tmp_path: Path) -> None:
    run_dir = _train(tmp_path)
    before = json.loads((run_dir / "final_eval.json").read_text())["best"]
    assert main(["train", "--resume", str(run_dir), "--timesteps", "1024", "--no-progress"]) == 0
    after = json.loads((run_dir / "final_eval.json").read_text())
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert after["num_timesteps"] == 1024 and after["best"]["num_timesteps"] == best["num_timesteps"]
    assert after["best"]["mean_return"] >= before["mean_return"]


def test_evaluate_picks_the_best_or_the_latest_checkpoint_of_a_run_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _train(tmp_path, "eval_every=100000")  # best.pt is then the last update's, and so is latest.pt
    assert main(["train", "--resume", str(run_dir), "--timesteps", "1024", "--no-progress",
                 "--set", "eval_every=0"]) == 0  # latest.pt moves on to 1,024 env steps; best.pt stays at 512
    assert not (run_dir / "final_eval.json").exists(), "the evaluation of 512 steps no longer describes latest.pt"
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--episodes", "4", "--checkpoint", "best"]) == 0
    assert f"Evaluated {run_dir / 'checkpoints' / 'best.pt'} (512 env steps)" in capsys.readouterr().out
    best = json.loads((run_dir / "eval_best.json").read_text())
    assert best["checkpoint"] == str(run_dir / "checkpoints" / "best.pt") and best["num_timesteps"] == 512
    assert main(["evaluate", str(run_dir), "--episodes", "4"]) == 0
    assert f"Evaluated {run_dir / 'checkpoints' / 'latest.pt'} (1,024 env steps)" in capsys.readouterr().out
    assert json.loads((run_dir / "eval.json").read_text())["num_timesteps"] == 1024


def test_evaluate_names_the_fix_for_a_checkpoint_name_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _train(tmp_path, "eval_every=0")
    assert main(["evaluate", str(run_dir), "--checkpoint", "best"]) == 2
    assert "no checkpoints/best.pt (a run writes best.pt at its first evaluation" in capsys.readouterr().err
    assert main(["evaluate", str(run_dir / "checkpoints" / "latest.pt"), "--checkpoint", "latest"]) == 2
    assert "is a checkpoint file already" in capsys.readouterr().err


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


def test_a_writer_made_in_the_same_second_as_a_folder_s_events_sorts_after_them(tmp_path: Path) -> None:
    # Event files sort by name: the second they were made, then the process's writer number as text (10 before 9).
    earlier = tmp_path / f"events.out.tfevents.{int(time.time())}.host.1.9"
    earlier.write_bytes(b"")
    logger = TrainingLogger(tmp_path, total_timesteps=10, progress_bar=False, start_step=5)
    logger.close()
    (made,) = [path for path in tmp_path.glob("events.out.tfevents.*") if path != earlier]
    assert int(made.name.split(".")[3]) > int(earlier.name.split(".")[3])
    assert sorted(path.name for path in tmp_path.iterdir())[-1] == made.name
