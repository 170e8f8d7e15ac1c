"""Warm start: trials of earlier studies, and data-driven prior configurations.

Earlier studies' completed trials are attached to the new experiment (Ax
counts them towards the Sobol budget), so the first proposals are already
model-based. Only trials whose parameters lie in the current search space are
attached; the rest are reported and skipped. Observations are attached as
plain means, like every boengine observation: Ax fails when one experiment
mixes observations with and without a standard error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.records import TrialRecord
from engine.spec import ExperimentSpec
from engine.store import StudyStore, read_json
from strategies.exceptions import InputError

if TYPE_CHECKING:
    from engine.tell import TrialBook

__all__ = ["attach_prior_studies", "prior_configurations"]

logger = logging.getLogger(__name__)


def attach_prior_studies(book: TrialBook, directories: Sequence[str | Path]) -> int:
    """Attach the completed trials of earlier studies; return how many were attached."""
    total = 0
    needed = set(book.objectives.names) | {c[0] for c in book.objectives.constraints}
    for directory in directories:
        store = StudyStore(directory)
        if not store.exists():
            raise InputError(f"warm start: {directory} is not a boengine study directory (no spec.json)")
        other = read_json(store.spec_path)
        if other.get("data") != book.spec.data.model_dump(mode="json"):
            logger.warning(
                "warm start: %s was run on other data settings; its figures may not transfer", directory
            )
        attached = skipped = 0
        for path in sorted((store.dir / "trials").glob("*/result.json")):
            rec = TrialRecord.from_dict(read_json(path))
            if rec.status != "completed":
                continue
            if not book.spec.space.contains(rec.params) or not needed <= set(rec.metrics):
                skipped += 1
                continue
            book.attach_completed(
                rec.params, rec.metrics, source=f"warm_start:{store.dir.name}", sems=rec.sems
            )
            attached += 1
        logger.info(
            "warm start from %s: %d trials attached, %d outside the search space skipped",
            directory,
            attached,
            skipped,
        )
        total += attached
    return total


def prior_configurations(
    spec: ExperimentSpec, bars: pd.DataFrame
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The DataDrivenOptimizer's suggestions inside the search space, and its statistics."""
    from objectives.regime import data_driven_optimizer
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
