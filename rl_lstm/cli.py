"""The ``rl-lstm`` command: ``train``, ``evaluate``, ``export``, ``plot`` and ``compare`` (results across seeds and
tasks), ``tune`` (hyperparameter search) and ``oracles`` (built-in tasks solved by oracles)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import envs
from agents import AGENTS
from envs.oracle import make_oracle, run_oracle
from rl_lstm.config import parse_assignments, read_yaml
from rl_lstm.errors import RLLSTMError

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


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rl-lstm train``."""
    parser.add_argument("--agent", help=f"trainer: {', '.join(AGENTS)} (default ppo)")
    parser.add_argument("--env", help="gymnasium env id, e.g. rl_lstm/TMaze-v0 or package.module:Env-v0")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="KEY=VALUE", help="env constructor kwargs")
    parser.add_argument("--timesteps", type=int, help="env steps to train for")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--num-envs", type=int, help="env copies stepped together")
    parser.add_argument("--device", help="cpu, cuda or auto")
    parser.add_argument("--backend", choices=["local", "ray"],
                        help="step the envs in-process (local) or on Ray actors (ray); set ray_workers and, for ppo "
                        "and reinforce, envs_per_worker with --set")
    parser.add_argument("--ray-address", help="with --backend ray: join this cluster, e.g. auto or ray://host:10001 "
                        "(default: start a local one)")
    parser.add_argument("--config", help="a YAML file of keys (run keys and hyperparameters) over the preset")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override any key")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def train_command(args: argparse.Namespace) -> int:
    """``rl-lstm train``: resolve the config, train in a run folder, say where it is, how it ended and what next."""
    from rl_lstm.training import read_final_evaluation, read_run_config, resolve_config, train

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise RLLSTMError(f"--resume {str(run_dir)!r}: no config.yaml there; pass the folder of a run")
        run_config, hyperparams = read_run_config(run_dir)
        values = {**vars(run_config), **hyperparams, **parse_assignments(args.set)}
        if args.timesteps is not None:
            values["timesteps"] = args.timesteps
    else:
        values = read_yaml(args.config) if args.config else {}
        flags = {
            "agent": args.agent,
            "env": args.env,
            "timesteps": args.timesteps,
            "seed": args.seed,
            "num_envs": args.num_envs,
            "device": args.device,
            "backend": args.backend,
            "ray_address": args.ray_address,
        }
        values.update({key: value for key, value in flags.items() if value is not None})
        values.update(parse_assignments(args.set))
        if args.env_kwargs:
            values["env_kwargs"] = {
                **values.get("env_kwargs", {}),
                **parse_assignments(args.env_kwargs, "--env-kwargs"),
            }
        run_dir = None
    if args.no_progress:
        values["progress_bar"] = False
    run_config, hyperparams = resolve_config(values)
    run_dir = train(run_config, hyperparams, run_dir=run_dir, resume=args.resume is not None)
    if (run_dir / "interrupted").exists():
        console.print(
            f"[yellow]Interrupted: saved {run_dir}/checkpoints/latest.pt. "
            f"Continue with: rl-lstm train --resume {run_dir}[/]"
        )
        return 130
    console.print(
        f"Run folder: {run_dir}\n{final_evaluation_text(read_final_evaluation(run_dir))}\n"
        f"Watch it: tensorboard --logdir {run_config.runs_dir}\n"
        f"Evaluate it: rl-lstm evaluate {run_dir} --episodes 100 (add --checkpoint best for the best one)",
        markup=False,
        soft_wrap=True,
    )
    return 0


