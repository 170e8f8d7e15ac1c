"""The spec's ``search_space`` section: entries parsed into parameters, checked against the objective.

An entry is a fixed value, ``{"values": [...]}`` (a choice), ``{"low", "high",
"log"}`` (a range; float or int by the family's own parameter) or has an
explicit ``type``; keys that do not fit the kind are errors, not ignored. The
objective then checks the whole space (:meth:`Objective.check_space`): a model
family builds its config at every corner of the space, a closed-form problem
keeps to its box.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from strategies.exceptions import ConfigError
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, Param, SearchSpace

__all__ = ["build_space", "check_within_box"]


_KIND_KEYS: dict[str, frozenset[str]] = {
    "fixed": frozenset({"type", "value"}),
    "choice": frozenset({"type", "values", "ordered"}),
    "float": frozenset({"type", "low", "high", "log"}),
    "int": frozenset({"type", "low", "high", "log"}),
}
_PARAM_KEYS = frozenset().union(*_KIND_KEYS.values())


def build_space(
    check_space: Callable[[str, SearchSpace, SearchSpace], None],
    strategy: str,
    overrides: Mapping[str, Any],
    base: SearchSpace,
) -> SearchSpace:
    """The default space with the spec's ``search_space`` entries, checked by the objective's
    ``check_space``; ConfigError names the entry."""
    params = [_parse_param(name, raw, base) for name, raw in overrides.items()]
    try:
        space = base.with_overrides(params)
    except ConfigError as exc:
        raise ConfigError(_space_message(str(exc))) from None
    check_space(strategy, space, base)
    if not space.tunable:
        raise ConfigError(
            "search_space: every parameter is fixed, so there is nothing to search; "
            "give at least one parameter a range or a choice"
        )
    return space


def _space_message(message: str) -> str:
    """A :class:`SearchSpace` error under the spec's name for it, with the fix."""
    message = message.replace("search space: ", "search_space: ", 1)
    if "needs numeric ranges" in message:
        return f"{message}; give it a range (low, high) or a fixed value instead"
    if "violate constraint" in message:
        return f"{message}; change the fixed values"
    return message


def _parse_param(name: str, raw: Any, base: SearchSpace) -> Param:
    """One ``search_space`` entry -> a Param; the type defaults to the family's.

    Besides the family's own parameters, any training parameter (say
    ``confidence_gate`` or ``loss``) may be added; it then needs an explicit
    ``type`` (or a fixed value), as there is no default to take it from.
    """
    default = base.get(name)
    if default is None and not _is_training_param(name, base):
        raise ConfigError(f"search_space: unknown parameter '{name}'; known: {', '.join(base.names)}")
    try:
        return _make_param(name, raw, default)
    except ConfigError as exc:
        message = str(exc).removeprefix(f"parameter '{name}': ")
        if not message.startswith("search_space"):
            message = f"search_space.{name}: {message}"
        raise ConfigError(message) from None


def _make_param(name: str, raw: Any, default: Param | None) -> Param:
    if not isinstance(raw, Mapping):
        return FixedParam(name, _scalar(raw, "the value"))
    unknown = set(raw) - _PARAM_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)}; use type, low, high, log, values, ordered or value"
        )
    kind = raw.get("type") or _default_kind(raw, default)
    if not isinstance(kind, str) or kind not in _KIND_KEYS:
        raise ConfigError(f"unknown type {json.dumps(kind, default=str)}; use float, int, choice or fixed")
    extra = sorted(set(raw) - _KIND_KEYS[kind])
    if extra:
        fix = ", or remove value to search a range or a choice" if kind == "fixed" else ""
        raise ConfigError(
            f"{', '.join(extra)}: not used by a {kind} parameter (got {json.dumps(dict(raw), default=str)}); "
            f"remove {', '.join(extra)}{fix}"
        )
    needed = {"fixed": {"value"}, "choice": {"values"}}.get(kind, {"low", "high"})
    missing = sorted(needed - set(raw))
    if missing:
        raise ConfigError(f"type '{kind}' needs key(s) {', '.join(missing)}; add them")
    return _kind_param(name, kind, raw)


def _kind_param(name: str, kind: str, raw: Mapping[str, Any]) -> Param:
    if kind == "fixed":
        return FixedParam(name, _scalar(raw["value"], "value"))
    if kind == "choice":
        values = raw["values"]
        if not isinstance(values, list):
            raise ConfigError(
                f"values must be a list (got {json.dumps(values, default=str)}); e.g. [16, 32, 64]"
            )
        ordered = _flag(raw, "ordered", default=True)
        return ChoiceParam(name, tuple(_scalar(v, f"values item {i}") for i, v in enumerate(values)), ordered)
    log = _flag(raw, "log", default=False)
    if kind == "float":
        return FloatParam(name, float(_number(raw, "low", float)), float(_number(raw, "high", float)), log)
    return IntParam(name, int(_number(raw, "low", int)), int(_number(raw, "high", int)), log)


def _scalar(value: Any, what: str) -> Any:
    """A parameter value: a string, a boolean or a finite number."""
    shown = json.dumps(value, default=str)
    if isinstance(value, list):
        raise ConfigError(
            f"{what} is a list (got {shown}); one value is fixed, a list is searched with "
            f'{{"values": {shown}}}'
        )
    if value is None or isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a number, a string or true/false (got {shown}); give one value")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number (got {shown}); NaN and Infinity are not allowed")
    return value


def _number(raw: Mapping[str, Any], key: str, kind: type) -> float:
    from engine.objective.pipeline import json_type_problem

    problem = json_type_problem(kind, raw[key])
    if problem:
        raise ConfigError(f"{key}: {problem}")
    return float(raw[key])


def _flag(raw: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(
            f"{key} must be true or false (got {json.dumps(value, default=str)}); write true or false"
        )
    return value


def _default_kind(raw: Mapping[str, Any], default: Param | None) -> str:
    if "value" in raw:
        return "fixed"
    if "values" in raw:
        return "choice"
    if isinstance(default, FloatParam):
        return "float"
    if isinstance(default, IntParam):
        return "int"
    return "float" if any(isinstance(raw.get(k), float) for k in ("low", "high")) else "int"


def _is_training_param(name: str, base: SearchSpace) -> bool:
    """Training parameters can be searched for model families (not synthetic problems)."""
    from strategies import TRAINING_PARAMS

    return name in TRAINING_PARAMS and "learning_rate" in base


def check_within_box(strategy: str, space: SearchSpace, base: SearchSpace) -> None:
    """A synthetic problem is defined on its default box only."""
    for p in space.params:
        box = base.get(p.name)
        if not isinstance(box, FloatParam):
            continue
        values = (
            (p.low, p.high)
            if isinstance(p, (FloatParam, IntParam))
            else p.values
            if isinstance(p, ChoiceParam)
            else (p.value,)
        )
        for v in values:
            if not box.contains(v):
                raise ConfigError(
                    f"search_space.{p.name}: '{strategy}' is defined for {p.name} in [{box.low:g}, "
                    f"{box.high:g}] (got {json.dumps(v)}); keep the values inside that range"
                )
