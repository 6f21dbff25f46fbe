"""Benchmarks whose figures go into docs/benchmarks.md, each measured side by side in one run.

    python scripts/benchmark.py envs         # native vector envs against SyncVectorEnv
    python scripts/benchmark.py boundary     # what ForeignEnvBoundary costs on a SyncVectorEnv of CartPole-v1
    python scripts/benchmark.py ppo-vs-sb3   # our recurrent PPO against sb3-contrib's, same hyperparameters
    python scripts/benchmark.py ppo-layout   # our PPO update on padded pieces against whole chunks, same rollouts
    python scripts/benchmark.py ppo          # our recurrent PPO on the memory tasks, several seeds
    python scripts/benchmark.py evolino-speed  # RL Evolino: batched population evaluation, Ray workers
    python scripts/benchmark.py evolino      # RL Evolino with its presets: evaluations and seconds to solve
    python scripts/benchmark.py memory       # memory span: longest T-maze corridor each trainer solves
    python scripts/benchmark.py ray          # PPO env steps/s in-process and on Ray rollout workers
    python scripts/benchmark.py convlstm     # ConvLSTM against CNN + LSTM on the pixel passive T-maze
    python scripts/benchmark.py device       # PPO on CPU and CUDA: env steps/s at 64 and 1024 envs, runs to success
    python scripts/benchmark.py main-job     # the main job (make train) seed by seed, judged by its final policy
    python scripts/benchmark.py popgym       # POPGym's envs through rl-lstm train, beside sb3-contrib's RecurrentPPO

Each benchmark rewrites only its own section of docs/benchmarks.md (between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->``), with the command that produced it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import gymnasium as gym
import numpy as np
from records import code_state, cpu_model

import envs

BENCHMARKS_FILE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine_description() -> str:
    """CPU model, core count and library versions, for the header of a benchmark section."""
    import torch

    return (
        f"{cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy {np.__version__}, "
        f"gymnasium {gym.__version__}, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels)"
    )


def code_description() -> str:
    """The commit of the code measured and whether its code (docs/ aside) had changes, in words."""
    state = code_state()
    if state["commit"] is None:
        return "code outside git (no commit)"
    return f"commit {state['commit'][:12]} ({'dirty: uncommitted changes' if state['dirty'] else 'clean'})"


def write_section(name: str, body: str, command: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``body``, its command, code and machine."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- {name}:start -->\n"
        f"Measured {stamp} with `{command}` at {code_description()} on {machine_description()}.\n\n"
        f"{body.strip()}\n"
        f"<!-- {name}:end -->"
    )
    BENCHMARKS_FILE.parent.mkdir(parents=True, exist_ok=True)
    text = BENCHMARKS_FILE.read_text() if BENCHMARKS_FILE.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS_FILE.write_text(text)


def env_steps_per_second(vector_env: gym.vector.VectorEnv, min_seconds: float) -> float:
    """Env steps per second (copies x vector steps) of random actions, timed for at least ``min_seconds``."""
    vector_env.reset(seed=0)
    vector_env.action_space.seed(0)
    action_batches = [vector_env.action_space.sample() for _ in range(32)]
    for actions in action_batches[:4]:
        vector_env.step(actions)  # warm-up
    vector_steps = 0
    start = time.perf_counter()
    while True:
        for actions in action_batches:
            vector_env.step(actions)
        vector_steps += len(action_batches)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return vector_steps * vector_env.num_envs / elapsed


def benchmark_envs(args: argparse.Namespace) -> str:
    """Native numpy vector env against SyncVectorEnv over the single env, for every built-in env."""
    lines = [
        "| env | copies | native steps/s | SyncVectorEnv steps/s | native / sync |",
        "|---|---:|---:|---:|---:|",
    ]
    slowest_ratio_at_max = float("inf")
    env_ids = args.env_ids or envs.BUILTIN_ENV_IDS
    for env_id in env_ids:
        for copies in args.copies:
            rates = {}
            # Alternate the two so that machine load drifts over both alike.
            for mode in ("vector_entry_point", "sync"):
                vector_env = gym.make_vec(env_id, num_envs=copies, vectorization_mode=mode)
                rates[mode] = env_steps_per_second(vector_env, args.seconds)
                vector_env.close()
            ratio = rates["vector_entry_point"] / rates["sync"]
            if copies == max(args.copies):
                slowest_ratio_at_max = min(slowest_ratio_at_max, ratio)
            native, sync = rates["vector_entry_point"], rates["sync"]
            row = f"| `{env_id}` | {copies} | {native:,.0f} | {sync:,.0f} | {ratio:.1f}x |"
            print(row, flush=True)
            lines.append(row)
    lines.append("")
    lines.append(
        f"Smallest native / sync ratio at {max(args.copies)} copies: **{slowest_ratio_at_max:.1f}x** "
        "(the target is at least 10x)."
    )
    return "## Environments: native vector env vs SyncVectorEnv\n\n" + "\n".join(lines)


def benchmark_boundary(args: argparse.Namespace) -> str:
    """What rl_lstm's ForeignEnvBoundary costs on gymnasium's SyncVectorEnv of an env we did not write."""
    from rl_lstm.vec_env import ForeignEnvBoundary

    lines = [
        "| env | copies | µs per vector step, bare | inside the boundary | added | steps/s inside / bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    slowest_ratio = float("inf")
    for copies in args.copies:
        bare = gym.make_vec(args.env, num_envs=copies, vectorization_mode="sync")
        boundary = ForeignEnvBoundary(bare)
        boundary.reset(seed=0)
        bare.action_space.seed(0)
        action_batches = [bare.action_space.sample() for _ in range(args.block)]
        # One env stepped bare and through the boundary in alternate blocks, so that the machine's drift falls on
        # both alike; each figure is the median over blocks.
        microseconds: dict[str, list[float]] = {"bare": [], "boundary": []}
        for _ in range(args.blocks):
            for kind, env in (("bare", bare), ("boundary", boundary)):
                start = time.perf_counter()
                for actions in action_batches:
                    env.step(actions)
                microseconds[kind].append((time.perf_counter() - start) / args.block * 1e6)
        boundary.close()
        bare_us, boundary_us = (float(np.median(microseconds[kind])) for kind in ("bare", "boundary"))
        ratio = bare_us / boundary_us
        slowest_ratio = min(slowest_ratio, ratio)
        row = (
            f"| `{args.env}` | {copies} | {bare_us:.1f} | {boundary_us:.1f} | {boundary_us - bare_us:.1f} "
            f"| {ratio:.2f}x |"
        )
        print(row, flush=True)
        lines.append(row)
    return (
        "## The boundary of an env we did not build: what it costs\n\n"
        + "\n".join(lines)
        + "\n\nEvery vector env rl_lstm did not build trains inside a `rl_lstm.vec_env.ForeignEnvBoundary` (numpy "
        "above it, one flag and reward per copy, the env's own episode statistics moved out of the way). Each row "
        f"steps one gymnasium SyncVectorEnv of `{args.env}` with random actions, bare and through the boundary in "
        f"alternate blocks of {args.block} vector steps, {args.blocks} blocks each, and reports the median time per "
        f"vector step. Slowest: the boundary keeps **{slowest_ratio:.2f}x** of the bare env's steps per second."
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the benchmark name and its options, run it, and record the result."""
    import benchmark_convlstm
    import benchmark_device
    import benchmark_evolino
    import benchmark_main_job
    import benchmark_memory
    import benchmark_popgym
    import benchmark_ppo
    import benchmark_ray

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="benchmark", required=True)
    envs_parser = subparsers.add_parser("envs", help="native vector envs against SyncVectorEnv")
    envs_parser.add_argument("--copies", type=int, nargs="+", default=[1, 64, 1024])
    envs_parser.add_argument("--seconds", type=float, default=0.5, help="minimum timing per measurement")
    envs_parser.add_argument("--env-ids", nargs="+", default=None, help="default: every built-in env")
    envs_parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    envs_parser.set_defaults(run=benchmark_envs)
    boundary_parser = subparsers.add_parser("boundary", help="ForeignEnvBoundary's cost on a SyncVectorEnv")
    boundary_parser.add_argument("--env", default="CartPole-v1", help="a gymnasium id we did not write")
    boundary_parser.add_argument("--copies", type=int, nargs="+", default=[1, 8, 64])
    boundary_parser.add_argument("--block", type=int, default=200, help="vector steps timed at a time")
    boundary_parser.add_argument("--blocks", type=int, default=50, help="blocks timed each way")
    boundary_parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    boundary_parser.set_defaults(run=benchmark_boundary)
    benchmark_ppo.add_parsers(subparsers)
    benchmark_evolino.add_parsers(subparsers)
    benchmark_memory.add_parsers(subparsers)
    benchmark_ray.add_parsers(subparsers)
    benchmark_convlstm.add_parsers(subparsers)
    benchmark_device.add_parsers(subparsers)
    benchmark_main_job.add_parsers(subparsers)
    benchmark_popgym.add_parsers(subparsers)
    args = parser.parse_args(argv)
    # Quoted as a shell would need it: a task such as "rl_lstm/TMaze-v0@success>=0.95" holds a ">".
    command = shlex.join(["python", "scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])])
    args.command = command  # for the records a benchmark writes
    body = args.run(args)
    print(body)
    if not args.no_write:
        # A comparison on another env gets its own section instead of replacing the default one.
        env = getattr(args, "env", None)
        default_env = subparsers.choices[args.benchmark].get_default("env")
        section = args.benchmark if env in (None, default_env) else f"{args.benchmark}-{env.replace('/', '-')}"
        if getattr(args, "no_preset", False):
            section += "-no-preset"  # beside the presets' section, not over it
        if getattr(args, "label", None):
            section += f"-{args.label}"  # beside the unlabelled section, e.g. a run with a key changed
        write_section(section, body, command)
        print(f"wrote the {section} section of {BENCHMARKS_FILE}")


if __name__ == "__main__":
    main()
