"""Market-regime statistics of the training bars, for the DataDrivenOptimizer's rules.

The statistics are the original system's three (reference §5.2), made causal:
the per-bar series at bar t uses bars <= t only.

- ``trend_strength``: mean of |P - MA20(P)| / MA20(P).
- ``volatility``: mean of the rolling-20 standard deviation of returns.
- ``mean_reversion``: mean of the rolling-10 share of bars where the setup
  [RSI14 < 30 or > 70, and P > MA20] held at t-1 and the return at t is
  negative (the original looked at the *next* bar's return instead).

RSI is :func:`objectives.indicators.rsi` (Wilder, as in the feature sets) and
the bar length :func:`objectives.data.infer_bar_seconds`: one definition of
each in the project. :func:`data_driven_optimizer` hands the statistics to
:class:`strategies.DataDrivenOptimizer`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from objectives import indicators
from objectives.data import infer_bar_seconds
from strategies.exceptions import DataError
from strategies.priors import DataDrivenOptimizer, RegimeStats

__all__ = ["MIN_BARS", "data_driven_optimizer", "regime_series", "regime_statistics"]

MIN_BARS = 100
MA_WINDOW = 20
VOL_WINDOW = 20
RSI_PERIOD = 14
REVERSION_WINDOW = 10


def _close(bars: pd.DataFrame) -> pd.Series:
    if "close" not in bars.columns:
        raise DataError(f"regime statistics need a 'close' column, got columns {list(bars.columns)}")
    return bars["close"].astype(float).dropna()


def regime_series(bars: pd.DataFrame) -> pd.DataFrame:
    """Per-bar regime series; row t uses ``bars`` rows <= t only.

    Columns: ``trend`` = |P - MA20| / MA20; ``volatility`` = rolling-20 std of
    returns; ``rsi`` (Wilder, 14); ``reversal`` = 1.0 when the setup [RSI
    extreme and P > MA20] held at t-1 and the return at t is negative, else
    0.0 (NaN while undefined); ``mean_reversion`` = its rolling-10 mean.
    """
    close = _close(bars)
    ma = close.rolling(MA_WINDOW).mean()
    returns = close.pct_change()
    rsi = pd.Series(indicators.rsi(close.to_numpy(), RSI_PERIOD), index=close.index)
    setup = (((rsi < 30) | (rsi > 70)) & (close > ma)).astype(float).where(rsi.notna() & ma.notna())
    reversal = setup.shift(1) * (returns < 0).astype(float).where(returns.notna())
    return pd.DataFrame(
        {
            "trend": (close - ma).abs() / ma,
            "volatility": returns.rolling(VOL_WINDOW).std(),
            "rsi": rsi,
            "reversal": reversal,
            "mean_reversion": reversal.rolling(REVERSION_WINDOW).mean(),
        }
    )


def regime_statistics(bars: pd.DataFrame) -> RegimeStats:
    """Regime statistics of ``bars`` (pass the training split only).

    Raises:
        DataError: no ``close`` column, or fewer than :data:`MIN_BARS` bars.
    """
    series = regime_series(bars)
    if len(series) < MIN_BARS:
        raise DataError(
            f"regime statistics need at least {MIN_BARS} bars with a close price, got {len(series)}; "
            "use a longer training split"
        )
    return RegimeStats(
        trend_strength=float(series["trend"].mean()),
        volatility=float(series["volatility"].mean()),
        mean_reversion=float(series["mean_reversion"].mean()),
        n_bars=len(series),
    )


def _bar_seconds(bars: pd.DataFrame) -> float:
    if isinstance(bars.index, pd.DatetimeIndex):
        index = bars.index
    elif "timestamp" in bars.columns:
        index = pd.DatetimeIndex(pd.to_datetime(bars["timestamp"]))
    else:
        raise DataError(
            "cannot infer the bar length: no 'timestamp' column or DatetimeIndex; pass bar_seconds"
        )
    seconds = infer_bar_seconds(index)
    if not (seconds > 0 and np.isfinite(seconds)):
        raise DataError(f"bar spacing must be positive, got a median of {seconds} s; sort the bars by time")
    return seconds


def data_driven_optimizer(bars: pd.DataFrame, bar_seconds: float | None = None) -> DataDrivenOptimizer:
    """The DataDrivenOptimizer of ``bars`` (the training split); the bar length is inferred when not given."""
    seconds = _bar_seconds(bars) if bar_seconds is None else bar_seconds
    return DataDrivenOptimizer(regime_statistics(bars), seconds)
