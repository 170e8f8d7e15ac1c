"""What a running study shows: a rich live panel, plain log lines, JSON lines, or nothing.

The loop calls a :class:`Progress` at a handful of events with a
:class:`Snapshot` of the study. ``--progress rich`` (default on a terminal)
draws a live panel; ``plain`` logs one line per event; ``jsonl`` prints one
JSON object per event on stdout for scheduled jobs and scripts; ``quiet``
prints nothing.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine.records import ObjectiveSet, TrialRecord

__all__ = [
    "PROGRESS_MODES",
    "JsonlProgress",
    "PlainProgress",
    "Progress",
    "QuietProgress",
    "RichProgress",
    "Snapshot",
    "make_progress",
    "shown_metrics",
    "take_snapshot",
]

logger = logging.getLogger(__name__)

PANEL_WIDTH = 110


@dataclass(frozen=True)
class Snapshot:
    """The study at one moment."""

    budget: int
    counts: dict[str, int]
    best: dict[str, float]
    hypervolume: float
    elapsed_s: float
    eta_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    best_trial: dict[str, int] = field(default_factory=dict)  # the trial of each best value
    knee: dict[str, Any] | None = None  # the front's knee: {"trial": i, name: value, ...}

    @property
    def done(self) -> int:
        return (
            self.counts.get("completed", 0)
            + self.counts.get("early_stopped", 0)
            + self.counts.get("failed", 0)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "counts": self.counts,
            "best": {k: {"value": v, "trial": self.best_trial.get(k)} for k, v in self.best.items()},
            "knee": self.knee,
            "hypervolume": self.hypervolume,
            "elapsed_s": round(self.elapsed_s, 2),
            "eta_s": None if math.isnan(self.eta_s) else round(self.eta_s, 1),
        }


def take_snapshot(
    records: Sequence[TrialRecord],
    objectives: ObjectiveSet,
    *,
    budget: int,
    remaining: int,
    elapsed_s: float,
    workers: int = 1,
) -> Snapshot:
    """The study now: counts of the trials evaluated here, the best feasible value of each
    objective (and its trial), the front's knee, hypervolume, ETA.

    ``remaining``: trials still to start (budget left and queued). The ETA is
    the median duration of the trials finished in this run so far times the
    trials left, over ``workers``; NaN (shown as "estimating") until one finished.
    """
    here = [r for r in records if not r.attached]  # what the budget counts
    counts = {
        s: sum(r.status == s for r in here) for s in ("completed", "early_stopped", "failed", "running")
    }
    best: dict[str, float] = {}
    best_trial: dict[str, int] = {}
    for name in objectives.names:
        rec = objectives.best(records, name)
        if rec is not None:
            best[name], best_trial[name] = rec.metrics[name], rec.index
    knee_rec = objectives.knee(objectives.front(records))
    knee = None
    if knee_rec is not None:
        knee = {"trial": knee_rec.index, **{n: knee_rec.metrics[n] for n in objectives.names}}
    durations = sorted(r.seconds["total"] for r in here if r.status != "running" and "total" in r.seconds)
    left = remaining + counts["running"]
    eta = durations[len(durations) // 2] * left / max(1, workers) if durations else math.nan
    return Snapshot(
        budget=budget,
        counts=counts,
        best=best,
        hypervolume=objectives.hypervolume(records),
        elapsed_s=elapsed_s,
        eta_s=eta,
        best_trial=best_trial,
        knee=knee,
    )


class Progress:
    """Base class: every hook does nothing."""

    def start(self, spec: Any, snap: Snapshot) -> None: ...

    def batch(self, trials: list[int], seconds: float, node: str) -> None: ...

    def trial_started(self, rec: TrialRecord, snap: Snapshot) -> None: ...

    def trial_finished(self, rec: TrialRecord, snap: Snapshot) -> None: ...

    def stop(self, snap: Snapshot) -> None: ...


class QuietProgress(Progress):
    """Nothing at all."""


Shown = tuple[tuple[str, str], ...]  # (metric, label) pairs of a progress line
_DEFAULT_SHOWN: Shown = ()  # before start(): the first three metrics under their names


def shown_metrics(spec: Any) -> Shown:
    """The spec's objectives with their labels from the objective's metric catalogue."""
    from engine.objective import make_objective

    catalogue = make_objective(spec).catalogue
    return tuple((name, catalogue.label(name)) for name in spec.objectives)


def _fmt_metrics(metrics: dict[str, float], shown: Shown = _DEFAULT_SHOWN) -> str:
    parts = [f"{label} {metrics[n]:.3g}" for n, label in shown if n in metrics]
    return ", ".join(parts) if parts else ", ".join(f"{k} {v:.3g}" for k, v in list(metrics.items())[:3])


class PlainProgress(Progress):
    """One log line per event (good for files and CI logs)."""

    _shown: Shown = _DEFAULT_SHOWN

    def start(self, spec: Any, snap: Snapshot) -> None:
        self._shown = shown_metrics(spec)
        logger.info("study '%s': %d/%d trials done", spec.name, snap.done, snap.budget)

    def batch(self, trials: list[int], seconds: float, node: str) -> None:
        logger.info("proposed trials %s with %s in %.2f s", trials, node, seconds)

    def trial_finished(self, rec: TrialRecord, snap: Snapshot) -> None:
        what = rec.reason if rec.status == "failed" else _fmt_metrics(rec.metrics, self._shown)
        logger.info(
            "trial %d %s: %s [%d/%d, hv=%.4g]",
            rec.index,
            rec.status,
            what,
            snap.done,
            snap.budget,
            snap.hypervolume,
        )


class JsonlProgress(Progress):
    """One JSON object per event on a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _emit(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields}) + "\n")
        self.stream.flush()

    def start(self, spec: Any, snap: Snapshot) -> None:
        self._emit("start", study=spec.name, **snap.to_dict())

    def batch(self, trials: list[int], seconds: float, node: str) -> None:
        self._emit("batch", trials=trials, seconds=round(seconds, 4), node=node)

    def trial_started(self, rec: TrialRecord, snap: Snapshot) -> None:
        self._emit("trial_started", trial=rec.index, params=rec.params, source=rec.source)

    def trial_finished(self, rec: TrialRecord, snap: Snapshot) -> None:
        self._emit(
            "trial_finished",
            trial=rec.index,
            status=rec.status,
            reason=rec.reason,
            metrics=rec.metrics,
            epochs=rec.epochs,
            **snap.to_dict(),
        )

    def stop(self, snap: Snapshot) -> None:
        self._emit("stop", **snap.to_dict())


