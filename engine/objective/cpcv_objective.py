"""The CPCV objective (``"validation": {"scheme": "cpcv", "groups": N, "test_groups": k}``).

Each trial trains its configuration on the C(N, k) splits of combinatorial
purged cross-validation (:func:`objectives.cpcv.evaluate_cpcv`), each from
scratch, and recombines their trades into φ = C(N-1, k-1) backtest paths over
every pre-test bar. Its objectives are the mean over the paths of each path's
figures, with standard errors from the market's path (a joint bootstrap) and
the dispersion over the paths (see :mod:`objectives.cpcv` for why not the
figures of the mean path). It stores the bar-wise mean path as
``returns.npy`` (one series over the same bars as every other trial: the
verdict's input) and the paths as ``paths.npy`` (`φ x T`, for a PBO over
paths: :func:`path_pbo`). Curves are reported per split with a ``step`` that
counts epochs over the planned schedule (``max_epochs`` a split), so that
early stopping compares trials at the same point.

The model scored on the held-out test split is the final fit, as in
walk-forward: every decision bar before the test split (purged and
embargoed), the trial's seed, for the median of the epochs its splits kept,
from scratch (no split trained on every bar). Cost: C(N, k) fits a trial
(15 for N = 6, k = 2), against K for walk-forward.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.objective.base import EpochFn
from engine.objective.model import RefitObjective
from engine.objective.registry import register_objective

if TYPE_CHECKING:
    from pathlib import Path

    from engine.records import TrialRecord
    from engine.store import StudyStore
    from engine.study.trial import TrialJob, TrialOutcome
    from objectives import PreparedData

__all__ = ["CPCVObjective", "path_pbo"]


@register_objective("cpcv")
class CPCVObjective(RefitObjective):
    """C(N, k) purged splits; objectives from the mean over the φ recombined backtest paths."""

    def n_splits(self) -> int:
        v = self.spec.data.validation
        return math.comb(v.groups, v.test_groups)

    def planned_epochs(self) -> int:
        return self.n_splits() * self.spec.budget.max_epochs

    def run_trial(self, job: TrialJob, on_epoch: EpochFn, data: Any = None) -> TrialOutcome:
        import torch

        from engine.objective.pipeline import load_prepared
        from engine.study.trial import TrialOutcome, report_dict
        from objectives.cpcv import evaluate_cpcv, final_epochs

        prepared = data if data is not None else load_prepared(str(job.data_dir))

        def report(split: int, step: int, r: Any) -> bool:
            return on_epoch({**report_dict(r), "fold": float(split), "step": float(step)})

        result = evaluate_cpcv(
            self.spec.strategy, job.params, prepared, self.eval_settings(job.seed), on_epoch=report
        )
        splits = [dataclasses.asdict(s) for s in result.splits]
        info: dict[str, Any] = {"folds": splits}
        if result.stopped_by_callback:
            return TrialOutcome.stopped(job.trial_index, result.epochs_run, result.seconds, info)
        info["paths"] = [
            {k: m[k] for k in ("return_pct", "sharpe", "max_drawdown_pct")} for m in result.path_metrics
        ]
        info["final_epochs"] = final_epochs([s.best_epoch for s in result.splits])
        buffer = io.BytesIO()
        torch.save(result.state, buffer)
        paths, positions = result.paths, result.positions
        assert paths is not None and positions is not None  # a completed result has them
        user = [self.user_metrics(r, p) for r, p in zip(paths, positions, strict=True)]
        return TrialOutcome(
            job.trial_index,
            "completed",
            metrics={**result.metrics, **{k: float(np.mean([u[k] for u in user])) for k in user[0]}},
            sems=result.sems,
            epochs=result.epochs_run,
            seconds=result.seconds,
            checkpoint=buffer.getvalue(),
            arrays={"returns": result.returns, "paths": paths},
            info=info,
        )

    def final_fit(self, store: StudyStore, record: TrialRecord) -> tuple[int, Path | None] | None:
        """From scratch (no split trained on every bar), for the median of its splits' kept epochs."""
        epochs = record.info.get("final_epochs")
        return (epochs, None) if isinstance(epochs, int) else None

    def last_fit_bars(self, data: PreparedData) -> Any:
        return data.cpcv[-1].fit.train_bars() if data.cpcv else None

    def describe(self, meta: Mapping[str, Any]) -> dict[str, str]:
        from objectives.cpcv import n_paths

        v = self.spec.data.validation
        h = self.spec.data.label.horizon
        groups = meta.get("groups") or []
        test = (meta.get("split_dates") or {}).get("test")
        phi = n_paths(v.groups, v.test_groups)
        return {
            **super().describe(meta),
            "validation": f"combinatorial purged cross-validation: {v.groups} groups, {v.test_groups} traded "
            f"per split, {self.n_splits()} splits (each trained from scratch, up to "
            f"{self.spec.budget.max_epochs} epochs), {phi} backtest paths over every group",
            "purge": f"{h} bars on both sides of each test group + embargo {v.embargo_bars} bars after it; "
            f"each split's epoch, early stop and schedule chosen on the last {v.select_fraction:.0%} of its "
            "training bars (purged, not trained on), never on its test groups; its features standardised "
            "on its training bars",
            "objectives": f"the mean over the {phi} paths of each path's figures (standard error: a "
            "bootstrap of the market's path plus the spread over the paths); the verdict judges the "
            "bar-wise mean path",
            "groups": "; ".join(f"{i}: {g[0][:10]}..{g[1][:10]}" for i, g in enumerate(groups)) or "-",
            "test": f"{test[0][:10]}..{test[1][:10]}, scored by the final fit on every bar before it"
            if test
            else "-",
        }


def path_pbo(store: StudyStore, trials: Sequence[int]) -> dict[str, Any] | None:
    """PBO over the CPCV paths: the CSCV PBO of the trials' returns on each path, and their mean.

    Every trial's path p is traded by the same splits on the same bars, so
    path p's `T x N` matrix is a study of its own; the mean over paths
    smooths the luck of which model traded which group. None with fewer than
    two trials with paths.
    """
    from engine.analysis.selection import pbo_cscv

    paths = {i: a for i in trials if (a := store.read_array(i, "paths")) is not None}
    if len(paths) < 2 or len({a.shape for a in paths.values()}) != 1:
        return None
    stack = np.stack([paths[i] for i in sorted(paths)], axis=-1).astype(np.float64)  # φ x T x N
    blocks = 16
    while blocks > 2 and stack.shape[1] // blocks < 2:
        blocks -= 2
    if stack.shape[1] // blocks < 2:
        return None
    per_path = [pbo_cscv(m, n_blocks=blocks).pbo for m in stack]
    return {"pbo": float(np.mean(per_path)), "per_path": per_path, "n_blocks": blocks, "n_trials": len(paths)}
