"""Coarser timeframes and their causal (complete-bars-only) resampling.

The coarser timeframes are chosen relative to the base bar spacing:

| base bar spacing | coarser timeframes |
|---|---|
| < 5 min (e.g. 1 min) | 5min, 1h, 1D (the original 1m -> 5m, 1h, 1d) |
| < 1 h (5 / 15 / 30 min) | 1h, 4h, 1D |
| < 4 h (e.g. 1 h) | 4h, 1D, 1W |
| < 1 day (4 h, 12 h) | 1D, 1W, 1M |
| < 1 week (daily) | 1W, 1M, 1Q |
| otherwise (weekly) | 1M, 1Q, 1Y |

Intraday buckets are floors of the timestamp (4h buckets start at 00:00,
04:00, ...; days are UTC calendar days); weeks run Saturday to Friday (so a
Friday daily bar closes its week); months, quarters and years are calendar
periods. Timestamps are bar open times; a bar covers ``bar_seconds``.

Causality: a coarse bar becomes visible at the base bar that *closes* its
bucket (``open time + bar_seconds >= bucket end``) or, when no bar does (a
weekend or holiday ends the bucket early), at the first bar of a later
bucket. Until then base bars see the previous complete coarse bar, never a
partial one. A bar that would fall inside an already-closed bucket (only with
irregular spacing) is not aggregated into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["TIMEFRAMES", "CoarseBars", "Timeframe", "coarser_timeframes", "resample_causal"]


@dataclass(frozen=True)
class Timeframe:
    """A coarser bar size: a fixed floor frequency or a calendar period."""

    name: str
    floor: str | None = None
    period: str | None = None


TIMEFRAMES: dict[str, Timeframe] = {
    "5min": Timeframe("5min", floor="5min"),
    "1h": Timeframe("1h", floor="1h"),
    "4h": Timeframe("4h", floor="4h"),
    "1D": Timeframe("1D", floor="1D"),
    "1W": Timeframe("1W", period="W-FRI"),
    "1M": Timeframe("1M", period="M"),
    "1Q": Timeframe("1Q", period="Q"),
    "1Y": Timeframe("1Y", period="Y"),
}

_LADDER: tuple[tuple[float, tuple[str, str, str]], ...] = (
    (300.0, ("5min", "1h", "1D")),
    (3_600.0, ("1h", "4h", "1D")),
    (14_400.0, ("4h", "1D", "1W")),
    (86_400.0, ("1D", "1W", "1M")),
    (7 * 86_400.0, ("1W", "1M", "1Q")),
    (float("inf"), ("1M", "1Q", "1Y")),
)


def coarser_timeframes(bar_seconds: float) -> tuple[Timeframe, Timeframe, Timeframe]:
    """The three coarser timeframes for base bars ``bar_seconds`` apart (table above)."""
    for bound, names in _LADDER:
        if bar_seconds < bound:
            return TIMEFRAMES[names[0]], TIMEFRAMES[names[1]], TIMEFRAMES[names[2]]
    raise AssertionError("unreachable: the ladder ends at inf")


@dataclass(frozen=True)
class CoarseBars:
    """Complete coarse bars and which one each base bar may see.

    Attributes:
        open, high, low, close, volume: `m` values per coarse bar.
        visible: `n_bars` index into the coarse bars of the latest complete
            coarse bar at each base bar, or -1 when none is complete yet.
    """

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    visible: np.ndarray

    def at_base(self, values: np.ndarray) -> np.ndarray:
        """Map per-coarse-bar `m` values to base bars `n_bars` (NaN where none is visible)."""
        out = np.full(len(self.visible), np.nan)
        ok = self.visible >= 0
        out[ok] = values[self.visible[ok]]
        return out


def _bucket_bounds(index: pd.DatetimeIndex, tf: Timeframe) -> tuple[np.ndarray, np.ndarray]:
    if tf.floor is not None:
        start = index.floor(tf.floor)
        end = start + pd.Timedelta(tf.floor)
    else:
        periods = index.to_period(tf.period)
        start = periods.start_time
        end = (periods + 1).start_time
    return start.as_unit("ns").asi8, end.as_unit("ns").asi8


def resample_causal(bars: pd.DataFrame, tf: Timeframe, bar_seconds: float) -> CoarseBars:
    """Aggregate base bars into complete ``tf`` bars (open first, high max, low min, close last, volume sum).

    Args:
        bars: `n_bars` rows with a DatetimeIndex and open/high/low/close/volume.
        tf: the coarser timeframe.
        bar_seconds: base bar length (the median spacing of the data).
    """
    index = pd.DatetimeIndex(bars.index).as_unit("ns")
    start, end = _bucket_bounds(index, tf)
    n = len(index)
    new_bucket = np.concatenate([[True], start[1:] != start[:-1]])
    code = np.cumsum(new_bucket) - 1
    closes = index.asi8 + round(bar_seconds * 1e9) >= end
    closed_before = _cumsum_within(closes.astype(np.int64), new_bucket) - closes
    member = closed_before == 0
    visible = np.where(closes | (closed_before > 0), code, code - 1)
    firsts = np.flatnonzero(new_bucket[member])
    idx = np.flatnonzero(member)
    last = np.concatenate([firsts[1:] - 1, [len(idx) - 1]]) if n else firsts
    cols = {k: bars[k].to_numpy(dtype=np.float64)[idx] for k in ("open", "high", "low", "close", "volume")}
    return CoarseBars(
        open=cols["open"][firsts],
        high=np.maximum.reduceat(cols["high"], firsts) if n else cols["high"],
        low=np.minimum.reduceat(cols["low"], firsts) if n else cols["low"],
        close=cols["close"][last],
        volume=np.add.reduceat(cols["volume"], firsts) if n else cols["volume"],
        visible=visible.astype(np.int64),
    )


def _cumsum_within(values: np.ndarray, new_group: np.ndarray) -> np.ndarray:
    """Cumulative sum of `n` values restarting at each True of ``new_group``."""
    total = np.cumsum(values)
    starts = np.flatnonzero(new_group)
    offset = np.concatenate([[0], total[starts[1:] - 1]]) if len(starts) else np.zeros(0, np.int64)
    group = np.cumsum(new_group) - 1
    return total - offset[group]
