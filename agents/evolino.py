"""Evolino for reinforcement learning: LSTM policies evolved with Enforced SubPopulations, no gradients at all.

Evolino as published (J. Schmidhuber, D. Wierstra, M. Gagliolo, F. Gomez, "Training Recurrent Networks by
Evolino", Neural Computation 19(3), 2007; IJCAI 2005) is supervised: ESP evolves the weights of the LSTM memory
cells (forget gates, peepholes), one subpopulation per cell, and the linear output layer is *computed* by the
Moore-Penrose pseudo-inverse from the targets (``agents/evolino_supervised.py``). With rewards as the only
teacher there are no targets to regress on, so this trainer is our extension, after ESP on deep-memory POMDPs
(F. Gomez and J. Schmidhuber, "Co-evolving recurrent neurons learn deep memory POMDPs", GECCO 2005):

- Evolino's part: memory cells with forget gates and peepholes, one ESP subpopulation per cell, networks
  assembled from one chromosome of each, chromosome fitness = mean fitness of its networks, recombination
  within the best quarter, Cauchy mutation, burst mutation on stagnation (``rl_lstm/esp.py``).
- Ours: the output layer is evolved too, one subpopulation per output unit (an action's logit, or a Box
  action's mean), instead of the pseudo-inverse; a network's fitness is its mean return over
  ``episodes_per_network`` episodes; it acts greedily (argmax of the logits, or the clipped mean). Options for
  deceptive and noisy tasks: ``novelty_bonus`` adds the novelty of the observations a network's episodes reached
  to its fitness (``rl_lstm/exploration.py``), ``reevaluate_best`` re-scores the best network every generation.

Read top to bottom: the hyperparameters; ``PopulationEvaluator`` plays one episode for each (network, episode)
job, all jobs of a round in one vector env and one batched forward pass per step; ``RayEvaluator`` shards the
jobs over Ray actors (a ``rl_lstm.ray_workers.WorkerPool``); ``RecurrentEvolino._iterate`` is one generation:
assemble networks -> evaluate -> credit and breed -> copy the best network into the policy. The result is an
ordinary ``RecurrentActorCritic`` with a peephole-LSTM core, so ``.predict``, ``.save``, ``.load`` and
``rl-lstm evaluate`` treat it like a PPO policy.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.batched import TaskVectorEnv
from rl_lstm.agent import EnvConfig, RecurrentAgent, rng_state, set_rng_state
from rl_lstm.config import require
from rl_lstm.cores import check_gate_init
from rl_lstm.errors import ConfigError
from rl_lstm.esp import EnforcedSubpopulations, LSTMLayout, PopulationLSTM, validate_esp_settings
from rl_lstm.exploration import DEFAULT_BITS, EpisodeVisits, population_novelty, require_bonus_settings
from rl_lstm.logger import EpisodeStatistics, reported_episodes
from rl_lstm.policies import ImageEncoder, make_action_head, make_encoder, map_observation
from rl_lstm.ray_workers import RayConfig, WorkerPool, require_env_id
from rl_lstm.rollouts import call_env
from rl_lstm.vec_env import action_masks, make_vector_env


@dataclass
class EvolinoConfig(EnvConfig, RayConfig):
    """Hyperparameters of RL Evolino (plus the env keys every agent shares)."""

    num_envs: int = 256  # env copies stepped together; a generation's jobs run in rounds of this many
    num_cells: int = 4  # LSTM memory cells (one ESP subpopulation each)
    subpopulation_size: int = 20  # chromosomes per subpopulation
    trials_per_chromosome: int = 5  # networks each chromosome joins per generation (networks = size x trials)
    episodes_per_network: int = 8  # episodes averaged into a network's fitness
    init_scale: float = 0.5  # initial weights uniform in [-init_scale, init_scale]
    forget_bias: float = 0.0  # added to every initial forget-gate bias: cells start out keeping what they hold
    # "chrono" (with t_max): each initial chromosome's forget-gate bias log(U[1, t_max - 1]) and its input-gate bias
    # minus that, as chrono initialization does for gradient cores (Tallec & Ollivier 2018): the population starts
    # out with memory time scales spread up to t_max steps; "default": forget_bias alone
    init: str = "default"
    t_max: float | None = None  # chrono: the longest dependency in steps, e.g. the episode length
    elite_fraction: float = 0.25  # top fraction of a subpopulation that breeds (ESP and Evolino: a quarter)
    crossover: bool = True  # one-point crossover between two elite parents before mutation
    mutation_scale: float = 0.05  # scale of the Cauchy noise added to every weight of an offspring
    burst_after: int = 20  # generations without a better network before a burst mutation (Evolino: 20)
    burst_scale: float = 0.3  # scale of the Cauchy noise around the best network in a burst mutation
    max_episode_steps: int = 100_000  # an episode still running after this many steps is cut (safety net)
    # Deceptive tasks, where the path to the goal first looks worse than a trap (Ni et al.'s active T-maze: stepping
    # back to the cue looks no better than walking straight to the junction): a network's fitness gains
    # novelty_bonus x its episodes' mean novelty, an episode's novelty the sum, over the distinct SimHash buckets of
    # the observations it reached, of 1/sqrt(episodes of this generation that reached that bucket). 0: off.
    novelty_bonus: float = 0.0
    novelty_bits: int = DEFAULT_BITS  # SimHash bits of the novelty's observation buckets
    # Every generation the best network so far plays the generation's episodes again, and a new network must match
    # that score, not the one the best network once drew: where episodes vary (a goal drawn at random), one lucky
    # draw otherwise keeps a mediocre best network for good and sets off burst mutations around it.
    reevaluate_best: bool = False
    # backend "ray": the jobs are sharded over ray_workers actors, each with its own vector env of num_envs copies

    def validate(self) -> None:
        """Range checks: each error names the key and what is allowed."""
        self.validate_env()
        require(self.num_cells >= 1, f"num_cells must be at least 1, got {self.num_cells}")
        validate_esp_settings(self)
        require(
            self.trials_per_chromosome >= 1, f"trials_per_chromosome must be >= 1, got {self.trials_per_chromosome}"
        )
        require(self.episodes_per_network >= 1, f"episodes_per_network must be >= 1, got {self.episodes_per_network}")
        require(self.max_episode_steps >= 1, f"max_episode_steps must be at least 1, got {self.max_episode_steps}")
        require_bonus_settings("novelty_bonus", self.novelty_bonus, "novelty_bits", self.novelty_bits)
        self.validate_backend()
        # forget_bias 0 is its default, "not set"; chrono draws the forget-gate biases itself.
        check_gate_init(self.init, self.t_max, self.forget_bias or None, options="")
        require(
            not (self.normalize_observations or self.normalize_rewards),
            "Evolino compares fixed networks by their returns: normalize_observations and normalize_rewards must "
            "be false (running statistics would change the task between networks of one generation)",
        )

    @property
    def novelty_hash_bits(self) -> int | None:
        """The SimHash bits the evaluator records each episode's observations with; None with the novelty off."""
        return self.novelty_bits if self.novelty_bonus > 0 else None

    @property
    def networks_per_generation(self) -> int:
        """Networks assembled and evaluated per generation."""
        return self.subpopulation_size * self.trials_per_chromosome

    def policy_kwargs(self) -> dict[str, Any]:
        """The policy an evolved network is written into: encoder -> peephole LSTM -> linear action head."""
        return {
            "core": "peephole",
            "hidden_size": self.num_cells,
            "num_layers": 1,
            "core_kwargs": {},
            "shared_core": True,
            "net_arch_pi": (),
            "net_arch_vf": (),
            "ortho_init": False,
            "mlp_encoder": (),
            # Evolved policies act greedily; a tiny std keeps Box predict(deterministic=False) at the evolved mean.
            "log_std_init": -20.0,
        }


