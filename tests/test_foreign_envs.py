"""Every trainer on envs the project did not write: every way to hand one over, and every space.

The matrix: ppo, reinforce and evolino, each given a gymnasium id, a ``package.module:Env-v0`` id, a
``gymnasium.Env``, the user's own ``SyncVectorEnv`` and ``AsyncVectorEnv``, a vector env that speaks torch, and envs
observing Dict, Tuple, MultiDiscrete, MultiBinary and image spaces while acting in Discrete, MultiDiscrete and Box
spaces. Each cell trains two updates, saves, loads and predicts, on a single observation and on a batch. The id
cells also run ``rl-lstm train`` and ``rl-lstm evaluate`` in a fresh process, so an import made by another test
cannot hide a missing one. A space a trainer cannot take is our ``ConfigError`` naming the space.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from foreign_envs import SpacesEnv
from gymnasium.wrappers import NumpyToTorch as SingleNumpyToTorch
from gymnasium.wrappers.vector import NumpyToTorch

from agents import agent_class
from agents.evolino import RecurrentEvolino
from agents.ppo import RecurrentPPO
from rl_lstm.agent import RecurrentAgent
from rl_lstm.errors import ConfigError, EnvStepError

AGENTS = ("ppo", "reinforce", "evolino")
FOREIGN_ID = "foreign_envs:foreign/Spaces-v0"

# Tiny networks and budgets. REINFORCE and Evolino play whole episodes; cutting them at 8 steps keeps an update of
# Pendulum (200 steps) or of a CartPole policy that balances as cheap as one of the foreign envs (4 steps).
TINY: dict[str, dict[str, Any]] = {
    "ppo": dict(num_envs=2, n_steps=8, seq_len=4, batch_size=8, n_epochs=1, hidden_size=8, net_arch_pi=[8],
                net_arch_vf=[8]),
    "reinforce": dict(num_envs=2, hidden_size=8, net_arch_pi=[8], net_arch_vf=[8], max_episode_steps=8),
    "evolino": dict(num_envs=4, num_cells=2, subpopulation_size=4, trials_per_chromosome=1, episodes_per_network=1,
                    max_episode_steps=8),
}


def _same_parameters(agent: RecurrentAgent, loaded: RecurrentAgent) -> bool:
    trained, restored = agent.policy.state_dict(), loaded.policy.state_dict()
    return trained.keys() == restored.keys() and all(torch.equal(trained[key], restored[key]) for key in trained)


def _check_predict(agent: RecurrentAgent, loaded: RecurrentAgent, single_env: gym.Env) -> None:
    """Single and batched observations of the user's env give valid actions, the same before and after loading."""
    observation, _ = single_env.reset(seed=1)
    state = None
    for step in range(6):
        action, state = loaded.predict(observation, state, episode_start=np.array([step == 0]), deterministic=True)
        assert loaded.action_space.contains(action), f"{action!r} is not in {loaded.action_space}"
        observation, _, terminated, truncated, _ = single_env.step(action)  # the env itself refuses a wrong action
        if terminated or truncated:
            observation, _ = single_env.reset()
    single_env.close()
    observations, _ = loaded.env.reset(seed=2)
    actions, state = loaded.predict(observations, deterministic=True)
    assert len(actions) == loaded.env.num_envs
    assert all(loaded.action_space.contains(action) for action in actions), actions
    np.testing.assert_array_equal(actions, agent.predict(observations, deterministic=True)[0])
    loaded.env.step(actions)


def _train_save_load_predict(
    name: str, env: Any, path: Path, single_env: gym.Env, load_env: Any = None, **hyperparams: Any
) -> None:
    """Two updates, save, ``Agent.load`` (the env rebuilt from the stored id unless ``load_env``), predict."""
    cls = agent_class(name)
    agent = cls(env, seed=0, **TINY[name], **hyperparams)
    try:
        agent.learn(10**6, callback=lambda agent: agent.iterations < 2, progress_bar=False)
        assert agent.iterations == 2 and agent.num_timesteps > 0
        agent.save(path)
        loaded = cls.load(path, env=load_env)
        try:
            assert loaded.env_id == agent.env_id and _same_parameters(agent, loaded)
            _check_predict(agent, loaded, single_env)
        finally:
            loaded.close()
    finally:
        agent.close()


