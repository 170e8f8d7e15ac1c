"""Model families, their search spaces, and data-driven priors.

Families register themselves on import (:func:`register_family`); experiment
specs name them (:data:`FAMILIES`), or name a user's family in its own module
as ``package.module:ClassName`` (:mod:`strategies.plugins`). :func:`build_model` turns one trial's
parameters into an ``nn.Module`` whose forward maps ``x: batch x seq x
features`` to a :class:`ModelOutput`. Nothing here depends on Ax.

The names below are loaded on first use (PEP 562), with the families and
torch: ``strategies.exceptions`` and ``strategies.space`` import neither, so
the commands that only read a study (``boengine status``, ``--help``) start
without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strategies.base import ModelOutput
    from strategies.priors import DataDrivenOptimizer, RegimeStats
    from strategies.registry import (
        TRAINING_PARAMS,
        Family,
        build_model,
        count_parameters,
        get_family,
        model_config,
        read_params,
        recipe,
        register_family,
        require,
    )

    FAMILIES: tuple[str, ...]

__all__ = [
    "FAMILIES",
    "TRAINING_PARAMS",
    "DataDrivenOptimizer",
    "Family",
    "ModelOutput",
    "RegimeStats",
    "build_model",
    "count_parameters",
    "get_family",
    "model_config",
    "read_params",
    "recipe",
    "register_family",
    "require",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'strategies' has no attribute {name!r}")
    from strategies import base, lstm, moe, priors, registry, transformer  # noqa: F401  (families register)

    exported: dict[str, Any] = {
        "FAMILIES": registry.family_names(),
        "TRAINING_PARAMS": registry.TRAINING_PARAMS,
        "DataDrivenOptimizer": priors.DataDrivenOptimizer,
        "Family": registry.Family,
        "ModelOutput": base.ModelOutput,
        "RegimeStats": priors.RegimeStats,
        "build_model": registry.build_model,
        "count_parameters": registry.count_parameters,
        "get_family": registry.get_family,
        "model_config": registry.model_config,
        "read_params": registry.read_params,
        "recipe": registry.recipe,
        "register_family": registry.register_family,
        "require": registry.require,
    }
    globals().update(exported)
    return exported[name]
