"""RL Evolino: ESP's bookkeeping, the batched population network, learning, saving, resuming and the Ray backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_exploration import run_in_fresh_python

import envs  # noqa: F401
from agents.evolino import EvolinoConfig, PopulationEvaluator, RecurrentEvolino
from envs.ni_tmaze import EAST, WEST
from rl_lstm.config import build_config
from rl_lstm.cores import PeepholeLSTMCell
from rl_lstm.errors import CheckpointError, ConfigError, EnvStepError
from rl_lstm.esp import EnforcedSubpopulations, LSTMLayout, PopulationLSTM
from rl_lstm.exploration import SimHash, population_novelty

SMALL = dict(env_kwargs={"length": 4}, subpopulation_size=8, trials_per_chromosome=2, episodes_per_network=4,
             num_envs=16)


def _esp(seed: int = 0, **kwargs) -> EnforcedSubpopulations:
    return EnforcedSubpopulations([5, 3, 7], subpopulation_size=8, rng=np.random.default_rng(seed), **kwargs)


# ---- ESP ------------------------------------------------------------------------------------------------------------
def test_every_chromosome_joins_exactly_trials_networks() -> None:
    esp = _esp()
    members = esp.sample_networks(trials=5)
    assert members.shape == (40, 3)
    for s in range(3):
        assert np.array_equal(np.bincount(members[:, s], minlength=8), np.full(8, 5))


def test_a_chromosome_is_credited_the_mean_fitness_of_its_networks() -> None:
    esp = _esp(burst_after=100)
    members = esp.sample_networks(trials=3)
    fitness = np.random.default_rng(1).normal(size=len(members))
    before = [p.copy() for p in esp.subpopulations]
    esp.tell(members, fitness)
    # After recombination each subpopulation is sorted by fitness: its first member is the best chromosome.
    for s in range(3):
        means = [fitness[members[:, s] == m].mean() for m in range(8)]
        best = int(np.argmax(means))
        assert esp.fitness[s][0] == pytest.approx(max(means))
        assert np.array_equal(esp.subpopulations[s][0], before[s][best])
        # The top half survives unchanged; the bottom half is new offspring.
        survivors = np.argsort(means)[::-1][:4]
        assert np.array_equal(esp.subpopulations[s][:4], before[s][survivors])
        assert not any(np.array_equal(child, parent) for child in esp.subpopulations[s][4:] for parent in before[s])


def test_the_best_network_is_remembered_and_stagnation_triggers_a_burst_around_it() -> None:
    esp = _esp(burst_after=3)
    members = esp.sample_networks(trials=2)
    fitness = np.arange(len(members), dtype=float)
    esp.tell(members, fitness)
    best = [c[0].copy() for c in esp.best_chromosomes()]
    assert esp.best_fitness == fitness.max()
    for _ in range(3):
        outcome = esp.tell(esp.sample_networks(trials=2), np.zeros(len(members)))  # never better
    assert outcome["burst"] == 1.0 and esp.burst_mutations == 1
    for s in range(3):
        assert np.array_equal(esp.subpopulations[s][0], best[s])
        assert np.abs(esp.subpopulations[s][1:] - best[s]).max() > 0


def test_esp_state_round_trip_continues_identically() -> None:
    def run(esp: EnforcedSubpopulations, generations: int) -> None:
        for _ in range(generations):
            members = esp.sample_networks(trials=2)
            esp.tell(members, -np.abs(np.stack(esp.chromosomes(members)[0])).sum(axis=1))

    straight, first = _esp(7), _esp(7)
    run(straight, 6)
    run(first, 3)
    resumed = _esp(99)
    resumed.load_state_dict(first.state_dict())
    run(resumed, 3)
    for a, b in zip(straight.subpopulations, resumed.subpopulations):
        assert np.array_equal(a, b)
    with pytest.raises(CheckpointError, match="chromosome sizes"):
        EnforcedSubpopulations([5, 3], 8, np.random.default_rng(0)).load_state_dict(first.state_dict())


# ---- the population network -------------------------------------------------------------------------------------
def test_each_network_of_the_population_equals_a_peephole_lstm_cell_with_its_weights() -> None:
    layout = LSTMLayout(input_size=3, num_cells=4, num_outputs=2)
    esp = EnforcedSubpopulations(layout.chromosome_sizes(), 8, np.random.default_rng(0), init_scale=1.0)
    population = PopulationLSTM(layout, esp.chromosomes(esp.sample_networks(2)))
    x = torch.randn(6, 16, 5, 3, dtype=torch.float64)  # [T, P, B, F]
    starts = torch.zeros(6, 16, 5, dtype=torch.bool)
    starts[3, :, 1] = True  # an episode starts inside the sequence for batch entry 1
    state, outputs = population.initial_state(5), []
    for t in range(6):
        h, state = population.step(x[t], state, starts[t])
        outputs.append(h)
    outputs = torch.stack(outputs)  # [T, P, B, H]
    for index in (0, 9, 15):
        cell, linear = PeepholeLSTMCell(3, 4).double(), torch.nn.Linear(4, 2).double()
        population.write_into(index, cell, linear)
        zeros = torch.zeros(5, 4, dtype=torch.float64)
        expected, _, _ = cell(x[:, index], zeros, zeros.clone(), starts[:, index])
        torch.testing.assert_close(outputs[:, index], expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(population.outputs(outputs[-1])[index], linear(expected[-1]), rtol=0, atol=1e-12)


def test_a_job_result_does_not_depend_on_the_round_it_runs_in() -> None:
    layout = LSTMLayout(input_size=3, num_cells=2, num_outputs=4)
    esp = EnforcedSubpopulations(layout.chromosome_sizes(), 8, np.random.default_rng(0), init_scale=2.0)
    chromosomes = esp.chromosomes(esp.sample_networks(3))  # 24 jobs
    seeds = np.arange(24) % 5

    def results(copies: int):
        env = gym.make_vec("rl_lstm/TMaze-v0", num_envs=copies, length=3)
        return PopulationEvaluator(env, layout, 1_000, "rl_lstm/TMaze-v0").evaluate(chromosomes, seeds)

    one_round, rounds = results(24), results(7)  # 7 copies: four rounds, the last one padded
    assert np.array_equal(one_round.returns, rounds.returns)
    assert np.array_equal(one_round.lengths, rounds.lengths)


# ---- the agent -------------------------------------------------------------------------------------------------
def test_the_evolved_policy_saves_loads_and_predicts_like_any_agent(tmp_path: Path) -> None:
    agent = RecurrentEvolino("rl_lstm/TMaze-v0", seed=1, **SMALL)
    agent.learn(1, progress_bar=False)
    agent.save(tmp_path / "evolino.pt")
    loaded = RecurrentEvolino.load(tmp_path / "evolino.pt")
    observations = np.stack([gym.make("rl_lstm/TMaze-v0", length=4).reset(seed=s)[0] for s in range(6)])
    actions, state = agent.predict(observations, deterministic=True)
    loaded_actions, loaded_state = loaded.predict(observations, deterministic=True)
    assert np.array_equal(actions, loaded_actions)
    assert all(np.array_equal(a, b) for a, b in zip(state, loaded_state))
    # predict runs the best network: its greedy actions are the population's for that network.
    best = PopulationLSTM(agent.layout, agent.esp.best_chromosomes())
    h, _ = best.step(torch.as_tensor(observations, dtype=torch.float64)[None], best.initial_state(6))
    assert np.array_equal(best.outputs(h)[0].argmax(-1).numpy(), actions)


@pytest.mark.parametrize(("env_id", "options"), [
    ("rl_lstm/TMaze-v0", {}),
    ("rl_lstm/NiActiveTMaze-v0", {"novelty_bonus": 1.0, "novelty_bits": 8, "reevaluate_best": True}),
])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_run(tmp_path: Path, env_id: str, options: dict) -> None:
    """Also with the novelty and the re-scored best network: both follow from the saved ESP state alone."""
    straight = RecurrentEvolino(env_id, seed=2, **options, **SMALL)
    for _ in range(4):
        straight.learn(1, progress_bar=False)
    first = RecurrentEvolino(env_id, seed=2, **options, **SMALL)
    for _ in range(2):
        first.learn(1, progress_bar=False)
    first.save(tmp_path / "latest.pt")
    resumed = RecurrentEvolino.load(tmp_path / "latest.pt")
    for _ in range(2):
        resumed.learn(1, progress_bar=False)
    assert resumed.num_timesteps == straight.num_timesteps and resumed.esp.generation == 4
    for a, b in zip(straight.esp.subpopulations, resumed.esp.subpopulations):
        assert np.array_equal(a, b)
    for p, q in zip(straight.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(p, q)


def test_same_seed_same_run_different_seed_different_run() -> None:
    def parameters(seed: int) -> torch.Tensor:
        agent = RecurrentEvolino("rl_lstm/TMaze-v0", seed=seed, **SMALL)
        for _ in range(2):
            agent.learn(1, progress_bar=False)
        return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])

    assert torch.equal(parameters(4), parameters(4))
    assert not torch.equal(parameters(4), parameters(5))


def test_it_logs_the_evolution_to_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    agent = RecurrentEvolino("rl_lstm/TMaze-v0", seed=0, tensorboard_log=str(tmp_path), **SMALL)
    agent.learn(1, progress_bar=False)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"evolution/fitness_best", "evolution/fitness_mean", "evolution/fitness_std",
                "evolution/burst_mutations", "evolution/evaluations_per_second", "evolution/diversity/cell_0",
                "evolution/diversity/output_3", "rollout/ep_rew_mean", "rollout/success_rate", "time/fps"}
    assert expected <= tags, expected - tags


def test_box_actions_and_continuous_observations_work() -> None:
    agent = RecurrentEvolino("rl_lstm/PendulumPositionOnly-v0", seed=0, subpopulation_size=4,
                             trials_per_chromosome=1, episodes_per_network=1, num_envs=4)
    agent.learn(1, progress_bar=False)
    action, _ = agent.predict(np.zeros(2, dtype=np.float32), deterministic=True)
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"normalize_observations": True}, "normalize_observations and normalize_rewards must be false"),
        ({"backend": "dask"}, "backend must be one of local, ray"),
        ({"subpopulation_size": 2}, "subpopulation_size must be at least 4"),
        ({"elite_fraction": 0.9}, r"elite_fraction must lie in \(0, 0.5\]"),
        ({"mutation_rate": 0.1}, "unknown key 'mutation_rate'.*mutation_scale"),
        ({"init": "orthogonal"}, "not a gate initialization; allowed: default, chrono"),
        ({"init": "chrono"}, "init: chrono needs t_max"),
        ({"init": "chrono", "t_max": 100, "forget_bias": 3.0}, "both init: chrono and forget_bias=3.0"),
        ({"t_max": 100}, "t_max=100 is set without init: chrono"),
        ({"novelty_bonus": -1.0}, r"novelty_bonus must be 0 \(off\) or positive"),
        ({"novelty_bits": 0}, r"novelty_bits must lie in 1..24"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(EvolinoConfig, values)


def test_an_env_that_raises_is_named() -> None:
    class Exploding(gym.Wrapper):
        def step(self, action):
            raise RuntimeError("simulator diverged")

    env = gym.vector.SyncVectorEnv([lambda: Exploding(gym.make("rl_lstm/TMaze-v0", length=3))] * 4)
    agent = RecurrentEvolino(env, subpopulation_size=4, trials_per_chromosome=1, episodes_per_network=1)
    with pytest.raises(EnvStepError, match=r"raised RuntimeError in step\(\) at step 0.*simulator diverged"):
        agent.learn(1, progress_bar=False)


# ---- the command line ----------------------------------------------------------------------------------------------
def test_train_and_evaluate_from_the_command_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rl_lstm.cli"]
    trained = subprocess.run(
        [*command, "train", "--agent", "evolino", "--env", "rl_lstm/TMaze-v0", "--env-kwargs", "length=3",
         "--timesteps", "3000", "--no-progress", "--set", f"runs_dir={tmp_path}", "subpopulation_size=8",
         "trials_per_chromosome=2", "episodes_per_network=4", "num_envs=64", "eval_every=1000"],
        capture_output=True, text=True, timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (tmp_path / "rl_lstm_TMaze-v0").iterdir()
    assert (run_dir / "checkpoints" / "latest.pt").is_file() and (run_dir / "checkpoints" / "best.pt").is_file()
    evaluated = subprocess.run([*command, "evaluate", str(run_dir), "--episodes", "10"],
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (run_dir / "eval.json").is_file()
    generation = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)["training_state"]["esp"]
    resumed = subprocess.run([*command, "train", "--resume", str(run_dir), "--timesteps", "6000", "--no-progress"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert checkpoint["num_timesteps"] >= 6000
    assert checkpoint["training_state"]["esp"]["generation"] > generation["generation"]


# ---- Ray ----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_backend_equals_the_local_one_even_when_a_worker_dies() -> None:
    ray = pytest.importorskip("ray")
    local = RecurrentEvolino("rl_lstm/TMaze-v0", seed=3, **SMALL)
    for _ in range(3):
        local.learn(1, progress_bar=False)
    remote = RecurrentEvolino("rl_lstm/TMaze-v0", seed=3, backend="ray", ray_workers=2, **SMALL)
    try:
        remote.learn(1, progress_bar=False)
        ray.kill(remote.evaluator.workers[0])  # as if its node went away
        for _ in range(2):
            remote.learn(1, progress_bar=False)
        assert remote.evaluator.replaced_workers == 1
    finally:
        remote.close()
        ray.shutdown()
    assert remote.num_timesteps == local.num_timesteps
    for a, b in zip(local.esp.subpopulations, remote.esp.subpopulations):
        assert np.array_equal(a, b)
    for p, q in zip(local.policy.parameters(), remote.policy.parameters()):
        assert torch.equal(p, q)


@pytest.mark.slow
def test_ray_evolino_through_a_curriculum_equals_the_local_one() -> None:
    """The first stage (length 2) ends at its first evaluation; the Ray actors are rebuilt on the task's env."""
    curriculum = {"stages": {"length": [2]}, "until": "return>=-1e9", "eval_every": 1, "eval_episodes": 2}
    local, remote = _three_generations_in_process_and_on_ray("rl_lstm/TMaze-v0", seed=4, curriculum=curriculum)
    assert local.curriculum.finished and remote.curriculum.finished


