"""boengine's engine: the Ax study loop, executors, study store, warm start and exports.

The Python API (:mod:`engine.api`)::

    from engine import load_study, run_study

Entry points otherwise: ``boengine`` (:mod:`engine.cli`),
:func:`engine.study.run_study`, :func:`engine.spec.load_spec`. Submodules are
imported on use (PEP 562), so that worker processes, which only need
:mod:`engine.trial`, and ``boengine --help`` start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.api import Study, load_study, register_with_ax, run_study

__all__ = ["Study", "load_study", "register_with_ax", "run_study"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from engine import api

        return getattr(api, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
