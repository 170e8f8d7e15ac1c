from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives.config import LabelSpec, SplitSpec
from objectives.dataset import split_ranges
from objectives.labels import future_profits, make_labels


def test_scheme_a_hand_computed() -> None:
    close = np.array([100.0, 101.0, 99.5, 100.0, 100.0])
    spec = LabelSpec(scheme="A", horizon=2, profit_threshold=0.005, min_diff=0.003)
    labels, profit = make_labels(close, spec)
    # t=0: buy 1%, sell 0.5% -> long; t=1: buy -0.99%, sell 1.485% -> short;
    # t=2: buy 0.5025% > 0.5%, sell -0.5025% -> long; t=3, 4: horizon past the end
    assert labels.tolist() == [1, 2, 1, -1, -1]
    np.testing.assert_allclose(profit, [0.01, 1.5 / 101, 0.5 / 99.5, 0, 0], rtol=1e-6)
    assert labels.dtype == np.int64 and profit.dtype == np.float32


def test_hold_when_sides_are_too_close_or_below_threshold() -> None:
    spec = LabelSpec(horizon=2, profit_threshold=0.005, min_diff=0.003)
    labels, profit = make_labels(np.array([100.0, 101.0, 99.0, 99.0, 99.0]), spec)
    assert labels[0] == 0 and profit[0] == 0  # buy 1% = sell 1%: |diff| < min_diff
    labels, _ = make_labels(np.array([100.0, 100.4, 100.0, 100.0]), spec)
    assert labels[0] == 0  # buy 0.4% beats sell 0% by > min_diff but is below the threshold


def test_scheme_a_position_aware_branch_and_scheme_b() -> None:
    close = np.array([100.0, 102.0, 99.0, 99.0])
    a = LabelSpec(scheme="A", horizon=2, profit_threshold=0.005, min_diff=0.003)
    flat, _ = make_labels(close, a)
    held, profit = make_labels(close, a, position=np.array([1, 0, 0, 0]))
    assert flat[0] == 1  # buy 2% vs sell 1%
    assert held[0] == 2 and profit[0] == pytest.approx(0.01)  # long open: sell first when it pays
    b = LabelSpec(scheme="B", horizon=2, profit_threshold=0.005, min_diff=0.003)
    assert make_labels(close, b, position=np.array([1, 0, 0, 0]))[0][0] == 1  # B is symmetric


def test_future_profits_match_a_loop() -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 60)))
    buy, sell = future_profits(close, 7)
    for t in range(60 - 7):
        window = close[t + 1 : t + 8]
        assert buy[t] == pytest.approx((window.max() - close[t]) / close[t])
        assert sell[t] == pytest.approx((close[t] - window.min()) / close[t])
    assert np.isnan(buy[-7:]).all() and not np.isnan(buy[-8])


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(100, 5000),
    seq_len=st.integers(1, 60),
    horizon=st.integers(1, 30),
    train=st.floats(0.3, 0.7),
    test=st.sampled_from([0.0, 0.1, 0.2]),
)
def test_splits_are_chronological_with_purge_gaps(
    n: int, seq_len: int, horizon: int, train: float, test: float
) -> None:
    spec = SplitSpec(train=train, val=1 - train - test, test=test)
    s = split_ranges(n, seq_len, horizon, spec)
    assert s.train[0] == seq_len - 1  # the first bar with a full window
    assert s.train[0] <= s.train[1] <= s.val[0] <= s.val[1] <= s.test[0] <= s.test[1]
    # no training label (looking H bars ahead) reaches the first validation decision bar
    if s.train[1] > s.train[0] and s.val[1] > s.val[0]:
        assert (s.train[1] - 1) + horizon < s.val[0]
    if test > 0 and s.val[1] > s.val[0] and s.test[1] > s.test[0]:
        assert (s.val[1] - 1) + horizon < s.test[0]
    # every decision bar has a label
    for name in ("train", "val", "test"):
        bars = s.bars(name)
        assert len(bars) == 0 or bars[-1] + horizon <= n - 1
    if test == 0:
        assert s.test[0] == s.test[1]


def test_split_sizes_hand_computed() -> None:
    s = split_ranges(1000, 10, 5, SplitSpec(train=0.7, val=0.15, test=0.15))
    # usable [9, 995): 986 bars, minus 2 gaps of 5 = 976 -> 683 / 146 / 147
    assert (s.train, s.val, s.test) == ((9, 692), (697, 843), (848, 995))
    assert s.bars("val")[0] == 697 and len(s.bars("test")) == 147
