"""Export a policy, with its recurrent state as inputs and outputs, to ONNX or TorchScript for use outside Python.

ONNX Runtime and TorchScript modules are stateless, so the graph is one deterministic step of the policy in which
the state travels explicitly (the contract of ``RecurrentAgent.predict``):

- inputs: the observation (``observation``; one input per part of a Dict or Tuple space, ``observation_<key>``,
  nested parts joined by ``_``), the state tensors ``state_0 .. state_{k-1}`` in ``RecurrentActorCritic.initial_state``
  order (actor core, then critic core), each ``[num_layers, batch, hidden_size]`` float32 (a convlstm core's maps
  flattened, ``hidden_size = channels * height * width``), and ``episode_start``
  ``[batch]`` bool: where true that copy's state is reset to zeros before the step, as the policy does.
- outputs: ``action`` (the most probable action; Box actions clipped into the space's bounds), the distribution's
  parameters (``logits [batch, *action_shape, max(nvec)]``: normalized log-probabilities, where a MultiDiscrete
  dimension with fewer categories than the largest is padded with -1e8; or ``mean`` and ``log_std``, each
  ``[batch, *action_shape]``, the mean unclipped), ``value [batch]`` and ``new_state_0 .. new_state_{k-1}``.
- the batch dimension is dynamic. Action masks are not an input: where an env masks actions, set the masked
  ``logits`` to -inf and take their argmax instead of ``action``.

Observation normalization is baked in: a policy trained with ``normalize_observations`` takes the env's raw
observations, normalized inside the graph with the checkpoint's frozen statistics, as ``rl-lstm evaluate`` does.
Env wrappers (``env_wrappers``, ``frame_stack``) are not part of the graph: feed the observations they produce.

ONNX uses ``torch.onnx.export``'s default exporter, the ``torch.export``-based one (it needs ``onnxscript``): it
fails loudly on what it cannot capture, such as Python control flow on tensor values, where the deprecated
TorchScript-based exporter records the branch taken while tracing and silently returns wrong results on other
inputs. TorchScript format uses ``torch.jit.trace``, which has that weakness, so every exported file is checked
against the policy on a batch of another size with random states and mixed episode starts before it is kept.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers.vector import NormalizeObservation
from torch import Tensor, nn

from rl_lstm.agent import RecurrentAgent
from rl_lstm.errors import ConfigError, RLLSTMError
from rl_lstm.evaluation import MissingDependencyError, load_agent
from rl_lstm.policies import CategoricalHead, RecurrentActorCritic
from rl_lstm.vec_env import find_wrapper

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}  # of the files rl-lstm export writes by default
# torch.export specializes sizes 0 and 1 to constants: export with 2 so the batch dimension stays symbolic.
EXPORT_BATCH_SIZE = 2
CHECK_BATCH_SIZE = 3  # another size than at export, so that a batch size baked into the graph is caught
CHECK_TOLERANCE = 1e-4
ONNX_OPSET = 18


def _observation_leaves(space: spaces.Space, name: str = "observation") -> list[tuple[str, tuple[Any, ...]]]:
    """``(input name, path of keys)`` of every array of an observation, in the space's (and the encoder's) order."""
    if isinstance(space, spaces.Dict):
        items = space.spaces.items()
    elif isinstance(space, spaces.Tuple):
        items = enumerate(space.spaces)
    else:
        return [(name, ())]
    return [(leaf, (key, *path)) for key, part in items for leaf, path in _observation_leaves(part, f"{name}_{key}")]


def _nest(space: spaces.Space, parts: Sequence[Tensor]) -> Any:
    """The flat ``parts`` (in :func:`_observation_leaves` order) as the dict / tuple layout the policy takes."""
    remaining = iter(parts)

    def build(part_space: spaces.Space) -> Any:
        if isinstance(part_space, spaces.Dict):
            return {key: build(sub) for key, sub in part_space.spaces.items()}
        if isinstance(part_space, spaces.Tuple):
            return tuple(build(sub) for sub in part_space.spaces)
        return next(remaining)

    return build(space)


def _leaf(observation: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        observation = observation[key]
    return observation


class ExportablePolicy(nn.Module):
    """One deterministic step of a policy on flat tensors: ``(*observation_parts, *state, episode_start)``.

    Args:
        policy: the policy; the wrapper holds a CPU copy in eval mode.
        observation_space: the space of the observations the graph takes (the raw one when normalizing).
        observation_mean, observation_var, epsilon: frozen statistics of gymnasium's ``NormalizeObservation``,
            applied as it does, ``(obs - mean) / sqrt(var + epsilon)`` in float64; ``None``: no normalization.
    """

    def __init__(
        self,
        policy: RecurrentActorCritic,
        observation_space: spaces.Space | None = None,
        observation_mean: np.ndarray | None = None,
        observation_var: np.ndarray | None = None,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__()
        self.policy = copy.deepcopy(policy).cpu().eval()
        self.observation_space = observation_space or policy.observation_space
        self.leaves = _observation_leaves(self.observation_space)
        self.num_state_tensors = len(policy.initial_state(1))
        self.normalize = observation_mean is not None
        if self.normalize:
            self.register_buffer("observation_mean", torch.as_tensor(observation_mean, dtype=torch.float64))
            observation_std = np.sqrt(np.asarray(observation_var, dtype=np.float64) + epsilon)
            self.register_buffer("observation_std", torch.as_tensor(observation_std, dtype=torch.float64))
        self.categorical = isinstance(policy.action_head, CategoricalHead)
        self.eval()

    @property
    def input_names(self) -> list[str]:
        """Observation parts, state tensors, ``episode_start``."""
        states = [f"state_{index}" for index in range(self.num_state_tensors)]
        return [name for name, _ in self.leaves] + states + ["episode_start"]

    @property
    def output_names(self) -> list[str]:
        """``action``, the distribution's parameters, ``value``, the new state tensors."""
        parameters = ["logits"] if self.categorical else ["mean", "log_std"]
        new_states = [f"new_state_{index}" for index in range(self.num_state_tensors)]
        return ["action", *parameters, "value", *new_states]

    def example_inputs(self, batch_size: int, seed: int = 0) -> tuple[Tensor, ...]:
        """Random observations of the space, random states and mixed episode starts for ``batch_size`` copies."""
        observations = batch_space(self.observation_space, batch_size)
        observations.seed(seed)
        sample = observations.sample()
        generator = torch.Generator().manual_seed(seed)
        state = tuple(
            torch.randn(tensor.shape, generator=generator) for tensor in self.policy.initial_state(batch_size)
        )
        episode_start = torch.arange(batch_size) % 2 == 0
        parts = tuple(torch.as_tensor(np.asarray(_leaf(sample, path))) for _, path in self.leaves)
        return (*parts, *state, episode_start)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """``(*observation_parts [B, ...], *state [L, B, H], episode_start [B])`` -> the tensors of ``output_names``."""
        num_parts = len(self.leaves)
        parts = inputs[:num_parts]
        state = tuple(inputs[num_parts : num_parts + self.num_state_tensors])
        episode_start = inputs[-1]
        if self.normalize:  # a Box observation, the one part: NormalizeObservation takes Box spaces only
            parts = (((parts[0].double() - self.observation_mean) / self.observation_std).float(),)
        sequence = _nest(self.observation_space, [part.unsqueeze(0) for part in parts])  # T = 1
        distribution, values, new_state = self.policy.forward_sequence(sequence, state, episode_start.unsqueeze(0))
        action = self.policy.clip_actions(distribution.mode())[0]
        if self.categorical:
            logits = distribution.categorical.logits[0]  # [B, D, max(nvec)]
            parameters: tuple[Tensor, ...] = (logits.reshape(*action.shape, logits.shape[-1]),)
        else:
            mean = distribution.normal.mean[0]  # [B, D]
            log_std = self.policy.action_head.log_std.expand_as(mean)
            parameters = (mean.reshape(action.shape), log_std.reshape(action.shape))
        return (action, *parameters, values[0], *new_state)


