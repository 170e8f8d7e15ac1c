"""The catalogue's trading metrics against hand-computed examples, and their bootstrap standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from objectives.backtest import RATIO_CAP, BacktestResult, run_backtest, turnover
from objectives.noise import SE_FIGURES, bootstrap_standard_errors

# Five bars, no costs, 4 bars a year. Per-bar returns of the price: +10 %, -10 %, 0, +10 %, (last) 0.
# Positions long, long, flat, long, flat: net returns 0.1, -0.1, 0, 0.1, 0.
# Round trips: bars 0-1 (1.1 * 0.9 - 1 = -1 %) and bar 3 (+10 %).
# Equity 1, 1.1, 0.99, 0.99, 1.089, 1.089: return 8.9 %, max drawdown 10 % (1.1 -> 0.99).
CLOSE = [100.0, 110.0, 99.0, 99.0, 108.9]
POSITIONS = [1.0, 1.0, 0.0, 1.0, 0.0]
PPY = 4.0


@pytest.fixture(scope="module")
def example() -> BacktestResult:
    return run_backtest(np.array(CLOSE), np.array(POSITIONS), fee_bps=0, slippage_bps=0, periods_per_year=PPY)


def test_win_rate_profit_factor_and_average_trade(example: BacktestResult) -> None:
    assert example.num_trades == 2
    assert example.win_rate_pct == pytest.approx(50.0)  # one of two round trips gained
    assert example.profit_factor == pytest.approx(0.10 / 0.01)  # +10 % over |-1 %|
    assert example.avg_trade_pct == pytest.approx((10.0 - 1.0) / 2)


def test_exposure_and_turnover(example: BacktestResult) -> None:
    assert example.exposure_pct == pytest.approx(75.0)  # 3 of the 4 holding periods
    # changes 1 (entry), 0, 1 (exit), 1 (entry), 1 (exit): 4 over 5 bars, 4 bars a year
    assert example.turnover == pytest.approx(4 / 5 * 4)
    assert turnover(np.array([1.0, 1.0, 1.0, 1.0]), 252.0) == pytest.approx(2 / 4 * 252)  # one round trip
    assert turnover(np.array([0.5, -0.5]), 1.0) == pytest.approx((0.5 + 1.0 + 0.5) / 2)


def test_turnover_times_the_cost_rate_is_the_cost(example: BacktestResult) -> None:
    costly = run_backtest(
        np.array(CLOSE), np.array(POSITIONS), fee_bps=7, slippage_bps=3, periods_per_year=PPY
    )
    paid = costly.turnover * (len(CLOSE) / PPY) * 10 / 1e4  # the turnover of the bars, at 10 bp a unit
    assert paid == pytest.approx(4 * 0.001)
    assert costly.turnover == example.turnover


def test_sortino(example: BacktestResult) -> None:
    mean = (0.1 - 0.1 + 0.0 + 0.1 + 0.0) / 5
    downside = math.sqrt((-0.1) ** 2 / 5)  # the root mean square of the losses, over all 5 bars
    assert example.sortino == pytest.approx(mean / downside * math.sqrt(PPY))
    assert example.sortino == pytest.approx(0.894427, rel=1e-5)


def test_calmar(example: BacktestResult) -> None:
    assert example.return_pct == pytest.approx(8.9) and example.max_drawdown_pct == pytest.approx(10.0)
    cagr = 1.089 ** (PPY / 5) - 1  # 5 bars are 1.25 years
    assert example.calmar == pytest.approx(cagr / 0.10)
    assert example.calmar == pytest.approx(0.70592, rel=1e-4)


def test_ratios_without_downside() -> None:
    rising = run_backtest(np.array([100.0, 101, 102, 103]), np.ones(4), fee_bps=0, slippage_bps=0)
    assert rising.sortino == RATIO_CAP and rising.calmar == RATIO_CAP  # gains, no loss: the cap
    flat = run_backtest(np.array([100.0, 90, 120, 80]), np.zeros(4), fee_bps=1, slippage_bps=0)
    assert (flat.sortino, flat.calmar, flat.turnover, flat.exposure_pct) == (0.0, 0.0, 0.0, 0.0)
    crash = run_backtest(np.array([100.0, 50, 25, 12.5]), np.ones(4), fee_bps=0, slippage_bps=0)
    assert crash.sortino < 0 and -RATIO_CAP <= crash.calmar < 0


def test_the_new_ratios_have_bootstrap_standard_errors() -> None:
    t = 1500
    r = np.random.default_rng(0).normal(0.0005, 0.01, t)
    se = bootstrap_standard_errors(r, 252.0, reps=300, seed=1)
    assert set(se) == set(SE_FIGURES) == {"return_pct", "sharpe", "max_drawdown_pct", "sortino", "calmar"}
    # symmetric returns: the downside deviation is about the standard deviation over sqrt(2), so the
    # Sortino ratio and its error are about sqrt(2) times the Sharpe ratio's
    assert se["sortino"] / se["sharpe"] == pytest.approx(math.sqrt(2), rel=0.2)
    assert se["calmar"] > 0
    assert bootstrap_standard_errors(r, 252.0, reps=300, seed=1) == se  # seeded
    assert set(bootstrap_standard_errors(np.zeros(100), 252.0).values()) == {0.0}