def _three_generations_in_process_and_on_ray(env_id: str, seed: int, **settings) -> tuple[RecurrentEvolino, ...]:
    """The same run in-process and on 2 Ray workers, three generations each; their subpopulations must be equal."""
    ray = pytest.importorskip("ray")
    local = RecurrentEvolino(env_id, seed=seed, **settings, **SMALL)
    for _ in range(3):
        local.learn(1, progress_bar=False)
    remote = RecurrentEvolino(env_id, seed=seed, backend="ray", ray_workers=2, **settings, **SMALL)
    try:
        for _ in range(3):
            remote.learn(1, progress_bar=False)
    finally:
        remote.close()
        ray.shutdown()
    assert remote.num_timesteps == local.num_timesteps
    for a, b in zip(local.esp.subpopulations, remote.esp.subpopulations):
        assert np.array_equal(a, b)
    return local, remote


def test_non_finite_fitness_stops_before_the_subpopulations_change() -> None:
    from rl_lstm.errors import NumericalError

    esp = _esp()
    before = [p.copy() for p in esp.subpopulations]
    members = esp.sample_networks(trials=1)
    fitness = np.zeros(len(members))
    fitness[3] = np.nan
    with pytest.raises(NumericalError, match="1 of 8 networks scored NaN or inf"):
        esp.tell(members, fitness)
    assert all(np.array_equal(a, b) for a, b in zip(before, esp.subpopulations))


