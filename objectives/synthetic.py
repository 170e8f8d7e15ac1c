"""Closed-form multi-objective problems that stand in for training.

``"strategy": "synthetic:branin_currin"`` or ``"synthetic:dtlz2"`` runs the
whole engine (proposals, executors, store, early stopping, exports) without
training a model: each trial evaluates one of BoTorch's test functions, whose
outputs are mapped onto boengine's objective names. Used by the tests and the
optimizer benchmarks.

Both BoTorch problems are minimisation problems with a known reference point
and maximal hypervolume. The mapping keeps those facts usable:

=================  ==================  ==================  ==================
problem            return_pct (max)    sharpe (max)        max_drawdown_pct
=================  ==================  ==================  ==================
branin_currin      ``-f0``             ``-f1``             (not reported)
dtlz2 (d=6, M=3)   ``-f0``             ``-f1``             ``f2`` (min)
=================  ==================  ==================  ==================

so the reference point becomes the objective thresholds (``-18, -6`` and
``-1.1, -1.1, 1.1``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from strategies.exceptions import ConfigError
from strategies.space import FloatParam, SearchSpace

if TYPE_CHECKING:
    from botorch.test_functions.synthetic import SyntheticTestFunction

__all__ = ["SYNTHETIC_PROBLEMS", "SyntheticProblem", "get_problem"]


@dataclass(frozen=True)
class SyntheticProblem:
    """A BoTorch test problem with boengine metric names."""

    name: str
    make: Callable[[], Any]  # builds the BoTorch function (imported on first use)
    dim: int
    metrics: tuple[tuple[str, float], ...]  # (metric name, sign applied to the BoTorch output)

    @cached_property
    def function(self) -> SyntheticTestFunction:
        fn = self.make()
        assert int(fn.dim) == self.dim, f"{self.name}: dim {fn.dim}, declared {self.dim}"
        return fn  # type: ignore[no-any-return]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.metrics)

    def space(self) -> SearchSpace:
        return SearchSpace(tuple(FloatParam(f"x{i}", 0.0, 1.0) for i in range(self.dim)))

    def thresholds(self) -> dict[str, float]:
        """The problem's reference point in boengine's metric names and signs."""
        ref = self.function.ref_point.tolist()  # type: ignore[operator]
        return {m: sign * r for (m, sign), r in zip(self.metrics, ref)}

    @property
    def max_hypervolume(self) -> float:
        return float(self.function.max_hv)  # type: ignore[arg-type]

    def __call__(self, params: Mapping[str, Any]) -> dict[str, float]:
        import torch

        x = torch.tensor([[float(params[f"x{i}"]) for i in range(self.dim)]], dtype=torch.double)
        y = self.function(x)[0].tolist()
        return {m: sign * v for (m, sign), v in zip(self.metrics, y)}

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        epochs: int,
        on_epoch: Callable[[dict[str, float]], bool] | None = None,
        epoch_seconds: float = 0.0,
    ) -> tuple[dict[str, float], int, bool]:
        """Final metrics, epochs run, and whether ``on_epoch`` stopped it.

        A learning curve is simulated for the early-stopping machinery: the
        first metric approaches its final value as ``1 - 2**-epoch``.
        """
        final = self(params)
        first = self.metrics[0][0]
        for epoch in range(1, epochs + 1):
            if epoch_seconds:
                time.sleep(epoch_seconds)
            frac = 1.0 - 2.0**-epoch
            report = {"epoch": float(epoch), f"val_{first}": final[first] * frac}
            if on_epoch is not None and on_epoch(report) and epoch < epochs:
                return final, epoch, True
        return final, epochs, False


def _branin_currin() -> Any:
    from botorch.test_functions.multi_objective import BraninCurrin

    return BraninCurrin()


def _dtlz2() -> Any:
    from botorch.test_functions.multi_objective import DTLZ2

    return DTLZ2(dim=6, num_objectives=3)


SYNTHETIC_PROBLEMS: dict[str, SyntheticProblem] = {
    "branin_currin": SyntheticProblem(
        "branin_currin", _branin_currin, 2, (("return_pct", -1.0), ("sharpe", -1.0))
    ),
    "dtlz2": SyntheticProblem(
        "dtlz2", _dtlz2, 6, (("return_pct", -1.0), ("sharpe", -1.0), ("max_drawdown_pct", 1.0))
    ),
}


def get_problem(name: str) -> SyntheticProblem:
    """The problem called ``name`` (without the ``synthetic:`` prefix)."""
    try:
        return SYNTHETIC_PROBLEMS[name]
    except KeyError:
        known = ", ".join(f"synthetic:{k}" for k in SYNTHETIC_PROBLEMS)
        raise ConfigError(f"unknown synthetic problem 'synthetic:{name}'; known: {known}") from None
