"""Causal technical indicators on one bar series (one convention, TA-Lib style).

- RSI and ATR use Wilder smoothing (``alpha = 1 / period``), seeded with the
  simple mean of the first ``period`` values, as TA-Lib does: the first RSI
  is at index ``period`` (it needs ``period`` price changes), the first ATR
  at index ``period`` (true range needs the previous close).
- Bollinger bands: simple moving average of ``period`` closes +- ``k``
  population standard deviations (``ddof=0``).
- Volatility: population std of the last ``period`` simple returns.

Every value at index t uses inputs at indices <= t only; warm-up values are
NaN (feature sets choose the fallbacks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["atr", "bollinger", "rsi", "trend", "volatility", "wilder_smooth"]


def wilder_smooth(values: np.ndarray, period: int, start: int) -> np.ndarray:
    """Wilder moving average of ``values``: `n` -> `n`, NaN before ``start + period - 1``.

    The first output (at ``start + period - 1``) is the mean of
    ``values[start : start + period]``; then ``y_t = y_{t-1} + (x_t - y_{t-1}) / period``.
    """
    n = len(values)
    out = np.full(n, np.nan)
    first = start + period - 1
    if first >= n:
        return out
    seeded = np.full(n, np.nan)
    seeded[first] = values[start : first + 1].mean()
    seeded[first + 1 :] = values[first + 1 :]
    out[first:] = pd.Series(seeded[first:]).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()
    return out


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder RSI in [0, 100]: `n` -> `n`; 50 where there is no movement at all."""
    delta = np.diff(close, prepend=np.nan)
    gain = np.where(delta > 0, delta, 0.0)
    loss = np.where(delta < 0, -delta, 0.0)
    avg_gain = wilder_smooth(gain, period, start=1)
    avg_loss = wilder_smooth(loss, period, start=1)
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, 100.0 * avg_gain / total, 50.0)
    out[np.isnan(total)] = np.nan
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder average true range (price units): `n` -> `n`."""
    prev = np.concatenate([[np.nan], close[:-1]])
    true_range = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    return wilder_smooth(true_range, period, start=1)


def bollinger(
    close: np.ndarray, period: int = 20, k: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, mid, lower) bands, SMA +- k population stds: each `n`."""
    series = pd.Series(close)
    mid = series.rolling(period).mean().to_numpy()
    std = series.rolling(period).std(ddof=0).to_numpy()
    return mid + k * std, mid, mid - k * std


def volatility(close: np.ndarray, period: int = 20) -> np.ndarray:
    """Population std of the last ``period`` simple returns: `n` -> `n`."""
    returns = pd.Series(close).pct_change()
    return returns.rolling(period).std(ddof=0).to_numpy()


def trend(close: np.ndarray, band: float = 0.001) -> np.ndarray:
    """1.0 if close > previous close x (1 + band), 0.0 if < x (1 - band), else 0.5; NaN at 0."""
    prev = np.concatenate([[np.nan], close[:-1]])
    out = np.where(close > prev * (1 + band), 1.0, np.where(close < prev * (1 - band), 0.0, 0.5))
    out[:1] = np.nan
    return out