@dataclass
class EpisodeResults:
    """One entry per (network, episode) job: return, length, success (NaN where the env reports none) and the return
    the env's own episode statistics report (``env_episode``, NaN where it keeps none); with novelty on,
    ``visited_jobs`` and ``visited_buckets`` pair each job with every distinct bucket its episode reached.
    """

    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray
    env_returns: np.ndarray
    visited_jobs: np.ndarray | None = None
    visited_buckets: np.ndarray | None = None


def evaluator_spec(env_id: str, config: EvolinoConfig, layout: LSTMLayout) -> dict[str, Any]:
    """What a Ray actor needs to build its own :class:`PopulationEvaluator`, as plain data (wrappers by path)."""
    return {
        "env_id": env_id,
        "num_envs": config.num_envs,
        "env_kwargs": config.env_kwargs,
        "vectorization": config.vectorization,
        "env_wrappers": list(config.env_wrappers),
        "frame_stack": config.frame_stack,
        "prev_action_reward": config.prev_action_reward,
        "layout": dataclasses.asdict(layout),
        "max_episode_steps": config.max_episode_steps,
        "novelty_bits": config.novelty_hash_bits,
    }


def seeds_each_copy(vector_env: gym.vector.VectorEnv) -> bool:
    """True if ``vector_env.reset(seed=[...])`` gives each copy its own seed (Sync, Async, native rl_lstm envs)."""
    return isinstance(vector_env.unwrapped, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv, TaskVectorEnv))


