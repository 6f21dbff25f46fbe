"""Recurrent cores: one sequence interface, resets at episode starts, fused kernels, peephole equations."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rl_lstm.cores import (
    CORES,
    GRUCore,
    LSTMCore,
    PeepholeLSTMCore,
    RecurrentCore,
    State,
    _FusedCore,
    make_core,
    reset_state,
)
from rl_lstm.policies import RecurrentActorCritic

KINDS = list(CORES)
RECURRENT_KINDS = [kind for kind in CORES if kind != "mlp"]
INPUT, HIDDEN, BATCH, STEPS = 3, 5, 4, 7


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def random_state(core: nn.Module, batch_size: int) -> State:
    """A non-zero state, so that a missing reset shows in the output."""
    return tuple(torch.randn_like(tensor) for tensor in core.initial_state(batch_size))


def run_step_by_step(core: nn.Module, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
    outputs = []
    for t in range(x.shape[0]):
        y, state = core(x[t : t + 1], state, episode_starts[t : t + 1])
        outputs.append(y)
    return torch.cat(outputs), state


def assert_states_close(actual: State, expected: State) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e)


# Chrono initialization (Tallec & Ollivier 2018) changes only the gate biases: the interface must hold as well.
CHRONO = {"init": "chrono", "t_max": 50}


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(
    ("kind", "core_kwargs"), [*((kind, {}) for kind in KINDS), *((kind, CHRONO) for kind in RECURRENT_KINDS)]
)
def test_sequence_in_one_call_equals_step_by_step_calls(kind: str, core_kwargs: dict, num_layers: int) -> None:
    core = make_core(kind, INPUT, HIDDEN, num_layers, **core_kwargs)
    x = torch.randn(STEPS, BATCH, INPUT)
    state = random_state(core, BATCH)
    episode_starts = torch.zeros(STEPS, BATCH, dtype=torch.bool)
    episode_starts[2, 1] = episode_starts[5, 3] = episode_starts[0, 0] = True

    y, final = core(x, state, episode_starts)
    y_steps, final_steps = run_step_by_step(core, x, state, episode_starts)

    assert y.shape == (STEPS, BATCH, HIDDEN)
    assert all(tensor.shape == (num_layers, BATCH, HIDDEN) for tensor in final)
    torch.testing.assert_close(y, y_steps)
    assert_states_close(final, final_steps)


@pytest.mark.parametrize("kind", RECURRENT_KINDS)
def test_episode_start_inside_sequence_equals_two_separate_runs(kind: str) -> None:
    core = make_core(kind, INPUT, HIDDEN, num_layers=2)
    x = torch.randn(STEPS, 1, INPUT)
    state = random_state(core, 1)
    episode_starts = torch.zeros(STEPS, 1, dtype=torch.bool)
    episode_starts[3, 0] = True

    y, final = core(x, state, episode_starts)
    y_first, _ = core(x[:3], state, torch.zeros(3, 1))
    y_second, final_second = core(x[3:], core.initial_state(1), torch.zeros(STEPS - 3, 1))

    torch.testing.assert_close(y, torch.cat([y_first, y_second]))
    assert_states_close(final, final_second)
    assert not torch.allclose(y[3:], core(x[3:], state, torch.zeros(STEPS - 3, 1))[0]), "the reset must matter"


@pytest.mark.parametrize("kind", RECURRENT_KINDS)
def test_reset_affects_only_the_sequence_whose_episode_starts(kind: str) -> None:
    core = make_core(kind, INPUT, HIDDEN)
    x = torch.randn(STEPS, 2, INPUT)
    state = random_state(core, 2)
    episode_starts = torch.zeros(STEPS, 2)
    episode_starts[4, 0] = 1.0  # float episode starts are accepted as well as bool

    y, _ = core(x, state, episode_starts)
    y_without_reset, _ = core(x, state, torch.zeros(STEPS, 2))

    torch.testing.assert_close(y[:, 1], y_without_reset[:, 1])
    torch.testing.assert_close(y[:4, 0], y_without_reset[:4, 0])
    assert not torch.allclose(y[4:, 0], y_without_reset[4:, 0])


def test_lstm_core_segmented_path_equals_nn_lstm_step_loop() -> None:
    core = LSTMCore(INPUT, HIDDEN, num_layers=2)
    x = torch.randn(STEPS, BATCH, INPUT)
    h, c = random_state(core, BATCH)
    episode_starts = torch.rand(STEPS, BATCH) < 0.3

    y, (h_final, c_final) = core(x, (h, c), episode_starts)

    outputs = []
    for t in range(STEPS):
        keep = (~episode_starts[t]).float().view(1, BATCH, 1)
        y_t, (h, c) = core.rnn(x[t : t + 1], (h * keep, c * keep))
        outputs.append(y_t)
    torch.testing.assert_close(y, torch.cat(outputs))
    torch.testing.assert_close(h_final, h)
    torch.testing.assert_close(c_final, c)


def test_gru_core_calls_its_kernel_once_per_segment_not_per_step() -> None:
    core = GRUCore(INPUT, HIDDEN)
    calls = []
    core.rnn.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    x = torch.randn(STEPS, BATCH, INPUT)
    episode_starts = torch.zeros(STEPS, BATCH, dtype=torch.bool)
    episode_starts[0] = True  # starts at t = 0 need no split

    core(x, core.initial_state(BATCH), episode_starts)
    assert calls == [STEPS]

    calls.clear()
    episode_starts[2, 0] = episode_starts[2, 3] = episode_starts[5, 1] = True
    core(x, core.initial_state(BATCH), episode_starts)
    assert calls == [2, 3, 2]


@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_core_resets_inside_one_kernel_call_per_layer_as_one_call_per_segment_would(
    num_layers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reset steps zero the state exactly; hold steps keep each sequence's own last state; the gradients are those
    of one call per segment to float rounding. Large weights and inputs: the gates still saturate."""
    core = LSTMCore(INPUT, HIDDEN, num_layers=num_layers)
    with torch.no_grad():
        for parameter in core.parameters():
            parameter.mul_(5.0)
    steps, batch = 12, 5
    x = (10 * torch.randn(steps, batch, INPUT)).requires_grad_()
    state = random_state(core, batch)
    episode_starts = torch.zeros(steps, batch, dtype=torch.bool)
    episode_starts[[3, 4, 9], 0] = True  # three starts, one right after another
    episode_starts[[0, 6], 1] = True
    episode_starts[11, 2] = True  # on the last step
    episode_starts[0, 3] = True  # none inside; column 4: none at all, from its state
    calls = []
    lstm = torch.lstm
    monkeypatch.setattr(torch, "lstm", lambda *args: calls.append(args[0].shape) or lstm(*args))

    y, (h, c) = core(x, state, episode_starts)
    assert calls == [(steps + 3, batch, INPUT + 2)] + [(steps + 3, batch, HIDDEN + 2)] * (num_layers - 1)
    y_segments, (h_segments, c_segments) = _FusedCore.forward(core, x, state, episode_starts)  # a call per segment
    assert torch.equal(y, y_segments) and torch.equal(h, h_segments) and torch.equal(c, c_segments)
    weights = torch.randn(steps, batch, HIDDEN)
    gradients = torch.autograd.grad((y * weights).sum() + c.sum(), [x, *core.parameters()])
    gradients_segments = torch.autograd.grad((y_segments * weights).sum() + c_segments.sum(), [x, *core.parameters()])
    for gradient, expected in zip(gradients, gradients_segments):
        torch.testing.assert_close(gradient, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_peephole_cell_matches_gers_schmidhuber_equations() -> None:
    """Input and forget gates peek at c_{t-1}, the output gate at c_t (Gers, Schraudolph & Schmidhuber 2002)."""
    rng = np.random.default_rng(0)
    n_in, n_hidden, steps = 2, 3, 3
    w = {gate: rng.normal(size=(n_hidden, n_in)) for gate in "ifco"}
    r = {gate: rng.normal(size=(n_hidden, n_hidden)) for gate in "ifco"}
    b = {gate: rng.normal(size=n_hidden) for gate in "ifco"}
    p = {gate: rng.normal(size=n_hidden) for gate in "ifo"}
    xs = rng.normal(size=(steps, n_in))
    h, c = rng.normal(size=n_hidden), rng.normal(size=n_hidden)

    core = PeepholeLSTMCore(n_in, n_hidden)
    cell = core.cells[0]
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(np.concatenate([w[g] for g in "ifco"])))
        cell.weight_hh.copy_(torch.tensor(np.concatenate([r[g] for g in "ifco"])))
        cell.bias.copy_(torch.tensor(np.concatenate([b[g] for g in "ifco"])))
        cell.peephole.copy_(torch.tensor(np.stack([p[g] for g in "ifo"])))
    state = (torch.tensor(h, dtype=torch.float32).view(1, 1, -1), torch.tensor(c, dtype=torch.float32).view(1, 1, -1))
    y, (h_final, c_final) = core(
        torch.tensor(xs, dtype=torch.float32).view(steps, 1, n_in), state, torch.zeros(steps, 1)
    )

    expected = []
    for x in xs:
        input_gate = sigmoid(w["i"] @ x + r["i"] @ h + p["i"] * c + b["i"])
        forget_gate = sigmoid(w["f"] @ x + r["f"] @ h + p["f"] * c + b["f"])
        c = forget_gate * c + input_gate * np.tanh(w["c"] @ x + r["c"] @ h + b["c"])
        output_gate = sigmoid(w["o"] @ x + r["o"] @ h + p["o"] * c + b["o"])
        h = output_gate * np.tanh(c)
        expected.append(h)
    np.testing.assert_allclose(y[:, 0].detach().numpy(), np.array(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_final[0, 0].detach().numpy(), c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_final[0, 0].detach().numpy(), h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_flow_to_all_parameters(kind: str) -> None:
    core = make_core(kind, INPUT, HIDDEN, num_layers=2)
    episode_starts = torch.zeros(STEPS, BATCH, dtype=torch.bool)
    episode_starts[3, 0] = True
    y, state = core(torch.randn(STEPS, BATCH, INPUT), random_state(core, BATCH), episode_starts)
    (y.pow(2).sum() + sum(tensor.pow(2).sum() for tensor in state)).backward()
    for name, parameter in core.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["lstm", "peephole"])
def test_forget_gate_bias_is_initialised_to_forget_bias(kind: str) -> None:
    core = make_core(kind, INPUT, HIDDEN, num_layers=2, forget_bias=2.5)
    forget = slice(HIDDEN, 2 * HIDDEN)
    for layer in range(2):
        if kind == "lstm":
            bias = getattr(core.rnn, f"bias_ih_l{layer}") + getattr(core.rnn, f"bias_hh_l{layer}")
        else:
            bias = core.cells[layer].bias
        torch.testing.assert_close(bias[forget], torch.full((HIDDEN,), 2.5))


def test_cell_state_is_last_layer_memory() -> None:
    lstm, gru = LSTMCore(INPUT, HIDDEN, num_layers=2), GRUCore(INPUT, HIDDEN, num_layers=2)
    lstm_state, gru_state = random_state(lstm, BATCH), random_state(gru, BATCH)
    assert torch.equal(lstm.cell_state(lstm_state), lstm_state[1][-1])
    assert torch.equal(gru.cell_state(gru_state), gru_state[0][-1])


def test_unknown_kind_error_lists_valid_kinds_and_close_match() -> None:
    with pytest.raises(ValueError, match="lstn") as error:
        make_core("lstn", INPUT, HIDDEN)
    message = str(error.value)
    assert all(kind in message for kind in KINDS)
    assert "Did you mean 'lstm'" in message


class ElmanCore(nn.Module):
    """A user's own core: a plain tanh RNN following the core interface, with a per-step loop."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.cell = nn.RNNCell(input_size, hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return (torch.zeros(1, batch_size, self.hidden_size, device=device),)

    def cell_state(self, state: State) -> Tensor:
        return state[0][-1]

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        outputs = []
        for t in range(x.shape[0]):
            (h,) = reset_state(state, episode_starts[t])
            state = (self.cell(x[t], h[0]).unsqueeze(0),)
            outputs.append(state[0][0])
        return torch.stack(outputs), state


@pytest.mark.parametrize("core_argument", ["factory", "instance"])
@pytest.mark.parametrize("shared_core", [False, True])
def test_user_defined_core_works_in_policy(core_argument: str, shared_core: bool) -> None:
    observation_space = gym.spaces.Box(-1.0, 1.0, (INPUT,))
    core = ElmanCore if core_argument == "factory" else ElmanCore(INPUT, HIDDEN)
    policy = RecurrentActorCritic(
        observation_space, gym.spaces.Discrete(3), core=core, hidden_size=HIDDEN, shared_core=shared_core
    )
    assert isinstance(policy.actor_core, RecurrentCore)
    assert len(policy.initial_state(BATCH)) == (1 if shared_core else 2)
    obs = torch.randn(STEPS, BATCH, INPUT)
    episode_starts = torch.zeros(STEPS, BATCH)
    episode_starts[3, 2] = 1.0

    state = policy.initial_state(BATCH)
    actions, log_probs, values = [], [], []
    with torch.no_grad():
        for t in range(STEPS):
            action, log_prob, value, state = policy.act(obs[t], state, episode_starts[t])
            actions.append(action)
            log_probs.append(log_prob)
            values.append(value)
        log_prob, _, value = policy.evaluate_actions(
            obs, torch.stack(actions), policy.initial_state(BATCH), episode_starts
        )
    torch.testing.assert_close(log_prob, torch.stack(log_probs))
    torch.testing.assert_close(value, torch.stack(values))
    assert policy.memory(state).shape == (BATCH, HIDDEN)


def test_feed_forward_core_has_no_memory() -> None:
    core = make_core("mlp", INPUT, HIDDEN)
    x = torch.randn(STEPS, 3, INPUT)
    y, _ = core(x, random_state(core, 3), torch.zeros(STEPS, 3))
    shuffled_history, _ = core(x.flip(0), core.initial_state(3), torch.ones(STEPS, 3))
    torch.testing.assert_close(y, shuffled_history.flip(0))


def test_a_core_option_it_does_not_take_is_an_error_listing_its_options() -> None:
    message = "core .gru. does not take forget_bias in core_kwargs; its options are: init, t_max"
    with pytest.raises(ValueError, match=message):
        make_core("gru", INPUT, HIDDEN, forget_bias=2.0)


def test_lstm_core_lays_out_starts_changed_in_place_anew() -> None:
    """The layout of the last starts is kept for the next call with the same starts: not for a tensor changed since."""
    core = LSTMCore(INPUT, HIDDEN)
    x, state = torch.randn(STEPS, BATCH, INPUT), random_state(core, BATCH)
    episode_starts = torch.zeros(STEPS, BATCH, dtype=torch.bool)
    episode_starts[3, 0] = True
    core(x, state, episode_starts)
    episode_starts[3, 0], episode_starts[5, 2] = False, True
    y, _ = core(x, state, episode_starts)
    assert torch.equal(y, _FusedCore.forward(core, x, state, episode_starts)[0])
