"""Curricula over env kwargs (rl_lstm/curriculum.py): parsing, every trainer moving through its stages on our env and
on CartPole-v1 (in a fresh process), checkpoints that resume a stage, and the errors a user meets."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from agents import agent_class
from rl_lstm.config import preset
from rl_lstm.curriculum import Criterion, Curriculum
from rl_lstm.errors import ConfigError
from rl_lstm.solving import EvaluateUntilSolved, Task

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, dict[str, Any]] = {
    "ppo": dict(num_envs=2, n_steps=8, seq_len=4, batch_size=8, n_epochs=1, hidden_size=8, net_arch_pi=[8],
                net_arch_vf=[8]),
    "reinforce": dict(num_envs=2, hidden_size=8, net_arch_pi=[8], net_arch_vf=[8]),
    "evolino": dict(num_envs=4, num_cells=2, subpopulation_size=4, trials_per_chromosome=1, episodes_per_network=1),
}
ALWAYS = "return>=-1e9"  # met by any evaluation: the stage ends at its first evaluation
NEVER = "return>=1e9"  # met by none


def _stage_length(agent: Any) -> int:
    """The corridor length of the env the agent trains on now."""
    return agent.env.unwrapped.task.length


# ---- parsing ----------------------------------------------------------------------------------------------------
def test_stages_zip_kwargs_and_one_criterion_serves_every_stage() -> None:
    curriculum = Curriculum.from_config({"stages": {"length": [5, 10], "other": [1, 2]}, "until": "success>=0.9"},
                                        {"length": 20})
    assert curriculum.stages == ({"length": 5, "other": 1}, {"length": 10, "other": 2})
    assert curriculum.until == (Criterion("success", 0.9),) * 2
    assert (curriculum.eval_every, curriculum.eval_episodes) == (50_000, 100)


def test_a_stage_equal_to_the_task_ends_the_curriculum_there() -> None:
    """What min(length, 100) rules give at short lengths: no stage at all, not a stage that repeats the task."""
    assert Curriculum.from_config({"stages": {"length": [100, 100]}}, {"length": 100}).stages == ()
    assert Curriculum.from_config({"stages": {"length": [10, 100]}}, {"length": 100}).stages == ({"length": 10},)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"stages": {"length": [10]}, "untill": "success>=1"}, "no setting 'untill'"),
        ({"stages": {"length": 10}}, "lists of values"),
        ({"stages": {}}, "lists of values"),
        ({"stages": {"length": [10, 20], "other": [1]}}, "as long as each other"),
        ({"stages": {"length": [10]}, "until": "success>0.9"}, "'success>=X' or 'return>=X'"),
        ({"stages": {"length": [10]}, "until": "reward>=1"}, "'success>=X' or 'return>=X'"),
        ({"stages": {"length": [10, 20]}, "until": ["success>=1"] * 3}, "3 criteria for 2 stages"),
        ({"stages": {"length": [10]}, "eval_every": 0}, "eval_every must be a positive whole number"),
        ({"stages": {"length": [10]}, "restart_after": 0.5}, "restart_after must be a positive whole number"),
        ({"stages": {"length": [10]}, "evaluate_on_entry": "yes"}, "evaluate_on_entry must be true or false"),
        ([10, 20], "curriculum must be dict"),
    ],
)
def test_bad_curricula_are_refused_with_the_fix(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 30}, curriculum=value, **TINY["ppo"])


@pytest.mark.parametrize(
    ("name", "hyperparameters", "message"),
    [
        ("ppo", {"hidden_size": [16]}, "cannot change hidden_size"),
        ("ppo", {"num_envs": [4]}, "cannot change num_envs"),
        ("evolino", {"mutation_scale": [0.1]}, "cannot change mutation_scale"),
        ("ppo", {"n_steps": [8, 16]}, "one value per stage"),
        ("ppo", {"n_steps": [6]}, "n_steps \\(6\\) must be a multiple of seq_len"),
        ("ppo", {"n_stepz": [8]}, "unknown key 'n_stepz'"),
    ],
)
def test_stage_hyperparameters_that_cannot_work_are_refused_before_training(
    name: str, hyperparameters: dict[str, Any], message: str
) -> None:
    curriculum = {"stages": {"length": [3]}, "hyperparameters": hyperparameters}
    with pytest.raises(ConfigError, match=message):
        agent_class(name)("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum, **TINY[name])


def test_a_built_env_cannot_take_a_curriculum() -> None:
    with pytest.raises(ConfigError, match="needs the env's id"):
        agent_class("ppo")(gym.make("CartPole-v1"), curriculum={"stages": {"max_episode_steps": [20]}},
                           **TINY["ppo"])


def test_a_stage_that_cannot_end_on_success_says_to_use_return() -> None:
    agent = agent_class("ppo")("CartPole-v1", curriculum={"stages": {"max_episode_steps": [20]}, "eval_every": 1,
                                                          "eval_episodes": 2}, **TINY["ppo"])
    with pytest.raises(ConfigError, match="reports no info\\['is_success'\\].*return>=X"):
        agent.learn(16, progress_bar=False)


# ---- training through the stages -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ppo", "reinforce", "evolino"])
def test_every_trainer_moves_on_once_a_stage_is_met_and_trains_on_the_task_after(name: str) -> None:
    curriculum = {"stages": {"length": [3, 5]}, "until": [ALWAYS, ALWAYS], "eval_every": 1, "eval_episodes": 2}
    agent = agent_class(name)("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                              **TINY[name])
    lengths = [_stage_length(agent)]

    def watch(agent: Any) -> bool:
        lengths.append(_stage_length(agent))
        return agent.iterations < 4

    agent.learn(10**6, callback=watch, progress_bar=False)
    assert lengths[:4] == [3, 5, 8, 8]  # each stage ends at its first evaluation, after one iteration
    assert agent.curriculum.finished and agent.latest_scalars["curriculum/stage"] == 2
    assert agent.config.env_kwargs == {"length": 8}  # the config keeps the task; checkpoints and evaluation use it
    if name == "evolino":
        assert agent.esp.generation == 4  # the subpopulations carried on through the stages


def test_stage_hyperparameters_hold_on_their_stage_and_the_task_gets_the_configs_own(tmp_path: Path) -> None:
    curriculum = {"stages": {"length": [3, 5]}, "until": [ALWAYS, NEVER], "eval_every": 1, "eval_episodes": 2,
                  "hyperparameters": {"n_steps": [4, 12], "ent_coef": [0.1, 0.05]}}
    agent = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                               **TINY["ppo"])
    assert (agent.config.n_steps, agent.buffer.n_steps, agent.config.ent_coef) == (4, 4, 0.1)
    agent.learn(8, progress_bar=False)  # one rollout of 4 steps x 2 envs, then the first stage is met
    assert agent.curriculum.stage == 1
    assert (agent.config.n_steps, agent.buffer.n_steps, agent.config.ent_coef) == (12, 12, 0.05)
    agent.learn(24, progress_bar=False)
    assert agent.num_timesteps == 8 + 24
    assert (agent.task_config.n_steps, agent.task_config.ent_coef) == (8, 0.01)  # what the user gave
    agent.save(tmp_path / "agent.pt")
    loaded = agent_class("ppo").load(tmp_path / "agent.pt")
    assert loaded.task_config == agent.task_config and loaded.config == agent.config


def test_a_stage_not_met_keeps_training_on_it_and_logs_its_evaluations() -> None:
    curriculum = {"stages": {"length": [3]}, "until": NEVER, "eval_every": 1, "eval_episodes": 2}
    agent = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                               **TINY["ppo"])
    agent.learn(48, progress_bar=False)
    assert _stage_length(agent) == 3 and agent.curriculum.stage == 0
    assert "curriculum/stage_return" in agent.latest_scalars


def test_a_checkpoint_resumes_the_stage_it_reached(tmp_path: Path) -> None:
    curriculum = {"stages": {"length": [3, 5]}, "until": [ALWAYS, NEVER], "eval_every": 1, "eval_episodes": 2}
    agent = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                               **TINY["ppo"])
    agent.learn(48, progress_bar=False)
    assert agent.curriculum.stage == 1
    agent.save(tmp_path / "agent.pt")
    loaded = agent_class("ppo").load(tmp_path / "agent.pt")
    assert loaded.curriculum.state_dict() == agent.curriculum.state_dict()
    assert _stage_length(loaded) == 5 and loaded.config.env_kwargs == {"length": 8}
    loaded.learn(16, progress_bar=False)  # and trains on from there


def _weights(agent: Any) -> dict[str, torch.Tensor]:
    return copy.deepcopy(agent.policy.state_dict())


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.parametrize("name", ["ppo", "reinforce", "evolino"])
def test_a_stage_not_met_within_restart_after_restarts_from_the_network_that_entered_it(name: str) -> None:
    """Every trainer: the stage's first network and optimizer (Evolino: subpopulations) come back; the random streams
    go on, so the restarted stage trains on fresh episodes rather than repeating itself."""
    curriculum = {"stages": {"length": [3, 5]}, "until": [ALWAYS, NEVER], "eval_every": 1, "eval_episodes": 2}
    plain = agent_class(name)("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                              **TINY[name])
    agent = agent_class(name)("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8},
                              curriculum={**curriculum, "restart_after": 1}, **TINY[name])
    entered, after_first_iteration = [], []

    def watch(agent: Any) -> bool:
        if agent.iterations == 1:  # stage 0 met: the network that enters stage 1
            entered.append(_weights(agent))
        if agent.iterations == 2:  # the first iteration on stage 1, then its evaluation restarted it
            after_first_iteration.append(agent.learned_state())
        return agent.iterations < 3

    agent.learn(10**6, callback=watch, progress_bar=False)
    plain.learn(10**6, callback=lambda agent: agent.iterations < 3, progress_bar=False)
    assert agent.curriculum.stage == 1 and agent.curriculum.restarts == 2
    assert agent.latest_scalars["curriculum/restarts"] == 2
    assert _same(after_first_iteration[0]["policy"], entered[0])  # back where the stage began
    assert not _same(_weights(plain), entered[0])  # without restarts the stage's training changes the network
    if name == "evolino":
        assert agent.esp.generation == plain.esp.generation - 2  # two generations undone, the stage's first kept


def test_the_task_itself_restarts_until_it_first_meets_the_last_criterion() -> None:
    """The last leg can stick as a stage does; once the task meets the criterion, evaluations and restarts end."""
    stuck = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, **TINY["ppo"], curriculum={
        "stages": {"length": [8]}, "until": NEVER, "eval_every": 1, "eval_episodes": 2, "restart_after": 1})
    initial = _weights(stuck)
    stuck.learn(16, progress_bar=False)  # one iteration, then the task's evaluation restarts it
    assert stuck.curriculum.finished and stuck.curriculum.restarts == 1 and _same(_weights(stuck), initial)
    met = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, **TINY["ppo"], curriculum={
        "stages": {"length": [3]}, "until": ALWAYS, "eval_every": 1, "eval_episodes": 2, "restart_after": 1})
    met.learn(32, progress_bar=False)  # the stage, then the task, each met at its first evaluation
    assert met.curriculum.task_met and met.curriculum.restarts == 0 and not met.curriculum.due(10**9)


@pytest.mark.parametrize("evaluate_on_entry", [False, True])
def test_evaluate_on_entry_passes_stages_the_network_already_meets_without_training(evaluate_on_entry: bool) -> None:
    curriculum = {"stages": {"length": [3, 5]}, "until": ALWAYS, "eval_every": 1, "eval_episodes": 2,
                  "evaluate_on_entry": evaluate_on_entry}
    agent = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                               **TINY["ppo"])
    agent.learn(16, progress_bar=False)  # one iteration on the first stage, then its evaluation
    # With evaluate_on_entry the second stage is met before any training on it, and the agent trains on the task.
    assert (agent.curriculum.stage, _stage_length(agent)) == ((2, 8) if evaluate_on_entry else (1, 5))


def test_a_checkpoint_keeps_the_point_a_stage_restarts_from(tmp_path: Path) -> None:
    curriculum = {"stages": {"length": [3, 5]}, "until": [ALWAYS, NEVER], "eval_every": 1, "eval_episodes": 2,
                  "restart_after": 1000}
    agent = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                               **TINY["ppo"])
    agent.learn(48, progress_bar=False)
    entered = agent.curriculum.restart_point["policy"]
    assert agent.curriculum.stage == 1 and agent.curriculum.stage_start == 16 and not _same(_weights(agent), entered)
    agent.save(tmp_path / "agent.pt")
    loaded = agent_class("ppo").load(tmp_path / "agent.pt")
    assert loaded.curriculum.stage_start == 16 and _same(loaded.curriculum.restart_point["policy"], entered)
    loaded.restore_learned_state(loaded.curriculum.restart_point)
    assert _same(_weights(loaded), entered)


def test_solving_evaluates_the_task_only_once_the_curriculum_reaches_it() -> None:
    curriculum = {"stages": {"length": [3]}, "until": NEVER, "eval_every": 1, "eval_episodes": 2}
    agent = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 8}, curriculum=curriculum,
                               **TINY["ppo"])
    progress = EvaluateUntilSolved(Task("rl_lstm/NiPassiveTMaze-v0", {"length": 8}, "success", 0.95), 16, 2,
                                   float("inf"))
    agent.learn(64, callback=progress, progress_bar=False)
    # Only the evaluation at the end of the budget ran: none while training stayed on the stage.
    assert len(progress.evaluations) == 1 and agent.num_timesteps == 64


def test_evolino_presets_train_long_corridors_through_shorter_ones() -> None:
    """The rule min(length, 100), min(length, 1000), min(length, 10000): stages only below the task's own length."""
    stages = {length: Curriculum.from_config(preset("evolino", "rl_lstm/NiPassiveTMaze-v0", {"length": length})[
        "curriculum"], {"length": length}).stages for length in (100, 1000, 10_000, 100_000)}
    assert stages == {100: (), 1000: ({"length": 100},), 10_000: ({"length": 100}, {"length": 1000}),
                      100_000: ({"length": 100}, {"length": 1000}, {"length": 10_000})}



