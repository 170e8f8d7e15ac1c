"""The executor interface: run trial jobs in parallel, report what finished.

An executor owns its workers. The driver submits at most ``capacity`` jobs,
then polls :meth:`Executor.wait`, which returns finished outcomes — a timed-out
or crashed trial comes back as a *failed* outcome with its reason, never as an
exception. Per-epoch reports stream through :meth:`Executor.drain_reports`;
:meth:`Executor.request_stop` asks a running trial to stop after its current
epoch (early stopping); :meth:`Executor.answer_fold` tells a trial waiting after
a fold report that the driver has judged it (Pareto-aware stopping across folds).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.study.trial import Channel, TrialJob, TrialOutcome
from strategies.exceptions import ConfigError

if TYPE_CHECKING:
    from engine.executors.plan import ExecutorPlan

__all__ = ["EXECUTORS", "Executor", "TrialFn", "available_cores", "register_executor", "thread_plan"]

TrialFn = Callable[[TrialJob, Channel, Any], TrialOutcome]

EXECUTORS: dict[str, type[Executor]] = {}


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    def deco(cls: type[Executor]) -> type[Executor]:
        EXECUTORS[name] = cls
        return cls

    return deco


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity / container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_plan(workers: int | None, threads: int | None, cores: int) -> tuple[int, int]:
    """Workers and torch threads per worker with ``workers * threads <= cores``.

    Oversubscription (two workers each using every core) was measured to make
    training and GP fitting about 10x slower, so an explicit request that
    exceeds the cores is an error, not a warning.
    """
    w = workers or max(1, cores // (threads or 1))
    t = threads or max(1, cores // w)
    if w * t > cores:
        raise ConfigError(
            f"executor: {w} workers x {t} threads = {w * t} exceeds the {cores} cores; "
            "lower workers or threads_per_worker"
        )
    return w, t


class Executor(ABC):
    """Runs trial jobs in parallel; see the module docstring for the contract."""

    def __init__(self, *, workers: int, threads: int, trial_timeout_s: float, fn: TrialFn) -> None:
        self.workers = workers
        self.threads = threads
        self.trial_timeout_s = trial_timeout_s
        self.fn = fn

    @classmethod
    def from_plan(cls, plan: ExecutorPlan, *, trial_timeout_s: float, fn: TrialFn) -> Executor:
        """An executor of ``plan``'s size (subclasses read their own settings from it)."""
        return cls(workers=plan.workers, threads=plan.threads, trial_timeout_s=trial_timeout_s, fn=fn)

    @classmethod
    def check(cls, plan: ExecutorPlan) -> None:
        """Refuse, with one line (:class:`~strategies.exceptions.InputError`), a plan that cannot run
        where it would (an unreachable cluster, GPUs no node has). Called by ``validate`` and before
        a study writes anything; the default has nothing to check."""
        return None

    @property
    def capacity(self) -> int:
        """Trials that may run at once (the loop submits no more)."""
        return self.workers

    @property
    @abstractmethod
    def running(self) -> set[int]:
        """Trial indices submitted and not yet returned by :meth:`wait`."""

    @abstractmethod
    def start(self, data: Any = None) -> None:
        """Start workers. ``data`` (a PreparedData) is shared with every trial."""

    @abstractmethod
    def submit(self, job: TrialJob) -> None: ...

    @abstractmethod
    def wait(self, timeout: float) -> list[TrialOutcome]:
        """Outcomes of trials that finished within ``timeout`` seconds (maybe none)."""

    @abstractmethod
    def drain_reports(self) -> list[tuple[int, dict[str, float]]]:
        """Per-epoch reports received since the last call, oldest first."""

    @abstractmethod
    def request_stop(self, trial_index: int) -> None: ...

    def answer_fold(self, trial_index: int, fold: int) -> None:
        """The driver has judged fold report ``fold`` of a trial (after :meth:`request_stop` when
        it stops it). Without an answer a trial waits a few seconds, then trains on."""
        return None

    @abstractmethod
    def shutdown(self) -> list[int]:
        """Stop every worker; return the indices of trials cancelled while running."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
