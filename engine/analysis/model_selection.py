"""Selection from the model: the front and the knee from the GP's posterior mean.

A study's front is chosen from observed means. On a noisy objective (walk-forward Sharpe ratios
with standard errors of 0.4-1.2) the best observations are partly the luckiest: a configuration
whose validation bars happened to suit it sits on the front, and its held-out figures fall back.
The GP the optimizer fits sees every evaluated configuration with its standard error as known
noise; its posterior mean at an evaluated configuration shrinks a lucky observation towards what
its neighbours say.

:func:`posterior_selection` fits that GP (:class:`engine.optimizer.gp.WarmStartSingleTaskGP`,
fixed noise from the trials' standard errors, learned noise when a trial has none; one model per
objective, a cold fit from BoTorch's initial values) on the completed trials, predicts the
posterior mean of each objective at every evaluated configuration, and hands those values to the
engine's own front and knee (:meth:`engine.records.ObjectiveSet.front`,
:meth:`~engine.records.ObjectiveSet.knee`). Feasibility (outcome constraints such as
``num_trades >= 10``) is still judged on the observed metrics, and only evaluated configurations
can be chosen: the model re-ranks what was measured, it never proposes an unmeasured point.

The configurations are encoded in the unit cube as the optimizer sees them: ranges scaled to
[0, 1] (on the log scale for ``log`` parameters), ordered choices by their rank, unordered
choices one-hot.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engine.records import ObjectiveSet, TrialRecord

if TYPE_CHECKING:
    from engine.spec import ExperimentSpec
    from strategies.space import SearchSpace

logger = logging.getLogger(__name__)

__all__ = [
    "FrontChoice",
    "ModelSelection",
    "choose_front",
    "encode_configurations",
    "posterior_means",
    "posterior_selection",
    "select_from_model",
]


@dataclass(frozen=True)
class ModelSelection:
    """The front and knee chosen from the posterior mean.

    Attributes:
        means: `n x m` posterior means of the objectives (the spec's order, their own units and
            signs) at each of the given records, in their order; NaN rows for records the model
            does not describe (not completed, an objective missing or not finite).
        front: the chosen front: the original records (observed metrics), by trial index.
        knee: the front's knee by the posterior means; None for an empty front.
        observed_front: the front of the observed means, for comparison.
        observed_knee: its knee.
    """

    means: np.ndarray
    front: list[TrialRecord]
    knee: TrialRecord | None
    observed_front: list[TrialRecord]
    observed_knee: TrialRecord | None

    @property
    def changed(self) -> bool:
        """Whether the model picks another knee than the observations do."""
        a, b = self.knee, self.observed_knee
        return (a.index if a else None) != (b.index if b else None)


def encode_configurations(space: SearchSpace, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """`n x d` unit-cube encoding of configurations over the space's searched parameters."""
    from strategies.space import ChoiceParam, FloatParam, IntParam

    columns: list[np.ndarray] = []
    for p in space.tunable:
        values = [q[p.name] for q in params]
        if isinstance(p, (FloatParam, IntParam)):
            lo, hi, x = float(p.low), float(p.high), np.asarray(values, dtype=np.float64)
            if p.log:
                lo, hi, x = math.log(lo), math.log(hi), np.log(x)
            columns.append((x - lo) / (hi - lo) if hi > lo else np.zeros_like(x))
        elif isinstance(p, ChoiceParam):
            choices = list(p.values)
            rank = np.asarray([choices.index(v) for v in values], dtype=np.float64)
            if p.ordered:
                columns.append(rank / max(len(choices) - 1, 1))
            else:
                columns.extend((rank == k).astype(np.float64) for k in range(len(choices)))
    if not columns:
        return np.zeros((len(params), 0))
    return np.column_stack(columns)


def _modelled(record: TrialRecord, names: Sequence[str]) -> bool:
    return record.status in ("completed", "early_stopped") and all(
        n in record.metrics and math.isfinite(record.metrics[n]) for n in names
    )


def posterior_means(space: SearchSpace, names: Sequence[str], records: Sequence[TrialRecord]) -> np.ndarray:
    """`n x m` GP posterior means of the metrics ``names`` at each record's configuration.

    One GP per metric on the records with every metric finite (their standard errors as fixed
    noise when all of them have one, learned noise otherwise); NaN rows elsewhere. Fewer than
    three such records: the observations themselves (nothing to fit). The fits are seeded, so the
    same records give the same means in every process (the finish's test scoring, the report and
    ``best`` choose the same front), and remembered for the records' content: the dashboard and
    the output commands read a study many times. A metric whose fit fails keeps its observations
    (with a warning).
    """
    key = _records_key(space, names, records)
    if key in _MEANS:
        _MEANS.move_to_end(key)
        return _MEANS[key].copy()
    out = _fit_means(space, names, records)
    _MEANS[key] = out.copy()
    while len(_MEANS) > _MEANS_KEPT:
        _MEANS.popitem(last=False)
    return out


#: Posterior means of recent record sets (by content), most recent last.
_MEANS: OrderedDict[str, np.ndarray] = OrderedDict()
_MEANS_KEPT = 16


