"""POPGym (Morad et al., ICLR 2023) as a user runs it, beside sb3-contrib's RecurrentPPO with its defaults.

    python scripts/benchmark.py popgym --seeds 100 101 102                  # the 14 Easy envs, recurrent PPO
    python scripts/benchmark.py popgym --envs RepeatPreviousEasy CountRecallEasy --seeds 0 --label tuning
    python scripts/benchmark.py popgym --agents ppo reinforce evolino --no-sb3 --label trainers
    python scripts/benchmark.py popgym --set prev_action_reward=true --label prev-action
    python scripts/benchmark.py popgym --tiny --no-write                    # two envs, a few thousand steps

Ours trains through the user's path: ``rl-lstm train --agent A --env popgym:popgym-<Env>-v0 --seed S`` in a fresh
process, then ``rl-lstm evaluate`` of its final policy, greedy and sampled. sb3-contrib's RecurrentPPO trains with
its defaults (``MlpLstmPolicy``, 8 envs; ``FlattenObservation`` where the observation is not a Box, which sb3-contrib
needs: its LSTM gets a numpy integer ``input_size`` from a MultiDiscrete space and a Tuple space not at all), in a
fresh process too, for the wall-clock our PPO run took (at most ``--sb3-max-seconds``), and is evaluated alike. Both
run with one thread (``OMP_NUM_THREADS=1``, ``torch_threads=1``); each (env, seed) runs ours and then sb3-contrib,
and ``--jobs`` pairs run side by side (one per core at most).

The metric is POPGym's MMER, max-mean episodic reward: after every rollout, the mean return of the last 100
training episodes (the sampled policy's, as training plays them; ``rollout/ep_rew_mean`` in both libraries), and
its maximum over the run. POPGym's envs scale an episode's return to [-1, 1]. MMER is compared at equal env steps
(over the range both runs reached) and at equal wall-clock (time since the training process started, start-up and
our periodic evaluations included); the time figure is how long each library took to first reach sb3-contrib's
MMER. Every run is a record in ``docs/popgym.json`` (scripts/records.py's provenance, the resolved config, the
command, the evaluation protocol and the curve).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from records import ROOT, provenance, write_records

from rl_lstm.config import read_yaml
from rl_lstm.evaluation import MissingDependencyError
from rl_lstm.results import read_scalar_events
from rl_lstm.solving import EVALUATION_SEED

DOCS = ROOT / "docs"
# An improvement of the curve smaller than this (a twentieth of POPGym's range) is not counted as learning.
LEARNED = 0.1
CURVE_TAG = "rollout/ep_rew_mean"  # the last 100 training episodes' mean return, after every rollout
SB3 = "sb3-contrib"
OURS = "rl_lstm"
SB3_NUM_ENVS = 8
TINY_ENVS = ("RepeatPreviousEasy", "CountRecallEasy")
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def popgym_env_ids(difficulty: str = "Easy") -> list[str]:
    """The gymnasium ids of POPGym's envs of one difficulty (Easy, Medium or Hard), in POPGym's order."""
    try:
        import popgym.envs
    except ImportError as error:
        raise MissingDependencyError(
            "the POPGym benchmark needs popgym: pip install -e '.[suites]' (make test installs it)"
        ) from error
    table = getattr(popgym.envs, f"ALL_{difficulty.upper()}")
    return [entry["id"] for entry in table.values()]


def env_id_of(name: str) -> str:
    """``RepeatPreviousEasy`` or ``popgym-RepeatPreviousEasy-v0`` as POPGym's gymnasium id."""
    return name if name.startswith("popgym-") else f"popgym-{name}-v0"


def short_name(env_id: str) -> str:
    """POPGym's gymnasium id without its ``popgym-`` and ``-v0``."""
    return env_id.removeprefix("popgym-").removesuffix("-v0")


@dataclass
class LearningCurve:
    """A run's training curve: after each rollout, env steps, seconds since its process started and the mean return
    of its last 100 training episodes."""

    steps: list[int]
    seconds: list[float]
    returns: list[float]

    def mmer(self, max_steps: float = float("inf"), max_seconds: float = float("inf")) -> float | None:
        """The maximum of the curve over the points within ``max_steps`` and ``max_seconds``; None if none are."""
        within = [value for steps, seconds, value in zip(self.steps, self.seconds, self.returns)
                  if steps <= max_steps and seconds <= max_seconds]
        return max(within) if within else None

    def first_reaching(self, value: float) -> tuple[int, float] | None:
        """(env steps, seconds) of the first point at or above ``value``; None if the curve never gets there."""
        return next(((steps, seconds) for steps, seconds, point in zip(self.steps, self.seconds, self.returns)
                     if point >= value), None)

    def to_dict(self) -> dict[str, list]:
        """The curve as JSON lists."""
        return {"steps": self.steps, "seconds": self.seconds, "returns": self.returns}