class PopulationEvaluator:
    """Plays one episode per job, a round of up to ``env.num_envs`` jobs at a time, all networks batched.

    Every job carries its own env seed, so its result does not depend on the round or the Ray shard it runs in.
    With ``novelty_bits``, it also records the distinct SimHash buckets of the observations each episode reached.
    The networks run on ``device``; each step's observations go there and the actions come back, one copy each way.
    """

    def __init__(self, env: gym.vector.VectorEnv, layout: LSTMLayout, max_episode_steps: int, env_id: str,
                 novelty_bits: int | None = None, device: torch.device | str = "cpu") -> None:
        self.env = env
        self.env_id = env_id
        self.layout = layout
        self.max_episode_steps = max_episode_steps
        self.novelty_bits = novelty_bits
        self.device = torch.device(device)
        self.encoder = make_encoder(env.single_observation_space).to(self.device)
        self.head = make_action_head(env.single_action_space, layout.num_cells, log_std_init=0.0).to(self.device)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> PopulationEvaluator:
        """An evaluator with its own vector env, built from plain data (what a Ray actor receives)."""
        env = make_vector_env(
            spec["env_id"], spec["num_envs"], spec["env_kwargs"], spec["vectorization"],
            env_wrappers=spec["env_wrappers"], frame_stack=spec["frame_stack"],
            prev_action_reward=spec["prev_action_reward"],
        )
        return cls(env, LSTMLayout(**spec["layout"]), spec["max_episode_steps"], spec["env_id"], spec["novelty_bits"])

    def evaluate(self, chromosomes: list[np.ndarray], seeds: np.ndarray) -> EpisodeResults:
        """One episode per job: ``chromosomes`` holds one ``[num_jobs, size]`` array per unit, ``seeds [num_jobs]``."""
        num_jobs, round_size = len(chromosomes[0]), self.env.num_envs
        results = [np.empty(num_jobs), np.empty(num_jobs, dtype=np.int64), np.empty(num_jobs), np.empty(num_jobs)]
        visited_jobs, visited_buckets = [], []
        for start in range(0, num_jobs, round_size):
            jobs = np.arange(start, min(start + round_size, num_jobs))
            # The last round pads with copies of its last job; their episodes are discarded.
            padded = np.concatenate([jobs, np.full(round_size - len(jobs), jobs[-1])])
            *round_results, visits = self._play_round([c[padded] for c in chromosomes], seeds[padded])
            for result, round_result in zip(results, round_results):
                result[jobs] = round_result[: len(jobs)]
            if visits is not None:
                copies, buckets = visits.pairs()
                kept = copies < len(jobs)
                visited_jobs.append(start + copies[kept])
                visited_buckets.append(buckets[kept])
        if self.novelty_bits is None:
            return EpisodeResults(*results)
        return EpisodeResults(*results, np.concatenate(visited_jobs), np.concatenate(visited_buckets))

    def _play_round(
        self, chromosomes: list[np.ndarray], seeds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, EpisodeVisits | None]:
        """Copy ``i`` of the vector env (seeded ``seeds[i]``) plays network ``i`` for one episode."""
        network = PopulationLSTM(self.layout, chromosomes, device=self.device)
        copies = self.env.num_envs
        observations, infos = self._call_env("reset", 0, seed=[int(seed) for seed in seeds])
        state = network.initial_state(1)
        finished = np.zeros(copies, dtype=bool)
        visits = None
        if self.novelty_bits is not None:
            visits = EpisodeVisits(self.env.single_observation_space, self.novelty_bits, copies)
            visits.add(observations, ~finished)
        returns, lengths = np.zeros(copies), np.zeros(copies, dtype=np.int64)
        successes, env_returns = np.full(copies, np.nan), np.full(copies, np.nan)
        with torch.no_grad():
            for step in range(self.max_episode_steps):
                features = self.encoder(map_observation(self._to_device, observations)).to(torch.float64)  # [copies, F]
                h, state = network.step(features[:, None, :], state)
                outputs = network.outputs(h)[:, 0].to(torch.float32)  # [copies, num_outputs]
                masks = action_masks(self.env, infos)
                distribution = self.head.distribution(outputs, None if masks is None else self._to_device(masks))
                actions = self.head.clip(distribution.mode()).cpu().numpy()
                observations, rewards, terminated, truncated, infos = self._call_env("step", step, actions)
                running = ~finished
                returns += np.where(running, rewards, 0.0)
                lengths += running
                ended = running & (terminated | truncated)
                if "is_success" in infos:
                    successes[ended] = np.asarray(infos["is_success"], dtype=np.float64)[ended]
                env_reported = reported_episodes(infos, "env_episode")
                if env_reported is not None:
                    reported = ended & env_reported[0]
                    env_returns[reported] = env_reported[1][reported]
                if visits is not None:
                    visits.add(observations, running)  # an episode's last observation is one it reached
                finished |= ended
                if finished.all():
                    break
        return returns, lengths, successes, env_returns, visits

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """An env array as a tensor on the networks' device."""
        return torch.as_tensor(array, device=self.device)

    def _call_env(self, call: str, step: int, *args: Any, **kwargs: Any) -> Any:
        """``env.reset``/``env.step``; an error names the env and the episode step it happened at."""
        return call_env(self.env, self.env_id, call, f"step {step} of an evaluation episode", *args, **kwargs)


