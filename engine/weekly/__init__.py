"""The weekly job: a study line of windows, each a study on data that grew.

- :mod:`engine.weekly.windows`: the line and its windows (``run --window``: the
  data cut at its last bar, one directory per window; ``status LINE``).
- :mod:`engine.weekly.carry_over`: what a new window runs first (the live
  configuration, the previous front) and records (``WindowStart``, the
  ``start`` of :func:`engine.study.run.run_study`).
- :mod:`engine.weekly.live_config`: the strategy config a trading system
  reads and its decision history: their only reader and writer.
- :mod:`engine.weekly.champion`: champion against challenger
  (``best --replace-if-better``), as an ordered table of rules.
- :mod:`engine.weekly.report`: the report's section on a window.

Nothing outside this package knows about windows, carry-over or the live config:
a study takes "run these first" and a creation hook (:class:`engine.study.run.StudyStart`).
"""
