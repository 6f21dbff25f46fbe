"""Configs are data: dataclass defaults, then the shipped YAML preset for the env, then a user file, then ``--set``.

Every key is checked against the dataclass: an unknown key is an error listing the closest valid keys,
a value of the wrong type is an error naming the expected type.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import yaml
from gymnasium.envs.registration import load_env_creator

from rl_lstm.errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "presets"
Config = TypeVar("Config")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``3e-4`` as a float as YAML 1.2 does (PyYAML's YAML 1.1 wants ``3.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


@dataclasses.dataclass(frozen=True)
class EnvRule:
    """A value computed from the env's kwargs, written ``seq_len: !from_env length + 2`` in YAML.

    One rule then serves every corridor length instead of one preset entry per length. The expression may use the
    env's kwargs by name (its constructor's defaults fill in those not given), numbers, ``+ - * / // % **``,
    parentheses and ``min``, ``max``, ``int``, ``round``.
    """

    expression: str

    def evaluate(self, env_id: str, env_kwargs: dict[str, Any]) -> Any:
        """The expression's value with ``env_kwargs`` as its names, or a ConfigError naming what is wrong."""
        try:
            tree = ast.parse(self.expression, mode="eval")
        except SyntaxError as error:
            raise ConfigError(f"!from_env {self.expression!r} is not an expression: {error.msg}") from None
        return _evaluate(tree.body, self.expression, env_id, env_kwargs)


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
              ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS = {"min": min, "max": max, "int": int, "round": round}


def _evaluate(node: ast.expr, expression: str, env_id: str, names: dict[str, Any]) -> Any:
    """Arithmetic over ``names`` only: no attribute access, no calls but :data:`_FUNCTIONS`, nothing imported."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ConfigError(f"!from_env {expression!r} uses {node.id!r}, which is not a kwarg of {env_id}; its "
                              f"kwargs are: {', '.join(sorted(names)) or 'none'}")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, expression, env_id, names),
                                         _evaluate(node.right, expression, env_id, names))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand, expression, env_id, names))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg, expression, env_id, names) for arg in node.args))
    raise ConfigError(f"!from_env {expression!r}: {ast.unparse(node)!r} is not allowed; use the env's kwargs, "
                      f"numbers, + - * / // % **, parentheses and {', '.join(_FUNCTIONS)}")


def env_kwargs_with_defaults(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` over the registered spec's kwargs and the defaults of the env's constructor (and task)."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return dict(env_kwargs)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    defaults: dict[str, Any] = {}
    # rl_lstm's own envs take their kwargs through **task_kwargs into a batched task class.
    for source in (getattr(creator, "task_class", None), creator):
        if source is None:
            continue
        try:
            parameters = inspect.signature(source).parameters.values()
        except (TypeError, ValueError):
            continue
        defaults.update({p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty})
    return {**defaults, **spec.kwargs, **env_kwargs}


def resolve_env_rules(values: Any, env_id: str, env_kwargs: dict[str, Any] | None) -> Any:
    """``values`` with every :class:`EnvRule` in it (at any depth) replaced by its value for this env.

    A curriculum hyperparameter written as one rule (``curriculum: {hyperparameters: {n_steps: !from_env length +
    2}}``) becomes a list with the rule's value for each stage: the stage's kwargs over the env's.
    """
    names: dict[str, Any] | None = None  # the env's kwargs with defaults: looked up once, and only if a rule needs them

    def env_names() -> dict[str, Any]:
        nonlocal names
        if names is None:
            given = env_kwargs if isinstance(env_kwargs, dict) else {}  # other kwargs: build_config reports them
            names = env_kwargs_with_defaults(env_id, given)
        return names

    def resolve(value: Any) -> Any:
        if isinstance(value, EnvRule):
            return value.evaluate(env_id, env_names())
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    def resolve_curriculum(curriculum: Any) -> Any:
        hyperparameters = curriculum.get("hyperparameters") if isinstance(curriculum, dict) else None
        stages = resolve(curriculum.get("stages")) if isinstance(hyperparameters, dict) else None
        # A malformed curriculum resolves as any value does; Curriculum.from_config reports what is wrong with it.
        if not isinstance(stages, dict) or not all(isinstance(values, list) for values in stages.values()):
            return resolve(curriculum)
        stage_kwargs = [dict(zip(stages, values)) for values in zip(*stages.values())]

        def per_stage(value: Any) -> Any:
            if isinstance(value, EnvRule):
                return [value.evaluate(env_id, {**env_names(), **kwargs}) for kwargs in stage_kwargs]
            return resolve(value)

        return {key: {name: per_stage(item) for name, item in value.items()} if key == "hyperparameters"
                else resolve(value) for key, value in curriculum.items()}

    if isinstance(values, dict):
        return {key: resolve_curriculum(value) if key == "curriculum" else resolve(value)
                for key, value in values.items()}
    return resolve(values)


_Loader.add_constructor("!from_env", lambda loader, node: EnvRule(loader.construct_scalar(node)))


def load_yaml(text: str) -> Any:
    """``text`` read as YAML with :class:`_Loader`: plain data only, and exponent floats such as ``1e-3``."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def _close_matches(name: str, candidates: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """``value`` as the type ``annotation`` allows, or a ConfigError naming the key and the type."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        errors = []
        for option in (a for a in arguments if a is not type(None)):
            try:
                return _coerce(key, value, option)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if annotation is typing.Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            element = arguments[0] if arguments else typing.Any
            return tuple(_coerce(key, item, element) for item in value)
    elif origin is dict or annotation is dict:
        if isinstance(value, dict):
            return dict(value)
    else:
        return value
    expected = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{key} must be {expected}, got {value!r} ({type(value).__name__})")