def test_evolinos_ni_active_preset_seeks_novelty_and_rescores_its_best_network_through_stages() -> None:
    """Ni et al.'s active maze: novelty_bonus 10 and reevaluate_best at every length, stages 10, 100 and 1,000 below
    L."""
    stages = {}
    for length in (10, 100, 1000, 10_000):
        settings = preset("evolino", "rl_lstm/NiActiveTMaze-v0", {"length": length})
        assert (settings["novelty_bonus"], settings["reevaluate_best"]) == (10.0, True)
        stages[length] = Curriculum.from_config(settings["curriculum"], {"length": length}).stages
    assert stages == {10: (), 100: ({"length": 10},), 1000: ({"length": 10}, {"length": 100}),
                      10_000: ({"length": 10}, {"length": 100}, {"length": 1000})}
    agent = agent_class("evolino")("rl_lstm/NiActiveTMaze-v0", env_kwargs={"length": 1000},
                                   **preset("evolino", "rl_lstm/NiActiveTMaze-v0", {"length": 1000}))
    assert agent.config.novelty_bonus == 10.0 and agent.evaluator.novelty_bits == 16 and _stage_length(agent) == 10

# Trains PPO on CartPole-v1 with a curriculum over gym.make's max_episode_steps, in a process that imported nothing
# of ours before: the first stage cuts episodes at 20 steps, the task does not; then restarts a stage it cannot pass.
CARTPOLE = """
import sys
from agents import agent_class
curriculum = {"stages": {"max_episode_steps": [20]}, "until": "return>=-1", "eval_every": 1, "eval_episodes": 2}
agent = agent_class(sys.argv[1])("CartPole-v1", curriculum=curriculum, **eval(sys.argv[2]))


def limit(env):
    # The training env's step limit: gymnasium's CartPoleVectorEnv's own, or a SyncVectorEnv copy's spec's.
    env = env.unwrapped
    return env.max_episode_steps if hasattr(env, "max_episode_steps") else env.envs[0].spec.max_episode_steps


limits = [limit(agent.env)]
agent.learn(10**6, callback=lambda agent: agent.iterations < 2, progress_bar=False)
limits.append(limit(agent.env))
# A stage no evaluation can meet, restarted after every iteration's evaluation.
stuck = agent_class(sys.argv[1])("CartPole-v1", curriculum={**curriculum, "until": "return>=1e9", "restart_after": 1},
                                 **eval(sys.argv[2]))
stuck.learn(10**6, callback=lambda agent: agent.iterations < 2, progress_bar=False)
print(limits, agent.curriculum.finished, limit(stuck.env), stuck.curriculum.restarts)
"""


