"""Pareto front, hypervolume and knee on hand-made records."""

from __future__ import annotations

import math

import pytest

from engine.records import ObjectiveSet, TrialRecord

OBJ = ObjectiveSet(
    names=("return_pct", "sharpe", "max_drawdown_pct"),
    maximize=(True, True, False),
    thresholds=(0.0, 0.0, 10.0),
    constraints=(("num_trades", ">=", 10.0),),
)


def rec(
    i: int, ret: float, sharpe: float, dd: float, trades: float = 20, status: str = "completed"
) -> TrialRecord:
    metrics = {"return_pct": ret, "sharpe": sharpe, "max_drawdown_pct": dd, "num_trades": trades}
    return TrialRecord(index=i, status=status, params={}, metrics=metrics)


def test_front_drops_dominated_infeasible_and_unfinished() -> None:
    records = [
        rec(0, 5, 1.0, 4),
        rec(1, 4, 0.9, 5),  # dominated by 0
        rec(2, 8, 0.5, 6),  # trade-off: on the front
        rec(3, 9, 2.0, 1, trades=3),  # would dominate all, but violates num_trades >= 10
        rec(4, 9, 2.0, 1, status="failed"),
        rec(5, 1, 3.0, 2),  # best Sharpe and drawdown: on the front
    ]
    assert [r.index for r in OBJ.front(records)] == [0, 2, 5]


def test_hypervolume_of_one_point_is_its_box() -> None:
    # (return 2 - 0) * (sharpe 1.5 - 0) * (drawdown 10 - 4) = 18
    assert OBJ.hypervolume([rec(0, 2, 1.5, 4)]) == pytest.approx(18.0)


def test_hypervolume_ignores_points_beyond_threshold() -> None:
    assert OBJ.hypervolume([rec(0, -1, 1.5, 4)]) == 0.0
    assert OBJ.hypervolume([rec(0, 2, 1.5, 4), rec(1, -1, 9, 0)]) == pytest.approx(18.0)


def test_hypervolume_trace_is_monotone() -> None:
    records = [rec(0, 1, 1, 5), rec(1, 0.5, 0.5, 9), rec(2, 3, 2, 2)]
    trace = OBJ.hypervolume_trace(records)
    assert trace == sorted(trace)
    assert trace[-1] == pytest.approx(OBJ.hypervolume(records))


def test_knee_is_the_balanced_point() -> None:
    front = [rec(0, 10, 0.1, 9), rec(1, 6, 1.5, 3), rec(2, 0.5, 2.0, 8)]
    knee = OBJ.knee(front)
    assert knee is not None and knee.index == 1


def test_best_per_objective_respects_direction() -> None:
    records = [rec(0, 1, 1, 5), rec(1, 3, 0.5, 9), rec(2, 2, 2, 2)]
    assert OBJ.best(records, "return_pct").index == 1  # type: ignore[union-attr]
    assert OBJ.best(records, "max_drawdown_pct").index == 2  # type: ignore[union-attr]


def test_nan_objective_is_infeasible() -> None:
    assert not OBJ.feasible(rec(0, math.nan, 1, 1))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_front_and_hypervolume_match_botorch(m: int) -> None:
    """The numpy front and hypervolume (no torch for the output commands) equal BoTorch's, ties included."""
    import numpy as np
    import torch
    from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
    from botorch.utils.multi_objective.pareto import is_non_dominated

    from engine.records import dominated_hypervolume, non_dominated

    rng = np.random.default_rng(m)
    for n in (1, 2, 7, 40):
        y = rng.normal(size=(n, m))
        y[: n // 2] = np.round(y[: n // 2], 1)  # ties in single coordinates
        if n > 2:
            y[2] = y[1]  # a repeated point: kept once
        expected = is_non_dominated(torch.tensor(y), deduplicate=True).numpy()
        assert (non_dominated(y) == expected).all(), (m, n)
        ref = np.full(m, -1.0)
        above = y[(y > ref).all(axis=1)]
        want = DominatedPartitioning(ref_point=torch.tensor(ref), Y=torch.tensor(above)).compute_hypervolume()
        assert dominated_hypervolume(above, ref) == pytest.approx(float(want), rel=1e-9, abs=1e-12), (m, n)
