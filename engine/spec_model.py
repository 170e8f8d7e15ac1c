"""The experiment spec's typed model: the sections of one study's JSON and the checks that need
nothing but the spec itself.

Read a spec with :func:`engine.spec.parse_spec` or :func:`engine.spec.load_spec`: they validate
this model, then check it against its objective (the strategy's metric catalogue and default
space) and build its search space. This module imports nothing of engine/objective/, so the
objectives are typed against :class:`ExperimentSpec` without an import circle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from engine.metric_rules import parse_constraint
from engine.optimizer import OptimizerSpec
from objectives.config import BacktestSpec, DataSpec, SpecSection
from strategies.space import SearchSpace

__all__ = [
    "DEFAULT_OBJECTIVES",
    "SOBOL_TRIALS_NOISELESS",
    "SOBOL_TRIALS_NOISY",
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
]

#: ``budget.sobol_trials`` by default for trials with and without standard errors (BudgetSpec.sobol_count).
SOBOL_TRIALS_NOISY = 8
SOBOL_TRIALS_NOISELESS = 4

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
    sobol_trials: int | None = Field(
        default=None,
        ge=1,
        description="quasi-random trials before the GP takes over; default: 8 when trials report "
        "standard errors (every model family: a GP fitted to a few noisy Sharpe ratios proposes from "
        "noise), 4 when they do not (noiseless synthetic problems, where starting the model early "
        "pays), at most trials",
    )
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
        if self.sobol_trials is not None and self.sobol_trials > self.trials:
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

    def sobol_count(self, *, noisy: bool) -> int:
        """The quasi-random trials of a study whose trials report standard errors (``noisy``) or not:
        ``sobol_trials`` when given, else :data:`SOBOL_TRIALS_NOISY` or :data:`SOBOL_TRIALS_NOISELESS`
        (at most ``trials``). Measured in ``benchmarks/RESULTS.md``: with 4, six noiseless test problems
        are within 0.05 log10 regret of Ax's default at 48 evaluations (one, Penicillin, is worse than
        with 8 at 96); on the generated trading problem 4 picked worse configurations than 8."""
        if self.sobol_trials is not None:
            return self.sobol_trials
        return min(SOBOL_TRIALS_NOISY if noisy else SOBOL_TRIALS_NOISELESS, self.trials)


class ParetoFoldsSpec(SpecSection):
    """Stop a walk-forward trial after a fold when even its optimistic partial figures cannot reach
    the study's Pareto front (:mod:`engine.study.fold_stopping` has the rule).

    ``enabled``: ``"auto"`` (the default) turns it on wherever it applies: walk-forward trials with
    a fold left after ``min_folds`` and a budget of at least ``min_completed`` trials; elsewhere it
    is off. ``true`` turns it on and refuses a spec where it cannot apply; ``false`` turns it off.
    On the trading benchmark it cut a study's run time to 0.74x with a knee no worse on held-out
    data (benchmarks/RESULTS.md, "Pareto-aware stopping across folds")."""

    enabled: bool | Literal["auto"] = Field(
        default="auto",
        description='"auto": on for walk-forward studies it can judge; true: on (an error where it '
        "cannot apply); false: off",
    )
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

    @field_validator("enabled", mode="before")
    @classmethod
    def _true_false_or_auto(cls, value: Any) -> Any:
        if isinstance(value, bool) or value == "auto":
            return value
        raise ValueError(
            f'Input should be true, false or "auto" (got {json.dumps(value, default=str)}); '
            'write true or false without quotes, or "auto"'
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


class SelectionSpec(SpecSection):
    """How the Pareto front and the pick are chosen from the evaluated configurations."""

    front: Literal["observed", "posterior_mean"] = Field(
        default="observed",
        description="'observed': from the trials' observed objectives; 'posterior_mean': from the GP's "
        "posterior mean at the evaluated configurations, which shrinks a lucky observation towards "
        "what its neighbours say (benchmarks/RESULTS.md, item 3: neither choice wins on the trading "
        "benchmark, so the default is 'observed')",
    )


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
    selection: SelectionSpec = SelectionSpec()
    seed: int = Field(default=0, ge=0, lt=2**31)

    _space: SearchSpace = PrivateAttr()
    _pareto_folds_on: bool | None = PrivateAttr(default=None)

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

    @property
    def space(self) -> SearchSpace:
        """The family's default space with this spec's overrides applied (built by
        :func:`engine.spec.parse_spec`, which checks the spec against its objective)."""
        try:
            return self._space
        except AttributeError:
            raise AttributeError(
                "this ExperimentSpec was not made by engine.spec.parse_spec or load_spec, which check it "
                "against its objective and build its search space; make it with one of them"
            ) from None

    @property
    def pareto_folds_on(self) -> bool:
        """Whether Pareto-aware stopping across folds runs in this study: ``early_stopping.pareto_folds.
        enabled`` resolved against the objective by :meth:`check_pareto_folds` ("auto": where it applies),
        which :func:`engine.spec.parse_spec` calls."""
        if self._pareto_folds_on is None:
            raise AttributeError(
                "this ExperimentSpec was not made by engine.spec.parse_spec or load_spec, which resolve "
                "early_stopping.pareto_folds against its objective; make it with one of them"
            )
        return self._pareto_folds_on

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready dict with every default filled in (what the study ran with)."""
        return self.model_dump(mode="json")

    def given(self) -> dict[str, Any]:
        """Only what the spec set explicitly: re-parsed by later versions, whose defaults may differ."""
        return self.model_dump(mode="json", exclude_unset=True)

    def check_cross_sections(self, curves: Mapping[str, bool]) -> None:
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

    def check_pareto_folds(self, objective: str) -> None:
        """Pareto-aware stopping across folds: walk-forward folds it can judge, trials to compare."""
        pf, v = self.early_stopping.pareto_folds, self.data.validation
        if pf.enabled == "auto":
            self._pareto_folds_on = (
                objective == "walk_forward"
                and pf.min_folds < v.folds
                and pf.min_completed <= self.budget.trials
            )
            return
        self._pareto_folds_on = False
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
        self._pareto_folds_on = True
