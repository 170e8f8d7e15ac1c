"""Model families, their search spaces, and data-driven priors.

Families register themselves on import (:func:`register_family`); experiment
specs name them (:data:`FAMILIES`). :func:`build_model` turns one trial's
parameters into an ``nn.Module`` whose forward maps ``x: batch x seq x
features`` to a :class:`ModelOutput`. Nothing here depends on Ax.
"""

from strategies import lstm, moe, transformer  # noqa: F401  (register the families)
from strategies.base import ModelOutput
from strategies.priors import DataDrivenOptimizer, RegimeStats
from strategies.registry import (
    TRAINING_PARAMS,
    Family,
    build_model,
    count_parameters,
    family_names,
    get_family,
    model_config,
    register_family,
)

FAMILIES: tuple[str, ...] = family_names()

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
    "register_family",
]
