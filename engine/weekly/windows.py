"""Study windows: one study per data cut, side by side in a study line.

A weekly job runs the same spec on data that grew. ``boengine run SPEC
--window latest`` cuts the data at its last bar (``--window 2026-11-27``: at
the end of that day), sets ``data.end`` to that bar and runs the study in
``<line>/<date of the last bar>/`` (the line: ``--study-dir``, by default
``studies/<name>``). Rerunning the job on unchanged data resumes the same
window; new bars make a new one.

What a new window runs first is :mod:`engine.weekly.carry_over`'s; the
regime statistics of its training bars go to ``regime.json``, which the
report compares with the previous window's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.records import REEVALUATED_SOURCES
from engine.spec import ExperimentSpec, with_data_end
from engine.store import StudyStore
from strategies.exceptions import InputError

__all__ = ["Window", "list_windows", "open_window", "regime", "resolve_study", "window_rows"]

logger = logging.getLogger(__name__)

_WINDOW_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Window:
    """One window of a study line: the spec cut at its last bar, and where it runs."""

    spec: ExperimentSpec
    directory: Path
    line: Path
    last_bar: str
    previous: Path | None


def list_windows(line: str | Path) -> list[Path]:
    """The line's windows (directories named by date holding a study), oldest first."""
    root = Path(line)
    if not root.is_dir() or StudyStore(root).exists():
        return []
    named = sorted(d for d in root.iterdir() if _WINDOW_NAME.match(d.name))
    for d in named:
        _not_a_link(d)
    return [d for d in named if d.is_dir() and StudyStore(d).exists()]


def _not_a_link(window: Path) -> None:
    """InputError for a window that is a symbolic link: a line never reads or writes another study
    through one."""
    if window.is_symlink():
        raise InputError(
            f"{window}: a window of the study line is a symbolic link (to {os.readlink(window)}); "
            "boengine does not follow links in a line (it would read or write the study there): "
            "remove the link, or copy the study in its place"
        )


def resolve_study(path: str | Path) -> Path:
    """``path`` itself when it is a study; the newest window when it is a study line."""
    p = Path(path)
    if StudyStore(p).exists():
        return p
    windows = list_windows(p)
    return windows[-1] if windows else p


def open_window(spec: ExperimentSpec, line: str | Path, window: str) -> Window:
    """Cut ``spec``'s data for ``--window`` (``latest`` or a date) and name its directory.

    Raises InputError (exit 2) for a malformed window, a line that is itself
    a study, or data without bars in the window.
    """
    from engine.objective import make_objective

    root = Path(line)
    if root.exists() and not root.is_dir():
        raise InputError(
            f"--study-dir {root}: not a directory; a study line is a directory of windows: give a "
            "directory, or a path that does not exist yet"
        )
    if StudyStore(root).exists():
        raise InputError(
            f"{root} holds a study run without --window; windows go into a directory of their own: "
            f"pass --study-dir (e.g. {root}-weekly) or move the study"
        )
    if window != "latest" and not _DATE.match(window):
        raise InputError(f"--window {window!r}: give 'latest' or a date like 2026-11-27")
    probe = spec
    if window != "latest":
        import pandas as pd

        try:
            cut = pd.Timestamp(window) + pd.Timedelta(days=1) - pd.Timedelta(nanoseconds=1)
        except ValueError:
            raise InputError(f"--window {window!r}: not a calendar date; write e.g. 2026-11-27") from None
        if spec.data.end is not None:
            cut = min(cut, pd.Timestamp(spec.data.end))
        probe = with_data_end(spec, cut, source="--window")
    last = make_objective(probe).last_bar()
    if last is None:
        raise InputError(
            f"--window: strategy {spec.strategy} has no market data to cut into windows; "
            "windows are for model families"
        )
    cut_spec = with_data_end(spec, last, source="--window")
    name = last.strftime("%Y-%m-%d")
    _not_a_link(root / name)
    earlier = [w for w in list_windows(root) if w.name < name]
    return Window(
        spec=cut_spec,
        directory=root / name,
        line=root,
        last_bar=last.isoformat(),
        previous=earlier[-1] if earlier else None,
    )


def regime(spec: ExperimentSpec, bars: Any) -> dict[str, Any]:
    """The regime statistics of a window's training bars (``regime.json``)."""
    from engine.objective.pipeline import regime_statistics

    stats = regime_statistics(bars)
    return {"data_end": spec.data.end, **dataclasses.asdict(stats)}


def window_rows(line: str | Path) -> list[dict[str, Any]]:
    """One row per window of a study line, for ``boengine status LINE`` (read only)."""
    from engine.analysis.results import StudyResults

    rows = []
    for directory in list_windows(line):
        res = StudyResults.load(directory)
        counts = res.counts()
        cached = res.store.read_verdict()
        verdict = cached.get("sentence") if cached is not None else None
        carried = sum(r.source in REEVALUATED_SOURCES for r in res.records)
        trials = res.counted
        rows.append(
            {
                "window": directory.name,
                "directory": str(directory),
                "last_bar": res.meta.facts.get("last_timestamp"),
                "state": str(res.state()),
                "trials": trials,
                "budget": res.spec.budget.trials,
                "counts": counts,
                "front": len(res.front),
                "hypervolume": res.hypervolume,
                "carried": carried,
                "verdict": verdict,
            }
        )
    return rows
