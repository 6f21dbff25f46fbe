"""Chrono initialization (Tallec & Ollivier 2018): gate biases log U[1, t_max - 1], checked options, trainers."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_checkpoints import PPO, REINFORCE
from test_cores import INPUT
from torch import Tensor, nn

from agents.ppo import RecurrentPPO
from agents.reinforce import RecurrentReinforce
from rl_lstm.cores import DEFAULT_FORGET_BIAS, INITS, make_core
from rl_lstm.errors import ConfigError
from rl_lstm.policies import RecurrentActorCritic

CHRONO_KINDS = ["lstm", "peephole", "gru"]
HIDDEN = 256  # enough units for the draw's spread to show
T_MAX = 100


def summed_biases(core: nn.Module, layer: int) -> Tensor:
    """The gate biases a layer adds to its pre-activations: nn.LSTM/nn.GRU add their two bias vectors."""
    if hasattr(core, "rnn"):
        return getattr(core.rnn, f"bias_ih_l{layer}") + getattr(core.rnn, f"bias_hh_l{layer}")
    return core.cells[layer].bias


def chrono_gates(core: nn.Module, layer: int, hidden: int) -> tuple[Tensor, Tensor | None]:
    """``(bias of the gate that keeps memory, bias of the gate that writes it)``; a GRU has no separate writer."""
    bias = summed_biases(core, layer).detach()
    keep = bias[hidden : 2 * hidden]  # LSTM: forget gate of (i, f, g, o); GRU: update gate z of (r, z, n)
    return keep, None if isinstance(getattr(core, "rnn", None), nn.GRU) else bias[:hidden]


@pytest.mark.parametrize("kind", CHRONO_KINDS)
def test_chrono_biases_are_log_uniform_in_every_layer_with_the_input_bias_their_negative(kind: str) -> None:
    torch.manual_seed(0)
    core = make_core(kind, INPUT, HIDDEN, num_layers=2, init="chrono", t_max=T_MAX)
    for layer in range(2):
        keep, write = chrono_gates(core, layer, HIDDEN)
        assert keep.min() >= 0.0 and keep.max() <= math.log(T_MAX - 1) + 1e-6, layer
        # exp(b) is uniform on [1, t_max - 1]: its mean is the interval's middle and it fills the interval.
        time_scales = keep.exp()
        assert abs(time_scales.mean().item() - T_MAX / 2) < 0.1 * T_MAX, layer
        assert time_scales.min() < 1 + 0.05 * T_MAX and time_scales.max() > T_MAX - 1 - 0.05 * T_MAX, layer
        if write is not None:
            torch.testing.assert_close(write, -keep, rtol=0, atol=0)
    layer_draws = [chrono_gates(core, layer, HIDDEN)[0] for layer in range(2)]
    assert not torch.equal(*layer_draws), "each layer draws its own biases"


def test_gru_chrono_sets_the_update_gate_only() -> None:
    torch.manual_seed(0)
    default = make_core("gru", INPUT, HIDDEN)
    torch.manual_seed(0)
    chrono = make_core("gru", INPUT, HIDDEN, init="chrono", t_max=T_MAX)
    update = slice(HIDDEN, 2 * HIDDEN)
    for name, parameter in default.rnn.named_parameters():
        other = dict(chrono.rnn.named_parameters())[name]
        if name.startswith("bias"):
            # Reset and candidate biases keep nn.GRU's init; the update gate's sum is the chrono bias.
            torch.testing.assert_close(other[: HIDDEN], parameter[: HIDDEN])
            torch.testing.assert_close(other[2 * HIDDEN :], parameter[2 * HIDDEN :])
        else:
            torch.testing.assert_close(other, parameter)
    assert (summed_biases(chrono, 0)[update] >= 0).all() and chrono.rnn.bias_hh_l0[update].abs().sum() == 0


def test_the_default_init_is_nn_lstm_with_the_default_forget_bias() -> None:
    torch.manual_seed(3)
    core = make_core("lstm", INPUT, 8, num_layers=2)
    torch.manual_seed(3)
    reference = nn.LSTM(INPUT, 8, 2)
    forget = slice(8, 16)
    for name, parameter in reference.named_parameters():
        ours = getattr(core.rnn, name).detach()
        if name.startswith("bias"):
            ours, parameter = ours.clone(), parameter.detach().clone()
            ours[forget] = parameter[forget] = 0.0
        torch.testing.assert_close(ours, parameter, rtol=0, atol=0)
    for layer in range(2):
        torch.testing.assert_close(summed_biases(core, layer)[forget], torch.full((8,), DEFAULT_FORGET_BIAS))
    assert make_core("lstm", INPUT, 8, init="default", forget_bias=2.0).rnn.bias_ih_l0[forget].eq(2.0).all()


@pytest.mark.parametrize("kind", CHRONO_KINDS)
def test_seeding_repeats_the_chrono_draw(kind: str) -> None:
    draws = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        draws.append(summed_biases(make_core(kind, INPUT, 16, num_layers=2, init="chrono", t_max=T_MAX), 1))
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


@pytest.mark.parametrize("kind", CHRONO_KINDS)
def test_a_chrono_core_keeps_a_cue_far_longer_than_a_default_one_at_initialization(kind: str) -> None:
    """Two runs that differ only in a cue at t = 0, then 1000 steps of zero input: how much of the difference stays."""
    steps = 1000
    remaining = {}
    for init, extra in (("default", {}), ("chrono", {"t_max": 2000})):
        torch.manual_seed(0)
        core = make_core(kind, 1, 32, init=init, **extra).double()  # float64: what is left is not rounding noise
        cue = torch.zeros(steps + 1, 2, 1, dtype=torch.float64)
        cue[0, 0], cue[0, 1] = 1.0, -1.0  # [T, B, F]: the two runs see opposite cues
        with torch.no_grad():
            y, state = core(cue, core.initial_state(2), torch.zeros(steps + 1, 2))
            memory = core.cell_state(state)  # [B, H]
        remaining[init] = (memory[0] - memory[1]).abs().max().item()
    # Chrono's slowest units forget over ~t_max steps; the default forget gates (sigmoid(3) = 0.95 for the LSTM,
    # sigmoid(1) = 0.73 for the peephole cell) within hundreds or tens.
    assert remaining["chrono"] > 5e-5, remaining
    assert remaining["chrono"] > 5 * remaining["default"], remaining


def test_ppo_orthogonal_init_leaves_the_chrono_biases() -> None:
    torch.manual_seed(0)
    policy = RecurrentActorCritic(
        gym.spaces.Box(-1.0, 1.0, (INPUT,)), gym.spaces.Discrete(2), hidden_size=HIDDEN, ortho_init=True,
        core_kwargs={"init": "chrono", "t_max": T_MAX},
    )
    for core in (policy.actor_core, policy.critic_core):
        keep, write = chrono_gates(core, 0, HIDDEN)
        assert keep.min() >= 0.0 and keep.max() <= math.log(T_MAX - 1) + 1e-6
        assert keep.exp().max() > T_MAX / 2, "the draw spans the interval, not a constant set by another init"
        torch.testing.assert_close(write, -keep, rtol=0, atol=0)


# ---- errors ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CHRONO_KINDS)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"init": "chronos", "t_max": 10}, r"init='chronos' is not a gate initialization; allowed: default, chrono"),
        ({"t_max": 100}, r"t_max=100 is set without init: chrono"),
        ({"init": "default", "t_max": 100}, r"t_max=100 is set without init: chrono"),
        ({"init": "chrono"}, r"init: chrono needs t_max.*>= 2; got t_max=None"),
        ({"init": "chrono", "t_max": 1}, r"init: chrono needs t_max.*>= 2; got t_max=1"),
        ({"init": "chrono", "t_max": "long"}, r"init: chrono needs t_max.*got t_max='long'"),
    ],
)
def test_a_bad_init_option_is_a_config_error_naming_the_key_and_what_is_allowed(
    kind: str, options: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_core(kind, INPUT, HIDDEN, **options)


@pytest.mark.parametrize("kind", ["lstm", "peephole"])
def test_chrono_with_forget_bias_is_an_error_naming_both(kind: str) -> None:
    with pytest.raises(ConfigError, match=r"both init: chrono and forget_bias=3.0; chrono .* sets the forget-gate"):
        make_core(kind, INPUT, HIDDEN, init="chrono", t_max=100, forget_bias=3.0)


def test_a_misspelt_core_option_lists_the_options_and_the_close_match() -> None:
    with pytest.raises(ConfigError, match=r"does not take tmax.*options are: forget_bias, init, t_max\. Did you mean "
                                          r"'t_max'\?"):
        make_core("lstm", INPUT, HIDDEN, init="chrono", tmax=100)
    assert INITS == ("default", "chrono")


# ---- through the trainers' config -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("agent_class", "hyperparams"), [(RecurrentPPO, PPO), (RecurrentReinforce, REINFORCE)],
                         ids=["ppo", "reinforce"])
def test_a_chrono_agent_builds_trains_saves_and_loads_its_biases(tmp_path: Path, agent_class, hyperparams) -> None:
    agent = agent_class("rl_lstm/TMaze-v0", seed=0, hidden_size=16,
                        core_kwargs={"init": "chrono", "t_max": 500}, **hyperparams)
    keep, write = chrono_gates(agent.policy.actor_core, 0, 16)
    assert keep.min() >= 0.0 and keep.max() <= math.log(499) + 1e-6 and torch.equal(write, -keep)
    agent.learn(200, progress_bar=False)
    assert agent.iterations >= 2
    agent.save(tmp_path / "agent.pt")
    loaded = agent_class.load(tmp_path / "agent.pt")
    assert loaded.config.core_kwargs == {"init": "chrono", "t_max": 500}
    cores = [name for name in ("actor_core", "critic_core") if getattr(agent.policy, name) is not None]
    assert "actor_core" in cores
    for core in cores:  # the critic has no core of its own where actor and critic share one
        trained, restored = getattr(agent.policy, core), getattr(loaded.policy, core)
        torch.testing.assert_close(summed_biases(restored, 0), summed_biases(trained, 0), rtol=0, atol=0)
    observations, _ = loaded.env.reset(seed=1)
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0],
                                  agent.predict(observations, deterministic=True)[0])
    agent.close()
    loaded.close()
