"""Recurrent cores: LSTM, GRU, peephole LSTM and convolutional LSTM behind one sequence interface.

Every core maps ``(x[T, B, F], state, episode_starts[T, B])`` to ``(y[T, B, H], new_state)``. The state of
sequence ``b`` is reset to zeros at every ``t`` where ``episode_starts[t, b]`` is true, before ``x[t]`` is
processed. A state is a tuple of tensors each shaped ``[num_layers, B, hidden_size]`` (batch on dim 1), so
trainers can store and index the states of any core the same way. Acting calls a core with ``T = 1``;
training calls it once on whole sequences. The convolutional LSTM reads and writes feature maps
(``x[T, B, C, H, W]``) and keeps its state maps flattened to that same layout.
"""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from rl_lstm.errors import ConfigError

State = tuple[Tensor, ...]

# The forget-gate bias of LSTM and peephole cores unless core_kwargs sets one: 3 keeps e^3/(1 + e^3) = 95% of the
# cell state per step at the start, which every memory preset chose; with 1 (73% per step) PPO's defaults left
# the T-maze of length 50 at chance on 5 of 5 seeds, with 3 (and a shared core) they solved it on 5 of 5
# (scripts/benchmark.py ppo --no-preset at commits 9b78dde and 0e80789, 2026-12-02).
DEFAULT_FORGET_BIAS = 3.0
# The peephole cell's gates see its cell state, so a forget gate opened that wide lets the cell run away: after a
# cue and 1000 steps of zero input its difference between two cues grew to 384 (forget bias 3) instead of fading
# (below 1e-12 with 1), so the peephole core keeps 1.
PEEPHOLE_DEFAULT_FORGET_BIAS = 1.0
# A gate pre-activation this far from zero makes the gate exactly 0 or 1 in float32 (sigmoid underflows below -104),
# whatever the weights add to it; small enough for float16 (at most 65504).
SATURATED = 1e4


@runtime_checkable
class RecurrentCore(Protocol):
    """The interface every core follows; a user's own ``nn.Module`` with these members works everywhere."""

    hidden_size: int

    def __call__(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]: ...

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State: ...

    def cell_state(self, state: State) -> Tensor: ...


def reset_state(state: State, episode_starts: Tensor) -> State:
    """Zero the state of the sequences whose episode starts now; ``episode_starts`` is ``[B]``."""
    starts = episode_starts.to(torch.bool).view(1, -1, 1)  # [1, B, 1]
    # One op per tensor, where multiplying by a 0/1 mask took four (and turned an inf in a finished episode into NaN).
    return tuple(torch.where(starts, 0.0, tensor) for tensor in state)


INITS = ("default", "chrono")


def check_gate_init(init: str, t_max: float | None, forget_bias: float | None = None,
                    options: str = "core_kwargs ") -> None:
    """Check a core's ``init``, ``t_max`` and ``forget_bias`` options; a bad one is a ConfigError naming it.

    ``options`` names where the keys live in a config (Evolino's are top-level keys, so it passes "").
    """
    if init not in INITS:
        raise ConfigError(
            f"{options}init={init!r} is not a gate initialization; allowed: {', '.join(INITS)} "
            "('chrono' with t_max: Tallec & Ollivier 2018)"
        )
    if init != "chrono":
        if t_max is not None:
            # 100 for a float 100.0 from YAML; a bool as itself
            shown = f"{t_max:g}" if isinstance(t_max, (int, float)) and not isinstance(t_max, bool) else repr(t_max)
            raise ConfigError(
                f"{options}t_max={shown} is set without init: chrono; t_max is the longest dependency chrono "
                "initialization spreads the gate time scales over: add init: chrono, or drop t_max"
            )
        return
    if forget_bias is not None:
        raise ConfigError(
            f"{options}sets both init: chrono and forget_bias={forget_bias}; chrono initialization sets the "
            "forget-gate bias itself (log U[1, t_max - 1]): drop forget_bias, or drop init: chrono"
        )
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or not t_max >= 2:
        raise ConfigError(
            f"{options}init: chrono needs t_max, the longest dependency in steps the memory should span "
            f"(e.g. the episode length), a number >= 2; got t_max={t_max!r}"
        )


