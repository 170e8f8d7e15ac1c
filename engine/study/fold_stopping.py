"""Pareto-aware stopping across folds: stop a walk-forward trial that can no longer reach the front.

A walk-forward trial trains and trades its K folds one after another. After
fold k < K (k >= ``min_folds``) the trial sends one **fold report** through the
channel its per-epoch reports take: its partial figures, those of one backtest
of the stitched out-of-fold positions of folds 1..k, computed by the functions
its final figures use (:func:`objectives.walk_forward.stitched_figures`:
:func:`~objectives.backtest.run_backtest` and the stationary-bootstrap
standard errors of :mod:`objectives.noise`). The driver judges it with
:func:`judge`, asks the trial to stop when it cannot reach the front (as
the per-epoch early stopping does) and answers every fold report; the trial
waits for that answer (:func:`await_answer`, at most
:data:`FOLD_ANSWER_WAIT_S`) before its next fold, so a stop costs no
training of fold k + 1. A driver busy longer (fitting the GP) lets the trial
train on; its stop, if it comes, then takes effect at the next stop check.
The rule:

1. Judge only when ``min_folds <= k < K`` and the study has at least
   ``min_completed`` completed trials of its own with every objective finite
   and every outcome constraint met (the trials the front is drawn from;
   trials attached from another study are not).
2. The **optimistic corner**: each objective of the partial trial moved in its
   favourable direction, made comparable with a complete trial's figure:

   - ``sharpe``, ``sortino``, ``calmar``: annualised already, so comparable as
     they are; moved by ``z`` standard errors (value + z·SE for a maximised
     objective, value - z·SE for a minimised one).
   - ``return_pct``: compounded over n of the N out-of-sample bars, so moved by
     ``z`` standard errors and then compounded to the full length:
     ``100 · ((1 + (r ± z·SE) / 100) ^ (N / n) - 1)``.
   - ``max_drawdown_pct``: the drawdown realised on the bars every
     continuation of the trial shares (all but the partial backtest's last
     bar, whose exit to flat and missing next-bar return the complete
     backtest does not have). A longer equity curve can only add to it, so
     this is already the most favourable value the final figure can take;
     no standard error is added.
   - any other objective (no standard error, or no rule to extrapolate it):
     +inf in its favourable direction, i.e. the trial is never worse there.

   The default z = 1.645 is the one-sided 95 % quantile, and it is applied
   to the partial figures' own standard error, which is wider than the
   spread of the final figure given folds 1..k (about
   ``SE · sqrt((N - n) / N)``: the bars seen are fixed). So it is z ≈ 2.0 on
   that spread after a third of the bars and z ≈ 2.85 after two thirds: a
   margin against the front's own figures being lucky (the best of many
   noisy trials) and against later folds trading a different market.
3. **Stop** when the corner fails an objective threshold (worse than the
   reference point: it adds nothing to the hypervolume, whatever it does
   later) or when a trial of the current front dominates it (at least as
   good on every objective and better on one, with the objectives' goals).

A stopped trial is ``early_stopped``: its partial figures stay out of its
metrics and never reach the GP (only its learning curve is attached, as for
any early-stopped trial); it counts among the trials the verdict's trial
ledger counts; its record's ``info["pareto_stop"]`` holds the decision
(:meth:`FoldDecision.to_info`) and the report lists it with its figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.records import ObjectiveSet, TrialRecord

__all__ = [
    "FOLD_ANSWER_WAIT_S",
    "FOLD_REPORT_KEY",
    "FoldDecision",
    "PartialTrial",
    "await_answer",
    "describe_stop",
    "is_fold_report",
    "judge",
    "optimistic_corner",
]

#: The key that marks a fold report on the per-epoch channel (its value: folds done).
FOLD_REPORT_KEY = "pareto_fold"
#: Seconds a trial waits after a fold report for the driver's answer (then it trains on).
FOLD_ANSWER_WAIT_S = 10.0
#: Objectives judged with value ± z·SE (annualised: a partial figure compares with a final one).
RATE_FIGURES = ("sharpe", "sortino", "calmar")


@dataclass(frozen=True)
class PartialTrial:
    """A walk-forward trial's figures after ``folds_done`` of its ``n_folds`` folds.

    ``bars``: out-of-sample bars traded so far (n); ``bars_total``: all the
    folds' bars (N); ``values``/``sems``: the partial backtest's figures and
    their bootstrap standard errors; ``drawdown_bound``: the drawdown every
    continuation shares (see the module docstring).
    """

    folds_done: int
    n_folds: int
    bars: int
    bars_total: int
    values: Mapping[str, float]
    sems: Mapping[str, float] = field(default_factory=dict)
    drawdown_bound: float | None = None

    def to_report(self) -> dict[str, float]:
        """The channel's report: flat floats, marked by :data:`FOLD_REPORT_KEY`."""
        out = {
            FOLD_REPORT_KEY: float(self.folds_done),
            "folds": float(self.n_folds),
            "bars": float(self.bars),
            "bars_total": float(self.bars_total),
        }
        if self.drawdown_bound is not None:
            out["drawdown_bound"] = float(self.drawdown_bound)
        out.update({f"value.{k}": float(v) for k, v in self.values.items()})
        out.update({f"se.{k}": float(v) for k, v in self.sems.items()})
        return out

    @classmethod
    def from_report(cls, report: Mapping[str, float]) -> PartialTrial:
        bound = report.get("drawdown_bound")
        return cls(
            folds_done=int(report[FOLD_REPORT_KEY]),
            n_folds=int(report["folds"]),
            bars=int(report["bars"]),
            bars_total=int(report["bars_total"]),
            values={k[6:]: float(v) for k, v in report.items() if k.startswith("value.")},
            sems={k[3:]: float(v) for k, v in report.items() if k.startswith("se.")},
            drawdown_bound=None if bound is None else float(bound),
        )


