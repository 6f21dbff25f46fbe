"""POPGym's envs (Morad et al., a suite we did not write) through the CLI, and scripts/benchmark.py popgym."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("popgym", reason="the POPGym suite is the suites extra: pip install -e '.[suites]'")

import popgym.envs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from benchmark_popgym import LearningCurve, pair_figures, popgym_env_ids  # noqa: E402

# A few hundred env steps each; Evolino's smallest useful generation (2 cells, 4 networks each, one episode a
# network) instead of its default 40,000-step one.
TRAIN_SETTINGS = {
    "ppo": [],
    "reinforce": [],
    "evolino": ["subpopulation_size=4", "trials_per_chromosome=1", "episodes_per_network=1", "num_cells=2"],
}

# Run in a fresh interpreter, as a user's rl-lstm command is: nothing has imported popgym before the popgym: id does.
DRIVER = """
import sys
from pathlib import Path
from rl_lstm import cli
agent, runs_dir, env_ids, settings = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4:]
for env_id in env_ids:
    folder = f"{runs_dir}/{env_id}"
    assert cli.main(["train", "--agent", agent, "--env", f"popgym:{env_id}", "--timesteps", "300", "--no-progress",
                     "--set", f"runs_dir={folder}", "eval_episodes=2", *settings]) == 0, env_id
    (run_dir,) = Path(folder).glob("*/*")
    assert cli.main(["evaluate", str(run_dir), "--episodes", "2"]) == 0, env_id
"""


def test_popgym_env_ids_are_its_14_envs_of_each_difficulty():
    for difficulty in ("Easy", "Medium", "Hard"):
        env_ids = popgym_env_ids(difficulty)
        assert len(env_ids) == 14 and all(env_id.endswith(f"{difficulty}-v0") for env_id in env_ids)
    assert sorted(popgym_env_ids("Easy") + popgym_env_ids("Medium") + popgym_env_ids("Hard")) == sorted(
        entry["id"] for entry in popgym.envs.ALL.values())


@pytest.mark.parametrize("difficulty", ["Easy", "Medium", "Hard"])
@pytest.mark.parametrize("agent", ["ppo", "reinforce", "evolino"])
def test_every_popgym_env_trains_and_evaluates_through_the_cli(agent, difficulty, tmp_path):
    env_ids = popgym_env_ids(difficulty)
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, agent, str(tmp_path), ",".join(env_ids), *TRAIN_SETTINGS[agent]],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for env_id in env_ids:
        (run_dir,) = (tmp_path / env_id).glob("*/*")
        assert (run_dir / "checkpoints" / "latest.pt").is_file()
        report = json.loads((run_dir / "eval.json").read_text())
        assert report["env_id"] == f"popgym:{env_id}" and report["num_episodes"] == 2
        assert len(report["returns"]) == 2 and all(length > 0 for length in report["lengths"])


def test_mmer_is_the_curves_maximum_within_a_budget_of_steps_or_seconds():
    curve = LearningCurve(steps=[100, 200, 300, 400], seconds=[1.0, 2.0, 3.0, 4.0], returns=[-0.5, 0.2, 0.1, 0.6])
    assert curve.mmer() == 0.6
    assert curve.mmer(max_steps=300) == 0.2
    assert curve.mmer(max_seconds=1.5) == -0.5
    assert curve.mmer(max_steps=50) is None
    assert curve.first_reaching(0.15) == (200, 2.0)
    assert curve.first_reaching(0.7) is None


def test_pair_figures_compare_over_the_range_both_runs_reached():
    def record(steps, seconds, returns):
        return {"curve": {"steps": steps, "seconds": seconds, "returns": returns}, "seconds": seconds[-1],
                "mmer": max(returns)}

    ours = record([1000, 2000, 3000, 4000], [1.0, 2.0, 3.0, 4.0], [-0.5, 0.0, 0.5, 0.9])
    sb3 = record([1000, 2000], [10.0, 20.0], [-0.4, 0.1])
    figures = pair_figures(ours, sb3)
    assert figures.equal_steps == 2000 and figures.equal_seconds == 4.0
    assert (figures.ours_at_steps, figures.sb3_at_steps) == (0.0, 0.1)
    assert (figures.ours_at_seconds, figures.sb3_at_seconds) == (0.9, None)  # sb3-contrib had no point by 4 s
    assert (figures.ours_seconds_to_sb3, figures.sb3_seconds_to_sb3) == (3.0, 20.0)
    assert figures.sb3_learned  # from -0.4 to 0.1
    assert not pair_figures(ours, record([1000, 2000], [10.0, 20.0], [-0.4, -0.35])).sb3_learned


def test_the_popgym_benchmark_runs_both_libraries_and_writes_records_that_say_how_to_rerun_them(tmp_path):
    records_file, figures = tmp_path / "popgym.json", tmp_path / "img"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "popgym", "--tiny", "--no-write", "--seeds", "0",
         "--agents", "ppo", "evolino",
         "--records", str(records_file), "--figures", str(figures), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "MMER at equal env steps" in completed.stdout and "IQM" in completed.stdout
    content = json.loads(records_file.read_text())
    assert content["command"].startswith("python scripts/benchmark.py popgym --tiny")
    records = content["records"]
    assert sorted((record["library"], record["agent"], record["env"]) for record in records) == sorted(
        (library, agent, f"popgym-{env}-v0") for library, agent in (("rl_lstm", "ppo"), ("rl_lstm", "evolino"),
                                                                    ("sb3-contrib", "ppo"))
        for env in ("RepeatPreviousEasy", "CountRecallEasy"))
    for record in records:
        assert len(record["commit"]) == 40 and isinstance(record["dirty"], bool)
        assert record["packages"]["popgym"] and record["packages"]["sb3-contrib"] and record["packages"]["torch"]
        assert record["machine"]["torch_threads"] == 1 and record["machine"]["cpu"]
        assert record["seed"] == 0 and record["command"] and record["config"]
        assert record["protocol"]["final_episodes"] == 5
        assert record["mmer"] == max(record["curve"]["returns"])
        assert set(record["final"]) == {"greedy", "sampled"}
    ours = [record for record in records if record["library"] == "rl_lstm"]
    assert all(record["config"]["env"].startswith("popgym:popgym-") for record in ours)
    # Evolino's tiny run is one default generation: 20 networks x 5 trials.
    assert {record["network_evaluations"] for record in ours if record["agent"] == "evolino"} == {100}
    sb3 = [record for record in records if record["library"] == "sb3-contrib"]
    assert all(record["config"]["policy"] == "MlpLstmPolicy" for record in sb3)
    assert sorted(path.name for path in figures.iterdir()) == ["CountRecallEasy.png", "RepeatPreviousEasy.png"]
