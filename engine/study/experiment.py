"""The spec, in Ax's terms: parameters, constraints, objectives, metrics.

This is the only place that translates boengine's search space and
objectives into Ax configuration objects. Fixed parameters are not sent to Ax
(a one-value range is not a search dimension): they are merged back into
every trial's parameters by :func:`full_parameters`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig, StorageConfig
from ax.core.map_metric import MapMetric
from ax.early_stopping.strategies.percentile import PercentileEarlyStoppingStrategy

from engine.objective import objective_class
from engine.optimizer import build_generation_strategy
from engine.spec import ExperimentSpec
from engine.store import bind_sql_storage
from strategies.exceptions import InputError
from strategies.space import (
    ChoiceParam,
    FixedParam,
    FloatParam,
    IntParam,
    LinearConstraint,
    Param,
    SearchSpace,
)

__all__ = [
    "ax_constraints",
    "ax_parameters",
    "configure_client",
    "full_parameters",
    "load_client",
    "objective_string",
    "outcome_constraints",
]

logger = logging.getLogger(__name__)


def ax_parameters(space: SearchSpace) -> list[RangeParameterConfig | ChoiceParameterConfig]:
    """Ax parameter configs for the searched (non-fixed) parameters."""
    return [_ax_param(p) for p in space.tunable]


def _ax_param(p: Param) -> RangeParameterConfig | ChoiceParameterConfig:
    if isinstance(p, FloatParam):
        return RangeParameterConfig(
            name=p.name, bounds=(p.low, p.high), parameter_type="float", scaling="log" if p.log else "linear"
        )
    if isinstance(p, IntParam):
        return RangeParameterConfig(
            name=p.name, bounds=(p.low, p.high), parameter_type="int", scaling="log" if p.log else "linear"
        )
    if isinstance(p, ChoiceParam):
        values = list(p.values)
        kind: Literal["float", "int", "str", "bool"]
        if isinstance(values[0], bool):
            kind = "bool"
        elif isinstance(values[0], str):
            kind = "str"
        elif all(isinstance(v, int) for v in values):
            kind = "int"
        else:
            kind = "float"
        return ChoiceParameterConfig(
            name=p.name,
            values=values,  # type: ignore[arg-type]  # homogeneous by SearchSpace validation
            parameter_type=kind,
            is_ordered=p.ordered,  # type: ignore[arg-type]
        )
    raise TypeError(f"not a searched parameter: {p}")


def ax_constraints(space: SearchSpace) -> list[str]:
    """Linear constraints in Ax syntax, with fixed parameters substituted."""
    fixed = {p.name: float(p.value) for p in space.params if isinstance(p, FixedParam)}  # type: ignore[arg-type]
    out = []
    for con in space.active_constraints():
        bound = con.bound - sum(c * fixed[n] for n, c in con.coefficients if n in fixed)
        terms = tuple((n, c) for n, c in con.coefficients if n not in fixed)
        out.append(str(LinearConstraint(terms, bound)))
    return out


def full_parameters(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters with the fixed values added, in the space's order."""
    out: dict[str, Any] = {}
    for p in space.params:
        out[p.name] = p.value if isinstance(p, FixedParam) else params[p.name]
    return out


def objective_string(spec: ExperimentSpec) -> str:
    """Ax's objective syntax: ``"return_pct, sharpe, -max_drawdown_pct"``."""
    return ", ".join(("-" if o.goal == "min" else "") + name for name, o in spec.objectives.items())


def outcome_constraints(spec: ExperimentSpec) -> list[str]:
    """Objective thresholds (Ax reads them as the reference point) plus constraints."""
    out = [
        f"{name} {'>=' if o.goal == 'max' else '<='} {o.threshold:g}" for name, o in spec.objectives.items()
    ]
    out.extend(str(c) for c in spec.constraints)
    return out


def storage_config(url: str) -> StorageConfig:
    bind_sql_storage(url)
    return StorageConfig(url=url)


def configure_client(spec: ExperimentSpec, url: str, *, attaches_trials: bool = False) -> Client:
    """A new Ax client for ``spec``, saved to the SQL store at ``url``.

    ``attaches_trials``: trials (warm start, priors) will be attached before
    the first proposal, so the generation strategy starts without a centre point.
    """
    client = Client(storage_config=storage_config(url), random_seed=spec.seed)
    client.configure_experiment(
        parameters=ax_parameters(spec.space),
        parameter_constraints=ax_constraints(spec.space),
        name=spec.name,
        description=spec.description or None,
    )
    client.configure_optimization(
        objective=objective_string(spec), outcome_constraints=outcome_constraints(spec)
    )
    objective = objective_class(spec.strategy, spec.data.validation.scheme)
    curve = spec.early_stopping.metric
    curves = objective.curve_metrics()
    # Ax warns that the metric "was not found on the experiment, added as a new tracking
    # metric": adding it is the point of the call, so that warning is held back.
    ax_client_log = logging.getLogger("ax.api.client")
    level = ax_client_log.level
    ax_client_log.setLevel(logging.ERROR)
    try:
        client.configure_metrics([MapMetric(name=curve, lower_is_better=curves.get(curve, False))])  # type: ignore[list-item]
    finally:
        ax_client_log.setLevel(level)
    client.set_generation_strategy(
        build_generation_strategy(
            spec.optimizer,
            sobol_trials=spec.budget.sobol_count(noisy=objective.reports_sems),
            seed=spec.seed,
            attaches_trials=attaches_trials,
        )
    )
    _set_early_stopping(client, spec)
    return client


def load_client(spec: ExperimentSpec, url: str) -> Client:
    """The client of an existing study, restored from its SQL store (InputError naming it if it can't be)."""
    config = storage_config(url)
    try:
        client = Client.load_from_database(spec.name, config)
    except Exception as exc:  # a damaged database, or no experiment in it
        raise InputError(
            f"{url.removeprefix('sqlite:///')}: the study's Ax experiment cannot be loaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); restore the file, or "
            "start over with --fresh (the study is moved aside, not deleted)"
        ) from None
    # load_from_database takes no seed; set it so that a resumed study proposes as
    # deterministically as an uninterrupted one.
    client._random_seed = spec.seed
    _set_early_stopping(client, spec)
    return client


def _set_early_stopping(client: Client, spec: ExperimentSpec) -> None:
    es = spec.early_stopping
    if not es.enabled:
        return
    client.set_early_stopping_strategy(
        PercentileEarlyStoppingStrategy(
            metric_signatures=[es.metric],
            percentile_threshold=es.percentile,
            min_progression=es.min_epochs,
            min_curves=es.min_curves,
            patience=es.patience,
        )
    )
