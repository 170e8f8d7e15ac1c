from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import indicators as ind
from objectives.features import FEATURE_SETS, build_features, feature_set_width
from objectives.timeframes import TIMEFRAMES, coarser_timeframes, resample_causal
from strategies.exceptions import ConfigError
from tests.objectives.helpers import bar_index, make_bars

SETS = ("ohlcv", "basic", "multi_timeframe", "columns")


def _features(bars: pd.DataFrame, name: str, bar_seconds: float) -> np.ndarray:
    cols = ["signal"] if name == "columns" else None
    return build_features(bars, name, columns=cols, bar_seconds=bar_seconds).to_numpy()


def _with_signal(bars: pd.DataFrame, seed: int) -> pd.DataFrame:
    out = bars.copy()
    out["signal"] = np.random.default_rng(seed).normal(size=len(out))
    return out


def check_no_look_ahead(
    featurize: Callable[[pd.DataFrame], np.ndarray], bars: pd.DataFrame, other: pd.DataFrame, t: int
) -> None:
    """Feature rows <= t of ``bars`` and of ``other`` (the same bars up to t, another or no future)
    are equal, and finite."""
    full, changed = featurize(bars), featurize(other)
    np.testing.assert_allclose(changed[: t + 1], full[: t + 1], rtol=1e-12, atol=1e-12)
    assert np.isfinite(full).all()


@pytest.mark.parametrize("name", SETS)
@settings(max_examples=12, deadline=None)
@given(
    freq=st.sampled_from(["1h", "1D", "1min", "4h"]),
    n=st.integers(40, 400),
    cut=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
    truncate=st.booleans(),
)
def test_no_look_ahead(name: str, freq: str, n: int, cut: float, seed: int, truncate: bool) -> None:
    """Changing or dropping bars after t leaves every feature row <= t unchanged."""
    bars = _with_signal(make_bars(n, freq=freq, seed=seed), seed)
    t = int(cut * (n - 2))
    seconds = pd.Timedelta(freq).total_seconds()
    if truncate:
        other = bars.iloc[: t + 1]
    else:  # a different future: new prices, volumes and signal after t
        future = _with_signal(
            make_bars(n, freq=freq, seed=seed + 1, start_price=float(bars["close"].iloc[t])), seed + 1
        )
        other = bars.copy()
        other.iloc[t + 1 :] = future.iloc[t + 1 :].to_numpy()
    check_no_look_ahead(lambda b: _features(b, name, seconds), bars, other, t)


