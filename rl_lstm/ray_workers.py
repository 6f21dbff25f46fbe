"""Ray, in one place: start or join a cluster, keep a pool of actors, replace one that dies, shut down.

Evolino's population evaluators and the gradient trainers' rollout workers are both a :class:`WorkerPool`: actor
``i`` holds an object built in its own process from plain data, and each round calls one method on every actor. An
actor that dies (its node lost, its process killed) is replaced by a new one, brought back to its last consistent
state by the caller's recovery calls, and its call repeated; the run goes on.

For PPO and REINFORCE, :class:`RolloutWorkers` is the learner's side: every worker holds its own vector env of
``envs_per_worker`` copies (built from the same id, kwargs and wrappers as in-process) and an acting copy of the
policy; each iteration the learner puts the weights once, every worker collects its copies' part of the rollout
(``agents/ppo.py``'s ``RolloutCollector``, ``agents/reinforce.py``'s ``EpisodeCollector``), and the learner
assembles the parts. Observation statistics are merged across workers; the learner scales the rewards itself
(:class:`rl_lstm.vec_env.RolloutRewardNormalizer`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rl_lstm.config import require
from rl_lstm.errors import ConfigError, RLLSTMError
from rl_lstm.policies import RecurrentActorCritic
from rl_lstm.vec_env import (
    load_normalization_state,
    make_vector_env,
    merge_observation_statistics,
    normalization_state,
    resolve_env_id,
)

BACKENDS = ("local", "ray")
MAX_DEATHS_PER_CALL = 3  # a worker that dies this often on one call is not unlucky: its work kills it
Call = tuple[str, tuple]  # a method name and its arguments


@dataclass
class RayConfig:
    """Where the work runs: in-process, or on Ray actors (the ``ray`` extra)."""

    backend: str = "local"  # "local" (in-process) or "ray" (Ray actors, each with its own vector env)
    ray_workers: int = 2  # Ray actors (one CPU each)
    ray_address: str | None = None  # join this Ray cluster ("auto" or "ray://host:port"); None starts a local one

    def validate_backend(self) -> None:
        """Range checks of the Ray keys."""
        require(self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        require(self.ray_workers >= 1, f"ray_workers must be at least 1, got {self.ray_workers}")


@dataclass
class RolloutWorkersConfig(RayConfig):
    """The Ray keys of a gradient trainer: its ``num_envs`` copies split over ``ray_workers`` rollout workers."""

    envs_per_worker: int | None = None  # env copies per Ray worker; None: num_envs / ray_workers

    def validate_backend(self) -> None:
        """Range checks of the Ray keys; with backend "ray" the copies must split evenly over the workers."""
        super().validate_backend()
        num_envs = self.num_envs  # type: ignore[attr-defined]  (EnvConfig's, in every trainer's config)
        if self.backend != "ray":
            return
        if self.envs_per_worker is None:
            require(
                num_envs % self.ray_workers == 0,
                f"num_envs ({num_envs}) must split evenly over ray_workers ({self.ray_workers}); change one, or set "
                "envs_per_worker and num_envs = ray_workers * envs_per_worker",
            )
        else:
            require(
                self.envs_per_worker * self.ray_workers == num_envs,
                f"num_envs ({num_envs}) is the rollout's width, split over the Ray workers: with ray_workers="
                f"{self.ray_workers} and envs_per_worker={self.envs_per_worker} set num_envs to "
                f"{self.ray_workers * self.envs_per_worker}, or leave envs_per_worker null",
            )


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ConfigError("backend='ray' needs Ray: pip install 'rl-lstm[ray]' (or pip install 'ray>=2.9')") from error
    return ray


def start_local_cluster(num_cpus: int, python_paths: Sequence[str] = ()) -> ModuleType:
    """Start a local Ray cluster of ``num_cpus`` CPUs whose workers also import modules from ``python_paths``."""
    ray = import_ray()
    paths = os.pathsep.join([*python_paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    runtime_env = {"env_vars": {"PYTHONPATH": paths}} if python_paths else None
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    return ray


def require_env_id(env: Any) -> str:
    """The env id every Ray worker builds its env from; an env object cannot be shipped to them."""
    if not isinstance(env, str):
        raise ConfigError(
            f"backend='ray' builds the env in every worker, so pass the env as a registered id, not a "
            f"{type(env).__name__}"
        )
    try:
        resolve_env_id(env)  # "package.module:Env-v0" ids too: each worker imports the package
    except ConfigError as error:
        raise ConfigError(f"backend='ray' builds the env in every worker, so pass a registered id ({error})") from None
    return env


def _last_lines(text: str, count: int = 3) -> str:
    """The last ``count`` non-empty lines of Ray's error text, where the cause (an ImportError, ...) is."""
    return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-count:])


