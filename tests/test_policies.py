"""RecurrentActorCritic: every observation and action space, sequence/step agreement, masking, clipping."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from rl_lstm.cores import DEFAULT_FORGET_BIAS
from rl_lstm.policies import RecurrentActorCritic, map_observation

STEPS, BATCH, HIDDEN = 5, 3, 8

OBSERVATION_SPACES = {
    "box_vector": spaces.Box(-1.0, 1.0, (4,)),
    "box_image": spaces.Box(0, 255, (16, 16, 3), dtype=np.uint8),
    "discrete": spaces.Discrete(5, start=-2),
    "multi_discrete": spaces.MultiDiscrete([3, 2, 4]),
    "multi_binary": spaces.MultiBinary(6),
    "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2, 2)))),
    "dict": spaces.Dict({"position": spaces.Box(-1.0, 1.0, (2,)), "cue": spaces.MultiBinary(3)}),
}
ACTION_SPACES = {
    "discrete": spaces.Discrete(4, start=1),
    "multi_discrete": spaces.MultiDiscrete([3, 2]),
    "box": spaces.Box(-1.0, 1.0, (2,)),
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make_policy(
    observation_space: gym.Space, action_space: gym.Space, shared_core: bool = False, **kwargs
) -> RecurrentActorCritic:
    return RecurrentActorCritic(
        observation_space,
        action_space,
        hidden_size=HIDDEN,
        shared_core=shared_core,
        net_arch_pi=(16,),
        net_arch_vf=(16,),
        **kwargs,
    )


def sample_sequences(space: gym.Space, steps: int = STEPS, batch: int = BATCH):  # noqa: ANN201
    """Observations with leading dims [T, B], laid out as a vector env returns them step by step."""
    sequence_space = batch_space(batch_space(space, batch), steps)
    sequence_space.seed(0)
    return sequence_space.sample()


def at_step(obs, t: int):  # noqa: ANN201
    return map_observation(lambda array: array[t], obs)


def episode_starts_with_reset_inside() -> torch.Tensor:
    episode_starts = torch.zeros(STEPS, BATCH, dtype=torch.bool)
    episode_starts[0] = True
    episode_starts[2, 1] = True
    return episode_starts


def roll_out(policy: RecurrentActorCritic, obs, episode_starts: torch.Tensor, **act_kwargs):  # noqa: ANN201
    """Act step by step, carrying the state: stacked actions, log-probs and values over [T, B]."""
    state = policy.initial_state(BATCH)
    actions, log_probs, values = [], [], []
    with torch.no_grad():
        for t in range(STEPS):
            action, log_prob, value, state = policy.act(at_step(obs, t), state, episode_starts[t], **act_kwargs)
            actions.append(action)
            log_probs.append(log_prob)
            values.append(value)
    return torch.stack(actions), torch.stack(log_probs), torch.stack(values), state


@pytest.mark.parametrize("action_name", list(ACTION_SPACES))
@pytest.mark.parametrize("observation_name", list(OBSERVATION_SPACES))
def test_act_returns_actions_in_the_action_space(observation_name: str, action_name: str) -> None:
    action_space = ACTION_SPACES[action_name]
    policy = make_policy(OBSERVATION_SPACES[observation_name], action_space)
    obs = sample_sequences(OBSERVATION_SPACES[observation_name])

    actions, log_probs, values, state = roll_out(policy, obs, episode_starts_with_reset_inside())

    assert actions.shape == (STEPS, BATCH, *action_space.shape)
    assert log_probs.shape == values.shape == (STEPS, BATCH)
    assert torch.isfinite(log_probs).all() and torch.isfinite(values).all()
    for action in actions.reshape(STEPS * BATCH, *action_space.shape).numpy():
        assert action_space.contains(action.astype(action_space.dtype)), action


@pytest.mark.parametrize("shared_core", [False, True])
@pytest.mark.parametrize("action_name", list(ACTION_SPACES))
@pytest.mark.parametrize("observation_name", list(OBSERVATION_SPACES))
def test_evaluate_actions_over_sequences_matches_act_step_by_step(
    observation_name: str, action_name: str, shared_core: bool
) -> None:
    policy = make_policy(OBSERVATION_SPACES[observation_name], ACTION_SPACES[action_name], shared_core)
    obs = sample_sequences(OBSERVATION_SPACES[observation_name])
    episode_starts = episode_starts_with_reset_inside()
    actions, log_probs, values, _ = roll_out(policy, obs, episode_starts, clip=False)

    log_prob, entropy, value = policy.evaluate_actions(obs, actions, policy.initial_state(BATCH), episode_starts)

    torch.testing.assert_close(log_prob, log_probs)
    torch.testing.assert_close(value, values)
    assert entropy.shape == (STEPS, BATCH) and (entropy > 0).all()
    log_prob.mean().backward()  # the training pass is differentiable end to end
    assert policy.action_head.linear.weight.grad is not None


@pytest.mark.parametrize("shared_core", [False, True])
def test_policy_state_is_actor_core_state_then_critic_core_state(shared_core: bool) -> None:
    policy = make_policy(OBSERVATION_SPACES["box_vector"], ACTION_SPACES["discrete"], shared_core, num_layers=2)
    state = policy.initial_state(BATCH)
    assert len(state) == (2 if shared_core else 4)
    assert all(tensor.shape == (2, BATCH, HIDDEN) and not tensor.any() for tensor in state)
    obs = sample_sequences(OBSERVATION_SPACES["box_vector"])
    _, _, _, state = roll_out(policy, obs, episode_starts_with_reset_inside())
    assert torch.equal(policy.memory(state), state[1][-1])


@pytest.mark.parametrize("shared_core", [False, True])
def test_episode_start_resets_actor_and_critic_state(shared_core: bool) -> None:
    policy = make_policy(OBSERVATION_SPACES["box_vector"], ACTION_SPACES["box"], shared_core)
    obs, starts = torch.randn(BATCH, 4), torch.ones(BATCH, dtype=torch.bool)
    carried_state = tuple(torch.randn_like(tensor) for tensor in policy.initial_state(BATCH))
    with torch.no_grad():
        after_reset = policy.act(obs, carried_state, starts, deterministic=True)
        from_zero = policy.act(obs, policy.initial_state(BATCH), starts, deterministic=True)
        continued = policy.act(obs, carried_state, ~starts, deterministic=True)
    for reset, zero in zip(after_reset[:3], from_zero[:3]):
        torch.testing.assert_close(reset, zero)
    for reset, zero in zip(after_reset[3], from_zero[3]):
        torch.testing.assert_close(reset, zero)
    assert not torch.allclose(continued[2], from_zero[2]), "without an episode start the carried state matters"


@pytest.mark.parametrize("core", ["lstm", "gru", "peephole"])
def test_predict_values_equals_values_from_act(core: str) -> None:
    policy = make_policy(OBSERVATION_SPACES["dict"], ACTION_SPACES["box"], core=core)
    obs = at_step(sample_sequences(OBSERVATION_SPACES["dict"]), 0)
    state = tuple(torch.randn_like(tensor) for tensor in policy.initial_state(BATCH))
    episode_starts = torch.tensor([True, False, False])
    with torch.no_grad():
        _, _, values, _ = policy.act(obs, state, episode_starts)
        torch.testing.assert_close(policy.predict_values(obs, state, episode_starts), values)


def test_masked_discrete_actions_are_never_sampled_and_have_zero_probability() -> None:
    policy = make_policy(OBSERVATION_SPACES["box_vector"], spaces.Discrete(4, start=1))
    batch = 256
    obs = torch.randn(batch, 4)
    masks = torch.tensor([False, True, False, True]).expand(batch, 4)  # only actions 2 and 4 allowed
    with torch.no_grad():
        actions, log_prob, _, _ = policy.act(obs, policy.initial_state(batch), torch.ones(batch), action_masks=masks)
        assert set(actions.tolist()) == {2, 4}
        assert torch.isfinite(log_prob).all()

        for action in (1, 3):
            masked_log_prob, entropy, _ = policy.evaluate_actions(
                obs[None],
                torch.full((1, batch), action),
                policy.initial_state(batch),
                torch.ones(1, batch),
                masks[None],
            )
            assert (masked_log_prob < -1e6).all()
        assert (entropy <= np.log(2) + 1e-6).all() and (entropy > 0).all()


def test_masked_multi_discrete_actions_are_never_sampled() -> None:
    policy = make_policy(OBSERVATION_SPACES["box_vector"], spaces.MultiDiscrete([3, 2]))
    batch = 256
    # dimension 0 may only take 2, dimension 1 may take 0 or 1: masks concatenated over dimensions
    masks = torch.tensor([False, False, True, True, True]).expand(batch, 5)
    with torch.no_grad():
        obs, state = torch.randn(batch, 4), policy.initial_state(batch)
        actions, _, _, _ = policy.act(obs, state, torch.ones(batch), action_masks=masks)
    assert (actions[:, 0] == 2).all()
    assert set(actions[:, 1].tolist()) == {0, 1}


def test_action_masks_of_wrong_size_are_rejected() -> None:
    policy = make_policy(OBSERVATION_SPACES["box_vector"], spaces.MultiDiscrete([3, 2]))
    with pytest.raises(ValueError, match="5"):
        policy.act(torch.randn(2, 4), policy.initial_state(2), torch.ones(2), action_masks=torch.ones(2, 3))


def other_actions(space: gym.Space, mode: torch.Tensor) -> list[torch.Tensor]:
    """Every action of a discrete space, or Gaussian perturbations of the mode of a Box, for each batch element."""
    if isinstance(space, spaces.Discrete):
        return [torch.full_like(mode, action) for action in range(space.start, space.start + space.n)]
    if isinstance(space, spaces.MultiDiscrete):
        return [torch.tensor(action).expand_as(mode) for action in np.ndindex(*space.nvec)]
    return [mode + 0.1 * torch.randn_like(mode) for _ in range(50)]


@pytest.mark.parametrize("action_name", list(ACTION_SPACES))
def test_deterministic_act_returns_the_most_probable_action(action_name: str) -> None:
    action_space = ACTION_SPACES[action_name]
    policy = make_policy(OBSERVATION_SPACES["box_vector"], action_space, ortho_init=False)
    obs, starts, state = torch.randn(BATCH, 4), torch.ones(BATCH), policy.initial_state(BATCH)
    with torch.no_grad():
        mode, mode_log_prob, _, _ = policy.act(obs, state, starts, deterministic=True)
        again, _, _, _ = policy.act(obs, state, starts, deterministic=True)
        assert torch.equal(mode, again)
        for candidate in other_actions(action_space, mode):
            log_prob, _, _ = policy.evaluate_actions(obs[None], candidate[None], state, starts[None])
            assert (log_prob[0] <= mode_log_prob + 1e-6).all()


def test_box_actions_are_clipped_to_bounds_with_log_prob_of_the_unclipped_sample() -> None:
    action_space = spaces.Box(-0.1, 0.2, (3,))
    policy = make_policy(OBSERVATION_SPACES["box_vector"], action_space)
    batch = 64
    obs, starts, state = torch.randn(batch, 4), torch.ones(batch), policy.initial_state(batch)
    with torch.no_grad():
        torch.manual_seed(1)
        clipped, clipped_log_prob, _, _ = policy.act(obs, state, starts)
        torch.manual_seed(1)
        raw, raw_log_prob, _, _ = policy.act(obs, state, starts, clip=False)

    assert (clipped >= -0.1).all() and (clipped <= 0.2).all()
    assert ((raw < -0.1) | (raw > 0.2)).any(), "with std 1 some samples leave the bounds"
    torch.testing.assert_close(clipped, policy.clip_actions(raw))
    torch.testing.assert_close(clipped_log_prob, raw_log_prob)


def test_box_action_masks_are_rejected() -> None:
    policy = make_policy(OBSERVATION_SPACES["box_vector"], ACTION_SPACES["box"])
    with pytest.raises(ValueError, match="Box"):
        policy.act(torch.randn(2, 4), policy.initial_state(2), torch.ones(2), action_masks=torch.ones(2, 2))


@pytest.mark.parametrize(
    "space", [spaces.Text(5), spaces.Sequence(spaces.Discrete(2)), spaces.Tuple((spaces.Discrete(2), spaces.Text(3)))]
)
def test_unsupported_observation_space_raises_naming_it(space: gym.Space) -> None:
    with pytest.raises(ValueError, match="Unsupported observation space") as error:
        make_policy(space, ACTION_SPACES["discrete"])
    assert "Text" in str(error.value) or "Sequence" in str(error.value)
    assert "MultiDiscrete" in str(error.value) and "Dict" in str(error.value)


@pytest.mark.parametrize("space", [spaces.MultiBinary(3), spaces.Dict({"a": spaces.Discrete(2)})])
def test_unsupported_action_space_raises_naming_it(space: gym.Space) -> None:
    with pytest.raises(ValueError, match="Unsupported action space") as error:
        make_policy(OBSERVATION_SPACES["box_vector"], space)
    assert type(space).__name__ in str(error.value)
    assert "Discrete, MultiDiscrete, Box" in str(error.value)


def test_unknown_activation_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="tanh, relu"):
        make_policy(OBSERVATION_SPACES["box_vector"], ACTION_SPACES["discrete"], activation="gelu")


def test_ortho_init_gives_small_policy_head_and_unit_gain_value_head() -> None:
    policy = make_policy(OBSERVATION_SPACES["box_vector"], spaces.Discrete(4))
    action_weight, value_weight = policy.action_head.linear.weight, policy.value_head.weight  # [4, 16], [1, 16]
    torch.testing.assert_close(action_weight @ action_weight.T, 1e-4 * torch.eye(4))
    torch.testing.assert_close(value_weight @ value_weight.T, torch.eye(1))
    assert not policy.action_head.linear.bias.any()
    rnn = policy.actor_core.rnn  # ortho init leaves the core's own init, and its forget bias, alone
    forget_bias = rnn.bias_ih_l0[HIDDEN : 2 * HIDDEN] + rnn.bias_hh_l0[HIDDEN : 2 * HIDDEN]
    torch.testing.assert_close(forget_bias, torch.full((HIDDEN,), DEFAULT_FORGET_BIAS))


def test_image_observations_go_through_a_cnn_and_numpy_input_is_accepted() -> None:
    space = OBSERVATION_SPACES["box_image"]
    policy = make_policy(space, ACTION_SPACES["discrete"])
    assert any(isinstance(module, torch.nn.Conv2d) for module in policy.encoder.modules())
    obs = np.stack([space.sample() for _ in range(BATCH)])  # [B, H, W, C] uint8 numpy
    with torch.no_grad():
        _, _, values, _ = policy.act(obs, policy.initial_state(BATCH), np.ones(BATCH, dtype=bool))
    assert values.shape == (BATCH,)
