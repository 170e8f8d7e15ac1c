"""The experiment spec: one JSON file per study, parsed and validated once.

Everything below the CLI receives an :class:`ExperimentSpec` (frozen, typed)
and never indexes raw dictionaries. Unknown keys are errors, JSON types are
taken literally (``true`` is not 1, ``2.5`` is not an integer, NaN is not a
number), and every check that needs nothing but the spec happens here, so a
typo fails in a second instead of after an hour of training. Each error is
one line, ``<file>: <json.path>: what is wrong (got X); how to fix it``.

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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator

from engine.metric_rules import MetricCatalogue, check_constraints, check_objectives, parse_constraint
from engine.optimizer import OptimizerSpec
from engine.search_space import build_space
from objectives.config import BacktestSpec, DataSpec, SpecSection
from strategies.exceptions import ConfigError, SpecError
from strategies.space import SearchSpace

if TYPE_CHECKING:
    from engine.store import StudyStore

__all__ = [
    "BudgetSpec",
    "EarlyStoppingSpec",
    "ExecutorSpec",
    "ExperimentSpec",
    "MlflowSpec",
    "ObjectiveSpec",
    "OutcomeConstraint",
    "ParetoFoldsSpec",
    "SyntheticSpec",
    "TrackingSpec",
    "WarmStartSpec",
    "check_data_source",
    "load_spec",
    "parse_spec",
    "study_spec",
]

DEFAULT_OBJECTIVES: dict[str, dict[str, Any]] = {
    "return_pct": {"goal": "max", "threshold": -5.0},
    "sharpe": {"goal": "max", "threshold": -1.0},
    "max_drawdown_pct": {"goal": "min", "threshold": 25.0},
}


class ObjectiveSpec(SpecSection):
    """One objective and its threshold (its coordinate of the reference point).

    A configuration worse than a threshold adds nothing to the hypervolume, so
    thresholds say "worse than this is of no interest".
    """

    goal: Literal["max", "min"]
    threshold: float


class OutcomeConstraint(SpecSection):
    """``metric >= bound`` or ``metric <= bound`` on a non-objective metric."""

    metric: str
    op: Literal[">=", "<="]
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


class BudgetSpec(SpecSection):
    """How much the study may spend."""

    trials: int = Field(
        default=24,
        ge=1,
        le=100_000,
        description="trials evaluated by this study (priors included; "
        "trials attached from earlier studies are extra)",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="trials proposed at once (q); default: the executor's workers",
    )
    sobol_trials: int = Field(default=8, ge=1, description="quasi-random trials before the GP takes over")
    max_epochs: int = Field(default=10, ge=1, le=10_000, description="training epochs per trial at most")
    trial_time_budget_s: float | None = Field(
        default=None, gt=0, description="training stops (keeping its best epoch) after this many seconds"
    )
    trial_timeout_s: float = Field(
        default=1800.0, gt=0, description="a trial running longer than this is killed and marked failed"
    )
    max_consecutive_failures: int = Field(default=5, ge=1, description="stop the study after this many")

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        if self.sobol_trials > self.trials:
            raise ValueError(f"sobol_trials ({self.sobol_trials}) exceeds trials ({self.trials}); lower it")
        if self.batch_size is not None and self.batch_size > self.trials:
            raise ValueError(
                f"batch_size: {self.batch_size} trials at once exceed trials ({self.trials}); "
                f"lower batch_size to at most {self.trials} or raise trials"
            )
        if self.trial_time_budget_s is not None and self.trial_time_budget_s >= self.trial_timeout_s:
            raise ValueError(
                f"trial_time_budget_s must be below trial_timeout_s (the hard kill), got "
                f"{self.trial_time_budget_s:g} >= {self.trial_timeout_s:g}; lower it or raise trial_timeout_s"
            )
        return self


class ParetoFoldsSpec(SpecSection):
    """Stop a walk-forward trial after a fold when even its optimistic partial figures cannot reach
    the study's Pareto front (:mod:`engine.study.fold_stopping` has the rule)."""

    enabled: bool = False
    z: float = Field(
        default=1.645,
        gt=0,
        le=10,
        description="standard errors each partial objective is moved in its favourable direction",
    )
    min_folds: int = Field(default=1, ge=1, description="judge a trial only after this many folds")
    min_completed: int = Field(
        default=5, ge=1, description="completed trials (the front's candidates) needed before judging"
    )