def final_evaluation_text(report: dict | None) -> str:
    """Two lines: the run's final evaluation (of checkpoints/latest.pt) and which checkpoint is best."""
    if report is None:
        return "No final evaluation: eval_every is 0 (set it to evaluate and keep checkpoints/best.pt)"
    success = "" if report["success_rate"] is None else f"success {report['success_rate']:.1%}, "
    best = report["best"]
    # A run resumed from a checkpoint older than best_timesteps knows its best return, not where it was reached.
    origin = "" if best["num_timesteps"] is None else f", from {best['num_timesteps']:,} env steps"
    return (
        f"Final evaluation of {report['checkpoint']} at {report['num_timesteps']:,} env steps "
        f"({report['num_episodes']} deterministic episodes): {success}mean return {report['mean_return']:.3f}\n"
        f"Best checkpoint: {best['checkpoint']}{origin} (mean return {best['mean_return']:.3f})"
    )


def export_command(args: argparse.Namespace) -> int:
    """``rl-lstm export``: write a run's policy, its state as inputs and outputs, to one ONNX or TorchScript file."""
    from rl_lstm.export import SUFFIXES, export_policy

    source = Path(args.path)
    output = args.output or (source if source.is_dir() else source.parent) / f"policy{SUFFIXES.get(args.format, '')}"
    exported = export_policy(source, output, args.format)
    normalization = "observation normalization baked in" if exported.normalization_baked else "no normalization"
    console.print(
        f"wrote {exported.path} ({exported.format}, {normalization})\n"
        f"inputs: {', '.join(exported.input_names)}\noutputs: {', '.join(exported.output_names)}",
        markup=False,
    )
    return 0


