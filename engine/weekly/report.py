"""The report's section on a study window: what it carried over and how the regime moved."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from engine.analysis.results import StudyResults
from engine.records import REEVALUATED_SOURCES, TrialRecord
from engine.store import StudyStore

__all__ = ["window_sections"]

Section = tuple[str, Any]  # as engine.reporting.report's: (h2 | p | list | table, content)


def window_sections(res: StudyResults) -> list[Section]:
    """A study window (``run --window``): what was carried over and how the regime moved."""
    carried, now = res.store.read_carry_over(), res.store.read_regime()
    if carried is None and now is None:
        return []
    carry = carried or {}
    prev_dir = carry.get("previous_window")
    prev = StudyStore(prev_dir) if prev_dir and StudyStore(prev_dir).exists() else None
    lines = [
        f"data up to {res.spec.data.end}; previous window: "
        + (str(prev_dir) if prev_dir else "none (the first window of its line)")
        + f"; carry-over: {carry.get('mode', res.spec.warm_start.previous_window)}"
    ]
    lines += [f"{n} not carried over: {why}" for why, n in carry.get("skipped", {}).items()]
    out: list[Section] = [("h2", "Study window"), ("list", lines)]
    then: dict[str, TrialRecord] = {}
    if prev is not None:
        for rec in prev.trial_records():
            then.setdefault(json.dumps(rec.params, sort_keys=True, default=str), rec)
    rows = []
    for r in res.records:
        if r.source not in REEVALUATED_SOURCES:
            continue
        old = then.get(json.dumps(r.params, sort_keys=True, default=str))
        row: dict[str, Any] = {"trial": r.index, "source": r.source, "status": r.status}
        for name in res.objectives.names:
            row[f"{name} now"] = r.metrics.get(name)
            row[f"{name} then"] = old.metrics.get(name) if old is not None else None
        rows.append(row)
    if rows:
        out += [
            ("p", "Configurations run again on this window's data (now) and their figures in the previous "
             "window (then, on other bars):"),
            ("table", pd.DataFrame(rows)),
        ]  # fmt: skip
    if now is not None:
        before = (prev.read_regime() if prev is not None else None) or {}
        stats = [k for k, v in now.items() if isinstance(v, float)]
        frame = pd.DataFrame(
            {
                "statistic": stats,
                "previous window": [before.get(k) for k in stats],
                "this window": [now[k] for k in stats],
                "change": [now[k] - before[k] if isinstance(before.get(k), float) else None for k in stats],
            }
        )
        out += [
            ("p", f"Regime statistics of the training bars ({now.get('n_bars')} bars):"),
            ("table", frame),
        ]
    return out
