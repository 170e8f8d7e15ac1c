"""What an objective or a constraint of a spec may say: known metrics, goals, attainable bounds.

A model trial's metrics are a backtest's: a return is never below -100 %, a
drawdown lies in [0, 100] % and is better lower, a Sharpe ratio is better
higher. A threshold or bound outside what a metric can take, a goal against
its direction, or the buy-and-hold benchmark's figures (the same for every
configuration) are refused with one line that says what to write instead.
Closed-form problems (``market=False``) only get the goal checks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from engine.spec import ObjectiveSpec, OutcomeConstraint

__all__ = ["check_constraints", "check_objectives", "parse_constraint"]

_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class _MetricRange:
    """The values a model trial's metric can take, and the direction that is better."""

    low: float = -math.inf
    high: float = math.inf
    goal: Literal["max", "min"] | None = None
    #: a threshold at ``low`` is met by every configuration (returns are >= -100 %)
    above_low: bool = False


_METRIC_RANGES: dict[str, _MetricRange] = {
    "return_pct": _MetricRange(-100.0, goal="max", above_low=True),
    "sharpe": _MetricRange(goal="max"),
    "max_drawdown_pct": _MetricRange(0.0, 100.0, goal="min"),
    "win_rate_pct": _MetricRange(0.0, 100.0, goal="max"),
    "exposure_pct": _MetricRange(0.0, 100.0),
    "num_trades": _MetricRange(0.0),
    "profit_factor": _MetricRange(0.0, goal="max"),
    "avg_trade_pct": _MetricRange(-100.0, goal="max"),
    "val_accuracy": _MetricRange(0.0, 1.0, goal="max"),
    "val_loss": _MetricRange(0.0, goal="min"),
}
_BENCHMARK_PREFIX = "bh_"  # buy-and-hold figures: the same for every configuration


def check_objectives(
    strategy: str, objectives: Mapping[str, ObjectiveSpec], known: tuple[str, ...], *, market: bool
) -> None:
    for metric, objective in objectives.items():
        if metric not in known:
            raise ValueError(
                f"objectives: '{strategy}' does not report '{metric}'; known: {', '.join(known)}"
            )
        _check_metric_use(f"objectives.{metric}", metric, market=market)
        rule = _METRIC_RANGES.get(metric)
        if rule is not None:
            _check_objective_range(metric, objective, rule, market=market)
    if len(objectives) < 2:
        raise ValueError(
            f"objectives: a multi-objective study needs at least 2 objectives (got {len(objectives)}: "
            f"{', '.join(objectives) or 'none'}); add objectives from {', '.join(known)}, or remove "
            "the section for the default three"
        )


def _check_metric_use(where: str, metric: str, *, market: bool) -> None:
    if market and metric.startswith(_BENCHMARK_PREFIX):
        raise ValueError(
            f"{where}: '{metric}' is the buy-and-hold benchmark's figure, the same for every "
            f"configuration; use '{metric.removeprefix(_BENCHMARK_PREFIX)}' instead"
        )


def _check_objective_range(
    metric: str, objective: ObjectiveSpec, rule: _MetricRange, *, market: bool
) -> None:
    where = f"objectives.{metric}"
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
            f"{where}.threshold: {metric} {_span(rule)} (got {t:g}); set a threshold inside that range"
        )


def check_constraints(
    strategy: str,
    constraints: tuple[OutcomeConstraint, ...],
    objectives: Mapping[str, ObjectiveSpec],
    known: tuple[str, ...],
    *,
    market: bool,
) -> None:
    seen: dict[tuple[str, str], OutcomeConstraint] = {}
    for i, con in enumerate(constraints):
        where = f"constraints.{i}"
        if con.metric not in known:
            raise ValueError(
                f"{where}: '{strategy}' does not report '{con.metric}'; known: {', '.join(known)}"
            )
        if con.metric in objectives:
            raise ValueError(
                f"{where}: '{con.metric}' is an objective; set its threshold in objectives instead"
            )
        _check_metric_use(where, con.metric, market=market)
        rule = _METRIC_RANGES.get(con.metric)
        if market and rule is not None and not rule.low <= con.bound <= rule.high:
            raise ValueError(
                f"{where}: {con.metric} {_span(rule)} (got '{con}'); give a bound inside that range"
            )
        if (con.metric, con.op) in seen:
            raise ValueError(
                f"{where}: '{con}' repeats '{seen[con.metric, con.op]}' (the same metric and side); keep one"
            )
        seen[con.metric, con.op] = con
        other = seen.get((con.metric, "<=" if con.op == ">=" else ">="))
        if other is not None and _contradict(con, other):
            raise ValueError(f"{where}: '{con}' and '{other}' leave no value of {con.metric}; widen them")


def _span(rule: _MetricRange) -> str:
    if math.isinf(rule.high):
        return f"is never below {rule.low:g}"
    return f"lies in [{rule.low:g}, {rule.high:g}]"


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