# ---- handed over as an id ------------------------------------------------------------------------------------------
# id -> (env_kwargs, one copy of the env for predict)
ID_CELLS: dict[str, tuple[dict[str, str], Callable[[], gym.Env]]] = {
    "CartPole-v1": ({}, lambda: gym.make("CartPole-v1")),
    "Pendulum-v1": ({}, lambda: gym.make("Pendulum-v1")),
    FOREIGN_ID: ({"observation": "dict", "action": "multidiscrete"}, lambda: SpacesEnv("dict", "multidiscrete")),
}

# Run in a fresh interpreter: train, then forget the foreign package (its module and its ids) so that evaluate
# has to import it again from the id the run stored, as `rl-lstm evaluate` in a new shell would.
TRAIN_THEN_EVALUATE = """
import sys
from pathlib import Path

import gymnasium as gym

from rl_lstm.cli import main

runs_dir, train_args = Path(sys.argv[1]), sys.argv[2:]  # train_args set runs_dir
assert main(["train", *train_args]) == 0
(run_dir,) = [config.parent for config in runs_dir.glob("*/*/config.yaml")]
for module in [name for name in sys.modules if name.split(".")[0] == "foreign_envs"]:
    del sys.modules[module]
for env_id in [env_id for env_id in gym.registry if env_id.startswith("foreign/")]:
    del gym.registry[env_id]
sys.exit(main(["evaluate", str(run_dir), "--episodes", "2"]))
"""


@pytest.mark.parametrize("env_id", list(ID_CELLS))
@pytest.mark.parametrize("name", AGENTS)
def test_an_id_trains_saves_loads_and_predicts(name: str, env_id: str, tmp_path: Path) -> None:
    env_kwargs, single_env = ID_CELLS[env_id]
    _train_save_load_predict(name, env_id, tmp_path / "agent.pt", single_env(), env_kwargs=env_kwargs)


