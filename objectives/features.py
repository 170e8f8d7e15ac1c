"""Causal feature sets built from bars: a name -> builder registry.

Every builder returns one row per bar; the row at bar t uses bars <= t only
(indicators are causal, coarser timeframes expose complete bars only: see
:mod:`objectives.timeframes`). Warm-up gaps are filled with documented,
equally causal fallbacks, so every value is finite.

Deliberate change from the original feature vectors: price *levels* are
meaningless across decades of split-adjusted data (MSFT starts below one
dollar) and across instruments, so every price-like feature ``x`` (a band, a
moving average, a coarser close, an open/high/low) is expressed relative to
the current close as ``x / close - 1``; ATR and volatility are divided by the
close; the price itself becomes a return. RSI stays in [0, 100], positions
in [0, 1], volumes become ``log1p(volume)``. Normalisation happens later
(:mod:`objectives.dataset`), fitted on the training split.

Feature sets:

- ``ohlcv`` (10, the pure_ml set): base bar open/high/low relative to close,
  1-bar return, log volume; the same five for the first coarser timeframe
  (its close also relative to the current base close).
- ``basic`` (12, the Enhanced/Large/Huge set of reference section 2.2): 20-bar
  return (for ``price_current``), ATR, RSI (base), RSI (first coarser
  timeframe, for ``rsi_5m``), Bollinger upper/mid/lower/position, 1- and
  5-bar returns, 20-bar volatility, log volume.
- ``multi_timeframe`` (46, the hybrid layout of section 2.1, same order): bar
  data has no ticks, so slots 1-6 hold bar-level analogues (open/high/low
  relative to close, volume change, volume relative to its 20-bar mean, close
  location in the bar's range: 0.5 when flat, like the neutral buy/sell
  ratio); then base RSI/ATR/Bollinger/volatility/volume, three coarser
  timeframes (price, RSI, ATR, bands, position, volume; trend for the second
  and third), 5/10/20-bar moving averages of the third timeframe's closes,
  and the grid bounds, which equal the base Bollinger bands as in the
  original training data.
- ``columns``: the named numeric columns of a user file, unchanged (their
  causality is the file's responsibility).

Fallbacks (as the original): RSI 50, band position 0.5, trend 0.5; a coarser
timeframe without a complete bar yet falls back to the base value of the same
kind; base bands fall back to the close (relative 0), ATR to the bar's range,
returns and volatility to 0, moving averages to the timeframe's close.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from objectives import indicators as ind
from objectives.data import infer_bar_seconds
from objectives.timeframes import CoarseBars, coarser_timeframes, resample_causal
from strategies.exceptions import ConfigError, DataError

__all__ = ["FEATURE_SETS", "build_features", "feature_set_width", "register_feature_set"]

FeatureBuilder = Callable[["_Context"], dict[str, np.ndarray]]
FEATURE_SETS: dict[str, FeatureBuilder] = {}
_WIDTHS: dict[str, int] = {}


def register_feature_set(name: str, width: int | None) -> Callable[[FeatureBuilder], FeatureBuilder]:
    """Decorator: register a builder under ``name`` (``width`` None = data-dependent)."""

    def wrap(fn: FeatureBuilder) -> FeatureBuilder:
        FEATURE_SETS[name] = fn
        if width is not None:
            _WIDTHS[name] = width
        return fn

    return wrap


def feature_set_width(name: str) -> int | None:
    """Number of features of a registered set (None for ``columns``)."""
    _check_name(name)
    return _WIDTHS.get(name)


def build_features(
    bars: pd.DataFrame,
    feature_set: str,
    *,
    columns: Sequence[str] | None = None,
    bar_seconds: float | None = None,
) -> pd.DataFrame:
    """Build a registered feature set.

    Args:
        bars: `n_bars` rows from :func:`objectives.data.load_bars`.
        feature_set: a name in :data:`FEATURE_SETS`.
        columns: the file columns used by feature set ``columns``.
        bar_seconds: base bar length; inferred (median spacing) when None.

    Returns:
        `n_bars x n_features` float64 frame aligned to ``bars.index``, all finite.
    """
    _check_name(feature_set)
    ctx = _Context(
        bars, bar_seconds if bar_seconds is not None else infer_bar_seconds(bars.index), tuple(columns or ())
    )
    out = pd.DataFrame(FEATURE_SETS[feature_set](ctx), index=bars.index, dtype=np.float64)
    bad = ~np.isfinite(out.to_numpy())
    if bad.any():
        col = out.columns[int(np.flatnonzero(bad.any(axis=0))[0])]
        raise DataError(
            f"feature set {feature_set!r}: column {col!r} has non-finite values; check the input columns"
        )
    out.attrs["timeframes"] = ctx.timeframe_names
    return out


def _check_name(name: str) -> None:
    if name not in FEATURE_SETS:
        raise ConfigError(f"unknown feature set {name!r}; known: {', '.join(sorted(FEATURE_SETS))}")


@dataclass
class _Context:
    """Bars plus lazily built per-timeframe indicator blocks."""

    bars: pd.DataFrame
    bar_seconds: float
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        self.tfs = coarser_timeframes(self.bar_seconds)
        self.timeframe_names = tuple(tf.name for tf in self.tfs)
        self.close = self.bars["close"].to_numpy(dtype=np.float64)
        self._coarse: dict[int, CoarseBars] = {}

    def col(self, name: str) -> np.ndarray:
        return self.bars[name].to_numpy(dtype=np.float64)

    def coarse(self, level: int) -> CoarseBars:
        if level not in self._coarse:
            self._coarse[level] = resample_causal(self.bars, self.tfs[level - 1], self.bar_seconds)
        return self._coarse[level]

    def rel(self, x: np.ndarray) -> np.ndarray:
        """Price-like `n_bars` values relative to the current close."""
        return x / self.close - 1.0


def _fill(x: np.ndarray, fallback: np.ndarray | float) -> np.ndarray:
    return np.where(np.isfinite(x), x, fallback)


def _past_return(close: np.ndarray, lag: int) -> np.ndarray:
    prev = np.concatenate([np.full(min(lag, len(close)), np.nan), close[:-lag]])
    return _fill(close / prev - 1.0, 0.0)


def _band_position(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(x - lower) / (upper - lower); 0.5 for a zero-width band, NaN where the band is undefined."""
    width = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(width > 0, (x - lower) / np.where(width > 0, width, 1.0), 0.5)
    return np.where(np.isnan(width), np.nan, pos)


