"""What the dashboard shows, read from the study directories and never written back.

:class:`Catalog` finds the studies under a directory; :meth:`Catalog.view`
reads one into a :class:`StudyView` (results, status, verdict, figures),
kept while the study's files are unchanged: a page that refreshes every few
seconds costs a few ``stat`` calls until a trial lands. The verdict is
computed in memory by :attr:`engine.analysis.results.StudyResults.verdict` (which reads a
current ``verdict.json`` and never writes one) and kept per trial state.
Nothing here imports Dash.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.analysis.results import StudyResults
from engine.analysis.verdict import Verdict
from engine.interfaces.api import Study
from engine.records import StudyState
from engine.store import StudyStore
from strategies.exceptions import InputError

if TYPE_CHECKING:
    from engine.analysis.robustness import Robustness

__all__ = ["Catalog", "StudyView", "is_study_dir", "study_signature"]

logger = logging.getLogger(__name__)


def is_study_dir(path: Path) -> bool:
    """A study, or one that ``boengine run`` is creating (its lock or meta written, no spec yet)."""
    return StudyStore(path).looks_like_study()


def _children(path: Path) -> list[Path]:
    """Sub-directories in name order (none through a link)."""
    try:
        return sorted((p for p in path.iterdir() if p.is_dir() and not p.is_symlink()), key=lambda p: p.name)
    except OSError:
        return []


def study_signature(path: Path) -> tuple[Any, ...]:
    """Changes whenever a file the dashboard shows changes, or a run starts or stops: the store's
    file stamps by part, and whether a run holds the study."""
    return (tuple(StudyStore(path).file_stamps().items()), _running(path))


def _running(path: Path) -> bool:
    """A ``boengine run`` holds the study now. Only asked when its ``.run`` marker exists: the
    marker is written under the run's lock, so the lock is never tried while a run starts."""
    store = StudyStore(path)
    if not store.may_be_running():
        return False
    try:
        return store.is_running()
    except OSError:
        return False


def _last_change(path: Path, signature: tuple[Any, ...]) -> float | None:
    """Seconds since the epoch of the newest watched file."""
    stamps = [s[0] for _, files in signature[0] for _, s in files if s is not None]
    return max(stamps) / 1e9 if stamps else None


