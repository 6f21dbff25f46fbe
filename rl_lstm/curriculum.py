"""A curriculum over an env's kwargs: train on easier versions of the task first, then on the task itself.

Written in a config as ``curriculum: {stages: {length: [100, 1000]}, until: success>=0.95}``: the agent trains on
the env built with ``length=100`` until a deterministic evaluation there meets ``until``, then with ``length=1000``,
then with the env's own kwargs for the rest of training. Any env id whose constructor (or ``gym.make``) takes the
kwarg works, ours or a user's. The config's ``env_kwargs`` stay the task's own, so checkpoints, ``rl-lstm evaluate``
and the evaluations of a run measure the task, not the stage. ``hyperparameters: {n_steps: [102, 1002]}`` gives
training hyperparameters a value per stage (the config's own on the task), for those that follow the env, such as
PPO's chunk length on a T-maze; written as one ``!from_env`` rule (``n_steps: !from_env length + 2``), config
resolution (``rl_lstm.config.resolve_env_rules``) computes it for each stage with the stage's kwargs.

Why: a network that has solved a short T-maze often holds the cue far longer than it was trained to (Evolino's
L = 100 solutions of Ni et al.'s passive T-maze held it for 10,000 steps on 2 of 3 seeds), and a generation at
L = 100 costs a hundredth of one at L = 10,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rl_lstm.errors import ConfigError

if TYPE_CHECKING:
    from rl_lstm.agent import RecurrentAgent

METRICS = ("return", "success")  # what a threshold may be on (rl_lstm.solving's tasks too)
# Stage evaluations are seeded away from the training seeds 0, 1, ... and from the solving evaluations' 1,000, ...
STAGE_EVALUATION_SEED = 2_000
SETTINGS = {"stages": "the env kwargs of each stage, e.g. {length: [100, 1000]}",
            "until": "when a stage is done: 'success>=X' or 'return>=X', or a list with one per stage",
            "hyperparameters": "training hyperparameters per stage, e.g. {n_steps: [12, 102]}, or one !from_env "
                               "rule computed with each stage's kwargs, e.g. {n_steps: !from_env length + 2}",
            "eval_every": "env steps between evaluations of a stage (default 50000)",
            "eval_episodes": "deterministic episodes per evaluation (default 100)",
            "evaluate_on_entry": "evaluate each stage as soon as training reaches it (true) and pass it without "
                                 "training if it is already met (default false: first after eval_every steps)",
            "restart_after": "env steps a stage may train without being met before training restarts it from the "
                             "network that entered it; the task too, until it first meets the last stage's until "
                             "(default: never)"}


@dataclass(frozen=True)
class Criterion:
    """``success>=X`` (fraction of episodes with ``info["is_success"]``) or ``return>=X`` (mean episode return)."""

    metric: str
    threshold: float

    @classmethod
    def parse(cls, text: Any) -> Criterion:
        """The criterion written ``metric>=threshold``, or a ConfigError showing the form."""
        metric, separator, value = str(text).replace(" ", "").partition(">=")
        try:
            threshold = float(value)
        except ValueError:
            threshold = None
        if not separator or metric not in METRICS or threshold is None:
            raise ConfigError(f"curriculum until {text!r} must read 'success>=X' or 'return>=X', e.g. 'success>=0.95'")
        return cls(metric, threshold)

    def value(self, evaluation: Any) -> float | None:
        """The metric of an ``EvaluationResult``: its mean return or success rate (None: the env reports none)."""
        return evaluation.mean_return if self.metric == "return" else evaluation.success_rate

    def met_by(self, evaluation: Any) -> bool | None:
        """Whether an ``EvaluationResult`` reaches the threshold; None where the env reports no success."""
        value = self.value(evaluation)
        return None if value is None else value >= self.threshold


@dataclass(frozen=True)
class Curriculum:
    """The stages (env kwargs each) trained on before the task's own kwargs, and when each is done."""

    stages: tuple[dict[str, Any], ...]
    until: tuple[Criterion, ...]
    hyperparameters: tuple[dict[str, Any], ...]  # per stage: the config values it trains with
    eval_every: int = 50_000
    eval_episodes: int = 100
    restart_after: int | None = None
    evaluate_on_entry: bool = False
    task_until: Criterion = Criterion("success", 0.95)  # the last stage's: when restarts on the task itself end

    @classmethod
    def from_config(cls, value: dict[str, Any], env_kwargs: dict[str, Any]) -> Curriculum:
        """The curriculum a config's ``curriculum`` dict describes; stages equal to the task itself are dropped."""
        if not isinstance(value, dict):
            raise ConfigError(
                f"curriculum must be a mapping such as {{stages: {{length: [100, 1000]}}}}, got {value!r}"
            )
        unknown = sorted(set(value) - set(SETTINGS))
        if unknown:
            raise ConfigError(f"curriculum has no setting {', '.join(map(repr, unknown))}; its settings: "
                              + "; ".join(f"{key}: {text}" for key, text in SETTINGS.items()))
        stages_by_kwarg = value.get("stages")
        if not isinstance(stages_by_kwarg, dict) or not stages_by_kwarg or not all(
            isinstance(values, list) and values for values in stages_by_kwarg.values()
        ):
            raise ConfigError(f"curriculum stages must map env kwargs to lists of values, e.g. {{length: [100, "
                              f"1000]}}, got {stages_by_kwarg!r}")
        counts = {len(values) for values in stages_by_kwarg.values()}
        if len(counts) > 1:
            raise ConfigError(f"curriculum stages give each kwarg its value per stage, so their lists must be as long "
                              f"as each other; got {stages_by_kwarg!r}")
        stages = [dict(zip(stages_by_kwarg, values)) for values in zip(*stages_by_kwarg.values())]
        by_key = value.get("hyperparameters", {})
        if not isinstance(by_key, dict) or not all(
            isinstance(values, list) and len(values) == len(stages) for values in by_key.values()
        ):
            raise ConfigError(f"curriculum hyperparameters must map config keys to lists of one value per stage "
                              f"({len(stages)}), e.g. {{n_steps: [12, 102]}}, got {by_key!r}")
        settings = [dict(zip(by_key, values)) for values in zip(*by_key.values())] or [{} for _ in stages]
        until = value.get("until", "success>=0.95")
        criteria = [Criterion.parse(text) for text in until] if isinstance(until, list) else [Criterion.parse(until)]
        if len(criteria) not in (1, len(stages)):
            raise ConfigError(f"curriculum until has {len(criteria)} criteria for {len(stages)} stages; give one for "
                              "all stages or one per stage")
        criteria *= len(stages) // len(criteria)
        numbers = {"eval_every": value.get("eval_every", 50_000), "eval_episodes": value.get("eval_episodes", 100),
                   "restart_after": value.get("restart_after")}
        for key, number in numbers.items():
            if (number is not None or key != "restart_after") and (
                not isinstance(number, int) or isinstance(number, bool) or number < 1
            ):
                raise ConfigError(f"curriculum {key} must be a positive whole number, got {number!r}")
        # A stage that is the task itself (a rule such as min(length, 100) at length 50) ends the curriculum there.
        kept = []
        for stage, criterion, setting in zip(stages, criteria, settings):
            if {**env_kwargs, **stage} == env_kwargs:
                break
            kept.append((stage, criterion, setting))
        evaluate_on_entry = value.get("evaluate_on_entry", False)
        if not isinstance(evaluate_on_entry, bool):
            raise ConfigError(f"curriculum evaluate_on_entry must be true or false, got {evaluate_on_entry!r}")
        return cls(*(tuple(entry[i] for entry in kept) for i in range(3)), **numbers,
                   evaluate_on_entry=evaluate_on_entry, task_until=criteria[-1])