@pytest.mark.parametrize("name", ["ppo", "evolino"])
def test_a_curriculum_over_a_gymnasium_env_we_did_not_write(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CARTPOLE, name, repr(TINY[name])], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "[20, 500] True 20 2"


def test_ppos_ni_preset_gives_each_stage_the_chunks_of_its_own_corridor() -> None:
    """Whole-episode chunks (L + 2 steps) on every stage, as the preset's rules give them at the task's length."""
    settings = preset("ppo", "rl_lstm/NiPassiveTMaze-v0", {"length": 1500})
    curriculum = Curriculum.from_config(settings["curriculum"], {"length": 1500})
    lengths = [stage["length"] for stage in curriculum.stages]
    assert lengths == [10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 450, 700, 1000]
    assert [hyper["n_steps"] for hyper in curriculum.hyperparameters] == [length + 2 for length in lengths]
    assert [hyper["seq_len"] for hyper in curriculum.hyperparameters] == [length + 2 for length in lengths]
    assert [hyper["batch_size"] for hyper in curriculum.hyperparameters] == [4 * (length + 2) for length in lengths]
    assert curriculum.restart_after == 1_000_000
    agent = agent_class("ppo")("rl_lstm/NiPassiveTMaze-v0", env_kwargs={"length": 1500}, **settings)
    assert (agent.config.n_steps, agent.task_config.n_steps, _stage_length(agent)) == (12, 1502, 10)


