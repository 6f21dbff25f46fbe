"""Evaluate a saved agent: returns with a bootstrap confidence interval, success rate, videos, and a memory plot.

``rl-lstm evaluate RUN_DIR_OR_CHECKPOINT`` (or ``python scripts/evaluate.py``) loads the agent, runs a fixed
number of episodes on a fresh vector env of the env it was trained on, prints the statistics and writes
``eval.json``; ``--video`` records episodes with gymnasium's ``RecordVideo`` and ``--plot-memory`` draws the
cell state of every core unit over one episode (on the T-maze a trained agent holds the cue there).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import NormalizeObservation, RecordVideo
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from agents import agent_class
from rl_lstm.agent import RecurrentAgent
from rl_lstm.checkpoints import CHECKPOINT_NAMES, checkpoint_file, load_checkpoint
from rl_lstm.errors import ConfigError, RLLSTMError
from rl_lstm.vec_env import (
    SinglePrevActionReward,
    TorchEnvToNumpy,
    action_masks,
    add_training_layers,
    load_normalization_state,
    make_vector_env,
    normalization_state,
    parse_wrappers,
    resolve_env_id,
    vector_env_of,
    wrap_env,
)

# Bootstrap resamples are drawn in blocks of at most this many indices, so 10,000 resamples of a long
# evaluation do not allocate a [resamples, episodes] array of gigabytes.
BOOTSTRAP_BLOCK_ELEMENTS = 2_000_000


class MissingDependencyError(RLLSTMError, ImportError):
    """An optional dependency (an extra of the rl-lstm package) that a requested feature needs is not installed."""


@dataclass
class EvaluationResult:
    """The outcome of each evaluated episode, in the order the episodes ended."""

    returns: np.ndarray  # [episodes] float: undiscounted sum of the env's (unnormalized) rewards
    lengths: np.ndarray  # [episodes] int: steps per episode
    successes: np.ndarray | None  # [episodes] bool: the env's info["is_success"]; None if the env never reports it

    def __post_init__(self) -> None:
        self.returns = np.asarray(self.returns, dtype=np.float64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if self.successes is not None:
            self.successes = np.asarray(self.successes, dtype=bool)
        if len(self.returns) == 0:
            raise ConfigError("an evaluation result needs at least one episode")

    @property
    def num_episodes(self) -> int:
        """How many episodes were evaluated."""
        return len(self.returns)

    @property
    def mean_return(self) -> float:
        """Mean episode return."""
        return float(self.returns.mean())

    @property
    def std_return(self) -> float:
        """Standard deviation of the episode returns (of the episodes, not of the mean; ddof 0 as in SB3)."""
        return float(self.returns.std())

    @property
    def success_rate(self) -> float | None:
        """Fraction of episodes the env called a success, or ``None`` if it reports no ``is_success``."""
        return None if self.successes is None else float(self.successes.mean())

    @property
    def mean_length(self) -> float:
        """Mean episode length in steps."""
        return float(self.lengths.mean())

    def confidence_interval(self, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
        """Percentile bootstrap confidence interval ``(low, high)`` of the mean return."""
        if not 0 < level < 1:
            raise ConfigError(f"confidence level must lie strictly between 0 and 1, got {level}")
        if resamples < 1:
            raise ConfigError(f"resamples must be at least 1, got {resamples}")
        rng = np.random.default_rng(seed)
        episodes = self.num_episodes
        resampled_means = np.empty(resamples)
        block = max(1, BOOTSTRAP_BLOCK_ELEMENTS // episodes)
        for start in range(0, resamples, block):
            stop = min(start + block, resamples)
            indices = rng.integers(0, episodes, size=(stop - start, episodes))  # [block, episodes]
            resampled_means[start:stop] = self.returns[indices].mean(axis=1)
        tail = 100 * (1 - level) / 2
        low, high = np.percentile(resampled_means, [tail, 100 - tail])
        return float(low), float(high)

    def to_dict(self) -> dict[str, Any]:
        """Summary statistics and every episode's outcome, as plain JSON types."""
        low, high = self.confidence_interval()
        return {
            "num_episodes": self.num_episodes,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "confidence_interval_95": [low, high],
            "success_rate": self.success_rate,
            "mean_length": self.mean_length,
            "returns": self.returns.tolist(),
            "lengths": self.lengths.tolist(),
            "successes": None if self.successes is None else self.successes.tolist(),
        }


