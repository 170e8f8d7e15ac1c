"""Speed of the vectorised backtest against a plain pandas implementation.

Both implement the conventions of ``objectives/backtest.py`` and must give
the same metrics (asserted). Run from the repository root:

    python benchmarks/backtest_speed.py [--bars 1000000] [--repeats 5]

Target: ``run_backtest`` well under 0.1 s on 1,000,000 bars. Timings are the
best of ``--repeats`` runs, wall clock and this process's CPU time (on a
shared, busy machine the wall figure is inflated by other processes).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.backtest import PROFIT_FACTOR_CAP, run_backtest

FEE_BPS, SLIPPAGE_BPS, PERIODS_PER_YEAR = 1.0, 1.0, 6_280.0


def _equity_metrics(net: pd.Series, ppy: float) -> tuple[float, float, float]:
    equity = pd.concat([pd.Series([1.0]), (1 + net).clip(lower=0).cumprod()], ignore_index=True)
    drawdown = 1 - equity / equity.cummax()
    std = net.std(ddof=0)
    sharpe = net.mean() / std * math.sqrt(ppy) if std > 1e-15 else 0.0
    return 100 * (equity.iloc[-1] - 1), sharpe, 100 * drawdown.max()


def _net(df: pd.DataFrame, pos: pd.Series, cost: float) -> pd.Series:
    change = pos.diff().fillna(pos).abs()
    change.iloc[-1] += abs(pos.iloc[-1])
    return pos * df["ret"] - cost * change


def pandas_backtest(
    close: np.ndarray, positions: np.ndarray, fee_bps: float, slippage_bps: float, ppy: float
) -> dict[str, float]:
    """The backtest written the straightforward pandas way (Series ops and a groupby over trades)."""
    cost = (fee_bps + slippage_bps) / 1e4
    df = pd.DataFrame({"close": close, "pos": positions})
    df["ret"] = (df["close"].shift(-1) / df["close"] - 1).fillna(0.0)
    ret_pct, sharpe, mdd = _equity_metrics(_net(df, df["pos"], cost), ppy)
    side = np.sign(df["pos"])
    prev_side = side.shift(1, fill_value=0.0)
    prev_pos = df["pos"].shift(1, fill_value=0.0)
    opens = (side != 0) & (side != prev_side)
    entry = np.where(opens, df["pos"].abs(), np.where(side == prev_side, (df["pos"] - prev_pos).abs(), 0.0))
    df["growth"] = (1 + df["pos"] * df["ret"]) * (1 - cost * entry)
    df["trade"] = opens.cumsum()
    groups = df[side != 0].groupby("trade")
    trades = groups["growth"].prod() * (1 - cost * groups["pos"].last().abs()) - 1
    won, lost = trades > 1e-12, trades < -1e-12
    wins, losses = trades[won].sum(), -trades[lost].sum()
    pf = (
        0.0
        if not won.any()
        else PROFIT_FACTOR_CAP
        if not lost.any()
        else min(wins / losses, PROFIT_FACTOR_CAP)
    )
    bh_ret, bh_sharpe, bh_mdd = _equity_metrics(_net(df, pd.Series(1.0, index=df.index), cost), ppy)
    return {
        "return_pct": ret_pct,
        "sharpe": sharpe,
        "max_drawdown_pct": mdd,
        "win_rate_pct": 100 * won.mean() if len(trades) else 0.0,
        "num_trades": len(trades),
        "profit_factor": pf,
        "exposure_pct": 100 * (df["pos"].iloc[:-1] != 0).mean(),
        "avg_trade_pct": 100 * trades.mean() if len(trades) else 0.0,
        "bh_return_pct": bh_ret,
        "bh_sharpe": bh_sharpe,
        "bh_max_drawdown_pct": bh_mdd,
    }


def _best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(best wall seconds, best CPU seconds of this process, result) over ``repeats`` runs."""
    wall, cpu, out = math.inf, math.inf, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 1e-3, args.bars)))
    # persistent positions: a new action (-1, 0, +1) on about 5% of the bars
    change = rng.random(args.bars) < 0.05
    choice = rng.choice([-1.0, 0.0, 1.0], size=args.bars)
    positions = choice[np.maximum.accumulate(np.where(change, np.arange(args.bars), 0))]

    t_np, c_np, fast = _best_of(
        lambda: run_backtest(
            close, positions, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, periods_per_year=PERIODS_PER_YEAR
        ).to_dict(),
        args.repeats,
    )
    t_pd, c_pd, slow = _best_of(
        lambda: pandas_backtest(close, positions, FEE_BPS, SLIPPAGE_BPS, PERIODS_PER_YEAR), args.repeats
    )
    assert isinstance(fast, dict) and isinstance(slow, dict)
    for key, value in slow.items():
        if not math.isclose(fast[key], value, rel_tol=1e-8, abs_tol=1e-9):
            raise SystemExit(f"mismatch in {key}: run_backtest {fast[key]!r} vs pandas {value!r}")

    print(f"backtest of {args.bars:,} bars, {int(fast['num_trades']):,} round trips, best of {args.repeats}")
    print("| implementation | wall s | CPU s | wall vs run_backtest |")
    print("|---|---:|---:|---:|")
    print(f"| objectives.backtest.run_backtest (numpy) | {t_np:.4f} | {c_np:.4f} | 1.0x |")
    print(f"| plain pandas (Series ops + groupby) | {t_pd:.4f} | {c_pd:.4f} | {t_pd / t_np:.1f}x |")
    print(
        f"metrics agree (rel 1e-8): return_pct {fast['return_pct']:.4f}, sharpe {fast['sharpe']:.4f}, "
        f"max_drawdown_pct {fast['max_drawdown_pct']:.4f}"
    )
    print(
        f"target < 0.1 s: {'met' if t_np < 0.1 else 'MISSED'} (wall; CPU {c_np:.3f} s, which a busy machine "
        "inflates less)"
    )


if __name__ == "__main__":
    main()
