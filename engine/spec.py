"""The experiment spec read: one JSON file per study, parsed and checked once.

Everything below the CLI receives an :class:`ExperimentSpec` (frozen, typed;
its sections are in :mod:`engine.spec_model`, re-exported here) and never
indexes raw dictionaries. Unknown keys are errors, JSON types are taken
literally (``true`` is not 1, ``2.5`` is not an integer, NaN is not a number),
and every check that needs nothing but the spec and its objective happens
here, so a typo fails in a second instead of after an hour of training. Each
error is one line, ``<file>: <json.path>: what is wrong (got X); how to fix it``.

:func:`parse_spec` and :func:`load_spec` are the only ways to make a spec: they
validate the model, then check it against its objective (the strategy's metric
catalogue, learning curves and default space; :func:`check_with_objective`) and
build its search space. The model lives below engine/objective/ and this module
above it, so the objectives are typed against the spec without an import circle.

What needs the file system is not part of parsing (a stored spec is parsed
again when its study is read, and its data file may have moved since):
:func:`check_data_source` checks the data file's existence and header.
"""

from __future__ import annotations

import json
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from engine.metric_rules import MetricCatalogue, check_constraints, check_objectives
from engine.objective import make_objective, objective_class
from engine.search_space import build_space
from engine.spec_model import (
    DEFAULT_OBJECTIVES,
    BudgetSpec,
    EarlyStoppingSpec,
    ExecutorSpec,
    ExperimentSpec,
    MlflowSpec,
    ObjectiveSpec,
    OutcomeConstraint,
    ParetoFoldsSpec,
    SelectionSpec,
    SyntheticSpec,
    TrackingSpec,
    WarmStartSpec,
)
from strategies.exceptions import ConfigError, SpecError

if TYPE_CHECKING:
    from engine.store import StudyStore

__all__ = [
    "DEFAULT_OBJECTIVES",
    "BudgetSpec",
    "EarlyStoppingSpec",
    "ExecutorSpec",
    "ExperimentSpec",
    "MlflowSpec",
    "ObjectiveSpec",
    "OutcomeConstraint",
    "ParetoFoldsSpec",
    "SelectionSpec",
    "SyntheticSpec",
    "TrackingSpec",
    "WarmStartSpec",
    "check_data_source",
    "check_with_objective",
    "load_spec",
    "parse_spec",
    "study_spec",
    "with_data_end",
]


def check_with_objective(spec: ExperimentSpec) -> None:
    """Check a validated spec against its objective and build its search space (``spec.space``);
    raise ValueError with one line. :func:`parse_spec` calls it: make specs with that."""
    try:
        objective = objective_class(spec.strategy, spec.data.validation.scheme)
        base = objective.default_space(spec.strategy, spec.search_space_preset)
    except ConfigError as exc:
        raise ValueError(f"strategy: {exc}") from None
    market = objective.scores_test  # a backtest's metrics, with their natural ranges
    catalogue = objective.metric_catalogue(spec.strategy)
    _check_user_metrics(spec.metrics, catalogue, market=market)
    catalogue = catalogue.with_user(spec.metrics)
    check_objectives(spec.strategy, spec.objectives, catalogue, market=market)
    if market:
        _check_reachable(spec.objectives)
    check_constraints(spec.strategy, spec.constraints, spec.objectives, catalogue, market=market)
    spec.check_cross_sections(objective.curve_metrics())
    spec.check_pareto_folds(objective.name)
    try:
        spec._space = build_space(objective.check_space, spec.strategy, spec.search_space, base)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    objective.check_spec(spec)


def with_data_end(spec: ExperimentSpec, end: Any, *, source: str = "data.end") -> ExperimentSpec:
    """``spec`` with its data cut after ``end`` (a timestamp or ISO date; the bars up to and
    including it), checked again as a whole; what it set explicitly stays explicit."""
    raw = spec.given()
    stamp = end.isoformat() if hasattr(end, "isoformat") else str(end)
    return parse_spec({**raw, "data": {**raw.get("data", {}), "end": stamp}}, source=source)


