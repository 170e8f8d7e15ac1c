"""Trial records and what is computed from them: feasibility, Pareto front,
hypervolume, the knee point.

A record is the driver's account of one trial (``trials/<i>/result.json``).
The output commands (status, pareto, best, report) read records, not the Ax
database, so they are fast and work while a study is running.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

__all__ = [
    "REEVALUATED_SOURCES",
    "ObjectiveSet",
    "StudyState",
    "TrialRecord",
    "dominated_hypervolume",
    "non_dominated",
    "study_state",
]

#: Sources of configurations run again in a new study window (:mod:`engine.weekly.carry_over`): they are compared
#: with the window's own choice, so they always run to the end (never stopped early).
REEVALUATED_SOURCES = frozenset({"champion", "previous_front"})

STATUSES = ("running", "completed", "early_stopped", "failed", "abandoned")


class StudyState(StrEnum):
    """Where a study stands, in the one vocabulary of ``status``, the windows and the dashboard."""

    STARTING = "starting"  # a run holds it and no trial has started yet
    RUNNING = "running"  # a run holds it
    FINISHED = "finished"  # its budget is spent and a run wrote its final outputs
    INTERRUPTED = "interrupted"  # no run holds it and it has not finished: the same command resumes it
    DAMAGED = "damaged"  # its files cannot be read (the dashboard says why)


def study_state(records: Sequence[TrialRecord], budget: int, *, running: bool, ended: bool) -> StudyState:
    """The state of a study from its records, its trial budget, whether a run holds it now and
    whether a run wrote its final outputs."""
    if running:
        return StudyState.RUNNING if records else StudyState.STARTING
    spent = sum(r.counts_against_budget for r in records) >= budget
    return StudyState.FINISHED if spent and ended else StudyState.INTERRUPTED


@dataclass
class TrialRecord:
    """One trial as the study store keeps it."""

    index: int
    status: str
    params: dict[str, Any]
    # "center", "sobol", "model", "prior", "baseline", "warm_start:<study>", "champion", "previous_front"
    source: str = "model"
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    epochs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    sems: dict[str, float] = field(default_factory=dict)  # standard errors of metrics that have one
    info: dict[str, Any] = field(default_factory=dict)  # objective-specific details (per-fold figures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def attached(self) -> bool:
        """Attached from another study (``--warm-start``, ``previous_window: attach``): measured
        there, on other bars. It guides the GP only: never on the front, never picked, and not
        in this study's budget (the trial ledger counts it where it was tried)."""
        return self.source.startswith("warm_start")

    @property
    def counts_against_budget(self) -> bool:
        """Uses this study's budget: evaluated or running here (priors, baselines, carried-over
        configurations included); attached trials cost nothing here, abandoned ones are proposed
        again."""
        return not self.attached and self.status != "abandoned"

    @property
    def tried_here(self) -> bool:
        """Evaluated by this study to the end or until stopped early (what the verdict counts)."""
        return not self.attached and self.status in ("completed", "early_stopped")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "result.json") -> TrialRecord:
        """A record from its JSON; InputError naming ``source`` when the shape is wrong."""
        from strategies.exceptions import InputError

        names = cls.__dataclass_fields__
        rec = cls(**{k: v for k, v in data.items() if k in names}) if _shaped(data) else None
        if rec is None:
            raise InputError(
                f"{source}: not a trial record (needs index, status and params of the right types); "
                "restore the file or move the trial's directory aside"
            )
        return rec


_SHAPE = {
    "index": int,
    "status": str,
    "params": dict,
    "source": str,
    "metrics": dict,
    "epochs": int,
    "seconds": dict,
    "sems": dict,
    "info": dict,
}


def _shaped(data: Any) -> bool:
    if not isinstance(data, Mapping) or not {"index", "status", "params"} <= set(data):
        return False
    for key, kind in _SHAPE.items():
        value = data.get(key)
        if key in data and not (isinstance(value, kind) and not isinstance(value, bool)):
            return False
    if data["status"] not in STATUSES or not all(
        isinstance(v, (int, float)) for v in data.get("metrics", {}).values()
    ):
        return False
    return data.get("reason") is None or isinstance(data.get("reason"), str)


