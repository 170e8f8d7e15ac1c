"""The experiment spec: one JSON file per study, parsed and validated once.

Everything below the CLI receives an :class:`ExperimentSpec` (frozen, typed)
and never indexes raw dictionaries. Unknown keys are errors, so a typo in a
spec fails in a second instead of after an hour of training.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.optimizer import OptimizerSpec
from objectives.config import BacktestSpec, DataSpec
from strategies.exceptions import ConfigError, SpecError
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, Param, SearchSpace

__all__ = [
    "BudgetSpec",
    "EarlyStoppingSpec",
    "ExecutorSpec",
    "ExperimentSpec",
    "ObjectiveSpec",
    "OutcomeConstraint",
    "SyntheticSpec",
    "WarmStartSpec",
    "load_spec",
    "parse_spec",
]

DEFAULT_OBJECTIVES: dict[str, dict[str, Any]] = {
    "return_pct": {"goal": "max", "threshold": -5.0},
    "sharpe": {"goal": "max", "threshold": -1.0},
    "max_drawdown_pct": {"goal": "min", "threshold": 25.0},
}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectiveSpec(_Frozen):
    """One objective and its threshold (its coordinate of the reference point).

    A configuration worse than a threshold adds nothing to the hypervolume, so
    thresholds say "worse than this is of no interest".
    """

    goal: Literal["max", "min"]
    threshold: float


class OutcomeConstraint(_Frozen):
    """``metric >= bound`` or ``metric <= bound`` on a non-objective metric."""

    metric: str
    op: Literal[">=", "<="]
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


class BudgetSpec(_Frozen):
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
        if self.trial_time_budget_s is not None and self.trial_time_budget_s >= self.trial_timeout_s:
            raise ValueError("trial_time_budget_s must be below trial_timeout_s (the hard kill)")
        return self


class EarlyStoppingSpec(_Frozen):
    """Stop trials whose learning curve is in the worst percentile so far."""

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

    @model_validator(mode="after")
    def _check(self) -> EarlyStoppingSpec:
        if self.patience > self.min_epochs:
            raise ValueError(f"patience ({self.patience}) must be <= min_epochs ({self.min_epochs})")
        return self


class WarmStartSpec(_Frozen):
    """Start from what is already known."""

    studies: tuple[str, ...] = Field(
        default=(), description="earlier study directories to attach trials from"
    )
    priors: Literal["data_driven"] | None = Field(
        default=None, description="'data_driven': evaluate DataDrivenOptimizer suggestions first"
    )
    num_priors: int = Field(default=3, ge=1, le=32)


class ExecutorSpec(_Frozen):
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
        return self


class SyntheticSpec(_Frozen):
    """Settings of the synthetic problems (``"strategy": "synthetic:..."``) only."""

    epoch_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="simulated training time per epoch (for engine tests and demos)",
    )


class ExperimentSpec(_Frozen):
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
    budget: BudgetSpec = BudgetSpec()
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    warm_start: WarmStartSpec = WarmStartSpec()
    backtest: BacktestSpec = BacktestSpec()
    executor: ExecutorSpec = ExecutorSpec()
    optimizer: OptimizerSpec = OptimizerSpec()
    synthetic: SyntheticSpec = SyntheticSpec()
    seed: int = Field(default=0, ge=0, lt=2**31)

    _space: SearchSpace = PrivateAttr()

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value
        return tuple(_parse_constraint(v) if isinstance(v, str) else v for v in value)

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        from engine.objective import objective_class

        try:
            objective = objective_class(self.strategy, self.data.validation.scheme)
            base = objective.default_space(self.strategy, self.search_space_preset)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        known = objective.metric_names(self.strategy)
        for metric in self.objectives:
            if metric not in known:
                raise ValueError(
                    f"objectives: '{self.strategy}' does not report '{metric}'; known: {', '.join(known)}"
                )
        if len(self.objectives) < 2:
            raise ValueError("objectives: a multi-objective study needs at least 2 objectives")
        for con in self.constraints:
            if con.metric not in known:
                raise ValueError(
                    f"constraints: '{self.strategy}' does not report '{con.metric}'; known: {', '.join(known)}"
                )
            if con.metric in self.objectives:
                raise ValueError(
                    f"constraints: '{con.metric}' is an objective; set its threshold in objectives instead"
                )
        curves = objective.curve_metrics()
        if self.early_stopping.enabled and self.early_stopping.metric not in curves:
            raise ValueError(
                f"early_stopping.metric: '{self.strategy}' reports no learning curve '{self.early_stopping.metric}'"
                f"; known: {', '.join(curves) or 'none'}"
            )
        try:
            self._space = base.with_overrides(
                _parse_param(name, raw, base) for name, raw in self.search_space.items()
            )
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


def _parse_constraint(text: str) -> OutcomeConstraint:
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise ValueError(f"constraint '{text}' must look like 'num_trades >= 10' (metric, >= or <=, number)")
    return OutcomeConstraint(metric=m.group(1), op=m.group(2), bound=float(m.group(3)))  # type: ignore[arg-type]


def _parse_param(name: str, raw: Any, base: SearchSpace) -> Param:
    """One ``search_space`` entry -> a Param; the type defaults to the family's.

    Besides the family's own parameters, any training parameter (say
    ``confidence_gate`` or ``loss``) may be added; it then needs an explicit
    ``type`` (or a fixed value), as there is no default to take it from.
    """
    default = base.get(name)
    if default is None and not _is_training_param(name, base):
        raise ConfigError(f"search_space: unknown parameter '{name}'; known: {', '.join(base.names)}")
    if not isinstance(raw, Mapping):
        return FixedParam(name, raw)
    unknown = set(raw) - {"type", "low", "high", "log", "values", "ordered", "value"}
    if unknown:
        raise ConfigError(
            f"search_space.{name}: unknown key(s) {sorted(unknown)}; use type, low, high, log, values, "
            "ordered or value"
        )
    kind = raw.get("type") or _default_kind(raw, default)
    try:
        if kind == "fixed":
            return FixedParam(name, raw["value"])
        if kind == "choice":
            return ChoiceParam(name, tuple(raw["values"]), bool(raw.get("ordered", True)))
        if kind == "float":
            return FloatParam(name, float(raw["low"]), float(raw["high"]), bool(raw.get("log", False)))
        if kind == "int":
            return IntParam(name, raw["low"], raw["high"], bool(raw.get("log", False)))
    except KeyError as exc:
        raise ConfigError(f"search_space.{name}: type '{kind}' needs key {exc}") from None
    raise ConfigError(f"search_space.{name}: unknown type '{kind}'; use float, int, choice or fixed")


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


def parse_spec(raw: Mapping[str, Any], *, source: str = "<spec>") -> ExperimentSpec:
    """Validate a parsed JSON object; raise :class:`SpecError` with one clear line."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"{source}: the spec must be a JSON object, got {type(raw).__name__}")
    try:
        return ExperimentSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise SpecError(f"{source}: {_one_line(exc)}") from None


def load_spec(path: str | os.PathLike[str]) -> ExperimentSpec:
    """Read and validate a spec file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: no such spec file; give the path of an experiment JSON (see experiments/)")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(f"{p}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text ({exc.reason})") from None
    return parse_spec(raw, source=str(p))


def _one_line(exc: ValidationError) -> str:
    """The first validation error as 'field.path: what is wrong (got X)'."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(x) for x in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(err["loc"][:-1])
        hint = f"; known keys: {', '.join(known)}" if known else ""
        return f"{loc}: unknown key{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    where = f"{loc}: " if loc else ""
    got = ""
    if kind not in ("value_error", "missing") and "input" in err and not isinstance(err["input"], dict):
        got = f" (got {json.dumps(err['input'], default=str)})"
    return f"{where}{msg}{got}"


def _known_keys(path: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``path`` inside :class:`ExperimentSpec`."""
    model: Any = ExperimentSpec
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
