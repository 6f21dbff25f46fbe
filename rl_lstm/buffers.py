"""Rollout storage for recurrent on-policy training, and the padded sequence layout the cores run on.

A rollout of ``n_steps`` steps from ``n_envs`` envs is cut along time into *chunks* of ``seq_len``
steps; the core state at the start of each chunk is stored during the rollout. A minibatch is a
set of whole chunks, so it always holds ``batch_size`` steps. Inside a minibatch, each chunk is cut
again where an episode starts into *pieces*; the pieces are padded to the longest of them and run through
the core in one call (one fused ``nn.LSTM`` kernel, no reset inside a sequence), starting from the
chunk's stored state or, after an episode start, from zeros. A core that resets inside the kernel
(``resets_in_kernel``, the LSTM core) may instead take the chunks whole, one row each with its episode starts,
where that is the cheaper call: see :func:`whole_chunks_are_cheaper`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rl_lstm.policies import map_observation

State = tuple[Tensor, ...]


@dataclass
class PieceLayout:
    """Pieces of chunks: every run of steps inside one chunk that no episode start interrupts.

    Arrays over pieces: ``chunk`` (which chunk), ``offset`` (first step inside the chunk), ``length``
    (steps), ``resets`` (True where the piece begins an episode, so its core state starts at zero);
    ``first_piece`` [num_chunks + 1] indexes the pieces of chunk c as ``first_piece[c]:first_piece[c+1]``.
    """

    chunk: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    resets: np.ndarray
    first_piece: np.ndarray

    @classmethod
    def from_episode_starts(cls, episode_starts: np.ndarray) -> PieceLayout:
        """Cut chunks ``[seq_len, num_chunks]`` at their episode starts."""
        seq_len, num_chunks = episode_starts.shape
        piece_begins = episode_starts.copy()
        piece_begins[0] = True
        chunks, steps = np.nonzero(piece_begins.T)  # ordered by chunk, then by step
        offset = steps.astype(np.int64)
        next_offset = np.append(offset[1:], seq_len)
        last_of_chunk = np.append(chunks[1:] != chunks[:-1], True)
        next_offset[last_of_chunk] = seq_len
        first_piece = np.searchsorted(chunks, np.arange(num_chunks + 1))
        return cls(
            chunk=chunks.astype(np.int64),
            offset=offset,
            length=next_offset - offset,
            resets=episode_starts[offset, chunks],
            first_piece=first_piece,
        )

    def pieces_of(self, chunks: np.ndarray) -> np.ndarray:
        """Indices of every piece of the given chunks."""
        starts, ends = self.first_piece[chunks], self.first_piece[chunks + 1]
        counts = ends - starts
        # Concatenated aranges without a Python loop: start of each run repeated, plus a running offset.
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + within


# The kernel's time grows about as steps x (rows + 2): a step of the sequence costs about what two more rows of it do,
# and resetting inside the kernel adds about what 100 row-steps cost (oneDNN's LSTM at hidden size 64, forward and
# backward, 2 to 44 rows of 12 to 140 steps, one CPU core, 2026-12-04). A rough guide to the cheaper call, no more:
# either layout gives the same result.
KERNEL_STEP_IN_ROWS = 2
KERNEL_RESETS_IN_ROW_STEPS = 100


def whole_chunks_are_cheaper(chunks: int, chunk_steps: int, pieces: int, piece_steps: int) -> bool:
    """Whether a kernel resetting inside its sequences runs ``chunks`` rows of ``chunk_steps`` (the chunk plus one
    reset step per episode start inside it) faster than ``pieces`` padded rows of ``piece_steps``."""
    whole_chunks = chunk_steps * (chunks + KERNEL_STEP_IN_ROWS) + KERNEL_RESETS_IN_ROW_STEPS
    return whole_chunks < piece_steps * (pieces + KERNEL_STEP_IN_ROWS)


@dataclass
class SequenceBatch:
    """A minibatch of padded pieces: tensors ``[L, num_pieces, ...]`` (L: its longest piece) and their start state."""

    observations: Any
    actions: Tensor
    action_masks: Tensor | None
    old_log_probs: Tensor
    old_values: Tensor
    advantages: Tensor
    returns: Tensor
    inside: Tensor  # [L, num_pieces] bool: a step of the rollout (not padding)
    valid: Tensor  # [L, num_pieces] bool: a real transition (inside, and not an autoreset step)
    initial_state: State
    episode_starts: Tensor  # pieces: all False (they never contain a reset); whole chunks: their episode starts
    whole_chunks: bool = False  # rows are whole chunks, for a core that resets inside its kernel, not padded pieces

    # Computed once per minibatch, not once per epoch: the whole-rollout minibatch is the same object every epoch.
    @cached_property
    def weights(self) -> Tensor:
        """``[L, num_pieces]``: 1 / (real transitions) at each real transition, 0 elsewhere; a weighted sum with
        them is a mean over the real transitions."""
        return self.valid / self.valid.sum().clamp(min=1)

    @cached_property
    def normalized_advantages(self) -> Tensor:
        """The advantages shifted and scaled to mean 0 and std 1 over the real transitions, ``[L, num_pieces]``."""
        mean = (self.advantages * self.weights).sum()
        std = (((self.advantages - mean) ** 2) * self.weights).sum().sqrt()
        return (self.advantages - mean) / (std + 1e-8)


class RolloutBuffer:
    """Steps of ``n_envs`` envs over ``n_steps``, with the core state at the start of every chunk."""

    def __init__(self, n_steps: int, n_envs: int, seq_len: int, device: torch.device, resets_in_kernel: bool = False):
        if n_steps % seq_len:
            raise ValueError(f"n_steps ({n_steps}) must be a multiple of seq_len ({seq_len})")
        self.n_steps, self.n_envs, self.seq_len, self.device = n_steps, n_envs, seq_len, device
        # Whether the policy's cores reset inside one kernel call: then a minibatch may run as whole chunks.
        self.resets_in_kernel = resets_in_kernel
        self.observations: list[Any] = []
        self.actions = None
        self.action_masks: np.ndarray | None = None
        self.rewards = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.terminated = np.zeros((n_steps, n_envs), dtype=bool)
        self.truncated = np.zeros((n_steps, n_envs), dtype=bool)
        self.episode_starts = np.zeros((n_steps, n_envs), dtype=bool)
        self.valid = np.zeros((n_steps, n_envs), dtype=bool)
        self.values = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.log_probs = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.advantages = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.returns = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.chunk_states: list[State] = []
        # What the policy computed at each step, kept where it computed it (the GPU, say) until the rollout's last
        # step, then copied to the numpy arrays above at once: one host transfer per rollout, not three per step.
        self._policy_outputs: dict[str, Tensor] | None = None
        self.step = 0

    def reset(self) -> None:
        """Start a new rollout."""
        self.observations = []
        self.chunk_states = []
        # Fresh each rollout: on the CPU the last rollout's actions array is a view of its tensor.
        self._policy_outputs = None
        self.step = 0

    def add(
        self,
        observations: Any,
        actions: Tensor,
        action_masks: np.ndarray | None,
        log_probs: Tensor,
        values: Tensor,
        episode_starts: np.ndarray,
        valid: np.ndarray,
        state_before: State,
    ) -> None:
        """Record one step of every env; ``state_before`` is the core state the step was taken from. The policy's
        ``actions``, ``log_probs`` and ``values`` stay on their device until the rollout's last outcome is added."""
        t = self.step
        if t % self.seq_len == 0:
            self.chunk_states.append(tuple(s.detach().clone() for s in state_before))
        outputs = {"actions": actions, "log_probs": log_probs, "values": values}
        if self._policy_outputs is None:
            self._policy_outputs = {
                name: torch.empty((self.n_steps, *output.shape), dtype=output.dtype, device=output.device)
                for name, output in outputs.items()
            }
        for name, output in outputs.items():
            self._policy_outputs[name][t] = output
        if action_masks is not None and self.action_masks is None:
            self.action_masks = np.ones((self.n_steps, *action_masks.shape), dtype=bool)
        self.observations.append(map_observation(np.copy, observations))
        if action_masks is not None:
            self.action_masks[t] = action_masks
        self.episode_starts[t] = episode_starts
        self.valid[t] = valid
        self.step += 1

    def add_outcome(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Record what the env returned for the step just added."""
        t = self.step - 1
        self.rewards[t] = rewards
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        if self.full:
            self.actions = self._policy_outputs["actions"].cpu().numpy()
            self.log_probs[:] = self._policy_outputs["log_probs"].cpu().numpy()
            self.values[:] = self._policy_outputs["values"].cpu().numpy()

    def fill_side_by_side(self, parts: list[RolloutBuffer]) -> None:
        """This buffer's rollout from full ones of fewer envs each, side by side (Ray workers' parts, in copy order)."""
        if sum(part.n_envs for part in parts) != self.n_envs or any(not part.full for part in parts):
            raise ValueError(f"parts must be full rollouts of {self.n_envs} envs in all")
        side_by_side = lambda arrays: np.concatenate(arrays, axis=1)  # noqa: E731  [n_steps, envs, ...]
        self.observations = [
            stack_observations(list(step), np.concatenate) for step in zip(*(part.observations for part in parts))
        ]
        self.actions = side_by_side([part.actions for part in parts])
        has_masks = parts[0].action_masks is not None
        self.action_masks = side_by_side([part.action_masks for part in parts]) if has_masks else None
        for name in ("rewards", "terminated", "truncated", "episode_starts", "valid", "values", "log_probs"):
            setattr(self, name, side_by_side([getattr(part, name) for part in parts]))
        self.chunk_states = [
            tuple(torch.cat(tensors, dim=1).to(self.device) for tensors in zip(*chunk))  # [L, envs, H]
            for chunk in zip(*(part.chunk_states for part in parts))
        ]
        self.step = self.n_steps

    @property
    def full(self) -> bool:
        return self.step == self.n_steps

    def compute_advantages(self, last_values: np.ndarray, gamma: float, gae_lambda: float) -> None:
        """GAE(lambda) over the rollout, bootstrapping at truncation and at the rollout's end.

        Under gymnasium 1.x's NEXT_STEP autoreset, the step after an episode ends is not a transition:
        the value computed there is the value of the terminal observation, which is what a truncated
        step bootstraps from; the step itself is masked out of the loss (``valid`` False).
        """
        next_values = np.append(self.values[1:], last_values[None], axis=0)
        not_terminal = 1.0 - self.terminated
        continues = 1.0 - (self.terminated | self.truncated)
        deltas = self.rewards + gamma * not_terminal * next_values - self.values
        running = np.zeros(self.n_envs, dtype=np.float32)
        for t in reversed(range(self.n_steps)):
            running = deltas[t] + gamma * gae_lambda * continues[t] * running
            self.advantages[t] = running
        self.returns = self.advantages + self.values

    def _chunked(self, array: np.ndarray) -> np.ndarray:
        """``[n_steps, n_envs, ...]`` to ``[seq_len, num_chunks, ...]``, chunk index = block * n_envs + env."""
        blocks = self.n_steps // self.seq_len
        shaped = array.reshape(blocks, self.seq_len, self.n_envs, *array.shape[2:])
        return np.swapaxes(shaped, 0, 1).reshape(self.seq_len, blocks * self.n_envs, *array.shape[2:])

    def prepare(self) -> None:
        """Lay the finished rollout out as chunks once, for all the epochs of an update."""
        to_tensor = lambda a: torch.as_tensor(self._chunked(a), device=self.device)  # noqa: E731
        self._chunked_observations = map_observation(self._chunked, stack_observations(self.observations))
        self._tensors = {
            "actions": to_tensor(self.actions),
            "old_log_probs": to_tensor(self.log_probs),
            "old_values": to_tensor(self.values),
            "advantages": to_tensor(self.advantages),
            "returns": to_tensor(self.returns),
            "valid": to_tensor(self.valid),
            "episode_starts": to_tensor(self.episode_starts),
        }
        self._action_masks = None if self.action_masks is None else to_tensor(self.action_masks)
        self._chunk_states = tuple(torch.cat(parts, dim=1) for parts in zip(*self.chunk_states))  # [L, chunks, H]
        self._layout = PieceLayout.from_episode_starts(self._chunked(self.episode_starts))
        self._whole_rollout_batch: SequenceBatch | None = None

    def minibatches(self, batch_size: int, rng: np.random.Generator) -> Iterator[SequenceBatch]:
        """One epoch of shuffled minibatches of whole chunks, ``batch_size`` steps each (call :meth:`prepare` first)."""
        num_chunks = self.n_steps * self.n_envs // self.seq_len
        chunks_per_batch = batch_size // self.seq_len
        if chunks_per_batch == num_chunks:
            # One minibatch holds the whole rollout (rl-baselines3-zoo's recurrent presets): every epoch would
            # gather the same pieces in another order, which changes nothing but the cost, so gather them once.
            if self._whole_rollout_batch is None:
                self._whole_rollout_batch = next(self._gather(np.arange(num_chunks), chunks_per_batch))
            yield self._whole_rollout_batch
            return
        yield from self._gather(rng.permutation(num_chunks), chunks_per_batch)

    def _gather(self, order: np.ndarray, chunks_per_batch: int) -> Iterator[SequenceBatch]:
        """Minibatches of ``chunks_per_batch`` chunks each, taken in ``order``."""
        layout, data = self._layout, self._tensors
        num_chunks = len(order)
        for first in range(0, num_chunks - chunks_per_batch + 1, chunks_per_batch):
            chunks = order[first : first + chunks_per_batch]
            pieces = layout.pieces_of(chunks)
            longest_piece = layout.length[pieces].max()
            if self.resets_in_kernel:
                starts_inside = np.diff(layout.first_piece)[chunks] - 1  # a piece begins at each start after step 0
                chunk_steps = self.seq_len + starts_inside.max()
                if whole_chunks_are_cheaper(len(chunks), chunk_steps, len(pieces), longest_piece):
                    yield self._whole_chunks(chunks)
                    continue
            piece_chunks = layout.chunk[pieces]
            # Pad to the longest piece, not to seq_len: with sequences longer than the episodes (a seq_len that
            # holds a whole episode) most of a chunk-long padding would be steps the core runs for nothing.
            steps_in_piece = np.arange(longest_piece)[:, None]
            source_steps = np.minimum(layout.offset[pieces] + steps_in_piece, self.seq_len - 1)  # [L, P]
            inside = torch.as_tensor(steps_in_piece < layout.length[pieces], device=self.device)
            steps_index = torch.as_tensor(source_steps, device=self.device)
            piece_chunks_index = torch.as_tensor(piece_chunks, device=self.device)
            index = (steps_index, piece_chunks_index.expand(source_steps.shape))  # picks [L, P] from [L, chunks]
            starts_at_zero = torch.as_tensor(layout.resets[pieces] | (layout.offset[pieces] > 0), device=self.device)
            initial_state = tuple(
                torch.where(starts_at_zero[None, :, None], 0.0, s[:, piece_chunks_index]) for s in self._chunk_states
            )
            yield SequenceBatch(
                observations=map_observation(
                    lambda a: a[source_steps, piece_chunks[None, :]],  # noqa: B023
                    self._chunked_observations,
                ),
                actions=data["actions"][index],
                action_masks=None if self._action_masks is None else self._action_masks[index],
                old_log_probs=data["old_log_probs"][index],
                old_values=data["old_values"][index],
                advantages=data["advantages"][index],
                returns=data["returns"][index],
                inside=inside,
                valid=data["valid"][index] & inside,
                initial_state=initial_state,
                episode_starts=torch.zeros(source_steps.shape, dtype=torch.bool, device=self.device),
            )

    def _whole_chunks(self, chunks: np.ndarray) -> SequenceBatch:
        """A minibatch of whole chunks, ``[seq_len, chunks]``, each from its stored state and with its episode starts,
        for a core that resets inside its kernel."""
        data, index = self._tensors, torch.as_tensor(chunks, device=self.device)
        return SequenceBatch(
            observations=map_observation(lambda a: a[:, chunks], self._chunked_observations),
            actions=data["actions"][:, index],
            action_masks=None if self._action_masks is None else self._action_masks[:, index],
            old_log_probs=data["old_log_probs"][:, index],
            old_values=data["old_values"][:, index],
            advantages=data["advantages"][:, index],
            returns=data["returns"][:, index],
            inside=torch.ones((self.seq_len, len(chunks)), dtype=torch.bool, device=self.device),
            valid=data["valid"][:, index],
            initial_state=tuple(s[:, index] for s in self._chunk_states),
            episode_starts=data["episode_starts"][:, index],
            whole_chunks=True,
        )


def stack_observations(steps: list[Any], combine: Callable[[list[np.ndarray]], np.ndarray] = np.stack) -> Any:
    """Stack per-step observations (arrays, or dicts/tuples of them, nested) into ``[n_steps, n_envs, ...]``;
    ``combine=np.concatenate`` joins batches of observations along their first axis instead."""
    first = steps[0]
    if isinstance(first, dict):
        return {key: stack_observations([step[key] for step in steps], combine) for key in first}
    if isinstance(first, tuple):
        return tuple(stack_observations([step[i] for step in steps], combine) for i in range(len(first)))
    return combine(steps)