class WorkerPool:
    """Ray actors, actor ``i`` holding ``factory(specs[i])`` built in its own process (env included).

    The pool joins the cluster at ``address`` (``"auto"``, ``"ray://host:port"``) or, with ``None``, uses the one
    this process already started or starts a local one of one CPU per worker; :meth:`close` stops the actors, and the
    cluster too if the pool started it.
    """

    def __init__(self, factory: Callable[[dict[str, Any]], Any], specs: list[dict[str, Any]], address: str | None):
        self.ray = import_ray()
        self.started_cluster = not self.ray.is_initialized()
        if self.started_cluster:
            if address is None:
                start_local_cluster(len(specs))
            else:
                self.ray.init(address=address, log_to_driver=False)
        self.factory, self.specs = factory, specs
        # One CPU each, no automatic restart: a dead worker is replaced here, where its part of the work is known.
        self.actor_class = self.ray.remote(num_cpus=1, max_restarts=0)(_PoolActor)
        self.workers = [self._new_worker(index) for index in range(len(specs))]
        self.replaced_workers = 0

    def _new_worker(self, index: int) -> Any:
        return self.actor_class.remote(self.factory, self.specs[index])

    def put(self, value: Any) -> Any:
        """``value`` in the object store once, for every worker to read (``ray.put``)."""
        return self.ray.put(value)

    def run(
        self, calls: list[list[Call]], recover: Callable[[int, list[Call]], list[Call]] | None = None
    ) -> list[Any]:
        """Worker ``i`` makes the calls ``calls[i]`` in order; the result of each worker's last call, in order.

        A worker that died is replaced; the new one makes ``recover(i, calls[i])`` (default: ``calls[i]`` again).
        """
        pending = {index: self.workers[index].run.remote(worker_calls) for index, worker_calls in enumerate(calls)}
        results: dict[int, Any] = {}
        deaths = [0] * len(calls)
        while pending:
            index, future = next(iter(pending.items()))
            try:
                results[index] = self.ray.get(future)
                del pending[index]
            except self.ray.exceptions.RayActorError as error:
                deaths[index] += 1
                if deaths[index] >= MAX_DEATHS_PER_CALL:
                    raise RLLSTMError(
                        f"Ray worker {index} died {deaths[index]} times making {[m for m, _ in calls[index]]}: its "
                        "work kills its process (an env that crashes the interpreter, or the node running out of "
                        "memory), or it could not start (on a cluster joined with ray_address, every node must be "
                        "able to import rl_lstm and the env's module: install them there, or start the nodes with "
                        "that PYTHONPATH). Run with backend 'local' to see the env fail in-process. Ray's last "
                        f"report: {_last_lines(str(error))}"
                    ) from error
                self.workers[index] = self._new_worker(index)
                self.replaced_workers += 1
                again = calls[index] if recover is None else recover(index, calls[index])
                pending[index] = self.workers[index].run.remote(again)
        return [results[index] for index in range(len(calls))]

    def kill(self, index: int) -> None:
        """End worker ``index`` at once, as if its node went away (the next call replaces it)."""
        self.ray.kill(self.workers[index])

    def close(self) -> None:
        """Stop the actors; shut the cluster down if this pool started it."""
        for worker in self.workers:
            self.ray.kill(worker)
        if self.started_cluster:
            self.ray.shutdown()


class _PoolActor:
    """A Ray actor holding one object built from plain data; :meth:`run` makes a list of calls on it."""

    def __init__(self, factory: Callable[[dict[str, Any]], Any], spec: dict[str, Any]) -> None:
        torch.set_num_threads(1)  # one CPU per actor; small recurrent nets run fastest on one thread anyway
        self.target = factory(spec)

    def run(self, calls: list[Call]) -> Any:
        """Make the calls in order (object refs among the arguments read from the store); the last one's result."""
        import ray

        result = None
        for method, arguments in calls:
            arguments = tuple(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in arguments)
            result = getattr(self.target, method)(*arguments)
        return result


