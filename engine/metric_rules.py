"""The metric catalogue, and what an objective or a constraint of a spec may say about a metric.

Every metric a study can report has one :class:`Metric` entry: its name, the
label tables, plots and progress lines show, its unit, the direction that is
better (``goal``), the values it can take and whether trials report a
bootstrap standard error of it. The objective owns its catalogue
(:meth:`engine.objective.base.Objective.metric_catalogue`): a model family's
comes from the backtest (:data:`MARKET_METRICS`, one entry per field of
:class:`objectives.backtest.BacktestResult` and the validation loss and
accuracy), a synthetic problem's from its definition, and a spec's user
metrics (``"metrics": {"name": "package.module:function"}``) are added as
entries without a goal or a range. A new metric is one computation in the
backtest and one entry here; every table, plot label, progress line, CLI
choice and check reads it from the catalogue.

A threshold is the worst value still of interest (the lowest for a metric
to maximise, the highest for one to minimise); a threshold or bound outside
what a metric can take, a goal against its direction, or the buy-and-hold
benchmark's figures (the same for every configuration) are refused with
one line that says what to write instead. Closed-form problems
(``market=False``) only get the goal checks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "MARKET_METRICS",
    "Metric",
    "MetricCatalogue",
    "check_constraints",
    "check_objectives",
    "parse_constraint",
]


class ObjectiveSpec(Protocol):
    """What the checks read of a spec's objective (:class:`engine.spec.ObjectiveSpec`)."""

    @property
    def goal(self) -> str: ...

    @property
    def threshold(self) -> float: ...


class OutcomeConstraint(Protocol):
    """What the checks read of an outcome constraint (:class:`engine.spec.OutcomeConstraint`)."""

    @property
    def metric(self) -> str: ...

    @property
    def op(self) -> str: ...

    @property
    def bound(self) -> float: ...


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")

Goal = Literal["max", "min"]


@dataclass(frozen=True)
class Metric:
    """One metric of the catalogue.

    Attributes:
        name: the key in a trial's metrics and in a spec's objectives and constraints.
        label: short text for table headers, parallel axes and progress lines (``"max drawdown %"``).
        unit: what a value counts (``"%"``, ``"annualised"``, ``"x a year"``, ...); "" for none.
        title: the long name of plot axes (``"Max drawdown"``; default: the label).
        goal: the better direction; None where either can be asked for (the spec's goal decides).
        low, high: the values a backtest can give it (closed-form problems are not checked).
        above_low: a threshold at ``low`` is met by every configuration (returns are >= -100 %).
        se: trials report a bootstrap standard error of it (Ax then models it as known noise).
        benchmark: a buy-and-hold figure, the same for every configuration (never an objective).
        user: a user metric (``"metrics"`` of the spec).
        doc: what it is, in one sentence (the README's table).
    """

    name: str
    label: str
    unit: str = ""
    goal: Goal | None = None
    low: float = -math.inf
    high: float = math.inf
    above_low: bool = False
    se: bool = False
    benchmark: bool = False
    user: bool = False
    doc: str = ""
    title: str = ""

    def axis_title(self, goal: Goal | None = None) -> str:
        """``'Max drawdown (%, lower is better)'`` (``goal`` overrides the metric's own direction)."""
        direction = "lower is better" if (goal or self.goal) == "min" else "higher is better"
        unit = f"{self.unit}, " if self.unit else ""
        return f"{self.title or self.label} ({unit}{direction})"

    def arrow_label(self, goal: Goal | None = None) -> str:
        """``'Sharpe ↑'``: the label with the better direction (``goal`` overrides the metric's own)."""
        direction = goal or self.goal
        return f"{self.label} {'↓' if direction == 'min' else '↑'}" if direction else self.label

    def span(self) -> str:
        if math.isinf(self.high):
            return f"is never below {self.low:g}"
        if math.isinf(self.low):
            return f"is never above {self.high:g}"
        return f"lies in [{self.low:g}, {self.high:g}]"


