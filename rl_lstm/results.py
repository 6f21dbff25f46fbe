"""Results across seeds and tasks: learning curves with bootstrap bands, and rliable's aggregate scores.

One run is one sample. ``rl-lstm plot`` (:func:`plot_curves`) draws a TensorBoard tag of many runs as curves: runs
of the same task (env id and env kwargs), agent and config are the seeds of one group, drawn as their mean with a
95% percentile bootstrap band of that mean over seeds, one subplot per task. Seeds log at different steps when
their iterations differ, so each seed's curve is interpolated linearly onto one grid: every step any seed logged,
within the range all of them cover (no extrapolation). Where the seeds share their steps, as runs of one config do,
the grid is those steps and nothing is interpolated.

``rl-lstm compare`` (:func:`compare_runs`) reads each run's ``eval.json``, normalizes its mean return on a built-in
task to ``(return - low) / (optimum - low)`` and computes the aggregates of Agarwal et al. (NeurIPS 2021,
"Deep RL at the edge of the statistical precipice", the rliable library) per agent and config over tasks and
seeds, each with a stratified bootstrap 95% confidence interval:

- IQM: the mean of the middle 50% of all runs' scores (``scipy.stats.trim_mean(scores, 0.25)``);
- mean and median: of the per-task mean scores;
- optimality gap: the mean of ``max(0, 1 - score)`` over all runs (how far below the optimum, on average);
- stratified bootstrap: each resample draws, with replacement, as many runs as each task has from that task's runs,
  independently per task; the interval is the 2.5th and 97.5th percentiles of the statistic over resamples.

The optimum of a built-in task is its oracle's ``expected_return`` (``envs/oracle.py``): the best return where one
exists (T-mazes, recall tasks, CartPole's 500) and the solved threshold on Pendulum (-200; scores above 1 happen
there). The low end is 0 where the optimum is positive; on Pendulum, whose optimum is negative, it is the mean
return of a uniformly random policy (100 episodes, seed 0). An env we did not write has no known optimum: the user
gives its range (``--score-range ENV=LOW:OPTIMUM``, :func:`parse_score_ranges`), or its raw returns are reported and
it is left out of the normalized aggregates, with a note saying so.

Why scipy and not rliable: rliable 1.2.0 imports only with pandas < 3 (its ``arch`` dependency breaks on pandas 3,
and arch 8 breaks rliable's call), and pinning pandas would hold it back for every user of rl_lstm. The statistics
are a few lines on numpy and ``scipy.stats.trim_mean``, with rliable's definitions (``metrics.aggregate_*`` and
``StratifiedBootstrap``), and here they also accept tasks with different numbers of seeds.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import scipy.stats
from matplotlib.figure import Figure
from rich.table import Table
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from envs import BUILTIN_ENV_IDS
from envs.oracle import make_oracle
from rl_lstm.config import read_yaml
from rl_lstm.errors import ConfigError
from rl_lstm.logger import flatten_hparams
from rl_lstm.training import CHECKPOINTS
from rl_lstm.vec_env import resolve_env_id

# Config keys that do not make runs differ as algorithms: the seed, where and how the run was logged, its budget;
# the env and agent are a group's other coordinates.
NOT_CONFIG_KEYS = frozenset(
    {"seed", "agent", "env", "env_kwargs", "runs_dir", "progress_bar", "device", "torch_threads", "timesteps",
     "eval_every", "eval_episodes", "checkpoint_every"}
)
LABEL_MAX_CHARS = 60  # longer config labels become a short hash (the JSON keeps the values)
CONFIDENCE = 0.95
# Curves bootstrap the mean in blocks of resamples of at most this many values, so a long tag (one point per
# iteration) does not allocate a [resamples, steps] array of gigabytes.
BOOTSTRAP_BLOCK_ELEMENTS = 2_000_000

# A statistic over tasks: per-task scores [resamples, runs of that task] in, one value per resample out.
Statistic = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Run:
    """A run folder as its config.yaml describes it."""

    path: Path
    agent: str
    env_id: str
    env_kwargs: dict[str, Any]
    seed: int | None
    config: dict[str, Any]  # flattened hyperparameters and run keys, without NOT_CONFIG_KEYS

    @property
    def task(self) -> str:
        """The env id with its kwargs: runs on one task are compared with each other."""
        kwargs = " ".join(f"{key}={value}" for key, value in sorted(self.env_kwargs.items()))
        return f"{self.env_id} {kwargs}".strip()


def read_run(path: str | Path) -> Run:
    """The run in folder ``path``, from its config.yaml."""
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{str(path)!r} holds no config.yaml; pass run folders written by rl-lstm train")
    content = read_yaml(path / "config.yaml")
    hyperparams = content.get("hyperparams", {})
    flat = flatten_hparams({**content, **hyperparams, "hyperparams": None})
    config = {key: value for key, value in flat.items() if key.split(".")[0] not in NOT_CONFIG_KEYS}
    return Run(path, content["agent"], content["env"], hyperparams.get("env_kwargs") or {}, content.get("seed"), config)


def find_runs(paths: Sequence[str | Path]) -> list[Run]:
    """The runs in ``paths``: each a run folder, or a folder searched for run folders (such as ``runs/``)."""
    run_dirs: list[Path] = []
    for path in map(Path, paths):
        is_run = (path / "config.yaml").is_file()
        found = [path] if is_run else sorted(config.parent for config in path.rglob("config.yaml"))
        if not found:
            raise ConfigError(f"{str(path)!r} is no run folder and holds none; pass folders written by rl-lstm train")
        run_dirs.extend(found)
    # A run named twice (a folder and a folder above it) is one sample, not two.
    return [read_run(run_dir) for run_dir in dict.fromkeys(run_dir.resolve() for run_dir in run_dirs)]


def differing_config(runs: Sequence[Run]) -> dict[Path, dict[str, Any]]:
    """Each run's values of the config keys whose values differ among the runs of its task and agent."""
    differing: dict[Path, dict[str, Any]] = {}
    for task, agent in {(run.task, run.agent) for run in runs}:
        group = [run for run in runs if run.task == task and run.agent == agent]
        keys = sorted({key for run in group for key in run.config})
        keys = [key for key in keys if len({repr(run.config.get(key)) for run in group}) > 1]
        differing.update({run.path: {key: run.config.get(key) for key in keys} for run in group})
    return differing


