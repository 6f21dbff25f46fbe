"""Recurrent PPO benchmarks: ours against sb3-contrib's RecurrentPPO, and ours alone on the memory tasks.

    python scripts/benchmark.py ppo-vs-sb3 --timesteps 100000 --seeds 3
    python scripts/benchmark.py ppo-vs-sb3 --env rl_lstm/TMaze-v0 --env-kwargs length=10
    python scripts/benchmark.py ppo --seeds 5 --tasks rl_lstm/TMaze-v0:length=50 "rl_lstm/CountRecallEasy-v0@return>=.5"

``add_parsers`` registers both subcommands on scripts/benchmark.py's parser; each subcommand's ``run(args)``
returns its markdown section, which scripts/benchmark.py writes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sb3_contrib import RecurrentPPO as Sb3ContribRecurrentPPO
from scipy import stats
from stable_baselines3 import PPO as Sb3PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize, sync_envs_normalization
from torch import nn

import envs  # noqa: F401  (registers the rl_lstm/ env ids with gymnasium)
from agents import agent_class
from agents.ppo import RecurrentPPO
from rl_lstm.config import config_to_dict, parse_assignments, preset, split_env_spec
from rl_lstm.curriculum import METRICS
from rl_lstm.errors import ConfigError
from rl_lstm.evaluation import EvaluationResult, evaluate_agent
from rl_lstm.logger import EpisodeStatistics
from rl_lstm.results import plot_curves
from rl_lstm.solving import EVALUATION_SEED, Task, kwargs_text, train_until_solved

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "docs" / "img"  # pictures that docs/benchmarks.md shows

ZOO_URL = "https://github.com/DLR-RM/rl-baselines3-zoo/blob"
ZOO_PPO_LSTM_COMMIT = "c94924e5b31bce36920f29d3eb18b975231bdec4"
ZOO_PPO_COMMIT = "208b6fdf3a9aa24de44b2e068c6e5f6a07d97fcc"

# rl-baselines3-zoo hyperparams/ppo_lstm.yml, entry CartPoleNoVel-v1 ("# Tuned") at ZOO_PPO_LSTM_COMMIT, in the
# zoo's own vocabulary. Keys the entry leaves out take SB3's defaults (vf_coef 0.5, max_grad_norm 0.5, advantage
# normalization on), which are also ours. "normalize: True" is VecNormalize of observations and rewards.
ZOO_PPO_LSTM_CARTPOLE_NOVEL: dict[str, Any] = {
    "normalize": True,
    "n_envs": 8,
    "n_timesteps": 100_000,
    "policy": "MlpLstmPolicy",
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
    "policy_kwargs": {
        "ortho_init": False,
        "activation_fn": nn.ReLU,
        "lstm_hidden_size": 64,
        "enable_critic_lstm": True,
        "net_arch": {"pi": [64], "vf": [64]},
    },
}

# rl-baselines3-zoo hyperparams/ppo.yml, entry CartPole-v1 ("# Tuned") at ZOO_PPO_COMMIT, plus the zoo's own
# frame_stack key: the memoryless baseline sees the last 4 observations (velocities become differences).
ZOO_PPO_CARTPOLE_FRAME_STACK: dict[str, Any] = {
    "frame_stack": 4,
    "n_envs": 8,
    "n_timesteps": 100_000,
    "policy": "MlpPolicy",
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}

SB3_CONTRIB = "sb3-contrib RecurrentPPO"
OURS = "rl_lstm RecurrentPPO"
SB3_FRAME_STACK = "SB3 PPO, 4 stacked frames"
COMPARISON_ORDER = (SB3_CONTRIB, OURS, SB3_FRAME_STACK)

ACTIVATION_NAMES: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Tanh: "tanh"}


@dataclass
class TrainingRun:
    """One timed ``learn`` of one library and its evaluations, at given env steps during it and at its end."""

    library: str
    seed: int
    env_steps: int  # env steps learn() took (whole rollouts, so a little above the budget)
    training_seconds: float  # wall-clock of learn() with the evaluations during it taken out
    evaluations: dict[int, EvaluationResult]  # by the evaluation point (env steps) they were taken at or just after

    @property
    def evaluation(self) -> EvaluationResult:
        """The evaluation after training."""
        return self.evaluations[max(self.evaluations)]

    @property
    def steps_per_second(self) -> float:
        """Env steps per wall-clock second of training."""
        return self.env_steps / self.training_seconds


class EvaluationPoints:
    """Evaluates a model once training passes each of ``points`` env steps, timing the evaluations to take them out
    of the training time."""

    def __init__(self, points: list[int], evaluate: Callable[[], EvaluationResult]) -> None:
        self.pending, self.evaluate = sorted(points), evaluate
        self.evaluations: dict[int, EvaluationResult] = {}
        self.seconds = 0.0

    def passed(self, env_steps: int) -> None:
        """Evaluate for every point ``env_steps`` has reached that was not evaluated yet."""
        while self.pending and env_steps >= self.pending[0]:
            start = time.perf_counter()
            evaluation = self.evaluate()
            self.evaluations[self.pending.pop(0)] = evaluation
            self.seconds += time.perf_counter() - start


class _EvaluateAtPoints(BaseCallback):
    """An SB3 callback handing :class:`EvaluationPoints` the env steps after each update (at the next rollout's start),
    where our ``learn`` calls its callback."""

    def __init__(self, points: EvaluationPoints) -> None:
        super().__init__()
        self.points = points

    def _on_rollout_start(self) -> None:
        self.points.passed(self.num_timesteps)

    def _on_step(self) -> bool:
        return True


def zoo_schedule(value: str | float) -> tuple[float, str]:
    """A zoo schedule (``"lin_0.001"`` or a number) as our ``(start value, "linear" | "constant")``."""
    if isinstance(value, str):
        kind, start = value.split("_")
        if kind != "lin":
            raise ConfigError(f"zoo schedule {value!r} is not 'lin_<start>' or a number")
        return float(start), "linear"
    return float(value), "constant"


def sb3_hyperparameters(zoo: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments an SB3 algorithm takes for a zoo entry (what the zoo's ExperimentManager passes)."""
    copied = ("n_steps", "batch_size", "gae_lambda", "gamma", "n_epochs", "ent_coef")
    hyperparameters = {key: zoo[key] for key in copied}
    for key in ("learning_rate", "clip_range"):
        start, schedule = zoo_schedule(zoo[key])
        # The zoo's linear_schedule is progress_remaining * start: from start down to 0 at the end of learn().
        hyperparameters[key] = LinearSchedule(start, 0.0, 1.0) if schedule == "linear" else start
    if "policy_kwargs" in zoo:
        hyperparameters["policy_kwargs"] = dict(zoo["policy_kwargs"])
    return hyperparameters


def our_hyperparameters(zoo: dict[str, Any]) -> dict[str, Any]:
    """Our PPOConfig for an sb3-contrib zoo entry: the same algorithm and network, field by field."""
    policy = zoo["policy_kwargs"]
    if not policy["enable_critic_lstm"]:
        raise ConfigError("a critic without an LSTM (enable_critic_lstm=False) has no counterpart in our policy")
    learning_rate, lr_schedule = zoo_schedule(zoo["learning_rate"])
    clip_range, clip_schedule = zoo_schedule(zoo["clip_range"])
    return {
        "num_envs": zoo["n_envs"],
        "n_steps": zoo["n_steps"],
        # sb3-contrib backpropagates through each env's whole n_steps rollout: one sequence per env.
        "seq_len": zoo["n_steps"],
        "batch_size": zoo["batch_size"],
        "n_epochs": zoo["n_epochs"],
        "gamma": zoo["gamma"],
        "gae_lambda": zoo["gae_lambda"],
        "ent_coef": zoo["ent_coef"],
        "learning_rate": learning_rate,
        "lr_schedule": lr_schedule,
        "clip_range": clip_range,
        "clip_schedule": clip_schedule,
        "normalize_advantage": True,
        "normalize_observations": zoo["normalize"],
        "normalize_rewards": zoo["normalize"],
        "core": "lstm",
        "hidden_size": policy["lstm_hidden_size"],
        "shared_core": False,
        "net_arch_pi": tuple(policy["net_arch"]["pi"]),
        "net_arch_vf": tuple(policy["net_arch"]["vf"]),
        "activation": ACTIVATION_NAMES[policy["activation_fn"]],
        "ortho_init": policy["ortho_init"],
        # sb3-contrib keeps nn.LSTM's init; 0 is the nearest we set (our default opens the forget gate at 1).
        "core_kwargs": {"forget_bias": 0.0},
    }


def make_sb3_env(zoo: dict[str, Any], env_id: str, env_kwargs: dict[str, Any], seed: int, training: bool) -> VecEnv:
    """The zoo's env for an entry: a DummyVecEnv of Monitor-wrapped copies, normalized and frame-stacked as it says."""
    env: VecEnv = make_vec_env(env_id, n_envs=zoo["n_envs"], seed=seed, env_kwargs=env_kwargs)
    if zoo.get("normalize") and training:
        env = VecNormalize(env, gamma=zoo["gamma"])
    elif zoo.get("normalize"):
        # As the zoo evaluates: statistics frozen (copied in from training), raw rewards.
        env = VecNormalize(env, training=False, norm_reward=False)
    if "frame_stack" in zoo:
        env = VecFrameStack(env, n_stack=zoo["frame_stack"])
    return env


def evaluate_sb3(model: BaseAlgorithm, env: VecEnv, num_episodes: int) -> EvaluationResult:
    """Deterministic episodes of an SB3 model with ``evaluate_policy`` (quota per copy), with info["is_success"]."""
    successes: list[bool] = []
    success_reported = False

    def record_success(local_variables: dict[str, Any], _globals: dict[str, Any]) -> None:
        nonlocal success_reported
        info = local_variables["info"]
        # The same episodes evaluate_policy counts: those Monitor closes with info["episode"].
        if local_variables["done"] and "episode" in info:
            successes.append(bool(info.get("is_success", False)))
            success_reported |= "is_success" in info

    returns, lengths = evaluate_policy(
        model, env, n_eval_episodes=num_episodes, deterministic=True, return_episode_rewards=True,
        callback=record_success,
    )
    return EvaluationResult(np.array(returns), np.array(lengths), np.array(successes) if success_reported else None)


def run_sb3(library: str, algorithm: type[BaseAlgorithm], zoo: dict[str, Any], env_id: str, env_kwargs: dict[str, Any],
            seed: int, timesteps: int, eval_episodes: int, eval_at: list[int]) -> TrainingRun:
    """Train an SB3 algorithm on a zoo entry, evaluating it at ``eval_at`` env steps and after ``learn``, which is
    timed without the evaluations."""
    train_env = make_sb3_env(zoo, env_id, env_kwargs, seed, training=True)
    model = algorithm(zoo["policy"], train_env, seed=seed, device="cpu", verbose=0, **sb3_hyperparameters(zoo))

    def evaluate() -> EvaluationResult:
        eval_env = make_sb3_env(zoo, env_id, env_kwargs, EVALUATION_SEED, training=False)
        sync_envs_normalization(train_env, eval_env)
        evaluation = evaluate_sb3(model, eval_env, eval_episodes)
        eval_env.close()
        return evaluation

    points = EvaluationPoints(eval_at, evaluate)
    start = time.perf_counter()
    model.learn(timesteps, progress_bar=False, callback=_EvaluateAtPoints(points))
    training_seconds = time.perf_counter() - start - points.seconds
    points.passed(max(model.num_timesteps, max(eval_at)))  # after the last update
    train_env.close()
    return TrainingRun(library, seed, model.num_timesteps, training_seconds, points.evaluations)


def run_ours(zoo: dict[str, Any], env_id: str, env_kwargs: dict[str, Any], seed: int, timesteps: int,
             eval_episodes: int, eval_at: list[int]) -> TrainingRun:
    """Train our RecurrentPPO on the zoo entry's hyperparameters, evaluating it at ``eval_at`` env steps and after
    ``learn``, which is timed without the evaluations."""
    agent = RecurrentPPO(env_id, seed=seed, device="cpu", tensorboard_log=None, env_kwargs=env_kwargs,
                         **our_hyperparameters(zoo))
    points = EvaluationPoints(eval_at, lambda: evaluate_agent(agent, num_episodes=eval_episodes, deterministic=True,
                                                              seed=EVALUATION_SEED))
    start = time.perf_counter()
    agent.learn(timesteps, progress_bar=False, callback=lambda agent: points.passed(agent.num_timesteps))
    training_seconds = time.perf_counter() - start - points.seconds
    points.passed(max(agent.num_timesteps, max(eval_at)))
    agent.env.close()
    return TrainingRun(OURS, seed, agent.num_timesteps, training_seconds, points.evaluations)


WARM_UP_ROLLOUTS = 5  # the time budget's first iterations pay for allocations and oneDNN's kernel setup; not timed


@dataclass
class TimeBudget:
    """Where one of our PPO iterations spends its time, per rollout, measured on a live training run."""

    steps_per_rollout: int
    minibatches_per_rollout: float
    collect_seconds: float  # acting and env stepping, per rollout
    update_seconds: float  # every epoch's minibatches, per rollout
    cores_seconds: float  # the recurrent cores' forward + backward alone on the same minibatches, per rollout

    def ceiling(self) -> float:
        """Env steps/s if everything but the cores' training kernels took no time."""
        return self.steps_per_rollout / self.cores_seconds


def measure_time_budget(zoo: dict[str, Any], env_id: str, env_kwargs: dict[str, Any], seed: int,
                        rollouts: int) -> TimeBudget:
    """Time our collect and update phases over ``rollouts`` iterations, and the cores' kernels alone in them.

    After each update the same rollout's minibatches are replayed through the actor and critic cores only
    (forward and backward on the encoded observations), which is the part of an update no per-op overhead
    saving can remove: the fused nn.LSTM kernels over ``seq_len`` steps.
    """
    agent = RecurrentPPO(env_id, seed=seed, device="cpu", tensorboard_log=None, env_kwargs=env_kwargs,
                         **our_hyperparameters(zoo))
    policy, config = agent.policy, agent.config
    statistics = EpisodeStatistics()
    collect = update = cores = 0.0
    minibatches = 0
    steps_per_rollout = config.n_steps * agent.env.num_envs
    for iteration in range(WARM_UP_ROLLOUTS + rollouts):
        # One iteration of learn() without its logging; it reports the rate of each of its two phases.
        scalars = agent._iterate(statistics, progress=iteration / (WARM_UP_ROLLOUTS + rollouts))
        if iteration < WARM_UP_ROLLOUTS:
            continue
        collect += steps_per_rollout / scalars["time/collect_steps_per_second"]
        update += steps_per_rollout / scalars["time/update_steps_per_second"]
        for _ in range(config.n_epochs):
            for batch in agent.buffer.minibatches(config.batch_size, agent.rng):
                with torch.no_grad():
                    features = policy.encoder_mlp(policy.encoder(policy.preprocess(batch.observations)))
                split = policy.num_actor_state_tensors
                kernels_start = time.perf_counter()
                outputs = [policy.actor_core(features, batch.initial_state[:split], batch.episode_starts)[0]]
                if policy.critic_core is not None:
                    outputs.append(policy.critic_core(features, batch.initial_state[split:], batch.episode_starts)[0])
                sum(output.sum() for output in outputs).backward()
                cores += time.perf_counter() - kernels_start
                minibatches += 1
        policy.zero_grad(set_to_none=True)
    agent.env.close()
    return TimeBudget(steps_per_rollout, minibatches / rollouts, collect / rollouts, update / rollouts,
                      cores / rollouts)


def time_budget_lines(budget: TimeBudget, sb3_contrib_rate: float | None, rollouts: int, seed: int) -> list[str]:
    """The report's paragraph on where our time goes and the speed the cores' kernels alone allow (and how that
    compares with sb3-contrib's median rate, when there is one)."""
    per_rollout = budget.collect_seconds + budget.update_seconds
    per_minibatch = budget.update_seconds / budget.minibatches_per_rollout
    cores_per_minibatch = budget.cores_seconds / budget.minibatches_per_rollout
    against_sb3 = "" if sb3_contrib_rate is None else (
        f", {budget.ceiling() / sb3_contrib_rate:.1f}x sb3-contrib's median above")
    return [
        "",
        f"Where our time goes (a separate run of ours, seed {seed}, {rollouts} rollouts after {WARM_UP_ROLLOUTS} "
        "warm-up ones, "
        "`time.perf_counter` around each phase): per rollout of "
        f"{budget.steps_per_rollout} env steps, collecting takes {budget.collect_seconds * 1e3:.1f} ms "
        f"({budget.collect_seconds / budget.steps_per_rollout * 1e6:.0f} µs per env step) and "
        f"updating {budget.update_seconds * 1e3:.1f} ms ({budget.minibatches_per_rollout:.0f} minibatches of "
        f"{per_minibatch * 1e3:.2f} ms), {budget.steps_per_rollout / per_rollout:,.0f} env steps/s in all. "
        "Replaying the same minibatches through the actor and critic LSTMs alone, "
        f"forward and backward, takes {cores_per_minibatch * 1e3:.2f} ms per minibatch "
        f"({budget.cores_seconds / per_rollout:.0%} of an iteration): if everything else cost nothing we would "
        f"run at most {budget.ceiling():,.0f} env steps/s{against_sb3}.",
    ]


def format_return(evaluation: EvaluationResult) -> str:
    """``mean ± std`` of the episode returns, with the success rate when the env reports one."""
    text = f"{evaluation.mean_return:.2f} ± {evaluation.std_return:.2f}"
    return text if evaluation.success_rate is None else f"{text} (success {evaluation.success_rate:.0%})"


def format_mean_ci(evaluations: list[EvaluationResult]) -> str:
    """Mean ± the 95% confidence interval's half-width (Student's t) over seeds of each evaluation's mean return."""
    mean_returns = np.array([evaluation.mean_return for evaluation in evaluations])
    if len(mean_returns) < 2:
        return f"{mean_returns.mean():.1f} (one seed)"
    half_width = stats.t.ppf(0.975, len(mean_returns) - 1) * stats.sem(mean_returns)
    return f"{mean_returns.mean():.1f} ± {half_width:.1f}"


def format_over_seeds(evaluations: list[EvaluationResult]) -> str:
    """Mean ± std over seeds of each evaluation's mean return, with the mean success rate when every one has it."""
    mean_returns = [evaluation.mean_return for evaluation in evaluations]
    text = f"{statistics.mean(mean_returns):.2f} ± {float(np.std(mean_returns)):.2f}"
    success_rates = [evaluation.success_rate for evaluation in evaluations]
    if all(rate is not None for rate in success_rates):
        text += f" (success {statistics.mean(success_rates):.0%})"
    return text


def zoo_text(zoo: dict[str, Any]) -> str:
    """A zoo entry as ``key: value`` text for the report (activation classes by name)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return "dict(" + ", ".join(f"{key}={plain(item)}" for key, item in value.items()) + ")"
        return f"nn.{value.__name__}" if isinstance(value, type) else value

    return ", ".join(f"{key}: {plain(value)}" for key, value in zoo.items() if key not in ("policy", "n_timesteps"))


def seeds_text(seeds: int) -> str:
    """``"seed 0"`` or ``"seeds 0 to 4"``."""
    return "seed 0" if seeds == 1 else f"seeds 0 to {seeds - 1}"


def benchmark_ppo_vs_sb3(args: argparse.Namespace) -> str:
    """sb3-contrib RecurrentPPO, ours and SB3 PPO over stacked frames, same budget, timed and evaluated alike."""
    torch.set_num_threads(1)
    env_kwargs = parse_assignments(args.env_kwargs, option="--env-kwargs")
    if args.budget_only:
        args.no_write = True  # a time budget alone does not replace the comparison's section
        budget = measure_time_budget(ZOO_PPO_LSTM_CARTPOLE_NOVEL, args.env, env_kwargs, 0, args.budget_rollouts)
        return "\n".join(time_budget_lines(budget, None, args.budget_rollouts, 0)).strip()
    if any(point > args.timesteps for point in args.eval_at):
        raise SystemExit(f"--eval-at points must not exceed --timesteps ({args.timesteps:,})")
    eval_at = sorted({*args.eval_at, args.timesteps})
    contestants: dict[str, Callable[[int], TrainingRun]] = {
        SB3_CONTRIB: lambda seed: run_sb3(SB3_CONTRIB, Sb3ContribRecurrentPPO, ZOO_PPO_LSTM_CARTPOLE_NOVEL, args.env,
                                          env_kwargs, seed, args.timesteps, args.eval_episodes, eval_at),
        OURS: lambda seed: run_ours(ZOO_PPO_LSTM_CARTPOLE_NOVEL, args.env, env_kwargs, seed, args.timesteps,
                                    args.eval_episodes, eval_at),
        SB3_FRAME_STACK: lambda seed: run_sb3(SB3_FRAME_STACK, Sb3PPO, ZOO_PPO_CARTPOLE_FRAME_STACK, args.env,
                                              env_kwargs, seed, args.timesteps, args.eval_episodes, eval_at),
    }
    at_points = " | ".join(f"eval return at {point:,} (mean ± std)" for point in eval_at)
    lines = [
        f"| library | seed | env steps/s | wall-clock s | {at_points} |",
        "|---|---:|---:|---:|" + "---|" * len(eval_at),
    ]
    runs: dict[str, list[TrainingRun]] = {library: [] for library in COMPARISON_ORDER}
    # Alternate the libraries seed by seed so that machine load drifts over all of them alike.
    for seed in range(args.seeds):
        for library in COMPARISON_ORDER:
            run = contestants[library](seed)
            runs[library].append(run)
            returns = " | ".join(format_return(run.evaluations[point]) for point in eval_at)
            row = f"| {library} | {seed} | {run.steps_per_second:,.0f} | {run.training_seconds:,.1f} | {returns} |"
            print(row, flush=True)
            lines.append(row)
    median_rate = {library: statistics.median(r.steps_per_second for r in runs[library]) for library in runs}
    for library in COMPARISON_ORDER:
        median_seconds = statistics.median(r.training_seconds for r in runs[library])
        over_seeds = " | ".join(f"**{format_mean_ci([r.evaluations[point] for r in runs[library]])}**"
                                for point in eval_at)
        lines.append(f"| **{library}** | median; mean ± 95% CI over seeds | **{median_rate[library]:,.0f}** | "
                     f"{median_seconds:,.1f} | {over_seeds} |")
    recurrent_ratio = median_rate[OURS] / median_rate[SB3_CONTRIB]
    frame_stack_ratio = median_rate[OURS] / median_rate[SB3_FRAME_STACK]
    lstm_zoo = f"{ZOO_URL}/{ZOO_PPO_LSTM_COMMIT}/hyperparams/ppo_lstm.yml"
    ppo_zoo = f"{ZOO_URL}/{ZOO_PPO_COMMIT}/hyperparams/ppo.yml"
    lines += [
        "",
        f"Median env steps/s, ours / sb3-contrib: **{recurrent_ratio:.1f}x**; "
        f"ours / SB3 PPO over stacked frames: **{frame_stack_ratio:.2f}x**.",
        "",
        f"Each library trains {args.timesteps:,} env steps per seed on `{args.env}`{kwargs_text(env_kwargs)}, "
        f"{seeds_text(args.seeds)}, the three alternated seed by seed in one process with "
        "`torch.set_num_threads(1)`. Wall-clock is `learn()` alone (`time.perf_counter`; building the model and "
        "evaluating, during and after `learn()`, are outside it); env steps/s is the steps `learn()` took over that "
        "time, env stepping included: sb3's DummyVecEnv of Monitor-wrapped copies (`make_vec_env`, as the zoo "
        "builds it) against "
        f"our native numpy vector env. After the update that passes each of {', '.join(f'{p:,}' for p in eval_at)} "
        f"env steps (our callback after an update; SB3's at the next rollout's start) each model plays "
        f"{args.eval_episodes} deterministic episodes on {ZOO_PPO_LSTM_CARTPOLE_NOVEL['n_envs']} fresh env copies "
        f"seeded from {EVALUATION_SEED} "
        "(SB3's `evaluate_policy`; our `evaluate_agent`), with the training observation statistics frozen and "
        "raw rewards; ± in a seed's row is the std over its episodes, in the summary rows the 95% confidence "
        "interval of the mean over seeds (Student's t over the seeds' mean returns).",
        "",
        f"Hyperparameters, on every env alike: the tuned `CartPoleNoVel-v1` entry of rl-baselines3-zoo's "
        f"[ppo_lstm.yml]({lstm_zoo}) for both recurrent contestants (`{zoo_text(ZOO_PPO_LSTM_CARTPOLE_NOVEL)}`; "
        "`lin_` decays linearly to 0, `normalize` is VecNormalize of observations and rewards, unset keys take "
        "SB3's defaults). Ours takes seq_len = n_steps (sb3-contrib backpropagates through each env's whole "
        "rollout), advantage normalization as sb3, and forget-gate bias 0 (sb3-contrib keeps nn.LSTM's uniform "
        "init; our default is 3); it normalizes with gymnasium's NormalizeObservation/NormalizeReward, which do "
        "not clip at ±10 as VecNormalize does. The memoryless baseline is SB3 `PPO(\"MlpPolicy\")` with the tuned "
        f"`CartPole-v1` entry of [ppo.yml]({ppo_zoo}) (`{zoo_text(ZOO_PPO_CARTPOLE_FRAME_STACK)}`; tanh MLP 64-64, "
        "orthogonal init, no normalization), adapted only by `frame_stack: 4` (`VecFrameStack(n_stack=4)`): it "
        "sees the last 4 observations and nothing before them.",
    ]
    budget = measure_time_budget(ZOO_PPO_LSTM_CARTPOLE_NOVEL, args.env, env_kwargs, 0, args.budget_rollouts)
    lines += time_budget_lines(budget, median_rate[SB3_CONTRIB], args.budget_rollouts, 0)
    title = f"## Recurrent PPO vs sb3-contrib on `{args.env}`{kwargs_text(env_kwargs)}"
    return title + "\n\n" + "\n".join(lines)


# ---- ppo: steps and seconds to a threshold on each task ----------------------------------------------------------

# A task without an explicit "@metric>=value" is solved at its env's threshold here. The recall tasks return
# (right - wrong) / scored steps: 0.9 means 95% of the answers right, 0.5 means 75%. Random answers return -0.5
# among RepeatPrevious's and RepeatFirst's 4 suits and -25/27 among CountRecallEasy's 27 counts, where an agent
# that counts only the steps and answers the likeliest count for each (the hypergeometric mode) returns about
# -0.43: 0.5 asks for real counting.
DEFAULT_THRESHOLDS: dict[str, tuple[str, float]] = {
    "rl_lstm/CartPolePositionOnly-v0": ("return", 475.0),
    "rl_lstm/TMaze-v0": ("success", 0.95),
    "rl_lstm/RepeatPreviousEasy-v0": ("return", 0.9),
    "rl_lstm/RepeatFirstEasy-v0": ("return", 0.9),
    "rl_lstm/CountRecallEasy-v0": ("return", 0.5),
}
DEFAULT_TASKS = (
    "rl_lstm/CartPolePositionOnly-v0",
    "rl_lstm/TMaze-v0:length=50",
    "rl_lstm/TMaze-v0:length=100",
    "rl_lstm/TMaze-v0:length=200",
    "rl_lstm/RepeatPreviousEasy-v0",
    "rl_lstm/RepeatFirstEasy-v0",
    "rl_lstm/CountRecallEasy-v0",
)
# The tasks of Recurrent Policy Gradients that we ship: T-mazes of growing length, and pole balancing
# without velocities (position-only CartPole).
REINFORCE_TASKS = (
    "rl_lstm/TMaze-v0:length=10",
    "rl_lstm/TMaze-v0:length=20",
    "rl_lstm/TMaze-v0:length=50",
    "rl_lstm/CartPolePositionOnly-v0",
)


def parse_task(text: str) -> Task:
    """``ENV_ID[:key=value,...][@return>=X | @success>=X]``, e.g. ``rl_lstm/TMaze-v0:length=50@success>=0.9``."""
    spec, _, criterion = text.partition("@")
    try:
        env_id, env_kwargs = split_env_spec(spec)
    except (ConfigError, yaml.YAMLError) as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    if criterion:
        metric, separator, value = criterion.partition(">=")
        if not separator or metric not in METRICS:
            raise argparse.ArgumentTypeError(f"threshold {criterion!r} must be return>=X or success>=X")
        try:
            threshold = float(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"threshold value {value!r} is not a number") from error
    elif env_id in DEFAULT_THRESHOLDS:
        metric, threshold = DEFAULT_THRESHOLDS[env_id]
    else:
        raise argparse.ArgumentTypeError(
            f"{env_id} has no default threshold; add one, e.g. '{text}@return>=100' or '{text}@success>=0.9'"
        )
    return Task(env_id, env_kwargs, metric, threshold)


@dataclass
class ThresholdRun:
    """One seed of one task: where it first reached the threshold, and its final evaluation (which says solved)."""

    seed: int
    solved: bool  # the final evaluation meets the threshold
    first_solved_steps: int | None  # env steps at the first evaluation that met it (None: none did)
    first_solved_seconds: float | None  # learn()'s wall-clock up to then, evaluations excluded
    env_steps: int  # at the final evaluation
    evaluation_seconds: float  # wall-clock of all its evaluations
    final_evaluation: EvaluationResult

    @property
    def outcome(self) -> str:
        """``solved``, ``collapsed`` (met the threshold, then lost it) or ``not solved``."""
        return "solved" if self.solved else "collapsed" if self.first_solved_steps is not None else "not solved"


def curve_run_dir(args: argparse.Namespace, agent_name: str, task: Task, seed: int) -> Path | None:
    """Where a run of ``--curves`` keeps its config.yaml and TensorBoard events (None without ``--curves``)."""
    if args.curves is None:
        return None
    task_name = (task.env_id + "".join(f"_{key}={value}" for key, value in task.env_kwargs.items()))
    return Path(args.curves) / task_name.replace("/", "_").replace(":", "_") / f"{agent_name}_{seed}"


# What "solved" means in a threshold table, by --stop-at-first-solve.
STOPPING_TEXT = {
    False: "Every run trains to the end of its budget and is solved if its final evaluation (the policy it ends "
           "with) meets the threshold; \"reached once\" counts the runs whose evaluations met it at least once, so "
           "the two differ by the runs that learned the task and lost it.",
    True: "A run stops at the first evaluation that meets the threshold (`--stop-at-first-solve`), so its final "
          "policy is the one that met it: this table does not show whether further training would have kept it.",
}


def run_task(agent_name: str, task: Task, seed: int, args: argparse.Namespace) -> ThresholdRun:
    """One of our agents (its shipped preset, or its defaults alone with --no-preset) trained and judged at the end."""
    _, progress = train_until_solved(agent_name, task, seed, args.eval_every, args.eval_episodes, args.max_seconds,
                                     args.max_timesteps, use_preset=not args.no_preset,
                                     run_dir=curve_run_dir(args, agent_name, task, seed),
                                     stop_at_first_solve=args.stop_at_first_solve)
    return ThresholdRun(seed, progress.solved, progress.first_solved_steps, progress.first_solved_seconds,
                        progress.env_steps, progress.evaluation_seconds, progress.last_evaluation)


def median_or_dash(values: list[float], fmt: str) -> str:
    """The median of ``values`` formatted with ``fmt``, or an em dash when there are none."""
    return format(statistics.median(values), fmt) if values else "—"


def benchmark_solve(args: argparse.Namespace) -> str:
    """Our agents with their shipped presets (or defaults) on each task: seeds solved, env steps and seconds."""
    torch.set_num_threads(1)
    if args.no_preset:
        hyperparameters_text = "with their config defaults alone on every env (`--no-preset`: no shipped preset)"
        title_suffix = " with the defaults alone"
        presets_used = []
        for name in args.agents:
            config_class = agent_class(name).config_class
            presets_used.append(f"Defaults used (`{config_class.__name__}`): `{config_to_dict(config_class())}`")
    else:
        hyperparameters_text = "with the shipped preset of each env (`rl_lstm.config.preset`)"
        title_suffix = ""
        presets_used = [
            "Presets used (the agent's config defaults for every key not listed):",
            "",
            *(
                f"- {agent_name}, {task.label}: `{preset(agent_name, task.env_id, task.env_kwargs) or '{}'}`"
                for agent_name in args.agents
                for task in {task.label: task for task in args.tasks}.values()
            ),
        ]
    lines = [
        "| task | agent | solved when | solved seeds (final policy) | reached once | "
        "median env steps to first crossing | median training s to first crossing | median evaluation s per run | "
        "final eval return (mean ± std over seeds) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    solved_tasks = 0
    for task, agent_name in ((task, agent_name) for task in args.tasks for agent_name in args.agents):
        runs = []
        for seed in range(args.seeds):
            run = run_task(agent_name, task, seed, args)
            runs.append(run)
            first = "never met the threshold" if run.first_solved_steps is None else (
                f"first met the threshold at {run.first_solved_steps:,} env steps ({run.first_solved_seconds:,.1f} s)")
            print(f"{task.label} {agent_name} seed {seed}: {run.outcome}; {first}; final evaluation at "
                  f"{run.env_steps:,} env steps: {format_return(run.final_evaluation)} "
                  f"({run.evaluation_seconds:,.1f} s evaluating)", flush=True)
        solved = [run for run in runs if run.solved]
        reached = [run for run in runs if run.first_solved_steps is not None]
        solved_tasks += len(solved) == len(runs)
        final = format_over_seeds([run.final_evaluation for run in runs])
        lines.append(
            f"| {task.label} | {agent_name} | {task.criterion} | {len(solved)}/{len(runs)} | "
            f"{len(reached)}/{len(runs)} | "
            f"{median_or_dash([run.first_solved_steps for run in solved], ',.0f')} | "
            f"{median_or_dash([run.first_solved_seconds for run in solved], ',.1f')} | "
            f"{statistics.median(run.evaluation_seconds for run in runs):,.1f} | {final} |"
        )
    lines += [
        "",
        f"(Task, agent) pairs solved on every seed: **{solved_tasks}/{len(args.tasks) * len(args.agents)}**.",
        "",
        f"Our agents ({', '.join(args.agents)}) {hyperparameters_text}, "
        f"{seeds_text(args.seeds)}, each run budgeted {args.max_timesteps:,} env steps or {args.max_seconds:,.0f} s "
        "of training, whichever ends first (linear schedules decay over the step budget), with "
        f"`torch.set_num_threads(1)`. Every {args.eval_every:,} env steps, and at the end of the budget, the agent "
        f"plays {args.eval_episodes} deterministic episodes (one per env copy, seeded from {EVALUATION_SEED}). "
        f"{STOPPING_TEXT[args.stop_at_first_solve]} Training seconds are learn()'s wall-clock "
        "with the evaluations taken out (building the agent is outside it); evaluation seconds are all of a run's "
        "evaluations. Medians of steps and seconds to the first crossing are over the solved seeds; the final "
        "return is each run's last evaluation, solved or not. Recall-task returns are (right - wrong) / scored "
        "steps, so 0.9 means 95% of the answers right and 0.5 means 75%; answering at random returns -0.5 among 4 "
        "suits (RepeatPrevious, RepeatFirst) and -25/27 among CountRecallEasy's 27 counts.",
        "",
        *presets_used,
        *args.notes,
    ]
    if args.curves is not None:
        # The learning curves over seeds, drawn by rl-lstm plot's code from the runs' TensorBoard events.
        run_dirs = [curve_run_dir(args, agent_name, task, seed)
                    for task in args.tasks for agent_name in args.agents for seed in range(args.seeds)]
        name = f"{args.benchmark}{'-no-preset' if args.no_preset else ''}_curves.png"
        image = (Path(args.curves) if args.no_write else IMAGE_DIR) / name  # --no-write leaves docs/ alone
        plot_curves(run_dirs, "eval/mean_reward", image)
        lines += ["", f"Evaluation return over env steps, mean and 95% bootstrap band over the seeds, up to the step "
                  f"every seed reached (`rl-lstm plot {args.curves}`):", "",
                  f"![learning curves](img/{name})"]
    return f"## {args.title}{title_suffix}: env steps and seconds to solve each task\n\n" + "\n".join(lines)


def learn_steps_per_second(agent: RecurrentPPO, iterations: int) -> float:
    """Env steps per second of ``agent.learn`` over ``iterations`` PPO iterations, after one to warm up (first
    allocations, Ray actors, the CUDA context and kernels); CUDA's queued work is waited for at both ends."""
    rollout = agent.config.n_steps * agent.config.num_envs
    cuda = agent.device.type == "cuda"
    agent.learn(rollout, progress_bar=False)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    agent.learn(iterations * rollout, progress_bar=False)
    if cuda:
        torch.cuda.synchronize()
    return iterations * rollout / (time.perf_counter() - start)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def benchmark_ppo_layout(args: argparse.Namespace) -> str:
    """Our update on padded pieces against whole chunks that the LSTM kernel resets inside, on the same rollouts."""
    from rl_lstm import buffers

    torch.set_num_threads(1)
    agent = RecurrentPPO(args.env, seed=0, device="cpu", tensorboard_log=None, **our_hyperparameters(
        ZOO_PPO_LSTM_CARTPOLE_NOVEL))
    chosen_layout = buffers.whole_chunks_are_cheaper
    rows = []
    statistics = EpisodeStatistics()
    iterations = max(args.at) + 1
    for iteration in range(iterations):
        agent._collect_rollout(statistics)
        if iteration in args.at:
            saved = copy.deepcopy((agent.policy.state_dict(), agent.optimizer.state_dict()))
            seconds: dict[str, list[float]] = {"pieces": [], "chosen": []}
            # Alternated from the same parameters and optimizer state, so that the machine's drift falls on both.
            for _ in range(args.rounds):
                for layout in seconds:
                    buffers.whole_chunks_are_cheaper = chosen_layout if layout == "chosen" else lambda *sizes: False
                    agent.policy.load_state_dict(saved[0])
                    agent.optimizer.load_state_dict(saved[1])
                    start = time.perf_counter()
                    agent._update(iteration / iterations)
                    seconds[layout].append(time.perf_counter() - start)
            buffers.whole_chunks_are_cheaper = chosen_layout
            agent.policy.load_state_dict(saved[0])  # the run goes on with the update below, once
            agent.optimizer.load_state_dict(saved[1])
            agent.buffer.prepare()
            chosen = next(agent.buffer.minibatches(agent.config.batch_size, agent.rng))
            pieces, chunks = len(agent.buffer._layout.length), len(agent.buffer._layout.first_piece) - 1
            starts_inside = pieces - chunks  # a chunk is one piece, and one more after each start inside it
            pieces_ms, chosen_ms = (1e3 * float(np.median(seconds[layout])) for layout in ("pieces", "chosen"))
            rows.append(
                f"| {iteration} | {starts_inside} | {pieces} | {chunks} "
                f"| {'whole chunks' if chosen.whole_chunks else 'pieces'} | {pieces_ms:.1f} | {chosen_ms:.1f} "
                f"| {pieces_ms / chosen_ms:.2f}x |"
            )
            print(rows[-1], flush=True)
        agent._update(iteration / iterations)
    agent.env.close()
    return (
        "### Resetting inside the LSTM kernel: the update on whole chunks (issue 17, CPU)\n\n"
        "| iteration | episode starts inside chunks | padded pieces | chunks | layout chosen | update ms on pieces "
        "| update ms, layout chosen | pieces / chosen |\n|---:|---:|---:|---:|---|---:|---:|---:|\n"
        + "\n".join(rows)
        + f"\n\nOur recurrent PPO with the zoo comparison's hyperparameters on `{args.env}`, seed 0, one torch thread. "
        "At each iteration listed, the same rollout's update (20 epochs of its one minibatch) runs from the same "
        "parameters and optimizer state once on padded pieces (every chunk cut at its episode starts, a row each) and "
        "once in the layout `rl_lstm.buffers.whole_chunks_are_cheaper` chooses (the chunks whole, one row each, an "
        f"episode start reset inside the kernel by an inserted step), alternated over {args.rounds} rounds; each "
        "figure is the median. Where both layouts would cost about the same, pieces stay (the same call as before)."
    )


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``ppo-vs-sb3`` and ``ppo`` benchmarks; each sets ``run`` to the function returning its section."""
    versus = subparsers.add_parser(
        "ppo-vs-sb3", help="our recurrent PPO against sb3-contrib's (and SB3 PPO over 4 stacked frames)",
        description="Train sb3-contrib RecurrentPPO, ours and SB3 PPO over 4 stacked frames with rl-baselines3-zoo's "
        "CartPoleNoVel-v1 hyperparameters, alternated seed by seed; report env steps/s and evaluation returns.",
    )
    versus.add_argument("--timesteps", type=_positive_int, default=ZOO_PPO_LSTM_CARTPOLE_NOVEL["n_timesteps"],
                        help="env steps per training run (default: the zoo's n_timesteps)")
    versus.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0 .. N-1 per library")
    versus.add_argument("--eval-episodes", type=_positive_int, default=100, help="deterministic evaluation episodes")
    versus.add_argument("--env", default="rl_lstm/CartPolePositionOnly-v0",
                        help="env id (e.g. rl_lstm/TMaze-v0, rl_lstm/RepeatFirstEasy-v0)")
    versus.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. length=10")
    versus.add_argument("--eval-at", type=_positive_int, nargs="*", default=[50_000], metavar="STEPS",
                        help="also evaluate after the update passing each of these env steps (default: 50000); "
                        "every run is evaluated at its end too")
    versus.add_argument("--budget-rollouts", type=_positive_int, default=100,
                        help="rollouts of ours timed phase by phase for the time budget")
    versus.add_argument("--budget-only", action="store_true",
                        help="only time our phases (no training runs); prints, leaves docs/benchmarks.md alone")
    versus.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    versus.set_defaults(run=benchmark_ppo_vs_sb3)
    layout = subparsers.add_parser(
        "ppo-layout", help="our update on padded pieces against whole chunks reset inside the LSTM kernel",
        description="Train our PPO with the zoo comparison's hyperparameters and, at the iterations given, time the "
        "same rollout's update on padded pieces and in the layout chosen, alternated.",
    )
    layout.add_argument("--env", default="rl_lstm/CartPolePositionOnly-v0")
    layout.add_argument("--at", type=int, nargs="+", default=[5, 25, 45, 85, 125], metavar="ITERATION")
    layout.add_argument("--rounds", type=_positive_int, default=5)
    layout.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    layout.set_defaults(run=benchmark_ppo_layout)

    for name, agents, title, default_tasks in (
        ("ppo", ["ppo"], "Recurrent PPO", DEFAULT_TASKS),
        ("reinforce", ["reinforce", "ppo"], "Recurrent REINFORCE beside recurrent PPO", REINFORCE_TASKS),
    ):
        alone = subparsers.add_parser(
            name, help=f"{title} with the shipped presets: env steps and seconds to solve each task",
            description=f"Train {', '.join(agents)} with the shipped presets on each task until an evaluation reaches "
            "the task's threshold or the budget ends; report solved seeds, steps and seconds to the threshold.",
        )
        alone.add_argument("--tasks", nargs="+", type=parse_task, default=[parse_task(t) for t in default_tasks],
                           metavar="ENV_ID[:KEY=VALUE,...][@return>=X|@success>=X]",
                           help=f"default: {' '.join(default_tasks)}")
        alone.add_argument("--agents", nargs="+", default=agents, help=f"default: {' '.join(agents)}")
        alone.add_argument("--seeds", type=_positive_int, default=5, help="seeds 0 .. N-1 per task")
        alone.add_argument("--max-timesteps", type=_positive_int, default=1_000_000, help="env-step budget per run")
        alone.add_argument("--max-seconds", type=float, default=900.0, help="training-time budget per run (s)")
        alone.add_argument("--eval-every", type=_positive_int, default=10_000, help="env steps between evaluations")
        alone.add_argument("--eval-episodes", type=_positive_int, default=100, help="episodes per evaluation")
        alone.add_argument("--curves", metavar="DIR",
                           help="keep each run as a run folder under DIR and draw the curves into docs/img")
        alone.add_argument("--stop-at-first-solve", action="store_true",
                           help="stop a run at its first evaluation that meets the threshold (default: train to "
                                "the end of the budget and judge the final policy)")
        alone.add_argument("--no-preset", action="store_true",
                           help="the agents' defaults alone, as an env without a preset gets them")
        alone.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
        alone.set_defaults(run=benchmark_solve, title=title, notes=[])