def is_fold_report(report: Mapping[str, float]) -> bool:
    """A fold report (not a per-epoch one)."""
    return FOLD_REPORT_KEY in report


@dataclass(frozen=True)
class FoldDecision:
    """The judgement of one fold report: stop or continue, and the figures it rests on."""

    stop: bool
    partial: PartialTrial
    z: float
    corner: dict[str, float]
    dominated_by: int | None = None
    failed_threshold: str | None = None

    @property
    def reason(self) -> str:
        """One line for the trial's record (its ``reason``)."""
        p = self.partial
        where = f"after fold {p.folds_done} of {p.n_folds}"
        if self.failed_threshold is not None:
            return (
                f"Pareto fold stop {where}: even its optimistic {self.failed_threshold} "
                f"({self.corner[self.failed_threshold]:.4g}) fails the objective's threshold"
            )
        if self.dominated_by is not None:
            return (
                f"Pareto fold stop {where}: its optimistic corner is dominated by trial {self.dominated_by}"
            )
        return f"continues {where}: its optimistic corner can still reach the front"

    def to_info(self) -> dict[str, Any]:
        """JSON-ready: what the trial's ``info["pareto_stop"]`` holds."""
        p = self.partial
        return {
            "fold": p.folds_done,
            "folds": p.n_folds,
            "bars": p.bars,
            "bars_total": p.bars_total,
            "z": self.z,
            "partial": {k: _json(v) for k, v in p.values.items()},
            "sems": {k: _json(v) for k, v in p.sems.items()},
            "drawdown_bound": p.drawdown_bound,
            "corner": {k: _json(v) for k, v in self.corner.items()},
            "dominated_by": self.dominated_by,
            "failed_threshold": self.failed_threshold,
            "reason": self.reason,
        }