@dataclass
class ExportedPolicy:
    """What :func:`export_policy` wrote."""

    path: Path
    format: str
    input_names: list[str]
    output_names: list[str]
    normalization_baked: bool  # the graph normalizes raw observations with the checkpoint's statistics


def exportable_policy(agent: RecurrentAgent) -> ExportablePolicy:
    """The agent's policy as an :class:`ExportablePolicy`, with its observation normalization baked in if it has one."""
    wrapper = find_wrapper(agent.env, NormalizeObservation)
    if wrapper is None:
        return ExportablePolicy(agent.policy)
    raw_space = wrapper.env.single_observation_space
    rms = wrapper.obs_rms
    return ExportablePolicy(agent.policy, raw_space, rms.mean, rms.var, wrapper.epsilon)


def _untraceable(policy: RecurrentActorCritic, format: str, problem: str) -> RLLSTMError:
    """The error for a policy that does not export: it names the core(s), the problem seen and the fix."""
    cores = [policy.actor_core] if policy.critic_core is None else [policy.actor_core, policy.critic_core]
    names = " and ".join(sorted({f"{type(core).__module__}.{type(core).__qualname__}" for core in cores}))
    return RLLSTMError(
        f"cannot export the policy as {format}: its core ({names}) does not trace ({problem}). Tracing records "
        "Python control flow on tensor values or sizes (an if on a tensor, a loop over the batch) as constants: write "
        "the core with tensor operations (torch.where, batched matmuls), or use a built-in core (lstm, gru, peephole, "
        "mlp, convlstm)."
    )


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _require(module: str, feature: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{feature} needs {module}, which is not installed; run: pip install 'rl-lstm[export]'"
        ) from error