def test_forget_bias_shifts_the_initial_forget_gates_and_nothing_else() -> None:
    plain = RecurrentEvolino("rl_lstm/TMaze-v0", seed=0, **SMALL)
    biased = RecurrentEvolino("rl_lstm/TMaze-v0", seed=0, forget_bias=3.0, **SMALL)
    index = plain.layout.forget_bias_index
    for s, (a, b) in enumerate(zip(plain.esp.subpopulations, biased.esp.subpopulations)):
        difference = b - a
        if s < plain.layout.num_cells:
            assert np.allclose(difference[:, index], 3.0)
            difference[:, index] = 0.0
        assert not difference.any()
    network = PopulationLSTM(biased.layout, biased.esp.chromosomes(biased.esp.sample_networks(1)))
    cell = PeepholeLSTMCell(3, biased.layout.num_cells)
    network.write_into(0, cell)
    forget = cell.bias[biased.layout.num_cells : 2 * biased.layout.num_cells]
    assert (forget > 3.0 - biased.config.init_scale - 1e-6).all()


def test_chrono_init_spreads_the_initial_forget_gates_and_mirrors_them_in_the_input_gates() -> None:
    plain = RecurrentEvolino("rl_lstm/TMaze-v0", seed=0, **SMALL)
    chrono = RecurrentEvolino("rl_lstm/TMaze-v0", seed=0, init="chrono", t_max=10_000, **SMALL)
    forget, input_gate = chrono.layout.forget_bias_index, chrono.layout.input_bias_index
    biases = []
    for s, (a, b) in enumerate(zip(plain.esp.subpopulations, chrono.esp.subpopulations)):
        if s < chrono.layout.num_cells:
            assert ((b[:, forget] >= 0) & (b[:, forget] <= np.log(10_000 - 1))).all()
            assert np.array_equal(b[:, input_gate], -b[:, forget])
            biases.append(b[:, forget])
            a, b = np.delete(a, [input_gate, forget], axis=1), np.delete(b, [input_gate, forget], axis=1)
        assert np.array_equal(a, b)  # every other weight is the default initialization's
    # Time scales e^b spread uniformly up to t_max: most biases are near log(t_max), some near 0.
    biases = np.concatenate(biases)
    assert np.median(biases) > np.log(10_000) - 1.5 and biases.min() < np.log(10_000) - 2