class EarlyStoppingSpec(SpecSection):
    """Stop trials whose learning curve is in the worst percentile so far (``enabled``), and
    walk-forward trials that cannot reach the Pareto front after a fold (``pareto_folds``)."""

    enabled: bool = True
    metric: str = Field(
        default="val_sharpe",
        description="a learning-curve metric of the objective (val_sharpe, val_loss, ...)",
    )
    percentile: float = Field(
        default=25.0, gt=0, lt=100, description="stop a trial in the worst this-many percent at its epoch"
    )
    min_epochs: int = Field(default=3, ge=1, description="never stop before this many epochs")
    min_curves: int = Field(default=4, ge=2, description="curves needed at an epoch before comparing")
    patience: int = Field(
        default=1,
        ge=0,
        description="stop a trial only if it was in the worst percentile at every epoch of the last "
        "patience + 1 (per-epoch validation Sharpe is noisy; 0 decides on the latest epoch alone)",
    )
    pareto_folds: ParetoFoldsSpec = ParetoFoldsSpec()

    @model_validator(mode="after")
    def _check(self) -> EarlyStoppingSpec:
        if self.patience > self.min_epochs:
            raise ValueError(f"patience ({self.patience}) must be <= min_epochs ({self.min_epochs})")
        return self


class WarmStartSpec(SpecSection):
    """Start from what is already known."""

    studies: tuple[str, ...] = Field(
        default=(), description="earlier study directories to attach trials from"
    )
    priors: Literal["data_driven"] | None = Field(
        default=None, description="'data_driven': evaluate DataDrivenOptimizer suggestions first"
    )
    num_priors: int = Field(default=3, ge=1, le=32)
    previous_window: Literal["reevaluate", "attach", "none"] = Field(
        default="reevaluate",
        description="a study window (run --window) after an earlier one: 'reevaluate' runs the previous "
        "window's Pareto set and the live configuration again on this window's data first; 'attach' "
        "adds the previous window's trials as they were measured there (stale values); 'none'",
    )

    @model_validator(mode="after")
    def _check(self) -> WarmStartSpec:
        if self.priors is None and "num_priors" in self.model_fields_set:
            raise ValueError(
                "num_priors: used with priors 'data_driven' only (priors is not set); "
                'set "priors": "data_driven" or remove num_priors'
            )
        return self


class ExecutorSpec(SpecSection):
    """Where trials run. Workers x threads per worker never exceed the cores."""

    kind: Literal["local", "ray"] = "local"
    workers: int | None = Field(default=None, ge=1, le=4096, description="parallel trials; default: cores")
    threads_per_worker: int | None = Field(default=None, ge=1, description="default: cores // workers")
    address: str | None = Field(default=None, description="Ray: 'auto' or host:port; none starts a local Ray")
    gpus_per_trial: float = Field(default=0.0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    synchronous: bool = Field(
        default=False,
        description="propose the next batch only when the whole previous one finished: the same spec "
        "and seed then give the same proposals, at the cost of idle workers while a batch ends",
    )

    @model_validator(mode="after")
    def _check(self) -> ExecutorSpec:
        if self.kind == "local" and self.address is not None:
            raise ValueError("address is a Ray setting; set kind to 'ray' or remove address")
        if self.kind == "local" and self.gpus_per_trial > 0:
            raise ValueError(
                f"gpus_per_trial: a Ray setting (got {self.gpus_per_trial:g} with kind 'local'); "
                "set kind to 'ray' or remove gpus_per_trial"
            )
        if self.device == "cpu" and self.gpus_per_trial > 0:
            raise ValueError(
                f"gpus_per_trial: {self.gpus_per_trial:g} GPUs per trial with device 'cpu'; "
                "remove gpus_per_trial or set device to 'cuda' or 'auto'"
            )
        return self


class SyntheticSpec(SpecSection):
    """Settings of the synthetic problems (``"strategy": "synthetic:..."``) only."""

    epoch_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="simulated training time per epoch (for engine tests and demos)",
    )


