"""Recurrent PPO's env steps per second in-process and on Ray rollout workers, on a slow env and a fast one.

    python scripts/benchmark.py ray   # on an otherwise idle machine: the Ray figures need every core

The slow env is ``scripts/slow_env.py``'s CartPole with about 1 ms of Python work per step (a simulator or game
written in Python): in-process ``SyncVectorEnv``, in-process ``AsyncVectorEnv`` (a process per copy), and Ray
with 1 and 2 workers. The fast env is a built-in native vector env, where stepping costs almost nothing and Ray
only adds its overhead. ``add_parsers`` registers the subcommand on scripts/benchmark.py's parser.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import slow_env
import torch
from benchmark_ppo import _positive_int, learn_steps_per_second

from agents.ppo import RecurrentPPO
from rl_lstm.ray_workers import start_local_cluster

FAST_ENV = "rl_lstm/TMaze-v0"
# Pinned here, not PPO's defaults: the figures must not move when the defaults do.
HYPERPARAMS = {"num_envs": 8, "n_steps": 64, "seq_len": 32, "batch_size": 256, "n_epochs": 4, "hidden_size": 64}


def seconds_per_step(env_id: str, steps: int = 1000) -> float:
    """Mean wall-clock seconds of one step of a single env (random actions)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / steps


def training_steps_per_second(env_id: str, iterations: int, **settings: Any) -> float:
    """Env steps per second of ``learn`` over ``iterations`` PPO iterations, after one to warm up (actors built)."""
    agent = RecurrentPPO(env_id, seed=0, **HYPERPARAMS, **settings)
    try:
        return learn_steps_per_second(agent, iterations)
    finally:
        agent.close()


def measure(env_id: str, setups: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, float]:
    """The median env steps/s of each setup over ``args.repeats`` rounds, the setups alternating within a round so
    that a drift in machine load touches them alike."""
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for round_index in range(args.repeats):
        for name, settings in setups.items():
            rates[name].append(training_steps_per_second(env_id, args.iterations, **settings))
            print(f"{env_id} round {round_index}: {name}: {rates[name][-1]:,.0f} env steps/s", flush=True)
    return {name: statistics.median(values) for name, values in rates.items()}


def benchmark_ray(args: argparse.Namespace) -> str:
    """The slow and the fast env, in-process and on Ray, as one markdown section."""
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    step_ms = 1000 * seconds_per_step(slow_env.ENV_ID)
    in_process = {"in-process SyncVectorEnv": {"vectorization": "sync"},
                  "in-process AsyncVectorEnv": {"vectorization": "async"}}
    on_ray = {f"Ray, {workers} worker{'s' * (workers > 1)} x {8 // workers} envs": {"backend": "ray",
                                                                                     "ray_workers": workers}
              for workers in (1, 2)}
    # The workers import slow_env by the id's module name: scripts/ goes on their path.
    ray = start_local_cluster(2, [str(Path(__file__).resolve().parent)])
    try:
        slow = measure(slow_env.ENV_ID, {**in_process, **on_ray}, args)
        fast = measure(FAST_ENV, {"in-process (native vector env)": {}, **on_ray}, args)
    finally:
        ray.shutdown()
    ray_1, ray_2 = (slow[name] for name in on_ray)
    slow_rows = [f"| {name} | {rate:,.0f} | {rate / slow['in-process SyncVectorEnv']:.2f}x |"
                 for name, rate in slow.items()]
    fast_in_process = fast["in-process (native vector env)"]
    fast_rows = [f"| {name} | {rate:,.0f} | {rate / fast_in_process:.2f}x |" for name, rate in fast.items()]
    load_note = (f"The 1-minute load average was {load_before:.2f} when the benchmark started"
                 + (" (the machine was busy: the figures are lower than an idle machine gives)."
                    if load_before > 0.5 else " (an idle machine)."))
    return "\n".join([
        "## Recurrent PPO on Ray rollout workers: env steps per second",
        "",
        f"Slow env `{slow_env.ENV_ID}` (scripts/slow_env.py: CartPole plus {slow_env.WORK_PER_STEP:,} iterations of "
        f"Python work per step, {step_ms:.2f} ms per step measured here):",
        "",
        "| how | env steps / s | vs in-process Sync |",
        "|---|---:|---:|",
        *slow_rows,
        "",
        f"Ray with 2 workers against 1: **{ray_2 / ray_1:.2f}x** (goal 1.7x); against in-process Async: "
        f"**{ray_2 / slow['in-process AsyncVectorEnv']:.2f}x** (goal 1x).",
        "",
        f"Fast env `{FAST_ENV}` (a native numpy vector env: Ray only adds its overhead there):",
        "",
        "| how | env steps / s | vs in-process |",
        "|---|---:|---:|",
        *fast_rows,
        "",
        f"Whole PPO iterations (collect, GAE, {HYPERPARAMS['n_epochs']} epochs of updates) with `{HYPERPARAMS}`, "
        f"8 env copies in every setup; each figure is the median of {args.repeats} rounds of {args.iterations} "
        "iterations timed after one warm-up iteration (Ray actors already started), the setups alternating within "
        "a round. The learner runs in the driver process with `torch.set_num_threads(1)`; a local Ray cluster of 2 "
        f"CPUs, one per worker. {load_note}",
    ])


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``ray`` benchmark."""
    parser = subparsers.add_parser(
        "ray", help="PPO env steps/s in-process (Sync, Async) and on 1 and 2 Ray workers, slow and fast env",
        description="Time PPO training in-process and on Ray rollout workers, on a slow env and a fast one.",
    )
    parser.add_argument("--iterations", type=_positive_int, default=5, help="timed PPO iterations per figure")
    parser.add_argument("--repeats", type=_positive_int, default=3, help="rounds; each figure is their median")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.set_defaults(run=benchmark_ray)
