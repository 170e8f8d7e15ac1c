"""A finished or running study, read back from its directory.

Everything the output commands need — spec, records, proposal batches, test
figures — loaded once into a :class:`StudyResults`, plus tables of it as
pandas DataFrames. Reading never touches the Ax database, so it is fast and
safe while ``boengine run`` is still writing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.meta import StudyMeta
from engine.objective import Objective, make_objective
from engine.records import ObjectiveSet, TrialRecord
from engine.spec import ExperimentSpec, parse_spec
from engine.store import StudyStore
from strategies.exceptions import InputError

if TYPE_CHECKING:
    from engine.verdict import Verdict

__all__ = ["StudyResults"]


@dataclass
class StudyResults:
    """Spec, meta, trial records, batches and test figures of one study."""

    store: StudyStore
    spec: ExperimentSpec
    meta: StudyMeta
    records: list[TrialRecord]
    batches: list[dict[str, Any]]
    test: dict[int, dict[str, float]]

    @classmethod
    def load(cls, directory: str | Path) -> StudyResults:
        store = StudyStore(directory)
        if not store.exists():
            raise InputError(
                f"{store.dir}: not a boengine study (no spec.json); give a directory made by 'boengine run'"
            )
        spec = parse_spec(store.read_spec(), source=str(store.dir / "spec.given.json"))
        records = []
        for path in (store.dir / "trials").glob("*/result.json"):
            records.append(TrialRecord.from_dict(store.read(path), source=str(path)))
        records.sort(key=lambda r: r.index)
        return cls(store, spec, store.read_meta(), records, store.read_batches(), store.read_test_metrics())

    @cached_property
    def objective(self) -> Objective:
        return make_objective(self.spec)

    @cached_property
    def objectives(self) -> ObjectiveSet:
        return ObjectiveSet.from_spec(self.spec)

    @cached_property
    def front(self) -> list[TrialRecord]:
        return self.objectives.front(self.records)

    @property
    def hypervolume(self) -> float:
        return self.objectives.hypervolume(self.records)

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.spec.space.tunable)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("completed", "early_stopped", "failed", "abandoned", "running")}
        for r in self.records:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def epochs_saved(self) -> int:
        """Epochs not trained thanks to early stopping."""
        cap = self.objective.planned_epochs()
        return sum(max(0, cap - r.epochs) for r in self.records if r.status == "early_stopped")

    def trial_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per trial (``status --json``)."""
        return [
            {
                "index": r.index,
                "status": r.status,
                "reason": r.reason,
                "source": r.source,
                "parameters": r.params,
                "metrics": r.metrics,
                "sems": r.sems,
                "test_metrics": self.test.get(r.index),
                "epochs": r.epochs,
                "seconds": r.seconds.get("total"),
            }
            for r in self.records
        ]

    def pareto_frame(self) -> pd.DataFrame:
        """The front: trial, source, searched parameters, validation and test objectives."""
        rows = []
        extra = ("num_trades", "win_rate_pct", "profit_factor", "exposure_pct")
        for r in self.front:
            row: dict[str, Any] = {"trial": r.index, "source": r.source}
            row.update({k: r.params[k] for k in self.searched})
            for name in self.objectives.names:
                row[f"val_{name}"] = r.metrics.get(name, math.nan)
            row.update({f"val_{k}": r.metrics[k] for k in extra if k in r.metrics})
            test = self.test.get(r.index, {})
            for name in self.objectives.names:
                row[f"test_{name}"] = test.get(name, math.nan)
            rows.append(row)
        return pd.DataFrame(rows)

    def pareto_records(self) -> list[dict[str, Any]]:
        return [
            {
                "trial": r.index,
                "source": r.source,
                "parameters": r.params,
                "validation": {k: r.metrics[k] for k in r.metrics},
                "test": self.test.get(r.index),
                "checkpoint": str(path) if (path := self.store.model_path(r.index)) else None,
            }
            for r in self.front
        ]

    def feasible_frame(self) -> pd.DataFrame:
        """Objectives of every feasible trial with a front flag (for plots)."""
        front = {r.index for r in self.front}
        rows = [
            {
                "trial": r.index,
                "on_front": r.index in front,
                **{n: r.metrics[n] for n in self.objectives.names},
            }
            for r in self.records
            if self.objectives.feasible(r)
        ]
        return pd.DataFrame(rows, columns=["trial", "on_front", *self.objectives.names])

    @cached_property
    def verdict(self) -> Verdict | None:
        """The verdict on the knee (:func:`engine.verdict.study_verdict`; None for synthetic problems)."""
        from engine.verdict import study_verdict

        return study_verdict(self)

    def verdict_for(self, pick: str) -> Verdict | None:
        """The verdict on another pick (``best --pick``): computed, not cached."""
        if pick == "knee":
            return self.verdict
        from engine.verdict import study_verdict

        return study_verdict(self, pick)

    def pick(self, pick: str) -> TrialRecord:
        """The front member chosen by ``pick``: the knee, or the best on one objective.

        Raises InputError when the front is empty or ``pick`` names no objective.
        """
        front = self.front
        if not front:
            raise InputError(
                f"{self.store.dir}: the Pareto front is empty (no completed trial meets the constraints); "
                "run more trials or relax the constraints"
            )
        if pick == "knee":
            chosen = self.objectives.knee(front)
        elif pick in self.objectives.names:
            chosen = self.objectives.best(front, pick)
        else:
            raise InputError(f"--pick {pick}: choose one of knee, {', '.join(self.objectives.names)}")
        assert chosen is not None
        return chosen

    @property
    def baseline_records(self) -> list[TrialRecord]:
        """Completed trials of the family's default configuration (source ``baseline``)."""
        return [r for r in self.records if r.source == "baseline" and r.status == "completed"]

    def constraint_bound(self, metric: str) -> float | None:
        """The lower bound of a ``metric >= bound`` outcome constraint (the largest), or None."""
        bounds = [b for m, op, b in self.objectives.constraints if m == metric and op == ">="]
        return max(bounds) if bounds else None
