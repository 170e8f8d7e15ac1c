"""3-class action labels and the profit regression target (vectorised).

For decision bar t with horizon H (reference section 2.6):

    buy_profit  = (max(close[t+1 .. t+H]) - close[t]) / close[t]
    sell_profit = (close[t] - min(close[t+1 .. t+H])) / close[t]

With no open position (always the case in training, so schemes A and B apply
the same rule and differ only in their customary parameters: A 120 bars /
0.003 / 0.002 on 1-minute bars, B 10 bars / 0.005 / 0.003):

- if ``|buy - sell| >= min_diff``: long (1) when ``buy > sell`` and
  ``buy > threshold``; short (2) when ``sell > buy`` and ``sell > threshold``;
  else hold (0);
- else hold (0).

Scheme A's position-aware branch (a long position is open) is available via
``position``: short if ``sell > threshold``, else long if ``buy > threshold``,
else hold.

Profit target: ``buy_profit`` for label 1, ``sell_profit`` for label 2, 0 for
hold. The last H bars have no complete horizon: label -1 and profit 0.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from objectives.config import LabelSpec

__all__ = ["HOLD", "LONG", "SHORT", "future_profits", "make_labels"]

HOLD, LONG, SHORT = 0, 1, 2


def future_profits(close: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(buy_profit, sell_profit): each `n_bars`, NaN for the last ``horizon`` bars."""
    n = len(close)
    buy = np.full(n, np.nan)
    sell = np.full(n, np.nan)
    m = n - horizon
    if m <= 0:
        return buy, sell
    windows = sliding_window_view(close[1:], horizon)[:m]  # m x H: close[t+1 .. t+H]
    price = close[:m]
    buy[:m] = (windows.max(axis=1) - price) / price
    sell[:m] = (price - windows.min(axis=1)) / price
    return buy, sell


def make_labels(
    close: np.ndarray, spec: LabelSpec, *, position: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and profit target for every bar.

    Args:
        close: `n_bars` closes.
        spec: horizon, thresholds, scheme.
        position: `n_bars` open position per bar (scheme A only); > 0 selects
            the position-aware branch. None = flat everywhere (training).

    Returns:
        labels `n_bars` int64 in {-1, 0, 1, 2} and profit `n_bars` float32.
    """
    close = np.asarray(close, dtype=np.float64)
    buy, sell = future_profits(close, spec.horizon)
    thr, min_diff = spec.profit_threshold, spec.min_diff
    flat = np.where(
        np.abs(buy - sell) >= min_diff,
        np.where((buy > sell) & (buy > thr), LONG, np.where((sell > buy) & (sell > thr), SHORT, HOLD)),
        HOLD,
    )
    labels = flat
    if position is not None and spec.scheme == "A":
        held = np.where(sell > thr, SHORT, np.where(buy > thr, LONG, HOLD))
        labels = np.where(np.asarray(position) > 0, held, flat)
    defined = np.isfinite(buy)
    labels = np.where(defined, labels, -1).astype(np.int64)
    profit = np.where(labels == LONG, buy, np.where(labels == SHORT, sell, 0.0))
    return labels, np.where(defined, profit, 0.0).astype(np.float32)
