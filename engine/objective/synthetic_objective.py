"""The synthetic objective: a closed-form test problem instead of training.

``"strategy": "synthetic:branin_currin"`` or ``"synthetic:dtlz2"`` runs the
whole engine (proposals, executors, store, early stopping, exports) on one
of BoTorch's test functions (:mod:`objectives.synthetic`); a learning curve
is simulated for early stopping, and ``synthetic.epoch_seconds`` simulates
training time. There is no data, no test split and no priors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.metric_rules import MetricCatalogue
from engine.objective.base import EpochFn, Objective
from engine.objective.registry import SYNTHETIC_PREFIX, register_objective

if TYPE_CHECKING:
    from engine.spec_model import ExperimentSpec
    from engine.study.trial import TrialJob, TrialOutcome
    from strategies.space import SearchSpace

__all__ = ["SyntheticObjective"]


def _problem(strategy: str) -> Any:
    from objectives.synthetic import get_problem

    return get_problem(strategy.removeprefix(SYNTHETIC_PREFIX))


@register_objective("synthetic")
class SyntheticObjective(Objective):
    """One of :data:`objectives.synthetic.SYNTHETIC_PROBLEMS`."""

    def __init__(self, spec: ExperimentSpec) -> None:
        super().__init__(spec)
        self.problem = spec.strategy.removeprefix(SYNTHETIC_PREFIX)

    @classmethod
    def default_space(cls, strategy: str, preset: str) -> SearchSpace:
        return _problem(strategy).space()  # type: ignore[no-any-return]

    @classmethod
    def metric_names(cls, strategy: str) -> tuple[str, ...]:
        return _problem(strategy).metric_names  # type: ignore[no-any-return]

    @classmethod
    def metric_catalogue(cls, strategy: str) -> MetricCatalogue:
        """The problem's metrics under their names, each to maximise where it is a negated output."""
        metrics = _problem(strategy).metrics
        return MetricCatalogue.plain(
            (name for name, _ in metrics), {name: "max" if sign < 0 else "min" for name, sign in metrics}
        )

    @classmethod
    def curve_metrics(cls) -> Mapping[str, bool]:
        return {"val_return_pct": False, "val_sharpe": False, "val_loss": True, "val_accuracy": False}

    @classmethod
    def check_space(cls, strategy: str, space: SearchSpace, base: SearchSpace) -> None:
        from engine.search_space import check_within_box

        check_within_box(strategy, space, base)

    @classmethod
    def check_spec(cls, spec: ExperimentSpec) -> None:
        if spec.warm_start.priors is not None:
            raise ValueError(
                "warm_start.priors: data-driven priors need market data; a synthetic problem has none: "
                'remove "priors" (or use a model family)'
            )
        # data.validation alone is what older studies' specs carry (engine.meta.migrate_spec)
        unused = [f"data.{k}" for k in sorted(spec.data.model_fields_set - {"validation"})]
        unused += [k for k in ("backtest", "search_space_preset") if k in spec.model_fields_set]
        if unused:
            raise ValueError(
                f"{unused[0]}: a setting of model families; the synthetic problem '{spec.strategy}' "
                "reads no data and trains nothing; remove it"
            )

    def run_trial(self, job: TrialJob, on_epoch: EpochFn, data: Any = None) -> TrialOutcome:
        from engine.study.trial import TrialOutcome
        from objectives.synthetic import get_problem

        problem = get_problem(self.problem)
        metrics, epochs, stopped = problem.evaluate(
            job.params,
            epochs=self.spec.budget.max_epochs,
            on_epoch=on_epoch,
            epoch_seconds=self.spec.synthetic.epoch_seconds,
        )
        return TrialOutcome(
            job.trial_index, "early_stopped" if stopped else "completed", metrics=metrics, epochs=epochs
        )

    def describe(self, meta: Mapping[str, Any]) -> dict[str, str]:
        return {"problem": f"{self.spec.strategy} (closed form, no data)"}