def load_agent(path: str | Path, device: str = "cpu") -> RecurrentAgent:
    """The agent saved in a run folder (its ``checkpoints/latest.pt``) or in a checkpoint file, on ``device``."""
    name = load_checkpoint(path)["agent"]
    return agent_class(name).load(path, device=device)


@contextlib.contextmanager
def _seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch's generator for stochastic actions, leaving the caller's generator as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def _observation_statistics(agent: RecurrentAgent) -> dict[str, Any]:
    """The agent's observation normalization statistics (empty if it trained without them); rewards stay raw."""
    saved = normalization_state(agent.env)
    return {"observation": saved["observation"]} if "observation" in saved else {}


def _require_registered_id(agent: RecurrentAgent, call: str) -> None:
    """A ConfigError, saying to pass an env as ``call`` does, where the agent's env id names no registered env."""
    if ":" not in agent.env_id and agent.env_id not in gym.registry:
        raise ConfigError(
            f"{agent.env_id!r} is no registered env id: the agent trained on an env object gymnasium knows no id "
            f"for, so no fresh copy of it can be built. Pass one: {call}, or register it (gymnasium.register) and "
            "train from its id"
        )


def evaluate_agent(
    agent: RecurrentAgent,
    num_episodes: int = 100,
    deterministic: bool = True,
    seed: int = 0,
    num_envs: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    env: gym.Env | gym.vector.VectorEnv | None = None,
) -> EvaluationResult:
    """Run ``num_episodes`` episodes of ``agent`` on a fresh vector env of its env id, or on ``env``.

    ``num_envs`` copies (default: the agent's ``num_envs``, at most ``num_episodes``) each run a fixed quota
    of episodes, so the result is not biased toward short episodes. ``env_kwargs`` override the agent's own.
    ``env``, a ``gymnasium.Env`` (one copy) or a VectorEnv (its copies), is an env object to play instead, as an
    agent trained on an object with no registered id needs; it gets the agent's wrappers and is left open.
    Observations are normalized with the agent's training statistics, frozen.
    """
    if num_episodes < 1:
        raise ConfigError(f"num_episodes must be at least 1, got {num_episodes}")
    statistics = _observation_statistics(agent)
    layers = {"normalize_observations": "observation" in statistics,
              "prev_action_reward": agent.config.prev_action_reward}
    if env is None:
        _require_registered_id(agent, "evaluate_agent(agent, env=YourEnv())")
        num_envs = min(num_episodes, agent.config.num_envs if num_envs is None else num_envs)
        env = make_vector_env(agent.env_id, num_envs, env_kwargs={**agent.config.env_kwargs, **(env_kwargs or {})},
                              vectorization=agent.config.vectorization, env_wrappers=agent.config.env_wrappers,
                              frame_stack=agent.config.frame_stack, **layers)
        close = env.close
    else:
        wrappers = parse_wrappers(agent.config.env_wrappers)
        vector_env, _ = vector_env_of(env, wrappers, agent.config.frame_stack)
        # The user's env stays open: closing it is theirs to do.
        env, close = add_training_layers(vector_env, wrappers, **layers), lambda: None
        num_envs = env.num_envs
    load_normalization_state(env, statistics, training=False)
    quotas = np.full(num_envs, num_episodes // num_envs)
    quotas[: num_episodes % num_envs] += 1
    finished = np.zeros(num_envs, dtype=np.int64)
    returns: list[float] = []
    lengths: list[int] = []
    successes: list[bool] = []
    any_success_reported = False
    try:
        observations, infos = env.reset(seed=seed)
        state = None
        episode_starts = np.ones(num_envs, dtype=bool)
        autoresetting = np.zeros(num_envs, dtype=bool)
        with _seeded_torch(seed):
            while (finished < quotas).any():
                actions, state = agent.predict(
                    observations, state, episode_start=episode_starts, deterministic=deterministic,
                    action_masks=action_masks(env, infos),
                )
                observations, _, terminated, truncated, infos = env.step(actions)
                done = terminated | truncated
                reported = infos.get("_is_success", np.zeros(num_envs, dtype=bool))
                for i in np.flatnonzero(done & (finished < quotas)):
                    returns.append(float(infos["episode"]["r"][i]))
                    lengths.append(int(infos["episode"]["l"][i]))
                    # An episode that ends without reporting success (e.g. cut by a TimeLimit) did not succeed.
                    successes.append(bool(reported[i] and infos["is_success"][i]))
                    any_success_reported |= bool(reported[i])
                    finished[i] += 1
                # Under NEXT_STEP autoreset the step after an episode ends returns the next episode's first
                # observation: that observation, not the one returned with done, starts an episode.
                episode_starts = autoresetting
                autoresetting = done
    finally:
        close()
    return EvaluationResult(np.array(returns), np.array(lengths), np.array(successes) if any_success_reported else None)


class _LeftOpen(gym.Wrapper):
    """A user's env, which closing the layers around it leaves open: closing it is its owner's to do."""

    def close(self) -> None:
        pass


def _make_single_env(agent: RecurrentAgent, render_mode: str | None, env: gym.Env | None, call: str) -> gym.Env:
    """One copy of the agent's env with its env_kwargs and wrappers (unnormalized: see :func:`_observe_like`), or
    ``env``, a user's, inside those wrappers and left open; ``call`` is how to pass one where the id is not
    registered."""
    wrappers = parse_wrappers(agent.config.env_wrappers)
    vector_wrappers = [entry.path for entry in wrappers if entry.is_vector]
    if vector_wrappers:
        raise ConfigError(
            f"videos and memory plots play a single env, which the vector wrappers {vector_wrappers} cannot wrap; "
            "evaluate without --video and --plot-memory, or train with gymnasium.Wrapper wrappers instead"
        )
    if env is not None:
        if not isinstance(env, gym.Env):
            raise ConfigError(
                f"videos and memory plots play one env: pass a gymnasium.Env, not a {type(env).__name__}"
            )
        return wrap_env(TorchEnvToNumpy(_LeftOpen(env)), wrappers, agent.config.frame_stack)
    _require_registered_id(agent, call)
    # Only where a renderer is asked for: an env whose constructor takes no render_mode still plays.
    render_kwargs = {} if render_mode is None else {"render_mode": render_mode}
    env_id = resolve_env_id(agent.env_id)
    try:
        env = gym.make(env_id, **render_kwargs, **agent.config.env_kwargs)
    except TypeError as error:
        if render_mode is None:
            raise
        raise ConfigError(
            f"env {agent.env_id!r} cannot be made with render_mode={render_mode!r} ({error}); it draws no frames "
            "to record: evaluate without --video"
        ) from error
    return wrap_env(env, wrappers, agent.config.frame_stack)


def _first_frame(agent: RecurrentAgent, env: gym.Env, fix: str) -> None:
    """Reset ``env`` (made to record ``agent``'s episodes) and render once: a clear error, ending in ``fix``, where it
    cannot draw an RGB frame."""
    if env.render_mode != "rgb_array":
        raise ConfigError(
            f"env {agent.env_id!r} renders {env.render_mode!r}, not the 'rgb_array' frames a video is made of; {fix}"
        )
    try:
        env.reset(seed=0)
        frame = env.render()
    except gym.error.DependencyNotInstalled as error:
        raise MissingDependencyError(
            f"env {agent.env_id!r} draws its frames with a package that is not installed: {error} (gymnasium's own "
            "envs draw with pygame, which pip install 'rl-lstm[video]' installs)"
        ) from error
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3):
        shape = getattr(frame, "shape", None)
        raise ConfigError(
            f"env {agent.env_id!r} rendered {type(frame).__name__}{'' if shape is None else f' of shape {shape}'} "
            f"in render_mode 'rgb_array', not an RGB frame [height, width, 3]; {fix}"
        )


