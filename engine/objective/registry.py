"""The name -> objective registry, and the one place that picks an objective for a spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.objective.base import Objective
from strategies.exceptions import ConfigError

if TYPE_CHECKING:
    from engine.spec_model import ExperimentSpec

__all__ = [
    "OBJECTIVES",
    "SYNTHETIC_PREFIX",
    "make_objective",
    "objective_class",
    "objective_name",
    "register_objective",
]

OBJECTIVES: dict[str, type[Objective]] = {}
SYNTHETIC_PREFIX = "synthetic:"


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: register an :class:`Objective` under ``name``."""

    def deco(cls: type[Objective]) -> type[Objective]:
        if name in OBJECTIVES:
            raise ValueError(f"objective '{name}' is registered twice")
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return deco


def objective_name(strategy: str, scheme: str) -> str:
    """``synthetic`` for a ``synthetic:`` strategy, else the validation scheme of a model family."""
    return "synthetic" if strategy.startswith(SYNTHETIC_PREFIX) else scheme


def objective_class(strategy: str, scheme: str) -> type[Objective]:
    name = objective_name(strategy, scheme)
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ConfigError(f"unknown objective '{name}'; known: {', '.join(OBJECTIVES)}") from None


def make_objective(spec: ExperimentSpec) -> Objective:
    """The objective of a validated spec."""
    return objective_class(spec.strategy, spec.data.validation.scheme)(spec)