def build_config(config_class: type[Config], values: dict[str, Any]) -> Config:
    """An instance of the dataclass ``config_class`` from ``values``, every key and type checked."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    checked = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key {key!r} for {config_class.__name__}.{_close_matches(key, fields)} "
                f"Valid keys: {', '.join(sorted(fields))}."
            )
        checked[key] = _coerce(key, value, hints[key])
    config = config_class(**checked)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def parse_assignments(assignments: list[str], option: str = "--set") -> dict[str, Any]:
    """``["lr=1e-3", "net_arch_pi=[64, 64]"]`` as a dict, each value read as YAML (so numbers are numbers)."""
    values = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"{option} expects key=value, got {assignment!r}")
        values[key.strip()] = load_yaml(text) if text.strip() else ""
    return values


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file, or a ConfigError saying why it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        content = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of key: value, not {type(content).__name__}")
    return content


def split_env_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ENV_ID:key=value,..."`` as ``(ENV_ID, {key: value, ...})``, values read as YAML; a bare id gives ``{}``.

    Only a part after the last colon that holds "=" is kwargs: "module:Env-v0" ids carry a colon of their own.
    Commas split only where a new "key=" starts, so a value may be a list: "sizes=[1, 2],noise_std=0.1".
    """
    head, separator, tail = spec.rpartition(":")
    if not separator or "=" not in tail:
        return spec, {}
    return head, parse_assignments(re.split(r",(?=\s*\w+=)", tail), option=f"the env kwargs of {spec!r}")


def preset(agent: str, env_id: str, env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shipped hyperparameters of ``agent`` for ``env_id`` built with ``env_kwargs``.

    The env's entry, updated by every entry ``ENV_ID:KEY=VALUE,...`` (the syntax of the benchmark's ``--tasks``)
    whose kwargs all equal those the env is built with (``env_kwargs`` over its defaults); the entry naming more
    kwargs applies later. An env without an
    entry gets ``{}``: the agent's config defaults, chosen once for every env. Each update replaces whole values
    (a ``core_kwargs`` mapping is not merged). ``env_kwargs`` that are not a mapping match no entry
    (``build_config`` reports them). Values written ``!from_env EXPRESSION`` are computed from ``env_kwargs`` (see
    :class:`EnvRule`), so one entry can follow a corridor length.
    """
    path = PRESETS_DIR / f"{agent}.yaml"
    if not path.exists():
        return {}
    presets = read_yaml(path)
    given = env_kwargs if isinstance(env_kwargs, dict) else {}
    # An entry for length=10 serves the env built without kwargs too, when 10 is its default.
    built_with = env_kwargs_with_defaults(env_id, given)
    matching = []
    for key, entry in presets.items():
        entry_env_id, entry_kwargs = split_env_spec(key)
        if entry_kwargs and entry_env_id == env_id and entry_kwargs.items() <= built_with.items():
            matching.append((len(entry_kwargs), entry))
    resolved = dict(presets.get(env_id, {}))
    for _, entry in sorted(matching, key=lambda match: match[0]):
        resolved.update(entry)
    return resolve_env_rules(resolved, env_id, given)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-friendly data (tuples as lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``: the shape of every range check in configs."""
    if not condition:
        raise ConfigError(message)


def require_next_step_autoreset(env: gym.vector.VectorEnv, option: str) -> None:
    """A ConfigError unless ``env`` autoresets on the step after an episode ends, as ``option`` expects.

    A vector env that says nothing in its metadata is taken to, as gymnasium's own wrappers take it.
    """
    mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    require(mode == gym.vector.AutoresetMode.NEXT_STEP,
            f"{option} needs a vector env that autoresets on the next step (gymnasium's default, "
            f"AutoresetMode.NEXT_STEP); this one ({type(env.unwrapped).__name__}) has {mode}. Build gymnasium's "
            "SyncVectorEnv or AsyncVectorEnv with autoreset_mode=AutoresetMode.NEXT_STEP, e.g. gym.make_vec(..., "
            "vector_kwargs={'autoreset_mode': AutoresetMode.NEXT_STEP}) (for an env id, vectorization 'sync' or "
            "'async' builds one); an env that can only reset within the step that ends an episode is not supported")