class RichProgress(Progress):
    """A live panel: trial counts, best so far per objective, hypervolume, ETA."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self._live: Any = None
        self._name = ""
        self._last: list[str] = []
        self._shown: Shown = _DEFAULT_SHOWN

    def _render(self, snap: Snapshot) -> Any:
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        c = snap.counts
        table.add_row(
            f"[bold]{snap.done}/{snap.budget}[/] done",
            f"[green]{c.get('completed', 0)} completed[/]",
            f"[yellow]{c.get('early_stopped', 0)} early-stopped[/]",
            f"[red]{c.get('failed', 0)} failed[/]",
            f"{c.get('running', 0)} running",
        )
        eta = "estimating" if math.isnan(snap.eta_s) else f"{snap.eta_s / 60:.1f} min"
        table.add_row(
            f"hypervolume {snap.hypervolume:.4g}",
            f"elapsed {snap.elapsed_s / 60:.1f} min",
            f"ETA {eta}",
            "",
            "",
        )
        from rich.console import Group
        from rich.text import Text

        label = dict(self._shown)
        if snap.knee is not None:
            values = "  ".join(f"{label.get(k, k)} {v:.4g}" for k, v in snap.knee.items() if k != "trial")
            knee = f"knee of the front: trial {snap.knee['trial']}: {values}"
        else:
            knee = "no feasible trial yet"
        bests = "  ".join(
            f"{label.get(k, k)} {v:.4g} (#{snap.best_trial.get(k)})" for k, v in snap.best.items()
        )
        lines = Text(
            "\n".join([knee, f"best of each: {bests}" if bests else ""]), no_wrap=True, overflow="ellipsis"
        )
        recent = Text("\n".join(self._last[-4:]), style="dim", overflow="ellipsis", no_wrap=True)
        width = min(self.console.width, PANEL_WIDTH)  # a fixed width: the panel does not jump
        return Panel(Group(table, lines, recent), title=f"boengine · {self._name}", width=width)

    def start(self, spec: Any, snap: Snapshot) -> None:
        from rich.live import Live

        self._name = spec.name
        self._shown = shown_metrics(spec)
        self._live = Live(self._render(snap), console=self.console, refresh_per_second=2, transient=False)
        self._live.start()

    def batch(self, trials: list[int], seconds: float, node: str) -> None:
        self._last.append(f"proposed {trials} ({node}, {seconds:.2f} s)")

    def trial_started(self, rec: TrialRecord, snap: Snapshot) -> None:
        if self._live is not None:
            self._live.update(self._render(snap))

    def trial_finished(self, rec: TrialRecord, snap: Snapshot) -> None:
        what = rec.reason if rec.status == "failed" else _fmt_metrics(rec.metrics, self._shown)
        self._last.append(f"trial {rec.index} {rec.status}: {what}")
        if self._live is not None:
            self._live.update(self._render(snap))

    def stop(self, snap: Snapshot) -> None:
        if self._live is not None:
            self._live.update(self._render(snap))
            self._live.stop()
            self._live = None


PROGRESS_MODES: dict[str, type[Progress]] = {
    "rich": RichProgress,
    "plain": PlainProgress,
    "jsonl": JsonlProgress,
    "quiet": QuietProgress,
}


def make_progress(mode: str) -> Progress:
    """The progress display called ``mode`` (``auto``: rich on a terminal, else plain)."""
    if mode == "auto":
        mode = "rich" if sys.stderr.isatty() else "plain"
    return PROGRESS_MODES[mode]()