def run_command(command: list[str]) -> None:
    """Run ``command`` with one OpenMP/MKL thread (a run takes one core); a failure says which command and why."""
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **SINGLE_THREAD})
    if completed.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited with {completed.returncode}:\n{completed.stderr[-3000:]}")


def run_ours(agent: str, env_id: str, seed: int, timesteps: int, assignments: list[str], runs_dir: Path,
             episodes: int) -> dict[str, Any]:
    """``rl-lstm train`` of ``agent`` on ``env_id`` in a fresh process, then ``rl-lstm evaluate`` of its final
    policy, greedy and sampled: the run's record."""
    cli = [sys.executable, "-m", "rl_lstm.cli"]
    runs_dir = runs_dir / short_name(env_id) / f"{agent}-seed{seed}"  # a folder that will hold this run alone
    train = [*cli, "train", "--agent", agent, "--env", f"popgym:{env_id}", "--seed", str(seed), "--timesteps",
             str(timesteps), "--no-progress", "--set", f"runs_dir={runs_dir}", "torch_threads=1", *assignments]
    start = time.time()
    run_command(train)
    seconds = time.time() - start
    (run_dir,) = runs_dir.glob("*/*")
    steps, wall_times, returns = read_scalar_events(run_dir, CURVE_TAG)
    curve = LearningCurve([int(step) for step in steps], [float(t - start) for t in wall_times],
                          [float(value) for value in returns])
    final = {}
    # The greedy report is the run folder's eval.json, which rl-lstm compare scores.
    for policy, output, flags in (("greedy", run_dir, []), ("sampled", run_dir / "eval_sampled", ["--stochastic"])):
        run_command([*cli, "evaluate", str(run_dir), "--episodes", str(episodes), "--seed", str(EVALUATION_SEED),
                     "--output", str(output), *flags])
        final[policy] = json.loads((output / "eval.json").read_text())["mean_return"]
    config = read_yaml(run_dir / "config.yaml")
    return run_record(OURS, agent, env_id, seed, shlex.join(["python", *train[1:]]), config,
                      curve.steps[-1] if curve.steps else 0, seconds, curve, final,
                      bool(config["hyperparams"].get("prev_action_reward")), episodes, run_dir=str(run_dir),
                      network_evaluations=network_evaluations(run_dir, config) if agent == "evolino" else None)


def run_record(library: str, agent: str, env_id: str, seed: int, command: str, config: dict[str, Any],
               env_steps: int, seconds: float, curve: LearningCurve, final: dict[str, float], prev_action: bool,
               episodes: int, **extra: Any) -> dict[str, Any]:
    """The record of one run of either library, its MMER read from its curve; ``extra`` holds a library's own keys."""
    return {"library": library, "agent": agent, "env": env_id, "seed": seed, "command": command, "config": config,
            "env_steps": env_steps, "seconds": seconds, "curve": curve.to_dict(), "mmer": curve.mmer(),
            "final": final, "prev_action": prev_action, "protocol": evaluation_protocol(episodes), **extra}


def print_run(record: dict[str, Any]) -> None:
    """One line on a finished run: its MMER, final returns, env steps and seconds."""
    print(f"{short_name(record['env'])} seed {record['seed']} {record['library']} {record['agent']}: MMER "
          f"{mean_text([record['mmer']])}, final greedy {record['final']['greedy']:.3f} sampled "
          f"{record['final']['sampled']:.3f}, {record['env_steps']:,} env steps, {record['seconds']:.0f} s", flush=True)


def network_evaluations(run_dir: Path, config: dict[str, Any]) -> int:
    """The networks an Evolino run evaluated: its generations (the last ``evolution/generation``) times the networks
    each generation assembles (subpopulation size x trials per chromosome)."""
    _, _, generations = read_scalar_events(run_dir, "evolution/generation")
    hyperparams = config["hyperparams"]
    return int(generations[-1]) * hyperparams["subpopulation_size"] * hyperparams["trials_per_chromosome"]