_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_user_metrics(metrics: Mapping[str, str], catalogue: MetricCatalogue, *, market: bool) -> None:
    """User metrics: a new name each, a function that can be imported (see :mod:`strategies.plugins`)."""
    from strategies.plugins import load_reference

    if metrics and not market:
        raise ValueError(
            "metrics: user metrics are computed from a backtest; this strategy has none: remove them"
        )
    for name, ref in metrics.items():
        if not _METRIC_NAME.match(name):
            raise ValueError(
                f"metrics.{name}: a metric name is a Python identifier (letters, digits, '_'); rename it"
            )
        if name in catalogue:
            raise ValueError(f"metrics.{name}: a metric of the catalogue already has this name; rename it")
        try:
            function = load_reference(ref, what=f"metrics.{name}")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if not callable(function):
            raise ValueError(
                f"metrics.{name}: {ref} is a {type(function).__name__}, not a function; name a function "
                "f(returns, positions) -> float"
            )


#: The highest threshold (the worst value still of interest) a backtest objective can sensibly have:
#: above it no configuration reaches the reference point, the hypervolume stays 0 and the acquisition
#: has nothing to improve. Returns in percent over the validation bars; Sharpe ratios annualised (the
#: best of 40 noise trials on 924 hourly bars is near 7).
REACHABLE_THRESHOLDS: dict[str, float] = {"return_pct": 1000.0, "sharpe": 10.0}


def _check_reachable(objectives: Mapping[str, ObjectiveSpec]) -> None:
    """Refuse backtest thresholds that no configuration could reach."""
    for metric, bound in REACHABLE_THRESHOLDS.items():
        spec = objectives.get(metric)
        if spec is not None and spec.threshold > bound:
            example = DEFAULT_OBJECTIVES[metric]["threshold"]
            raise ValueError(
                f"objectives.{metric}.threshold: {spec.threshold:g} is beyond what any configuration "
                f"reaches (at most {bound:g}), so the hypervolume would stay 0; the threshold is the worst "
                f"{metric} still of interest: set it at most {bound:g}, e.g. {example:g}"
            )
    drawdown = objectives.get("max_drawdown_pct")
    if drawdown is not None and drawdown.threshold <= 0:
        raise ValueError(
            f"objectives.max_drawdown_pct.threshold: a drawdown is never below 0 %, so a threshold of "
            f"{drawdown.threshold:g} leaves only configurations that never lose; set the largest drawdown "
            f"still of interest, e.g. {DEFAULT_OBJECTIVES['max_drawdown_pct']['threshold']:g}"
        )


# --- reading -------------------------------------------------------------------------------


def study_spec(store: StudyStore) -> ExperimentSpec:
    """A study's spec as the user wrote it (``spec.given.json``, migrated), parsed and checked."""
    return parse_spec(store.read_spec(), source=str(store.given_spec_path))


def parse_spec(raw: Mapping[str, Any], *, source: str = "<spec>") -> ExperimentSpec:
    """Validate a parsed JSON object; raise :class:`SpecError` with one clear line."""
    if not isinstance(raw, Mapping):
        raise SpecError(
            f"{source}: the spec must be a JSON object, got {type(raw).__name__}; "
            'write it as {"name": ..., "strategy": ...}'
        )
    try:
        spec = ExperimentSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise SpecError(f"{source}: {_one_line(exc)}") from None
    try:
        check_with_objective(spec)
    except ValueError as exc:  # one line already, naming its field (as the model's own checks do)
        raise SpecError(f"{source}: {exc}") from None
    return spec


