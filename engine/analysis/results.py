"""A finished or running study, read back from its directory.

Everything the output commands need — spec, records, proposal batches, test
figures — loaded once into a :class:`StudyResults`, plus tables of it as
pandas DataFrames. Reading never touches the Ax database, so it is fast and
safe while ``boengine run`` is still writing.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.analysis.ledger import trial_ledger
from engine.analysis.model_selection import FrontChoice, choose_front
from engine.analysis.verdict import VERDICT_FORMAT, Verdict, VerdictInputs, compute_verdict
from engine.meta import StudyMeta
from engine.objective import Objective, make_objective
from engine.records import ObjectiveSet, StudyState, TrialRecord, study_state
from engine.spec import ExperimentSpec, study_spec
from engine.store import StudyStore
from strategies.exceptions import InputError

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
        return cls(
            store,
            study_spec(store),
            store.read_meta(),
            store.trial_records(),
            store.read_batches(),
            store.read_test_metrics(),
        )

    @cached_property
    def evaluator(self) -> Objective:
        return make_objective(self.spec)

    @cached_property
    def objectives(self) -> ObjectiveSet:
        return ObjectiveSet.from_spec(self.spec)

    @cached_property
    def choice(self) -> FrontChoice:
        """The front and the figures it was chosen by (the spec's ``selection.front``)."""
        return choose_front(self.spec, self.records)

    @property
    def front(self) -> list[TrialRecord]:
        return self.choice.front

    @property
    def hypervolume(self) -> float:
        return self.objectives.hypervolume(self.records)

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.spec.space.tunable)

    @property
    def counted(self) -> int:
        """Trials that count against the budget (see :attr:`TrialRecord.counts_against_budget`)."""
        return sum(r.counts_against_budget for r in self.records)

    def state(self, *, running: bool | None = None) -> StudyState:
        """Where the study stands (``running``: whether a run holds it, when the caller knows)."""
        live = self.store.is_running() if running is None else running
        return study_state(self.records, self.spec.budget.trials, running=live, ended=self.store.has_ended())

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("completed", "early_stopped", "failed", "abandoned", "running")}
        for r in self.records:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def epochs_saved(self) -> int:
        """Epochs not trained thanks to early stopping."""
        cap = self.evaluator.planned_epochs()
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

    # -- the verdict: its one door -------------------------------------------------------
    @cached_property
    def verdict(self) -> Verdict | None:
        """The verdict on the knee, or None when the objective has no per-bar returns (closed-form
        problems). A current ``verdict.json`` (same inputs) is reused; nothing is written."""
        inputs = self.verdict_inputs("knee")
        if inputs is None:
            return None
        cached = self.store.read_verdict()
        if cached is not None:
            try:
                verdict = Verdict.from_dict(cached)
                if verdict.key == inputs.key:
                    return verdict
            except (ValueError, TypeError, KeyError):
                pass  # computed again below
        return compute_verdict(inputs)

    def verdict_for(self, pick: str) -> Verdict | None:
        """The verdict on another pick (``best --pick``): computed, not cached."""
        if pick == "knee":
            return self.verdict
        inputs = self.verdict_inputs(pick)
        return compute_verdict(inputs) if inputs is not None else None

    def save_verdict(self) -> Verdict | None:
        """The knee's verdict, written to ``verdict.json`` (when the study ends)."""
        if self.verdict is not None:
            self.store.write_verdict(self.verdict.to_dict())
        return self.verdict

    def verdict_inputs(self, pick: str) -> VerdictInputs | None:
        """What the verdict on ``pick`` is computed from: the per-bar returns of the completed
        trials, buy-and-hold's and the flat position's, the trial ledger, the front; None when the
        objective has no per-bar returns. ``key`` identifies them (trials, their states, the
        ledger, the seed, the pick)."""
        returns = {
            r.index: a
            for r in self.records
            if r.status == "completed"
            and not r.attached
            and (a := self.store.read_array(r.index, "returns")) is not None
        }
        baselines = self.evaluator.baseline_returns(self.store) if self.evaluator.scores_test else {}
        if not returns or "validation" not in baselines.get("buy_and_hold", {}):
            return None
        indices = sorted(returns)
        chosen = self.pick(pick) if self.front else None
        ledger = trial_ledger(self, returns)
        text = json.dumps(
            {
                "format": VERDICT_FORMAT,
                "state": [(r.index, r.status, r.epochs) for r in self.records],
                "returns": indices,
                "seed": self.spec.seed,
                "pick": [pick, chosen.index if chosen else None],
                "ledger": ledger.fingerprint,
            }
        )
        return VerdictInputs(
            returns=np.column_stack([returns[i].astype(np.float64) for i in indices]),
            trials=tuple(indices),
            pick=chosen.index if chosen and chosen.index in returns else None,
            pick_name=pick,
            market=baselines["buy_and_hold"]["validation"][1].astype(np.float64),
            counts=ledger.counts(),
            periods_per_year=float(self.meta.facts.get("periods_per_year") or 252.0),
            front=tuple(r.index for r in self.front),
            fold_sizes=tuple(self.store.fold_sizes()),
            benchmarks={
                name: baselines[name]["validation"][1]
                for name in ("buy_and_hold", "flat")
                if "validation" in baselines.get(name, {})
            },
            baselines={
                name: {split: m for split, (m, _) in parts.items()} for name, parts in baselines.items()
            },
            seed=self.spec.seed,
            key=hashlib.sha256(text.encode()).hexdigest()[:16],
        )

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
            chosen = self.choice.knee(self.objectives)
        elif pick in self.objectives.names:
            chosen = self.choice.best(self.objectives, pick)
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