def evaluation_protocol(episodes: int) -> dict[str, Any]:
    """How a record's figures were measured."""
    return {"mmer": f"max over rollouts of the mean return of the last 100 training episodes ({CURVE_TAG})",
            "final_episodes": episodes, "final_eval_seed": EVALUATION_SEED,
            "final_policies": {"greedy": "most likely action", "sampled": "actions sampled from the policy"}}


def run_sb3(env_id: str, seed: int, seconds: float, max_steps: int, prev_action: bool, episodes: int,
            scratch: Path) -> dict[str, Any]:
    """sb3-contrib's RecurrentPPO with its defaults on ``env_id`` in a fresh process (:func:`sb3_worker`), for
    ``seconds`` of wall-clock or ``max_steps`` env steps, whichever ends first: the run's record."""
    output = scratch / f"sb3_{short_name(env_id)}_{seed}.json"
    start = time.time()
    worker = [sys.executable, str(Path(__file__).resolve()), "--env", env_id, "--seed", str(seed), "--deadline",
              str(start + seconds), "--max-steps", str(max_steps), "--episodes", str(episodes), "--output",
              str(output), *(["--prev-action"] if prev_action else [])]
    run_command(worker)
    result = json.loads(output.read_text())
    curve = LearningCurve(result["steps"], [t - start for t in result["wall_times"]], result["returns"])
    return run_record(SB3, "ppo", env_id, seed, shlex.join(["python", "scripts/benchmark_popgym.py", *worker[2:]]),
                      result["config"], result["num_timesteps"], result["train_seconds"], curve, result["final"],
                      prev_action, episodes, time_budget=seconds)


def sb3_env(env_id: str, prev_action: bool) -> Any:
    """A POPGym env as sb3-contrib's MlpLstmPolicy can take it: the previous action and reward added as ours adds
    them (``prev_action_reward``), and a non-Box observation flattened (one-hot, as sb3 encodes Discrete ones)."""
    import gymnasium as gym
    import popgym  # noqa: F401  (registers the popgym-* ids)

    from rl_lstm.vec_env import SinglePrevActionReward

    env = gym.make(env_id)
    if prev_action:
        env = SinglePrevActionReward(env)
    if not isinstance(env.observation_space, gym.spaces.Box):
        env = gym.wrappers.FlattenObservation(env)
    return env


def sb3_worker(argv: list[str] | None = None) -> None:
    """Train and evaluate sb3-contrib's RecurrentPPO (defaults) on one env; write its curve and figures as JSON."""
    parser = argparse.ArgumentParser(description=sb3_worker.__doc__)
    parser.add_argument("--env", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True, help="stop training at this time.time()")
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--prev-action", action="store_true")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    curve: dict[str, list] = {"steps": [], "wall_times": [], "returns": []}

    class CurveUntilDeadline(BaseCallback):
        """Records the last 100 episodes' mean return after each rollout; stops training at the deadline."""

        def _on_rollout_end(self) -> None:
            if self.model.ep_info_buffer:
                curve["steps"].append(int(self.num_timesteps))
                curve["wall_times"].append(time.time())
                curve["returns"].append(float(np.mean([info["r"] for info in self.model.ep_info_buffer])))

        def _on_step(self) -> bool:
            # Checked at each env step of a rollout: the update that follows the last rollout still runs, so a run
            # ends past the deadline by up to one update (10 epochs), and its record says how long it took.
            return time.time() < args.deadline

    def make(seed: int) -> Any:
        return make_vec_env(lambda: sb3_env(args.env, args.prev_action), n_envs=SB3_NUM_ENVS, seed=seed)

    start = time.time()
    model = RecurrentPPO("MlpLstmPolicy", make(args.seed), seed=args.seed, device="cpu", verbose=0)
    model.learn(total_timesteps=args.max_steps, callback=CurveUntilDeadline())
    train_seconds = time.time() - start
    final = {}
    for policy, deterministic in (("greedy", True), ("sampled", False)):
        returns, _ = evaluate_policy(model, make(EVALUATION_SEED), n_eval_episodes=args.episodes,
                                     deterministic=deterministic, return_episode_rewards=True)
        final[policy] = float(np.mean(returns))
    config = {"policy": "MlpLstmPolicy", "n_envs": SB3_NUM_ENVS, "max_steps": args.max_steps,
              **{name: repr(getattr(model, name)) for name in ("learning_rate", "n_steps", "batch_size", "n_epochs",
                                                                "gamma", "gae_lambda", "clip_range", "ent_coef",
                                                                "vf_coef", "max_grad_norm", "policy_kwargs")}}
    Path(args.output).write_text(json.dumps({**curve, "num_timesteps": int(model.num_timesteps), "final": final,
                                             "train_seconds": train_seconds, "config": config}))


