"""The patches of Ax: cached constraint parsing, seeded integer rounding."""

from __future__ import annotations

from engine.optimizer import memoize_constraint_parsing, seeded_rounding


def test_constraint_parsing_is_cached_and_unchanged() -> None:
    import ax.core.outcome_constraint as outcome_constraint
    from ax.utils.common.sympy import extract_coefficient_dict_from_inequality as sympy_parse

    memoize_constraint_parsing()
    memoize_constraint_parsing()  # idempotent
    cached = outcome_constraint.extract_coefficient_dict_from_inequality
    assert getattr(cached, "boengine_memoized", False)
    text = "2 * sharpe + return_pct >= 1.5"
    first = cached(inequality_str=text)
    first.clear()  # a caller changing its copy does not change the cache
    assert cached(inequality_str=text) == sympy_parse(inequality_str=text)


def test_proposal_rounding_is_seeded_and_leaves_random_alone() -> None:
    """Ax rounds constrained integers with the global ``random``; each proposal call gets its own seed."""
    import random

    random.seed(123)
    before = random.getstate()
    with seeded_rounding("7:3"):
        first = [random.random() for _ in range(3)]
    assert random.getstate() == before  # the process's own stream is untouched
    random.random()  # other code draws in between
    with seeded_rounding("7:3"):
        again = [random.random() for _ in range(3)]
    with seeded_rounding("7:4"):
        other = [random.random() for _ in range(3)]
    assert first == again and first != other