class RayEvaluator:
    """The jobs of a generation sharded over Ray actors, each a :class:`PopulationEvaluator` with its own env.

    A worker that dies (node lost, process killed) is replaced by a new actor and its shard evaluated again. The actors
    evaluate on their own CPUs, whatever device the learner uses: a worker's node need not have a GPU.
    """

    def __init__(self, spec: dict[str, Any], num_workers: int, address: str | None) -> None:
        self.pool = WorkerPool(PopulationEvaluator.from_spec, [spec] * num_workers, address)

    @property
    def workers(self) -> list[Any]:
        """The Ray actors."""
        return self.pool.workers

    @property
    def replaced_workers(self) -> int:
        """Workers that died and were replaced so far."""
        return self.pool.replaced_workers

    def evaluate(self, chromosomes: list[np.ndarray], seeds: np.ndarray) -> EpisodeResults:
        """Contiguous shards of the jobs, one per worker, each job with its own env seed."""
        num_jobs = len(chromosomes[0])
        bounds = np.linspace(0, num_jobs, len(self.workers) + 1).astype(int)
        shards = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        results = self.pool.run([[("evaluate", ([c[a:b] for c in chromosomes], seeds[a:b]))] for a, b in shards])
        fields = ("returns", "lengths", "successes", "env_returns")
        merged = EpisodeResults(*(np.concatenate([getattr(r, k) for r in results]) for k in fields))
        if results[0].visited_jobs is not None:  # a shard's job numbers start at 0: offset them by its start
            merged.visited_jobs = np.concatenate([r.visited_jobs + a for r, (a, _) in zip(results, shards)])
            merged.visited_buckets = np.concatenate([r.visited_buckets for r in results])
        return merged

    def close(self) -> None:
        """Stop the actors (and the Ray cluster, if this evaluator started it)."""
        self.pool.close()


