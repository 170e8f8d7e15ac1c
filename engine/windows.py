"""Study windows: one study per data cut, side by side in a study line.

A weekly job runs the same spec on data that grew. ``boengine run SPEC
--window latest`` cuts the data at its last bar (``--window 2026-11-27``: at
the end of that day), sets ``data.end`` to that bar and runs the study in
``<line>/<date of the last bar>/`` (the line: ``--study-dir``, by default
``studies/<name>``). Rerunning the job on unchanged data resumes the same
window; new bars make a new one.

What a new window carries over from the previous one (the newest earlier
window of the line), ``warm_start.previous_window``:

- ``"reevaluate"`` (default): the previous window's Pareto set and the live
  configuration (``--live-config``: the strategy config that ``boengine best
  --write-config`` maintains) are the new window's first trials, measured
  again on the new data, so the GP starts from current values and
  ``boengine best --replace-if-better`` can compare the live configuration
  with the new choice on the same bars. These trials count in the budget and
  are never stopped early.
- ``"attach"``: the previous window's trials enter as measured there (the
  plain warm start). Their values are stale (other validation bars), so the
  GP takes old luck for current signal; kept for comparison.
- ``"none"``: nothing.

Configurations that no longer fit the search space are counted by reason in
the log, ``carry_over.json`` and the report. Every window also records the
regime statistics of its training bars (``regime.json``), which the report
compares with the previous window's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.records import REEVALUATED_SOURCES, ObjectiveSet, TrialRecord
from engine.spec import ExperimentSpec, parse_spec
from engine.store import StudyStore, read_user_json
from strategies.exceptions import InputError
from strategies.space import SearchSpace

__all__ = [
    "CarryOver",
    "Window",
    "list_windows",
    "live_entry",
    "open_window",
    "plan_carry_over",
    "regime",
    "resolve_study",
    "why_outside",
    "window_rows",
]

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
    raw = spec.given()
    data = dict(raw.get("data", {}))
    if window != "latest":
        import pandas as pd

        try:
            cut = pd.Timestamp(window) + pd.Timedelta(days=1) - pd.Timedelta(nanoseconds=1)
        except ValueError:
            raise InputError(f"--window {window!r}: not a calendar date; write e.g. 2026-11-27") from None
        if spec.data.end is not None:
            cut = min(cut, pd.Timestamp(spec.data.end))
        data["end"] = cut.isoformat()
    probe = parse_spec({**raw, "data": data}, source="--window")
    last = make_objective(probe).last_bar()
    if last is None:
        raise InputError(
            f"--window: strategy {spec.strategy} has no market data to cut into windows; "
            "windows are for model families"
        )
    cut_spec = parse_spec({**raw, "data": {**data, "end": last.isoformat()}}, source="--window")
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


def why_outside(space: SearchSpace, params: Mapping[str, Any]) -> str | None:
    """Why ``params`` is not a point of ``space`` (one short phrase), or None when it is."""
    missing = [n for n in space.names if n not in params]
    if missing:
        return f"no value for {', '.join(missing)}"
    extra = [n for n in params if n not in space.names]
    if extra:
        return f"{', '.join(extra)} not in this search space"
    for p in space.params:
        if not p.contains(params[p.name]):
            return f"{p.name}={params[p.name]!r} outside this search space"
    for c in space.constraints:
        if not c.satisfied(params):
            return "breaks a parameter constraint"
    return None


def live_entry(path: str | Path, key: str) -> dict[str, Any] | None:
    """The entry under ``key`` of the strategy config at ``path`` (None when the file or the
    entry does not exist). Read like every JSON file of boengine (a byte-order mark accepted;
    a link, a directory or a device refused with one line)."""
    p = Path(path)
    config = read_user_json(p, what="a JSON strategy config")
    if config is None:
        return None
    entry = config.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("hyperparameters"), dict):
        raise InputError(
            f"{p}: entry '{key}' has no 'hyperparameters' object; fix the file or remove the entry"
        )
    return entry


@dataclass
class CarryOver:
    """What a new window takes from the previous one: configurations to run first, by source."""

    mode: str
    previous: Path | None
    live_config: Path | None
    configs: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    champion: dict[str, Any] | None = None

    @property
    def attach_previous(self) -> bool:
        return self.mode == "attach" and self.previous is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "previous_window": str(self.previous) if self.previous else None,
            "live_config": str(self.live_config) if self.live_config else None,
            "champion": self.champion,
            "reevaluated": [{"source": s, "params": p} for p, s in self.configs],
            "skipped": dict(self.skipped),
        }

    def log(self) -> None:
        if self.mode != "reevaluate":
            return
        why = "; ".join(f"{n} {r}" for r, n in self.skipped.most_common())
        (logger.warning if self.skipped else logger.info)(
            "carried over from %s: %d configuration(s) run again first (%s)%s",
            self.previous or "no previous window",
            len(self.configs),
            ", ".join(f"{n} {s}" for s, n in Counter(s for _, s in self.configs).items()) or "none",
            f"; not carried: {why}" if why else "",
        )


def plan_carry_over(spec: ExperimentSpec, previous: Path | None, live_config: str | Path | None) -> CarryOver:
    """Read what a new window carries over, before anything is written (bad input: exit 2)."""
    mode = spec.warm_start.previous_window
    carry = CarryOver(mode=mode, previous=previous, live_config=Path(live_config) if live_config else None)
    if mode != "reevaluate":
        return carry
    seen: list[dict[str, Any]] = []

    def add(params: dict[str, Any], source: str, what: str) -> None:
        reason = why_outside(spec.space, params)
        if reason is not None:
            carry.skipped[f"{what}: {reason}"] += 1
            return
        if params not in seen:
            seen.append(params)
            carry.configs.append((params, source))

    if carry.live_config is not None:
        entry = live_entry(carry.live_config, spec.strategy)
        if entry is None:
            logger.info(
                "%s has no '%s' entry yet: no live configuration to re-evaluate", live_config, spec.strategy
            )
        else:
            params = dict(entry["hyperparameters"])
            carry.champion = {"params": params, "from": entry.get("boengine", {}).get("study")}
            add(params, "champion", "live configuration")
    if previous is not None:
        for rec in _previous_front(previous):
            add(dict(rec.params), "previous_front", "previous front")
    return carry


def _previous_front(directory: Path) -> list[TrialRecord]:
    """The previous window's Pareto set (its completed trials measured there), knee first."""
    store = StudyStore(directory)
    records = store.trial_records()
    objectives = ObjectiveSet.from_spec(store.experiment_spec())
    front = objectives.front(records)
    knee = objectives.knee(front)
    return sorted(front, key=lambda r: (r is not knee, r.index))


def regime(spec: ExperimentSpec, bars: Any) -> dict[str, Any]:
    """The regime statistics of a window's training bars (``regime.json``)."""
    from engine.objective.pipeline import regime_statistics

    stats = regime_statistics(bars)
    return {"data_end": spec.data.end, **dataclasses.asdict(stats)}


def window_rows(line: str | Path) -> list[dict[str, Any]]:
    """One row per window of a study line, for ``boengine status LINE`` (read only)."""
    from engine.results import StudyResults

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