# ---- novelty and re-evaluation (deceptive and noisy tasks) ----------------------------------------------------------
def _constant_action_networks(layout: LSTMLayout, actions: list[int]) -> list[np.ndarray]:
    """One network per entry of ``actions``: zero cell weights, the output unit of its action biased to 5."""
    cells = [np.zeros((len(actions), layout.cell_size)) for _ in range(layout.num_cells)]
    outputs = [np.zeros((len(actions), layout.output_size)) for _ in range(layout.num_outputs)]
    for network, action in enumerate(actions):
        outputs[action][network, -1] = 5.0
    return cells + outputs


@pytest.mark.parametrize("copies", [4, 3])  # 3 copies: two rounds, the second padded
def test_the_evaluator_records_the_distinct_buckets_each_episode_reached(copies: int) -> None:
    """Ni et al.'s active maze (L = 3): walking east reaches the corridor and the junction; walking west reaches
    the corridor and the cue (its goal's side); each bucket once per episode however often it was reached."""
    layout = LSTMLayout(input_size=2, num_cells=1, num_outputs=4)
    env = gym.make_vec("rl_lstm/NiActiveTMaze-v0", num_envs=copies, length=3)
    evaluator = PopulationEvaluator(env, layout, 1_000, "rl_lstm/NiActiveTMaze-v0", novelty_bits=8)
    results = evaluator.evaluate(_constant_action_networks(layout, [EAST, WEST, EAST, WEST]), np.array([0, 0, 1, 2]))
    bucket = {obs: int(SimHash(env.single_observation_space, 8).buckets(np.array([obs], np.float32), 1)[0])
              for obs in [(0, 0), (1, 0), (0, 1), (0, -1)]}
    reached = [set(results.visited_buckets[results.visited_jobs == job].tolist()) for job in range(4)]
    assert len(results.visited_jobs) == 8  # two buckets per episode, nothing from the padding
    assert reached[0] == reached[2] == {bucket[0, 0], bucket[1, 0]}
    for job in (1, 3):
        assert reached[job] in ({bucket[0, 0], bucket[0, 1]}, {bucket[0, 0], bucket[0, -1]})


