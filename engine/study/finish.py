"""The end of a study: held-out test figures for the final set, the verdict, then the exports.

Only the final Pareto set is evaluated on the test split, by the objective
(:meth:`~engine.objective.Objective.score_test`): a holdout study scores the
weights saved when each trial completed (no retraining, so the figures belong
to the very models that were judged on validation). Selecting the best of
many trials overfits validation; the report shows by how much.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from engine.analysis.model_selection import choose_front
from engine.objective import Objective
from engine.records import TrialRecord
from engine.spec import ExperimentSpec
from engine.store import StudyStore

__all__ = ["evaluate_on_test", "finish_study"]

logger = logging.getLogger(__name__)


def evaluate_on_test(
    objective: Objective, store: StudyStore, records: Sequence[TrialRecord], *, threads: int
) -> dict[int, dict[str, float]]:
    """Test metrics of ``records`` (cached in test.json; each record's returns in test_returns.npy)."""
    done = store.read_test_metrics()
    todo = [r for r in records if r.index not in done]
    changed = False
    for rec in todo:
        try:
            scores = objective.score_test(store, [rec], threads=threads)
        except Exception as exc:  # one unreadable checkpoint must not hide the others' figures
            logger.warning("trial %d: test evaluation failed: %s", rec.index, exc)
            continue
        for index, score in scores.items():
            done[index] = score.metrics
            if score.returns is not None:
                store.write_array(index, "test_returns", score.returns)
            if score.checkpoint is not None:
                store.write_checkpoint(index, score.checkpoint, final=True)
            changed = True
    if changed:
        store.write_test_metrics(done)
    return done


def finish_study(
    spec: ExperimentSpec,
    store: StudyStore,
    objective: Objective,
    records: Sequence[TrialRecord],
    *,
    threads: int,
) -> dict[str, Any]:
    """Test-evaluate the front and the baseline trials, judge the search, write ``pareto.csv`` and the report."""
    from engine.analysis.results import StudyResults
    from engine.reporting.export import write_pareto
    from engine.reporting.report import write_report

    front = choose_front(spec, records).front
    if not front:
        logger.warning("no completed trial satisfies the constraints; the Pareto front is empty")
    on_front = {r.index for r in front}
    baselines = [
        r for r in records if r.source == "baseline" and r.status == "completed" and r.index not in on_front
    ]
    evaluate_on_test(objective, store, [*front, *baselines], threads=threads)
    verdict = StudyResults.load(store.dir).save_verdict()
    if verdict is not None:
        (logger.info if verdict.edge else logger.warning)("%s", verdict.sentence)
    return {"pareto_csv": write_pareto(store, "csv"), "report": write_report(store)}
