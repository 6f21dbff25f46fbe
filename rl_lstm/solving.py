"""Train on a task and judge it by its threshold: the one measure the benchmarks and the learning tests share.

A learning test is a benchmark run at one seed: the same config, the same budget (linear schedules decay over it)
and the same evaluations, so the steps a benchmark measured on seeds 0 to 4 to the threshold's first crossing are
the steps a test needs. A benchmark trains to the end of the budget and counts a run as solved only if its final
policy still meets the threshold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import agent_class
from rl_lstm.agent import RecurrentAgent
from rl_lstm.config import preset
from rl_lstm.curriculum import Criterion
from rl_lstm.errors import ConfigError
from rl_lstm.evaluation import EvaluationResult, evaluate_agent
from rl_lstm.training import RunConfig, write_run_config

# Evaluation envs are seeded away from the training seeds 0, 1, ..., so no evaluation episode replays the start
# of a training run.
EVALUATION_SEED = 1_000


def kwargs_text(env_kwargs: dict[str, Any]) -> str:
    """``" (length=10)"`` for env kwargs, empty without any."""
    return f" ({', '.join(f'{key}={value}' for key, value in env_kwargs.items())})" if env_kwargs else ""


@dataclass
class Task:
    """An env (with kwargs) and the evaluation that counts as solving it."""

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    metric: str = "return"  # "return": mean episode return; "success": fraction of episodes with is_success
    threshold: float = 0.0

    @property
    def label(self) -> str:
        """The env id and its kwargs, as the tables show them."""
        return f"`{self.env_id}`{kwargs_text(self.env_kwargs)}"

    @property
    def criterion(self) -> str:
        """The threshold as text, e.g. ``success >= 0.95``."""
        return f"{self.metric} >= {self.threshold:g}"

    def solved_by(self, evaluation: EvaluationResult) -> bool:
        """Whether ``evaluation`` reaches the threshold."""
        solved = Criterion(self.metric, self.threshold).met_by(evaluation)
        if solved is None:
            raise ConfigError(f"{self.env_id} reports no info['is_success']; give it a return threshold instead, "
                              f"e.g. '{self.env_id}@return>=1'")
        return solved


class EvaluateUntilSolved:
    """learn() callback: evaluates every ``eval_every`` env steps off the training clock, and once more at the end.

    A run trains to the end of its budget (env steps or training seconds) and is solved if its final evaluation, of
    the policy a user gets, meets the threshold; where it first did is kept too (``first_solved_steps``), so that a
    run which reaches the threshold and then unlearns it counts as unsolved (``collapsed``). With
    ``stop_at_first_solve`` it stops at the first evaluation that meets the threshold, whose policy is then its
    final one: cheaper, but blind to what further training would have done.
    """

    def __init__(self, task: Task, eval_every: int, eval_episodes: int, max_seconds: float,
                 stop_at_first_solve: bool = False) -> None:
        self.task = task
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.max_seconds = max_seconds
        self.stop_at_first_solve = stop_at_first_solve
        self.next_evaluation = eval_every
        self.start = time.perf_counter()
        self.evaluation_seconds = 0.0
        self.training_seconds = 0.0  # up to the last evaluation
        self.env_steps = 0  # at the last evaluation
        self.first_solved_steps: int | None = None  # env steps at the first evaluation that met the threshold
        self.first_solved_seconds: float | None = None  # training seconds up to then
        self.evaluations: list[tuple[int, EvaluationResult]] = []  # (env steps, evaluation), in order

    @property
    def last_evaluation(self) -> EvaluationResult | None:
        """The final evaluation (of the policy the run ends with); None before the first."""
        return self.evaluations[-1][1] if self.evaluations else None

    @property
    def solved(self) -> bool:
        """Whether the final evaluation meets the threshold."""
        return self.last_evaluation is not None and self.task.solved_by(self.last_evaluation)

    @property
    def collapsed(self) -> bool:
        """Whether an evaluation met the threshold and the final one does not: learned, then unlearned."""
        return self.first_solved_steps is not None and not self.solved

    def __call__(self, agent: RecurrentAgent) -> bool:
        """Called after each update; False stops learn()."""
        training_seconds = time.perf_counter() - self.start - self.evaluation_seconds
        out_of_budget = training_seconds >= self.max_seconds or agent.num_timesteps >= agent.total_timesteps
        # While a curriculum trains on its easier stages, the task is evaluated only once training reaches it.
        in_curriculum = agent.curriculum is not None and not agent.curriculum.finished
        if (agent.num_timesteps < self.next_evaluation or in_curriculum) and not out_of_budget:
            return True
        evaluation_start = time.perf_counter()
        # One episode per env copy: all of them at once, and no bias toward short episodes.
        evaluation = evaluate_agent(agent, num_episodes=self.eval_episodes, deterministic=True,
                                    seed=EVALUATION_SEED, num_envs=self.eval_episodes)
        self.evaluation_seconds += time.perf_counter() - evaluation_start
        self.evaluations.append((agent.num_timesteps, evaluation))
        scalars = {"eval/mean_reward": evaluation.mean_return}
        if evaluation.success_rate is not None:
            scalars["eval/success_rate"] = evaluation.success_rate
        agent.logger.record(scalars, agent.num_timesteps)  # TensorBoard's tags, where the run has a folder
        self.training_seconds, self.env_steps = training_seconds, agent.num_timesteps
        while self.next_evaluation <= agent.num_timesteps:
            self.next_evaluation += self.eval_every
        if self.solved and self.first_solved_steps is None:
            self.first_solved_steps, self.first_solved_seconds = agent.num_timesteps, training_seconds
        return not (out_of_budget or (self.stop_at_first_solve and self.solved))


def train_until_solved(agent_name: str, task: Task, seed: int, eval_every: int, eval_episodes: int = 100,
                       max_seconds: float = float("inf"), max_timesteps: int = 1_000_000, use_preset: bool = True,
                       run_dir: Path | None = None, device: str = "cpu", stop_at_first_solve: bool = False,
                       **overrides: Any) -> tuple[RecurrentAgent, EvaluateUntilSolved]:
    """An agent trained on ``task`` to the end of its budget, evaluated along the way (its env closed).

    Solved means solved by the final policy (:class:`EvaluateUntilSolved`); ``stop_at_first_solve`` stops at the
    first evaluation that meets the threshold instead.

    The hyperparameters are the shipped preset for the task (or, with ``use_preset=False``, the agent's defaults
    alone, as a user's own env gets them), then ``overrides``, on ``device``. With ``run_dir``, the run is a run folder
    (config.yaml and TensorBoard events with the evaluations), which ``rl-lstm plot`` and ``compare`` read.
    """
    hyperparameters = {**(preset(agent_name, task.env_id, task.env_kwargs) if use_preset else {}), **overrides}
    env_kwargs = {**hyperparameters.pop("env_kwargs", {}), **task.env_kwargs}
    agent = agent_class(agent_name)(task.env_id, seed=seed, device=device,
                                    tensorboard_log=None if run_dir is None else str(run_dir),
                                    env_kwargs=env_kwargs, **hyperparameters)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_config = RunConfig(agent=agent_name, env=task.env_id, timesteps=max_timesteps, seed=seed,
                               eval_every=eval_every, eval_episodes=eval_episodes, progress_bar=False)
        write_run_config(run_dir, run_config, agent.task_config)
    progress = EvaluateUntilSolved(task, eval_every, eval_episodes, max_seconds, stop_at_first_solve)
    agent.learn(max_timesteps, callback=progress, progress_bar=False)
    agent.close()
    assert progress.last_evaluation is not None  # the callback evaluates at the latest when the budget ends
    return agent, progress
