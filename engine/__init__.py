"""boengine's engine: a study of a trading model's hyperparameters, from spec to chosen config.

The Python API (:mod:`engine.interfaces.api`)::

    from engine import load_study, run_study

A map, in the order a study runs (README, "What a study does"); each room's ``__init__`` says
what its files do::

    spec.py, spec_model.py       the experiment spec: read and checked against its objective
                                 (spec.py, above objective/), its typed sections (spec_model.py)
    metric_rules.py,             the metric catalogue, the search space, ``boengine check-data``
      search_space.py,           (look-ahead and constant-column checks)
      check_data.py
    objective/                   what a trial evaluates (synthetic problem, model family under
                                 holdout / walk-forward / CPCV); pipeline.py: the one door to objectives/
    optimizer/                   the generation strategy and its BoTorch pieces
                                 (imports nothing else of engine/)
    study/                       the study lifecycle: run.py (checks before any write, create or
                                 resume, run, finish), experiment.py (the Ax client), loop.py,
                                 tell.py, trial.py (one trial in a worker), progress.py,
                                 fold_stopping.py, warmstart.py, finish.py (test scoring, verdict)
    executors/                   local process pool or Ray
    store.py, records.py,        the study directory: the one read model of its files
      meta.py
    analysis/                    a study read back (results.py; its verdict: ``StudyResults.verdict``)
                                 and the statistics of choosing: selection, skill, ledger, verdict,
                                 robustness, model_selection
    reporting/                   what a reader sees: report, report_verdict, plots, tables, export,
                                 best (the strategy-config entry of a chosen trial)
    weekly/                      the weekly job: windows, carry-over, live config, champion rule
    interfaces/                  the ways in: cli.py, api.py, dashboard/, tracking.py (MLflow)

Entry points otherwise: ``boengine`` (:mod:`engine.interfaces.cli`),
:func:`engine.study.run.run_study`, :func:`engine.spec.load_spec`. Submodules are
imported on use (PEP 562), so that worker processes, which only need
:mod:`engine.study.trial`, and ``boengine --help`` start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.interfaces.api import Study, load_study, register_with_ax, run_study

__all__ = ["Study", "load_study", "register_with_ax", "run_study"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from engine.interfaces import api

        return getattr(api, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