@dataclass
class StudyView:
    """One study as the dashboard shows it, read once."""

    key: str
    path: Path
    signature: tuple[Any, ...]
    running: bool
    results: StudyResults | None
    problem: str | None  # why there is nothing to show yet (starting, damaged)
    verdict: Verdict | None = None
    verdict_error: str | None = None

    @property
    def name(self) -> str:
        return self.results.spec.name if self.results is not None else self.path.name

    @cached_property
    def study(self) -> Study | None:
        """The API's view of the same records (trial frame, curves), without reading them again."""
        return Study.from_results(self.results) if self.results is not None else None

    def part_signatures(self) -> dict[str, str]:
        """Short digests of the files behind each part of the study page: ``head`` (everything and
        whether a run holds the study), ``results`` (spec, meta, trial records, test figures,
        verdict), ``curves`` (results and per-epoch curves), ``batches`` (proposal batches)."""
        parts = dict(self.signature[0])
        results = (parts["spec"], parts["results"], parts["records"])
        return {
            "head": _digest(self.signature),
            "results": _digest(results),
            "curves": _digest((results, parts["curves"])),
            "batches": _digest((parts["spec"], parts["batches"])),
        }

    @property
    def updated(self) -> float | None:
        return _last_change(self.path, self.signature)

    def status(self) -> str:
        """A :class:`~engine.records.StudyState` value."""
        if self.results is None:
            damaged = self.problem and not self.problem.startswith("starting")
            return str(StudyState.DAMAGED if damaged else StudyState.STARTING)
        return str(self.results.state(running=self.running))

    def counted(self) -> int:
        """Trials that count against the budget (as ``boengine status`` counts them)."""
        return self.results.counted if self.results is not None else 0

    def verdict_text(self) -> str:
        """'edge' / 'no evidence' / '-' for the list of studies."""
        if self.verdict is not None:
            return "edge" if self.verdict.edge else "no evidence"
        if self.results is not None and not self.results.evaluator.scores_test:
            return "n/a (no returns)"
        return "-"

    def summary(self) -> dict[str, Any]:
        """One row of the list of studies."""
        res = self.results
        row: dict[str, Any] = {
            "study": self.name,
            "key": self.key,
            "directory": str(self.path),
            "status": self.status(),
            "trials": "-",
            "completed": None,
            "failed": None,
            "front": None,
            "hypervolume": None,
            "verdict": self.verdict_text(),
            "strategy": "-",
            "updated": _ago(self.updated),
        }
        if res is not None:
            counts = res.counts()
            row.update(
                trials=f"{self.counted()}/{res.spec.budget.trials}",
                completed=counts["completed"],
                failed=counts["failed"],
                front=len(res.front),
                hypervolume=_round(res.hypervolume),
                strategy=res.spec.strategy,
            )
        return row

    def trial_rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The trial table: rows (numbers rounded to 4 significant digits) and its columns in order."""
        if self.study is None or self.results is None:
            return [], []
        res = self.results
        frame = self.study.trials()
        if not len(frame):
            return [], []
        front = {r.index for r in res.front}
        frame = frame.reset_index()
        frame.insert(1, "front", ["*" if i in front else "" for i in frame["index"]])
        names = list(res.objectives.names)
        columns = ["index", "front", "status", "source"]
        columns += [f"val_{n}" for n in names]
        columns += [
            f"test_{n}" for n in names if f"test_{n}" in frame.columns and frame[f"test_{n}"].notna().any()
        ]
        columns += [f"param_{p}" for p in res.searched if f"param_{p}" in frame.columns]
        columns += [f"val_{n}_se" for n in names if f"val_{n}_se" in frame.columns]
        columns += ["epochs", "seconds", "reason"]
        columns = [c for c in columns if c in frame.columns]
        rows = [{c: _cell(row[c]) for c in columns} for _, row in frame.iterrows()]
        return rows, columns

    def curves(self) -> pd.DataFrame:
        return self.study.curves() if self.study is not None else pd.DataFrame()

    @cached_property
    def robustness(self) -> Robustness | None:
        """The report's robustness views of the knee (:func:`engine.analysis.robustness.study_robustness`:
        cost stress, Monte Carlo, parameter stability), computed once per read of the study."""
        if self.results is None:
            return None
        from engine.analysis.robustness import study_robustness

        return study_robustness(self.results)


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return _round(value)
    if value is None or (not isinstance(value, (str, bool, int)) and pd.isna(value)):
        return None
    return value if isinstance(value, (str, bool, int)) else str(value)


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _ago(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    seconds = max(0.0, time.time() - stamp)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


class Catalog:
    """The studies under one directory (or the one study that directory is), read on demand."""

    def __init__(self, path: str | Path, *, keep: int = 16) -> None:
        # resolved once: relative paths keep working whatever the server's working directory, and
        # a link given as the directory shows what it points at (links below it are not followed)
        root = Path(path).expanduser().resolve()
        if not root.exists():
            raise InputError(
                f"{root}: no such directory; give a studies directory (default: studies) or a study "
                "made by 'boengine run'"
            )
        if not root.is_dir():
            raise InputError(f"{root}: not a directory; give a studies directory or a study directory")
        self.root = root
        self.single = is_study_dir(root)
        self._keep = keep
        self._views: OrderedDict[str, StudyView] = OrderedDict()
        self._verdicts: OrderedDict[tuple[Any, ...], Verdict | None] = OrderedDict()
        self._lock = threading.Lock()

    def studies(self) -> dict[str, Path]:
        """Key (the path below the root, ``name`` or ``line/window``) -> directory, in name order.

        The root's study directories, and those one level further down (the windows of a study
        line written by ``run --window``); symbolic links are not followed.
        """
        if self.single:
            return {self.root.name: self.root}
        out: dict[str, Path] = {}
        for child in _children(self.root):
            if is_study_dir(child):
                out[child.name] = child
            else:
                out.update({f"{child.name}/{g.name}": g for g in _children(child) if is_study_dir(g)})
        return out

    def view(self, key: str) -> StudyView | None:
        """The study ``key`` as it is now; None when there is no such study."""
        path = self.studies().get(key)
        return None if path is None else self._view(key, path)

    def views(self) -> list[StudyView]:
        return [self._view(key, path) for key, path in self.studies().items()]

    def _view(self, key: str, path: Path) -> StudyView:
        signature = study_signature(path)
        with self._lock:
            cached = self._views.get(key)
            if cached is not None and cached.signature == signature:
                self._views.move_to_end(key)
                return cached
            view = self._read(key, path, signature)
            self._views[key] = view
            self._views.move_to_end(key)
            while len(self._views) > self._keep:
                self._views.popitem(last=False)
            return view

    def _read(self, key: str, path: Path, signature: tuple[Any, ...]) -> StudyView:
        running = bool(signature[1])
        if not StudyStore(path).spec_path.is_file():
            return StudyView(key, path, signature, running, None, "starting: no spec.json yet")
        try:
            res = StudyResults.load(path)
        except InputError as exc:
            return StudyView(key, path, signature, running, None, str(exc))
        except Exception as exc:  # a damaged study is shown as such, never crashes a page
            logger.debug("reading %s", path, exc_info=True)
            return StudyView(key, path, signature, running, None, f"{type(exc).__name__}: {exc}")
        view = StudyView(key, path, signature, running, res, None)
        self._attach_verdict(view, res)
        return view

    def _attach_verdict(self, view: StudyView, res: StudyResults) -> None:
        """The verdict for this trial state, computed once (in memory, nothing written)."""
        state = (
            str(view.path),
            tuple((r.index, r.status, r.epochs) for r in res.records),
            res.spec.seed,
            dict(view.signature[0])["results"],
        )
        if state not in self._verdicts:
            try:
                self._verdicts[state] = res.verdict
                while len(self._verdicts) > 4 * self._keep:
                    self._verdicts.popitem(last=False)
            except Exception as exc:  # e.g. data not prepared yet: shown, not raised
                logger.debug("verdict of %s", view.path, exc_info=True)
                view.verdict_error = f"{type(exc).__name__}: {exc}"
                return
        view.verdict = self._verdicts[state]
        res.__dict__["verdict"] = view.verdict  # StudyResults.verdict is a cached_property: reuse it
