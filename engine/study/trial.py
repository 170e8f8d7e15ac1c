"""One trial, as a worker process runs it.

The driver builds a picklable :class:`TrialJob`; an executor runs
:func:`execute` in a worker with a :class:`Channel` for per-epoch reports and
stop requests; the worker returns a :class:`TrialOutcome`. Every exception is
caught here, at the trial boundary, and becomes a failed outcome with its
reason and traceback (which the driver writes to the trial's ``error.txt`` and to
``study.log``): a failing configuration is data, not a crash of the study.
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from engine.study.fold_stopping import FOLD_REPORT_KEY, await_answer

__all__ = [
    "Channel",
    "TrialJob",
    "TrialOutcome",
    "TrialStatus",
    "check_finite",
    "execute",
    "report_dict",
    "set_worker_threads",
]

logger = logging.getLogger(__name__)

TrialStatus = Literal["completed", "early_stopped", "failed", "abandoned"]


class Channel(Protocol):
    """Worker -> driver reports and driver -> worker stop requests (and answers to fold reports)."""

    def report(self, trial_index: int, report: Mapping[str, float]) -> None: ...

    def should_stop(self, trial_index: int) -> bool: ...

    def fold_answered(self, trial_index: int, fold: int) -> bool:
        """The driver has judged the trial's fold report ``fold`` (:mod:`engine.study.fold_stopping`)."""
        ...


class TrialObjective(Protocol):
    """What a worker needs of a job's objective (:class:`engine.objective.Objective` has it)."""

    def run_trial(
        self, job: TrialJob, on_epoch: Callable[[Mapping[str, float]], bool], data: Any = None
    ) -> TrialOutcome: ...


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to evaluate one configuration.

    ``objective`` (picklable: it holds the validated spec) evaluates it;
    ``data_dir`` is the study's prepared data on a shared disk (local executor).
    """

    trial_index: int
    params: Mapping[str, Any]
    seed: int
    objective: TrialObjective
    threads: int = 1
    data_dir: str | None = None


@dataclass
class TrialOutcome:
    """What came back from one trial.

    ``sems``: standard errors of the metrics that have one (walk-forward);
    ``arrays``: per-bar series written to the trial's directory as ``<name>.npy``
    (``returns``: net returns of the out-of-sample bars); ``traceback``: the
    formatted exception of a failed trial.
    """

    trial_index: int
    status: TrialStatus
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    epochs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    checkpoint: bytes | None = None
    sems: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    traceback: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # JSON-ready details (walk-forward: per-fold figures)

    @classmethod
    def failed(
        cls, trial_index: int, reason: str, seconds: float = 0.0, traceback: str | None = None
    ) -> TrialOutcome:
        return cls(trial_index, "failed", reason=reason, seconds={"total": seconds}, traceback=traceback)

    @classmethod
    def stopped(
        cls, trial_index: int, epochs: int, seconds: dict[str, float], info: dict[str, Any]
    ) -> TrialOutcome:
        """Early-stopped: no objectives; the epochs and seconds it trained before the stop."""
        return cls(trial_index, "early_stopped", epochs=epochs, seconds=dict(seconds), info=info)


def set_worker_threads(threads: int) -> None:
    """Pin torch's intra-op threads; oversubscribed cores make training many times slower."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def execute(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    """Evaluate ``job`` and never raise: errors become a failed outcome with the traceback."""
    start = time.perf_counter()
    set_worker_threads(job.threads)

    def on_epoch(report: Mapping[str, float]) -> bool:
        channel.report(job.trial_index, dict(report))
        if FOLD_REPORT_KEY in report:  # a fold report: wait for the driver's answer
            return await_answer(channel, job.trial_index, int(report[FOLD_REPORT_KEY]))
        return channel.should_stop(job.trial_index)

    try:
        outcome = job.objective.run_trial(job, on_epoch, data)
    except Exception as exc:  # the trial boundary: record, carry on (the driver logs the traceback)
        reason = f"{type(exc).__name__}: {exc}".strip()
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            reason += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
        return TrialOutcome.failed(
            job.trial_index, reason, time.perf_counter() - start, traceback=traceback.format_exc()
        )
    outcome.seconds["total"] = time.perf_counter() - start
    return check_finite(outcome)


def check_finite(outcome: TrialOutcome) -> TrialOutcome:
    """A completed trial with a NaN or infinite metric is a failed trial (never reaches the GP)."""
    values = {**outcome.metrics, **{f"{k} (standard error)": v for k, v in outcome.sems.items()}}
    bad = sorted(k for k, v in values.items() if not math.isfinite(v))
    if bad and outcome.status == "completed":
        return TrialOutcome.failed(
            outcome.trial_index, f"non-finite metrics: {', '.join(bad)}", outcome.seconds.get("total", 0.0)
        )
    return outcome


def report_dict(report: Any) -> dict[str, float]:
    """A dataclass of per-epoch figures as a plain dict of floats."""
    from dataclasses import asdict

    return {k: float(v) for k, v in asdict(report).items()}