@pytest.mark.parametrize("env_id", list(ID_CELLS))
@pytest.mark.parametrize("name", AGENTS)
def test_the_cli_trains_and_evaluates_an_id_in_a_fresh_process(name: str, env_id: str, tmp_path: Path) -> None:
    env_kwargs = [f"{key}={value}" for key, value in ID_CELLS[env_id][0].items()]
    # The foreign package is importable as an installed one would be; the process starts elsewhere.
    python_path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    tiny = [f"{key}={value}" for key, value in TINY[name].items() if key != "num_envs"]
    train_args = [
        "--agent", name, "--env", env_id, "--timesteps", "40", "--num-envs", str(TINY[name]["num_envs"]),
        "--no-progress", *(["--env-kwargs", *env_kwargs] if env_kwargs else []),
        "--set", f"runs_dir={tmp_path / 'runs'}", "eval_every=0", *tiny,
    ]
    result = subprocess.run(
        [sys.executable, "-c", TRAIN_THEN_EVALUATE, str(tmp_path / "runs"), *train_args],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": python_path}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (report_path,) = (tmp_path / "runs").glob("*/*/eval.json")
    report = json.loads(report_path.read_text())
    assert report["env_id"] == env_id and report["agent"] == name and report["num_episodes"] == 2
    assert report["num_timesteps"] >= 40


# ---- handed over as an env object ----------------------------------------------------------------------------------
# handover -> (the env given to the agent, one copy for predict)
HANDOVERS: dict[str, tuple[Callable[[], Any], Callable[[], gym.Env]]] = {
    "gymnasium.Env": (lambda: gym.make("CartPole-v1"), lambda: gym.make("CartPole-v1")),
    "SyncVectorEnv": (
        lambda: gym.vector.SyncVectorEnv([lambda: SpacesEnv("dict", "multidiscrete")] * 2),
        lambda: SpacesEnv("dict", "multidiscrete"),
    ),
    "AsyncVectorEnv": (
        lambda: gym.vector.AsyncVectorEnv([lambda: SpacesEnv("tuple", "box")] * 2),
        lambda: SpacesEnv("tuple", "box"),
    ),
    "gymnasium's numpy VectorEnv": (
        lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="vector_entry_point"),
        lambda: gym.make("CartPole-v1"),
    ),
    # As CleanRL builds envs: each copy records its own episode statistics in infos["episode"].
    "copies that record their own episodes": (
        lambda: gym.vector.SyncVectorEnv([lambda: gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))] * 2),
        lambda: gym.make("CartPole-v1"),
    ),
    # An env simulated in torch returns tensors and takes them: gymnasium's NumpyToTorch makes one of a numpy env.
    "a VectorEnv that speaks torch": (
        lambda: NumpyToTorch(gym.vector.SyncVectorEnv([lambda: SpacesEnv("dict", "box")] * 2)),
        lambda: SpacesEnv("dict", "box"),
    ),
}
# Evolino gives every copy its own episode seed; gymnasium's numpy CartPoleVectorEnv takes one seed for all copies.
REFUSED_HANDOVERS = {("evolino", "gymnasium's numpy VectorEnv")}


@pytest.mark.parametrize(
    ("name", "handover"), [(n, h) for n in AGENTS for h in HANDOVERS if (n, h) not in REFUSED_HANDOVERS]
)
def test_an_env_object_trains_saves_loads_and_predicts(name: str, handover: str, tmp_path: Path) -> None:
    make_env, single_env = HANDOVERS[handover]
    _train_save_load_predict(name, make_env(), tmp_path / "agent.pt", single_env(), load_env=make_env())


class ActionsSeen(gym.vector.VectorWrapper):
    """Records the actions a vector env is stepped with."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.actions: list[Any] = []

    def step(self, actions: Any) -> Any:
        self.actions.append(actions)
        return self.env.step(actions)


class ActionSeen(gym.Wrapper):
    """Records the actions one env is stepped with."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[Any] = []

    def step(self, action: Any) -> Any:
        self.actions.append(action)
        return self.env.step(action)


def _cartpoles(handover: str, speaks_torch: bool) -> gym.Env | gym.vector.VectorEnv:
    """CartPole handed over as a vector env of 2 copies or as one env, speaking numpy or torch (then spied on)."""
    if handover == "vector env":
        env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
        return ActionsSeen(NumpyToTorch(env)) if speaks_torch else env
    env = gym.make("CartPole-v1")
    return ActionSeen(SingleNumpyToTorch(env)) if speaks_torch else env


def _three_updates_each(agents: list[RecurrentAgent]) -> list[RecurrentAgent]:
    """``agents``, each after three updates (side-by-side twins, compared after)."""
    for agent in agents:
        agent.learn(10**6, callback=lambda agent: agent.iterations < 3, progress_bar=False)
    return agents


def _whole_episodes(name: str, copies: int) -> dict[str, Any]:
    """TINY settings of ``copies`` copies in which CartPole's episodes end as the env ends them: PPO's rollouts
    long enough to hold some, the episodic trainers' safety net at CartPole's own 500 steps."""
    if name == "ppo":
        return {**TINY[name], "num_envs": copies, "n_steps": 64, "batch_size": 32}
    return {**TINY[name], "num_envs": copies, "max_episode_steps": 500}


@pytest.mark.parametrize("handover", ["vector env", "gymnasium.Env"])
@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_an_env_that_speaks_torch_trains_exactly_as_its_numpy_twin(name: str, handover: str) -> None:
    """The conversion at the env's boundary changes no number: the same seed gives the same parameters."""
    settings = {**TINY[name], "num_envs": 2 if handover == "vector env" else 1}
    agents = _three_updates_each(
        [agent_class(name)(_cartpoles(handover, torch_env), seed=3, **settings) for torch_env in (False, True)]
    )
    assert _same_parameters(*agents)
    spy = agents[1].env
    while not isinstance(spy, (ActionsSeen, ActionSeen)):
        spy = spy.envs[0] if isinstance(spy, gym.vector.SyncVectorEnv) else spy.env
    # Every step's actions went to the env as tensors on its device, not as numpy arrays.
    assert spy.actions and all(isinstance(a, torch.Tensor) and a.device.type == "cpu" for a in spy.actions)
    for agent in agents:
        agent.close()


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.DISABLED])
@pytest.mark.parametrize("name", AGENTS)
def test_a_vector_env_that_does_not_autoreset_on_the_next_step_is_refused(name: str, mode: Any) -> None:
    """Every collector takes the step after an episode ends as the autoreset step (no transition; the memory resets
    there): an env resetting within the step would lose each episode's first transition and carry the last
    episode's memory into it, so it stops before training, saying how to build one that fits."""
    env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode})
    with pytest.raises(ConfigError, match=rf"autoresets on the next step.*\(SyncVectorEnv\) has {mode}.*"
                                          r"vector_kwargs=\{'autoreset_mode': AutoresetMode.NEXT_STEP\}"):
        agent_class(name)(env, **TINY[name])
    env.close()


@pytest.mark.parametrize("where", ["copies", "vector env", "env_wrappers"])
def test_an_env_recording_its_own_episodes_trains_and_ours_report_the_same(where: str) -> None:
    """gymnasium's RecordEpisodeStatistics refuses to overwrite an ``episode`` the env already reports, which stopped
    every trainer at the first episode's end; the env's own now move to ``env_episode``, and ours agree with them."""
    record = gym.wrappers.RecordEpisodeStatistics
    if where == "copies":
        env: Any = gym.vector.SyncVectorEnv([lambda: record(gym.make("CartPole-v1"))] * 2)
    elif where == "vector env":
        env = gym.wrappers.vector.RecordEpisodeStatistics(gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"))
    else:
        env = "CartPole-v1"
    wrappers = ["gymnasium.wrappers:RecordEpisodeStatistics"] if where == "env_wrappers" else []
    agent = RecurrentPPO(env, seed=0, **{**TINY["ppo"], "n_steps": 64}, env_wrappers=wrappers, vectorization="sync")
    seen: list[dict[str, Any]] = []
    step = agent.env.step
    agent.env.step = _keep_infos(step, seen)
    agent.learn(10**6, callback=lambda agent: agent.iterations < 3, progress_bar=False)
    ours = [infos["episode"]["r"][infos["_episode"]] for infos in seen if "episode" in infos]
    theirs = [infos["env_episode"]["r"][infos["_env_episode"]] for infos in seen if "env_episode" in infos]
    assert ours and np.array_equal(np.concatenate(ours), np.concatenate(theirs))
    agent.close()


class OutcomesAs(gym.vector.VectorWrapper):
    """Returns rewards and flags as ``change`` makes them, as some vector envs do, not as gymnasium says."""

    def __init__(self, env: gym.vector.VectorEnv, change: Callable[[np.ndarray, np.ndarray, np.ndarray], Any]) -> None:
        super().__init__(env)
        self.change = change

    def step(self, actions: Any) -> Any:
        observations, rewards, terminated, truncated, infos = self.env.step(actions)
        return observations, *self.change(rewards, terminated, truncated), infos


OTHER_OUTCOMES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], Any]] = {
    "int64 flags": lambda r, te, tr: (r, te.astype(np.int64), tr.astype(np.int64)),
    "uint8 flags": lambda r, te, tr: (r, te.astype(np.uint8), tr.astype(np.uint8)),
    "float32 flags": lambda r, te, tr: (r, te.astype(np.float32), tr.astype(np.float32)),
    "rewards [n, 1]": lambda r, te, tr: (r[:, None], te, tr),
    "rewards as a list": lambda r, te, tr: (list(r), te, tr),
}


@pytest.mark.parametrize("outcomes", list(OTHER_OUTCOMES))
def test_rewards_and_flags_in_other_shapes_and_types_train_as_gymnasium_s(outcomes: str) -> None:
    """Integer flags were masked wrong (``~1`` is -2, true: every autoreset step counted as a transition); float
    flags, ``[n, 1]`` rewards and lists of rewards stopped the run. Taken as the ``[n]`` arrays they hold, they train
    exactly as the env that returns what gymnasium says."""
    agents = _three_updates_each([
        RecurrentPPO(env, seed=5, **{**TINY["ppo"], "n_steps": 64, "batch_size": 32})
        for env in (gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"),
                    OutcomesAs(gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"), OTHER_OUTCOMES[outcomes]))
    ])
    assert not agents[0].buffer.valid.all(), "the rollout must hold autoreset steps"
    np.testing.assert_array_equal(agents[1].buffer.valid, agents[0].buffer.valid)
    assert _same_parameters(*agents)
    for agent in agents:
        agent.close()


def test_rewards_not_one_per_copy_stop_the_run_naming_their_shape() -> None:
    env = OutcomesAs(gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"),
                     lambda r, te, tr: (np.stack([r, r, r], axis=1), te, tr))
    agent = RecurrentPPO(env, seed=0, **TINY["ppo"])
    with pytest.raises(EnvStepError, match=r"rewards of shape \(2, 3\); a vector env of 2 copies returns one per "
                                           r"copy, shape \(2,\)"):
        agent.learn(64, progress_bar=False)
    agent.close()


def _halved_cartpole_recording_its_own() -> gym.Env:
    """CartPole recording its own episodes, with every reward halved above its statistics (as CleanRL's continuous
    make_env normalizes rewards above its RecordEpisodeStatistics)."""
    recorded = gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))
    return gym.wrappers.TransformReward(recorded, lambda reward: 0.5 * reward)


def test_the_boundary_benchmark_times_a_sync_env_bare_and_inside_the_boundary() -> None:
    """scripts/benchmark.py boundary, tiny: a row per number of copies, both rates measured, the cost in µs."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import benchmark

    section = benchmark.benchmark_boundary(
        argparse.Namespace(env="CartPole-v1", copies=[1, 4], block=5, blocks=2)
    )
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `CartPole-v1`")]
    assert [row[1] for row in rows] == ["1", "4"]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 and float(row[5].rstrip("x |")) > 0 for row in rows)
    assert "the boundary keeps" in section


@pytest.mark.parametrize("name", AGENTS)
def test_the_env_s_own_episode_returns_are_logged_beside_ours(name: str) -> None:
    """``rollout/env_ep_rew_mean`` is what the env's own statistics say; ``rollout/ep_rew_mean`` the wrapped env's."""
    env = gym.vector.SyncVectorEnv([_halved_cartpole_recording_its_own] * 4)
    agent = agent_class(name)(env, seed=0, **_whole_episodes(name, 4))
    agent.learn(10**6, callback=lambda agent: agent.iterations < 2, progress_bar=False)
    scalars = agent.latest_scalars
    assert scalars["rollout/env_ep_rew_mean"] == pytest.approx(2 * scalars["rollout/ep_rew_mean"])
    agent.close()


class EpisodeCounter(gym.vector.VectorWrapper):
    """Reports ``infos["episode"]`` in a format of its own (a number), not gymnasium's."""

    def step(self, actions: Any) -> Any:
        *outcome, infos = self.env.step(actions)
        return *outcome, {**infos, "episode": 7}


@pytest.mark.parametrize("name", AGENTS)
def test_an_env_s_own_episode_info_in_another_format_is_left_alone(name: str) -> None:
    """It moves out of the way of ours as gymnasium's would, and nothing reads it as returns."""
    copies = 4 if name == "evolino" else 2
    env = EpisodeCounter(gym.make_vec("CartPole-v1", copies, vectorization_mode="sync"))
    agent = agent_class(name)(env, seed=0, **_whole_episodes(name, copies))
    agent.learn(10**6, callback=lambda agent: agent.iterations < 2, progress_bar=False)
    assert "rollout/ep_rew_mean" in agent.latest_scalars and "rollout/env_ep_rew_mean" not in agent.latest_scalars
    agent.close()


def _keep_infos(step: Callable[[Any], Any], seen: list[dict[str, Any]]) -> Callable[[Any], Any]:
    """``step``, keeping every step's infos in ``seen``."""

    def step_and_keep(actions: Any) -> Any:
        outcome = step(actions)
        seen.append(outcome[-1])
        return outcome

    return step_and_keep


def test_evolino_refuses_a_vector_env_that_takes_one_seed_for_all_copies() -> None:
    env = HANDOVERS["gymnasium's numpy VectorEnv"][0]()
    with pytest.raises(ConfigError, match="CartPoleVectorEnv takes one seed for all copies.*SyncVectorEnv"):
        RecurrentEvolino(env, **TINY["evolino"])
    env.close()


def test_evolino_seeds_each_copy_of_an_id_whose_numpy_vector_env_takes_one_seed() -> None:
    agent = RecurrentEvolino("CartPole-v1", seed=0, **{**TINY["evolino"], "max_episode_steps": 500})
    try:
        assert agent.config.vectorization == "sync"  # recorded, so load, evaluate and Ray workers build the same
        network = [chromosome[:1] for chromosome in agent.esp.chromosomes(agent.esp.sample_networks(1))]
        jobs = [np.repeat(chromosome, 4, axis=0) for chromosome in network]
        results = agent.evaluator.evaluate(jobs, np.array([7, 8, 7, 8]))  # the same job in two copies each
        assert results.returns[0] == results.returns[2] and results.returns[1] == results.returns[3]
    finally:
        agent.close()


# ---- every space ---------------------------------------------------------------------------------------------------
OBSERVATIONS = ("dict", "tuple", "multidiscrete", "multibinary", "image")
ACTIONS = ("discrete", "discrete_start", "multidiscrete", "box")


def _vector_env(observation: str, action: str, num_envs: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: SpacesEnv(observation, action)] * num_envs)


@pytest.mark.parametrize(
    ("name", "observation", "action"),
    # Evolino evolves no CNN: image observations are refused (test_a_space_a_trainer_cannot_take_is_a_config_error).
    [(n, o, a) for n in AGENTS for o in OBSERVATIONS for a in ACTIONS if (n, o) != ("evolino", "image")],
)
def test_every_supported_space_trains_saves_loads_and_predicts(
    name: str, observation: str, action: str, tmp_path: Path
) -> None:
    num_envs = TINY[name]["num_envs"]
    _train_save_load_predict(
        name, _vector_env(observation, action, num_envs), tmp_path / "agent.pt", SpacesEnv(observation, action),
        load_env=_vector_env(observation, action, num_envs),
    )


@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_a_dict_holding_a_tuple_trains(name: str, tmp_path: Path) -> None:
    num_envs = TINY[name]["num_envs"]
    _train_save_load_predict(
        name, _vector_env("nested", "discrete", num_envs), tmp_path / "agent.pt", SpacesEnv("nested", "discrete"),
        load_env=_vector_env("nested", "discrete", num_envs),
    )


@pytest.mark.parametrize(
    ("names", "observation", "action", "named"),
    [
        (AGENTS, "text", "discrete", r"observation space Text\("),
        (AGENTS, "graph", "discrete", r"observation space Graph\("),
        (AGENTS, "box", "multibinary", r"action space MultiBinary\(2\)"),
        (("evolino",), "image", "discrete", r"observation space Box\(0, 255, \(8, 8, 3\), uint8\)"),
        (("evolino",), "dict_image", "discrete", r"observation space Dict\('camera': Box\(0, 255"),
    ],
)
def test_a_space_a_trainer_cannot_take_is_a_config_error(
    names: tuple[str, ...], observation: str, action: str, named: str
) -> None:
    for name in names:
        env = _vector_env(observation, action, TINY[name]["num_envs"])
        with pytest.raises(ConfigError, match=named):
            agent_class(name)(env, **TINY[name])
        env.close()


def _layers(vector_env: gym.vector.VectorEnv) -> list[str]:
    names = []
    while isinstance(vector_env, gym.vector.VectorWrapper):
        names.append(type(vector_env).__name__)
        vector_env = vector_env.env
    return names


def test_an_env_object_gets_the_same_layers_as_its_id() -> None:
    # PPO normalizes rewards by default: an env handed over as an object must not train without it.
    settings = {"num_envs": 1, "n_steps": 8, "seq_len": 8, "batch_size": 8, "normalize_observations": True,
                "prev_action_reward": True, "vectorization": "sync"}
    by_id = RecurrentPPO("CartPole-v1", **settings)
    by_object = RecurrentPPO(gym.make("CartPole-v1"), **settings)
    assert _layers(by_object.env) == _layers(by_id.env) == [
        "NormalizeReward", "PrevActionReward", "NormalizeObservation", "RecordEpisodeStatistics", "ForeignEnvBoundary"
    ]
    by_id.close()
    by_object.close()