def test_a_networks_fitness_is_its_return_plus_the_novelty_bonus_times_its_episodes_novelty() -> None:
    """What ESP is told: the mean return plus novelty_bonus x the mean of population_novelty over its episodes; the
    logged returns stay the env's own."""
    agent = RecurrentEvolino("rl_lstm/NiActiveTMaze-v0", seed=0, novelty_bonus=2.0, novelty_bits=8, **SMALL)
    seen = {}
    evaluate, tell = agent.evaluator.evaluate, agent.esp.tell
    agent.evaluator.evaluate = lambda *args: seen.setdefault("results", evaluate(*args))
    agent.esp.tell = lambda members, fitness: tell(members, seen.setdefault("fitness", fitness))
    agent.learn(1, progress_bar=False)
    results, episodes = seen["results"], SMALL["episodes_per_network"]
    novelty = population_novelty(results.visited_jobs, results.visited_buckets, len(results.returns))
    expected = (results.returns + 2.0 * novelty).reshape(-1, episodes).mean(axis=1)
    np.testing.assert_allclose(seen["fitness"], expected)
    assert novelty.min() > 0 and seen["fitness"].max() > results.returns.reshape(-1, episodes).mean(axis=1).max()


def test_a_rescored_best_network_is_replaced_by_one_that_matches_its_new_score() -> None:
    """A network that drew lucky episodes (1.0) is the best; re-scored at 0.5 on the next generation's episodes, a
    network scoring 0.5 there replaces it and no stagnation is counted. Without the rescore nothing replaces it."""
    for rescore in (True, False):
        esp = _esp(burst_after=5)
        members = esp.sample_networks(trials=1)
        esp.tell(members, np.where(np.arange(len(members)) == 0, 1.0, 0.5))
        lucky = [c.copy() for c in esp.best_network]
        if rescore:
            esp.rescore_best(0.5)
        esp.tell(esp.sample_networks(trials=1), np.full(len(members), 0.5))
        replaced = any(not np.array_equal(a, b) for a, b in zip(lucky, esp.best_network))
        assert replaced == rescore and esp.stagnant_generations == (0 if rescore else 1)