# ---- rollout workers of the gradient trainers ---------------------------------------------------------------------
def worker_env_kwargs(config: Any, num_envs: int) -> dict[str, Any]:
    """The arguments of ``make_vector_env`` for a worker's env: the in-process env's, without reward scaling (the
    learner scales the whole rollout's rewards, so every copy's return counts, as in-process)."""
    return {
        "num_envs": num_envs,
        "env_kwargs": config.env_kwargs,
        "vectorization": config.vectorization,
        "normalize_observations": config.normalize_observations,
        "env_wrappers": list(config.env_wrappers),
        "frame_stack": config.frame_stack,
        "prev_action_reward": config.prev_action_reward,
        # Each worker counts what its own copies see (rl_lstm.exploration).
        "count_bonus": config.count_bonus,
        "count_bonus_bits": config.count_bonus_bits,
    }


def learner_env(env_id: str, config: Any) -> gym.vector.VectorEnv:
    """The learner's env with backend "ray": one copy, never stepped, built as the in-process env is; it gives the
    spaces and holds the normalization statistics that checkpoints, evaluation and export read."""
    kwargs = worker_env_kwargs(config, 1)
    if kwargs["vectorization"] == "async":
        kwargs["vectorization"] = "sync"  # the same copy, without a process of its own
    return make_vector_env(env_id, **kwargs, normalize_rewards=config.normalize_rewards, gamma=config.gamma)


class RolloutWorker:
    """Inside a Ray actor: a vector env, an acting copy of the policy, and the trainer's collector over them."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.env = make_vector_env(spec["env_id"], **spec["env"])
        self.policy = RecurrentActorCritic(
            self.env.single_observation_space, self.env.single_action_space, **spec["policy"]
        )
        self.policy.eval()
        self.collector = spec["collector"](self.env, self.policy, spec["env_id"], spec["first_copy"], **spec["kwargs"])

    def collect(self, weights: dict[str, torch.Tensor], observation_statistics: dict | None, *args: Any) -> dict:
        """Load the learner's weights and statistics, collect; the part, the carry and the statistics after it."""
        self.policy.load_state_dict(weights)
        if observation_statistics is not None:
            load_normalization_state(self.env, {"observation": observation_statistics}, training=True)
        part = self.collector.collect(*args)
        return {
            "part": part,
            "carry": self.collector.episode_state(),
            "observation_statistics": normalization_state(self.env).get("observation"),
        }

    def resume(self, carry: dict[str, Any]) -> None:
        """Continue the episodes in flight that ``carry`` (an earlier ``collect``'s) holds."""
        self.collector.resume(carry)


