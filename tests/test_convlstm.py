"""The convolutional LSTM core (Shi et al. 2015): its equations, the core interface, the image policy, the trainers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces
from test_cores import assert_states_close, random_state, run_step_by_step
from test_export import _play_alongside

from agents.ppo import RecurrentPPO
from agents.reinforce import RecurrentReinforce
from rl_lstm.cores import (
    DEFAULT_FORGET_BIAS,
    PEEPHOLE_DEFAULT_FORGET_BIAS,
    ConvLSTMCore,
    RecurrentCore,
    make_core,
)
from rl_lstm.errors import ConfigError
from rl_lstm.evaluation import evaluate_agent, plot_memory
from rl_lstm.export import export_policy
from rl_lstm.policies import RecurrentActorCritic

MAPS = (2, 4, 5)  # input channels, height, width
CHANNELS, BATCH, STEPS = 3, 4, 6
PIXEL_TMAZE = "rl_lstm/PixelPassiveTMaze-v0"
TINY_PPO = dict(num_envs=2, n_steps=8, seq_len=4, batch_size=8, n_epochs=1, hidden_size=2, net_arch_pi=[8],
                net_arch_vf=[8], env_kwargs={"length": 3})


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def mixed_episode_starts() -> torch.Tensor:
    """Episode starts at t = 0 for one copy and inside the sequence for two others."""
    episode_starts = torch.zeros(STEPS, BATCH, dtype=torch.bool)
    episode_starts[0, 0] = episode_starts[2, 1] = episode_starts[4, 3] = True
    return episode_starts


def shi_reference(core: ConvLSTMCore, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[list, torch.Tensor]:
    """Shi et al.'s equations for one layer, gate by gate, each with its own convolutions: ``(h_t list, c_T)``."""
    cell = core.cells[0]
    padding = cell.input_conv.padding
    weights_x = dict(zip("ifco", cell.input_conv.weight.chunk(4)))
    weights_h = dict(zip("ifco", cell.hidden_conv.weight.chunk(4)))
    biases = dict(zip("ifco", cell.input_conv.bias.chunk(4)))
    peepholes = dict(zip("ifo", cell.peephole)) if cell.peephole is not None else dict.fromkeys("ifo", 0.0)

    def pre_activation(gate: str, x_t: torch.Tensor) -> torch.Tensor:
        return (F.conv2d(x_t, weights_x[gate], biases[gate], padding=padding)
                + F.conv2d(h, weights_h[gate], padding=padding))

    outputs = []
    for x_t in x:
        input_gate = torch.sigmoid(pre_activation("i", x_t) + peepholes["i"] * c)
        forget_gate = torch.sigmoid(pre_activation("f", x_t) + peepholes["f"] * c)
        c = forget_gate * c + input_gate * torch.tanh(pre_activation("c", x_t))
        output_gate = torch.sigmoid(pre_activation("o", x_t) + peepholes["o"] * c)
        h = output_gate * torch.tanh(c)
        outputs.append(h)
    return outputs, c