def config_label(agent: str, differing: dict[str, Any]) -> str:
    """A group's label: the agent and the config values that set it apart, or a short hash of them if they are many."""
    values = ", ".join(f"{key}={value}" for key, value in differing.items())
    if len(values) > LABEL_MAX_CHARS:
        values = "config " + hashlib.sha1(values.encode()).hexdigest()[:8]
    return f"{agent} {values}".strip()


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    """Runs by (task, label): the seeds of one agent and config on one task form a group; sorted by task and label."""
    differing = differing_config(runs)
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.task, config_label(run.agent, differing[run.path])), []).append(run)
    return dict(sorted(groups.items()))


def _percentile_interval(estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap interval at CONFIDENCE over axis 0 of ``estimates`` [resamples, ...]."""
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail], axis=0)
    return low, high


# ---- curves ----------------------------------------------------------------------------------------------------
@dataclass
class Curve:
    """One group's curve of a tag: each seed on a common step grid, their mean and its bootstrap band."""

    task: str
    label: str
    runs: list[Path]
    steps: np.ndarray  # [S] env steps
    values: np.ndarray  # [seeds, S] each seed interpolated onto ``steps``
    low: np.ndarray  # [S] 95% bootstrap band of the mean over seeds
    high: np.ndarray  # [S]

    @property
    def mean(self) -> np.ndarray:
        """The mean over seeds at each step, [S]."""
        return self.values.mean(axis=0)


def read_scalars(run_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of scalar ``tag`` in a run folder's TensorBoard events."""
    steps, _, values = read_scalar_events(run_dir, tag)
    return steps, values


def read_scalar_events(run_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, wall-clock times (seconds since the epoch) and values of scalar ``tag`` in a run folder's events."""
    events = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})  # 0: keep every point, not a sample
    events.Reload()
    tags = events.Tags()["scalars"]
    if tag not in tags:
        raise ConfigError(
            f"{run_dir} has no scalar {tag!r}; its tags are: {', '.join(sorted(tags)) or 'none'} "
            "(eval/... needs eval_every > 0; rollout/ep_rew_mean is logged by every run)"
        )
    scalars = events.Scalars(tag)
    return (np.array([event.step for event in scalars]), np.array([event.wall_time for event in scalars]),
            np.array([event.value for event in scalars], dtype=np.float64))


def align_seeds(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Seeds' ``(steps, values)`` on one grid: every logged step inside the range all seeds cover; [S], [seeds, S]."""
    start = max(steps[0] for steps, _ in curves)
    stop = min(steps[-1] for steps, _ in curves)
    if start > stop:
        raise ConfigError(f"the seeds' curves share no steps (one starts at {start}, another ends at {stop})")
    grid = np.unique(np.concatenate([steps for steps, _ in curves]))
    grid = grid[(grid >= start) & (grid <= stop)]
    return grid, np.stack([np.interp(grid, steps, values) for steps, values in curves])


def mean_band(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap band of the mean over seeds (axis 0 of ``values`` [seeds, S]); [S], [S]."""
    rng = np.random.default_rng(seed)
    num_seeds, num_steps = values.shape
    means = np.empty((resamples, num_steps))
    block = max(1, BOOTSTRAP_BLOCK_ELEMENTS // num_steps)
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        # A resample's mean is the seeds' values weighted by how often the resample drew each: [block, S].
        counts = rng.multinomial(num_seeds, np.full(num_seeds, 1 / num_seeds), size=stop - start)
        means[start:stop] = counts @ values / num_seeds
    return _percentile_interval(means)


def learning_curves(
    run_dirs: Sequence[str | Path], tag: str = "eval/mean_reward", resamples: int = 2000, seed: int = 0
) -> list[Curve]:
    """One curve of ``tag`` per group of runs (task, agent, config), sorted by task and label."""
    curves = []
    for (task, label), group in group_runs(find_runs(run_dirs)).items():
        steps, values = align_seeds([read_scalars(run.path, tag) for run in group])
        low, high = mean_band(values, resamples, seed)
        curves.append(Curve(task, label, [run.path for run in group], steps, values, low, high))
    return curves


def draw_curves(curves: Sequence[Curve], tag: str, path: str | Path) -> Path:
    """Draw ``curves`` as a PNG: one subplot per task, each group's mean over seeds with its 95% band."""
    tasks = sorted({curve.task for curve in curves})
    columns = min(3, len(tasks))
    rows = -(-len(tasks) // columns)
    # A Figure without pyplot renders PNGs with Agg and touches no global backend state.
    figure = Figure(figsize=(5.5 * columns, 4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, task in zip(axes, tasks):
        for curve in (curve for curve in curves if curve.task == task):
            # Markers where points are few (evaluations), so a reader sees where the curve was measured.
            marker = "o" if len(curve.steps) <= 40 else None
            (line,) = axis.plot(curve.steps, curve.mean, marker=marker, markersize=3,
                                label=f"{curve.label} ({len(curve.runs)} seeds)")
            axis.fill_between(curve.steps, curve.low, curve.high, color=line.get_color(), alpha=0.25, linewidth=0)
        axis.set_title(task)
        axis.set_xlabel("env steps")
        axis.set_ylabel(tag)
        axis.legend(fontsize="small")
    for axis in axes[len(tasks):]:
        axis.set_visible(False)
    figure.suptitle(f"{tag}: mean over seeds, 95% bootstrap band")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def plot_curves(run_dirs: Sequence[str | Path], tag: str, path: str | Path) -> list[Curve]:
    """Read ``tag`` from the runs, group them, and draw the curves to the PNG ``path`` (``rl-lstm plot``)."""
    curves = learning_curves(run_dirs, tag)
    draw_curves(curves, tag, path)
    return curves


# ---- aggregates ------------------------------------------------------------------------------------------------
def _task_means(scores: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([task_scores.mean(axis=-1) for task_scores in scores])  # [tasks, resamples]


def iqm(scores: Sequence[np.ndarray]) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of all runs' scores, pooled over tasks."""
    return scipy.stats.trim_mean(np.concatenate(scores, axis=-1), 0.25, axis=-1)


def mean_score(scores: Sequence[np.ndarray]) -> np.ndarray:
    """The mean over tasks of each task's mean score."""
    return _task_means(scores).mean(axis=0)


def median_score(scores: Sequence[np.ndarray]) -> np.ndarray:
    """The median over tasks of each task's mean score."""
    return np.median(_task_means(scores), axis=0)


def optimality_gap(scores: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of ``max(0, 1 - score)`` over all runs: how far below the optimum runs end, on average."""
    return np.maximum(0.0, 1.0 - np.concatenate(scores, axis=-1)).mean(axis=-1)


AGGREGATES: dict[str, Statistic] = {
    "IQM": iqm, "mean": mean_score, "median": median_score, "optimality gap": optimality_gap,
}


def stratified_bootstrap(
    scores: Sequence[np.ndarray], statistic: Statistic, resamples: int = 50_000, seed: int = 0
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: ``statistic`` of per-task scores and its stratified bootstrap 95% interval.

    Each resample draws each task's runs with replacement from that task alone, as rliable's StratifiedBootstrap.
    """
    if resamples < 1:
        raise ConfigError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    scores = [np.asarray(task_scores, dtype=np.float64) for task_scores in scores]
    resampled = [task_scores[rng.integers(0, len(task_scores), size=(resamples, len(task_scores)))]
                 for task_scores in scores]  # each [resamples, runs of the task]
    low, high = _percentile_interval(statistic(resampled))
    estimate = statistic([task_scores[None] for task_scores in scores])[0]
    return float(estimate), float(low), float(high)


@functools.cache
def _random_policy_return(env_id: str, env_kwargs_json: str, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of uniformly random actions over ``episodes`` episodes of an env (one per copy; a native vector
    env where the id has one, else gymnasium's SyncVectorEnv)."""
    env = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.make_vec(resolve_env_id(env_id), num_envs=episodes, **json.loads(env_kwargs_json)),
        buffer_length=episodes,
    )
    env.reset(seed=seed)
    env.action_space.seed(seed)
    try:
        while env.episode_count < episodes:
            env.step(env.action_space.sample())
    finally:
        env.close()
    return float(np.mean(list(env.return_queue)[:episodes]))


@dataclass(frozen=True)
class ScoreRange:
    """What a normalized score of 0 and of 1 stand for on one task."""

    low: float
    optimum: float
    low_source: str  # "zero", "random policy" or "given"
    optimum_source: str = "oracle"  # "oracle" (a built-in task's) or "given" (--score-range)

    def normalize(self, value: float) -> float:
        """``value`` as a fraction of the way from ``low`` to ``optimum``."""
        return (value - self.low) / (self.optimum - self.low)


# What --score-range gives for an env: its low end (a number, or RANDOM_LOW) and its optimum.
GivenRange = tuple[float | str, float]
RANDOM_LOW = "random"
SCORE_RANGE_FORM = "ENV=LOW:OPTIMUM, e.g. CartPole-v1=0:500, or Pendulum-v1=random:-200 (low: a random policy's return)"


def parse_score_ranges(entries: Sequence[str]) -> dict[str, GivenRange]:
    """``--score-range`` entries (:data:`SCORE_RANGE_FORM`) as {env id: (low or "random", optimum)}."""
    ranges: dict[str, GivenRange] = {}
    for entry in entries:
        malformed = ConfigError(f"--score-range {entry!r} is not {SCORE_RANGE_FORM}")
        env_id, _, bounds = entry.rpartition("=")
        low_text, _, optimum_text = bounds.partition(":")
        try:
            low = low_text if low_text == RANDOM_LOW else float(low_text)
            optimum = float(optimum_text)
        except ValueError:
            raise malformed from None
        if not env_id or not np.isfinite(optimum) or (low != RANDOM_LOW and not np.isfinite(low)):
            raise malformed
        if low == optimum:
            raise ConfigError(f"--score-range {entry!r}: the low end and the optimum must differ")
        ranges[env_id] = (low, optimum)
    return ranges


def score_range(env_id: str, env_kwargs: dict[str, Any], given: GivenRange | None = None) -> ScoreRange | None:
    """The range an env's returns are normalized by: ``given`` (a low end or "random", and an optimum) where the
    user gave one, else a built-in env's own; None for an env we did not write and no range given."""
    kwargs_json = json.dumps(env_kwargs, sort_keys=True)
    if given is not None:
        low, optimum = given
        if low != RANDOM_LOW:
            return ScoreRange(float(low), optimum, "given", "given")
        low = _random_policy_return(env_id, kwargs_json)
        if low == optimum:
            raise ConfigError(f"on {env_id}, a random policy's mean return is {low}, the optimum given: give a low end")
        return ScoreRange(low, optimum, "random policy", "given")
    if env_id not in BUILTIN_ENV_IDS:
        return None
    optimum = make_oracle(env_id, num_envs=1, **env_kwargs).expected_return
    if optimum > 0:
        return ScoreRange(0.0, optimum, "zero")
    return ScoreRange(_random_policy_return(env_id, kwargs_json), optimum, "random policy")


def _names(env_id: str) -> tuple[str, str]:
    """An env id as a range may be given for it: with its module (``pkg.module:Env-v0``) and without."""
    return env_id, env_id.rpartition(":")[2]


def _given_range(env_id: str, ranges: dict[str, GivenRange]) -> GivenRange | None:
    """The range given for ``env_id``, under either of its :func:`_names`."""
    return next((ranges[name] for name in _names(env_id) if name in ranges), None)


def find_eval_json(run_dir: Path) -> Path:
    """A run's eval.json: in its folder (``rl-lstm evaluate RUN_DIR``) or beside its checkpoints; the newer if both."""
    found = [path for path in (run_dir / "eval.json", run_dir / CHECKPOINTS / "eval.json") if path.is_file()]
    if not found:
        raise ConfigError(
            f"{run_dir} has no eval.json in its folder or its {CHECKPOINTS}/; write one with: "
            f"rl-lstm evaluate {run_dir} --episodes 100"
        )
    return max(found, key=lambda path: path.stat().st_mtime)


@dataclass
class TaskResult:
    """One group's runs on one task: raw mean returns and, where the task's optimum is known, normalized scores."""

    task: str
    label: str
    config: dict[str, Any]  # the config values that set this group apart from the others of its task and agent
    runs: list[Path]
    eval_files: list[Path]
    seeds: list[int | None]
    returns: np.ndarray  # [runs] each run's mean evaluation return
    score_range: ScoreRange | None

    @property
    def scores(self) -> np.ndarray | None:
        """Normalized scores [runs]; None where the task has no known optimum."""
        return None if self.score_range is None else np.array([self.score_range.normalize(r) for r in self.returns])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; ``score`` and the range are None where the task has no known optimum."""
        scores = [None] * len(self.runs) if self.scores is None else self.scores.tolist()
        span = self.score_range
        return {
            "task": self.task,
            "algorithm": self.label,
            "config": self.config,
            "optimum": None if span is None else span.optimum,
            "low": None if span is None else span.low,
            "low_source": None if span is None else span.low_source,
            "optimum_source": None if span is None else span.optimum_source,
            "mean_return": float(self.returns.mean()),
            "mean_score": None if self.scores is None else float(self.scores.mean()),
            "runs": [
                {"run": str(run), "eval_json": str(eval_file), "seed": seed, "mean_return": value, "score": score}
                for run, eval_file, seed, value, score in zip(
                    self.runs, self.eval_files, self.seeds, self.returns.tolist(), scores
                )
            ],
        }


@dataclass
class Comparison:
    """``rl-lstm compare``'s result: per-task results and, per group, the aggregates with their intervals."""

    tasks: list[TaskResult]
    aggregates: dict[str, dict[str, tuple[float, float, float]]]  # label -> statistic -> (estimate, low, high)
    notes: list[str] = field(default_factory=list)
    resamples: int = 50_000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: what compare.json holds."""
        return {
            "tasks": [result.to_dict() for result in self.tasks],
            "aggregates": {
                label: {name: {"estimate": estimate, "ci_95": [low, high]}
                        for name, (estimate, low, high) in statistics.items()}
                for label, statistics in self.aggregates.items()
            },
            "bootstrap": {"method": "stratified percentile", "resamples": self.resamples, "seed": self.seed,
                          "confidence": CONFIDENCE},
            "notes": self.notes,
        }


def compare_runs(
    run_dirs: Sequence[str | Path],
    resamples: int = 50_000,
    seed: int = 0,
    score_ranges: dict[str, GivenRange] | None = None,
) -> Comparison:
    """Per-task scores from each run's eval.json and each group's aggregates over tasks and seeds; ``score_ranges``
    ({env id: (low or "random", optimum)}, as :func:`parse_score_ranges` reads them) normalizes envs we did not
    write, or overrides a built-in env's range."""
    runs = find_runs(run_dirs)
    score_ranges = score_ranges or {}
    unused = [env_id for env_id in score_ranges if not any(env_id in _names(run.env_id) for run in runs)]
    if unused:
        raise ConfigError(
            f"--score-range names {', '.join(unused)}, which no run trained on; the runs' envs: "
            f"{', '.join(sorted({run.env_id for run in runs}))}"
        )
    differing = differing_config(runs)
    tasks = []
    for (task, label), group in group_runs(runs).items():
        eval_files = [find_eval_json(run.path) for run in group]
        returns = np.array([json.loads(path.read_text())["mean_return"] for path in eval_files], dtype=np.float64)
        tasks.append(TaskResult(task, label, differing[group[0].path], [run.path for run in group], eval_files,
                                [run.seed for run in group], returns,
                                score_range(group[0].env_id, group[0].env_kwargs,
                                            _given_range(group[0].env_id, score_ranges))))
    notes = [f"{task}: no known optimum (not a built-in env), so raw returns only, left out of the aggregates; "
             f"give one with --score-range {task.split(' ')[0]}=LOW:OPTIMUM"
             for task in sorted({result.task for result in tasks if result.score_range is None})]
    aggregates = {}
    all_tasks = sorted({result.task for result in tasks if result.scores is not None})
    for label in sorted({result.label for result in tasks}):
        scored = [result for result in tasks if result.label == label and result.scores is not None]
        if not scored:
            continue
        aggregates[label] = {name: stratified_bootstrap([result.scores for result in scored], statistic, resamples,
                                                        seed) for name, statistic in AGGREGATES.items()}
        if len(scored) < len(all_tasks):
            notes.append(f"{label}: aggregated over {len(scored)} of the {len(all_tasks)} normalized tasks")
    return Comparison(tasks, aggregates, notes, resamples, seed)


def comparison_tables(comparison: Comparison) -> list[Table]:
    """The per-task table and the aggregates table, for the terminal."""
    per_task = Table(title="Per task: mean evaluation return over seeds, and the normalized score")
    for column in ("task", "algorithm", "runs", "mean return", "score", "normalized by"):
        per_task.add_column(column, justify="left" if column in ("task", "algorithm", "normalized by") else "right")
    for result in comparison.tasks:
        scores, span = result.scores, result.score_range
        per_task.add_row(
            result.task, result.label, str(len(result.runs)), f"{result.returns.mean():.3f}",
            "raw only" if scores is None else f"{scores.mean():.3f}",
            "no known optimum" if span is None
            else f"low {span.low:.3g} ({span.low_source}), optimum {span.optimum:.3g} ({span.optimum_source})",
        )
    aggregates = Table(title=f"Aggregates of normalized scores, stratified bootstrap {CONFIDENCE:.0%} CIs")
    aggregates.add_column("algorithm")
    for name in AGGREGATES:
        aggregates.add_column(name, justify="right")
    for label, statistics in comparison.aggregates.items():
        aggregates.add_row(label, *(f"{estimate:.3f} [{low:.3f}, {high:.3f}]"
                                    for estimate, low, high in statistics.values()))
    return [per_task, aggregates]


def plot_intervals(comparison: Comparison, path: str | Path) -> Path:
    """Draw each aggregate's estimate and 95% interval per algorithm as a PNG, as rliable's interval plot."""
    labels = list(comparison.aggregates)
    if not labels:
        raise ConfigError("no run is on a task with a known optimum, so there are no aggregates to draw")
    figure = Figure(figsize=(3.2 * len(AGGREGATES) + 2, 0.6 * len(labels) + 1.5), layout="constrained")
    axes = figure.subplots(1, len(AGGREGATES), sharey=True, squeeze=False)[0]
    for axis, name in zip(axes, AGGREGATES):
        for row, label in enumerate(labels):
            estimate, low, high = comparison.aggregates[label][name]
            axis.barh(row, high - low, left=low, height=0.6, color=f"C{row % 10}", alpha=0.6)
            axis.vlines(estimate, row - 0.3, row + 0.3, color="black", linewidth=2)
        axis.set_title(name)
        axis.set_xlabel("normalized score")
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
