"""boengine's engine: a study of a trading model's hyperparameters, from spec to chosen config.

The Python API (:mod:`engine.api`)::

    from engine import load_study, run_study

A map, in the order a study runs (README, "What a study does")::

    spec.py, metric_rules.py, search_space.py   the experiment spec, the metric catalogue, the space
    check_data.py                ``boengine check-data``: look-ahead and constant-column checks
    study.py                     run or resume: checks before any write, create or resume, run, finish
      objective/                 what a trial evaluates (synthetic problem, model family under
                                 holdout / walk-forward / CPCV); pipeline.py: the one door to objectives/
      experiment.py, optimizer/  the Ax client; its generation strategy and BoTorch pieces
                                 (optimizer/ imports nothing else of engine/)
      loop.py, tell.py, trial.py the study loop, recording outcomes, one trial in a worker
      progress.py                the live display
      executors/                 local process pool or Ray
      fold_stopping.py           Pareto-aware stopping across walk-forward folds
      warmstart.py               earlier studies attached, DataDrivenOptimizer priors
      finish.py                  test scoring of the front, the verdict, pareto.csv and the report
    store.py, records.py, meta.py   the study directory: the one read model of its files
    results.py                   a study read back (its verdict: ``StudyResults.verdict``)
      selection.py, skill.py, ledger.py, verdict.py   selection statistics, skill test, trial ledger
      robustness.py              cost stress, Monte Carlo, parameter stability
      report.py, plots.py, tables.py, export.py, report_verdict.py   what a reader sees
      best.py                    the strategy-config entry of a chosen trial
    weekly/                      the weekly job: windows, carry-over, live config, champion rule
    cli.py, api.py, dashboard/, tracking.py   the interfaces: CLI, Python, Dash, MLflow

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
