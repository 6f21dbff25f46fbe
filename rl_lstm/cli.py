"""The ``rl-lstm`` command: ``train``, and ``oracles`` (every built-in task solved by its scripted oracle)."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

import envs
from envs.oracle import make_oracle, run_oracle

console = Console()


def run_oracles(episodes: int, seed: int) -> bool:
    """Run each built-in env's oracle and print its mean return; True if every oracle reached its target."""
    table = Table(title=f"Built-in tasks solved by their oracles ({episodes} episodes each)")
    for column in ("env", "mean return", "target", "episodes/s", "ok"):
        table.add_column(column, justify="left" if column == "env" else "right")
    all_ok = True
    for env_id in envs.BUILTIN_ENV_IDS:
        start = time.perf_counter()
        returns = run_oracle(env_id, num_episodes=episodes, num_envs=min(episodes, 64), seed=seed)
        elapsed = time.perf_counter() - start
        target = make_oracle(env_id, num_envs=1).expected_return
        ok = bool(returns.mean() >= target - 1e-9)
        all_ok &= ok
        speed = f"{episodes / elapsed:,.0f}"
        table.add_row(env_id, f"{returns.mean():.3f}", f"{target:.3f}", speed, "yes" if ok else "NO")
    console.print(table)
    return all_ok


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rl-lstm`` console command."""
    parser = argparse.ArgumentParser(prog="rl-lstm", description="Reinforcement learning with LSTM memory.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("train", "train an agent (until recurrent PPO exists: run the oracles)"),
        ("oracles", "run every built-in task's scripted oracle and print its returns"),
    ):
        sub = subparsers.add_parser(name, help=help_text)
        sub.add_argument("--episodes", type=int, default=100, help="episodes per env")
        sub.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "train":
        console.print("[yellow]Recurrent PPO is not built yet: running the built-in oracles on every env instead.[/]")
    return 0 if run_oracles(args.episodes, args.seed) else 1


if __name__ == "__main__":
    raise SystemExit(main())