class MetricCatalogue(Mapping[str, Metric]):
    """Name -> :class:`Metric`, in reporting order; a name not in it gets a plain entry (its name as label)."""

    def __init__(self, metrics: Iterable[Metric] = ()) -> None:
        self._metrics = {m.name: m for m in metrics}

    def __getitem__(self, name: str) -> Metric:
        return self._metrics[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def __repr__(self) -> str:
        return f"MetricCatalogue({', '.join(self._metrics)})"

    @classmethod
    def plain(cls, names: Iterable[str], goals: Mapping[str, Goal] | None = None) -> MetricCatalogue:
        """Entries that are their name (a closed-form problem's metrics), with goals where known."""
        return cls(Metric(n, label=n, goal=(goals or {}).get(n)) for n in names)

    def info(self, name: str) -> Metric:
        """The entry of ``name``, or a plain one for a name the catalogue does not hold."""
        return self._metrics.get(name) or Metric(name, label=name)

    def label(self, name: str) -> str:
        return self.info(name).label

    def with_user(self, names: Iterable[str]) -> MetricCatalogue:
        """This catalogue plus the spec's user metrics (no goal, no range, no standard error)."""
        extra = [Metric(n, label=n, user=True, doc="user metric") for n in names if n not in self._metrics]
        return MetricCatalogue([*self._metrics.values(), *extra]) if extra else self

    def with_goal(self) -> tuple[str, ...]:
        """Names of the metrics with a better direction (those ``best --pick`` can choose by)."""
        return tuple(n for n, m in self._metrics.items() if m.goal is not None and not m.benchmark)


_RATIO_CAP = 100.0  # objectives.backtest.RATIO_CAP and PROFIT_FACTOR_CAP (engine reads no backtest here)

#: Every metric of a model trial, in reporting order (a backtest's fields, then the fit's).
MARKET_METRICS: tuple[Metric, ...] = (
    Metric(
        "return_pct",
        label="return %",
        title="Return",
        unit="%",
        goal="max",
        low=-100.0,
        above_low=True,
        se=True,
        doc="compounded net return over the out-of-sample bars, costs included",
    ),
    Metric(
        "sharpe",
        label="Sharpe",
        title="Sharpe ratio",
        unit="annualised",
        goal="max",
        se=True,
        doc="mean over standard deviation of the per-bar net returns, times the square root of the bars a year",
    ),
    Metric(
        "max_drawdown_pct",
        label="max drawdown %",
        title="Max drawdown",
        unit="%",
        goal="min",
        low=0.0,
        high=100.0,
        se=True,
        doc="largest peak-to-trough fall of the equity curve",
    ),
    Metric(
        "win_rate_pct",
        label="win rate %",
        title="Win rate",
        unit="%",
        goal="max",
        low=0.0,
        high=100.0,
        doc="share of round trips with a gain after costs",
    ),
    Metric(
        "num_trades",
        label="trades",
        title="Trades",
        low=0.0,
        doc="round trips: a position opened (or reversed) and closed",
    ),
    Metric(
        "profit_factor",
        label="profit factor",
        title="Profit factor",
        goal="max",
        low=0.0,
        high=_RATIO_CAP,
        doc="gains of the winning round trips over the losses of the losing ones (capped at 100, also with gains and no loss)",
    ),
    Metric(
        "exposure_pct",
        label="exposure %",
        title="Exposure",
        unit="%",
        low=0.0,
        high=100.0,
        doc="share of the bars holding a position",
    ),
    Metric(
        "avg_trade_pct",
        label="avg trade %",
        title="Average trade",
        unit="%",
        goal="max",
        low=-100.0,
        doc="mean return of a round trip, costs included",
    ),
    Metric(
        "sortino",
        label="Sortino",
        title="Sortino ratio",
        unit="annualised",
        goal="max",
        low=-_RATIO_CAP,
        high=_RATIO_CAP,
        se=True,
        doc="mean per-bar net return over its downside deviation (below 0), times the square root of the bars a year",
    ),
    Metric(
        "calmar",
        label="Calmar",
        title="Calmar ratio",
        goal="max",
        low=-_RATIO_CAP,
        high=_RATIO_CAP,
        se=True,
        doc="compound annual growth rate of the equity curve over its max drawdown (over the backtest's bars, not 36 months)",
    ),
    Metric(
        "turnover",
        label="turnover /yr",
        title="Turnover",
        unit="x a year",
        goal="min",
        low=0.0,
        doc="position changes a year, entry and exit included (2: one round trip of the whole capital); costs a year are the cost rate times it",
    ),
    Metric(
        "bh_return_pct",
        label="buy-and-hold return %",
        title="Buy-and-hold return",
        unit="%",
        low=-100.0,
        benchmark=True,
        doc="buy-and-hold over the same bars",
    ),
    Metric(
        "bh_sharpe",
        label="buy-and-hold Sharpe",
        title="Buy-and-hold Sharpe ratio",
        unit="annualised",
        benchmark=True,
        doc="buy-and-hold over the same bars",
    ),
    Metric(
        "bh_max_drawdown_pct",
        label="buy-and-hold max drawdown %",
        title="Buy-and-hold max drawdown",
        unit="%",
        low=0.0,
        high=100.0,
        benchmark=True,
        doc="buy-and-hold over the same bars",
    ),
    Metric(
        "val_accuracy",
        label="validation accuracy",
        title="Validation accuracy",
        unit="fraction",
        goal="max",
        low=0.0,
        high=1.0,
        doc="share of the out-of-sample bars whose action label the model predicted",
    ),
    Metric(
        "val_loss",
        label="validation loss",
        title="Validation loss",
        goal="min",
        low=0.0,
        doc="the training loss on the out-of-sample bars",
    ),
)


def check_objectives(
    strategy: str, objectives: Mapping[str, ObjectiveSpec], catalogue: MetricCatalogue, *, market: bool
) -> None:
    known = tuple(catalogue)
    for metric, objective in objectives.items():
        if metric not in catalogue:
            raise ValueError(
                f"objectives: '{strategy}' does not report '{metric}'; known: {', '.join(known)}"
            )
        _check_metric_use(f"objectives.{metric}", catalogue[metric], market=market)
        _check_objective_range(catalogue[metric], objective, market=market)
    if len(objectives) < 2:
        raise ValueError(
            f"objectives: a multi-objective study needs at least 2 objectives (got {len(objectives)}: "
            f"{', '.join(objectives) or 'none'}); add objectives from {', '.join(known)}, or remove "
            "the section for the default three"
        )


def _check_metric_use(where: str, metric: Metric, *, market: bool) -> None:
    if market and metric.benchmark:
        raise ValueError(
            f"{where}: '{metric.name}' is the buy-and-hold benchmark's figure, the same for every "
            f"configuration; use '{metric.name.removeprefix('bh_')}' instead"
        )


def _check_objective_range(rule: Metric, objective: ObjectiveSpec, *, market: bool) -> None:
    metric, where = rule.name, f"objectives.{rule.name}"
    if rule.goal is not None and objective.goal != rule.goal:
        better = "higher" if rule.goal == "max" else "lower"
        raise ValueError(
            f'{where}.goal: {better} {metric} is better (got "{objective.goal}"); set "goal": "{rule.goal}"'
        )
    if not market:
        return
    t = objective.threshold
    if rule.above_low and t <= rule.low:
        raise ValueError(
            f"{where}.threshold: every configuration reaches {metric} {rule.low:g} (got {t:g}), so the "
            f"threshold says nothing; set it above {rule.low:g}, e.g. {rule.low / 20:g}"
        )
    if not rule.low <= t <= rule.high:
        raise ValueError(
            f"{where}.threshold: {metric} {rule.span()} (got {t:g}); set a threshold inside that range"
        )


def check_constraints(
    strategy: str,
    constraints: tuple[OutcomeConstraint, ...],
    objectives: Mapping[str, ObjectiveSpec],
    catalogue: MetricCatalogue,
    *,
    market: bool,
) -> None:
    seen: dict[tuple[str, str], OutcomeConstraint] = {}
    for i, con in enumerate(constraints):
        where = f"constraints.{i}"
        if con.metric not in catalogue:
            raise ValueError(
                f"{where}: '{strategy}' does not report '{con.metric}'; known: {', '.join(catalogue)}"
            )
        if con.metric in objectives:
            raise ValueError(
                f"{where}: '{con.metric}' is an objective; set its threshold in objectives instead"
            )
        rule = catalogue[con.metric]
        _check_metric_use(where, rule, market=market)
        if market and not rule.low <= con.bound <= rule.high:
            raise ValueError(
                f"{where}: {con.metric} {rule.span()} (got '{con}'); give a bound inside that range"
            )
        if (con.metric, con.op) in seen:
            raise ValueError(
                f"{where}: '{con}' repeats '{seen[con.metric, con.op]}' (the same metric and side); keep one"
            )
        seen[con.metric, con.op] = con
        other = seen.get((con.metric, "<=" if con.op == ">=" else ">="))
        if other is not None and _contradict(con, other):
            raise ValueError(f"{where}: '{con}' and '{other}' leave no value of {con.metric}; widen them")


def _contradict(a: OutcomeConstraint, b: OutcomeConstraint) -> bool:
    low, high = (a, b) if a.op == ">=" else (b, a)
    return low.bound > high.bound


def parse_constraint(index: int, item: Any) -> Any:
    """``"num_trades >= 10"`` -> the fields of an :class:`OutcomeConstraint`; objects pass through."""
    if isinstance(item, Mapping):
        return item
    example = "'num_trades >= 10' (metric, >= or <=, number)"
    if not isinstance(item, str):
        raise ValueError(
            f"item {index} must be a string like {example} (got {json.dumps(item, default=str)})"
        )
    m = _CONSTRAINT_RE.match(item)
    try:
        bound = float(m.group(3)) if m else math.nan
    except ValueError:
        bound = math.nan
    if m is None or not math.isfinite(bound):
        raise ValueError(f"constraint '{item}' must look like {example}")
    return {"metric": m.group(1), "op": m.group(2), "bound": bound}
