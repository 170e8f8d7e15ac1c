"""Patches of Ax where it offers no option: cached constraint parsing, seeded integer rounding
in a fixed order, early-stopped trials as pending points.

Each patch is small, idempotent and does nothing on an Ax without the names
it patches; tests compare patched and unpatched results.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator
from typing import Any

__all__ = ["memoize_constraint_parsing", "ordered_rounding", "seeded_rounding", "stopped_trials_pending"]


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


def ordered_rounding() -> None:
    """Round relaxed integers in the order of their names, not in a set's hash order.

    Ax's ``IntToFloat`` rounds integers at random when a parameter constraint
    involves them (``top_k <= num_experts``), drawing once per parameter while
    it iterates over a ``set`` of parameter names. A set of strings iterates
    in an order that changes with ``PYTHONHASHSEED`` (random for every Python
    process), so the draws went to different parameters from one process to
    the next: the same seed gave different Sobol trials (the ``mixed_hpo``
    benchmark, seed 0: ``batch_size`` 64 in one process and 128 in another
    for the same Sobol point) and so a different study, however the random
    module was seeded (:func:`seeded_rounding`). Sorting the names makes the
    rounding a function of the seed. Ax offers no option for this, hence the
    patch of the name in the transform's module. Idempotent.
    """
    import ax.adapter.transforms.int_to_float as int_to_float

    current = getattr(int_to_float, "randomized_round_parameters", None)
    if current is None or getattr(current, "boengine_ordered", False):
        return  # already patched, or an Ax without this function: nothing to do

    def randomized_round_parameters(parameters: Any, transform_parameters: Any) -> Any:
        return current(parameters, sorted(transform_parameters))

    randomized_round_parameters.boengine_ordered = True  # type: ignore[attr-defined]
    int_to_float.randomized_round_parameters = randomized_round_parameters  # type: ignore[attr-defined]


def stopped_trials_pending() -> None:
    """Count an early-stopped trial as a pending point for each outcome it has no data for.

    boengine stops trials before their objectives exist (the per-epoch rule after a few epochs,
    Pareto-aware stopping after a walk-forward fold) and attaches only the learning curve, so that
    partial figures never reach the GP as final. Ax leaves EARLY_STOPPED trials out of its pending
    points (in its own use their learning curve is the objective), so the GP never heard of such a
    trial: it proposed the configuration again, Ax's deduplication rejected the batch five times
    (``MAX_GEN_ATTEMPTS``) and fell back to a Sobol point, 4-12 of 32 model trials a study with
    fold stopping (``benchmarks/RESULTS.md``). As pending points they are fantasized by the
    acquisition function (qLogNEHVI's cached pending points, like running trials) and never
    repeated by the candidate search (:mod:`engine.optimizer.candidates`). Ax offers no option for
    this, hence the patch of the name in the generation strategy's module. Idempotent.
    """
    import ax.generation_strategy.generation_strategy as strategy_module
    from ax.core.base_trial import TrialStatus
    from ax.core.observation import ObservationFeatures

    current = getattr(strategy_module, "extract_pending_observations", None)
    if current is None or getattr(current, "boengine_stopped_pending", False):
        return  # already patched, or an Ax without this function: nothing to do

    def extract_pending_observations(experiment: Any, include_out_of_design_points: bool = False) -> Any:
        pending = current(experiment=experiment, include_out_of_design_points=include_out_of_design_points)
        stopped = [t for t in experiment.trials.values() if t.status == TrialStatus.EARLY_STOPPED and t.arms]
        if not stopped:
            return pending
        df = experiment.lookup_data(trial_indices=[t.index for t in stopped]).df
        with_data = df.groupby("trial_index")["metric_name"].agg(set).to_dict() if len(df) else {}
        out = {name: list(features) for name, features in (pending or {}).items()}
        for trial in stopped:
            for arm in trial.arms:
                if not include_out_of_design_points and not experiment.search_space.check_membership(
                    parameterization=arm.parameters
                ):
                    continue
                metadata = trial._get_candidate_metadata(arm_name=arm.name)
                for name in experiment.metrics:
                    already = any(f.trial_index == trial.index for f in out.get(name, ()))
                    if name not in with_data.get(trial.index, set()) and not already:
                        # one feature per metric, as Ax makes them: its transforms change them in place
                        feature = ObservationFeatures.from_arm(
                            arm=arm, trial_index=trial.index, metadata=metadata
                        )
                        out.setdefault(name, []).append(feature)
        return out if any(out.values()) else None

    extract_pending_observations.boengine_stopped_pending = True  # type: ignore[attr-defined]
    strategy_module.extract_pending_observations = extract_pending_observations  # type: ignore[attr-defined]