def _observe_like(agent: RecurrentAgent, env: gym.Env) -> gym.Env:
    """``env`` observed as in training: the agent's frozen observation normalization, then the previous action and
    reward, where it trained with them (in make_vector_env's order)."""
    statistics = _observation_statistics(agent)
    if statistics:
        env = NormalizeObservation(env)
        load_normalization_state(env, statistics, training=False)
    return SinglePrevActionReward(env) if agent.config.prev_action_reward else env


def _single_action_mask(env: gym.Env, info: dict[str, Any]) -> np.ndarray | None:
    """The allowed actions now, read as :func:`rl_lstm.vec_env.action_masks` reads them, for a single env."""
    method = getattr(env.unwrapped, "action_masks", None)
    masks = method() if callable(method) else None
    if masks is None:
        masks = info.get("action_mask")
    return None if masks is None else np.asarray(masks, dtype=bool)


def _play_episode(
    agent: RecurrentAgent, env: gym.Env, seed: int | None, deterministic: bool, max_steps: int | None = None
) -> Iterator[tuple[Any, tuple[np.ndarray, ...], float]]:
    """Play one episode (batch of 1), yielding ``(observation, core state after it, reward)`` at each step."""
    observation, info = env.reset(seed=seed)
    state = None
    step = 0
    while max_steps is None or step < max_steps:
        action, state = agent.predict(
            observation, state, episode_start=np.array([step == 0]), deterministic=deterministic,
            action_masks=_single_action_mask(env, info),
        )
        next_observation, reward, terminated, truncated, info = env.step(action)
        yield observation, state, float(reward)
        if terminated or truncated:
            return
        observation = next_observation
        step += 1


