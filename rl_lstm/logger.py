"""Training logs: TensorBoard scalars under Stable-Baselines3's tag names, episode statistics, a progress bar."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def reported_episodes(infos: dict[str, Any], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The episodes ``infos[key]`` says ended this step, in gymnasium's RecordEpisodeStatistics format (an ``r`` and
    an ``l`` array, and the ``_key`` mask): ``(ended, returns, lengths)`` per copy, or None where it says nothing in
    that format. ``key`` is ``episode`` (ours) or ``env_episode`` (the env's own: see
    rl_lstm.vec_env.ForeignEnvBoundary)."""
    episode, ended = infos.get(key), infos.get(f"_{key}")
    if not isinstance(episode, dict) or ended is None or "r" not in episode or "l" not in episode:
        return None
    return np.asarray(ended, dtype=bool), np.asarray(episode["r"]), np.asarray(episode["l"])


class EpisodeStatistics:
    """Returns, lengths and successes of the last ``window`` finished episodes, read from vector env infos."""

    def __init__(self, window: int = 100):
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.successes: deque[bool] = deque(maxlen=window)
        self.episodes = 0
        # What the env's own episode statistics say (``infos["env_episode"]``), where it keeps some: returns before
        # the reward wrappers above them, say.
        self.env_returns: deque[float] = deque(maxlen=window)
        self.env_lengths: deque[int] = deque(maxlen=window)

    def update(self, infos: dict[str, Any]) -> None:
        """Take the episodes that ended in this step (``RecordEpisodeStatistics``'s ``infos["episode"]``)."""
        for key, returns, lengths in (("episode", self.returns, self.lengths),
                                      ("env_episode", self.env_returns, self.env_lengths)):
            reported = reported_episodes(infos, key)
            if reported is not None:
                ended, episode_returns, episode_lengths = reported
                returns.extend(episode_returns[ended].tolist())
                lengths.extend(episode_lengths[ended].tolist())
                if key == "episode":
                    self.episodes += int(ended.sum())
        if "is_success" in infos:
            self.successes.extend(np.asarray(infos["is_success"])[infos["_is_success"]].tolist())

    def summary(self) -> dict[str, float]:
        """``rollout/...`` scalars over the window; empty until an episode has ended."""
        scalars: dict[str, float] = {}
        if self.returns:
            scalars["rollout/ep_rew_mean"] = float(np.mean(self.returns))
            scalars["rollout/ep_len_mean"] = float(np.mean(self.lengths))
        if self.env_returns:
            scalars["rollout/env_ep_rew_mean"] = float(np.mean(self.env_returns))
            scalars["rollout/env_ep_len_mean"] = float(np.mean(self.env_lengths))
        if self.successes:
            scalars["rollout/success_rate"] = float(np.mean(self.successes))
        return scalars


def flatten_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """``config`` as TensorBoard hparams: nested dicts as ``key.subkey``, lists and such as strings, None left out."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is not None:
            flat[name] = str(value)
    return flat


def wait_past_event_files(log_dir: Path) -> None:
    """Sleep until the second after the newest event file in ``log_dir`` was created, if it is not past yet.

    TensorBoard reads a folder's event files in name order, and a name begins with the second its writer was made
    (``events.out.tfevents.<seconds>.<host>.<pid>.<n>``): two made in the same second by one process sort by ``n`` as
    text, 10 before 9, and a resumed run's curve would be read before the curve it continues.
    """
    stamps = [int(part) for path in log_dir.glob("events.out.tfevents.*")
              if (part := path.name.split(".")[3]).isdigit()]
    if stamps:
        time.sleep(max(0.0, max(stamps) + 1 - time.time()))


class TrainingLogger:
    """TensorBoard events under ``log_dir`` plus an optional rich progress bar; both keyed by env steps."""

    def __init__(self, log_dir: str | Path | None, total_timesteps: int, progress_bar: bool, start_step: int = 0):
        self.writer = None
        if log_dir is not None:
            # Imported here: torch's TensorBoard writer costs a second to import and only logging runs need it.
            from torch.utils.tensorboard import SummaryWriter

            wait_past_event_files(Path(log_dir))
            # A checkpoint at step S is written after the scalars of step S: purging from S + 1 drops only what a
            # crashed run wrote after its last checkpoint, so a resumed curve continues without a fold or a gap.
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=start_step + 1 if start_step > 0 else None)
        self.latest: dict[str, float] = {}
        self._start_time = time.perf_counter()
        self._start_step = start_step
        self.progress: Progress | None = None
        if progress_bar:
            self.progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[speed]} steps/s"),
                TextColumn("return {task.fields[ep_return]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.progress.start()
            self._task = self.progress.add_task(
                "train", total=total_timesteps, completed=start_step, speed="-", ep_return="-"
            )

    def record(self, scalars: dict[str, float], step: int) -> None:
        """Write scalars at env step ``step`` and remember them as the latest values."""
        self.latest.update(scalars)
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, value, step)

    def record_hparams(self, config: dict[str, Any], step: int) -> None:
        """Write ``config`` (flattened) into this run's own event file: its row in TensorBoard's HPARAMS tab."""
        if self.writer is not None:
            from torch.utils.tensorboard.summary import hparams

            # Only the session start: with no experiment summary TensorBoard takes the columns from every run's
            # session (runs of different agents have different keys) and the metric columns from each run's own
            # scalars, whose last values (eval/mean_reward: the final evaluation) fill the row.
            # SummaryWriter.add_hparams would write a sub-folder, i.e. a second run, instead.
            _, session_start, _ = hparams(flatten_hparams(config), {})
            self.writer.file_writer.add_summary(session_start, step)

    def steps_per_second(self, step: int) -> float:
        """Env steps per second since this logger started."""
        return (step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)

    def advance(self, step: int) -> None:
        """Move the progress bar to ``step``."""
        if self.progress is not None:
            ep_return = self.latest.get("rollout/ep_rew_mean")
            self.progress.update(
                self._task,
                completed=step,
                speed=f"{self.steps_per_second(step):,.0f}",
                ep_return="-" if ep_return is None else f"{ep_return:.3g}",
            )

    def close(self) -> None:
        """Flush TensorBoard and stop the progress bar."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
