"""Executors: where trials run (a local process pool, or Ray)."""

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

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "TrialFn",
    "available_cores",
    "make_executor",
    "register_executor",
    "thread_plan",
]


def make_executor(kind: str, **kwargs: object) -> Executor:
    """The executor registered as ``kind`` (the spec's ``executor.kind``)."""
    from strategies.exceptions import ConfigError

    try:
        cls = EXECUTORS[kind]
    except KeyError:
        raise ConfigError(f"executor: unknown kind '{kind}'; known: {', '.join(EXECUTORS)}") from None
    return cls(**kwargs)  # type: ignore[arg-type]