def _records_key(space: SearchSpace, names: Sequence[str], records: Sequence[TrialRecord]) -> str:
    """What the means depend on: the space, the metrics, and each record's configuration, status,
    values and standard errors of those metrics, in order."""
    rows = [
        [r.index, r.status, r.params, [r.metrics.get(n) for n in names], [r.sems.get(n) for n in names]]
        for r in records
    ]
    text = json.dumps([repr(space), list(names), rows], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _fit_means(space: SearchSpace, names: Sequence[str], records: Sequence[TrialRecord]) -> np.ndarray:
    import torch
    from botorch.exceptions.errors import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from engine.optimizer.gp import WarmStartSingleTaskGP

    out = np.full((len(records), len(names)), np.nan)
    train = [i for i, r in enumerate(records) if _modelled(r, names)]
    if not train:
        return out
    observed = np.array([[records[i].metrics[n] for n in names] for i in train], dtype=np.float64)
    if len(train) < 3:
        out[train] = observed
        return out
    x = torch.as_tensor(encode_configurations(space, [records[i].params for i in train]), dtype=torch.float64)
    for j, name in enumerate(names):
        y = torch.as_tensor(observed[:, j : j + 1])
        sems = [records[i].sems.get(name) for i in train]
        yvar = None
        if all(s is not None and math.isfinite(s) for s in sems):
            yvar = torch.as_tensor(np.square(np.asarray(sems, dtype=np.float64))[:, None])
        if float(y.std()) <= 0.0:
            out[train, j] = observed[:, j]
            continue
        model = WarmStartSingleTaskGP(x, y, yvar, warm_start=False)
        # seeded: BoTorch retries a failed fit from random initial values
        with torch.random.fork_rng():
            torch.manual_seed(0)
            try:
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            except ModelFittingError as exc:
                logger.warning("the GP of %s could not be fitted (%s); its observations are used", name, exc)
                out[train, j] = observed[:, j]
                continue
        model.eval()
        with torch.no_grad():
            mean = model.posterior(x).mean.squeeze(-1)
        out[train, j] = mean.numpy()
    return out


def posterior_selection(spec: ExperimentSpec, records: Sequence[TrialRecord]) -> ModelSelection:
    """The front and knee of a study's ``records`` chosen from the GP's posterior mean (see the module)."""
    return select_from_model(spec.space, ObjectiveSet.from_spec(spec), records)


def select_from_model(
    space: SearchSpace, objectives: ObjectiveSet, records: Sequence[TrialRecord]
) -> ModelSelection:
    """:func:`posterior_selection` for a search space and objective set given apart from a spec."""
    means = posterior_means(space, objectives.names, records)
    by_index = {r.index: r for r in records}
    modelled = [
        replace(r, metrics={**r.metrics, **dict(zip(objectives.names, map(float, row)))})
        for r, row in zip(records, means)
        if np.isfinite(row).all()
    ]
    front_m = objectives.front(modelled)
    knee_m = objectives.knee(front_m)
    observed_front = objectives.front(records)
    return ModelSelection(
        means=means,
        front=[by_index[r.index] for r in front_m],
        knee=by_index[knee_m.index] if knee_m is not None else None,
        observed_front=observed_front,
        observed_knee=objectives.knee(observed_front),
    )


@dataclass(frozen=True)
class FrontChoice:
    """A study's front and the figures it was chosen by (the spec's ``selection.front``).

    Attributes:
        by: 'observed' (the trials' observed objectives) or 'posterior_mean' (the GP's).
        front: the front's records as measured (their observed metrics), by trial index.
        figures: each front member's objectives as the choice saw them (trial index -> name ->
            value): its observations, or the posterior means.
    """

    by: Literal["observed", "posterior_mean"]
    front: list[TrialRecord]
    figures: Mapping[int, Mapping[str, float]]

    def knee(self, objectives: ObjectiveSet) -> TrialRecord | None:
        """The front's knee by the figures it was chosen by."""
        return self._measured(objectives.knee(self._as_chosen()))

    def best(self, objectives: ObjectiveSet, name: str) -> TrialRecord | None:
        """The front member best on objective ``name`` by the figures it was chosen by."""
        return self._measured(objectives.best(self._as_chosen(), name))

    def _as_chosen(self) -> list[TrialRecord]:
        return [replace(r, metrics={**r.metrics, **self.figures[r.index]}) for r in self.front]

    def _measured(self, chosen: TrialRecord | None) -> TrialRecord | None:
        return None if chosen is None else next(r for r in self.front if r.index == chosen.index)


def choose_front(spec: ExperimentSpec, records: Sequence[TrialRecord]) -> FrontChoice:
    """The front of ``records`` as the spec's ``selection.front`` chooses it (the one rule for the
    finish's test scoring, the results, the pick and the next window's carry-over)."""
    objectives = ObjectiveSet.from_spec(spec)
    if spec.selection.front == "observed":
        front = objectives.front(records)
        figures = {r.index: {n: r.metrics[n] for n in objectives.names} for r in front}
        return FrontChoice("observed", front, figures)
    selection = select_from_model(spec.space, objectives, records)
    means = {
        r.index: dict(zip(objectives.names, map(float, row)))
        for r, row in zip(records, selection.means)
        if np.isfinite(row).all()
    }
    return FrontChoice("posterior_mean", selection.front, {r.index: means[r.index] for r in selection.front})
