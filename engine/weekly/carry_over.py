"""What a new study window carries over from the previous one, and runs first.

What a new window carries over from the previous one (the newest earlier
window of the line), ``warm_start.previous_window``:

- ``"reevaluate"`` (default): the previous window's Pareto set and the live
  configuration (``--live-config``: the strategy config that ``boengine best
  --write-config`` maintains, :mod:`engine.weekly.live_config`) are the new window's first trials, measured
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

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.analysis.model_selection import choose_front
from engine.records import ObjectiveSet, TrialRecord
from engine.spec import ExperimentSpec, study_spec
from engine.store import StudyStore
from engine.weekly.live_config import live_entry
from engine.weekly.windows import regime
from strategies.space import SearchSpace

if TYPE_CHECKING:
    from engine.objective import Objective
    from engine.weekly.windows import Window

__all__ = ["CarryOver", "WindowStart", "plan_carry_over", "why_outside"]

logger = logging.getLogger(__name__)


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
    spec = study_spec(store)
    choice = choose_front(spec, store.trial_records())
    knee = choice.knee(ObjectiveSet.from_spec(spec))
    return sorted(choice.front, key=lambda r: (r is not knee, r.index))


@dataclass
class WindowStart:
    """How a study window (or a study with ``--live-config``) starts: :func:`engine.study.run.run_study`'s
    ``start``. What it carries over is planned when the study is new (bad input: exit 2 before
    anything is written), recorded before the study exists (``carry_over.json``: a run killed
    early finds what it must still run first), queued first, and the window's regime statistics
    are recorded once the study is created."""

    window: Window | None = None
    live_config: Path | None = None
    carry: CarryOver | None = None

    def plan(self, spec: ExperimentSpec) -> list[str]:
        """Read what the new study carries over; the studies it attaches (``previous_window: attach``)."""
        previous = self.window.previous if self.window is not None else None
        self.carry = plan_carry_over(spec, previous, self.live_config)
        return [str(self.carry.previous)] if self.carry.attach_previous else []

    def before_create(self, store: StudyStore) -> None:
        if self.carry is not None:
            store.write_carry_over(self.carry.to_dict())

    def first(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The configurations to run first, by source: the live configuration, the previous front."""
        if self.carry is None:
            return []
        self.carry.log()
        return [
            (src, [p for p, s in self.carry.configs if s == src]) for src in ("champion", "previous_front")
        ]

    def created(self, store: StudyStore, objective: Objective) -> None:
        if self.window is not None:
            store.write_regime(regime(self.window.spec, objective.training_bars()))

    def resumed(self) -> None:
        if self.live_config is not None:
            logger.info("--live-config: the study exists; its live configuration was queued when it started")