#: URI schemes MLflow tracks to (a database through SQLAlchemy, with or without ``+driver``).
_MLFLOW_SCHEMES = ("http", "https", "databricks", "file", "sqlite", "postgresql", "mysql", "mssql")


class MlflowSpec(SpecSection):
    """Where an MLflow tracking server (or database) gets the study (optional extra ``mlflow``)."""

    uri: str = Field(
        description="tracking URI: http(s)://host:port, sqlite:///path/mlflow.db, postgresql://..., databricks"
    )
    experiment: str | None = Field(
        default=None, max_length=500, description="MLflow experiment name; default: the study's name"
    )

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0].lower() if ":" in value else ""
        if value == "databricks" or (scheme in _MLFLOW_SCHEMES and value.split(":", 1)[1].strip("/")):
            return value
        raise ValueError(
            f"not an MLflow tracking URI (got {json.dumps(value)}); give http(s)://host:port, "
            "sqlite:///path/mlflow.db, postgresql://user@host/db or databricks"
        )

    @field_validator("experiment")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "an empty experiment name; give a name, or remove experiment for the study's name"
            )
        return value


class TrackingSpec(SpecSection):
    """Where a study is reported besides its directory. Changing it never blocks a resume."""

    mlflow: MlflowSpec | None = None


#: ``data.end``: an ISO date or timestamp (never a word such as "now", which moves with the clock).
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d{1,9})?)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


