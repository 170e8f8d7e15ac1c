from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives.backtest import PROFIT_FACTOR_CAP, actions_to_positions, ranked_positions, run_backtest


def _bt(close: list[float], pos: list[float], fee: float = 0.0, slip: float = 0.0, ppy: float | None = None):
    return run_backtest(np.array(close), np.array(pos), fee_bps=fee, slippage_bps=slip, periods_per_year=ppy)


def test_long_gains_when_price_rises() -> None:
    r = _bt([100, 110], [1, 0])
    assert r.return_pct == pytest.approx(10.0)
    assert r.num_trades == 1 and r.win_rate_pct == 100.0
    assert r.profit_factor == PROFIT_FACTOR_CAP  # wins and no losses: capped, documented


def test_short_gains_when_price_falls_and_loses_when_it_rises() -> None:
    assert _bt([100, 90], [-1, 0]).return_pct == pytest.approx(10.0)
    assert _bt([100, 110], [-1, 0]).return_pct == pytest.approx(-10.0)
    assert _bt([100, 110], [-1, 0]).win_rate_pct == 0.0


def test_costs_on_entry_and_final_exit() -> None:
    # 10 bps: entry at bar 0 (0.1% of equity), exit at bar 1 (position back to 0).
    r = _bt([100, 110], [1, 0], fee=6, slip=4)
    assert r.return_pct == pytest.approx(100 * (1.099 * 0.999 - 1))
    # held to the end: the exit after the last bar is charged too; the last bar earns nothing
    r2 = _bt([100, 110, 120], [1, 1, 1], fee=10)
    assert r2.return_pct == pytest.approx(100 * (1.099 * (1 + 120 / 110 - 1) * 0.999 - 1))


def test_flat_positions_do_nothing() -> None:
    r = _bt([100, 120, 80, 90], [0, 0, 0, 0], fee=5)
    assert (r.return_pct, r.sharpe, r.max_drawdown_pct, r.num_trades) == (0.0, 0.0, 0.0, 0)
    assert (r.win_rate_pct, r.profit_factor, r.exposure_pct, r.avg_trade_pct) == (0.0, 0.0, 0.0, 0.0)


def test_round_trip_with_flat_periods() -> None:
    r = _bt([100, 101, 102, 101, 100], [0, 1, 1, 0, 0])
    assert r.num_trades == 1
    assert r.return_pct == pytest.approx(0.0, abs=1e-12)  # 101 -> 102 -> 101
    assert r.win_rate_pct == 0.0 and r.profit_factor == 0.0
    assert r.exposure_pct == pytest.approx(50.0)  # 2 of the 4 holding periods


def test_reversal_is_two_trades_with_split_costs() -> None:
    c = 0.001
    r = _bt([100, 110, 99], [1, -1, 0], fee=10)
    assert r.num_trades == 2
    assert r.return_pct == pytest.approx(100 * ((1.1 - c) * (1.1 - 2 * c) * (1 - c) - 1))
    trade = 1.1 * (1 - c) * (1 - c) - 1  # each trade: +10% gross, one entry and one exit cost
    assert r.avg_trade_pct == pytest.approx(100 * trade)


def test_drawdown_peak_to_trough_including_start() -> None:
    r = _bt([100, 120, 60, 90], [1, 1, 1, 1])
    assert r.max_drawdown_pct == pytest.approx(50.0)
    assert r.return_pct == pytest.approx(-10.0)
    assert _bt([100, 90, 95], [1, 1, 0]).max_drawdown_pct == pytest.approx(10.0)  # from the 1.0 start


def test_profit_factor_and_win_rate() -> None:
    r = _bt([100, 110, 110, 104.5, 104.5], [1, 0, 1, 0, 0])  # +10%, then -5%
    assert r.num_trades == 2 and r.win_rate_pct == 50.0
    assert r.profit_factor == pytest.approx(2.0)
    assert r.avg_trade_pct == pytest.approx(2.5)


def test_sharpe_annualisation() -> None:
    close, pos = [100, 101, 100, 102, 101], [1, 1, 1, 1, 0]
    net = np.array([0.01, -1 / 101, 0.02, -1 / 102, 0.0])
    expected = net.mean() / net.std() * math.sqrt(252)
    assert _bt(close, pos).sharpe == pytest.approx(expected)  # default: 252 per year
    assert _bt(close, pos, ppy=252 * 4).sharpe == pytest.approx(2 * expected)


def test_buy_and_hold_reference() -> None:
    r = _bt([100, 105, 110], [0, 0, 0], fee=10)
    assert r.bh_return_pct == pytest.approx(100 * ((1.05 - 0.001) * (1 + 5 / 105) * 0.999 - 1))
    assert r.bh_max_drawdown_pct == pytest.approx(
        0.1
    )  # the final exit cost (the entry cost is netted with bar 0's gain)
    assert set(r.to_dict()) >= {"bh_return_pct", "bh_sharpe", "bh_max_drawdown_pct", "return_pct"}


def test_actions_to_positions_gate_and_shorting() -> None:
    probs = np.array(
        [[0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.3, 0.35, 0.35], [0.2, 0.39, 0.41]]
    )
    assert actions_to_positions(probs, confidence_gate=0.4, allow_short=True).tolist() == [1, -1, 0, 0, -1]
    assert actions_to_positions(probs, confidence_gate=0.0, allow_short=True).tolist() == [1, -1, 0, 1, -1]
    assert actions_to_positions(probs, confidence_gate=0.0, allow_short=False).tolist() == [1, 0, 0, 1, 0]