def _require_moviepy() -> None:
    try:
        importlib.import_module("moviepy")
    except ImportError as error:
        raise MissingDependencyError(
            "recording videos needs moviepy, which is not installed; run: pip install 'rl-lstm[video]'"
        ) from error


VIDEO_CALL = "record_video(agent, video_dir, env=YourEnv(render_mode='rgb_array'))"


def check_video(agent: RecurrentAgent, env: gym.Env | None = None) -> None:
    """Whether :func:`record_video` can record ``agent`` (on ``env``, if given): a clear error where moviepy, or the
    package the env draws with, is missing, or where the env draws no RGB frames."""
    _require_moviepy()
    fix = "evaluate without --video" if env is None else "make the env you pass with render_mode='rgb_array'"
    single = _make_single_env(agent, "rgb_array", env, VIDEO_CALL)
    try:
        _first_frame(agent, single, fix)
    finally:
        single.close()


def record_video(
    agent: RecurrentAgent,
    video_dir: str | Path,
    episodes: int = 1,
    seed: int = 0,
    deterministic: bool = True,
    env: gym.Env | None = None,
) -> list[Path]:
    """Record ``episodes`` episodes of ``agent`` as .mp4 files in ``video_dir``; the paths written. ``env``, made
    with ``render_mode='rgb_array'``, is an env to play instead of a fresh one of the agent's id (left open)."""
    if episodes < 1:
        raise ConfigError(f"video episodes must be at least 1, got {episodes}")
    check_video(agent, env)
    return _record_episodes(agent, video_dir, episodes, seed, deterministic, env)


def _record_episodes(
    agent: RecurrentAgent, video_dir: str | Path, episodes: int, seed: int, deterministic: bool, env: gym.Env | None
) -> list[Path]:
    """:func:`record_video` once :func:`check_video` has passed."""
    video_dir = Path(video_dir)
    name_prefix = re.sub(r"[^\w.-]", "-", agent.env_id)
    single = _make_single_env(agent, "rgb_array", env, VIDEO_CALL)
    recorder = RecordVideo(single, str(video_dir), episode_trigger=lambda _: True, name_prefix=name_prefix)
    played = _observe_like(agent, recorder)
    try:
        with _seeded_torch(seed):
            for episode in range(episodes):
                # Later episodes continue the env's random stream instead of replaying the first one.
                for _ in _play_episode(agent, played, seed if episode == 0 else None, deterministic):
                    pass
    finally:
        played.close()  # writes the last episode's video
    written = [video_dir / f"{name_prefix}-episode-{episode}.mp4" for episode in range(episodes)]
    return [path for path in written if path.is_file()]


@dataclass
class MemoryTrace:
    """What the agent saw and held at each step of one episode."""

    env_id: str
    observations: np.ndarray  # [T, D]: the observation the policy received at each step, flattened
    cell_states: np.ndarray  # [T, H]: the actor core's memory after that observation
    rewards: np.ndarray  # [T]: the reward of the action taken at each step

    @property
    def episode_return(self) -> float:
        """Sum of the rewards over the traced steps."""
        return float(self.rewards.sum())


