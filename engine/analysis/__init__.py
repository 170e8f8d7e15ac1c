"""A finished or running study read back, and the statistics of choosing from it.

``results.py`` (:class:`StudyResults`, with its one verdict door ``StudyResults.verdict``);
``selection.py``, ``skill.py``, ``ledger.py``, ``verdict.py``: the selection statistics, the skill
test against the noise yardstick, the ledger of every configuration tried on the same bars, the
verdict; ``robustness.py``: cost stress, Monte Carlo, parameter stability; ``model_selection.py``:
the front chosen from the model's posterior instead of the observed means.
"""
