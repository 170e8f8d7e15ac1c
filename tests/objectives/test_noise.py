"""Bootstrap standard errors of backtest figures, against answers known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from objectives.noise import bootstrap_standard_errors, paired_difference_standard_errors

PPY = 252.0


def test_sharpe_error_of_iid_returns_matches_lo() -> None:
    # Lo (2002): for i.i.d. returns the annualised Sharpe ratio's standard error is about
    # sqrt(ppy / T) (for a small Sharpe ratio)
    t = 1500
    r = np.random.default_rng(0).normal(0.0, 0.01, t)
    se = bootstrap_standard_errors(r, PPY, reps=400, seed=1)
    assert se["sharpe"] == pytest.approx(math.sqrt(PPY / t), rel=0.2)
    assert se["return_pct"] > 0 and se["max_drawdown_pct"] > 0
    assert bootstrap_standard_errors(r, PPY, reps=400, seed=1) == se  # seeded


def test_no_variance_no_error() -> None:
    assert set(bootstrap_standard_errors(np.zeros(300), PPY).values()) == {0.0}
    r = np.random.default_rng(2).normal(0.0, 0.01, 300)
    assert set(paired_difference_standard_errors(r, r.copy(), PPY).values()) == {0.0}


def test_paired_error_of_independent_series_is_the_sum_in_quadrature() -> None:
    t = 1500
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 0.01, t), rng.normal(0.0, 0.01, t)
    paired = paired_difference_standard_errors(a, b, PPY, reps=400, seed=4)
    assert paired["sharpe"] == pytest.approx(math.sqrt(2 * PPY / t), rel=0.2)


def test_a_common_market_path_cancels_in_the_difference() -> None:
    t = 1500
    rng = np.random.default_rng(5)
    market = rng.normal(0.0, 0.01, t)
    a = market + rng.normal(0.0, 0.001, t)
    b = market + rng.normal(0.0, 0.001, t)
    own = bootstrap_standard_errors(a, PPY, reps=300, seed=6)["sharpe"]
    paired = paired_difference_standard_errors(a, b, PPY, reps=300, seed=6)["sharpe"]
    assert paired < 0.25 * own  # most of each figure's noise is the market both traded


def test_paired_input_is_checked() -> None:
    with pytest.raises(ValueError, match="one length"):
        paired_difference_standard_errors(np.zeros(10), np.zeros(11), PPY)


def test_figure_standard_errors_sit_beside_the_figures() -> None:
    from objectives.noise import figure_standard_errors

    r = np.random.default_rng(3).normal(0.0005, 0.01, 500)
    se = figure_standard_errors(r, 252, seed=4)
    assert set(se) == {"return_pct_se", "sharpe_se", "max_drawdown_pct_se", "sortino_se", "calmar_se"}
    assert se["sharpe_se"] == bootstrap_standard_errors(r, 252, seed=4)["sharpe"] > 0
    assert figure_standard_errors(r[:1], 252, seed=4) == {}
