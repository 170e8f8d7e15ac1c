"""The name -> family registry, and building models from trial parameters.

A *family* is one model architecture as experiment specs name it (``lstm``,
``moe_transformer``, ...). Family modules register themselves with
:func:`register_family`, a decorator on the ``nn.Module`` class that takes the
family's config dataclass. A user's family is registered the same way in
its own module and named by a spec as ``package.module:ClassName`` (or by
the name of an installed entry point of the ``boengine.families`` group):
:func:`get_family` imports the module on first use, in the driver and in
every worker (:mod:`strategies.plugins` says how modules are found), and
finds the family registered for that class. A trial's parameter dict mixes model parameters
(``model_param_names``) and training parameters (:data:`TRAINING_PARAMS`,
owned by the training loop); :func:`build_model` uses the former, ignores
the latter and rejects anything else.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import nn

from strategies.exceptions import ConfigError
from strategies.plugins import entry_point_names, is_reference, load_entry_point, load_reference
from strategies.recipes import (
    TRAINING_PARAMS,
    cpu_training_params,
    default_recipe,
    gpu_training_params,
    recipe,
)
from strategies.space import ChoiceParam, FixedParam, IntParam, Param, SearchSpace

__all__ = [
    "TRAINING_PARAMS",
    "Family",
    "FamilyConfig",
    "build_model",
    "check_encoder",
    "check_space",
    "count_parameters",
    "cpu_training_params",
    "default_recipe",
    "family_names",
    "get_family",
    "gpu_training_params",
    "model_config",
    "param_corners",
    "read_int",
    "read_params",
    "recipe",
    "register_family",
    "require",
    "resolve_d_model",
]


class FamilyConfig(Protocol):
    """What a family's config dataclass provides.

    ``PARAMS`` names the trial parameters the config reads; ``from_params``
    derives the full config from them (e.g. ``d_model = n_heads * head_dim``);
    ``num_parameters`` is the closed-form parameter count of the model.
    """

    PARAMS: ClassVar[frozenset[str]]

    @property
    def input_size(self) -> int: ...

    @classmethod
    def from_params(cls, params: Mapping[str, Any], input_size: int) -> FamilyConfig: ...

    def num_parameters(self) -> int: ...


@dataclass(frozen=True)
class Family:
    """One registered model family.

    Attributes:
        name: the name experiment specs use.
        config_cls: frozen dataclass of constructor settings with the original defaults.
        default_space: a search space sized for CPU studies (minutes on 2 cores).
        gpu_space: the search space at the original sizes (d_model up to 512, sequence up to 500).
        default_feature_set: the feature set (``ohlcv``, ``basic``, ``multi_timeframe``)
            the family is trained on, given the trial parameters.
        train_defaults: the original training recipe, one value per name in
            :data:`TRAINING_PARAMS`.
        model_param_names: trial parameters that configure the model.
        model_cls: builds the ``nn.Module`` from a ``config_cls`` instance.
    """

    name: str
    config_cls: type[FamilyConfig]
    default_space: Callable[[], SearchSpace]
    gpu_space: Callable[[], SearchSpace]
    default_feature_set: Callable[[Mapping[str, Any]], str]
    train_defaults: Mapping[str, Any]
    model_param_names: frozenset[str]
    model_cls: Callable[[Any], nn.Module]


_REGISTRY: dict[str, Family] = {}
_BY_CLASS: dict[type, Family] = {}  # the family each registered nn.Module class is
_LOADED: dict[str, Family] = {}  # families found by reference or entry point, under that name
M = TypeVar("M", bound=type[nn.Module])


def register_family(
    name: str | None = None,
    *,
    config_cls: type[FamilyConfig],
    default_space: Callable[[], SearchSpace],
    gpu_space: Callable[[], SearchSpace] | None = None,
    feature_set: str | Callable[[Mapping[str, Any]], str],
    train_defaults: Mapping[str, Any] | None = None,
) -> Callable[[M], M]:
    """Class decorator registering the decorated ``nn.Module`` as a family.

    Args:
        name: the name specs use; default ``'<module>:<ClassName>'``, the reference a
            spec gives for a family in its own module.
        config_cls: the config dataclass (``PARAMS``, ``from_params``; see :class:`FamilyConfig`).
        default_space: the search space of ``"search_space_preset": "cpu"``.
        gpu_space: the space of the ``gpu`` preset (default: ``default_space``).
        feature_set: the feature set it is trained on (or a function of the fixed parameters).
        train_defaults: the training recipe, every name of :data:`TRAINING_PARAMS`
            (default: :func:`default_recipe`).
    """
    recipe_ = dict(train_defaults) if train_defaults is not None else default_recipe()
    label = name or "this family"
    missing = TRAINING_PARAMS - set(recipe_)
    extra = set(recipe_) - TRAINING_PARAMS
    if missing or extra:
        raise ValueError(
            f"strategy '{label}': train_defaults missing {sorted(missing)}, extra {sorted(extra)}"
        )
    _check_config_cls(label, config_cls)
    feature_set_fn = _constant(feature_set) if isinstance(feature_set, str) else feature_set

    def decorate(model_cls: M) -> M:
        key = name or f"{model_cls.__module__}:{model_cls.__qualname__}"
        old = _REGISTRY.get(key)
        if old is not None and _qualname(old.model_cls) != _qualname(model_cls):  # a reload is no clash
            raise ValueError(f"strategy '{key}' is registered twice")
        family = Family(
            name=key,
            config_cls=config_cls,
            default_space=default_space,
            gpu_space=gpu_space or default_space,
            default_feature_set=feature_set_fn,
            train_defaults=MappingProxyType(recipe_),
            model_param_names=frozenset(config_cls.PARAMS),
            model_cls=model_cls,
        )
        _REGISTRY[key] = _BY_CLASS[model_cls] = family
        return model_cls

    return decorate


def _qualname(cls: Any) -> str:
    return f"{getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', '?')}"


def _check_config_cls(name: str, config_cls: Any) -> None:
    params = getattr(config_cls, "PARAMS", None)
    if not (isinstance(params, (set, frozenset)) and all(isinstance(p, str) for p in params)):
        raise ValueError(
            f"strategy '{name}': config_cls {getattr(config_cls, '__name__', config_cls)!r} needs PARAMS, "
            "a frozenset of the trial parameters it reads"
        )
    if not callable(getattr(config_cls, "from_params", None)):
        raise ValueError(
            f"strategy '{name}': config_cls {config_cls.__name__!r} needs a classmethod "
            "from_params(params, input_size)"
        )
    overlap = set(params) & TRAINING_PARAMS
    if overlap:
        raise ValueError(
            f"strategy '{name}': PARAMS {sorted(overlap)} are training parameters (TRAINING_PARAMS); "
            "the training loop owns them: remove them from PARAMS"
        )


def _constant(feature_set: str) -> Callable[[Mapping[str, Any]], str]:
    def feature_set_fn(params: Mapping[str, Any]) -> str:
        return feature_set

    return feature_set_fn


def family_names() -> tuple[str, ...]:
    """Registered family names, in registration order."""
    return tuple(_REGISTRY)


def get_family(name: str) -> Family:
    """The family ``name``: registered, ``package.module:ClassName`` (imported on first use), or
    an installed entry point of the ``boengine.families`` group.

    Raises:
        ConfigError: one line: an unknown name, a module that cannot be imported, or a
            class that is not a registered family.
    """
    family = _REGISTRY.get(name) or _LOADED.get(name)
    if family is not None:
        return family
    if is_reference(name):
        return _found(name, load_reference(name, what=""))
    obj = load_entry_point(name, what="")
    if obj is not None:
        return _found(name, obj)
    known = ", ".join([*_REGISTRY, *(n for n in entry_point_names() if n not in _REGISTRY)])
    raise ConfigError(
        f"unknown strategy '{name}'; known: {known}; or give your own family as 'package.module:ClassName'"
    )


def _found(name: str, obj: Any) -> Family:
    """The family registered for class ``obj``, kept under ``name`` (its reference)."""
    family = _BY_CLASS.get(obj) if isinstance(obj, type) else None
    if family is None:
        what = f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise ConfigError(
            f"{name!r} is {what}, not a model family; decorate an nn.Module class with "
            "@strategies.register_family(config_cls=..., default_space=..., feature_set=...)"
        )
    if family.name != name:
        family = dataclasses.replace(family, name=name)
    _LOADED[name] = family
    return family


def model_config(family: str, params: Mapping[str, Any], input_size: int) -> FamilyConfig:
    """The family's config for one trial's parameters (training keys are ignored).

    Raises:
        ConfigError: a key is neither a model nor a training parameter, or a
            value is invalid (e.g. ``d_model`` not divisible by ``n_heads``).
    """
    fam = get_family(family)
    unknown = sorted(k for k in params if k not in fam.model_param_names and k not in TRAINING_PARAMS)
    if unknown:
        raise ConfigError(
            f"strategy '{family}': unknown parameter(s) {unknown}; model parameters are "
            f"{sorted(fam.model_param_names)}, training parameters {sorted(TRAINING_PARAMS)}"
        )
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ConfigError(f"input_size must be a positive integer, got {input_size!r}")
    return fam.config_cls.from_params(params, input_size)


def build_model(
    family: str, params: Mapping[str, Any], input_size: int, *, seed: int | None = None
) -> nn.Module:
    """Build family ``family`` for a trial's ``params`` on ``input_size`` features.

    With ``seed`` the initial weights depend on it alone (the global torch RNG
    is forked, not reseeded). Build under ``torch.device("meta")`` to count
    parameters of large models without allocating them.
    """
    fam = get_family(family)
    cfg = model_config(family, params, input_size)
    if seed is None:
        return fam.model_cls(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fam.model_cls(cfg)


def count_parameters(module: nn.Module) -> int:
    """Number of distinct parameters (shared tensors are counted once)."""
    return sum(p.numel() for p in module.parameters())


# --- helpers for the families' ``from_params`` ---------------------------------------------


def require(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def check_encoder(d_model: int, n_heads: int, num_layers: int, ffn_mult: int) -> None:
    """Validate the sizes of an attention encoder (heads must divide ``d_model``)."""
    require(n_heads >= 1, f"n_heads must be >= 1, got {n_heads}")
    require(
        d_model >= 4 and d_model % n_heads == 0,
        f"d_model must be >= 4 and divisible by n_heads={n_heads}, got {d_model}; "
        "search n_heads and head_dim instead",
    )
    require(num_layers >= 1, f"num_layers must be >= 1, got {num_layers}")
    require(ffn_mult >= 1, f"ffn_mult must be >= 1, got {ffn_mult}")


def read_params(config_cls: type[Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Values of ``config_cls``'s fields named in both ``PARAMS`` and ``params``.

    Each value is coerced to the type of the field's default (bool, int, float
    or str); ``4.0`` is a valid int, ``True`` is not.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.name in params and f.name in config_cls.PARAMS:
            out[f.name] = _coerce(f.name, params[f.name], type(f.default))
    return out


def read_int(name: str, value: Any) -> int:
    """``value`` as an integer parameter (``4.0`` is 4; ``True``, ``4.5`` and ``"4"`` are errors)."""
    return int(_coerce(name, value, int))


def resolve_d_model(params: Mapping[str, Any], default_heads: int, default_d_model: int) -> tuple[int, int]:
    """``(n_heads, d_model)`` from ``n_heads`` and ``head_dim`` (or ``d_model``) in ``params``.

    Searching ``n_heads`` and ``head_dim`` with ``d_model = n_heads * head_dim``
    keeps every proposal buildable; a given ``d_model`` must agree.
    """
    n_heads = _coerce("n_heads", params.get("n_heads", default_heads), int)
    require(n_heads >= 1, f"n_heads must be >= 1, got {n_heads}")
    if "head_dim" in params:
        head_dim = _coerce("head_dim", params["head_dim"], int)
        require(head_dim >= 1, f"head_dim must be >= 1, got {head_dim}")
        d_model = n_heads * head_dim
        given = params.get("d_model")
        require(
            given is None or _coerce("d_model", given, int) == d_model,
            f"d_model must equal n_heads * head_dim = {d_model}, got {given}; give one of d_model, head_dim",
        )
        return n_heads, d_model
    return n_heads, _coerce("d_model", params.get("d_model", default_d_model), int)


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        require(isinstance(value, bool), f"parameter '{name}' must be true or false, got {value!r}")
        return value
    if kind is str:
        require(isinstance(value, str), f"parameter '{name}' must be a string, got {value!r}")
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        require(number and float(value).is_integer(), f"parameter '{name}' must be an integer, got {value!r}")
        return int(value)
    require(number, f"parameter '{name}' must be a finite number, got {value!r}")
    return float(value)


# --- checking a search space against the family ---------------------------------------------

_SHORT_INT_RANGE = 16  # int ranges up to this many values are checked value by value
_INNER = 1.0 / math.e  # where inside a float range the inner point lies (not a round number)
Corner = tuple[Any, str]  # a value a parameter can take, and the fix if the family refuses it


def check_space(family: str, space: SearchSpace, *, input_size: int = 8) -> None:
    """Every configuration the space can propose builds: raise :class:`ConfigError` naming the parameter.

    Each model parameter (and ``seq_len``, which bounds learnable positions)
    contributes its corners: the fixed value, every choice value, both ends of
    a range, every value of a short int range and one inner point of a float
    range (a float range on an integer parameter fails there). Every pair of
    corners is built with the other parameters at one valid base point;
    points that violate the space's linear constraints are skipped, as the
    optimizer never proposes them. Training parameters are the training
    loop's to check.

    Raises:
        ConfigError: ``search_space.<name>: '<family>' refuses <name> = <value>: <the family's
            message>; <the fix>``.
    """
    fam = get_family(family)
    corners = {
        p.name: param_corners(p)
        for p in space.params
        if p.name in fam.model_param_names or p.name == "seq_len"
    }
    base = _base_point(corners, space)
    if not _allowed(space, base):
        rules = ", ".join(f"'{c}'" for c in space.constraints)
        raise ConfigError(
            f"search_space: no combination of the parameters' values satisfies {rules}; widen the ranges"
        )
    for point in _pairs(corners, base):
        if _allowed(space, point):
            error = _build_error(family, point, input_size)
            if error is not None:
                raise ConfigError(_blame(family, point, error, input_size))


def param_corners(p: Param) -> list[Corner]:
    """The values of ``p`` worth building (see :func:`check_space`), each with the fix if refused."""
    if isinstance(p, FixedParam):
        return [(p.value, "change the fixed value")]
    if isinstance(p, ChoiceParam):
        return [(v, f"remove the choice value {json.dumps(v)} or change it") for v in p.values]
    ends = [(p.low, "raise the range's low end"), (p.high, "lower the range's high end")]
    if isinstance(p, IntParam):
        if p.high - p.low < _SHORT_INT_RANGE:
            inner = [
                (v, "narrow the range, or search the values that work as a choice")
                for v in range(p.low + 1, p.high)
            ]
            return [ends[0], *inner, ends[1]]
        return ends
    inner_fix = 'this float range has values between integers; give "type": "int" or narrow the range'
    return [ends[0], (p.low + (p.high - p.low) * _INNER, inner_fix), ends[1]]


def _base_point(corners: Mapping[str, list[Corner]], space: SearchSpace) -> dict[str, Corner]:
    """The first combination of corners inside the linear constraints (else the very first)."""
    combos = itertools.islice(itertools.product(*corners.values()), 10_000)
    first: dict[str, Corner] | None = None
    for combo in combos:
        point = dict(zip(corners, combo))
        first = first or point
        if _allowed(space, point):
            return point
    return first or {}


def _pairs(corners: Mapping[str, list[Corner]], base: dict[str, Corner]) -> Iterator[dict[str, Corner]]:
    yield base
    names = list(corners)
    for i, a in enumerate(names):
        for ca in corners[a]:
            yield {**base, a: ca}
            for b in names[i + 1 :]:
                for cb in corners[b]:
                    yield {**base, a: ca, b: cb}


def _values(point: Mapping[str, Corner]) -> dict[str, Any]:
    return {name: value for name, (value, _) in point.items()}


def _allowed(space: SearchSpace, point: Mapping[str, Corner]) -> bool:
    values = _values(point)
    for con in space.constraints:
        if set(con.names) <= set(values):
            try:
                if not con.satisfied(values):
                    return False
            except (TypeError, ValueError):  # a non-numeric value: the config reports it
                continue
    return True


def _build_error(family: str, point: Mapping[str, Corner], input_size: int) -> str | None:
    try:
        model_config(family, _values(point), input_size)
    except ConfigError as exc:
        return str(exc)
    return None


def _blame(family: str, point: Mapping[str, Corner], error: str, input_size: int) -> str:
    """The message for a point that does not build, under the parameter that makes it fail.

    The culprit is the first parameter (those the error names come first) whose
    removal (the family's default instead) makes the point build.
    """
    named = [n for n in point if re.search(rf"\b{re.escape(n)}\b", error)]
    for name in [*named, *(n for n in point if n not in named)]:
        rest = {k: v for k, v in point.items() if k != name}
        if _build_error(family, rest, input_size) is None:
            value, fix = point[name]
            shown = json.dumps(value, default=str)
            if error.startswith(f"parameter '{name}' must be") and not isinstance(value, float):
                fix = "give values of that type"  # a string or a bool where a number is expected, ...
            return f"search_space.{name}: '{family}' refuses {name} = {shown}: {error}; {fix}"
    return f"search_space: {error}; change the search space so that '{family}' can be built"