class RolloutWorkers:
    """The learner's side of the rollout workers: weights out, parts back, statistics merged, dead workers replaced.

    Worker ``i`` steps copies ``i * envs_per_worker ...`` of the rollout. After each rollout it hands back its
    *carry*, the episodes in flight (env state, core state), which is its last consistent state: a worker that dies
    is replaced by a new actor, given that carry, and collects its part again. Where an env's state cannot be read
    (a user's env in a Sync/Async vector env) there is no carry: the new worker resets its copies with seeds from its
    own seed stream, and the episodes that were in flight on it are lost.
    """

    def __init__(self, env_id: str, config: Any, seed: int, collector: type, collector_kwargs: dict[str, Any]):
        per_worker = config.envs_per_worker or config.num_envs // config.ray_workers
        self.num_workers, self.envs_per_worker = config.ray_workers, per_worker
        self.specs = [
            {
                "env_id": env_id,
                "env": worker_env_kwargs(config, per_worker),
                "policy": config.policy_kwargs(),
                "collector": collector,
                "first_copy": index * per_worker,
                "kwargs": collector_kwargs,
            }
            for index in range(config.ray_workers)
        ]
        self.address = config.ray_address
        self.pool: WorkerPool | None = None  # started at the first rollout: loading a checkpoint starts no actors
        self.carries: list[dict[str, Any] | None] = [None] * self.num_workers
        self.to_resume = [False] * self.num_workers  # carries loaded from a checkpoint, not yet given to the workers
        self.seed_streams = [np.random.default_rng([seed, index]) for index in range(self.num_workers)]
        self.in_flight = False  # the workers hold episodes in flight (their carries may still be unreadable)
        self.restarted = np.zeros(self.num_workers, dtype=bool)  # reset from its seed stream in the last collect

    @property
    def needs_reset(self) -> bool:
        """True when no worker has episodes in flight: the next rollout starts from a reset, as in-process."""
        return not self.in_flight

    def copies(self, index: int) -> np.ndarray:
        """The rollout's copy indices that worker ``index`` steps."""
        return np.arange(index * self.envs_per_worker, (index + 1) * self.envs_per_worker)

    def collect(self, policy: RecurrentActorCritic, env: gym.vector.VectorEnv, *args: Any) -> list[Any]:
        """Every worker's part of the next rollout, in copy order; ``env`` (the learner's) gets the merged statistics.

        ``args`` go to the collectors' ``collect``; a reset seed among them (the first) is the whole rollout's, and
        worker ``i`` adds its first copy's index, so every copy gets the seed it gets in-process.
        """
        if self.pool is None:
            self.pool = WorkerPool(RolloutWorker, self.specs, self.address)
        weights = self.pool.put({name: tensor.cpu() for name, tensor in policy.state_dict().items()})
        start = normalization_state(env).get("observation")
        collect_call = ("collect", (weights, start, *args))
        calls = [[("resume", (carry,))] if resume else [] for carry, resume in zip(self.carries, self.to_resume)]
        self.restarted[:] = False

        def recover(index: int, worker_calls: list[Call]) -> list[Call]:
            if self.carries[index] is not None:
                return [("resume", (self.carries[index],)), collect_call]
            if args[0] is not None:
                return worker_calls  # this collect resets every copy anyway: the same call gives the same part
            # Episodes in flight that cannot be read back: the new worker resets its copies from its seed stream.
            self.restarted[index] = True
            reset_seed = int(self.seed_streams[index].integers(2**31)) - index * self.envs_per_worker
            return [("collect", (weights, start, reset_seed, *args[1:]))]

        results = self.pool.run([worker_calls + [collect_call] for worker_calls in calls], recover)
        self.to_resume = [False] * self.num_workers
        self.in_flight = True
        self.carries = [result["carry"] for result in results]
        if start is not None:
            merged = merge_observation_statistics(start, [result["observation_statistics"] for result in results])
            load_normalization_state(env, {"observation": merged}, training=True)
        return [result["part"] for result in results]

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds of the workers: each one's episodes in flight and its seed stream."""
        return {"carries": self.carries, "seed_streams": [s.bit_generator.state for s in self.seed_streams]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved; the workers continue from it at the next rollout."""
        if len(state["carries"]) != self.num_workers:
            raise ConfigError(
                f"the checkpoint holds {len(state['carries'])} Ray workers' episodes, the config {self.num_workers}"
            )
        self.carries = list(state["carries"])
        self.to_resume = [carry is not None for carry in self.carries]
        self.in_flight = all(self.to_resume)  # else the next rollout starts from a reset, as in-process
        for stream, stream_state in zip(self.seed_streams, state["seed_streams"]):
            stream.bit_generator.state = stream_state

    def kill(self, index: int) -> None:
        """End worker ``index`` at once, as if its node went away (tests)."""
        if self.pool is not None:
            self.pool.kill(index)

    def close(self) -> None:
        """Stop the workers (and the cluster, if they started it)."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None


class RayBackend:
    """What PPO and REINFORCE add to ``RecurrentAgent`` for ``backend="ray"``: the learner's env, the workers' end.

    Mixed in before ``RecurrentAgent``; the agent's ``_setup`` calls :meth:`_start_collection`.
    """

    config: Any
    training_config: Any  # the config with the curriculum stage's env kwargs (RecurrentAgent.training_config)
    env_id: str
    seed: int
    env: gym.vector.VectorEnv
    policy: RecurrentActorCritic
    workers: RolloutWorkers | None
    collector: Any

    def _start_collection(self, collector_class: type, **kwargs: Any) -> None:
        """``self.collector`` over the training env in-process, or ``self.workers``, each with a collector of its own
        (``collector_class(env, policy, env_id, first_copy, **kwargs)``)."""
        self.workers = self.collector = None
        if self.config.backend == "ray":
            self.workers = RolloutWorkers(self.env_id, self.training_config, self.seed, collector_class, kwargs)
        else:
            self.collector = collector_class(self.env, self.policy, self.env_id, 0, **kwargs)

    def _make_env(self, env: Any) -> gym.vector.VectorEnv:
        """In-process: the training env. With Ray: the learner's one-copy env (the workers build their own)."""
        if self.config.backend != "ray":
            return super()._make_env(env)  # type: ignore[misc]
        self.env_id = require_env_id(env)
        return learner_env(self.env_id, self.training_config)

    def close(self) -> None:
        """Close the env and stop the Ray workers, if any."""
        super().close()  # type: ignore[misc]
        if self.workers is not None:
            self.workers.close()
