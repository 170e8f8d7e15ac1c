"""One trial, as a worker process runs it.

The driver builds a picklable :class:`TrialJob`; an executor runs
:func:`execute` in a worker with a :class:`Channel` for per-epoch reports and
stop requests; the worker returns a :class:`TrialOutcome`. Every exception is
caught here, at the trial boundary, and becomes a failed outcome with its
reason: a failing configuration is data, not a crash of the study.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from objectives.config import BacktestSpec

__all__ = ["Channel", "TrialJob", "TrialOutcome", "TrialStatus", "execute", "set_worker_threads"]

logger = logging.getLogger(__name__)

TrialStatus = Literal["completed", "early_stopped", "failed"]


class Channel(Protocol):
    """Worker -> driver reports and driver -> worker stop requests."""

    def report(self, trial_index: int, report: Mapping[str, float]) -> None: ...

    def should_stop(self, trial_index: int) -> bool: ...


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to evaluate one configuration."""

    trial_index: int
    strategy: str
    params: Mapping[str, Any]
    seed: int
    max_epochs: int
    backtest: BacktestSpec = field(default_factory=BacktestSpec)
    time_budget_s: float | None = None
    device: str = "auto"
    threads: int = 1
    data_dir: str | None = None  # prepared data on a shared disk (local executor)
    epoch_seconds: float = 0.0  # synthetic problems only: simulated training time


@dataclass
class TrialOutcome:
    """What came back from one trial."""

    trial_index: int
    status: TrialStatus
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    epochs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    checkpoint: bytes | None = None

    @classmethod
    def failed(cls, trial_index: int, reason: str, seconds: float = 0.0) -> TrialOutcome:
        return cls(trial_index, "failed", reason=reason, seconds={"total": seconds})


def set_worker_threads(threads: int) -> None:
    """Pin torch's intra-op threads; oversubscribed cores make training many times slower."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def execute(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    """Evaluate ``job`` and never raise: errors become a failed outcome."""
    start = time.perf_counter()
    set_worker_threads(job.threads)

    def on_epoch(report: Mapping[str, float]) -> bool:
        channel.report(job.trial_index, dict(report))
        return channel.should_stop(job.trial_index)

    try:
        if job.strategy.startswith("synthetic:"):
            outcome = _execute_synthetic(job, on_epoch)
        else:
            outcome = _execute_model(job, on_epoch, data)
    except Exception as exc:  # the trial boundary: record, log, carry on
        logger.debug("trial %d failed", job.trial_index, exc_info=True)
        reason = f"{type(exc).__name__}: {exc}".strip()
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            reason += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
        return TrialOutcome.failed(job.trial_index, reason, time.perf_counter() - start)
    outcome.seconds["total"] = time.perf_counter() - start
    return _check_finite(outcome)


def _check_finite(outcome: TrialOutcome) -> TrialOutcome:
    """A completed trial with a NaN or infinite metric is a failed trial (never reaches the GP)."""
    bad = sorted(k for k, v in outcome.metrics.items() if not math.isfinite(v))
    if bad and outcome.status == "completed":
        return TrialOutcome.failed(
            outcome.trial_index, f"non-finite metrics: {', '.join(bad)}", outcome.seconds.get("total", 0.0)
        )
    return outcome


def _execute_synthetic(job: TrialJob, on_epoch: Callable[[Mapping[str, float]], bool]) -> TrialOutcome:
    from objectives.synthetic import get_problem

    problem = get_problem(job.strategy.removeprefix("synthetic:"))
    metrics, epochs, stopped = problem.evaluate(
        job.params, epochs=job.max_epochs, on_epoch=on_epoch, epoch_seconds=job.epoch_seconds
    )
    status: TrialStatus = "early_stopped" if stopped else "completed"
    return TrialOutcome(job.trial_index, status, metrics=metrics, epochs=epochs)


def _execute_model(job: TrialJob, on_epoch: Callable[[Mapping[str, float]], bool], data: Any) -> TrialOutcome:
    from objectives import EvalSettings, evaluate

    prepared = data if data is not None else _load_prepared(str(job.data_dir))
    settings = EvalSettings(
        max_epochs=job.max_epochs,
        time_budget_s=job.time_budget_s,
        backtest=job.backtest,
        seed=job.seed,
        device=job.device,
    )
    with tempfile.TemporaryDirectory(prefix="boengine-trial-") as tmp:
        ckpt = Path(tmp) / "model.pt"
        result = evaluate(
            job.strategy,
            job.params,
            prepared,
            settings,
            on_epoch=lambda r: on_epoch(_report_dict(r)),
            checkpoint_path=ckpt,
        )
        payload = ckpt.read_bytes() if ckpt.is_file() else None
    status: TrialStatus = "early_stopped" if result.stopped_by_callback else "completed"
    return TrialOutcome(
        job.trial_index,
        status,
        metrics={k: float(v) for k, v in result.metrics.items()},
        epochs=result.epochs_run,
        seconds={k: float(v) for k, v in result.seconds.items()},
        checkpoint=payload,
    )


def _report_dict(report: Any) -> dict[str, float]:
    from dataclasses import asdict

    return {k: float(v) for k, v in asdict(report).items()}


@lru_cache(maxsize=2)
def _load_prepared(directory: str) -> Any:
    """Memory-map the study's prepared arrays once per worker process."""
    from objectives import PreparedData

    return PreparedData.load(Path(directory), mmap=True)
