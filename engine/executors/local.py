"""Local executor: a spawn process pool on this machine.

Each worker is a long-lived spawned process (torch imported once, ~2-4 s)
with its torch threads pinned to ``cores // workers``. Pebble's pool gives
per-trial timeouts (the worker running a hung trial is killed and replaced)
and reports crashed workers as errors instead of hanging. Prepared data are
memory-mapped from the study directory, so workers share the page cache
instead of each holding a copy.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import SyncManager
from typing import Any

from pebble import ProcessExpired, ProcessPool

from engine.executors.base import Executor, register_executor
from engine.study.trial import TrialJob, TrialOutcome, set_worker_threads

__all__ = ["LocalExecutor"]

logger = logging.getLogger(__name__)


#: Errors of a manager's proxies when the manager process is gone.
CHANNEL_ERRORS = (EOFError, OSError, BrokenPipeError, ConnectionError)


class QueueChannel:
    """A picklable channel over a multiprocessing manager's queue and dict (stop requests by trial
    index, answers to fold reports by ``(trial index, fold)``).

    If the manager process dies, a trial keeps training without reporting
    (its curve stops there) instead of failing: the configuration is not at
    fault. The driver starts a new manager for the next trials.
    """

    def __init__(self, reports: Any, stops: Any) -> None:
        self._reports = reports
        self._stops = stops

    def report(self, trial_index: int, report: Mapping[str, float]) -> None:
        try:
            self._reports.put((trial_index, dict(report)))
        except CHANNEL_ERRORS:
            logger.debug("trial %d: the report channel is gone", trial_index)

    def should_stop(self, trial_index: int) -> bool:
        try:
            return bool(self._stops.get(trial_index, False))
        except CHANNEL_ERRORS:
            return False

    def fold_answered(self, trial_index: int, fold: int) -> bool:
        try:
            return bool(self._stops.get((trial_index, fold), False))
        except CHANNEL_ERRORS:
            return True  # no driver to wait for


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies (prctl); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the driver dies (even by SIGKILL) instead of running on as an orphan.

    On Linux the kernel kills the process at once (a parent-death signal);
    elsewhere a watcher thread polls. Ctrl-C reaches the whole process group;
    only the driver handles it (it abandons the running trials), so helpers
    ignore SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _die_with_parent():
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start child processes with SIGINT ignored from their first instruction.

    Ctrl-C reaches the whole process group. A spawned child that gets it while
    it imports (before its initializer can ignore it) dies with a
    KeyboardInterrupt traceback on the terminal; a child started while the
    driver ignores SIGINT inherits the ignored disposition instead (Python
    keeps it). The driver's own handler is back once the children run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _init_worker(threads: int, parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    set_worker_threads(threads)


@register_executor("local")
class LocalExecutor(Executor):
    """``workers`` spawned processes, one trial each at a time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = mp.get_context("spawn")
        self._pool: ProcessPool | None = None
        self._manager: Any = None
        self._channel: QueueChannel | None = None
        self._futures: dict[Future[TrialOutcome], int] = {}
        self._started: dict[int, float] = {}

    @property
    def running(self) -> set[int]:
        return set(self._futures.values())

    def start(self, data: Any = None) -> None:
        # The data argument is unused: workers memory-map job.data_dir instead.
        with _sigint_ignored():
            self._start_channel()
            self._start_pool()

    def _start_channel(self) -> None:
        manager = SyncManager(ctx=self._ctx)
        manager.start(_exit_with_parent, (os.getpid(),))
        self._manager = manager
        self._channel = QueueChannel(manager.Queue(), manager.dict())

    def _start_pool(self) -> None:
        self._pool = ProcessPool(
            max_workers=self.workers,
            initializer=_init_worker,
            initargs=(self.threads, os.getpid()),
            context=self._ctx,
        )
        assert self._pool.active  # starts the workers now, in this thread (see _sigint_ignored)

    def _repair(self) -> None:
        """A new manager if it died; a new pool if a worker's death broke it (no trial left on it)."""
        manager = getattr(self._manager, "_process", None)
        if manager is not None and not manager.is_alive():
            logger.warning("the report channel's process died; starting a new one")
            with _sigint_ignored():
                self._start_channel()
        if self._pool is not None and not self._pool.active and not self._futures:
            logger.warning("the worker pool broke (a worker died outside a trial); starting a new one")
            self._stop_pool()
            with _sigint_ignored():
                self._start_pool()

    def submit(self, job: TrialJob) -> None:
        self._repair()
        assert self._pool is not None and self._channel is not None, "start() first"
        future = self._pool.schedule(self.fn, args=(job, self._channel, None), timeout=self.trial_timeout_s)
        self._futures[future] = job.trial_index
        self._started[job.trial_index] = time.monotonic()

    def wait(self, timeout: float) -> list[TrialOutcome]:
        if not self._futures:
            time.sleep(timeout)
            return []
        done, _ = wait_futures(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        return [self._collect(f) for f in done]

    def _collect(self, future: Future[TrialOutcome]) -> TrialOutcome:
        index = self._futures.pop(future)
        elapsed = time.monotonic() - self._started.pop(index)
        try:
            return future.result()
        except FutureTimeout:
            return TrialOutcome.failed(index, f"timeout: ran longer than {self.trial_timeout_s:g} s", elapsed)
        except ProcessExpired as exc:
            return TrialOutcome.failed(index, f"worker process died (exit code {exc.exitcode})", elapsed)
        except BrokenProcessPool:
            # the pool broke under this trial (another worker died outside a trial): not the
            # configuration's fault, so the trial is abandoned and proposed again
            reason = "the worker pool broke (a worker died outside a trial); the trial runs again"
            return TrialOutcome(index, "abandoned", reason=reason, seconds={"total": elapsed})
        except Exception as exc:  # e.g. a job that could not be pickled
            return TrialOutcome.failed(index, f"{type(exc).__name__}: {exc}", elapsed)

    def drain_reports(self) -> list[tuple[int, dict[str, float]]]:
        if self._channel is None:
            return []
        out = []
        while True:
            try:
                out.append(self._channel._reports.get_nowait())
            except (queue.Empty, EOFError, OSError):
                return out

    def request_stop(self, trial_index: int) -> None:
        if self._channel is not None:
            self._channel._stops[trial_index] = True

    def answer_fold(self, trial_index: int, fold: int) -> None:
        if self._channel is not None:
            try:
                self._channel._stops[(trial_index, fold)] = True
            except CHANNEL_ERRORS:
                logger.debug("trial %d: the report channel is gone", trial_index)

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=10)
            self._pool = None

    def shutdown(self) -> list[int]:
        cancelled = sorted(self.running)
        for future in self._futures:
            future.cancel()
        self._stop_pool()
        self._futures.clear()
        manager, self._manager = self._manager, None
        if manager is not None and getattr(manager, "_process", None) is not None:
            try:  # a manager interrupted while it started has no shutdown method yet
                manager.shutdown()
            except (AttributeError, *CHANNEL_ERRORS):
                logger.debug("the report channel's process was already gone")
        return cancelled
