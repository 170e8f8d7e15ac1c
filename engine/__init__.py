"""boengine's engine: the Ax study loop, executors, study store, warm start and exports.

Entry points: ``boengine`` (:mod:`engine.cli`), :func:`engine.study.run_study`,
:func:`engine.spec.load_spec`, :class:`engine.results.StudyResults`. Submodules
are imported on use so that worker processes, which only need
:mod:`engine.trial`, start quickly.
"""
