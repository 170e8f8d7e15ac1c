"""An executor's kind and size (what :func:`engine.executors.plan_executor` decides)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExecutorPlan"]


@dataclass(frozen=True)
class ExecutorPlan:
    """An executor's kind and size: ``workers`` parallel trials with ``threads`` torch threads each."""

    kind: str
    workers: int
    threads: int
    address: str | None = None
    gpus_per_trial: float = 0.0
