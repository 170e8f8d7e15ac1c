"""The end of a study: held-out test figures for the Pareto set, then the exports.

Only the final Pareto set is evaluated on the test split, from the weights
saved when each trial completed (no retraining, so the figures belong to the
very models that were judged on validation). Selecting the best of many
trials overfits validation; the report shows by how much.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from engine.records import ObjectiveSet, TrialRecord
from engine.spec import ExperimentSpec
from engine.store import StudyStore, read_json, write_json
from engine.trial import set_worker_threads

__all__ = ["finish_study", "read_test_metrics"]

logger = logging.getLogger(__name__)


def read_test_metrics(store: StudyStore) -> dict[int, dict[str, float]]:
    path = store.dir / "test.json"
    if not path.is_file():
        return {}
    return {int(k): v for k, v in read_json(path).items()}


def evaluate_front_on_test(
    spec: ExperimentSpec, store: StudyStore, front: Sequence[TrialRecord], *, threads: int
) -> dict[int, dict[str, float]]:
    """Test metrics of every front member that has saved weights (cached in test.json)."""
    done = read_test_metrics(store)
    todo = [r for r in front if r.index not in done and store.checkpoint_path(r.index).is_file()]
    if spec.is_synthetic or not todo:
        return done
    from objectives import EvalSettings, PreparedData, evaluate_checkpoint

    set_worker_threads(threads)
    data = PreparedData.load(store.data_dir, mmap=True)
    settings = EvalSettings(
        max_epochs=spec.budget.max_epochs, backtest=spec.backtest, seed=spec.seed, device="cpu"
    )
    for rec in todo:
        try:
            done[rec.index] = evaluate_checkpoint(
                spec.strategy, rec.params, data, settings, store.checkpoint_path(rec.index), split="test"
            )
        except Exception as exc:  # one unreadable checkpoint must not hide the others' figures
            logger.warning("trial %d: test evaluation failed: %s", rec.index, exc)
    write_json(store.dir / "test.json", {str(k): v for k, v in sorted(done.items())})
    return done


def finish_study(
    spec: ExperimentSpec, store: StudyStore, records: Sequence[TrialRecord], *, threads: int
) -> dict[str, Any]:
    """Test-evaluate the front and write ``pareto.csv`` and the report."""
    from engine.export import write_pareto
    from engine.report import write_report

    objectives = ObjectiveSet.from_spec(spec)
    front = objectives.front(records)
    if not front:
        logger.warning("no completed trial satisfies the constraints; the Pareto front is empty")
    evaluate_front_on_test(spec, store, front, threads=threads)
    outputs = {
        "pareto_csv": write_pareto(store, "csv"),
        "report": write_report(store),
    }
    return outputs