def run_pair(env_id: str, seed: int, args: argparse.Namespace, runs_dir: Path, scratch: Path) -> list[dict[str, Any]]:
    """One env and seed: each of our trainers, then sb3-contrib for the wall-clock our PPO run took."""
    records = []
    for agent in args.agents:
        record = run_ours(agent, env_id, seed, args.timesteps[agent], args.set, runs_dir, args.episodes)
        records.append(record)
        print_run(record)
        if agent == "ppo" and args.sb3:
            budget = min(max(record["seconds"], args.sb3_min_seconds), args.sb3_max_seconds)
            sb3 = run_sb3(env_id, seed, budget, args.sb3_max_steps, record["prev_action"], args.episodes, scratch)
            records.append(sb3)
            print_run(sb3)
    return records


def curve_of(record: dict[str, Any]) -> LearningCurve:
    """A record's training curve."""
    curve = record["curve"]
    return LearningCurve(curve["steps"], curve["seconds"], curve["returns"])


@dataclass
class PairFigures:
    """Our PPO run against sb3-contrib's on one env and seed."""

    equal_steps: float  # the env steps both reached
    equal_seconds: float  # the wall-clock both reached
    ours_at_steps: float | None
    sb3_at_steps: float | None
    ours_at_seconds: float | None
    sb3_at_seconds: float | None
    ours_seconds_to_sb3: float | None  # seconds our curve took to first reach sb3-contrib's MMER; None if never
    sb3_seconds_to_sb3: float  # seconds sb3-contrib's curve took to first reach its own MMER
    sb3_learned: bool  # sb3-contrib's MMER lies at least LEARNED above its curve's first point


def pair_figures(ours: dict[str, Any], sb3: dict[str, Any]) -> PairFigures:
    """MMER of both runs at equal env steps and at equal wall-clock, and each one's time to sb3-contrib's MMER."""
    ours_curve, sb3_curve = curve_of(ours), curve_of(sb3)
    steps = min(ours_curve.steps[-1], sb3_curve.steps[-1]) if ours_curve.steps and sb3_curve.steps else 0
    seconds = min(ours["seconds"], sb3["seconds"])
    target = sb3["mmer"]
    reached_by_ours = None if target is None else ours_curve.first_reaching(target)
    reached_by_sb3 = None if target is None else sb3_curve.first_reaching(target)
    return PairFigures(
        steps, seconds, ours_curve.mmer(max_steps=steps), sb3_curve.mmer(max_steps=steps),
        ours_curve.mmer(max_seconds=seconds), sb3_curve.mmer(max_seconds=seconds),
        None if reached_by_ours is None else reached_by_ours[1],
        float("nan") if reached_by_sb3 is None else reached_by_sb3[1],
        bool(sb3_curve.returns) and target - sb3_curve.returns[0] >= LEARNED,
    )