@dataclass(frozen=True)
class ObjectiveSet:
    """Objective names, goals and thresholds, plus outcome constraints."""

    names: tuple[str, ...]
    maximize: tuple[bool, ...]
    thresholds: tuple[float, ...]
    constraints: tuple[tuple[str, str, float], ...] = ()

    @classmethod
    def from_spec(cls, spec: Any) -> ObjectiveSet:
        """From an :class:`~engine.spec.ExperimentSpec`."""
        items = list(spec.objectives.items())
        return cls(
            names=tuple(n for n, _ in items),
            maximize=tuple(o.goal == "max" for _, o in items),
            thresholds=tuple(o.threshold for _, o in items),
            constraints=tuple((c.metric, c.op, c.bound) for c in spec.constraints),
        )

    def feasible(self, record: TrialRecord) -> bool:
        """Completed (or early-stopped with final figures of its kept epoch), all objectives finite,
        every outcome constraint met."""
        if record.status not in ("completed", "early_stopped"):
            return False
        m = record.metrics
        if not all(n in m and math.isfinite(m[n]) for n in self.names):
            return False
        for metric, op, bound in self.constraints:
            value = m.get(metric, math.nan)
            if not (value >= bound if op == ">=" else value <= bound):
                return False
        return True

    def beats_thresholds(self, record: TrialRecord) -> bool:
        return all(
            (record.metrics[n] >= t) if mx else (record.metrics[n] <= t)
            for n, mx, t in zip(self.names, self.maximize, self.thresholds)
        )

    def matrix(self, records: Sequence[TrialRecord]) -> np.ndarray:
        """Objective values, sign-flipped so that larger is better: `n x m` (float64)."""
        signs = np.array([1.0 if mx else -1.0 for mx in self.maximize])
        y = np.array([[r.metrics[n] for n in self.names] for r in records], dtype=np.float64)
        return y.reshape(len(records), len(self.names)) * signs

    @property
    def ref_point(self) -> np.ndarray:
        signs = [1.0 if mx else -1.0 for mx in self.maximize]
        return np.array([s * t for s, t in zip(signs, self.thresholds)], dtype=np.float64)

    def front(self, records: Iterable[TrialRecord]) -> list[TrialRecord]:
        """Non-dominated feasible trials of the study itself (attached trials never), by trial index."""
        cand = [r for r in records if self.feasible(r) and not r.attached]
        if not cand:
            return []
        mask = non_dominated(self.matrix(cand))
        return [r for r, keep in zip(cand, mask.tolist()) if keep]

    def hypervolume(self, records: Iterable[TrialRecord]) -> float:
        """Hypervolume dominated by the study's own feasible trials above the reference point."""
        cand = [r for r in records if self.feasible(r) and not r.attached]
        if not cand:
            return 0.0
        y = self.matrix(cand)
        ref = self.ref_point
        return dominated_hypervolume(y[(y > ref).all(axis=-1)], ref)

    def hypervolume_trace(self, records: Sequence[TrialRecord]) -> list[float]:
        """Hypervolume after each trial, in trial order (for the report)."""
        ordered = sorted(records, key=lambda r: r.index)
        return [self.hypervolume(ordered[: i + 1]) for i in range(len(ordered))]

    def best(self, records: Iterable[TrialRecord], name: str) -> TrialRecord | None:
        """The feasible trial best on one objective (or any reported metric, maximised)."""
        cand = [r for r in records if self.feasible(r) and name in r.metrics]
        if not cand:
            return None
        maximize = self.maximize[self.names.index(name)] if name in self.names else True
        return (max if maximize else min)(cand, key=lambda r: r.metrics[name])

    def knee(self, front: Sequence[TrialRecord]) -> TrialRecord | None:
        """The front member closest to the ideal point after scaling each objective to [0, 1].

        Scaling uses the front's own range per objective, so no objective wins by
        its units; a single-member front returns that member.
        """
        if not front:
            return None
        y = self.matrix(front)
        span = y.max(axis=0) - y.min(axis=0)
        scaled = (y - y.min(axis=0)) / np.where(span > 0, span, 1.0)
        dist = np.linalg.norm(1.0 - scaled, axis=1)
        return front[int(np.argmin(dist))]


# numpy, not BoTorch: the output commands (status, pareto, best) read records without importing torch


def non_dominated(y: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``y`` (`n x m`, larger is better) that no other row dominates; of
    equal rows only the first is kept (as BoTorch's ``is_non_dominated(deduplicate=True)``)."""
    if y.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    no_worse = (y[:, None, :] <= y[None, :, :]).all(axis=-1)  # [i, j]: j is at least as good as i
    better = (y[:, None, :] < y[None, :, :]).any(axis=-1)  # [i, j]: j is better than i somewhere
    dominated = np.any(no_worse & better, axis=1)
    repeated = np.any(np.tril(np.all(y[:, None, :] == y[None, :, :], axis=-1), k=-1), axis=1)
    return ~dominated & ~repeated


def dominated_hypervolume(y: np.ndarray, ref: np.ndarray) -> float:
    """Volume of the region dominated by the rows of ``y`` (larger is better) and above ``ref``.

    Rows must be above ``ref`` in every coordinate. Exact, by slicing along the
    last objective (the volume is a sum of slabs, each the ``m - 1``
    dimensional hypervolume of the points at least that high), with a
    closed-form sweep in two dimensions: O(n^(m-1) log n), milliseconds at a
    study's size.
    """
    if y.shape[0] == 0:
        return 0.0
    y = y[non_dominated(y)]
    if y.shape[1] == 1:
        return float(y[:, 0].max() - ref[0])
    if y.shape[1] == 2:
        order = np.argsort(-y[:, 0], kind="stable")
        x, h = y[order, 0], np.maximum.accumulate(y[order, 1])
        widths = x - np.append(x[1:], ref[0])
        return float(np.sum(widths * (h - ref[1])))
    order = np.argsort(-y[:, -1], kind="stable")
    y = y[order]
    floors = np.append(y[1:, -1], ref[-1])
    total = 0.0
    for i in range(y.shape[0]):
        depth = y[i, -1] - floors[i]
        if depth > 0:
            total += depth * dominated_hypervolume(y[: i + 1, :-1], ref[:-1])
    return total