def load_spec(path: str | os.PathLike[str]) -> ExperimentSpec:
    """Read and validate a spec file (UTF-8, with or without a byte-order mark)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: no such spec file; give the path of an experiment JSON (see experiments/)")
    try:
        raw = json.loads(p.read_text(encoding="utf-8-sig"), object_pairs_hook=_KeyedObject)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{p}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; fix the syntax there"
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from None
    repeated = _repeated_key(raw)
    if repeated:
        raise SpecError(f"{p}: {repeated}: the key appears twice in one object; keep one of them")
    return parse_spec(_plain(raw), source=str(p))


class _KeyedObject(dict[str, Any]):
    """A JSON object that remembers the first key it saw twice (Python's json keeps the last)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        keys = [k for k, _ in pairs]
        self.repeated = next((k for i, k in enumerate(keys) if k in keys[:i]), None)


def _repeated_key(node: Any, path: str = "") -> str | None:
    """The JSON path of the first repeated key in ``node``, or None."""
    if isinstance(node, _KeyedObject):
        if node.repeated is not None:
            return f"{path}{node.repeated}"
        children: Any = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return None
    for key, child in children:
        found = _repeated_key(child, f"{path}{key}.")
        if found:
            return found
    return None


def _plain(node: Any) -> Any:
    """``node`` with every :class:`_KeyedObject` turned back into a plain dict."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def check_data_source(spec: ExperimentSpec) -> None:
    """The data file exists, is a .csv or .parquet file, and its header has the needed columns.

    Reads the header only (``boengine validate``); the bars themselves are
    checked when a study loads them. Raises the one-line
    :class:`~strategies.exceptions.DataError`. Synthetic problems read no data.
    """
    make_objective(spec).check_data()


# --- one-line errors -----------------------------------------------------------------------

_HINTS: dict[str, str] = {
    "int_type": "write a whole number without quotes, e.g. 3",
    "int_parsing": "write a whole number without quotes, e.g. 3",
    "int_from_float": "write a whole number, e.g. 3",
    "float_type": "write a number without quotes, e.g. 0.5",
    "float_parsing": "write a number without quotes, e.g. 0.5",
    "finite_number": "NaN and Infinity are not allowed; write a number",
    "bool_type": "write true or false, without quotes",
    "bool_parsing": "write true or false, without quotes",
    "string_type": "write it as a string in double quotes",
    "string_pattern_mismatch": "use letters, digits, '_', '.' and '-' (start with a letter or digit)",
    "missing": "add it",
}
_MESSAGES: dict[str, str] = {
    "model_type": "must be a JSON object {...}",
    "dict_type": "must be a JSON object {...}",
    "model_attributes_type": "must be a JSON object {...}",
    "tuple_type": "must be a JSON list [...]",
    "list_type": "must be a JSON list [...]",
    "missing": "required key missing",
}


def _one_line(exc: ValidationError) -> str:
    """The first validation error as 'field.path: what is wrong (got X); how to fix it'."""
    err = exc.errors(include_url=False)[0]
    path: tuple[Any, ...] = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(path[:-1])
        hint = f"; known keys: {', '.join(known)}" if known else "; remove it"
        return f"{_dotted(path)}: unknown key{hint}"
    msg = _MESSAGES.get(kind, err["msg"].removeprefix("Value error, "))
    if kind == "nested_value_error":
        path, msg = (*path, err["ctx"]["key"]), err["ctx"]["problem"]
    elif kind == "value_error":
        path, msg = _split_field(path, msg)
    got = ""
    if kind not in ("value_error", "missing", "nested_value_error") and "input" in err:
        got = f" (got {json.dumps(err['input'], default=str)})"
    hint = f"; {_HINTS[kind]}" if kind in _HINTS else ""
    where = f"{_dotted(path)}: " if path else ""
    return f"{where}{msg}{got}{hint}"


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in path)


def _split_field(path: tuple[Any, ...], msg: str) -> tuple[tuple[Any, ...], str]:
    """``('data',), 'feature_columns: ...'`` -> ``('data', 'feature_columns'), '...'`` for a field of the model."""
    m = re.match(r"^([a-z_]+): (.*)$", msg)
    if m and m.group(1) in _known_keys(path):
        return (*path, m.group(1)), m.group(2)
    return path, msg


def _known_keys(path: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``path`` inside :class:`ExperimentSpec` (dict keys and list
    indices step into the values: ``objectives.sharpe`` is an :class:`ObjectiveSpec`)."""
    model: type[BaseModel] = ExperimentSpec
    parts = list(path)
    while parts:
        field = model.model_fields.get(parts.pop(0))
        inner = _inner_model(field.annotation) if field is not None else None
        if field is None or inner is None:
            return []
        if typing.get_origin(field.annotation) in (dict, tuple):
            if not parts:
                return []
            parts.pop(0)
        model = inner
    return list(model.model_fields)


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``annotation`` (itself, a dict's values or a tuple's items), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None