def mean_text(values: list[float | None], digits: int = 2) -> str:
    """The mean of ``values`` with their standard deviation over seeds; a dash where a value is missing."""
    if not values or any(value is None for value in values):
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def comparison_table(records: list[dict[str, Any]], env_ids: list[str], seeds: list[int]) -> list[str]:
    """Our PPO against sb3-contrib's per env: MMER at equal env steps and at equal wall-clock, and the times."""
    lines = [
        "| env | previous action | MMER at equal env steps (steps): ours / sb3-contrib | MMER at equal wall-clock "
        "(s): ours / sb3-contrib | ours − sb3-contrib | time to sb3-contrib's MMER: ours / sb3-contrib (s) | ratio |",
        "|---|---|---|---|---:|---|---:|",
    ]
    for env_id in env_ids:
        pairs = []
        for seed in seeds:
            ours = find_record(records, OURS, "ppo", env_id, seed)
            sb3 = find_record(records, SB3, "ppo", env_id, seed)
            if ours and sb3:
                pairs.append(pair_figures(ours, sb3))
        if not pairs:
            continue
        learned = [pair for pair in pairs if pair.sb3_learned]
        ours_times = [pair.ours_seconds_to_sb3 for pair in learned]
        sb3_times = [pair.sb3_seconds_to_sb3 for pair in learned]
        if not learned:
            time_ratio = "sb3-contrib did not learn"
        elif any(t is None for t in ours_times):
            time_ratio = "ours never reached it"
        else:
            time_ratio = f"{statistics.median(o / s for o, s in zip(ours_times, sb3_times)):.2f}x"
            if len(learned) < len(pairs):
                time_ratio += f" ({len(learned)} of {len(pairs)} seeds)"
        at_seconds = [(pair.ours_at_seconds, pair.sb3_at_seconds) for pair in pairs]
        seconds_difference = "—" if any(o is None or s is None for o, s in at_seconds) else (
            f"{statistics.mean(o - s for o, s in at_seconds):+.2f}")
        previous_action = next(record["prev_action"] for record in records
                               if (record["library"], record["agent"], record["env"]) == (OURS, "ppo", env_id))
        lines.append(
            f"| {short_name(env_id)} | {'yes' if previous_action else 'no'} "
            f"| {mean_text([p.ours_at_steps for p in pairs])} / {mean_text([p.sb3_at_steps for p in pairs])} "
            f"({statistics.median(p.equal_steps for p in pairs):,.0f}) "
            f"| {mean_text([p.ours_at_seconds for p in pairs])} / {mean_text([p.sb3_at_seconds for p in pairs])} "
            f"({statistics.median(p.equal_seconds for p in pairs):.0f}) | {seconds_difference} "
            f"| {mean_text(ours_times, 0)} / {mean_text(sb3_times, 0)} | {time_ratio} |"
        )
    return lines


def comparison_lines(records: list[dict[str, Any]], env_ids: list[str], seeds: list[int]) -> list[str]:
    """:func:`comparison_table` with the text that says how to read it."""
    return [
        *comparison_table(records, env_ids, seeds),
        "",
        "MMER lies in [-1, 1], so the two libraries' MMERs are compared by their difference (ours minus "
        "sb3-contrib's, means over seeds), not a ratio; the time ratio is the median over seeds of our time to first "
        f"reach sb3-contrib's MMER over sb3-contrib's own time to reach it, over the seeds where sb3-contrib "
        f"learned (its MMER at least {LEARNED} above its first point). sb3-contrib stops at its first env step "
        "past the time budget, so the update after its last rollout runs past it: its seconds are what it took.",
        "",
    ]


def find_record(records: list[dict[str, Any]], library: str, agent: str, env_id: str,
                seed: int) -> dict[str, Any] | None:
    """The record of one library's trainer on one env and seed."""
    return next((record for record in records if (record["library"], record["agent"], record["env"], record["seed"])
                 == (library, agent, env_id, seed)), None)


def runs_table(records: list[dict[str, Any]], env_ids: list[str], seeds: list[int]) -> list[str]:
    """Every trainer's MMER, final greedy and sampled returns, env steps, seconds (and Evolino's network
    evaluations) per env, over seeds."""
    lines = [
        "| env | library | trainer | previous action | MMER | final greedy | final sampled | env steps | seconds "
        "| network evaluations | POPGym paper (LSTM / GRU) |",
        "|---|---|---|---|---|---|---|---:|---:|---:|---|",
    ]
    trainers = list(dict.fromkeys((record["library"], record["agent"]) for record in records))
    for env_id in env_ids:
        for library, agent in trainers:
            group = [find_record(records, library, agent, env_id, seed) for seed in seeds]
            group = [record for record in group if record is not None]
            if not group:
                continue
            networks = [r.get("network_evaluations") for r in group]
            networks_text = "—" if None in networks else f"{statistics.median(networks):,.0f}"
            lines.append(
                f"| {short_name(env_id)} | {library} | {agent} | {'yes' if group[0]['prev_action'] else 'no'} "
                f"| {mean_text([r['mmer'] for r in group])} | {mean_text([r['final']['greedy'] for r in group])} "
                f"| {mean_text([r['final']['sampled'] for r in group])} "
                f"| {statistics.median(r['env_steps'] for r in group):,.0f} "
                f"| {statistics.median(r['seconds'] for r in group):.0f} | {networks_text} | {PAPER_FIGURES} |"
            )
    return lines