def chrono_forget_bias(hidden_size: int, t_max: float) -> Tensor:
    """Chrono forget-gate biases ``[hidden_size]``: log(U[1, t_max - 1]), drawn from torch's generator.

    Tallec & Ollivier (ICLR 2018, "Can recurrent neural networks warp time?"): a forget gate of bias b keeps about
    1 - 1/(1 + e^b) of the memory per step, a time scale of about e^b steps; drawing e^b uniformly in
    [1, t_max - 1] spreads the units' time scales over every dependency length up to t_max.
    """
    return torch.log(torch.empty(hidden_size).uniform_(1.0, t_max - 1.0))


class _Core(nn.Module):
    """What all built-in cores share: sizes and the zero initial state."""

    num_state_tensors: int

    def __init__(self, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zero state for ``batch_size`` sequences: tensors ``[num_layers, batch_size, hidden_size]``."""
        parameter = next(self.parameters())
        device = parameter.device if device is None else device
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(torch.zeros(shape, dtype=parameter.dtype, device=device) for _ in range(self.num_state_tensors))


class _FusedCore(_Core):
    """A core backed by a fused ``nn.LSTM`` / ``nn.GRU`` kernel.

    The kernel cannot reset its state mid-sequence, so the sequence is cut only at timesteps where some
    episode starts: one kernel call per segment, and a single call when episodes start only at ``t = 0``
    (the usual case in training, where rollouts are split into sequences at episode boundaries).
    """

    rnn: nn.LSTM | nn.GRU

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Run ``x[T, B, F]`` from ``state``, resetting it where ``episode_starts[T, B]``; ``y`` is ``[T, B, H]``."""
        starts = episode_starts.to(torch.bool)
        if x.shape[0] == 1:
            return self._single_step(x[0], reset_state(state, starts[0]))
        # Training's padded pieces have no later starts: one check instead of nonzero + tolist.
        segment_starts = (torch.nonzero(starts[1:].any(dim=1)).flatten() + 1).tolist() if starts[1:].any() else []
        outputs = []
        for begin, end in zip([0, *segment_starts], [*segment_starts, x.shape[0]]):
            state = reset_state(state, starts[begin])
            # nn.LSTM takes and returns its state as a tuple (h, c), nn.GRU as the single tensor h.
            y, rnn_state = self.rnn(x[begin:end], state if len(state) > 1 else state[0])
            state = tuple(rnn_state) if isinstance(rnn_state, tuple) else (rnn_state,)
            outputs.append(y)
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0], state

    def _single_step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One step with the cell kernel: acting runs T = 1, where nn.LSTM/nn.GRU's sequence setup costs more than
        the math (about 2.5x on CPU). Same weights, same result to float rounding."""
        new_states = []
        for layer, weights in enumerate(self.rnn.all_weights):  # [weight_ih, weight_hh, bias_ih, bias_hh] per layer
            layer_state = tuple(tensor[layer] for tensor in state)
            if len(state) == 2:
                h, c = torch.lstm_cell(x, layer_state, *weights)
                new_states.append((h, c))
            else:
                h = torch.gru_cell(x, layer_state[0], *weights)
                new_states.append((h,))
            x = h
        if self.num_layers == 1:  # acting's usual case: a view instead of a stack's copy
            return x.unsqueeze(0), tuple(part.unsqueeze(0) for part in new_states[0])
        return x.unsqueeze(0), tuple(torch.stack(parts) for parts in zip(*new_states))


class LSTMCore(_FusedCore):
    """``nn.LSTM`` core; state ``(h, c)``.

    ``forget_bias`` sets the forget-gate bias (the sum of nn.LSTM's two bias vectors). It defaults to
    :data:`DEFAULT_FORGET_BIAS`, not nn.LSTM's near-zero init: an initially open forget gate keeps the cell
    state, and its gradient, alive over long lags (Gers, Schmidhuber & Cummins 2000; Jozefowicz, Zaremba &
    Sutskever 2015). ``init="chrono"`` with
    ``t_max`` instead draws each unit's forget bias from :func:`chrono_forget_bias` and sets its input bias to
    minus that (Tallec & Ollivier 2018), in every layer.
    """

    num_state_tensors = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        forget_bias: float | None = None,
        init: str = "default",
        t_max: float | None = None,
    ) -> None:
        check_gate_init(init, t_max, forget_bias)
        super().__init__(hidden_size, num_layers)
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers)
        input_gate, forget_gate = slice(0, hidden_size), slice(hidden_size, 2 * hidden_size)
        with torch.no_grad():
            for layer in range(num_layers):
                # nn.LSTM orders the gates (input, forget, cell, output) in its bias vectors and adds its two
                # vectors: the gate biases are set in bias_ih, with bias_hh's share zeroed, so the sum is the bias.
                bias_ih, bias_hh = (getattr(self.rnn, f"{name}_l{layer}") for name in ("bias_ih", "bias_hh"))
                if init == "chrono":
                    chrono = chrono_forget_bias(hidden_size, t_max)
                    bias_ih[forget_gate], bias_ih[input_gate] = chrono, -chrono
                    bias_hh[input_gate] = 0.0
                else:
                    bias_ih[forget_gate] = DEFAULT_FORGET_BIAS if forget_bias is None else forget_bias
                bias_hh[forget_gate] = 0.0

        # Two extra input columns per layer, for the steps _forward_with_resets inserts: a reset step drives the input
        # and forget gates to exactly 0, so the state after it is zero, as after an episode start; a hold step drives
        # the forget gate to exactly 1 and the input gate to 0, so the cell state passes it unchanged. A buffer, not
        # saved: checkpoints keep nn.LSTM's parameters alone.
        gate_columns = torch.zeros(4 * hidden_size, 2)
        gate_columns[input_gate] = -SATURATED
        gate_columns[forget_gate, 0], gate_columns[forget_gate, 1] = -SATURATED, SATURATED
        self.register_buffer("gate_columns", gate_columns, persistent=False)
        self._spread: tuple[Tensor, ...] | None = None  # the last starts and their layout (_spread_layout)

    # Resets inside the sequences run in the kernel: nn.LSTM's own call per segment (see _FusedCore) would be one call
    # per episode start, and cutting training's chunks into padded pieces makes every piece a row.
    resets_in_kernel = True

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Run ``x[T, B, F]`` from ``state``, resetting it where ``episode_starts[T, B]``; ``y`` is ``[T, B, H]``."""
        starts = episode_starts.to(torch.bool)
        if x.shape[0] == 1 or not starts[1:].any():
            return super().forward(x, state, starts)
        return self._forward_with_resets(x, state, starts)

    def _forward_with_resets(self, x: Tensor, state: State, starts: Tensor) -> tuple[Tensor, State]:
        """One kernel call per layer over sequences with episode starts inside them, whatever their number.

        Before each later start of a sequence a reset step is inserted (the state after it is exactly zero, and no
        gradient crosses it), so step ``t`` of sequence ``b`` runs at ``t`` plus the resets before it; a sequence
        with fewer resets than the most ends with hold steps, which keep its cell state, so the kernel's last cell
        state is each sequence's own; its last ``h`` is read from the output at its last step. Equal to one call per
        segment to float rounding (``tests/test_cores.py``).
        """
        h, c = reset_state(state, starts[0])
        cached = self._spread
        if cached is None or cached[1].dtype != x.dtype or cached[0].shape != starts.shape or not torch.equal(
            cached[0], starts
        ):
            # Training passes one minibatch's starts every epoch: the same starts, the same layout.
            self._spread = (starts.clone(), *self._spread_layout(starts, x.dtype))
        _, kinds, position, column = self._spread
        spread = x.new_zeros(kinds.shape[0], x.shape[1], x.shape[-1]).index_put((position, column), x)
        last = position[-1], column[-1]
        final_h, final_c = [], []
        for layer, (weight_ih, weight_hh, bias_ih, bias_hh) in enumerate(self.rnn.all_weights):
            weights = [torch.cat([weight_ih, self.gate_columns], 1), weight_hh, bias_ih, bias_hh]
            spread, _, layer_c = torch.lstm(
                torch.cat([spread, kinds], -1), (h[layer : layer + 1], c[layer : layer + 1]), weights, True, 1, 0.0,
                self.training, False, False,
            )
            final_h.append(spread[last])
            final_c.append(layer_c[0])
        return spread[position, column], (torch.stack(final_h), torch.stack(final_c))

    @staticmethod
    def _spread_layout(starts: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """Where sequences with ``starts [T, B]`` run once reset steps are inserted: each step's kind ``[L, B, 2]``
        (reset, hold; neither: a step of the sequence) and the position and column of step ``t`` of sequence ``b``."""
        steps, batch = starts.shape
        later = starts.clone()
        later[0] = False
        position = torch.arange(steps, device=starts.device)[:, None] + torch.cumsum(later, 0)  # [T, B]
        length = steps + int(later.sum(0).max())
        column = torch.arange(batch, device=starts.device).expand(steps, batch)
        kinds = torch.zeros(length, batch, 2, dtype=dtype, device=starts.device)
        kinds[..., 1] = 1.0  # hold, where neither a step of the sequence nor a reset runs
        kinds[position, column, 1] = 0.0
        kinds[position[later] - 1, column[later]] = torch.tensor([1.0, 0.0], dtype=dtype, device=starts.device)
        return kinds, position, column

    def cell_state(self, state: State) -> Tensor:
        """Cell state ``c`` of the last layer, ``[B, H]``."""
        return state[1][-1]


class GRUCore(_FusedCore):
    """``nn.GRU`` core; state ``(h,)``. ``init="chrono"`` with ``t_max`` sets the update-gate biases (see below)."""

    num_state_tensors = 1

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, init: str = "default", t_max: float | None = None
    ) -> None:
        check_gate_init(init, t_max)
        super().__init__(hidden_size, num_layers)
        self.rnn = nn.GRU(input_size, hidden_size, num_layers)
        if init != "chrono":
            return
        update_gate = slice(hidden_size, 2 * hidden_size)  # nn.GRU orders its bias vectors (reset, update, new)
        with torch.no_grad():
            for layer in range(num_layers):
                # Tallec & Ollivier derive gated RNNs from h' = g * new + (1 - g) * h, whose gate g lets the input
                # in, and give g the chrono bias -log(U[1, t_max - 1]). torch's GRU is h' = (1 - z) * n + z * h:
                # its update gate z = 1 - g keeps the memory, the role of the LSTM's forget gate, and since
                # 1 - sigmoid(b) = sigmoid(-b), z's bias (the sum of bias_ih and bias_hh) is +log(U[1, t_max - 1]),
                # so a large z keeps the state. 1 - z is the GRU's input gate, so no second bias is set.
                getattr(self.rnn, f"bias_ih_l{layer}")[update_gate] = chrono_forget_bias(hidden_size, t_max)
                getattr(self.rnn, f"bias_hh_l{layer}")[update_gate] = 0.0

    def cell_state(self, state: State) -> Tensor:
        """Hidden state ``h`` of the last layer (a GRU's only memory), ``[B, H]``."""
        return state[0][-1]


class PeepholeLSTMCell(nn.Module):
    """One LSTM layer with forget gate and peephole connections (Gers, Schraudolph & Schmidhuber 2002).

    With gates ordered (input, forget, cell, output) as in nn.LSTM and ``*`` elementwise::

        i_t = sigmoid(W_i x_t + R_i h_{t-1} + p_i * c_{t-1} + b_i)
        f_t = sigmoid(W_f x_t + R_f h_{t-1} + p_f * c_{t-1} + b_f)
        c_t = f_t * c_{t-1} + i_t * tanh(W_c x_t + R_c h_{t-1} + b_c)
        o_t = sigmoid(W_o x_t + R_o h_{t-1} + p_o * c_t + b_o)
        h_t = o_t * tanh(c_t)

    The output gate peeks at the new cell state ``c_t``, which is what lets the cell time its output.
    """

    def __init__(
        self, input_size: int, hidden_size: int, forget_bias: float | None = None, init: str = "default",
        t_max: float | None = None,
    ) -> None:
        check_gate_init(init, t_max, forget_bias)
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.peephole = nn.Parameter(torch.empty(3, hidden_size))  # rows: input, forget, output gate
        bound = 1.0 / math.sqrt(hidden_size)  # nn.LSTM's init
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)
        input_gate, forget_gate = slice(0, hidden_size), slice(hidden_size, 2 * hidden_size)
        with torch.no_grad():
            if init == "chrono":  # as LSTMCore's (Tallec & Ollivier 2018)
                chrono = chrono_forget_bias(hidden_size, t_max)
                self.bias[forget_gate], self.bias[input_gate] = chrono, -chrono
            else:
                self.bias[forget_gate] = PEEPHOLE_DEFAULT_FORGET_BIAS if forget_bias is None else forget_bias

    def forward(self, x: Tensor, h: Tensor, c: Tensor, episode_starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Run ``x[T, B, F]`` from ``h, c [B, H]``; returns ``(h_all [T, B, H], h_T, c_T)``."""
        # The input projection has no recurrence: one matmul for all timesteps, outside the loop.
        projected = x @ self.weight_ih.T + self.bias  # [T, B, 4H]
        peep_input, peep_forget, peep_output = self.peephole
        keep = (~episode_starts.to(torch.bool)).to(x.dtype).unsqueeze(-1)  # [T, B, 1]
        outputs = []
        # unbind, not projected[t]: indexing's backward writes each step's gradient into a zero tensor of the whole
        # sequence, a backward pass quadratic in T (see ConvLSTMCell.forward).
        for projected_t, keep_t in zip(projected.unbind(0), keep.unbind(0)):
            h, c = h * keep_t, c * keep_t
            gate_input, gate_forget, cell_input, gate_output = (projected_t + h @ self.weight_hh.T).chunk(4, dim=-1)
            input_gate = torch.sigmoid(gate_input + peep_input * c)
            forget_gate = torch.sigmoid(gate_forget + peep_forget * c)
            c = forget_gate * c + input_gate * torch.tanh(cell_input)
            h = torch.sigmoid(gate_output + peep_output * c) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs), h, c


class PeepholeLSTMCore(_Core):
    """Stacked peephole LSTM (no fused kernel exists, so it loops over timesteps); state ``(h, c)``.

    ``forget_bias``, ``init`` and ``t_max`` initialize every layer's gate biases as :class:`LSTMCore`'s do.
    """

    num_state_tensors = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        forget_bias: float | None = None,
        init: str = "default",
        t_max: float | None = None,
    ) -> None:
        super().__init__(hidden_size, num_layers)
        self.cells = nn.ModuleList(
            PeepholeLSTMCell(input_size if layer == 0 else hidden_size, hidden_size, forget_bias, init, t_max)
            for layer in range(num_layers)
        )

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Run ``x[T, B, F]`` from ``state``, resetting it where ``episode_starts[T, B]``; ``y`` is ``[T, B, H]``."""
        h_last, c_last = [], []
        for layer, cell in enumerate(self.cells):
            x, h, c = cell(x, state[0][layer], state[1][layer], episode_starts)
            h_last.append(h)
            c_last.append(c)
        return x, (torch.stack(h_last), torch.stack(c_last))

    def cell_state(self, state: State) -> Tensor:
        """Cell state ``c`` of the last layer, ``[B, H]``."""
        return state[1][-1]


class FeedForwardCore(_Core):
    """A memoryless baseline with the core interface: ``num_layers`` tanh layers applied to each step alone.

    Its state only records the last output (so memory plots show the activations); nothing flows from one
    step to the next, so a task this core solves needs no memory.
    """

    num_state_tensors = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__(hidden_size, num_layers)
        layers: list[nn.Module] = []
        for layer in range(num_layers):
            layers += [nn.Linear(input_size if layer == 0 else hidden_size, hidden_size), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Apply the layers to every step of ``x[T, B, F]``; the state is the last step's output."""
        y = self.layers(x)  # [T, B, H]
        return y, (y[-1].unsqueeze(0).expand(self.num_layers, -1, -1).contiguous(),)

    def cell_state(self, state: State) -> Tensor:
        """The last output, ``[B, H]`` (there is no memory)."""
        return state[0][-1]


class ConvLSTMCell(nn.Module):
    """One convolutional LSTM layer with peepholes (Shi et al., NeurIPS 2015, "Convolutional LSTM Network").

    The LSTM's matrix products become convolutions ``conv`` over ``[C, H, W]`` maps, and the peepholes Hadamard
    products with per-position weights ``[C_h, H, W]``, so the memory keeps the input's spatial layout::

        i_t = sigmoid(conv(W_i, x_t) + conv(R_i, h_{t-1}) + p_i * c_{t-1} + b_i)
        f_t = sigmoid(conv(W_f, x_t) + conv(R_f, h_{t-1}) + p_f * c_{t-1} + b_f)
        c_t = f_t * c_{t-1} + i_t * tanh(conv(W_c, x_t) + conv(R_c, h_{t-1}) + b_c)
        o_t = sigmoid(conv(W_o, x_t) + conv(R_o, h_{t-1}) + p_o * c_t + b_o)
        h_t = o_t * tanh(c_t)

    One convolution computes all four gates, in nn.LSTM's order (input, forget, cell, output) along the channels.
    ``peephole=False`` drops the ``p * c`` terms. Padding keeps ``H x W``, which needs an odd ``kernel_size``.
    """

    def __init__(
        self, input_channels: int, hidden_channels: int, map_size: tuple[int, int], kernel_size: int,
        peephole: bool, forget_bias: float, init: str, t_max: float | None,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.input_conv = nn.Conv2d(input_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        # The bias is input_conv's alone: one bias per gate channel, as in the equations.
        self.hidden_conv = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2,
                                     bias=False)
        self.peephole = None
        if peephole:  # rows: input, forget, output gate
            bound = 1.0 / math.sqrt(hidden_channels)  # PeepholeLSTMCell's init
            self.peephole = nn.Parameter(torch.empty(3, hidden_channels, *map_size).uniform_(-bound, bound))
        input_gate, forget_gate = slice(0, hidden_channels), slice(hidden_channels, 2 * hidden_channels)
        with torch.no_grad():
            if init == "chrono":  # as LSTMCore's (Tallec & Ollivier 2018), one time scale per channel
                chrono = chrono_forget_bias(hidden_channels, t_max)
                self.input_conv.bias[forget_gate], self.input_conv.bias[input_gate] = chrono, -chrono
            else:
                self.input_conv.bias[forget_gate] = forget_bias

    def forward(self, x: Tensor, h: Tensor, c: Tensor, episode_starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Run ``x[T, B, C, H, W]`` from ``h, c [B, C_h, H, W]``; returns ``(h_all [T, B, C_h, H, W], h_T, c_T)``."""
        steps, batch = x.shape[:2]
        # The input-to-gates convolution has no recurrence: one call over all T * B maps, outside the loop.
        projected = self.input_conv(x.flatten(0, 1))  # [T * B, 4 C_h, H, W]
        # unbind, not projected[t]: indexing's backward writes each step's gradient into a zero tensor of the whole
        # sequence, which made the backward pass quadratic in T (80% of a training step at T = 17).
        projected_steps = projected.view(steps, batch, *projected.shape[1:]).unbind(0)  # T x [B, 4 C_h, H, W]
        keep = (~episode_starts.to(torch.bool)).to(x.dtype).view(steps, batch, 1, 1, 1).unbind(0)
        outputs = []
        for projected_t, keep_t in zip(projected_steps, keep):
            h, c = h * keep_t, c * keep_t
            gate_input, gate_forget, cell_input, gate_output = (projected_t + self.hidden_conv(h)).chunk(4, dim=1)
            if self.peephole is not None:
                gate_input = gate_input + self.peephole[0] * c
                gate_forget = gate_forget + self.peephole[1] * c
            c = torch.sigmoid(gate_forget) * c + torch.sigmoid(gate_input) * torch.tanh(cell_input)
            if self.peephole is not None:
                gate_output = gate_output + self.peephole[2] * c
            h = torch.sigmoid(gate_output) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs), h, c


class ConvLSTMCore(_Core):
    """Stacked convolutional LSTM (:class:`ConvLSTMCell`) over feature maps; state ``(h, c)``.

    ``input_size`` is the shape ``(channels, height, width)`` of the maps it reads and the argument ``hidden_size``
    the hidden channels of every layer (``hidden_channels``). It maps ``x[T, B, C, H, W]`` to
    ``y[T, B, hidden_channels, H, W]``. The state tensors are the maps flattened channel by channel,
    ``[num_layers, B, hidden_channels * H * W]``, so trainers store, index and reset them like every other core's;
    the attribute ``hidden_size`` is that width, the size of the flattened output too. ``forget_bias`` defaults to
    :data:`PEEPHOLE_DEFAULT_FORGET_BIAS` with peepholes (the runaway cell the peephole core avoids) and to
    :data:`DEFAULT_FORGET_BIAS` without; ``init="chrono"`` with ``t_max`` sets the biases as :class:`LSTMCore`'s do.
    """

    num_state_tensors = 2

    def __init__(
        self,
        input_size: tuple[int, int, int],
        hidden_size: int,
        num_layers: int = 1,
        kernel_size: int = 3,
        peephole: bool = True,
        forget_bias: float | None = None,
        init: str = "default",
        t_max: float | None = None,
    ) -> None:
        check_gate_init(init, t_max, forget_bias)
        if not isinstance(input_size, (tuple, list, torch.Size)) or len(input_size) != 3:
            raise ConfigError(
                f"core 'convlstm' reads feature maps, so its input_size must be (channels, height, width); got "
                f"{input_size!r}. Use it with image observations (a Box HxWxC), or use 'lstm' for vectors."
            )
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
                or kernel_size % 2 == 0:
            raise ConfigError(
                f"core_kwargs kernel_size={kernel_size!r}: the convlstm core needs an odd kernel size >= 1 (e.g. 3 or "
                "5), so that its padding keeps the maps' height and width"
            )
        channels, height, width = (int(size) for size in input_size)
        super().__init__(hidden_size * height * width, num_layers)
        self.hidden_channels = hidden_size
        self.map_shape = (hidden_size, height, width)  # of h and c, per sequence
        if forget_bias is None:
            forget_bias = PEEPHOLE_DEFAULT_FORGET_BIAS if peephole else DEFAULT_FORGET_BIAS
        self.cells = nn.ModuleList(
            ConvLSTMCell(channels if layer == 0 else hidden_size, hidden_size, (height, width), kernel_size,
                         peephole, forget_bias, init, t_max)
            for layer in range(num_layers)
        )

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Run ``x[T, B, C, H, W]`` from ``state``, resetting it where ``episode_starts[T, B]``; ``y`` is maps."""
        batch = x.shape[1]
        h_last, c_last = [], []
        for layer, cell in enumerate(self.cells):
            h, c = (tensor[layer].view(batch, *self.map_shape) for tensor in state)
            x, h, c = cell(x, h, c, episode_starts)
            h_last.append(h.flatten(1))
            c_last.append(c.flatten(1))
        return x, (torch.stack(h_last), torch.stack(c_last))

    def cell_state(self, state: State) -> Tensor:
        """Cell state ``c`` of the last layer, flattened channel by channel, ``[B, hidden_channels * H * W]``."""
        return state[1][-1]


_SIZE_ARGUMENTS = ("input_size", "hidden_size", "num_layers")
CORES: dict[str, type[nn.Module]] = {
    "lstm": LSTMCore,
    "gru": GRUCore,
    "peephole": PeepholeLSTMCore,
    "mlp": FeedForwardCore,
}
# Cores over feature maps [T, B, C, H, W] rather than vectors: the policy feeds them image features and pools or
# flattens their output maps before the heads.
SPATIAL_CORES: dict[str, type[nn.Module]] = {"convlstm": ConvLSTMCore}
ALL_CORES = {**CORES, **SPATIAL_CORES}


def make_core(
    kind: str, input_size: int | tuple[int, int, int], hidden_size: int, num_layers: int = 1, **kwargs: Any
) -> nn.Module:
    """Build a built-in core by name (``"lstm"``, ``"gru"``, ``"peephole"``, ``"mlp"``, ``"convlstm"``).

    ``input_size`` is the feature size, or ``(channels, height, width)`` for ``"convlstm"``; ``kwargs`` go to the core.
    """
    if kind not in ALL_CORES:
        close = difflib.get_close_matches(kind, ALL_CORES)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown core kind {kind!r}. Valid kinds: {', '.join(ALL_CORES)}.{hint} "
            "You may also pass your own core (an nn.Module following rl_lstm.cores.RecurrentCore)."
        )
    options = [name for name in inspect.signature(ALL_CORES[kind]).parameters if name not in _SIZE_ARGUMENTS]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        close = [match for name in unknown for match in difflib.get_close_matches(name, options, n=1)]
        hint = f" Did you mean {', '.join(repr(match) for match in close)}?" if close else ""
        raise ConfigError(
            f"core {kind!r} does not take {', '.join(unknown)} in core_kwargs; "
            f"its options are: {', '.join(options) or 'none'}.{hint}"
        )
    return ALL_CORES[kind](input_size, hidden_size, num_layers, **kwargs)
