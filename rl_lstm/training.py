"""A training run is a folder: resolved config, TensorBoard events, checkpoints; it can be resumed.

runs/<env>/<agent>_<seed>_<time>/
    config.yaml              the resolved run and agent config (what --resume reads)
    events.out.tfevents.*    TensorBoard
    checkpoints/latest.pt    every checkpoint_every env steps, at the end, and on Ctrl-C
    checkpoints/best.pt      the best evaluation mean return so far
    final_eval.json          the evaluation after the last update (of latest.pt), and which checkpoint is best
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from agents import agent_class
from rl_lstm.agent import RecurrentAgent
from rl_lstm.config import build_config, config_to_dict, preset, read_yaml, require, resolve_env_rules
from rl_lstm.errors import ConfigError
from rl_lstm.evaluation import EvaluationResult, evaluate_agent
from rl_lstm.vec_env import resolve_env_id

CHECKPOINTS = "checkpoints"
FINAL_EVALUATION = "final_eval.json"


@dataclass
class RunConfig:
    """What a training run does beyond the agent's hyperparameters."""

    agent: str = "ppo"  # trainer: one of agents.AGENTS
    env: str = "rl_lstm/TMaze-v0"  # gymnasium id, or "package.module:Env-v0"
    timesteps: int = 200_000  # env steps to train for in total
    seed: int = 0  # seeds torch, numpy, Python and the envs; recorded in the run folder
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    torch_threads: int = 1  # intra-op threads: small recurrent nets run fastest on one
    eval_every: int = 25_000  # env steps between evaluations, and one after the last update (0: none, no best)
    eval_episodes: int = 100  # episodes per evaluation
    checkpoint_every: int = 25_000  # env steps between checkpoints/latest.pt
    runs_dir: str = "runs"  # where run folders are made
    progress_bar: bool = True  # show a progress bar

    def validate(self) -> None:
        """Range checks of the run keys."""
        agent_class(self.agent)  # an unknown name is an error listing the agents and the closest ones
        require(self.timesteps >= 1, f"timesteps must be at least 1, got {self.timesteps}")
        require(self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}")
        require(self.eval_episodes >= 1, f"eval_episodes must be at least 1, got {self.eval_episodes}")
        require(self.checkpoint_every >= 1, f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        require(self.torch_threads >= 1, f"torch_threads must be at least 1, got {self.torch_threads}")


def resolve_config(values: dict[str, Any]) -> tuple[RunConfig, Any]:
    """Split flat ``values`` into the run config and the agent's hyperparameters over its env preset.

    Order of precedence, lowest first: dataclass defaults, the shipped preset for (agent, env), ``values``.
    A key that is neither a run key nor a hyperparameter of the agent is an error listing both.
    """
    run_keys = {f.name for f in dataclasses.fields(RunConfig)}
    run_config = build_config(RunConfig, {k: v for k, v in values.items() if k in run_keys})
    # Checked now, before anything runs; the run keeps the id as written (a module prefix is re-imported on resume).
    env_id = resolve_env_id(run_config.env)
    config_class = agent_class(run_config.agent).config_class
    agent_keys = {f.name for f in dataclasses.fields(config_class)}
    unknown = [k for k in values if k not in run_keys and k not in agent_keys]
    if unknown:
        # build_config names the closest keys of the agent's config; the run keys are listed after.
        try:
            build_config(config_class, {unknown[0]: values[unknown[0]]})
        except ConfigError as error:
            raise ConfigError(f"{error} Run keys: {', '.join(sorted(run_keys))}.") from None
    hyperparams = {**preset(run_config.agent, run_config.env, values.get("env_kwargs")),
                   **{k: v for k, v in values.items() if k in agent_keys}}
    # A user's file or --set may also write a value as !from_env EXPRESSION, as the presets do.
    hyperparams = resolve_env_rules(hyperparams, env_id, values.get("env_kwargs"))
    return run_config, build_config(config_class, hyperparams)


def new_run_dir(run_config: RunConfig) -> Path:
    """A fresh folder ``runs/<env>/<agent>_<seed>_<time>``."""
    env_name = run_config.env.replace("/", "_").replace(":", "_")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(run_config.runs_dir) / env_name / f"{run_config.agent}_{run_config.seed}_{stamp}"
    run_dir, suffix = base, 1
    while run_dir.exists():
        suffix += 1
        run_dir = base.with_name(f"{base.name}-{suffix}")
    run_dir.mkdir(parents=True)
    return run_dir


def write_run_config(run_dir: Path, run_config: RunConfig, hyperparams: Any) -> None:
    """Record the resolved config (the seed among it) in the run folder."""
    content = {**config_to_dict(run_config), "hyperparams": config_to_dict(hyperparams)}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(content, sort_keys=False))