@pytest.mark.parametrize(("length", "task_epochs", "stage_epochs"), [
    (500, 4, [4] * 11),
    (1000, 1, [4] * 12),
    (10_000, 1, [4] * 12 + [1] * 6),
])
def test_ppos_passive_preset_makes_one_pass_per_rollout_from_1000_step_corridors(
    length: int, task_epochs: int, stage_epochs: list[int]
) -> None:
    """Four epochs erased a cue the network held at N = 5,000; the preset's stages and task from N = 1,000 make one."""
    settings = preset("ppo", "rl_lstm/PassiveTMaze-v0", {"length": length})
    curriculum = Curriculum.from_config(settings["curriculum"], {"length": length})
    assert [hyper["n_epochs"] for hyper in curriculum.hyperparameters] == stage_epochs
    assert settings["n_epochs"] == task_epochs
    agent = agent_class("ppo")("rl_lstm/PassiveTMaze-v0", env_kwargs={"length": length}, **settings)
    assert (agent.config.n_epochs, agent.task_config.n_epochs) == (4, task_epochs)


def test_ppos_ni_active_preset_explores_with_the_count_bonus_through_the_same_ladder() -> None:
    """Ni et al.'s active maze: the passive maze's ladder with the active episode's chunks (L + 4), the count bonus
    and no advantage normalization (normalized, the bonus's advantages drowned the junction's)."""
    settings = preset("ppo", "rl_lstm/NiActiveTMaze-v0", {"length": 500})
    curriculum = Curriculum.from_config(settings["curriculum"], {"length": 500})
    lengths = [stage["length"] for stage in curriculum.stages]
    assert lengths == [10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 450]
    assert [hyper["n_steps"] for hyper in curriculum.hyperparameters] == [length + 4 for length in lengths]
    assert [hyper["ent_coef"] for hyper in curriculum.hyperparameters] == [0.01] + [0.0] * 10
    assert (settings["count_bonus"], settings["normalize_advantage"], settings["n_steps"]) == (30.0, False, 504)
    agent = agent_class("ppo")("rl_lstm/NiActiveTMaze-v0", env_kwargs={"length": 500}, **settings)
    assert agent.config.count_bonus == 30.0 and _stage_length(agent) == 10
