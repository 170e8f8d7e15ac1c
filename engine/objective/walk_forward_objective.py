"""The walk-forward objective (``"validation": {"scheme": "walk_forward", ...}``).

Each trial trains and backtests its configuration fold by fold
(:func:`objectives.walk_forward.evaluate_walk_forward`) in one job that
reuses the prepared features; its objectives are the stitched out-of-fold
backtest's figures, each with a bootstrap standard error that Ax models as
known noise. Curves are reported per fold with a ``step`` that counts epochs
over the planned fold schedule, so that early stopping compares trials at the
same point and can stop one after its first folds; a trial stopped so has no
objective values (its partial folds are never sent to Ax). With
``early_stopping.pareto_folds`` enabled, the trial also sends a fold report
(its partial figures and their standard errors) after each fold it may be
judged at, on the same channel; the driver stops it when it can no longer
reach the Pareto front (:mod:`engine.study.fold_stopping`).

The model scored on the held-out test split is the **final fit**: trained on
every decision bar before the test split (purged like the folds), with the
trial's seed, for the number of epochs its last fold kept, starting from the
last fold's weights when folds are warm-started. No validation bar chooses
anything in that fit, and the test split chooses nothing at all. It is also
the model ``boengine best`` writes back: the one a live system would run.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.objective.base import EpochFn
from engine.objective.model import RefitObjective
from engine.objective.registry import register_objective

if TYPE_CHECKING:
    from pathlib import Path

    from engine.records import TrialRecord
    from engine.store import StudyStore
    from engine.study.trial import TrialJob, TrialOutcome
    from objectives import PreparedData

__all__ = ["WalkForwardObjective"]


@register_objective("walk_forward")
class WalkForwardObjective(RefitObjective):
    """K validation blocks in turn; objectives from the stitched out-of-fold returns."""

    def epochs_per_fold(self) -> list[int]:
        from objectives.walk_forward import fold_epochs

        v = self.spec.data.validation
        return fold_epochs(
            self.spec.budget.max_epochs, v.folds, warm_start=v.warm_start_folds, fold_epochs=v.fold_epochs
        )

    def planned_epochs(self) -> int:
        return sum(self.epochs_per_fold())

    def run_trial(self, job: TrialJob, on_epoch: EpochFn, data: Any = None) -> TrialOutcome:
        import torch

        from engine.objective.pipeline import load_prepared
        from engine.study.trial import TrialOutcome, report_dict
        from objectives.walk_forward import evaluate_walk_forward

        prepared = data if data is not None else load_prepared(str(job.data_dir))

        def report(fold: int, step: int, r: Any) -> bool:
            return on_epoch({**report_dict(r), "fold": float(fold), "step": float(step)})

        result = evaluate_walk_forward(
            self.spec.strategy,
            job.params,
            prepared,
            self.eval_settings(job.seed),
            warm_start_folds=self.spec.data.validation.warm_start_folds,
            epochs_per_fold=self.epochs_per_fold(),
            on_epoch=report,
            on_fold=self._fold_reporter(prepared, job.seed, on_epoch),
        )
        info = {"folds": [dataclasses.asdict(f) for f in result.folds]}
        if result.stopped_by_callback:
            return TrialOutcome.stopped(job.trial_index, result.epochs_run, result.seconds, info)
        buffer = io.BytesIO()
        torch.save(result.state, buffer)
        return TrialOutcome(
            job.trial_index,
            "completed",
            metrics={**result.metrics, **self.user_metrics(result.returns, result.positions)},
            sems=result.sems,
            epochs=result.epochs_run,
            seconds=result.seconds,
            checkpoint=buffer.getvalue(),
            arrays={"returns": result.returns, "positions": result.positions},
            info=info,
        )

    def _fold_reporter(self, data: Any, seed: int, on_epoch: EpochFn) -> Callable[[int, Any], bool] | None:
        """The per-fold callback of Pareto-aware stopping (None when it is off): after fold k at or
        past ``min_folds``, the partial figures go to the driver on the per-epoch channel; True
        (stop) when the driver has asked the trial to stop."""
        settings = self.spec.early_stopping.pareto_folds
        if not self.spec.pareto_folds_on:
            return None
        from engine.study.fold_stopping import PartialTrial
        from objectives.backtest import equity_stats
        from objectives.walk_forward import stitched_figures

        eval_settings = self.eval_settings(seed)
        start, end = data.folds[0].val[0], data.folds[-1].val[1]
        names = tuple(self.spec.objectives)

        def on_fold(fold: int, positions: Any) -> bool:
            if fold + 1 < settings.min_folds:
                return False
            metrics, returns, sems = stitched_figures(data, eval_settings, positions)
            partial = PartialTrial(
                folds_done=fold + 1,
                n_folds=len(data.folds),
                bars=len(positions),
                bars_total=int(end - start),
                values={n: metrics[n] for n in names if n in metrics},
                sems={n: sems[n] for n in names if n in sems},
                # every continuation shares all but the last bar (its exit and missing next return)
                drawdown_bound=equity_stats(returns[:-1], data.periods_per_year)[2]
                if len(returns) > 1
                else None,
            )
            return on_epoch(partial.to_report())

        return on_fold

    def final_fit(self, store: StudyStore, record: TrialRecord) -> tuple[int, Path | None] | None:
        """The last fold's kept epoch, from the last fold's weights when folds are warm-started."""
        folds = record.info.get("folds") or []
        if not folds:
            return None  # not evaluated on every fold here (e.g. attached from another study)
        warm = self.spec.data.validation.warm_start_folds
        return int(folds[-1]["best_epoch"]), store.checkpoint_path(record.index) if warm else None

    def last_fit_bars(self, data: PreparedData) -> Any:
        return data.folds[-1].train_bars() if data.folds else None

    def describe(self, meta: Mapping[str, Any]) -> dict[str, str]:
        v = self.spec.data.validation
        h = self.spec.data.label.horizon
        folds = meta.get("folds") or []
        blocks = "; ".join(
            f"fold {i}: train {f['train'][0][:10]}..{f['train'][1][:10]}, validate {f['val'][0][:10]}.."
            f"{f['val'][1][:10]}"
            for i, f in enumerate(folds)
        )
        epochs = self.epochs_per_fold()
        test = (meta.get("split_dates") or {}).get("test")
        return {
            **super().describe(meta),
            "validation": f"walk-forward, {v.folds} folds, {v.window} window, purge {h} bars + embargo "
            f"{v.embargo_bars} bars; {'warm-started' if v.warm_start_folds else 'fresh'} folds, epochs "
            f"{'/'.join(map(str, epochs))}; each fold's epoch, early stop and schedule chosen on the last "
            f"{v.select_fraction:.0%} of its training window (purged, not trained on), never on its block",
            "folds": blocks or "-",
            "test": f"{test[0][:10]}..{test[1][:10]}, scored by the final fit on every bar before it"
            if test
            else "-",
        }
