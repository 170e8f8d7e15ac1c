"""``boengine best``: choose one configuration from the front and write it back.

The chosen trial goes into a JSON strategy config (the trading system's
``config/strategy_config.json`` schema: one entry per strategy with
``model_path`` and ``seq_length``), extended with the model family, its
hyperparameters, the feature set and the figures it was chosen on. An
existing file is merged: other strategies and other keys of the entry stay.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.analysis.results import StudyResults
from engine.analysis.verdict import Verdict
from engine.records import TrialRecord

__all__ = ["pick_trial", "strategy_entry"]

logger = logging.getLogger(__name__)


def pick_trial(res: StudyResults, pick: str) -> TrialRecord:
    """The front member chosen by ``pick`` (the knee, or the best on one objective)."""
    return res.pick(pick)


def strategy_entry(
    res: StudyResults, rec: TrialRecord, pick: str, verdict: Verdict | None = None
) -> dict[str, Any]:
    """The config entry for one trial (with the study's verdict and this member's statistics)."""
    entry: dict[str, Any] = {
        "name": res.spec.strategy,
        "model_family": res.spec.strategy,
        "hyperparameters": rec.params,
        "seq_length": rec.params.get("seq_len"),
        "feature_set": res.meta.facts.get("feature_set"),
        "data_source": res.spec.data.source,
    }
    ckpt = res.store.model_path(rec.index)  # never a link: the path stays inside the study
    if ckpt is not None:
        entry["model_path"] = str(ckpt.resolve())
    entry.update(res.evaluator.config_entry(res.store, rec))
    entry["boengine"] = {
        "study": str(res.store.dir),
        "trial": rec.index,
        "pick": pick,
        "validation": {k: rec.metrics[k] for k in (*res.objectives.names, "num_trades") if k in rec.metrics},
        "test": res.test.get(rec.index),
    }
    if verdict is not None:
        entry["boengine"]["verdict"] = verdict.summary()
        member = verdict.members.get(rec.index)
        if member is not None:
            entry["boengine"]["deflated_sharpe"] = member
    return entry
