"""Warm start: trials of earlier studies, and data-driven prior configurations.

Earlier studies' completed trials are attached to the new experiment (Ax
counts them towards the Sobol budget), so the first proposals are already
model-based. Only trials whose parameters lie in the current search space are
attached; the rest are reported by reason and skipped. Observations keep
their standard errors: Ax fails when one metric has observations with and
without one, so in a study whose objectives carry standard errors (every
model-family objective) a trial without them is skipped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.records import TrialRecord
from engine.spec import ExperimentSpec
from engine.store import StudyStore
from strategies.exceptions import InputError

if TYPE_CHECKING:
    from engine.study.tell import TrialBook

__all__ = ["attach_prior_studies", "prior_configurations"]

logger = logging.getLogger(__name__)


def attach_prior_studies(
    book: TrialBook, directories: Sequence[str | Path], *, with_sems: bool
) -> dict[str, dict[str, Any]]:
    """Attach the completed trials of earlier studies; return, per directory, how many were
    attached and how many were skipped for which reason.

    ``with_sems``: this study's objectives carry standard errors, so a trial
    attached to it must too (Ax cannot fit one metric with and without them);
    one without is skipped and counted. Skipped trials are reported by reason.
    """
    summary: dict[str, dict[str, Any]] = {}
    needed = set(book.objectives.names) | {c[0] for c in book.objectives.constraints}
    for directory in directories:
        store = StudyStore(directory)
        if not store.exists():
            raise InputError(f"warm start: {directory} is not a boengine study directory (no spec.json)")
        other = store.read(store.spec_path)
        if other.get("data") != book.spec.data.model_dump(mode="json"):
            logger.warning(
                "warm start: %s was run on other data settings; its figures may not transfer", directory
            )
        attached = 0
        skipped: Counter[str] = Counter()
        for rec in store.trial_records():
            if rec.status != "completed":
                continue
            reason = _unfit(book, rec, needed, with_sems)
            if reason:
                skipped[reason] += 1
                continue
            sems = {k: rec.sems[k] for k in book.objectives.names} if with_sems else None
            book.attach_completed(rec.params, rec.metrics, source=f"warm_start:{store.dir.name}", sems=sems)
            attached += 1
        why = "; ".join(f"{n} {r}" for r, n in skipped.most_common())
        (logger.warning if skipped else logger.info)(
            "warm start from %s: %d trials attached%s",
            directory,
            attached,
            f", skipped: {why}" if why else "",
        )
        summary[str(directory)] = {"attached": attached, "skipped": dict(skipped)}
    return summary


def _unfit(book: TrialBook, rec: TrialRecord, needed: set[str], with_sems: bool) -> str | None:
    """Why ``rec`` cannot be attached to this study, or None."""
    if not book.spec.space.contains(rec.params):
        return "outside the search space"
    if not needed <= set(rec.metrics):
        return "without this study's metrics"
    if with_sems and not set(book.objectives.names) <= set(rec.sems):
        return "without standard errors (made by an older boengine)"
    return None


def prior_configurations(
    spec: ExperimentSpec, bars: pd.DataFrame
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The DataDrivenOptimizer's suggestions inside the search space, and its statistics."""
    from engine.objective.pipeline import data_driven_optimizer
    from strategies import get_family

    get_family(spec.strategy)  # priors exist for model families only
    ddo = data_driven_optimizer(bars)
    configs = ddo.suggest(spec.strategy, spec.space, n=spec.warm_start.num_priors, seed=spec.seed)
    st = ddo.stats
    logger.info(
        "data-driven priors from %d training bars: trend_strength %.5f, volatility %.5f, "
        "mean_reversion %.4f; rules fired: %s; %d configurations queued (boengine priors --data %s shows why)",
        st.n_bars,
        st.trend_strength,
        st.volatility,
        st.mean_reversion,
        ", ".join(ddo.fired) or "none",
        len(configs),
        spec.data.source,
    )
    return [dict(c) for c in configs], ddo.to_dict()