# What we could read of Morad et al.'s per-env figures (see the section's text): none.
PAPER_FIGURES = "not found in the sources we could read"


def draw_figures(records: list[dict[str, Any]], env_ids: list[str], figures_dir: Path,
                 scores_dir: Path) -> list[str]:
    """Our runs' curves per env (``rl-lstm plot``) and the IQM over envs per trainer (``rl-lstm compare``, each
    env's returns normalized by POPGym's range [-1, 1]); the lines that show them."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "rl_lstm.cli"]
    ours = [record for record in records if record["library"] == OURS]
    lines = []
    for env_id in env_ids:
        run_dirs = [record["run_dir"] for record in ours if record["env"] == env_id]
        if run_dirs:
            image = figures_dir / f"{short_name(env_id)}.png"
            run_command([*cli, "plot", *run_dirs, "--tag", CURVE_TAG, "--output", str(image)])
            lines.append(f"![{short_name(env_id)}]({image.relative_to(figures_dir.parent.parent)})")
    ranges = [argument for env_id in env_ids for argument in ("--score-range", f"popgym:{env_id}=-1:1")]
    run_command([*cli, "compare", *(record["run_dir"] for record in ours), *ranges, "--output", str(scores_dir)])
    aggregates = json.loads((scores_dir / "compare.json").read_text())["aggregates"]
    lines.append("")
    lines.append("| trainer | IQM of normalized final greedy return over envs and seeds [95% CI] |")
    lines.append("|---|---|")
    for label, values in aggregates.items():
        iqm = values["IQM"]
        low, high = iqm["ci_95"]
        lines.append(f"| {label} | {iqm['estimate']:.3f} [{low:.3f}, {high:.3f}] |")
    return lines


def shown(path: Path) -> str:
    """``path`` relative to the checkout where it lies in it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def benchmark_popgym(args: argparse.Namespace) -> str:
    """POPGym's envs through rl-lstm train and evaluate, beside sb3-contrib's RecurrentPPO; records and tables."""
    if args.tiny:
        args.envs = args.envs or list(TINY_ENVS)
        args.timesteps = {agent: 3000 for agent in args.agents}
        # sb3-contrib gets its few thousand steps, not our few seconds (less than its start-up).
        args.sb3_max_steps, args.sb3_min_seconds, args.episodes = 2048, 60.0, 5
    else:
        args.timesteps = parse_timesteps(args.timesteps, args.agents)
    env_ids = [env_id_of(name) for name in args.envs] if args.envs else popgym_env_ids(args.difficulty)
    known = set(popgym_env_ids("Easy") + popgym_env_ids("Medium") + popgym_env_ids("Hard"))
    unknown = [env_id for env_id in env_ids if env_id not in known]
    if unknown:
        raise SystemExit(f"not POPGym envs: {', '.join(unknown)}; POPGym's Easy envs are "
                         f"{', '.join(map(short_name, popgym_env_ids('Easy')))} (and their Medium and Hard)")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    runs_dir = Path(args.runs_dir or ROOT / "runs" / "benchmark-popgym" / stamp).resolve()
    # A labelled run (another key, other seeds) keeps its records and curves beside the unlabelled run's.
    name = "popgym" + (f"-{args.label}" if args.label else "")
    records_file = Path(args.records) if args.records else DOCS / f"{name}.json"
    shared = provenance()
    shared["machine"]["torch_threads"] = 1  # each run's, not this orchestrating process's
    shared["machine"]["runs_side_by_side"] = args.jobs
    records: list[dict[str, Any]] = []
    written = threading.Lock()

    def run_and_record(env_id: str, seed: int, scratch: Path) -> None:
        # Every finished pair is written at once: a run that fails later loses none of the earlier ones.
        pair_records = [{**record, **shared} for record in run_pair(env_id, seed, args, runs_dir, scratch)]
        with written:
            records.extend(pair_records)
            write_records(records_file, records, args.command)

    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.jobs) as pool:
        pairs = [(env_id, seed) for env_id in env_ids for seed in args.seeds]
        list(pool.map(lambda pair: run_and_record(*pair, Path(scratch)), pairs))
    figures = draw_figures(records, env_ids, Path(args.figures) if args.figures else DOCS / "img" / name,
                           runs_dir / "compare")
    assigned = f" with `--set {shlex.join(args.set)}`" if args.set else ""
    budgets = ", ".join(f"{agent} {args.timesteps[agent]:,} env steps" for agent in args.agents)
    sb3 = (f"; sb3-contrib: `RecurrentPPO('MlpLstmPolicy')` with its defaults, {SB3_NUM_ENVS} envs, for our PPO "
           f"run's wall-clock (at least {args.sb3_min_seconds:.0f} s, at most {args.sb3_max_seconds:.0f} s and "
           f"{args.sb3_max_steps:,} env steps)") if args.sb3 else ""
    body = [
        f"## POPGym{assigned}: " + ("rl_lstm beside sb3-contrib's RecurrentPPO" if args.sb3 else
                                   f"rl_lstm's {', '.join(args.agents)}"),
        "",
        f"Seeds {', '.join(map(str, args.seeds))}; ours: `rl-lstm train --agent A --env popgym:<id> --seed S` "
        f"({budgets}), defaults and any shipped preset{assigned}{sb3}. One thread per run, "
        f"{args.jobs} run(s) side by side. Final returns: {args.episodes} episodes from eval seed "
        f"{EVALUATION_SEED}, greedy and sampled. Values are means ± "
        f"standard deviation over seeds; steps and seconds are medians. Records: `{shown(records_file)}`.",
        "",
        *(comparison_lines(records, env_ids, args.seeds) if args.sb3 else []),
        *runs_table(records, env_ids, args.seeds),
        "",
        *figures,
    ]
    return "\n".join(body)


