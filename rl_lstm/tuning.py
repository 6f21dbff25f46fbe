"""Hyperparameter search with Optuna (``rl-lstm tune``), after rl-baselines3-zoo's ``--optimize``.

TPE samples each trial's hyperparameters from the agent's search space (YAML, ``presets/search/<agent>.yaml`` or a
user's own file); the trial trains in a normal run folder and reports its evaluations, on which a median pruner stops
hopeless trials early. The study lives in an Optuna storage (SQLite by default), so a killed study resumes where it
stopped and parallel workers in separate processes share it.

runs/tune/
    <env>_<agent>.db             the study (default storage)
    <study>/trial_<n>/           each trial's run folder: config.yaml, TensorBoard events, checkpoints
    <study>/best_config.yaml     the best trial's config, for ``rl-lstm train --config``
    <study>/tune_report.md       best trials and parameter importances
    <study>/history.png, importances.png
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agents import agent_class
from rl_lstm.agent import RecurrentAgent
from rl_lstm.config import PRESETS_DIR, read_yaml
from rl_lstm.errors import ConfigError, RLLSTMError
from rl_lstm.solving import kwargs_text
from rl_lstm.training import RunCallback, RunConfig, resolve_config, train

SEARCH_DIR = PRESETS_DIR / "search"
# The keys a parameter's spec may hold, per type; "when" (a mapping of earlier keys to values) makes it conditional.
SPEC_KEYS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}
# Trials that ended (a RUNNING trial of a killed study is not one): what --n-trials counts.
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass
class TuneSettings:
    """What ``rl-lstm tune`` was asked for; picklable, so each worker process gets a copy."""

    agent: str = "ppo"
    env: str = "rl_lstm/TMaze-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 100  # finished (complete or pruned) trials the study should hold in total
    timeout: float | None = None  # seconds each worker searches for at most
    trial_timesteps: int = 100_000  # env steps per trial
    n_jobs: int = 1  # worker processes sharing the study
    study: str | None = None  # default <env>_<agent>
    storage: str | None = None  # Optuna storage URL; default sqlite:///<runs_dir>/tune/<env>_<agent>.db
    search_space: str | None = None  # YAML file; default presets/search/<agent>.yaml
    eval_every: int | None = None  # env steps between a trial's evaluations; default trial_timesteps // 4
    eval_episodes: int = 20  # episodes per evaluation
    seed: int = 0  # every trial trains with this seed; the sampler's seeds derive from it
    runs_dir: str = "runs"
    progress_bar: bool = True

    @property
    def eval_interval(self) -> int:
        """Env steps between a trial's evaluations."""
        return self.eval_every or max(self.trial_timesteps // 4, 1)

    @property
    def name(self) -> str:
        """``<env>_<agent>`` with / and : replaced: the default study name and storage file."""
        return f"{self.env.replace('/', '_').replace(':', '_')}_{self.agent}"

    @property
    def study_name(self) -> str:
        """The study's name in its storage."""
        return self.study or self.name

    @property
    def storage_url(self) -> str:
        """The Optuna storage URL."""
        return self.storage or f"sqlite:///{Path(self.runs_dir) / 'tune' / self.name}.db"

    @property
    def output_dir(self) -> Path:
        """Where the trials' run folders and the study's results go."""
        return Path(self.runs_dir) / "tune" / self.study_name


def load_search_space(agent: str, path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The search space for ``agent`` from ``path`` (default the shipped one), every key and spec checked."""
    path = Path(path) if path is not None else SEARCH_DIR / f"{agent}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in SEARCH_DIR.glob("*.yaml")))
        raise ConfigError(f"search space {str(path)!r} does not exist; shipped ones are for {shipped}, "
                          f"or give your own with --search-space FILE")
    space = read_yaml(path)
    defaults = agent_class(agent).config_class()
    fields = sorted(f.name for f in dataclasses.fields(defaults))
    for key, spec in space.items():
        head = key.split(".")[0]
        if head not in fields or ("." in key and not isinstance(getattr(defaults, head), dict)):
            raise ConfigError(f"search space {str(path)!r}: unknown key {key!r} for {agent}; valid keys: "
                              f"{', '.join(fields)} (a mapping such as core_kwargs takes dotted keys: "
                              f"core_kwargs.forget_bias)")
        if not isinstance(spec, dict) or spec.get("type") not in SPEC_KEYS:
            raise ConfigError(f"search space {str(path)!r}: {key!r} needs a type, one of {', '.join(SPEC_KEYS)} "
                              f"(e.g. {{type: float, low: 1e-5, high: 1e-2, log: true}}), got {spec!r}")
        allowed = SPEC_KEYS[spec["type"]] | {"type", "when"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigError(f"search space {str(path)!r}: {key!r} has unknown field {unknown[0]!r} for type "
                              f"{spec['type']}; valid fields: {', '.join(sorted(allowed))}")
        if spec["type"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices or not all(
                    c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                raise ConfigError(f"search space {str(path)!r}: {key!r} needs choices, a non-empty list of "
                                  f"numbers, strings, booleans or null; got {choices!r}")
        elif not all(isinstance(spec.get(bound), (int, float)) for bound in ("low", "high")):
            raise ConfigError(f"search space {str(path)!r}: {key!r} ({spec['type']}) needs numbers low and high")
        earlier = list(space)[:list(space).index(key)]
        when = spec.get("when", {})
        if not isinstance(when, dict) or any(k not in earlier for k in when):
            raise ConfigError(f"search space {str(path)!r}: {key!r} has when: {when!r}; it must map keys listed "
                              f"before it ({', '.join(earlier) or 'none'}) to the value that enables it")
    return space


def sample(trial: optuna.Trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The trial's hyperparameters from ``space``, dotted keys as nested mappings (``core_kwargs: {...}``)."""
    sampled: dict[str, Any] = {}
    for key, spec in space.items():
        if any(sampled.get(k) != v for k, v in spec.get("when", {}).items()):
            continue
        if spec["type"] == "categorical":
            sampled[key] = trial.suggest_categorical(key, spec["choices"])
        else:
            suggest = trial.suggest_float if spec["type"] == "float" else trial.suggest_int
            step = {"step": spec["step"]} if "step" in spec else {}
            sampled[key] = suggest(key, spec["low"], spec["high"], log=spec.get("log", False), **step)
    return nest(sampled)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"core_kwargs.init": "chrono"}`` as ``{"core_kwargs": {"init": "chrono"}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


class TrialCallback(RunCallback):
    """RunCallback (evaluations, the last update's among them, best and latest checkpoints) that reports each
    evaluation to the trial and stops once the pruner says so."""

    def __init__(self, trial: optuna.Trial, run_dir: Path, run_config: RunConfig, hparams: dict[str, Any]):
        super().__init__(run_dir, run_config, hparams)
        self.trial = trial
        self.value: float | None = None
        self.pruned = False

    def __call__(self, agent: RecurrentAgent) -> bool:
        evaluated_before = self.last_evaluation
        keep_going = super().__call__(agent)
        if self.last_evaluation is evaluated_before:
            return keep_going
        _, result = self.last_evaluation
        # The objective is what the task asks for: success where the env reports it, else the return.
        self.value = result.mean_return if result.success_rate is None else result.success_rate
        self.trial.report(self.value, agent.num_timesteps)
        self.pruned = self.trial.should_prune()
        return keep_going and not self.pruned


def run_trial(trial: optuna.Trial, settings: TuneSettings, space: dict[str, dict[str, Any]]) -> float:
    """Train one trial in its run folder and return its last evaluation; invalid or diverging configs are pruned."""
    values = {
        "agent": settings.agent, "env": settings.env, "env_kwargs": settings.env_kwargs, "seed": settings.seed,
        "timesteps": settings.trial_timesteps, "eval_every": settings.eval_interval,
        "eval_episodes": settings.eval_episodes, "checkpoint_every": settings.trial_timesteps,
        "runs_dir": settings.runs_dir, "progress_bar": False, **sample(trial, space),
    }
    run_dir = settings.output_dir / f"trial_{trial.number}"
    callbacks: list[TrialCallback] = []

    def make_callback(*args: Any) -> TrialCallback:
        callbacks.append(TrialCallback(trial, *args))
        return callbacks[-1]

    try:
        run_config, hyperparams = resolve_config(values)
        run_dir.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker_pid", os.getpid())  # which of the --n-jobs processes ran it
        train(run_config, hyperparams, run_dir=run_dir, make_callback=make_callback)
    except RLLSTMError as error:
        # An invalid combination (a batch larger than a rollout) or a diverging one (NaN) is a bad point of the
        # space, not a broken study: prune it, as rl-baselines3-zoo does, and say why.
        trial.set_user_attr("pruned_because", str(error))
        raise optuna.TrialPruned(str(error)) from error
    (callback,) = callbacks
    if callback.pruned:
        reason = f"the median pruner stopped it at step {callback.last_evaluation[0]} (evaluation {callback.value:.4g})"
        trial.set_user_attr("pruned_because", reason)
        raise optuna.TrialPruned(reason)
    return callback.value


def open_study(settings: TuneSettings, worker: int = 0) -> optuna.Study:
    """The study (created, or continued when it exists) with a TPE sampler and a median pruner."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if settings.storage is None:
        (Path(settings.runs_dir) / "tune").mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A heartbeat lets a later worker mark the trial a killed process left RUNNING as FAIL. SQLite locks the
        # whole file per write: parallel workers wait up to a minute for it instead of sqlite3's 5 s.
        engine = {"connect_args": {"timeout": 60}} if settings.storage_url.startswith("sqlite") else None
        storage = optuna.storages.RDBStorage(settings.storage_url, engine_kwargs=engine, heartbeat_interval=60,
                                             grace_period=120)
    # As rl-baselines3-zoo: no pruning before 5 trials have completed, nor in the first third of a trial.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=settings.trial_timesteps // 3)
    study = optuna.create_study(study_name=settings.study_name, storage=storage, direction="maximize",
                                load_if_exists=True, pruner=pruner)
    # Workers, and a resumed study, each need their own sampler seed, or their first random trials would repeat.
    study.sampler = optuna.samplers.TPESampler(seed=settings.seed + 1_000 * worker + len(study.trials))
    return study


def finished_trials(study: optuna.Study) -> int:
    """Trials of the study that completed or were pruned."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def optimize(settings: TuneSettings, worker: int = 0, progress: Progress | None = None) -> None:
    """One worker: run trials on the shared study until it holds ``n_trials`` finished ones or time runs out."""
    study = open_study(settings, worker)
    if finished_trials(study) >= settings.n_trials:
        return
    space = load_search_space(settings.agent, settings.search_space)
    callbacks = [optuna.study.MaxTrialsCallback(settings.n_trials, states=FINISHED)]
    if progress is not None:
        callbacks.append(lambda study, trial: progress.update(progress.task_ids[0], completed=finished_trials(study)))
    study.optimize(lambda trial: run_trial(trial, settings, space), timeout=settings.timeout, callbacks=callbacks)


def tune(settings: TuneSettings) -> optuna.Study:
    """Run (or continue) the study with ``n_jobs`` worker processes, then write the best config and the report."""
    load_search_space(settings.agent, settings.search_space)  # a bad file stops here, before any process starts
    study = open_study(settings)  # created here, so the workers do not race to create it
    # Each extra worker is a process of its own (Optuna's n_jobs would be threads sharing one interpreter).
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=optimize, args=(settings, worker), daemon=True)
               for worker in range(1, settings.n_jobs)]
    for process in workers:
        process.start()
    progress = None
    if settings.progress_bar:
        progress = Progress(TextColumn(f"[bold]tuning {settings.study_name}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("trials"), TimeElapsedColumn())
        progress.add_task("tune", total=settings.n_trials, completed=finished_trials(study))
        progress.start()
    try:
        optimize(settings, 0, progress)
        for process in workers:
            process.join()
    finally:
        if progress is not None:
            progress.stop()
    if any(process.exitcode for process in workers):
        raise RLLSTMError(f"a tuning worker failed (exit codes {[p.exitcode for p in workers]}); its trials are "
                          f"in the study: continue with --study {settings.study_name}")
    write_results(study, settings)
    return study


def best_config(study: optuna.Study, settings: TuneSettings) -> dict[str, Any]:
    """The best trial's config as ``rl-lstm train --config`` takes it: agent, env, env_kwargs, hyperparameters."""
    return {"agent": settings.agent, "env": settings.env, "env_kwargs": settings.env_kwargs,
            **nest(study.best_trial.params)}


def write_results(study: optuna.Study, settings: TuneSettings) -> list[Path]:
    """Write best_config.yaml, tune_report.md and the plots into the study's folder; returns the files."""
    output = settings.output_dir
    output.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    states = {state.name: len(study.get_trials(deepcopy=False, states=(state,))) for state in optuna.trial.TrialState}
    lines = [f"# Tuning {settings.agent} on {settings.env}{kwargs_text(settings.env_kwargs)}", "",
             f"Study `{settings.study_name}` in `{settings.storage_url}`: "
             + ", ".join(f"{count} {name.lower()}" for name, count in states.items() if count)
             + f". Each trial: {settings.trial_timesteps} env steps, seed {settings.seed}; the objective is the "
               "last evaluation's success rate where the env reports one, else its mean return.", ""]
    written = []
    if not complete:
        lines.append("No trial completed: no best config. Try more trials, a smaller space, or longer trials.")
    else:
        config_path = output / "best_config.yaml"
        header = (f"# Best of study {settings.study_name} (trial {study.best_trial.number}, value "
                  f"{study.best_value:.4g}, {settings.trial_timesteps} env steps). Train with:\n"
                  f"#   rl-lstm train --config {config_path} --timesteps N\n")
        config_path.write_text(header + yaml.safe_dump(best_config(study, settings), sort_keys=False))
        written.append(config_path)
        lines += ["## Best trials", "", "| trial | value | run folder | parameters |", "|---|---|---|---|"]
        for trial in sorted(complete, key=lambda t: t.value, reverse=True)[:10]:
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
            lines.append(f"| {trial.number} | {trial.value:.4g} | `{trial.user_attrs.get('run_dir', '')}` | {params} |")
        lines += ["", "## Parameter importances", ""]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

            written.append(save_plot(plot_optimization_history(study), output / "history.png"))
            importances: dict[str, float] = {}
            if len({trial.value for trial in complete}) < 2:
                lines.append("Not computed: importances need completed trials with different values.")
            else:
                # The evaluator's caveats (too few trials in a region) belong in the report, not on the console.
                with warnings.catch_warnings(record=True) as caveats:
                    warnings.simplefilter("always", UserWarning)
                    importances = optuna.importance.get_param_importances(study)
                lines += [f"Note: {caveat.message}" for caveat in caveats] + [""] * bool(caveats)
            if importances:
                lines += ["| parameter | importance |", "|---|---|"]
                lines += [f"| {name} | {value:.3f} |" for name, value in importances.items()]
                written.append(save_plot(plot_param_importances(study), output / "importances.png"))
        lines += ["", "Plots: `history.png` (optimization history)"
                  + (", `importances.png`." if importances else "."), ""]
    report = output / "tune_report.md"
    report.write_text("\n".join(lines) + "\n")
    return [*written, report]


def save_plot(axes: Any, path: Path) -> Path:
    """Save an Optuna matplotlib plot's figure to ``path`` and close it."""
    import matplotlib.pyplot as plt

    figure = axes.figure
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