class CurriculumProgress:
    """Which stage an agent trains on, and the evaluations that move it on (called after every iteration)."""

    def __init__(
        self,
        curriculum: Curriculum,
        stage: int = 0,
        next_evaluation: int | None = None,
        stage_start: int = 0,
        restarts: int = 0,
        restart_point: dict[str, Any] | None = None,
        task_met: bool = False,
    ) -> None:
        self.curriculum = curriculum
        self.stage = stage
        self.next_evaluation = curriculum.eval_every if next_evaluation is None else next_evaluation
        self.stage_start = stage_start  # env steps when this stage began, or was last restarted
        self.restarts = restarts  # of this stage
        self.restart_point = restart_point  # the agent's learned state on entering this stage (with restart_after)
        self.task_met = task_met  # with restart_after: whether the task itself has met task_until, ending restarts

    @property
    def finished(self) -> bool:
        """True once the agent trains on the task itself."""
        return self.stage >= len(self.curriculum.stages)

    def env_kwargs(self, task_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The env kwargs to train on now: the stage's over the task's."""
        return task_kwargs if self.finished else {**task_kwargs, **self.curriculum.stages[self.stage]}

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The stage's hyperparameters over the config's (none once the agent trains on the task)."""
        return {} if self.finished else self.curriculum.hyperparameters[self.stage]

    @property
    def watching_task(self) -> bool:
        """Whether the task itself is still evaluated: with restart_after, until it first meets ``task_until``."""
        return self.finished and self.curriculum.restart_after is not None and not self.task_met

    @property
    def evaluating(self) -> bool:
        """Whether evaluations still run: on a stage, or (with restart_after) on the task until it is first met."""
        return not self.finished or self.watching_task

    def due(self, num_timesteps: int) -> bool:
        """Whether the stage (or, with restart_after, the task) is evaluated after this iteration."""
        return self.evaluating and num_timesteps >= self.next_evaluation

    def evaluate(self, agent: RecurrentAgent) -> dict[str, float]:
        """Evaluate the stage; on meeting its criterion, move on; past restart_after, restart it. Scalars to log."""
        # Imported here: rl_lstm.evaluation imports the agents, which import this module.
        from rl_lstm.evaluation import evaluate_agent

        on_task = self.finished
        criterion = self.curriculum.task_until if on_task else self.curriculum.until[self.stage]
        evaluation = evaluate_agent(agent, num_episodes=self.curriculum.eval_episodes, deterministic=True,
                                    seed=STAGE_EVALUATION_SEED, num_envs=self.curriculum.eval_episodes,
                                    env_kwargs=agent.training_env_kwargs)
        met = criterion.met_by(evaluation)
        if met is None:
            raise ConfigError(f"{agent.env_id} reports no info['is_success'], so a curriculum stage cannot end on "
                              "success; write until: 'return>=X' instead")
        scalars = {f"curriculum/stage_{criterion.metric}": criterion.value(evaluation)}
        while self.next_evaluation <= agent.num_timesteps:
            self.next_evaluation += self.curriculum.eval_every
        if met and on_task:
            self.task_met = True
        elif met:
            self.stage += 1
            self.next_evaluation = agent.num_timesteps + self.curriculum.eval_every
            self.remember_start(agent)
        elif self.curriculum.restart_after is not None and (
            agent.num_timesteps - self.stage_start >= self.curriculum.restart_after
        ):
            # Whether a gradient trainer gets through a stage is partly luck (on Ni et al.'s passive T-maze the
            # junction's action can collapse onto one arm, or onto a wall, and never recover); the network that
            # passed the previous stage, trained again on fresh episodes, usually does. The task itself, the last
            # leg, can stick the same way, so it is restarted too until it first meets the last stage's criterion.
            agent.restore_learned_state(self.restart_point)
            self.restarts += 1
            self.stage_start = agent.num_timesteps
        if self.curriculum.restart_after is not None:
            scalars["curriculum/restarts"] = self.restarts
        return scalars

    def remember_start(self, agent: RecurrentAgent) -> None:
        """Mark the start of the stage; with ``restart_after``, keep the agent's learned state to restart it from."""
        self.stage_start = agent.num_timesteps
        self.restarts = 0
        self.restart_point = None if self.curriculum.restart_after is None else agent.learned_state()

    def state_dict(self) -> dict[str, Any]:
        """The stage, the next evaluation and the point a restart returns to, for a checkpoint."""
        return {"stage": self.stage, "next_evaluation": self.next_evaluation, "stage_start": self.stage_start,
                "restarts": self.restarts, "restart_point": self.restart_point, "task_met": self.task_met}