class RecurrentEvolino(RecurrentAgent):
    """RL Evolino: peephole-LSTM policies evolved by ESP, one generation per iteration of ``learn``.

    ``RecurrentEvolino(env, seed=0, device="cpu", tensorboard_log=None, **hyperparams)``; ``hyperparams`` are the
    fields of :class:`EvolinoConfig`. ``learn(total_timesteps)`` counts env steps like the gradient agents; after
    every generation ``policy`` holds the best network found so far.
    """

    name = "evolino"
    config_class = EvolinoConfig
    # The subpopulations (their shape, initial draw and breeding settings) are built once.
    fixed_hyperparameters = ("num_cells", "subpopulation_size", "init_scale", "forget_bias", "init", "t_max",
                             "elite_fraction", "crossover", "mutation_scale", "burst_after", "burst_scale")

    def _make_optimizer(self) -> None:
        """Evolution needs no optimizer."""
        return None

    def _make_env(self, env: str | gym.vector.VectorEnv | gym.Env) -> gym.vector.VectorEnv:
        """The agent's vector env, one that takes a seed per copy: every evaluation job carries its own env seed.

        gymnasium's own numpy vector envs (CartPole-v1's) take one seed for all copies, so with
        ``vectorization="auto"`` an id that has one is built as a ``SyncVectorEnv`` instead; the config records it,
        so evaluation, ``load`` and Ray workers build the same.
        """
        vector_env = super()._make_env(env)
        if seeds_each_copy(vector_env):
            return vector_env
        if isinstance(env, str):
            vector_env.close()
            if self.config.vectorization == "auto":
                self.config.vectorization = "sync"
                return super()._make_env(env)
        raise ConfigError(
            f"Evolino seeds every env copy with its own episode seed, but {type(vector_env.unwrapped).__name__} "
            "takes one seed for all copies. Pass a gymnasium.vector.SyncVectorEnv or AsyncVectorEnv (or the env id "
            "with vectorization 'sync')."
        )

    def _setup(self) -> None:
        """The subpopulations and the evaluator (in-process or on Ray), once the env and policy exist."""
        config = self.config
        # Only the core and the output units are evolved: a CNN's weights would stay random (and differ between the
        # evaluator and the policy), so images, alone or inside a Dict or Tuple, are refused.
        if any(isinstance(module, ImageEncoder) for module in self.policy.encoder.modules()):
            raise ConfigError(
                f"Evolino cannot take the observation space {self.observation_space}: it evolves no CNN encoder for "
                "image observations. Train it with ppo or reinforce, or give Evolino vector observations."
            )
        num_outputs = self.policy.action_head.linear.out_features  # logits, or the Box action's mean
        self.layout = LSTMLayout(self.policy.encoder.out_features, config.num_cells, num_outputs)
        self.esp = EnforcedSubpopulations.from_config(self.layout.chromosome_sizes(), config, self.rng)
        forget, input_gate = self.layout.forget_bias_index, self.layout.input_bias_index
        for cell in range(config.num_cells):
            # Ours, not the papers': like the forget-gate bias of gradient LSTMs, a positive start lets memory last.
            chromosomes = self.esp.subpopulations[cell]
            chromosomes[:, forget] += config.forget_bias
            if config.init == "chrono":
                chromosomes[:, forget] = np.log(self.rng.uniform(1.0, config.t_max - 1.0, len(chromosomes)))
                chromosomes[:, input_gate] = -chromosomes[:, forget]
        self._attach_env()

    def _attach_env(self) -> None:
        """The evaluator over the training env (in-process, or Ray actors with envs of their own); a curriculum
        stage rebuilds only this, so the subpopulations carry on, ranked afresh on the new stage."""
        config = self.config
        self.esp.forget_best_fitness()
        if config.backend == "ray":
            require_env_id(self.env_id)
            spec = evaluator_spec(self.env_id, self.training_config, self.layout)
            self.evaluator: PopulationEvaluator | RayEvaluator = RayEvaluator(spec, config.ray_workers,
                                                                              config.ray_address)
        else:
            self.evaluator = PopulationEvaluator(self.env, self.layout, config.max_episode_steps, self.env_id,
                                                 config.novelty_hash_bits, self.device)

    # ---- one generation: assemble -> evaluate -> credit and breed -> keep the best --------------------------------
    def _iterate(self, statistics: EpisodeStatistics, progress: float) -> dict[str, float]:
        """Evaluate one generation of networks and breed the next."""
        config = self.config
        members = self.esp.sample_networks(config.trials_per_chromosome)  # [networks, units]
        episodes = config.episodes_per_network
        networks = self.esp.chromosomes(members)
        reevaluate_best = config.reevaluate_best and self.esp.best_network is not None
        if reevaluate_best:  # the best network so far plays as one more network, the last
            networks = [np.concatenate([c, best[None]]) for c, best in zip(networks, self.esp.best_network)]
        num_networks = len(networks[0])
        # Job network * episodes + k is episode k of that network. Episode k is the same episode (same env seed)
        # for every network of the generation: common random numbers, so networks are ranked on equal terms.
        chromosomes = [np.repeat(c, episodes, axis=0) for c in networks]
        episode_seeds = self.rng.integers(2**31, size=episodes)
        start = time.perf_counter()
        results = self.evaluator.evaluate(chromosomes, np.tile(episode_seeds, num_networks))
        seconds = time.perf_counter() - start
        returns = results.returns.reshape(num_networks, episodes).mean(axis=1)
        fitness = returns
        if config.novelty_bonus > 0:
            assert results.visited_jobs is not None and results.visited_buckets is not None
            novelty = population_novelty(results.visited_jobs, results.visited_buckets, len(results.returns))
            novelty = novelty.reshape(num_networks, episodes).mean(axis=1)
            fitness = returns + config.novelty_bonus * novelty
        if reevaluate_best:
            self.esp.rescore_best(float(fitness[-1]))
            fitness, returns = fitness[:-1], returns[:-1]
        outcome = self.esp.tell(members, fitness)
        self._write_best_into_policy()
        self.num_timesteps += int(results.lengths.sum())
        scalars = {
            "rollout/ep_rew_mean": float(results.returns.mean()),
            "rollout/ep_len_mean": float(results.lengths.mean()),
            "evolution/fitness_best": float(fitness.max()),
            "evolution/return_best": float(returns.max()),
            "evolution/fitness_mean": float(fitness.mean()),
            "evolution/fitness_std": float(fitness.std()),
            "evolution/best_ever": float(self.esp.best_fitness),
            "evolution/generation": self.esp.generation,
            "evolution/burst_mutation": outcome["burst"],
            "evolution/burst_mutations": self.esp.burst_mutations,
            "evolution/evaluations_per_second": num_networks / max(seconds, 1e-9),
        }
        if config.novelty_bonus > 0:
            scalars["evolution/novelty_mean"] = float(novelty.mean())
        if not np.all(np.isnan(results.successes)):
            scalars["rollout/success_rate"] = float(np.nanmean(results.successes))
        if not np.all(np.isnan(results.env_returns)):
            scalars["rollout/env_ep_rew_mean"] = float(np.nanmean(results.env_returns))
        names = [f"cell_{j}" for j in range(self.layout.num_cells)]
        names += [f"output_{k}" for k in range(self.layout.num_outputs)]
        scalars.update({f"evolution/diversity/{name}": value for name, value in zip(names, self.esp.diversity())})
        return scalars

    def _write_best_into_policy(self) -> None:
        """The best network so far becomes the agent's policy (what predict, save and evaluate use)."""
        best = PopulationLSTM(self.layout, self.esp.best_chromosomes())
        best.write_into(0, self.policy.actor_core.cells[0], self.policy.action_head.linear)

    def close(self) -> None:
        """Close the env and stop the Ray workers, if any."""
        super().close()
        if isinstance(self.evaluator, RayEvaluator):
            self.evaluator.close()

    # ---- saving: the whole evolutionary state ---------------------------------------------------------------------
    def _training_state(self) -> dict[str, Any]:
        """RNG states, counters and every subpopulation (so --resume continues the same evolution)."""
        return {
            "rng": rng_state(),
            "agent_rng": self.rng.bit_generator.state,
            "esp": self.esp.state_dict(),
            "total_timesteps": self.total_timesteps,
            "iterations": self.iterations,
        }

    def _load_training_state(self, state: dict[str, Any]) -> None:
        set_rng_state(state["rng"])
        self.esp.load_state_dict(state["esp"])
        self.rng.bit_generator.state = state["agent_rng"]
        self.total_timesteps = state["total_timesteps"]
        self.iterations = state["iterations"]