def read_run_config(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """The run config and hyperparameters that a run folder's config.yaml recorded."""
    content = read_yaml(run_dir / "config.yaml")
    hyperparams = content.pop("hyperparams", {})
    return build_config(RunConfig, content), hyperparams


class RunCallback:
    """After each update: evaluate and keep the best, checkpoint, and stop cleanly on Ctrl-C; on the first, log
    ``hparams`` (the resolved config) for TensorBoard's HPARAMS tab. The last update of the budget is always
    evaluated, so a run ends with the evaluation of the policy it ends with."""

    def __init__(self, run_dir: Path, run_config: RunConfig, hparams: dict[str, Any]):
        self.run_dir = run_dir
        self.run_config = run_config
        self.hparams: dict[str, Any] | None = hparams
        self.best_mean_return = -float("inf")
        self.best_timesteps: int | None = None  # env steps of the evaluation that checkpoints/best.pt holds
        self.last_evaluation: tuple[int, EvaluationResult] | None = None  # (env steps, evaluation)
        self.next_eval = 0
        self.next_checkpoint = 0
        self.interrupted = False

    @property
    def best(self) -> dict[str, Any]:
        """What checkpoints/best.pt holds, as checkpoints record it for a resumed run."""
        return {"best_mean_return": self.best_mean_return, "best_timesteps": self.best_timesteps}

    def schedule_from(self, num_timesteps: int) -> None:
        """Set the next evaluation and checkpoint after ``num_timesteps`` (for fresh and resumed runs)."""
        if self.run_config.eval_every:
            self.next_eval = (num_timesteps // self.run_config.eval_every + 1) * self.run_config.eval_every
        self.next_checkpoint = (
            num_timesteps // self.run_config.checkpoint_every + 1
        ) * self.run_config.checkpoint_every

    def save_latest(self, agent: RecurrentAgent) -> None:
        """Write checkpoints/latest.pt (atomically) with what the run needs to resume."""
        agent.save(self.run_dir / CHECKPOINTS / "latest.pt", extra=self.best)

    def evaluate(self, agent: RecurrentAgent) -> EvaluationResult:
        """Evaluate the agent, log it under ``eval/...`` and write checkpoints/best.pt if it is the best so far."""
        result = evaluate_agent(agent, num_episodes=self.run_config.eval_episodes, seed=self.run_config.seed)
        scalars = {"eval/mean_reward": result.mean_return, "eval/mean_ep_length": result.mean_length}
        if result.successes is not None:
            scalars["eval/success_rate"] = result.success_rate
        agent.logger.record(scalars, agent.num_timesteps)
        if result.mean_return > self.best_mean_return:
            self.best_mean_return, self.best_timesteps = result.mean_return, agent.num_timesteps
            agent.save(self.run_dir / CHECKPOINTS / "best.pt", extra=self.best)
        self.last_evaluation = agent.num_timesteps, result
        return result

    def __call__(self, agent: RecurrentAgent) -> bool:
        if self.hparams is not None:
            # Here, not before learn: the agent opens its TensorBoard writer in learn, and the row goes into that file.
            agent.logger.record_hparams(self.hparams, agent.num_timesteps)
            self.hparams = None
        last_update = agent.num_timesteps >= agent.total_timesteps
        if self.run_config.eval_every and (agent.num_timesteps >= self.next_eval or last_update):
            self.evaluate(agent)
            self.schedule_from(agent.num_timesteps)
        if agent.num_timesteps >= self.next_checkpoint:
            self.save_latest(agent)
            self.schedule_from(agent.num_timesteps)
        return not self.interrupted


def train(
    run_config: RunConfig,
    hyperparams: Any,
    run_dir: Path | None = None,
    resume: bool = False,
    make_callback: Callable[[Path, RunConfig, dict[str, Any]], RunCallback] = RunCallback,
) -> Path:
    """Train (or resume) a run in its folder; returns the folder. Ctrl-C saves a checkpoint and returns.

    ``make_callback(run_dir, run_config, hparams)`` builds the after-update callback: a :class:`RunCallback`, or a
    subclass of it that does more (``rl-lstm tune``'s reports each evaluation to its trial).
    """
    torch.set_num_threads(run_config.torch_threads)
    cls = agent_class(run_config.agent)
    if resume:
        agent = cls.load(run_dir / CHECKPOINTS / "latest.pt", device=run_config.device)
    else:
        # The agent is built before its folder: an env or space it refuses leaves no empty run folder behind.
        agent = cls(run_config.env, seed=run_config.seed, device=run_config.device, **config_to_dict(hyperparams))
        if run_dir is None:
            run_dir = new_run_dir(run_config)
    agent.tensorboard_log = str(run_dir)
    write_run_config(run_dir, run_config, hyperparams)
    # A resumed run moves latest.pt on: the evaluation of where it was would describe a checkpoint no longer there.
    (run_dir / FINAL_EVALUATION).unlink(missing_ok=True)
    callback = make_callback(run_dir, run_config, {**config_to_dict(run_config), **config_to_dict(hyperparams)})
    if resume:
        callback.best_mean_return = agent.checkpoint_extra.get("best_mean_return", -float("inf"))
        callback.best_timesteps = agent.checkpoint_extra.get("best_timesteps")
    callback.schedule_from(agent.num_timesteps)

    def on_interrupt(signum: int, frame: Any) -> None:
        callback.interrupted = True
        signal.signal(signal.SIGINT, previous_handler)  # a second Ctrl-C stops at once

    previous_handler = signal.signal(signal.SIGINT, on_interrupt)
    try:
        remaining = run_config.timesteps - agent.num_timesteps
        if remaining > 0:
            agent.learn(remaining, callback=callback, progress_bar=run_config.progress_bar)
        callback.save_latest(agent)
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        agent.close()
    run_dir.joinpath("interrupted").unlink(missing_ok=True)
    if callback.interrupted:
        run_dir.joinpath("interrupted").touch()
    elif callback.last_evaluation is not None and callback.last_evaluation[0] == agent.num_timesteps:
        write_final_evaluation(run_dir, callback)  # of the policy latest.pt holds, not of an earlier one
    return run_dir


def write_final_evaluation(run_dir: Path, callback: RunCallback) -> None:
    """Write final_eval.json: the run's last evaluation (of checkpoints/latest.pt) and which checkpoint is best."""
    steps, result = callback.last_evaluation
    report = {
        "checkpoint": f"{CHECKPOINTS}/latest.pt",
        "num_timesteps": steps,
        "deterministic": True,
        "seed": callback.run_config.seed,
        **result.to_dict(),
        "best": {"checkpoint": f"{CHECKPOINTS}/best.pt", "num_timesteps": callback.best_timesteps,
                 "mean_return": callback.best_mean_return},
    }
    (run_dir / FINAL_EVALUATION).write_text(json.dumps(report, indent=2) + "\n")


def read_final_evaluation(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's final_eval.json, or None where the run wrote none (interrupted, or eval_every 0)."""
    path = run_dir / FINAL_EVALUATION
    return json.loads(path.read_text()) if path.is_file() else None