class ExperimentSpec(SpecSection):
    """A whole study: what to search, on which data, judged how, within what budget."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    description: str = ""
    strategy: str
    data: DataSpec = DataSpec()
    search_space_preset: Literal["cpu", "gpu"] = Field(
        default="cpu",
        description="the family's default ranges: 'cpu' (minutes on 2 cores) or 'gpu' (the original sizes)",
    )
    search_space: dict[str, Any] = Field(default_factory=dict)
    objectives: dict[str, ObjectiveSpec] = Field(
        default_factory=lambda: {k: ObjectiveSpec(**v) for k, v in DEFAULT_OBJECTIVES.items()}
    )
    constraints: tuple[OutcomeConstraint, ...] = ()
    metrics: dict[str, str] = Field(
        default_factory=dict,
        description="user metrics for objectives and constraints: name -> 'package.module:function', "
        "a function of the per-bar net returns and positions (numpy arrays) that returns a float",
    )
    budget: BudgetSpec = BudgetSpec()
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    warm_start: WarmStartSpec = WarmStartSpec()
    backtest: BacktestSpec = BacktestSpec()
    executor: ExecutorSpec = ExecutorSpec()
    optimizer: OptimizerSpec = OptimizerSpec()
    synthetic: SyntheticSpec = SyntheticSpec()
    tracking: TrackingSpec = TrackingSpec()
    seed: int = Field(default=0, ge=0, lt=2**31)

    _space: SearchSpace = PrivateAttr()

    @field_validator("data", mode="before")
    @classmethod
    def _end_is_a_timestamp(cls, value: Any) -> Any:
        end = value.get("end") if isinstance(value, Mapping) else None
        if isinstance(end, str) and not _TIMESTAMP.match(end.strip()):
            raise ValueError(
                f"end: not a date or timestamp (got {json.dumps(end)}); write an ISO date or time, e.g. "
                "'2026-11-27' or '2026-11-27T23:00' (a word like 'now' moves with the clock, and the "
                "study could never resume)"
            )
        return value

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value
        return tuple(parse_constraint(i, v) for i, v in enumerate(value))

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        from engine.objective import objective_class

        try:
            objective = objective_class(self.strategy, self.data.validation.scheme)
            base = objective.default_space(self.strategy, self.search_space_preset)
        except ConfigError as exc:
            raise ValueError(f"strategy: {exc}") from None
        market = objective.scores_test  # a backtest's metrics, with their natural ranges
        catalogue = objective.metric_catalogue(self.strategy)
        _check_user_metrics(self.metrics, catalogue, market=market)
        catalogue = catalogue.with_user(self.metrics)
        check_objectives(self.strategy, self.objectives, catalogue, market=market)
        if market:
            _check_reachable(self.objectives)
        check_constraints(self.strategy, self.constraints, self.objectives, catalogue, market=market)
        self._check_cross_sections(objective.curve_metrics())
        self._check_pareto_folds(objective.name)
        try:
            self._space = build_space(objective.check_space, self.strategy, self.search_space, base)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        objective.check_spec(self)
        return self

    @property
    def space(self) -> SearchSpace:
        """The family's default space with this spec's overrides applied."""
        return self._space

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready dict with every default filled in (what the study ran with)."""
        return self.model_dump(mode="json")

    def given(self) -> dict[str, Any]:
        """Only what the spec set explicitly: re-parsed by later versions, whose defaults may differ."""
        return self.model_dump(mode="json", exclude_unset=True)

    def with_data_end(self, end: Any, *, source: str = "data.end") -> ExperimentSpec:
        """This spec with its data cut after ``end`` (a timestamp or ISO date; the bars up to and
        including it), checked again as a whole; what it set explicitly stays explicit."""
        raw = self.given()
        stamp = end.isoformat() if hasattr(end, "isoformat") else str(end)
        return parse_spec({**raw, "data": {**raw.get("data", {}), "end": stamp}}, source=source)

    def _check_cross_sections(self, curves: Mapping[str, bool]) -> None:
        """Rules between sections: budget vs. warm start and early stopping."""
        budget, es, warm = self.budget, self.early_stopping, self.warm_start
        if warm.priors is not None and warm.num_priors > budget.trials:
            raise ValueError(
                f"warm_start.num_priors: {warm.num_priors} priors exceed budget.trials ({budget.trials}); "
                f"lower num_priors to at most {budget.trials} or raise budget.trials"
            )
        if es.enabled and es.metric not in curves:
            raise ValueError(
                f"early_stopping.metric: '{self.strategy}' reports no learning curve '{es.metric}'"
                f"; known: {', '.join(curves) or 'none'}"
            )
        if es.enabled and es.min_epochs >= budget.max_epochs:
            raise ValueError(
                f"early_stopping.min_epochs: {es.min_epochs} is not below budget.max_epochs "
                f"({budget.max_epochs}), so no trial could be stopped early; lower min_epochs, raise "
                'max_epochs, or set "early_stopping": {"enabled": false}'
            )
        if es.enabled and es.min_curves > budget.trials:
            raise ValueError(
                f"early_stopping.min_curves: {es.min_curves} curves are needed to compare but the study "
                f"has {budget.trials} trials; lower min_curves or disable early stopping"
            )

    def _check_pareto_folds(self, objective: str) -> None:
        """Pareto-aware stopping across folds: walk-forward folds it can judge, trials to compare."""
        pf, v = self.early_stopping.pareto_folds, self.data.validation
        if not pf.enabled:
            return
        if objective != "walk_forward":
            raise ValueError(
                f"early_stopping.pareto_folds.enabled: judges walk-forward folds, but this study's trials "
                f"are '{objective}'; set data.validation.scheme to 'walk_forward' or disable it"
            )
        if pf.min_folds >= v.folds:
            raise ValueError(
                f"early_stopping.pareto_folds.min_folds: {pf.min_folds} is not below data.validation.folds "
                f"({v.folds}), and a trial is never judged after its last fold; lower min_folds"
            )
        if pf.min_completed > self.budget.trials:
            raise ValueError(
                f"early_stopping.pareto_folds.min_completed: {pf.min_completed} completed trials are "
                f"needed but the study has {self.budget.trials} trials; lower min_completed"
            )


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
        return ExperimentSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise SpecError(f"{source}: {_one_line(exc)}") from None


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
    from engine.objective import make_objective

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