@pytest.mark.parametrize("peephole", [True, False])
def test_convlstm_matches_shi_et_al_equations_step_by_step(peephole: bool) -> None:
    """In float64, to 1e-6: gates i, f, o peek at c (i, f at c_{t-1}, o at c_t) through per-position weights."""
    core = make_core("convlstm", MAPS, CHANNELS, kernel_size=3, peephole=peephole).double()
    with torch.no_grad():  # random biases and peepholes, not the initialization's constants
        for parameter in core.parameters():
            parameter.normal_(0.0, 0.5)
    x = torch.randn(STEPS, BATCH, *MAPS, dtype=torch.float64)
    h, c = (torch.randn(BATCH, CHANNELS, *MAPS[1:], dtype=torch.float64) for _ in range(2))

    y, (h_final, c_final) = core(x, (h.flatten(1)[None], c.flatten(1)[None]), torch.zeros(STEPS, BATCH))
    expected, expected_c = shi_reference(core, x, h, c)

    torch.testing.assert_close(y, torch.stack(expected), rtol=0, atol=1e-6)
    torch.testing.assert_close(h_final[0], expected[-1].flatten(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(c_final[0], expected_c.flatten(1), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("num_layers", "peephole"), [(1, True), (2, True), (2, False)])
def test_sequence_in_one_call_equals_step_by_step_calls_across_episode_starts(num_layers: int, peephole: bool) -> None:
    core = make_core("convlstm", MAPS, CHANNELS, num_layers, peephole=peephole)
    x = torch.randn(STEPS, BATCH, *MAPS)
    state = random_state(core, BATCH)
    episode_starts = mixed_episode_starts()

    y, final = core(x, state, episode_starts)
    y_steps, final_steps = run_step_by_step(core, x, state, episode_starts)

    assert y.shape == (STEPS, BATCH, CHANNELS, *MAPS[1:])
    torch.testing.assert_close(y, y_steps)
    assert_states_close(final, final_steps)


def test_episode_start_resets_only_its_sequence_to_the_zero_state() -> None:
    core = make_core("convlstm", MAPS, CHANNELS, num_layers=2)
    x = torch.randn(STEPS, BATCH, *MAPS)
    state = random_state(core, BATCH)
    episode_starts = mixed_episode_starts()

    y, _ = core(x, state, episode_starts)
    y_without_resets, _ = core(x, state, torch.zeros(STEPS, BATCH))
    y_fresh, _ = core(x[2:, 1:2], core.initial_state(1), torch.zeros(STEPS - 2, 1))

    torch.testing.assert_close(y[:, 2], y_without_resets[:, 2])  # copy 2 has no episode start
    torch.testing.assert_close(y[:2, 1], y_without_resets[:2, 1])
    torch.testing.assert_close(y[2:, 1], y_fresh[:, 0])  # from its start on, copy 1 runs as from a zero state
    assert not torch.allclose(y[2:, 1], y_without_resets[2:, 1]), "the reset must matter"


def test_state_is_flat_maps_with_batch_on_dim_1_and_the_memory_is_the_last_layers_cell() -> None:
    core = make_core("convlstm", MAPS, CHANNELS, num_layers=2)
    assert isinstance(core, RecurrentCore)
    state = random_state(core, BATCH)
    positions = MAPS[1] * MAPS[2]
    assert core.hidden_size == CHANNELS * positions and core.map_shape == (CHANNELS, *MAPS[1:])
    assert all(tensor.shape == (2, BATCH, CHANNELS * positions) for tensor in state)
    assert torch.equal(core.cell_state(state), state[1][-1])


def test_input_convolution_runs_once_over_the_sequence_and_only_the_hidden_one_per_step() -> None:
    core = make_core("convlstm", MAPS, CHANNELS)
    input_calls, hidden_calls = [], []
    cell = core.cells[0]
    cell.input_conv.register_forward_hook(lambda module, inputs, output: input_calls.append(inputs[0].shape))
    cell.hidden_conv.register_forward_hook(lambda module, inputs, output: hidden_calls.append(inputs[0].shape))

    core(torch.randn(STEPS, BATCH, *MAPS), core.initial_state(BATCH), mixed_episode_starts())

    assert input_calls == [torch.Size([STEPS * BATCH, *MAPS])]
    assert len(hidden_calls) == STEPS
    assert cell.hidden_conv.weight.shape[0] == 4 * CHANNELS, "one convolution computes all four gates"


def test_gradients_flow_to_all_parameters() -> None:
    core = make_core("convlstm", MAPS, CHANNELS, num_layers=2)
    y, state = core(torch.randn(STEPS, BATCH, *MAPS), random_state(core, BATCH), mixed_episode_starts())
    (y.pow(2).sum() + sum(tensor.pow(2).sum() for tensor in state)).backward()
    for name, parameter in core.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def forget_biases(core: ConvLSTMCore, layer: int) -> torch.Tensor:
    return core.cells[layer].input_conv.bias.detach()[CHANNELS : 2 * CHANNELS]


@pytest.mark.parametrize(
    ("core_kwargs", "expected"),
    [({}, PEEPHOLE_DEFAULT_FORGET_BIAS), ({"peephole": False}, DEFAULT_FORGET_BIAS), ({"forget_bias": 2.5}, 2.5)],
)
def test_forget_gate_bias_defaults_like_the_other_cores_and_follows_forget_bias(
    core_kwargs: dict, expected: float
) -> None:
    """With peepholes the peephole core's default (1), without them the LSTM's (3)."""
    core = make_core("convlstm", MAPS, CHANNELS, num_layers=2, **core_kwargs)
    for layer in range(2):
        torch.testing.assert_close(forget_biases(core, layer), torch.full((CHANNELS,), expected))
    assert (core.cells[0].peephole is None) == (core_kwargs.get("peephole") is False)


def test_chrono_init_draws_one_time_scale_per_channel_and_the_input_bias_is_its_negative() -> None:
    t_max, channels = 100, 256
    core = make_core("convlstm", MAPS, channels, init="chrono", t_max=t_max)
    bias = core.cells[0].input_conv.bias.detach()
    forget, write = bias[channels : 2 * channels], bias[:channels]
    assert forget.min() >= 0.0 and forget.max() <= math.log(t_max - 1) + 1e-6
    assert abs(forget.exp().mean().item() - t_max / 2) < 0.1 * t_max
    torch.testing.assert_close(write, -forget, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("input_size", "core_kwargs", "message"),
    [
        (MAPS, {"kernel_size": 4}, "odd kernel size"),
        (8, {}, r"\(channels, height, width\)"),
        (MAPS, {"init": "chrono", "t_max": 50, "forget_bias": 2.0}, "drop forget_bias"),
        (MAPS, {"kernel": 3}, "Did you mean 'kernel_size'"),
    ],
)
def test_bad_options_are_errors_saying_what_is_allowed(input_size, core_kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_core("convlstm", input_size, CHANNELS, **core_kwargs)


@pytest.mark.parametrize(
    ("space", "encoder_options", "map_size"),
    [
        (spaces.Box(0, 255, (6, 10, 3), np.uint8), {}, (6, 10)),
        (spaces.Box(0, 255, (6, 10, 3), np.uint8), {"image_encoder_stride": 2}, (3, 5)),
        (spaces.Box(-1.0, 1.0, (5, 5, 2), np.float32), {"image_encoder_channels": 0}, (5, 5)),
        (spaces.Box(0, 255, (2, 6, 10, 3), np.uint8), {}, (6, 10)),  # two stacked frames
    ],
)
@pytest.mark.parametrize("image_head", ["flatten", "pool"])
def test_policy_reads_uint8_float_and_stacked_images_as_maps(space, encoder_options: dict, map_size: tuple,
                                                             image_head: str) -> None:
    policy = RecurrentActorCritic(space, spaces.Discrete(3), core="convlstm", hidden_size=CHANNELS,
                                  image_head=image_head, **encoder_options)
    assert policy.actor_core.map_shape == (CHANNELS, *map_size)
    observations = torch.as_tensor(np.stack([space.sample() for _ in range(STEPS * BATCH)])).view(
        STEPS, BATCH, *space.shape)
    episode_starts = mixed_episode_starts()
    log_prob, entropy, values = policy.evaluate_actions(observations, torch.zeros(STEPS, BATCH), policy.initial_state(
        BATCH), episode_starts)
    assert log_prob.shape == entropy.shape == values.shape == (STEPS, BATCH)
    # Acting one step at a time gives the values of the sequence pass.
    state = policy.initial_state(BATCH)
    for t in range(STEPS):
        _, _, step_values, state = policy.act(observations[t], state, episode_starts[t])
        torch.testing.assert_close(step_values, values[t])


def test_policy_takes_the_core_as_a_name_an_instance_or_its_class() -> None:
    space = spaces.Box(0, 255, (4, 6, 3), np.uint8)
    instance = ConvLSTMCore((16, 4, 6), CHANNELS)
    for core in ("convlstm", instance, ConvLSTMCore):
        policy = RecurrentActorCritic(space, spaces.Discrete(2), core=core, hidden_size=CHANNELS)
        assert policy.actor_core.map_shape == (CHANNELS, 4, 6)
        _, _, values, _ = policy.act(np.zeros((2, 4, 6, 3), np.uint8), policy.initial_state(2), np.ones(2, bool))
        assert values.shape == (2,)


def test_policy_pixels_are_scaled_only_for_uint8_images() -> None:
    uint8 = RecurrentActorCritic(spaces.Box(0, 255, (4, 4, 1), np.uint8), spaces.Discrete(2), core="convlstm",
                                 image_encoder_channels=0)
    floats = RecurrentActorCritic(spaces.Box(0.0, 255.0, (4, 4, 1), np.float32), spaces.Discrete(2),
                                  core="convlstm", image_encoder_channels=0)
    image = torch.full((1, 4, 4, 1), 255)
    torch.testing.assert_close(uint8.encoder(image.to(torch.uint8)), torch.ones(1, 1, 4, 4))
    torch.testing.assert_close(floats.encoder(image.float()), torch.full((1, 1, 4, 4), 255.0))


@pytest.mark.parametrize(
    ("space", "options", "message"),
    [
        (spaces.Box(-1.0, 1.0, (4,), np.float32), {}, "reads images"),
        (spaces.Discrete(3), {}, "reads images"),
        (spaces.Box(0, 255, (6, 6, 3), np.uint8), {"mlp_encoder": (16,)}, "drop mlp_encoder"),
        (spaces.Box(0, 255, (6, 6, 3), np.uint8), {"image_head": "max"}, "flatten, pool"),
        (spaces.Box(0, 255, (6, 6, 3), np.uint8), {"image_encoder_channels": 0, "image_encoder_stride": 2},
         "image_encoder_channels > 0"),
    ],
)
def test_policy_errors_name_the_problem_and_the_fix(space: spaces.Space, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RecurrentActorCritic(space, spaces.Discrete(2), core="convlstm", **options)


@pytest.mark.parametrize("agent_class", [RecurrentPPO, RecurrentReinforce])
def test_trainers_learn_save_load_and_predict_with_the_convlstm_core(agent_class: type, tmp_path: Path) -> None:
    options = TINY_PPO if agent_class is RecurrentPPO else dict(num_envs=2, hidden_size=2, env_kwargs={"length": 3})
    agent = agent_class(PIXEL_TMAZE, core="convlstm", seed=0, **options).learn(64, progress_bar=False)
    assert isinstance(agent.policy.actor_core, ConvLSTMCore)
    agent.save(tmp_path / "agent")
    loaded = agent_class.load(tmp_path / "agent")
    observations = np.stack([agent.observation_space.sample() for _ in range(3)])
    actions, state = agent.predict(observations, episode_start=np.ones(3, dtype=bool), deterministic=True)
    loaded_actions, loaded_state = loaded.predict(observations, episode_start=np.ones(3, dtype=bool),
                                                  deterministic=True)
    np.testing.assert_array_equal(actions, loaded_actions)
    for tensor, loaded_tensor in zip(state, loaded_state):
        np.testing.assert_array_equal(tensor, loaded_tensor)
    assert evaluate_agent(loaded, num_episodes=2).num_episodes == 2
    agent.close()
    loaded.close()


def test_image_options_are_config_keys_kept_by_save_and_load(tmp_path: Path) -> None:
    agent = RecurrentPPO(PIXEL_TMAZE, core="convlstm", seed=0, image_encoder_channels=4, image_encoder_stride=2,
                         image_head="pool", **TINY_PPO)
    assert agent.policy.actor_head.mode == "pool"
    assert agent.policy.actor_core.map_shape[0] == TINY_PPO["hidden_size"]
    agent.save(tmp_path / "agent")
    loaded = RecurrentPPO.load(tmp_path / "agent")
    assert (loaded.config.image_encoder_channels, loaded.config.image_encoder_stride, loaded.config.image_head) == (
        4, 2, "pool")
    assert loaded.policy.actor_head.mode == "pool"
    agent.close()
    loaded.close()


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_exported_convlstm_policy_equals_the_policy_step_by_step(format: str, tmp_path: Path) -> None:
    agent = RecurrentPPO(PIXEL_TMAZE, core="convlstm", shared_core=False, num_layers=2, **TINY_PPO)
    exported = export_policy(agent, tmp_path / f"policy.{format}", format)
    assert _play_alongside(agent, exported.path, format, num_envs=3) > 3
    agent.close()


def test_plot_memory_draws_the_cell_channels(tmp_path: Path) -> None:
    agent = RecurrentPPO(PIXEL_TMAZE, core="convlstm", **TINY_PPO)
    path = plot_memory(agent, tmp_path / "memory.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    agent.close()


@pytest.mark.parametrize(
    ("action", "env_wrappers"),
    [("discrete", []), ("box", []), ("discrete", [{"gymnasium.wrappers:DtypeObservation": {"dtype": "float32"}}])],
)
def test_ppo_trains_the_convlstm_on_an_image_env_it_did_not_write(action: str, env_wrappers: list) -> None:
    """A third-party env's 8x8x3 uint8 images, with Discrete or Box actions, and as float32 images via a wrapper."""
    agent = RecurrentPPO("foreign_envs:foreign/Spaces-v0", core="convlstm", env_wrappers=env_wrappers,
                         env_kwargs={"observation": "image", "action": action},
                         **{key: value for key, value in TINY_PPO.items() if key != "env_kwargs"})
    assert agent.policy.encoder.scale == (1.0 / 255.0 if not env_wrappers else 1.0)
    agent.learn(32, progress_bar=False)
    assert agent.num_timesteps >= 32
    agent.close()