def plot_command(args: argparse.Namespace) -> int:
    """``rl-lstm plot``: learning curves of a tag over seeds, grouped by task and by agent and config, to a PNG."""
    from rl_lstm.results import plot_curves

    for curve in plot_curves(args.run_dirs, args.tag, args.output):
        console.print(
            f"{curve.task} | {curve.label}: {len(curve.runs)} seeds, at step {curve.steps[-1]} mean "
            f"{curve.mean[-1]:.3f} [{curve.low[-1]:.3f}, {curve.high[-1]:.3f}]", markup=False,
        )
    console.print(f"wrote {args.output}", markup=False)
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """``rl-lstm compare``: per-task scores from eval.json and aggregates with stratified bootstrap CIs."""
    from rl_lstm.results import compare_runs, comparison_tables, parse_score_ranges, plot_intervals

    score_ranges = parse_score_ranges(args.score_range)
    comparison = compare_runs(args.run_dirs, resamples=args.resamples, seed=args.seed, score_ranges=score_ranges)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "compare.json").write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
    written = [output / "compare.json"]
    if comparison.aggregates:
        written.append(plot_intervals(comparison, output / "compare.png"))
    for table in comparison_tables(comparison):
        console.print(table)
    for line in [*comparison.notes, *(f"wrote {path}" for path in written)]:
        console.print(line, markup=False)
    return 0


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rl-lstm tune``."""
    parser.add_argument("--agent", default="ppo", help=f"trainer: {', '.join(AGENTS)} (default ppo)")
    parser.add_argument("--env", required=True, help="gymnasium env id, e.g. rl_lstm/TMaze-v0")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="KEY=VALUE", help="env constructor kwargs")
    parser.add_argument("--n-trials", type=int, default=100, help="finished trials the study should hold (default 100)")
    parser.add_argument("--timeout", type=float, help="seconds each worker searches for at most")
    parser.add_argument("--trial-timesteps", type=int, default=100_000, help="env steps per trial (default 100000)")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes sharing the study (default 1)")
    parser.add_argument("--study", help="study name; an existing one continues (default <env>_<agent>)")
    parser.add_argument("--storage", help="Optuna storage URL (default sqlite:///RUNS_DIR/tune/<env>_<agent>.db)")
    parser.add_argument("--search-space", help="YAML search space (default rl_lstm/presets/search/<agent>.yaml)")
    parser.add_argument("--eval-every", type=int, help="env steps between a trial's evaluations (default 1/4 trial)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="every trial's training seed; seeds the sampler")
    parser.add_argument("--runs-dir", default="runs", help="trial run folders go to RUNS_DIR/tune/<study>/")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def tune_command(args: argparse.Namespace) -> int:
    """``rl-lstm tune``: an Optuna study over the agent's search space; writes the best config and a report."""
    from rl_lstm.tuning import TuneSettings, finished_trials, tune

    if args.n_trials < 1 or args.n_jobs < 1 or args.trial_timesteps < 1:
        raise RLLSTMError("--n-trials, --n-jobs and --trial-timesteps must each be at least 1")
    settings = TuneSettings(
        agent=args.agent, env=args.env, env_kwargs=parse_assignments(args.env_kwargs, "--env-kwargs"),
        n_trials=args.n_trials, timeout=args.timeout, trial_timesteps=args.trial_timesteps, n_jobs=args.n_jobs,
        study=args.study, storage=args.storage, search_space=args.search_space, eval_every=args.eval_every,
        eval_episodes=args.eval_episodes, seed=args.seed, runs_dir=args.runs_dir, progress_bar=not args.no_progress,
    )
    study = tune(settings)
    output = settings.output_dir
    console.print(f"Study {settings.study_name} in {settings.storage_url}: {finished_trials(study)} finished trials\n"
                  f"Report: {output / 'tune_report.md'}", markup=False, soft_wrap=True)
    if (output / "best_config.yaml").exists():
        console.print(f"Best trial {study.best_trial.number}: {study.best_value:.4g}\n"
                      f"Train it: rl-lstm train --config {output / 'best_config.yaml'}", markup=False, soft_wrap=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rl-lstm`` console command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="rl-lstm", description="Reinforcement learning with LSTM memory.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(subparsers.add_parser("train", help="train an agent in a run folder"))
    subparsers.add_parser(
        "evaluate", help="evaluate a run folder or checkpoint (rl-lstm evaluate --help)", add_help=False
    )
    export = subparsers.add_parser("export", help="export a policy with its state as ONNX or TorchScript")
    export.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT", help="a run folder or a checkpoint .pt file")
    export.add_argument("--format", default="onnx", help="onnx (default) or torchscript")
    export.add_argument("--output", help="file to write (default: policy.onnx or policy.torchscript.pt beside it)")
    plot = subparsers.add_parser("plot", help="learning curves over seeds from run folders' TensorBoard events")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, or folders holding them (runs/)")
    plot.add_argument("--tag", default="eval/mean_reward", help="the scalar to draw (default eval/mean_reward)")
    plot.add_argument("--output", default="curves.png", help="PNG to write (default curves.png)")
    compare = subparsers.add_parser("compare", help="normalized scores and aggregates (IQM, ...) from eval.json")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, or folders holding them")
    compare.add_argument("--output", default=".", help="folder for compare.json and compare.png (default: here)")
    compare.add_argument("--resamples", type=int, default=50_000, help="bootstrap resamples (default 50000)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    compare.add_argument("--score-range", action="append", default=[], metavar="ENV=LOW:OPTIMUM",
                         help="normalize an env's returns from LOW (a number, or 'random': a uniformly random "
                         "policy's mean return) to OPTIMUM, e.g. CartPole-v1=0:500; for envs we did not write, whose "
                         "optimum rl_lstm does not know (repeat it for several envs)")
    add_tune_arguments(subparsers.add_parser("tune", help="hyperparameter search with Optuna"))
    oracles = subparsers.add_parser("oracles", help="run every built-in task's scripted oracle")
    oracles.add_argument("--episodes", type=int, default=100, help="episodes per env")
    oracles.add_argument("--seed", type=int, default=0)
    if argv[:1] == ["evaluate"]:
        from rl_lstm.evaluation import main as evaluate_main

        return evaluate_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return train_command(args)
        if args.command == "export":
            return export_command(args)
        if args.command == "plot":
            return plot_command(args)
        if args.command == "compare":
            return compare_command(args)
        if args.command == "tune":
            return tune_command(args)
        return 0 if run_oracles(args.episodes, args.seed) else 1
    except RLLSTMError as error:
        print(f"rl-lstm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