def test_reevaluate_best_plays_the_best_network_again_as_one_more_network() -> None:
    agent = RecurrentEvolino("rl_lstm/NiActiveTMaze-v0", seed=1, reevaluate_best=True, **SMALL)
    evaluated = []
    evaluate = agent.evaluator.evaluate
    agent.evaluator.evaluate = lambda chromosomes, seeds: evaluated.append(chromosomes) or evaluate(chromosomes, seeds)
    agent.learn(1, progress_bar=False)
    best = [c.copy() for c in agent.esp.best_network]
    agent.learn(agent.num_timesteps + 1, progress_bar=False)
    networks = SMALL["subpopulation_size"] * SMALL["trials_per_chromosome"]
    episodes = SMALL["episodes_per_network"]
    assert [len(c[0]) for c in evaluated] == [networks * episodes, (networks + 1) * episodes]
    for unit, chromosome in enumerate(best):  # the last network's episodes are the best network's
        assert np.array_equal(evaluated[1][unit][-episodes:], np.repeat(chromosome[None], episodes, axis=0))


def test_novelty_and_reevaluation_on_a_users_env_in_a_fresh_process() -> None:
    """CartPole-v1 through the command line: fitness includes the bonus, the logged returns are CartPole's own."""
    code = (
        "from agents.evolino import RecurrentEvolino\n"
        "agent = RecurrentEvolino('CartPole-v1', seed=0, novelty_bonus=0.5, novelty_bits=12, reevaluate_best=True,"
        " subpopulation_size=8, trials_per_chromosome=2, episodes_per_network=2, num_envs=16)\n"
        "agent._iterate(None, 0.0)\n"
        "scalars = agent._iterate(None, 0.0)  # the second generation re-evaluates the first's best network\n"
        "print(scalars['evolution/fitness_best'], scalars['evolution/return_best'], scalars['evolution/novelty_mean'],"
        " scalars['rollout/ep_rew_mean'], scalars['rollout/ep_len_mean'])\n"
    )
    fitness_best, return_best, novelty, mean_return, mean_length = map(float, run_in_fresh_python(code).split())
    assert fitness_best > return_best > 0 and novelty > 0
    assert mean_return == mean_length  # CartPole pays 1 per step: no bonus in the returns


@pytest.mark.slow
def test_ray_evolino_with_novelty_and_reevaluation_equals_the_local_one() -> None:
    """Each worker returns its shard's visits numbered from 0; merged, they must count like the local run's."""
    _three_generations_in_process_and_on_ray("rl_lstm/NiActiveTMaze-v0", seed=2, novelty_bonus=1.0, novelty_bits=8,
                                             reevaluate_best=True)