def test_no_look_ahead_test_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above catches a feature that peeks: the volatility indicator replaced by a
    centred (future-peeking) rolling standard deviation, the rest of the pipeline unchanged."""
    bars = _with_signal(make_bars(200, seed=1), 1)
    other = bars.copy()
    other.iloc[101:, other.columns.get_loc("close")] *= 1.1
    check_no_look_ahead(lambda b: _features(b, "basic", 3600.0), bars, other, 100)  # honest: passes

    def centred(close: np.ndarray, period: int = 20) -> np.ndarray:
        r = pd.Series(np.log(close)).diff()
        return r.rolling(period, center=True, min_periods=1).std().fillna(0.0).to_numpy()

    monkeypatch.setattr(ind, "volatility", centred)
    with pytest.raises(AssertionError):
        check_no_look_ahead(lambda b: _features(b, "basic", 3600.0), bars, other, 100)


def test_widths_and_names() -> None:
    bars = make_bars(300)
    for name, width in (("ohlcv", 10), ("basic", 12), ("multi_timeframe", 46)):
        frame = build_features(bars, name)
        assert frame.shape == (300, width) == (300, feature_set_width(name))
        assert frame.index.equals(bars.index)
    assert list(build_features(bars, "multi_timeframe").columns[:2]) == ["ret_1", "open_rel"]
    assert set(FEATURE_SETS) >= set(SETS)


def test_unknown_feature_set() -> None:
    with pytest.raises(ConfigError, match="unknown feature set 'fancy'; known: basic, columns"):
        build_features(make_bars(50), "fancy")


def test_columns_set_needs_columns() -> None:
    with pytest.raises(ConfigError, match="feature_columns"):
        build_features(make_bars(50), "columns")


def test_prices_relative_to_close_are_scale_free() -> None:
    """Multiplying all prices by 1000 (split adjustment) changes no feature."""
    bars = make_bars(400, freq="1D", seed=3)
    scaled = bars.copy()
    scaled[["open", "high", "low", "close"]] *= 1000.0
    for name in ("ohlcv", "basic", "multi_timeframe"):
        np.testing.assert_allclose(
            build_features(scaled, name).to_numpy(),
            build_features(bars, name).to_numpy(),
            rtol=1e-9,
            atol=1e-9,
        )


def test_timeframe_ladder() -> None:
    names = lambda s: tuple(tf.name for tf in coarser_timeframes(s))  # noqa: E731
    assert names(60) == ("5min", "1h", "1D")
    assert names(300) == ("1h", "4h", "1D")
    assert names(3600) == ("4h", "1D", "1W")
    assert names(4 * 3600) == ("1D", "1W", "1M")
    assert names(86400) == ("1W", "1M", "1Q")
    assert names(7 * 86400) == ("1M", "1Q", "1Y")


def test_coarse_bar_visible_only_at_its_closing_bar() -> None:
    bars = make_bars(9, gaps=False)  # Monday 00:00 .. 08:00 hourly
    cb = resample_causal(bars, TIMEFRAMES["4h"], 3600.0)
    assert cb.visible.tolist() == [-1, -1, -1, 0, 0, 0, 0, 1, 1]
    assert cb.high[0] == bars["high"].iloc[:4].max() and cb.low[1] == bars["low"].iloc[4:8].min()
    assert cb.open[0] == bars["open"].iloc[0] and cb.close[1] == bars["close"].iloc[7]
    assert cb.volume[0] == bars["volume"].iloc[:4].sum()
    assert len(cb.close) == 3  # the partial third bucket exists but no base bar sees it


def test_bucket_ended_by_a_gap_becomes_visible_at_the_next_bar() -> None:
    """Friday's last FX bar (21:00) does not close the day; Sunday 22:00 sees it."""
    index = pd.DatetimeIndex(["2021-01-08 20:00", "2021-01-08 21:00", "2021-01-10 22:00", "2021-01-10 23:00"])
    bars = make_bars(4).set_axis(index.as_unit("ns"))
    cb = resample_causal(bars, TIMEFRAMES["1D"], 3600.0)
    assert cb.visible.tolist() == [-1, -1, 0, 1]  # the Sunday day closes at its 23:00 bar


def test_friday_daily_bar_closes_its_week() -> None:
    bars = make_bars(10, freq="1D", gaps=True)  # Mon 2021-01-04 .. Fri 2021-01-15
    cb = resample_causal(bars, TIMEFRAMES["1W"], 86400.0)
    assert cb.visible.tolist() == [-1, -1, -1, -1, 0, 0, 0, 0, 0, 1]


def _rsi_loop(close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    d = np.diff(close)
    gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)
    ag, al = gain[:n].mean(), loss[:n].mean()
    out[n] = 100 * ag / (ag + al)
    for i in range(n + 1, len(close)):
        ag = (ag * (n - 1) + gain[i - 1]) / n
        al = (al * (n - 1) + loss[i - 1]) / n
        out[i] = 100 * ag / (ag + al)
    return out


def test_wilder_rsi_atr_and_population_bollinger() -> None:
    bars = make_bars(80, seed=5)
    c, h, lo = (bars[k].to_numpy() for k in ("close", "high", "low"))
    np.testing.assert_allclose(ind.rsi(c), _rsi_loop(c, 14), rtol=1e-10)
    tr = np.maximum(h[1:] - lo[1:], np.maximum(abs(h[1:] - c[:-1]), abs(lo[1:] - c[:-1])))
    atr = [tr[:14].mean()]
    for x in tr[14:]:
        atr.append((atr[-1] * 13 + x) / 14)
    np.testing.assert_allclose(ind.atr(h, lo, c)[14:], atr, rtol=1e-10)
    assert np.isnan(ind.atr(h, lo, c)[13])
    up, mid, _ = ind.bollinger(c)
    assert mid[30] == pytest.approx(c[11:31].mean())
    assert up[30] - mid[30] == pytest.approx(2 * np.std(c[11:31]))  # ddof=0
    assert np.isnan(up[18])


def test_bar_index_helper_skips_weekends() -> None:
    assert (bar_index(200).day_of_week < 5).all()


def test_every_family_trains_on_a_registered_feature_set() -> None:
    """Feature-set names are defined once, here; each family's default (by mode, for llm) is one of them."""
    from strategies import FAMILIES, get_family

    for name in FAMILIES:
        family = get_family(name)
        modes = [{}, {"mode": "hybrid"}, {"mode": "pure_ml"}] if "mode" in family.model_param_names else [{}]
        for params in modes:
            assert family.default_feature_set(params) in FEATURE_SETS, (name, params)
