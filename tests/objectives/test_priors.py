"""DataDrivenOptimizer: causal regime statistics, the original rules, suggestions inside a space."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import indicators
from objectives.regime import data_driven_optimizer, regime_series, regime_statistics
from strategies import FAMILIES, DataDrivenOptimizer, RegimeStats, get_family
from strategies.exceptions import ConfigError, DataError
from strategies.priors import fit_point
from strategies.space import FixedParam, IntParam, LinearConstraint, SearchSpace

N = 300


def bars(returns: list[float] | np.ndarray, freq: str = "1min") -> pd.DataFrame:
    close = 100.0 * np.cumprod(1.0 + np.asarray(returns, dtype=float))
    stamps = pd.date_range("2024-01-01", periods=len(close), freq=freq)
    return pd.DataFrame({"timestamp": stamps, "close": close})


ZIGZAG = [0.05, -0.05 / 1.05] * (N // 2)  # volatile, no trend, RSI near 50
TREND = [0.006] * N  # steady climb: far above MA20, zero volatility
REVERSION = [0.01, -0.0005, -0.0005] * (N // 3)  # overbought, then small pull-backs on 2 bars of 3
QUIET = list(np.random.default_rng(0).normal(0.0, 0.001, N))


@pytest.mark.parametrize(
    ("returns", "fired"),
    [
        (ZIGZAG, ("high_volatility",)),
        (TREND, ("trending",)),
        (REVERSION, ("mean_reverting",)),
        (QUIET, ()),
    ],
)
def test_each_rule_fires_only_on_its_regime(returns: list[float], fired: tuple[str, ...]) -> None:
    assert data_driven_optimizer(bars(returns)).fired == fired


def test_rule_outputs_follow_the_original_table() -> None:
    vol = data_driven_optimizer(bars(ZIGZAG))
    assert vol.model_params == {
        "lstm_hidden_size": 128, "lstm_num_layers": 2, "transformer_d_model": 512, "transformer_nhead": 8,
        "transformer_num_layers": 6, "learning_rate": 5e-4, "dropout_rate": 0.2,
    }  # fmt: skip
    assert vol.thresholds == {"min_confidence": 0.7, "min_price_change": 0.008, "max_risk_ratio": 0.02}
    trend = data_driven_optimizer(bars(TREND))
    assert (trend.model_params["learning_rate"], trend.model_params["dropout_rate"]) == (1.5e-3, 0.1)
    assert trend.thresholds == {"min_confidence": 0.55, "min_price_change": 0.005, "max_risk_ratio": 0.03}
    rev = data_driven_optimizer(bars(REVERSION))
    assert rev.model_params["dropout_rate"] == 0.3
    assert rev.thresholds == {"min_confidence": 0.65, "min_price_change": 0.007, "max_risk_ratio": 0.02}


def test_later_rules_overwrite_earlier_ones() -> None:
    stats = RegimeStats(trend_strength=0.2, volatility=0.1, mean_reversion=0.9, n_bars=500)
    ddo = DataDrivenOptimizer(stats, 60)
    assert ddo.fired == ("high_volatility", "trending", "mean_reverting")
    assert ddo.model_params["learning_rate"] == 1.5e-3  # trending after high_volatility
    assert ddo.model_params["dropout_rate"] == 0.3  # mean_reverting after trending
    assert ddo.model_params["transformer_d_model"] == 512
    assert ddo.thresholds == {"min_confidence": 0.65, "min_price_change": 0.007, "max_risk_ratio": 0.03}


def test_comparisons_are_strict_and_zero_stays_zero() -> None:
    at_threshold = DataDrivenOptimizer(RegimeStats(0.05, 0.03, 0.5, 500), 60)
    assert at_threshold.fired == ()
    flat = regime_statistics(bars([0.0] * N))  # the original turned these 0.0 into defaults
    assert (flat.trend_strength, flat.volatility, flat.mean_reversion) == (0.0, 0.0, 0.0)
    assert DataDrivenOptimizer(flat, 60).fired == ()


def test_thresholds_scale_with_bar_length() -> None:
    hourly = data_driven_optimizer(bars(ZIGZAG, freq="1h"))
    assert hourly.bar_seconds == 3600.0
    assert hourly.scale == pytest.approx(math.sqrt(60.0))
    assert hourly.to_dict()["rule_thresholds"]["high_volatility"] == pytest.approx(0.03 * math.sqrt(60.0))
    assert hourly.fired == ()  # 5% moves are ordinary for hourly bars
    assert data_driven_optimizer(bars([0.3, -0.3 / 1.3] * (N // 2), freq="1h")).fired == ("high_volatility",)
    with pytest.raises(ConfigError, match="bar_seconds"):
        DataDrivenOptimizer(hourly.stats, 0.0)


def test_regime_rsi_is_the_feature_sets_rsi() -> None:
    """One RSI in the project: the regime statistics use objectives.indicators.rsi."""
    frame = bars(QUIET)
    np.testing.assert_array_equal(
        regime_series(frame)["rsi"].to_numpy(), indicators.rsi(frame["close"].to_numpy(), 14)
    )


def test_mean_reversion_uses_no_future_bar() -> None:
    close = bars(REVERSION)["close"]
    series = regime_series(bars(REVERSION))
    t = int(series["reversal"].first_valid_index()) + 5
    # the reversal at t depends on the return at t, never on the one at t + 1
    assert series["reversal"].iloc[t] == float(close.iloc[t] < close.iloc[t - 1]) * float(
        (series["rsi"].iloc[t - 1] > 70 or series["rsi"].iloc[t - 1] < 30)
        and close.iloc[t - 1] > close.iloc[t - 20 : t].mean()
    )


@settings(max_examples=15, deadline=None)
@given(t=st.integers(120, 250), seed=st.integers(0, 10_000))
def test_statistics_are_causal(t: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    past = np.asarray(REVERSION[:t]) + rng.normal(0.0, 0.0002, t)  # RSI setups on most bars
    a = bars(np.concatenate([past, np.abs(rng.normal(0.0, 0.01, 50))]))  # the future rises...
    b = bars(np.concatenate([past, -np.abs(rng.normal(0.0, 0.05, 80))]))  # ... or falls
    pd.testing.assert_frame_equal(regime_series(a).iloc[:t], regime_series(b).iloc[:t])
    assert regime_statistics(a.iloc[:t]) == regime_statistics(b.iloc[:t])
    prefix = regime_series(a).iloc[:t]
    assert regime_statistics(a.iloc[:t]).mean_reversion == pytest.approx(prefix["mean_reversion"].mean())


def test_bad_input() -> None:
    with pytest.raises(DataError, match="at least 100 bars"):
        regime_statistics(bars(QUIET[:99]))
    with pytest.raises(DataError, match="'close'"):
        regime_statistics(pd.DataFrame({"price": np.ones(200)}))
    with pytest.raises(DataError, match="bar_seconds"):
        data_driven_optimizer(pd.DataFrame({"close": np.ones(200)}))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("gpu", [False, True])
def test_suggestions_lie_inside_the_space(family: str, gpu: bool) -> None:
    fam = get_family(family)
    space = fam.gpu_space() if gpu else fam.default_space()
    for returns in (ZIGZAG, TREND, QUIET):
        points = data_driven_optimizer(bars(returns)).suggest(family, space, n=4, seed=1)
        assert len(points) == 4
        assert all(space.contains(p) for p in points)
        assert len({json.dumps(p, sort_keys=True) for p in points}) == 4


def test_suggestion_carries_the_rules() -> None:
    trend = data_driven_optimizer(bars(TREND))
    first = trend.suggest("lstm", get_family("lstm").default_space(), n=1)[0]
    assert (first["learning_rate"], first["dropout"]) == (1.5e-3, 0.1)
    assert first["hidden_size"] == 64 and first["num_layers"] == 2  # rule defaults, inside the space
    vol = data_driven_optimizer(bars(ZIGZAG))
    gpu = vol.suggest("transformer_enhanced", get_family("transformer_enhanced").gpu_space(), n=1)[0]
    assert (gpu["n_heads"], gpu["head_dim"], gpu["num_layers"], gpu["learning_rate"]) == (8, 64, 6, 5e-4)
    cpu = vol.suggest("moe_transformer", get_family("moe_transformer").default_space(), n=1)[0]
    assert (
        int(cpu["n_heads"]) * int(cpu["head_dim"]) == 64
    )  # 512: the top of the original range, so of the CPU's
    assert cpu["num_layers"] == 2  # 6 of 2..8 (log) -> 1.73 of 1..2
    quiet = data_driven_optimizer(bars(QUIET))
    small = quiet.suggest("moe_transformer", get_family("moe_transformer").default_space(), n=1)[0]
    # d_model 256 is the log-middle of the original 64..512: 40 of the CPU's 16..64, nearest 32
    assert int(small["n_heads"]) * int(small["head_dim"]) == 32 and small["num_layers"] == 1
    gated = get_family("lstm").default_space().with_overrides([FixedParam("hidden_size", 32)])
    space = SearchSpace((*gated.params, IntParam("patience", 5, 10)))
    with pytest.raises(KeyError):
        space["confidence_gate"]
    point = trend.suggest("lstm", space, n=2)[0]
    assert point["hidden_size"] == 32 and point["patience"] == 10  # fixed kept; recipe default 10


def test_confidence_gate_comes_from_min_confidence() -> None:
    from strategies.space import FloatParam

    space = get_family("lstm").default_space().with_overrides([FloatParam("confidence_gate", 0.3, 0.8)])
    vol = data_driven_optimizer(bars(ZIGZAG))  # min_confidence 0.7: the top of the anchors 0.55..0.7
    assert vol.suggest("lstm", space, n=1)[0]["confidence_gate"] == pytest.approx(0.8)
    quiet = data_driven_optimizer(bars(QUIET))  # the default 0.6: a third of the way
    assert quiet.suggest("lstm", space, n=1)[0]["confidence_gate"] == pytest.approx(0.3 + 0.5 / 3)


def test_suggestions_are_seeded() -> None:
    ddo = data_driven_optimizer(bars(QUIET))
    space = get_family("moe_transformer").default_space()
    assert ddo.suggest("moe_transformer", space, 3, seed=5) == ddo.suggest(
        "moe_transformer", space, 3, seed=5
    )
    assert ddo.suggest("moe_transformer", space, 3, seed=5) != ddo.suggest(
        "moe_transformer", space, 3, seed=6
    )


def test_fit_point_repairs_constraints() -> None:
    space = SearchSpace(
        (IntParam("num_experts", 1, 4), IntParam("top_k", 1, 4)),
        (LinearConstraint.less_equal("top_k", "num_experts"),),
    )
    assert fit_point(space, {"num_experts": 2, "top_k": 3}) == {"num_experts": 2, "top_k": 2}
    fixed = space.with_overrides([FixedParam("top_k", 3)])
    assert fit_point(fixed, {"num_experts": 2, "top_k": 1}) == {"num_experts": 3, "top_k": 3}


def test_report() -> None:
    ddo = data_driven_optimizer(bars(TREND))
    data = json.loads(json.dumps(ddo.to_dict()))
    assert data["fired_rules"] == ["trending"] and data["stats"]["n_bars"] == N
    text = ddo.describe()
    assert "trending" in text and "fired" in text and "min_confidence=0.55" in text
