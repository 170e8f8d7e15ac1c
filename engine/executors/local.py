"""Local executor: a spawn process pool on this machine.

Each worker is a long-lived spawned process (torch imported once, ~2-4 s)
with its torch threads pinned to ``cores // workers``. Pebble's pool gives
per-trial timeouts (the worker running a hung trial is killed and replaced)
and reports crashed workers as errors instead of hanging. Prepared data are
memory-mapped from the study directory, so workers share the page cache
instead of each holding a copy.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from multiprocessing.managers import SyncManager
from typing import Any

from pebble import ProcessExpired, ProcessPool

from engine.executors.base import Executor, register_executor
from engine.trial import TrialJob, TrialOutcome, set_worker_threads

__all__ = ["LocalExecutor"]

logger = logging.getLogger(__name__)


class QueueChannel:
    """A picklable channel over a multiprocessing manager's queue and dict."""

    def __init__(self, reports: Any, stops: Any) -> None:
        self._reports = reports
        self._stops = stops

    def report(self, trial_index: int, report: Mapping[str, float]) -> None:
        self._reports.put((trial_index, dict(report)))

    def should_stop(self, trial_index: int) -> bool:
        return bool(self._stops.get(trial_index, False))


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the driver dies (even by SIGKILL) instead of running on as an orphan.

    Ctrl-C reaches the whole process group; only the driver handles it (it
    abandons the running trials), so helpers ignore SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


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
        self._manager = SyncManager(ctx=self._ctx)
        self._manager.start(_exit_with_parent, (os.getpid(),))
        self._channel = QueueChannel(self._manager.Queue(), self._manager.dict())
        self._pool = ProcessPool(
            max_workers=self.workers,
            initializer=_init_worker,
            initargs=(self.threads, os.getpid()),
            context=self._ctx,
        )

    def submit(self, job: TrialJob) -> None:
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

    def shutdown(self) -> list[int]:
        cancelled = sorted(self.running)
        if self._pool is not None:
            for future in self._futures:
                future.cancel()
            self._pool.stop()
            self._pool.join(timeout=10)
            self._pool = None
        self._futures.clear()
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None
        return cancelled
