"""Recurrent actor-critic built from gymnasium spaces: encoder -> recurrent core(s) -> policy and value heads.

Observations enter as arrays or tensors with leading dims (``[B, ...]`` when acting, ``[T, B, ...]`` when
training); a Dict observation is a dict of such arrays, a Tuple observation a tuple of them (the layout
gymnasium's vector envs return). ``RecurrentActorCritic.preprocess`` moves them to the module's device;
every method calls it, so numpy observations can be passed directly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Categorical, Normal

from rl_lstm.cores import SPATIAL_CORES, State, make_core
from rl_lstm.errors import ConfigError

Observation = Tensor | np.ndarray | dict[str, Any] | tuple[Any, ...]

# Finite, unlike -inf, so masked logits keep gradients NaN-free; exp(-1e8) is exactly 0 in float32.
MASKED_LOGIT = -1e8
SUPPORTED_OBSERVATION_SPACES = "Box (vector, or HxWxC uint8 image), Discrete, MultiDiscrete, MultiBinary, Tuple, Dict"
SUPPORTED_ACTION_SPACES = "Discrete, MultiDiscrete, Box"
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def map_observation(fn: Callable[[Any], Any], obs: Observation) -> Observation:
    """Apply ``fn`` to every array of an observation, recursing into dicts (Dict) and tuples (Tuple)."""
    if isinstance(obs, Mapping):
        return {key: map_observation(fn, value) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(map_observation(fn, value) for value in obs)
    return fn(obs)


def mlp(input_size: int, layer_sizes: Sequence[int], activation: str) -> tuple[nn.Sequential, int]:
    """Linear layers each followed by ``activation``; returns the network and its output size."""
    layers: list[nn.Module] = []
    for size in layer_sizes:
        layers += [nn.Linear(input_size, size), ACTIVATIONS[activation]()]
        input_size = size
    return nn.Sequential(*layers), input_size


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """SB3's init: orthogonal weights with ``gain`` and zero biases for every linear and conv layer."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.zeros_(layer.bias)


# ---------------------------------------------------------------------------------------------------------------
# Observation encoders: each maps observations [..., *event_shape] to features [..., out_features].


def is_image_space(space: spaces.Space) -> bool:
    """True for HxWxC uint8 Box spaces with bounds 0..255, and for k of them stacked (kxHxWxC, from frame_stack)."""
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) in (3, 4)
        and space.dtype == np.uint8
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
    )