def test_ranked_positions_trade_the_likelier_side_above_the_threshold() -> None:
    probs = np.array(
        [[0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.3, 0.35, 0.35], [0.6, 0.15, 0.25]]
    )
    # hold as the top class does not stop a trade whose own probability clears the threshold
    assert ranked_positions(probs, threshold=0.25, allow_short=True).tolist() == [1, -1, 1, 1, -1]
    assert ranked_positions(probs, threshold=0.31, allow_short=True).tolist() == [1, -1, 0, 1, 0]
    assert ranked_positions(probs, threshold=0.0, allow_short=False).tolist() == [1, 1, 1, 1, 1]
    assert ranked_positions(probs, threshold=0.3, allow_short=False).tolist() == [1, 0, 1, 1, 0]


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="equal length"):
        _bt([100, 101, 102], [1, 0])


def _loop_reference(close: np.ndarray, pos: np.ndarray, c: float, ppy: float) -> dict[str, float]:
    """The documented conventions, one bar at a time."""
    n, equity, nets, trades = len(close), [1.0], [], []
    prev, cur = 0.0, 1.0
    for t in range(n):
        p = pos[t]
        ret = close[t + 1] / close[t] - 1 if t < n - 1 else 0.0
        change = abs(p - prev) + (abs(p) if t == n - 1 else 0.0)
        net = p * ret - c * change
        nets.append(net)
        equity.append(equity[-1] * max(1 + net, 0.0))
        s, sp = np.sign(p), np.sign(prev)
        if sp != 0 and s != sp:
            trades.append(cur * (1 - c * abs(prev)) - 1)
        if s != 0 and s != sp:
            cur = 1 - c * abs(p)
        elif s != 0:
            cur *= 1 - c * abs(p - prev)
        if s != 0:
            cur *= 1 + p * ret
        if t == n - 1 and s != 0:
            trades.append(cur * (1 - c * abs(p)) - 1)
        prev = p
    eq, arr, tr = np.array(equity), np.array(nets), np.array(trades)
    won, lost = tr > 1e-12, tr < -1e-12
    wins, losses = tr[won].sum(), -tr[lost].sum()
    pf = (
        0.0
        if not won.any()
        else (PROFIT_FACTOR_CAP if not lost.any() else min(wins / losses, PROFIT_FACTOR_CAP))
    )
    return {
        "return_pct": 100 * (eq[-1] - 1),
        "sharpe": arr.mean() / arr.std() * math.sqrt(ppy) if arr.std() > 1e-15 else 0.0,
        "max_drawdown_pct": 100 * float((1 - eq / np.maximum.accumulate(eq)).max()),
        "num_trades": len(tr),
        "win_rate_pct": 100 * float(won.mean()) if len(tr) else 0.0,
        "avg_trade_pct": 100 * float(tr.mean()) if len(tr) else 0.0,
        "profit_factor": pf,
        "exposure_pct": 100 * float((pos[:-1] != 0).mean()),
    }


@settings(max_examples=150, deadline=None)
@given(
    moves=st.lists(st.floats(-0.05, 0.05), min_size=2, max_size=40),
    choices=st.lists(st.sampled_from([-1.0, 0.0, 1.0, 0.5, -0.5]), min_size=40, max_size=40),
    cost_bps=st.floats(0.0, 50.0),
)
def test_matches_loop_reference(moves: list[float], choices: list[float], cost_bps: float) -> None:
    close = 100 * np.cumprod(1 + np.array(moves))
    pos = np.array(choices[: len(close)])
    got = run_backtest(close, pos, fee_bps=cost_bps, slippage_bps=0.0, periods_per_year=1000.0).to_dict()
    want = _loop_reference(close, pos, cost_bps / 1e4, 1000.0)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_rule_baselines_hold_a_constant_position_with_costs() -> None:
    from objectives.backtest import rule_baselines

    close = np.array([100.0, 110.0, 99.0, 121.0])
    rules = rule_baselines(close, fee_bps=10.0, slippage_bps=0.0, allow_short=True)
    assert list(rules) == ["flat", "buy_and_hold", "short_and_hold"]
    flat, flat_returns = rules["flat"]
    assert flat.return_pct == 0.0 and flat.num_trades == 0 and not flat_returns.any()
    # long 1 from the first close to the last: 121 / 100, less 10 bp in and 10 bp out
    bh, bh_returns = rules["buy_and_hold"]
    assert bh.return_pct == pytest.approx(100 * ((1.1 - 0.001) * 0.9 * (121 / 99) * (1 - 0.001) - 1))
    assert bh.return_pct == pytest.approx(bh.bh_return_pct)  # the backtest's own buy-and-hold figure
    assert bh_returns[0] == pytest.approx(0.1 - 0.001) and bh_returns[-1] == pytest.approx(-0.001)
    short, _ = rules["short_and_hold"]
    assert short.return_pct < 0 < bh.return_pct
    assert list(rule_baselines(close, fee_bps=10.0, slippage_bps=0.0, allow_short=False)) == [
        "flat",
        "buy_and_hold",
    ]