def parse_timesteps(entries: list[str], agents: list[str]) -> dict[str, int]:
    """``--timesteps`` as {agent: env steps}: one number for every trainer, or AGENT=N entries over the defaults."""
    budgets = {"ppo": 1_000_000, "reinforce": 1_000_000, "evolino": 5_000_000}
    for entry in entries:
        agent, _, steps = entry.rpartition("=")
        if not steps.isdigit() or (agent and agent not in budgets):
            raise SystemExit(f"--timesteps {entry!r} is not N or AGENT=N with AGENT one of {', '.join(budgets)}")
        for name in ([agent] if agent else agents):
            budgets[name] = int(steps)
    return budgets


def add_parsers(subparsers: Any) -> None:
    """The ``popgym`` benchmark's command line."""
    parser = subparsers.add_parser("popgym", help="POPGym's envs, ours beside sb3-contrib's RecurrentPPO")
    parser.add_argument("--envs", nargs="+", default=None,
                        help="POPGym env names, e.g. RepeatPreviousEasy (default: every env of --difficulty)")
    parser.add_argument("--difficulty", choices=("Easy", "Medium", "Hard"), default="Easy")
    parser.add_argument("--agents", nargs="+", choices=("ppo", "reinforce", "evolino"), default=["ppo"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--timesteps", nargs="+", default=[],
                        help="env steps per run: N, or AGENT=N (default ppo=1000000 reinforce=1000000 "
                             "evolino=5000000)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="--set for every rl-lstm train")
    parser.add_argument("--no-sb3", dest="sb3", action="store_false", help="our trainers only")
    parser.add_argument("--sb3-max-seconds", type=float, default=1200.0)
    parser.add_argument("--sb3-min-seconds", type=float, default=0.0)
    parser.add_argument("--sb3-max-steps", type=int, default=5_000_000)
    parser.add_argument("--episodes", type=int, default=100, help="final evaluation episodes, greedy and sampled")
    parser.add_argument("--jobs", type=int, default=1, help="(env, seed) pairs run side by side, one core each")
    parser.add_argument("--runs-dir", default=None, help="where our run folders go (default runs/benchmark-popgym/)")
    parser.add_argument("--records", default=None, help="the JSON of records to write (default docs/popgym.json, "
                        "docs/popgym-LABEL.json with --label)")
    parser.add_argument("--figures", default=None, help="folder for the curves' PNGs (default docs/img/popgym, "
                        "docs/img/popgym-LABEL with --label)")
    parser.add_argument("--tiny", action="store_true", help="two envs, a few thousand steps: the tests' run")
    parser.add_argument("--label", default=None, help="a suffix for the docs section, e.g. prev-action")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.set_defaults(run=benchmark_popgym)


if __name__ == "__main__":
    sb3_worker()
