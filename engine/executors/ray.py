"""Ray executor: trials as Ray tasks, on this machine or a cluster.

``"executor": {"kind": "ray", "address": "auto"}`` joins a running cluster;
without an address a local Ray is started with ``workers * threads`` CPUs.
The Ax loop stays in the driver. Prepared data go to Ray's object store once
(workers on other machines can't read the study directory) and the per-epoch
channel is a small actor. Ray is an optional extra: ``pip install boengine[ray]``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.executors.base import Executor, TrialFn, register_executor
from engine.trial import TrialJob, TrialOutcome
from strategies.exceptions import ConfigError

if TYPE_CHECKING:
    from engine.executors import ExecutorPlan

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)


class _ChannelState:
    """Actor state behind :class:`ActorChannel`."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []
        self.stops: set[int] = set()

    def report(self, trial_index: int, report: dict[str, float]) -> None:
        self.reports.append((trial_index, report))

    def should_stop(self, trial_index: int) -> bool:
        return trial_index in self.stops

    def stop(self, trial_index: int) -> None:
        self.stops.add(trial_index)

    def drain(self) -> list[tuple[int, dict[str, float]]]:
        out, self.reports = self.reports, []
        return out


class ActorChannel:
    """Picklable handle used inside Ray tasks."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def report(self, trial_index: int, report: Mapping[str, float]) -> None:
        self._actor.report.remote(trial_index, dict(report))

    def should_stop(self, trial_index: int) -> bool:
        import ray

        return bool(ray.get(self._actor.should_stop.remote(trial_index)))


@register_executor("ray")
class RayExecutor(Executor):
    """Trials as Ray tasks with ``threads`` CPUs (and optional GPUs) each."""

    def __init__(self, *, address: str | None = None, gpus_per_trial: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address
        self.gpus_per_trial = gpus_per_trial
        self._refs: dict[Any, int] = {}
        self._started: dict[int, float] = {}
        self._actor: Any = None
        self._data_ref: Any = None
        self._remote: Any = None
        self._owns_ray = False

    @classmethod
    def from_plan(cls, plan: ExecutorPlan, *, trial_timeout_s: float, fn: TrialFn) -> RayExecutor:
        return cls(
            address=plan.address,
            gpus_per_trial=plan.gpus_per_trial,
            workers=plan.workers,
            threads=plan.threads,
            trial_timeout_s=trial_timeout_s,
            fn=fn,
        )

    @property
    def running(self) -> set[int]:
        return set(self._refs.values())

    def start(self, data: Any = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "executor 'ray' needs Ray: pip install 'boengine[ray]' (or set executor.kind to 'local')"
            ) from None
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs.update(
                    num_cpus=self.workers * self.threads,
                    object_store_memory=256 * 1024**2,
                )
            else:
                kwargs["address"] = self.address
            ray.init(**kwargs)
            self._owns_ray = True
        self._actor = ray.remote(num_cpus=0)(_ChannelState).remote()
        self._data_ref = ray.put(data) if data is not None else None
        self._remote = ray.remote(num_cpus=self.threads, num_gpus=self.gpus_per_trial, max_retries=0)(self.fn)

    def submit(self, job: TrialJob) -> None:
        ref = self._remote.remote(job, ActorChannel(self._actor), self._data_ref)
        self._refs[ref] = job.trial_index
        self._started[job.trial_index] = time.monotonic()

    def wait(self, timeout: float) -> list[TrialOutcome]:
        import ray

        if not self._refs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        out = [self._collect(ref) for ref in ready]
        now = time.monotonic()
        for ref, index in list(self._refs.items()):
            elapsed = now - self._started[index]
            if elapsed > self.trial_timeout_s:
                ray.cancel(ref, force=True)
                del self._refs[ref]
                del self._started[index]
                reason = f"timeout: ran longer than {self.trial_timeout_s:g} s"
                out.append(TrialOutcome.failed(index, reason, elapsed))
        return out

    def _collect(self, ref: Any) -> TrialOutcome:
        import ray

        index = self._refs.pop(ref)
        elapsed = time.monotonic() - self._started.pop(index)
        try:
            return ray.get(ref)  # type: ignore[no-any-return]
        except Exception as exc:  # a worker that died, or a task error outside execute()
            return TrialOutcome.failed(index, f"{type(exc).__name__}: {str(exc).splitlines()[0]}", elapsed)

    def drain_reports(self) -> list[tuple[int, dict[str, float]]]:
        import ray

        if self._actor is None:
            return []
        return list(ray.get(self._actor.drain.remote()))

    def request_stop(self, trial_index: int) -> None:
        if self._actor is not None:
            self._actor.stop.remote(trial_index)

    def shutdown(self) -> list[int]:
        cancelled = sorted(self.running)
        try:
            import ray
        except ImportError:
            return cancelled
        for ref in self._refs:
            ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._actor = None
        return cancelled