def record_memory(
    agent: RecurrentAgent, seed: int = 0, max_steps: int = 1000, deterministic: bool = True, env: gym.Env | None = None
) -> MemoryTrace:
    """Play one episode (at most ``max_steps`` steps) and record each step's observation and core memory; on
    ``env``, if given, instead of a fresh env of the agent's id (left open)."""
    single = _make_single_env(agent, None, env, "record_memory(agent, env=YourEnv()), plot_memory(..., env=YourEnv())")
    env = _observe_like(agent, single)
    observations, cell_states, rewards = [], [], []
    try:
        with _seeded_torch(seed), torch.no_grad():
            for observation, state, reward in _play_episode(agent, env, seed, deterministic, max_steps):
                observations.append(gym.spaces.flatten(env.observation_space, observation))
                memory = agent.policy.memory(tuple(torch.as_tensor(s, device=agent.device) for s in state))  # [1, H]
                cell_states.append(memory[0].cpu().numpy())
                rewards.append(reward)
    finally:
        env.close()
    return MemoryTrace(agent.env_id, np.array(observations, dtype=np.float64), np.array(cell_states), np.array(rewards))


def plot_memory(
    agent: RecurrentAgent,
    path: str | Path,
    seed: int = 0,
    max_steps: int = 1000,
    deterministic: bool = True,
    env: gym.Env | None = None,
) -> Path:
    """Draw one episode's observations (top) and every core unit's cell state (bottom) over time as a PNG; on
    ``env``, if given, instead of a fresh env of the agent's id (left open)."""
    trace = record_memory(agent, seed=seed, max_steps=max_steps, deterministic=deterministic, env=env)
    steps = len(trace.rewards)
    # A Figure without pyplot renders PNGs with Agg and touches no global backend state.
    figure = Figure(figsize=(max(6.0, min(20.0, 0.15 * steps + 4)), 7), layout="constrained")
    observation_axes, memory_axes = figure.subplots(2, 1, sharex=True, height_ratios=[1, 3])
    # Pixel centres on whole steps and rows, row 0 on top, so both panels share one step axis.
    first, last = -0.5, steps - 0.5
    image = observation_axes.imshow(
        trace.observations.T, aspect="auto", interpolation="nearest", cmap="viridis",
        extent=(first, last, trace.observations.shape[1] - 0.5, -0.5),
    )
    figure.colorbar(image, ax=observation_axes, label="value")
    normalized = " (normalized as in training)" if _observation_statistics(agent) else ""
    observation_axes.set_ylabel(f"observation{normalized}\ncomponent")
    # Each unit on its own scale: a unit that counts steps can grow a thousand times larger than one that holds a
    # cue, and a shared scale would paint the holder white. The symmetric range centres the diverging colormap on
    # zero, so the sign a unit holds reads at a glance; the tick labels give each unit's largest |c|.
    unit_magnitudes = np.maximum(np.abs(trace.cell_states).max(axis=0), 1e-6)
    image = memory_axes.imshow(
        (trace.cell_states / unit_magnitudes).T, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-1,
        vmax=1, extent=(first, last, trace.cell_states.shape[1] - 0.5, -0.5),
    )
    figure.colorbar(image, ax=memory_axes, label="cell state / the unit's largest |c|")
    num_units = trace.cell_states.shape[1]
    map_shape = getattr(agent.policy.actor_core, "map_shape", None)
    if map_shape is None:
        ticks = range(0, num_units, max(1, num_units // 16))
        memory_axes.set_yticks(list(ticks), [f"{unit} (|c| <= {unit_magnitudes[unit]:.3g})" for unit in ticks])
        memory_axes.set_ylabel("core unit")
    else:
        # A convolutional core's memory is maps: one band of rows per cell channel, its positions row by row.
        channels, height, width = map_shape
        positions = height * width
        for boundary in range(positions, num_units, positions):
            memory_axes.axhline(boundary - 0.5, color="black", linewidth=0.5)
        ticks = range(0, num_units, positions * max(1, channels // 16))
        memory_axes.set_yticks(list(ticks), [f"channel {unit // positions}" for unit in ticks])
        memory_axes.set_ylabel(f"cell channel ({height} x {width} positions each)")
    memory_axes.set_xlabel("step")
    figure.suptitle(f"{trace.env_id}: return {trace.episode_return:.2f} over {steps} steps (seed {seed})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl-lstm evaluate",
        description="Evaluate a saved agent: mean return with a 95% bootstrap CI, success rate, mean length; "
        "writes eval.json.",
    )
    parser.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT", help="a run folder or a checkpoint .pt file")
    parser.add_argument("--checkpoint", choices=CHECKPOINT_NAMES, default=None,
                        help="of a run folder: latest (default; the policy training ended with, which --resume "
                        "continues) or best (the best evaluation's; its report is eval_best.json)")
    parser.add_argument("--episodes", type=_positive_int, default=100, help="episodes to evaluate (default 100)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions (default: the most likely action)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env copies and of sampled actions")
    parser.add_argument("--device", default="cpu", help="where the policy runs: cpu (default), cuda or auto")
    parser.add_argument("--num-envs", type=_positive_int, default=None,
                        help="env copies stepped together (default: the agent's num_envs, at most --episodes)")
    parser.add_argument("--video", action="store_true", help="record episodes into OUTPUT/videos/ (needs moviepy)")
    parser.add_argument("--video-episodes", type=_positive_int, default=1, help="episodes to record (default 1)")
    parser.add_argument("--plot-memory", action="store_true",
                        help="draw one episode's observations and cell states into OUTPUT/memory.png")
    parser.add_argument("--output", default=None,
                        help="folder for eval.json, videos and plots (default: the run folder, or the checkpoint's)")
    return parser


def _print_summary(report: dict[str, Any], written: list[Path]) -> None:
    mode = "deterministic" if report["deterministic"] else "stochastic"
    table = Table(title=f"{report['env_id']}: {report['num_episodes']} episodes, {mode} actions, seed {report['seed']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    low, high = report["confidence_interval_95"]
    table.add_row("mean return", f"{report['mean_return']:.3f}")
    table.add_row("std return", f"{report['std_return']:.3f}")
    table.add_row("95% bootstrap CI of the mean", f"[{low:.3f}, {high:.3f}]")
    if report["success_rate"] is not None:
        table.add_row("success rate", f"{report['success_rate']:.1%}")
    table.add_row("mean episode length", f"{report['mean_length']:.1f}")
    console = Console()
    console.print(f"Evaluated {report['checkpoint']} ({report['num_timesteps']:,} env steps)", markup=False,
                  soft_wrap=True)
    console.print(table)
    for path in written:
        console.print(f"wrote {path}", markup=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rl-lstm evaluate``: 0 on success, 2 on a user error (printed as one line)."""
    args = _parser().parse_args(argv)
    source = Path(args.path)
    output = Path(args.output) if args.output is not None else (source if source.is_dir() else source.parent)
    deterministic = not args.stochastic
    try:
        checkpoint = checkpoint_file(source, args.checkpoint)
        agent = load_agent(checkpoint, device=args.device)
        if args.video:
            check_video(agent)  # fail before a long evaluation, not after it
        result = evaluate_agent(
            agent, num_episodes=args.episodes, deterministic=deterministic, seed=args.seed, num_envs=args.num_envs
        )
        output.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {
            "checkpoint": str(checkpoint),
            "agent": agent.name,
            "env_id": agent.env_id,
            "env_kwargs": agent.config.env_kwargs,
            "num_timesteps": agent.num_timesteps,
            "deterministic": deterministic,
            "seed": args.seed,
            **result.to_dict(),
        }
        # Written now and again with what follows: a video or plot that fails does not lose the evaluation.
        report_path = output / ("eval_best.json" if args.checkpoint == "best" else "eval.json")
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        written = [report_path]
        if args.video:
            # check_video passed before the evaluation
            videos = _record_episodes(agent, output / "videos", args.video_episodes, args.seed, deterministic, None)
            report["videos"] = [str(path) for path in videos]
            written += videos
        if args.plot_memory:
            written.append(plot_memory(agent, output / "memory.png", seed=args.seed, deterministic=deterministic))
            report["memory_plot"] = str(written[-1])
        report_path.write_text(json.dumps(report, indent=2) + "\n")
    except (RLLSTMError, OSError) as error:
        print(f"rl-lstm evaluate: error: {error}", file=sys.stderr)
        return 2
    _print_summary(report, written)
    return 0