class FlattenEncoder(nn.Module):
    """Box vectors and MultiBinary: the values as floats, event dims flattened."""

    def __init__(self, event_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.event_ndim = len(event_shape)
        self.out_features = int(np.prod(event_shape))

    def forward(self, obs: Tensor) -> Tensor:
        """``[..., *event_shape]`` -> ``[..., out_features]``."""
        return obs.float().reshape(*obs.shape[: obs.dim() - self.event_ndim], self.out_features)


class OneHotEncoder(nn.Module):
    """Discrete and MultiDiscrete: one one-hot vector per dimension, concatenated."""

    def __init__(self, nvec: np.ndarray, start: np.ndarray) -> None:
        super().__init__()
        self.event_ndim = nvec.ndim
        sizes = nvec.reshape(-1)
        first_columns = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.register_buffer("offsets", torch.as_tensor(first_columns - start.reshape(-1), dtype=torch.long))
        self.out_features = int(sizes.sum())

    def forward(self, obs: Tensor) -> Tensor:
        """``[..., *nvec.shape]`` integer values -> ``[..., sum(nvec)]`` concatenated one-hots."""
        lead = obs.shape[: obs.dim() - self.event_ndim]
        columns = obs.long().reshape(*lead, -1) + self.offsets  # [..., D]
        return torch.zeros(*lead, self.out_features, device=obs.device).scatter_(-1, columns, 1.0)


class ImageEncoder(nn.Module):
    """HxWxC uint8 images: a small NatureCNN-like network on pixels scaled to [0, 1].

    Padded 3x3 stride-2 convolutions instead of NatureCNN's 8x8/4x4 kernels, so that small images (8x8 and up)
    keep a spatial map. k stacked frames (kxHxWxC) enter as one image of k*C channels, as DQN stacks Atari frames.
    """

    def __init__(self, image_shape: tuple[int, ...], out_features: int = 128) -> None:
        super().__init__()
        *stack, height, width, channels = image_shape
        self.event_ndim = len(image_shape)
        channels *= int(np.prod(stack))
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            cnn_size = self.cnn(torch.zeros(1, channels, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(cnn_size, out_features), nn.ReLU())
        self.out_features = out_features

    def forward(self, obs: Tensor) -> Tensor:
        """``[..., (k,) H, W, C]`` uint8 -> ``[..., out_features]``."""
        lead, frames = channels_first(obs, self.event_ndim)
        return self.linear(self.cnn(frames.float() / 255.0)).reshape(*lead, self.out_features)


def channels_first(obs: Tensor, event_ndim: int) -> tuple[torch.Size, Tensor]:
    """Images ``[..., (k,) H, W, C]`` as one batch of maps ``[N, k*C, H, W]``, and the leading dims ``...``."""
    lead = obs.shape[: obs.dim() - event_ndim]
    frames = obs.reshape(-1, *obs.shape[len(lead) :]).movedim(-1, -3)  # [N, (k,) C, H, W]
    return lead, frames.flatten(1, -3)


def is_image_like_space(space: spaces.Space) -> bool:
    """True for Box spaces shaped like images, HxWxC or kxHxWxC, of any dtype: what a convolutional core can read."""
    return isinstance(space, spaces.Box) and len(space.shape) in (3, 4)


class ImageMapEncoder(nn.Module):
    """Images as feature maps for a convolutional core (ConvLSTM): ``[..., (k,) H, W, C]`` -> ``[..., C', H', W']``.

    uint8 images in 0..255 are scaled to [0, 1]; float images are taken as they are. With ``channels`` > 0 a padded
    3x3 convolution of that many channels and ``stride`` (2 halves the map) and a ReLU come first; with 0 the core
    reads the pixels themselves. Unlike :class:`ImageEncoder` nothing is flattened, so the core's memory keeps the
    image's layout. k stacked frames enter as one image of k*C channels.
    """

    def __init__(self, space: spaces.Box, channels: int, stride: int) -> None:
        super().__init__()
        *stack, height, width, image_channels = space.shape
        self.event_ndim = len(space.shape)
        self.scale = 1.0 / 255.0 if is_image_space(space) else 1.0
        image_channels *= int(np.prod(stack))
        self.conv: nn.Module = nn.Identity()
        if channels > 0:
            self.conv = nn.Sequential(nn.Conv2d(image_channels, channels, 3, stride=stride, padding=1), nn.ReLU())
        with torch.no_grad():
            self.out_shape = tuple(self.conv(torch.zeros(1, image_channels, height, width)).shape[1:])

    def forward(self, obs: Tensor) -> Tensor:
        """``[..., (k,) H, W, C]`` images -> ``[..., *out_shape]`` feature maps."""
        lead, frames = channels_first(obs, self.event_ndim)
        return self.conv(frames.float() * self.scale).reshape(*lead, *self.out_shape)


IMAGE_HEADS = ("flatten", "pool")


class MapHead(nn.Module):
    """A convolutional core's output maps ``[..., C, H, W]`` as the heads' input vector ``[..., out_features]``.

    ``"flatten"`` keeps every position (a head can read where in the image the memory holds something);
    ``"pool"`` averages each channel over the map (C features, whatever the image size).
    """

    def __init__(self, map_shape: tuple[int, int, int], mode: str) -> None:
        super().__init__()
        if mode not in IMAGE_HEADS:
            raise ConfigError(f"image_head={mode!r} is not a map head; allowed: {', '.join(IMAGE_HEADS)}")
        self.mode = mode
        self.out_features = int(np.prod(map_shape)) if mode == "flatten" else map_shape[0]

    def forward(self, maps: Tensor) -> Tensor:
        """``[..., C, H, W]`` -> ``[..., out_features]``."""
        return maps.flatten(-3) if self.mode == "flatten" else maps.mean(dim=(-2, -1))


class CompositeEncoder(nn.Module):
    """Tuple and Dict: one encoder per part, features concatenated in the space's order."""

    def __init__(self, keys: Sequence[int | str], encoders: Sequence[nn.Module]) -> None:
        super().__init__()
        self.keys = list(keys)
        self.parts = nn.ModuleList(encoders)
        self.out_features = sum(encoder.out_features for encoder in encoders)

    def forward(self, obs: Observation) -> Tensor:
        """Dict or tuple of part observations ``[..., *part_shape]`` -> ``[..., out_features]``."""
        return torch.cat([encoder(obs[key]) for key, encoder in zip(self.keys, self.parts)], dim=-1)


def make_encoder(space: spaces.Space) -> nn.Module:
    """The encoder for an observation space; raises ValueError for spaces it cannot encode."""
    if isinstance(space, spaces.Box):
        return ImageEncoder(space.shape) if is_image_space(space) else FlattenEncoder(space.shape)
    if isinstance(space, spaces.Discrete):
        return OneHotEncoder(np.array(space.n), np.array(space.start))
    if isinstance(space, spaces.MultiDiscrete):
        return OneHotEncoder(space.nvec, space.start)
    if isinstance(space, spaces.MultiBinary):
        return FlattenEncoder(space.shape)
    if isinstance(space, spaces.Tuple):
        return CompositeEncoder(range(len(space.spaces)), [make_encoder(part) for part in space.spaces])
    if isinstance(space, spaces.Dict):
        return CompositeEncoder(list(space.spaces), [make_encoder(part) for part in space.spaces.values()])
    raise ConfigError(
        f"Unsupported observation space {space}. Supported: {SUPPORTED_OBSERVATION_SPACES}. "
        "Wrap the env to convert its observations, e.g. with gymnasium.wrappers.FlattenObservation."
    )


def make_map_encoder(
    space: spaces.Space, mlp_encoder: Sequence[int], channels: int, stride: int
) -> ImageMapEncoder:
    """The encoder in front of a convolutional core; a ConfigError for spaces and options it cannot take."""
    if not is_image_like_space(space):
        raise ConfigError(
            f"A convolutional core (convlstm) reads images, but the observation space is {space}. It takes a Box "
            "HxWxC (uint8 0..255 or float) or kxHxWxC; use core 'lstm' for other observations."
        )
    if mlp_encoder:
        raise ConfigError(
            f"mlp_encoder={list(mlp_encoder)} flattens the features a convolutional core reads as maps; drop "
            "mlp_encoder (set image_encoder_channels and image_encoder_stride instead)"
        )
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 0:
        raise ConfigError(f"image_encoder_channels must be an integer >= 0 (0: no convolution), got {channels!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ConfigError(f"image_encoder_stride must be an integer >= 1, got {stride!r}")
    if stride > 1 and channels == 0:
        raise ConfigError(
            f"image_encoder_stride={stride} needs the encoder's convolution: set image_encoder_channels > 0"
        )
    return ImageMapEncoder(space, channels, stride)


# ---------------------------------------------------------------------------------------------------------------
# Action distributions: one interface (log_prob, entropy, sample, mode) over actions shaped like the space's
# samples with leading dims, [..., *event_shape]. log_prob and entropy sum over the action's dimensions.


class ActionDistribution:
    """Converts between actions ``[..., *event_shape]`` and the flat ``[..., D]`` the distribution works on."""

    def __init__(self, event_shape: tuple[int, ...]) -> None:
        self.event_shape = event_shape

    def flat(self, actions: Tensor) -> Tensor:
        """``[..., *event_shape]`` -> ``[..., D]``."""
        return actions.reshape(*actions.shape[: actions.dim() - len(self.event_shape)], -1)

    def unflat(self, flat_actions: Tensor) -> Tensor:
        """``[..., D]`` -> ``[..., *event_shape]``."""
        return flat_actions.reshape(*flat_actions.shape[:-1], *self.event_shape)


class CategoricalDistribution(ActionDistribution):
    """Independent categoricals, one per action dimension (Discrete is the one-dimensional case)."""

    def __init__(self, logits: Tensor, start: Tensor, event_shape: tuple[int, ...]) -> None:
        super().__init__(event_shape)
        # The log-probabilities straight from one fused log_softmax: torch.distributions.Categorical normalizes with
        # logsumexp and recomputes a softmax for the entropy, several kernels each, which cost more than the math
        # at these sizes (a tenth of a PPO minibatch's overhead). Same values to float rounding.
        self.log_probs = logits.log_softmax(-1)  # [..., D, K], padded categories
        self.start = start

    @property
    def categorical(self) -> Categorical:
        """The same distribution as a ``torch.distributions.Categorical``, over the padded categories."""
        return Categorical(logits=self.log_probs, validate_args=False)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-probability of ``actions [..., *event_shape]``, ``[...]``."""
        choices = (self.flat(actions).long() - self.start).unsqueeze(-1)  # [..., D, 1]
        return self.log_probs.gather(-1, choices).squeeze(-1).sum(-1)

    def entropy(self) -> Tensor:
        """Entropy, ``[...]``; masked actions have probability exp(-1e8) = 0 and add nothing."""
        return -(self.log_probs.exp() * self.log_probs).sum((-2, -1))

    def sample(self) -> Tensor:
        """Sampled actions ``[..., *event_shape]``."""
        return self.unflat(self.categorical.sample() + self.start)

    def mode(self) -> Tensor:
        """Most probable actions ``[..., *event_shape]``."""
        return self.unflat(self.log_probs.argmax(-1) + self.start)


class GaussianDistribution(ActionDistribution):
    """Diagonal Gaussian."""

    def __init__(self, mean: Tensor, log_std: Tensor, event_shape: tuple[int, ...]) -> None:
        super().__init__(event_shape)
        self.normal = Normal(mean, log_std.exp().expand_as(mean), validate_args=False)  # as Categorical's

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-density of ``actions [..., *event_shape]``, ``[...]``."""
        return self.normal.log_prob(self.flat(actions).float()).sum(-1)

    def entropy(self) -> Tensor:
        """Entropy, ``[...]``."""
        return self.normal.entropy().sum(-1)

    def sample(self) -> Tensor:
        """Sampled actions ``[..., *event_shape]``, not clipped to the space's bounds."""
        return self.unflat(self.normal.sample())

    def mode(self) -> Tensor:
        """Mean actions ``[..., *event_shape]``."""
        return self.unflat(self.normal.mean)


class CategoricalHead(nn.Module):
    """Discrete / MultiDiscrete actions: all dimensions' logits from one linear layer."""

    def __init__(self, latent_size: int, nvec: np.ndarray, start: np.ndarray) -> None:
        super().__init__()
        self.event_shape = tuple(nvec.shape)
        sizes = [int(size) for size in nvec.reshape(-1)]
        self.num_logits = sum(sizes)
        self.linear = nn.Linear(latent_size, self.num_logits)
        # One batched Categorical over [..., D, max(sizes)] beats a Python list of D Categoricals; pad_index maps
        # each padded slot to its flat logit, or to an appended constant masked logit where a dimension is shorter.
        first_logits = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pad_index = [
            [first + k if k < size else self.num_logits for k in range(max(sizes))]
            for first, size in zip(first_logits, sizes)
        ]
        self.register_buffer("pad_index", torch.as_tensor(pad_index, dtype=torch.long).flatten())
        self.needs_padding = len(set(sizes)) > 1  # Discrete, and MultiDiscrete of equal sizes, only reshape
        self.register_buffer("start", torch.as_tensor(start.reshape(-1), dtype=torch.long))

    def forward(self, latent: Tensor, action_masks: Tensor | None = None) -> CategoricalDistribution:
        """Distribution for ``latent [..., latent_size]``; ``action_masks [..., sum(nvec)]`` marks allowed actions."""
        return self.distribution(self.linear(latent), action_masks)

    def distribution(self, logits: Tensor, action_masks: Tensor | None = None) -> CategoricalDistribution:
        """Distribution for flat ``logits [..., sum(nvec)]`` computed elsewhere (e.g. by evolved output units)."""
        if action_masks is not None:
            action_masks = torch.as_tensor(action_masks, device=logits.device).to(torch.bool)
            if action_masks.shape[-1] != self.num_logits:
                raise ConfigError(
                    f"action_masks has {action_masks.shape[-1]} entries per step; this action space needs "
                    f"{self.num_logits} (for MultiDiscrete, the masks of all dimensions concatenated)."
                )
            logits = torch.where(action_masks, logits, MASKED_LOGIT)
        lead = logits.shape[:-1]
        padded = logits
        if self.needs_padding:
            padded = torch.cat([logits, logits.new_full((*lead, 1), MASKED_LOGIT)], dim=-1)[..., self.pad_index]
        return CategoricalDistribution(padded.reshape(*lead, len(self.start), -1), self.start, self.event_shape)

    def clip(self, actions: Tensor) -> Tensor:
        """Categorical samples are always valid actions."""
        return actions


class GaussianHead(nn.Module):
    """Box actions: a diagonal Gaussian whose mean depends on the latent and whose log std is one parameter."""

    def __init__(self, latent_size: int, space: spaces.Box, log_std_init: float) -> None:
        super().__init__()
        self.event_shape = tuple(space.shape)
        self.linear = nn.Linear(latent_size, int(np.prod(space.shape)))
        self.log_std = nn.Parameter(torch.full((int(np.prod(space.shape)),), float(log_std_init)))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))

    def forward(self, latent: Tensor, action_masks: Tensor | None = None) -> GaussianDistribution:
        """Distribution for ``latent [..., latent_size]``."""
        return self.distribution(self.linear(latent), action_masks)

    def distribution(self, mean: Tensor, action_masks: Tensor | None = None) -> GaussianDistribution:
        """Distribution around ``mean [..., D]`` computed elsewhere (e.g. by evolved output units)."""
        if action_masks is not None:
            raise ConfigError("Action masks apply to Discrete and MultiDiscrete action spaces, not to Box.")
        return GaussianDistribution(mean, self.log_std, self.event_shape)

    def clip(self, actions: Tensor) -> Tensor:
        """Actions clipped into the Box bounds."""
        return torch.clamp(actions, self.low, self.high)


def make_action_head(space: spaces.Space, latent_size: int, log_std_init: float) -> CategoricalHead | GaussianHead:
    """The distribution head for an action space; raises ValueError for spaces it cannot act in."""
    if isinstance(space, spaces.Discrete):
        return CategoricalHead(latent_size, np.array(space.n), np.array(space.start))
    if isinstance(space, spaces.MultiDiscrete):
        return CategoricalHead(latent_size, space.nvec, space.start)
    if isinstance(space, spaces.Box):
        return GaussianHead(latent_size, space, log_std_init)
    raise ConfigError(f"Unsupported action space {space}. Supported: {SUPPORTED_ACTION_SPACES}.")


# ---------------------------------------------------------------------------------------------------------------


CoreSpec = str | nn.Module | Callable[..., nn.Module]


def build_core(
    core: CoreSpec, input_size: int | tuple[int, ...], hidden_size: int, num_layers: int, core_kwargs: dict
) -> nn.Module:
    """A core from a kind name, a ready core instance, or a factory called like ``make_core`` without the kind."""
    if isinstance(core, str):
        return make_core(core, input_size, hidden_size, num_layers, **core_kwargs)
    if isinstance(core, nn.Module):
        return core
    return core(input_size, hidden_size, num_layers, **core_kwargs)


class RecurrentActorCritic(nn.Module):
    """Recurrent actor-critic: observation encoder -> recurrent core(s) -> MLPs -> action distribution and value.

    Args:
        observation_space: the env's single observation space.
        action_space: the env's single action space (Discrete, MultiDiscrete or Box).
        core: ``"lstm"``, ``"gru"``, ``"peephole"``, ``"mlp"`` or ``"convlstm"``; or a core instance, or a factory
            ``factory(input_size, hidden_size, num_layers, **core_kwargs)``, following ``rl_lstm.cores.RecurrentCore``.
            A separate critic gets a deep copy of a core instance.
        hidden_size: units per core layer.
        num_layers: stacked core layers.
        core_kwargs: extra constructor arguments of the core, e.g. ``{"forget_bias": 1.0}``.
        shared_core: one core feeds actor and critic (both losses train it); else each has its own (the default,
            like sb3-contrib's ``enable_critic_lstm``).
        net_arch_pi: hidden layer sizes of the MLP between core and action head.
        net_arch_vf: hidden layer sizes of the MLP between core and value head.
        activation: ``"tanh"`` or ``"relu"``, for all MLPs.
        ortho_init: SB3's orthogonal init (gain sqrt(2) for encoder and MLPs, 0.01 for the action head, 1 for the
            value head); cores keep their own init.
        mlp_encoder: hidden layer sizes of an MLP applied to the encoded observation before the core.
        log_std_init: initial log standard deviation of Box actions (0.0: std 1, as SB3).
        image_encoder_channels: with a convolutional core (``"convlstm"``, or a core instance with ``map_shape``):
            channels of the 3x3 convolution between the image and the core; 0 feeds the core the pixels.
        image_encoder_stride: that convolution's stride (2 halves the image's height and width).
        image_head: with a convolutional core, how its output maps reach the MLPs: ``"flatten"`` (every position)
            or ``"pool"`` (each channel's mean over the map).

    A convolutional core takes image observations (a Box HxWxC, uint8 or float, or kxHxWxC) as feature maps
    (:class:`ImageMapEncoder`), and :class:`MapHead` turns its output maps into the MLPs' input.

    The policy state is the actor core's state tuple followed by the critic core's (only the actor's with a shared
    core): a flat tuple of tensors each ``[num_layers, B, hidden_size]``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        core: CoreSpec = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        core_kwargs: dict[str, Any] | None = None,
        shared_core: bool = False,
        net_arch_pi: Sequence[int] = (64,),
        net_arch_vf: Sequence[int] = (64,),
        activation: str = "tanh",
        ortho_init: bool = True,
        mlp_encoder: Sequence[int] = (),
        log_std_init: float = 0.0,
        image_encoder_channels: int = 16,
        image_encoder_stride: int = 1,
        image_head: str = "flatten",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"Unknown activation {activation!r}. Valid: {', '.join(ACTIVATIONS)}.")
        self.observation_space = observation_space
        self.action_space = action_space
        # A convolutional core by name, as an instance (its maps' shape) or as its class used as the factory.
        spatial = (core in SPATIAL_CORES if isinstance(core, str)
                   else hasattr(core, "map_shape") or core in SPATIAL_CORES.values())
        features_size: int | tuple[int, ...]
        if spatial:
            self.encoder = make_map_encoder(observation_space, mlp_encoder, image_encoder_channels,
                                            image_encoder_stride)
            self.encoder_mlp, features_size = nn.Sequential(), self.encoder.out_shape
        else:
            self.encoder = make_encoder(observation_space)
            self.encoder_mlp, features_size = mlp(self.encoder.out_features, mlp_encoder, activation)

        core_kwargs = core_kwargs or {}
        self.actor_core = build_core(core, features_size, hidden_size, num_layers, core_kwargs)
        self.critic_core: nn.Module | None = None
        if not shared_core:
            self.critic_core = (
                copy.deepcopy(self.actor_core)
                if isinstance(core, nn.Module)
                else build_core(core, features_size, hidden_size, num_layers, core_kwargs)
            )
        self.num_actor_state_tensors = len(self.actor_core.initial_state(1))

        # Vector cores' outputs go to the MLPs as they are; a convolutional core's maps are flattened or pooled.
        self.actor_head: nn.Module = nn.Identity()
        self.critic_head: nn.Module = nn.Identity()
        actor_size, critic_size = self.actor_core.hidden_size, (self.critic_core or self.actor_core).hidden_size
        if spatial:
            self.actor_head = MapHead(self.actor_core.map_shape, image_head)
            self.critic_head = MapHead((self.critic_core or self.actor_core).map_shape, image_head)
            actor_size, critic_size = self.actor_head.out_features, self.critic_head.out_features
        self.pi_mlp, latent_pi_size = mlp(actor_size, net_arch_pi, activation)
        self.vf_mlp, latent_vf_size = mlp(critic_size, net_arch_vf, activation)
        self.action_head = make_action_head(action_space, latent_pi_size, log_std_init)
        self.value_head = nn.Linear(latent_vf_size, 1)
        if ortho_init:
            for module in (self.encoder, self.encoder_mlp, self.pi_mlp, self.vf_mlp):
                orthogonal_init(module, math.sqrt(2))
            orthogonal_init(self.action_head, 0.01)
            orthogonal_init(self.value_head, 1.0)

    @property
    def resets_in_kernel(self) -> bool:
        """Whether every core resets its state inside one kernel call over sequences (rl_lstm.buffers)."""
        cores = [self.actor_core] if self.critic_core is None else [self.actor_core, self.critic_core]
        return all(getattr(core, "resets_in_kernel", False) for core in cores)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.value_head.weight.device  # not next(self.parameters()): that walks every submodule, each step

    def preprocess(self, obs: Observation) -> Observation:
        """Observations (numpy or tensors, any leading dims; dict for Dict, tuple for Tuple) as tensors on device."""
        return map_observation(lambda array: torch.as_tensor(array, device=self.device), obs)

    def initial_state(self, batch_size: int) -> State:
        """Zero policy state for ``batch_size`` sequences: actor core state, then critic core state."""
        state = self.actor_core.initial_state(batch_size, self.device)
        if self.critic_core is not None:
            state = (*state, *self.critic_core.initial_state(batch_size, self.device))
        return state

    def _one_step(self, obs: Observation, episode_starts: Tensor) -> tuple[Observation, Tensor]:
        """One step's ``obs [B, ...]`` and ``episode_starts [B]`` as sequences of length T = 1."""
        obs = map_observation(lambda array: array.unsqueeze(0), self.preprocess(obs))
        return obs, torch.as_tensor(episode_starts, device=self.device).unsqueeze(0)

    def _latents(self, obs: Observation, episode_starts: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        """Encoder and core(s) over ``[T, B]``: actor latent, critic latent, new state."""
        episode_starts = torch.as_tensor(episode_starts, device=self.device)
        features = self.encoder_mlp(self.encoder(self.preprocess(obs)))  # [T, B, F]
        actor_state, critic_state = state[: self.num_actor_state_tensors], state[self.num_actor_state_tensors :]
        actor_out, actor_state = self.actor_core(features, actor_state, episode_starts)  # [T, B, H]
        critic_out = actor_out
        if self.critic_core is not None:
            critic_out, critic_state = self.critic_core(features, critic_state, episode_starts)
        latent_pi, latent_vf = self.pi_mlp(self.actor_head(actor_out)), self.vf_mlp(self.critic_head(critic_out))
        return latent_pi, latent_vf, (*actor_state, *critic_state)

    def forward_sequence(
        self, obs: Observation, state: State, episode_starts: Tensor, action_masks: Tensor | None = None
    ) -> tuple[CategoricalDistribution | GaussianDistribution, Tensor, State]:
        """Run sequences ``obs [T, B, ...]``: action distribution over ``[T, B]``, values ``[T, B]``, new state.

        The state of a sequence resets to zeros where ``episode_starts [T, B]`` is true, before that step.
        """
        latent_pi, latent_vf, state = self._latents(obs, episode_starts, state)
        return self.action_head(latent_pi, action_masks), self.value_head(latent_vf).squeeze(-1), state

    def evaluate_actions(
        self,
        obs: Observation,
        actions: Tensor,
        state: State,
        episode_starts: Tensor,
        action_masks: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Training pass over ``[T, B]`` in one core call: ``(log_prob, entropy, values)``, each ``[T, B]``."""
        distribution, values, _ = self.forward_sequence(obs, state, episode_starts, action_masks)
        actions = torch.as_tensor(actions, device=self.device)
        return distribution.log_prob(actions), distribution.entropy(), values

    def act(
        self,
        obs: Observation,
        state: State,
        episode_starts: Tensor,
        deterministic: bool = False,
        action_masks: Tensor | None = None,
        clip: bool = True,
    ) -> tuple[Tensor, Tensor, Tensor, State]:
        """One step for ``obs [B, ...]``: ``(actions [B, ...], log_prob [B], values [B], new_state)``.

        ``log_prob`` is that of the unclipped sample. With ``clip`` (the default) Box actions are clipped into the
        space's bounds, ready for the env; a trainer that re-evaluates stored actions passes ``clip=False``, stores
        those, and sends ``clip_actions(actions)`` to the env, so that ``evaluate_actions`` sees the same sample.
        """
        obs, episode_starts = self._one_step(obs, episode_starts)
        if action_masks is not None:
            action_masks = torch.as_tensor(action_masks, device=self.device).unsqueeze(0)
        distribution, values, state = self.forward_sequence(obs, state, episode_starts, action_masks)
        actions = distribution.mode() if deterministic else distribution.sample()
        log_prob = distribution.log_prob(actions)
        if clip:
            actions = self.clip_actions(actions)
        return actions[0], log_prob[0], values[0], state

    def clip_actions(self, actions: Tensor) -> Tensor:
        """Box actions clipped into the space's bounds; other actions unchanged."""
        return self.action_head.clip(actions)

    def predict_values(self, obs: Observation, state: State, episode_starts: Tensor) -> Tensor:
        """Values ``[B]`` of ``obs [B, ...]``, for bootstrapping at truncation or the end of a rollout."""
        _, latent_vf, _ = self._latents(*self._one_step(obs, episode_starts), state)
        return self.value_head(latent_vf).squeeze(-1)[0]

    def memory(self, state: State) -> Tensor:
        """The actor core's memory (LSTM cell state, GRU hidden state) of the last layer, ``[B, H]``."""
        return self.actor_core.cell_state(state[: self.num_actor_state_tensors])
