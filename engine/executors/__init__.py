"""Executors: where trials run (a local process pool, or Ray).

:func:`plan_executor` sizes an executor from the spec's ``executor`` section
before anything is written (workers x torch threads never exceed the cores);
:func:`make_executor` builds the registered executor of that plan.
"""

from __future__ import annotations

import logging
import os
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
from engine.executors.plan import ExecutorPlan
from engine.executors.ray import RayExecutor
from strategies.exceptions import ConfigError

if TYPE_CHECKING:
    from engine.spec import ExecutorSpec

logger = logging.getLogger(__name__)

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorPlan",
    "LocalExecutor",
    "RayExecutor",
    "TrialFn",
    "available_cores",
    "check_executor",
    "make_executor",
    "plan_executor",
    "register_executor",
    "thread_plan",
]


def plan_executor(spec: ExecutorSpec, cores: int | None = None) -> ExecutorPlan:
    """Size the executor of ``spec``; raise ConfigError when it would oversubscribe the cores.

    A Ray cluster (``address`` set) may have more cores than this machine: its
    size is what the spec asks for (:func:`check_executor` looks at the
    cluster). A Ray spec without an address joins the cluster in
    ``RAY_ADDRESS`` when that is set, as ``ray.init()`` does.
    """
    if spec.kind not in EXECUTORS:
        raise ConfigError(f"executor: unknown kind '{spec.kind}'; known: {', '.join(EXECUTORS)}")
    cores = cores or available_cores()
    address = spec.address
    if spec.kind == "ray" and address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
        logger.debug("executor.address is not set: joining the Ray cluster of RAY_ADDRESS (%s)", address)
    if spec.kind == "ray" and address is not None:
        cores = max(cores, (spec.workers or 1) * (spec.threads_per_worker or 1))
    workers, threads = thread_plan(spec.workers, spec.threads_per_worker, cores)
    return ExecutorPlan(spec.kind, workers, threads, address, spec.gpus_per_trial)


def check_executor(plan: ExecutorPlan) -> None:
    """Refuse a plan that cannot run where it would (see :meth:`Executor.check`); before any write."""
    make_class(plan.kind).check(plan)


def make_executor(plan: ExecutorPlan, *, trial_timeout_s: float, fn: TrialFn) -> Executor:
    """The executor registered as ``plan.kind``, sized by ``plan``."""
    return make_class(plan.kind).from_plan(plan, trial_timeout_s=trial_timeout_s, fn=fn)


def make_class(kind: str) -> type[Executor]:
    """The executor class registered as ``kind``."""
    try:
        return EXECUTORS[kind]
    except KeyError:
        raise ConfigError(f"executor: unknown kind '{kind}'; known: {', '.join(EXECUTORS)}") from None
