"""Executors: where trials run (a local process pool, or Ray).

:func:`plan_executor` sizes an executor from the spec's ``executor`` section
before anything is written (workers x torch threads never exceed the cores);
:func:`make_executor` builds the registered executor of that plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.executors.base import (
    EXECUTORS,
    Executor,
    TrialFn,
    available_cores,
    register_executor,
    thread_plan,
)
from engine.executors.local import LocalExecutor
from engine.executors.ray import RayExecutor
from strategies.exceptions import ConfigError

if TYPE_CHECKING:
    from engine.spec import ExecutorSpec

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorPlan",
    "LocalExecutor",
    "RayExecutor",
    "TrialFn",
    "available_cores",
    "make_executor",
    "plan_executor",
    "register_executor",
    "thread_plan",
]


@dataclass(frozen=True)
class ExecutorPlan:
    """An executor's kind and size: ``workers`` parallel trials with ``threads`` torch threads each."""

    kind: str
    workers: int
    threads: int
    address: str | None = None
    gpus_per_trial: float = 0.0


def plan_executor(spec: ExecutorSpec, cores: int | None = None) -> ExecutorPlan:
    """Size the executor of ``spec``; raise ConfigError when it would oversubscribe the cores.

    A Ray cluster (``address`` set) may have more cores than this machine: its
    size is what the spec asks for.
    """
    if spec.kind not in EXECUTORS:
        raise ConfigError(f"executor: unknown kind '{spec.kind}'; known: {', '.join(EXECUTORS)}")
    cores = cores or available_cores()
    if spec.kind == "ray" and spec.address is not None:
        cores = max(cores, (spec.workers or 1) * (spec.threads_per_worker or 1))
    workers, threads = thread_plan(spec.workers, spec.threads_per_worker, cores)
    return ExecutorPlan(spec.kind, workers, threads, spec.address, spec.gpus_per_trial)


def make_executor(plan: ExecutorPlan, *, trial_timeout_s: float, fn: TrialFn) -> Executor:
    """The executor registered as ``plan.kind``, sized by ``plan``."""
    try:
        cls = EXECUTORS[plan.kind]
    except KeyError:
        raise ConfigError(f"executor: unknown kind '{plan.kind}'; known: {', '.join(EXECUTORS)}") from None
    return cls.from_plan(plan, trial_timeout_s=trial_timeout_s, fn=fn)