def _export_onnx(module: ExportablePolicy, path: Path, metadata: dict[str, str]) -> None:
    _require("onnxscript", "ONNX export")
    onnx = _require("onnx", "ONNX export")
    batch = torch.export.Dim("batch")
    inputs = module.example_inputs(EXPORT_BATCH_SIZE)
    num_parts = len(module.leaves)
    # forward takes *inputs, so the dynamic shapes are one tuple: batch on dim 1 of a state tensor, else dim 0.
    dims = tuple({1 if num_parts <= index < len(inputs) - 1 else 0: batch} for index in range(len(inputs)))
    with warnings.catch_warnings():
        # Notices from inside torch about its own internals, and that all inputs share the one "batch" dimension.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        torch.onnx.export(
            module,
            inputs,
            str(path),
            input_names=module.input_names,
            output_names=module.output_names,
            dynamic_shapes=(dims,),
            opset_version=ONNX_OPSET,
            external_data=False,  # one self-contained file: these policies are kilobytes, far below protobuf's 2 GB
            dynamo=True,
            verbose=False,
        )
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _export_torchscript(module: ExportablePolicy, path: Path) -> None:
    with warnings.catch_warnings():
        # torch deprecates TorchScript in favour of torch.export; the format is still what C++ and mobile load.
        # Trace warnings about Python values are answered by the check that follows the export.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, module.example_inputs(EXPORT_BATCH_SIZE), check_trace=False)
    traced.save(str(path))


def load_exported(path: str | Path, format: str) -> Callable[[Sequence[np.ndarray | Tensor]], list[np.ndarray]]:
    """A function running an exported file (ONNX with onnxruntime, TorchScript with torch) on inputs in
    ``input_names`` order and returning its outputs in ``output_names`` order."""
    if format == "onnx":
        onnxruntime = _require("onnxruntime", "running an ONNX policy")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [node.name for node in session.get_inputs()]
        return lambda inputs: session.run(None, {name: np.asarray(value) for name, value in zip(names, inputs)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # as in _export_torchscript
        module = torch.jit.load(str(path))

    def run(inputs: Sequence[np.ndarray | Tensor]) -> list[np.ndarray]:
        with torch.no_grad():
            return [output.numpy() for output in module(*(torch.as_tensor(np.asarray(value)) for value in inputs))]

    return run


def _check_export(module: ExportablePolicy, path: Path, format: str) -> None:
    """Compare the exported file with the policy on another batch size; a mismatch is an error naming the cores."""
    inputs = module.example_inputs(CHECK_BATCH_SIZE, seed=1)
    with torch.no_grad():
        expected = [output.numpy() for output in module(*inputs)]
    try:
        actual = load_exported(path, format)(inputs)
    except MissingDependencyError:
        raise
    except Exception as error:
        raise _untraceable(
            module.policy, format, f"exported with a batch of {EXPORT_BATCH_SIZE}, it fails on {CHECK_BATCH_SIZE}: "
            f"{_first_line(error)}"
        ) from error
    for name, want, got in zip(module.output_names, expected, actual):
        if want.shape != got.shape or not np.allclose(want, got, rtol=CHECK_TOLERANCE, atol=CHECK_TOLERANCE):
            raise _untraceable(
                module.policy, format, f"on a batch of {CHECK_BATCH_SIZE} with random states and mixed episode "
                f"starts, its output {name!r} differs from the policy's"
            )


def export_policy(source: RecurrentAgent | str | Path, output: str | Path, format: str = "onnx") -> ExportedPolicy:
    """Export an agent's policy (or a run folder's / checkpoint's) as one ONNX or TorchScript file at ``output``.

    The graph and its inputs and outputs are described in this module's docstring; the file is checked against the
    policy before this returns. What cannot be exported is an :class:`RLLSTMError` naming the core.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    agent = source if isinstance(source, RecurrentAgent) else load_agent(source)
    module = exportable_policy(agent)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "env_id": agent.env_id,
        "agent": agent.name,
        "inputs": ", ".join(module.input_names),
        "outputs": ", ".join(module.output_names),
        "observation_normalization": "baked into the graph" if module.normalize else "none",
    }
    try:
        if format == "onnx":
            _export_onnx(module, path, metadata)
        else:
            _export_torchscript(module, path)
        _check_export(module, path, format)
    except Exception as error:
        path.unlink(missing_ok=True)  # a file that does not act as the policy must not be left to be deployed
        if isinstance(error, RLLSTMError):  # a missing dependency, or _check_export's verdict
            raise
        raise _untraceable(module.policy, format, _first_line(error)) from error
    return ExportedPolicy(path, format, module.input_names, module.output_names, module.normalize)


def observation_inputs(observation_space: spaces.Space, observation: Any) -> dict[str, np.ndarray]:
    """A batch of observations (arrays, dicts or tuples as a vector env returns them) keyed by their input names."""
    return {name: np.asarray(_leaf(observation, path)) for name, path in _observation_leaves(observation_space)}