def _json(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def optimistic_corner(objectives: ObjectiveSet, partial: PartialTrial, z: float) -> dict[str, float]:
    """Each objective of ``partial`` moved in its favourable direction (see the module docstring)."""
    corner: dict[str, float] = {}
    for name, maximize in zip(objectives.names, objectives.maximize):
        sign = 1.0 if maximize else -1.0
        value = partial.values.get(name, math.nan)
        se = partial.sems.get(name, math.nan)
        if name == "max_drawdown_pct" and not maximize and partial.drawdown_bound is not None:
            corner[name] = float(partial.drawdown_bound)
        elif name == "return_pct" and math.isfinite(value) and math.isfinite(se) and partial.bars > 0:
            growth = 1.0 + (value + sign * z * se) / 100.0
            scale = partial.bars_total / partial.bars
            corner[name] = 100.0 * (math.exp(scale * math.log(growth)) - 1.0) if growth > 0 else -100.0
        elif name in RATE_FIGURES and math.isfinite(value) and math.isfinite(se):
            corner[name] = value + sign * z * se
        else:
            corner[name] = sign * math.inf  # cannot be judged: never worse there
    return corner


def judge(
    partial: PartialTrial,
    records: Iterable[TrialRecord],
    objectives: ObjectiveSet,
    *,
    z: float,
    min_folds: int,
    min_completed: int,
) -> FoldDecision | None:
    """Stop or continue a trial after a fold (see the module docstring); None when not judged
    (before ``min_folds``, at the last fold, or before ``min_completed`` completed trials)."""
    if partial.folds_done < min_folds or partial.folds_done >= partial.n_folds:
        return None
    done = [r for r in records if r.status == "completed" and objectives.feasible(r) and not r.attached]
    if len(done) < min_completed:
        return None
    corner = optimistic_corner(objectives, partial, z)
    signs = [1.0 if mx else -1.0 for mx in objectives.maximize]
    for name, sign, threshold in zip(objectives.names, signs, objectives.thresholds):
        if sign * corner[name] < sign * threshold:
            return FoldDecision(True, partial, z, corner, failed_threshold=name)
    mine = [s * corner[n] for n, s in zip(objectives.names, signs)]
    for rec in objectives.front(done):
        theirs = [s * rec.metrics[n] for n, s in zip(objectives.names, signs)]
        if all(t >= m for t, m in zip(theirs, mine)) and any(t > m for t, m in zip(theirs, mine)):
            return FoldDecision(True, partial, z, corner, dominated_by=rec.index)
    return FoldDecision(False, partial, z, corner)


class _Answers(Protocol):
    """What a trial's channel (:class:`engine.study.trial.Channel`) tells a worker waiting on a fold report."""

    def should_stop(self, trial_index: int) -> bool: ...


def await_answer(
    channel: _Answers,
    trial_index: int,
    fold: int,
    *,
    wait_s: float = FOLD_ANSWER_WAIT_S,
    poll_s: float = 0.05,
) -> bool:
    """After fold report ``fold``: True when the driver asks the trial to stop. Waits until the
    driver has answered the report (stop or go on) or ``wait_s`` passed; a channel that cannot
    answer fold reports is not waited for."""
    answered = getattr(channel, "fold_answered", None)
    deadline = time.monotonic() + wait_s
    while answered is not None and time.monotonic() < deadline:
        if answered(trial_index, fold):
            break  # a stop is requested before the answer is given
        if channel.should_stop(trial_index):
            return True
        time.sleep(poll_s)
    return channel.should_stop(trial_index)


def describe_stop(info: Mapping[str, Any]) -> str:
    """The figures of a Pareto fold stop (a record's ``info["pareto_stop"]``), for the report."""
    partial, sems, corner = info.get("partial", {}), info.get("sems", {}), info.get("corner", {})
    figures = ", ".join(
        f"{k} {_fmt(partial.get(k))}" + (f" ± {_fmt(sems[k])}" if k in sems else "") + f" -> {_fmt(v)}"
        for k, v in corner.items()
    )
    bars = f"{info.get('bars')} of {info.get('bars_total')} bars"
    return f"partial figures over {bars} -> optimistic corner (z = {info.get('z')}): {figures}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
