"""RL Evolino benchmarks: batched population evaluation against one by one, Ray workers, and tasks solved.

    python scripts/benchmark.py evolino-speed   # on an otherwise idle machine: the Ray figure needs both cores
    python scripts/benchmark.py evolino --seeds 5 --tasks rl_lstm/TMaze-v0:length=10 rl_lstm/CartPolePositionOnly-v0

``add_parsers`` registers the subcommand on scripts/benchmark.py's parser; ``run(args)`` returns the markdown
section that scripts/benchmark.py writes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from benchmark_ppo import _positive_int, format_over_seeds, median_or_dash, parse_task, seeds_text

import envs  # noqa: F401  (registers the rl_lstm/ env ids with gymnasium)
from agents.evolino import EvolinoConfig, PopulationEvaluator, RayEvaluator, evaluator_spec
from rl_lstm.config import preset
from rl_lstm.esp import EnforcedSubpopulations, LSTMLayout, PopulationLSTM
from rl_lstm.policies import RecurrentActorCritic
from rl_lstm.solving import EVALUATION_SEED, train_until_solved

SPEED_ENV = "rl_lstm/TMaze-v0"
DEFAULT_TASKS = (
    "rl_lstm/TMaze-v0:length=10@success>=0.95",
    "rl_lstm/TMaze-v0:length=20@success>=0.95",
    "rl_lstm/CartPolePositionOnly-v0@return>=475",
)

# Network evaluations to solve the classic neuroevolution benchmark, Wieland's double pole balancing WITHOUT
# velocities (a harder task than our single position-only pole), as reported in F. Gomez, J. Schmidhuber,
# R. Miikkulainen, "Accelerated Neural Evolution through Cooperatively Coevolved Synapses", JMLR 9, 2008 (their
# table of non-Markov double-pole results). Quoted from our reading of that paper; the table itself was not in
# the sources we could search while writing this, so check it before citing these figures elsewhere.
PUBLISHED_DOUBLE_POLE_NO_VELOCITIES = (("ESP", "7,374"), ("NEAT", "6,929"), ("CoSyNE", "1,249"))


def random_population(layout: LSTMLayout, networks: int, seed: int) -> list[np.ndarray]:
    """``networks`` random networks (ESP's initial draw), as per-unit chromosome arrays."""
    esp = EnforcedSubpopulations(layout.chromosome_sizes(), networks, np.random.default_rng(seed))
    return esp.chromosomes(np.tile(np.arange(networks)[:, None], (1, len(layout.chromosome_sizes()))))


def one_by_one(layout: LSTMLayout, chromosomes: list[np.ndarray], episodes: int, env_kwargs: dict) -> float:
    """Seconds to evaluate the networks one at a time: each a policy module playing its episodes in one env."""
    env = gym.make(SPEED_ENV, **env_kwargs)
    policy = RecurrentActorCritic(env.observation_space, env.action_space, **EvolinoConfig().policy_kwargs())
    start = time.perf_counter()
    with torch.no_grad():
        for index in range(len(chromosomes[0])):
            network = PopulationLSTM(layout, [c[index : index + 1] for c in chromosomes])
            network.write_into(0, policy.actor_core.cells[0], policy.action_head.linear)
            for episode in range(episodes):
                observation, _ = env.reset(seed=episode)
                state, starts, done = policy.initial_state(1), torch.ones(1, dtype=torch.bool), False
                while not done:
                    action, _, _, state = policy.act(observation[None], state, starts, deterministic=True)
                    observation, _, terminated, truncated, _ = env.step(int(action[0]))
                    starts, done = torch.zeros(1, dtype=torch.bool), terminated or truncated
    return time.perf_counter() - start


def speed_section(args: argparse.Namespace) -> list[str]:
    """Network evaluations per second: batched against one by one, and Ray with 1 and 2 workers."""
    env_kwargs = {"length": args.speed_length}
    probe = gym.make(SPEED_ENV, **env_kwargs)
    layout = LSTMLayout(probe.observation_space.shape[0], EvolinoConfig().num_cells, int(probe.action_space.n))
    episodes = args.speed_episodes
    chromosomes = random_population(layout, args.population, seed=0)
    jobs = [np.repeat(c, episodes, axis=0) for c in chromosomes]
    seeds = np.tile(np.arange(episodes), args.population)

    env = gym.make_vec(SPEED_ENV, num_envs=args.population * episodes, **env_kwargs)

    def population_rate(novelty_bits: int | None) -> float:
        """Network evaluations per second of the whole population in one evaluator, after a warm-up evaluation."""
        evaluator = PopulationEvaluator(env, layout, 100_000, SPEED_ENV, novelty_bits)
        evaluator.evaluate(jobs, seeds)
        start = time.perf_counter()
        for _ in range(args.repeats):
            evaluator.evaluate(jobs, seeds)
        return args.population * args.repeats / (time.perf_counter() - start)

    batched_rate = population_rate(None)
    # The same, recording the SimHash buckets each episode reaches for novelty_bonus (EpisodeVisits, every step).
    novelty_rate = population_rate(EvolinoConfig().novelty_bits)

    # The same evaluator, one network at a time (its episodes as the copies of a small vector env): what batching
    # across networks alone gains.
    per_network = PopulationEvaluator(gym.make_vec(SPEED_ENV, num_envs=episodes, **env_kwargs), layout, 100_000,
                                      SPEED_ENV)
    start = time.perf_counter()
    for index in range(args.population):
        per_network.evaluate([c[index * episodes : (index + 1) * episodes] for c in jobs], seeds[:episodes])
    per_network_rate = args.population / (time.perf_counter() - start)

    single_networks = min(args.population, args.one_by_one_networks)
    single_rate = single_networks / one_by_one(layout, [c[:single_networks] for c in chromosomes], episodes,
                                               env_kwargs)
    lines = [
        f"## RL Evolino: evaluating a population of {args.population} networks on `{SPEED_ENV}` "
        f"(length={args.speed_length})",
        "",
        "| how | network evaluations / s | speed-up |",
        "|---|---:|---:|",
        f"| one by one (a policy module per network, one env, batch 1) | {single_rate:,.1f} | 1.0x |",
        f"| one network at a time, batched over its {episodes} episodes (a vector env of {episodes} copies) | "
        f"{per_network_rate:,.1f} | {per_network_rate / single_rate:,.1f}x |",
        f"| batched: all networks in one forward pass per step, one native vector env of "
        f"{args.population * episodes} copies | {batched_rate:,.1f} | **{batched_rate / single_rate:,.1f}x** |",
        f"| batched, recording each episode's observation buckets for `novelty_bonus` | {novelty_rate:,.1f} | "
        f"{novelty_rate / single_rate:,.1f}x |",
        "",
        f"Batching across networks alone (whole population against one network at a time, same evaluator): "
        f"**{batched_rate / per_network_rate:,.1f}x**. Recording the novelty's buckets: "
        f"**{novelty_rate / batched_rate:.2f}x** the batched evaluator's rate.",
    ]
    ray_rates = {}
    if not args.no_ray:
        import ray

        spec = evaluator_spec(SPEED_ENV, EvolinoConfig(num_envs=args.ray_envs, env_kwargs=env_kwargs,
                                                       max_episode_steps=100_000), layout)
        ray_population = args.ray_population
        ray_chromosomes = random_population(layout, ray_population, seed=1)
        ray_jobs = [np.repeat(c, episodes, axis=0) for c in ray_chromosomes]
        ray_seeds = np.tile(np.arange(episodes), ray_population)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for workers in (1, 2):
                evaluator = RayEvaluator(spec, workers, None)
                evaluator.evaluate(ray_jobs, ray_seeds)  # warm-up: actors built, envs made
                start = time.perf_counter()
                for _ in range(args.repeats):
                    evaluator.evaluate(ray_jobs, ray_seeds)
                ray_rates[workers] = ray_population * args.repeats / (time.perf_counter() - start)
                evaluator.close()
        finally:
            ray.shutdown()
        lines += [
            "",
            f"Ray, population {ray_population} x {episodes} episodes, each worker a batched evaluator with its own "
            f"native vector env of {args.ray_envs} copies, a local Ray cluster on this machine:",
            "",
            "| Ray workers | network evaluations / s | speed-up over 1 worker |",
            "|---:|---:|---:|",
            f"| 1 | {ray_rates[1]:,.1f} | 1.0x |",
            f"| 2 | {ray_rates[2]:,.1f} | **{ray_rates[2] / ray_rates[1]:.2f}x** |",
        ]
    lines += [
        "",
        f"A network evaluation is {episodes} episodes; the networks are ESP's random initial draw "
        f"({layout.num_cells} memory cells, {layout.num_outputs} evolved output units). Batched and one-by-one run "
        f"in the same process with `torch.set_num_threads(1)`; the batched rate is the mean of {args.repeats} "
        f"evaluations of the whole population after a warm-up, the one-by-one rate is over the first "
        f"{single_networks} networks (each one's episodes on a single `gym.make` env, acting through the "
        "`RecurrentActorCritic` the evolved network is written into, as `predict` does).",
    ]
    return lines


def solve_section(args: argparse.Namespace) -> list[str]:
    """Evolino with its presets on each task: seeds solved, network evaluations, episodes, env steps, seconds."""
    lines = [
        "## RL Evolino: network evaluations, env steps and seconds to solve each task",
        "",
        "| task | solved when | solved seeds | median generations | median network evaluations | "
        "median episodes | median env steps | median training s | final eval return (mean ± std over seeds) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for task in args.tasks:
        runs = []
        for seed in range(args.seeds):
            # eval_every=1: the best network is evaluated after every generation.
            agent, progress = train_until_solved("evolino", task, seed, 1, args.eval_episodes, args.max_seconds,
                                                 args.max_timesteps, stop_at_first_solve=True)
            networks = agent.esp.generation * agent.config.networks_per_generation
            runs.append((progress, agent.esp.generation, networks, networks * agent.config.episodes_per_network))
            print(f"{task.label} seed {seed}: {'solved' if progress.solved else 'not solved'} after "
                  f"{agent.esp.generation} generations, {networks:,} network evaluations, {progress.env_steps:,} "
                  f"env steps, {progress.training_seconds:.1f} s", flush=True)
        solved = [run for run in runs if run[0].solved]
        final = format_over_seeds([run[0].last_evaluation for run in runs])
        lines.append(
            f"| {task.label} | {task.criterion} | {len(solved)}/{len(runs)} | "
            f"{median_or_dash([run[1] for run in solved], ',.0f')} | "
            f"{median_or_dash([run[2] for run in solved], ',.0f')} | "
            f"{median_or_dash([run[3] for run in solved], ',.0f')} | "
            f"{median_or_dash([run[0].env_steps for run in solved], ',.0f')} | "
            f"{median_or_dash([run[0].training_seconds for run in solved], ',.1f')} | {final} |"
        )
    published = ", ".join(f"{name} {evaluations}" for name, evaluations in PUBLISHED_DOUBLE_POLE_NO_VELOCITIES)
    lines += [
        "",
        f"Our RL Evolino with the shipped `evolino` preset of each task, {seeds_text(args.seeds)}, each run "
        f"budgeted {args.max_timesteps:,} env steps or {args.max_seconds:,.0f} s, `torch.set_num_threads(1)`. After "
        f"every generation the best network so far plays {args.eval_episodes} deterministic episodes (seeded from "
        f"{EVALUATION_SEED}); a run stops at the first generation whose best network meets the threshold. A "
        "network evaluation is `episodes_per_network` episodes; medians are over the solved seeds.",
        "",
        f"Published figures for comparison (network evaluations on Wieland's double pole balancing without "
        f"velocities, a harder task than our single position-only pole): {published} (Gomez, Schmidhuber & "
        "Miikkulainen, JMLR 2008; quoted from our reading, the table was not in the sources we could search: check "
        "before citing). We do not ship the double pole, so these are context, not a like-for-like comparison.",
        "",
        "Presets used (EvolinoConfig defaults for every key not listed):",
        "",
        *(f"- {task.label}: `{preset('evolino', task.env_id, task.env_kwargs) or '{}'}`" for task in args.tasks),
    ]
    return lines


def benchmark_evolino_speed(args: argparse.Namespace) -> str:
    """Batched against one-by-one evaluation, and Ray with 1 and 2 workers, as one markdown section."""
    torch.set_num_threads(1)
    return "\n".join(speed_section(args))


def benchmark_evolino(args: argparse.Namespace) -> str:
    """Evolino with its presets on the tasks, as one markdown section."""
    torch.set_num_threads(1)
    return "\n".join(solve_section(args))


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``evolino-speed`` and ``evolino`` benchmarks (separate sections: they need different machines'
    states, the speed one an otherwise idle machine)."""
    speed = subparsers.add_parser(
        "evolino-speed", help="RL Evolino: a population evaluated batched vs one by one, and on 1 and 2 Ray workers",
        description="Time a population's evaluation batched, one by one, and on 1 and 2 Ray workers.",
    )
    speed.add_argument("--population", type=_positive_int, default=100, help="networks in the speed test")
    speed.add_argument("--speed-length", type=_positive_int, default=10, help="T-maze length in the speed test")
    speed.add_argument("--speed-episodes", type=_positive_int, default=8, help="episodes per network evaluation")
    speed.add_argument("--repeats", type=_positive_int, default=5, help="timed evaluations of the population")
    speed.add_argument("--one-by-one-networks", type=_positive_int, default=20,
                       help="networks timed one by one (the rate is per network)")
    speed.add_argument("--ray-population", type=_positive_int, default=400, help="networks in the Ray test")
    speed.add_argument("--ray-envs", type=_positive_int, default=1600, help="env copies per Ray worker")
    speed.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    speed.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    speed.set_defaults(run=benchmark_evolino_speed)

    solve = subparsers.add_parser(
        "evolino", help="RL Evolino with its presets: generations, evaluations and seconds to solve each task",
        description="Train Evolino with its presets until each task's threshold; report network evaluations, "
        "episodes, env steps and seconds, beside published neuroevolution figures.",
    )
    solve.add_argument("--tasks", nargs="+", type=parse_task, default=[parse_task(t) for t in DEFAULT_TASKS],
                       metavar="ENV_ID[:KEY=VALUE,...][@return>=X|@success>=X]",
                       help=f"default: {' '.join(DEFAULT_TASKS)}")
    solve.add_argument("--seeds", type=_positive_int, default=5, help="seeds 0 .. N-1 per task")
    solve.add_argument("--max-timesteps", type=_positive_int, default=20_000_000, help="env-step budget per run")
    solve.add_argument("--max-seconds", type=float, default=300.0, help="training-time budget per run (s)")
    solve.add_argument("--eval-episodes", type=_positive_int, default=100, help="episodes per evaluation")
    solve.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    solve.set_defaults(run=benchmark_evolino)