def _position(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return _fill(_band_position(x, lower, upper), 0.5)


def _base_block(ctx: _Context) -> dict[str, np.ndarray]:
    """Base-timeframe indicators (filled), in the multi_timeframe naming."""
    h, lo, c, v = (ctx.col(k) for k in ("high", "low", "close", "volume"))
    up, mid, low = ind.bollinger(c)
    return {
        "atr": _fill(ind.atr(h, lo, c) / c, (h - lo) / c),
        "rsi": _fill(ind.rsi(c), 50.0),
        "bb_upper": _fill(ctx.rel(up), 0.0),
        "bb_mid": _fill(ctx.rel(mid), 0.0),
        "bb_lower": _fill(ctx.rel(low), 0.0),
        "bb_position": _position(c, low, up),
        "volatility": _fill(ind.volatility(c), 0.0),
        "log_volume": np.log1p(v),
    }


def _coarse_block(ctx: _Context, level: int, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Indicators of coarser timeframe ``level`` (1..3) at the base bars, with base fallbacks."""
    cb = ctx.coarse(level)
    up, mid, low = ind.bollinger(cb.close)
    pos = _band_position(cb.close, low, up)  # `m`, NaN until 20 coarse bars exist
    return {
        "price": _fill(ctx.rel(cb.at_base(cb.close)), 0.0),
        "rsi": _fill(cb.at_base(ind.rsi(cb.close)), base["rsi"]),
        "atr": _fill(cb.at_base(ind.atr(cb.high, cb.low, cb.close)) / ctx.close, base["atr"]),
        "bb_upper": _fill(ctx.rel(cb.at_base(up)), base["bb_upper"]),
        "bb_mid": _fill(ctx.rel(cb.at_base(mid)), base["bb_mid"]),
        "bb_lower": _fill(ctx.rel(cb.at_base(low)), base["bb_lower"]),
        "bb_position": _fill(cb.at_base(pos), base["bb_position"]),
        "log_volume": _fill(np.log1p(cb.at_base(cb.volume)), base["log_volume"]),
        "trend": _fill(cb.at_base(ind.trend(cb.close)), 0.5),
    }


@register_feature_set("ohlcv", width=10)
def _ohlcv(ctx: _Context) -> dict[str, np.ndarray]:
    o, h, lo, c, v = (ctx.col(k) for k in ("open", "high", "low", "close", "volume"))
    out = {
        "open_rel_base": ctx.rel(o),
        "high_rel_base": ctx.rel(h),
        "low_rel_base": ctx.rel(lo),
        "ret_1_base": _past_return(c, 1),
        "log_volume_base": np.log1p(v),
    }
    cb = ctx.coarse(1)
    for key, values, fallback in (
        ("open", cb.open, out["open_rel_base"]),
        ("high", cb.high, out["high_rel_base"]),
        ("low", cb.low, out["low_rel_base"]),
        ("close", cb.close, 0.0),
    ):
        out[f"{key}_rel_tf1"] = _fill(ctx.rel(cb.at_base(values)), fallback)
    out["log_volume_tf1"] = _fill(np.log1p(cb.at_base(cb.volume)), out["log_volume_base"])
    return out


@register_feature_set("basic", width=12)
def _basic(ctx: _Context) -> dict[str, np.ndarray]:
    base = _base_block(ctx)
    c = ctx.close
    return {
        "ret_20": _past_return(c, 20),
        "atr": base["atr"],
        "rsi_base": base["rsi"],
        "rsi_tf1": _coarse_block(ctx, 1, base)["rsi"],
        "bb_upper": base["bb_upper"],
        "bb_mid": base["bb_mid"],
        "bb_lower": base["bb_lower"],
        "bb_position": base["bb_position"],
        "ret_1": _past_return(c, 1),
        "ret_5": _past_return(c, 5),
        "volatility": base["volatility"],
        "log_volume": base["log_volume"],
    }


@register_feature_set("multi_timeframe", width=46)
def _multi_timeframe(ctx: _Context) -> dict[str, np.ndarray]:
    o, h, lo, c, v = (ctx.col(k) for k in ("open", "high", "low", "close", "volume"))
    base = _base_block(ctx)
    mean_v = pd.Series(v).rolling(20, min_periods=1).mean().to_numpy()
    out = {
        "ret_1": _past_return(c, 1),
        "open_rel": ctx.rel(o),
        "high_rel": ctx.rel(h),
        "low_rel": ctx.rel(lo),
        "volume_change": np.diff(np.log1p(v), prepend=np.log1p(v[:1])),
        "volume_ratio": np.where(mean_v > 0, v / np.where(mean_v > 0, mean_v, 1.0), 1.0),
        "close_location": _position(c, lo, h),
    }
    out.update(
        {
            f"{k}_base": base[k]
            for k in (
                "atr",
                "rsi",
                "bb_upper",
                "bb_mid",
                "bb_lower",
                "bb_position",
                "volatility",
                "log_volume",
            )
        }
    )
    keys = ("price", "rsi", "atr", "bb_upper", "bb_mid", "bb_lower", "bb_position", "log_volume")
    for level in (1, 2, 3):
        block = _coarse_block(ctx, level, base)
        out.update({f"{k}_tf{level}": block[k] for k in keys})
        if level > 1:
            out[f"trend_tf{level}"] = block["trend"]
    cb = ctx.coarse(3)
    for window in (5, 10, 20):
        ma = pd.Series(cb.close).rolling(window).mean().to_numpy()
        out[f"ma_{window}_tf3"] = _fill(ctx.rel(cb.at_base(ma)), out["price_tf3"])
    out["grid_lower"] = base["bb_lower"]
    out["grid_upper"] = base["bb_upper"]
    return out


@register_feature_set("columns", width=None)
def _columns(ctx: _Context) -> dict[str, np.ndarray]:
    if not ctx.columns:
        raise ConfigError("feature set 'columns' needs feature_columns: the list of file columns to use")
    missing = [c for c in ctx.columns if c not in ctx.bars.columns]
    if missing:
        raise DataError(
            f"feature columns {missing} are not in the loaded bars; load them with "
            "load_bars(..., extra_columns=...) / DataSpec.feature_columns"
        )
    return {name: ctx.col(name) for name in ctx.columns}
