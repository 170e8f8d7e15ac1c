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
from typing import Any

import numpy as np
import torch
from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
from botorch.utils.multi_objective.pareto import is_non_dominated

__all__ = ["ObjectiveSet", "TrialRecord"]

STATUSES = ("running", "completed", "early_stopped", "failed", "abandoned")


@dataclass
class TrialRecord:
    """One trial as the study store keeps it."""

    index: int
    status: str
    params: dict[str, Any]
    source: str = "model"  # "center", "sobol", "model", "prior", "baseline", "warm_start:<study>"
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    epochs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    sems: dict[str, float] = field(default_factory=dict)  # standard errors of metrics that have one
    info: dict[str, Any] = field(default_factory=dict)  # objective-specific details (per-fold figures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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

    def matrix(self, records: Sequence[TrialRecord]) -> torch.Tensor:
        """Objective values, sign-flipped so that larger is better: `n x m`."""
        signs = torch.tensor([1.0 if mx else -1.0 for mx in self.maximize], dtype=torch.double)
        y = torch.tensor([[r.metrics[n] for n in self.names] for r in records], dtype=torch.double)
        return y.reshape(len(records), len(self.names)) * signs

    @property
    def ref_point(self) -> torch.Tensor:
        signs = [1.0 if mx else -1.0 for mx in self.maximize]
        return torch.tensor([s * t for s, t in zip(signs, self.thresholds)], dtype=torch.double)

    def front(self, records: Iterable[TrialRecord]) -> list[TrialRecord]:
        """Non-dominated feasible trials, ordered by trial index."""
        cand = [r for r in records if self.feasible(r)]
        if not cand:
            return []
        mask = is_non_dominated(self.matrix(cand), deduplicate=True)
        return [r for r, keep in zip(cand, mask.tolist()) if keep]

    def hypervolume(self, records: Iterable[TrialRecord]) -> float:
        """Hypervolume dominated by the feasible trials above the reference point."""
        cand = [r for r in records if self.feasible(r)]
        if not cand:
            return 0.0
        y = self.matrix(cand)
        ref = self.ref_point
        y = y[(y > ref).all(dim=-1)]
        if y.shape[0] == 0:
            return 0.0
        return float(DominatedPartitioning(ref_point=ref, Y=y).compute_hypervolume())

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
        y = self.matrix(front).numpy()
        span = y.max(axis=0) - y.min(axis=0)
        scaled = (y - y.min(axis=0)) / np.where(span > 0, span, 1.0)
        dist = np.linalg.norm(1.0 - scaled, axis=1)
        return front[int(np.argmin(dist))]
