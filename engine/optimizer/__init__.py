"""Everything boengine replaces of Ax's and BoTorch's defaults, in one place.

Public parts (each concept in its own module):

- :class:`OptimizerSpec` (``spec``): the ``"optimizer"`` section of a spec;
  importing it loads neither torch nor Ax.
- :func:`build_generation_strategy` (``strategy``): Sobol, then qLogNEHVI
  with the pieces below, as an Ax ``GenerationStrategy``.
- ``acquisition`` (qLogNEHVI with a vectorised set-up and lean sampling),
  ``boxes`` (box decompositions), ``gp`` and ``mll`` (the GP and its
  marginal likelihood), ``candidates`` (restarts side by side, no repeated
  points), ``slsqp`` (batched SLSQP).
- :func:`memoize_constraint_parsing`, :func:`ordered_rounding`,
  :func:`seeded_rounding`, :func:`stopped_trials_pending` (``patches``): the
  patches of Ax.
- :func:`prebuild_kernels` (``kernels``): BoTorch's fused kernel, built once.
- :func:`set_torch_threads` (``threads``).

This package imports nothing else of ``engine``. Heavy parts load on first
use (PEP 562), so ``from engine.optimizer import OptimizerSpec`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.optimizer.spec import OptimizerSpec

if TYPE_CHECKING:
    from engine.optimizer.kernels import KernelStatus, prebuild_kernels
    from engine.optimizer.patches import (
        memoize_constraint_parsing,
        ordered_rounding,
        seeded_rounding,
        stopped_trials_pending,
    )
    from engine.optimizer.strategy import MODEL_NODE, SOBOL_NODE, build_generation_strategy
    from engine.optimizer.threads import set_torch_threads

__all__ = [
    "MODEL_NODE",
    "SOBOL_NODE",
    "KernelStatus",
    "OptimizerSpec",
    "build_generation_strategy",
    "memoize_constraint_parsing",
    "ordered_rounding",
    "prebuild_kernels",
    "seeded_rounding",
    "set_torch_threads",
    "stopped_trials_pending",
]

_LAZY = {
    "MODEL_NODE": "strategy",
    "SOBOL_NODE": "strategy",
    "build_generation_strategy": "strategy",
    "KernelStatus": "kernels",
    "prebuild_kernels": "kernels",
    "memoize_constraint_parsing": "patches",
    "ordered_rounding": "patches",
    "seeded_rounding": "patches",
    "stopped_trials_pending": "patches",
    "set_torch_threads": "threads",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
