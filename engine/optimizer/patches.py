"""Patches of Ax where it offers no option: cached constraint parsing, seeded integer rounding.

Each patch is small, idempotent and does nothing on an Ax without the names
it patches; tests compare patched and unpatched results.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator
from typing import Any

__all__ = ["memoize_constraint_parsing", "seeded_rounding"]


def memoize_constraint_parsing() -> None:
    """Parse each outcome and parameter constraint string with SymPy once per process.

    Ax 1.3 re-parses a constraint's string with SymPy (~3 ms) whenever the
    constraint is created or cloned, and the transforms of every candidate
    clone them: ~90 parses, 0.26 s of a 2.7 s batch at 100 trials of the
    ``mixed_hpo`` benchmark (3 objective thresholds, 1 outcome and 1
    parameter constraint). The parse is a pure function of the string, so
    its result is cached; Ax offers no option for this, hence the patch of
    the name in the two modules that call it. Idempotent.
    """
    import ax.core.outcome_constraint as outcome_constraint
    import ax.core.parameter_constraint as parameter_constraint
    from ax.utils.common import sympy as ax_sympy

    name = "extract_coefficient_dict_from_inequality"
    current = [getattr(module, name, None) for module in (outcome_constraint, parameter_constraint)]
    if any(f is None or getattr(f, "boengine_memoized", False) for f in current):
        return  # already patched, or an Ax without this function: nothing to do
    parse = ax_sympy.extract_coefficient_dict_from_inequality

    @functools.lru_cache(maxsize=4096)
    def parsed(inequality_str: str) -> tuple[tuple[Any, float], ...]:
        return tuple(parse(inequality_str=inequality_str).items())

    def extract_coefficient_dict_from_inequality(inequality_str: str) -> dict[Any, float]:
        return dict(parsed(inequality_str))

    extract_coefficient_dict_from_inequality.boengine_memoized = True  # type: ignore[attr-defined]
    for module in (outcome_constraint, parameter_constraint):
        module.extract_coefficient_dict_from_inequality = extract_coefficient_dict_from_inequality  # type: ignore[attr-defined]


@contextlib.contextmanager
def seeded_rounding(key: str) -> Iterator[None]:
    """Seed Python's ``random`` for one proposal call, then restore its state.

    With a parameter constraint on integers (``top_k <= num_experts``), Ax
    rounds relaxed integer values at random (``randomized_round``) with the
    global ``random`` module, which other code in the process also draws
    from: the same study proposed ``num_layers`` 2 in one run and 1 in the
    next for the same Sobol point. Seeding from the study seed and the trial
    count makes proposals a function of the spec and the data again.
    """
    state = random.getstate()
    random.seed(key)
    try:
        yield
    finally:
        random.setstate(state)
