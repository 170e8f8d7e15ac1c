"""Objectives: what a study's trials evaluate, registered by name.

:class:`Objective` is the protocol (:mod:`engine.objective.base`). The
implementations register themselves with :func:`register_objective`:

- ``synthetic`` (:mod:`.synthetic_objective`): a closed-form test problem
  (``"strategy": "synthetic:dtlz2"``),
- ``holdout`` (:mod:`.model`): a model family trained on the training split and
  backtested on one validation split,
- ``walk_forward`` (:mod:`.walk_forward_objective`): a model family trained on
  expanding or rolling windows and backtested on consecutive validation blocks.
- ``cpcv`` (:mod:`.cpcv_objective`): a model family trained on the C(N, k) splits
  of combinatorial purged cross-validation and backtested on the recombined paths.

The trading pipeline these adapt lives in ``objectives/`` (``objectives/walk_forward.py``,
``objectives/cpcv.py``, ``objectives/synthetic.py``: the schemes themselves); the
``*_objective`` modules here are the engine's side of them.

:func:`objective_name` (:mod:`engine.objective.registry`) is the one place that maps a spec's strategy and
validation scheme to a name.
"""

from __future__ import annotations

# register the objectives
from engine.objective import cpcv_objective, model, synthetic_objective, walk_forward_objective  # noqa: F401
from engine.objective.base import EpochFn, HeldOutScore, Objective, Prepared
from engine.objective.registry import (
    OBJECTIVES,
    make_objective,
    objective_class,
    objective_name,
    register_objective,
)

__all__ = [
    "OBJECTIVES",
    "EpochFn",
    "HeldOutScore",
    "Objective",
    "Prepared",
    "make_objective",
    "objective_class",
    "objective_name",
    "register_objective",
]
