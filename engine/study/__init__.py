"""The study lifecycle: checks before any write, create or resume, the loop, one trial, the finish.

``run.py`` (:func:`engine.study.run.run_study`) drives it; ``experiment.py`` holds the Ax client;
``loop.py`` proposes and dispatches, ``tell.py`` records what trials report, ``trial.py`` is what a
worker runs; ``progress.py`` is the live display; ``fold_stopping.py`` stops trials across
walk-forward folds; ``warmstart.py`` attaches earlier studies and priors; ``finish.py`` scores the
front on the held-out test and writes the verdict, pareto.csv and the report.

Nothing is imported here, so that a worker process (which needs only ``trial.py``) starts quickly.
"""
