from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives.backtest import actions_to_positions
from objectives.config import DataSpec, LabelSpec, ValidationSpec
from objectives.dataset import PreparedData, gather_windows, window_view
from objectives.prepare import normalize, prepare_data, train_bars
from tests.objectives.helpers import TinyModel, make_bars, synthetic_data, write_csv


def test_windows_are_views_ending_at_the_decision_bar() -> None:
    feats = torch.arange(40, dtype=torch.float32).reshape(20, 2)
    view = window_view(feats, 5)
    assert view.shape == (16, 5, 2) and view.data_ptr() == feats.data_ptr()  # a view, no copy
    batch = gather_windows(view, torch.tensor([4, 12, 19]), 5)
    for row, t in enumerate((4, 12, 19)):
        assert torch.equal(batch[row], feats[t - 4 : t + 1])


@settings(max_examples=40, deadline=None)
@given(fit_stop=st.integers(2, 80), seed=st.integers(0, 1000))
def test_scaler_depends_only_on_the_training_part(fit_stop: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=(100, 5))
    y = x.copy()
    y[fit_stop:] = rng.normal(-50.0, 9.0, size=(100 - fit_stop, 5))  # a different future
    nx, stats_x = normalize(x, "column", fit_stop)
    ny, stats_y = normalize(y, "column", fit_stop)
    assert stats_x == stats_y
    np.testing.assert_array_equal(nx[:fit_stop], ny[:fit_stop])
    np.testing.assert_allclose(stats_x["mean"], x[:fit_stop].mean(axis=0))


def test_row_normalisation_is_per_bar() -> None:
    x = np.array([[1.0, 2.0, 3.0], [10.0, 10.0, 10.0]])
    out, stats = normalize(x, "row", 1)
    np.testing.assert_allclose(out[0], (x[0] - 2.0) / (np.std(x[0]) + 1e-8), rtol=1e-6)
    assert np.all(out[1] == 0.0) and stats == {}


def test_constant_column_is_only_centred() -> None:
    out, stats = normalize(np.ones((10, 2)) * [5.0, 7.0], "column", 10)
    assert np.all(out == 0) and stats["std"] == [1.0, 1.0]


def test_save_and_load_share_arrays(tmp_path: Path) -> None:
    data = synthetic_data(200)
    data.save(tmp_path / "prep")
    loaded = PreparedData.load(tmp_path / "prep")
    for name in ("features", "labels", "profit", "close", "timestamps"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))
        assert isinstance(getattr(loaded, name), np.memmap)
    assert loaded.splits == data.splits and loaded.feature_names == data.feature_names
    assert loaded.periods_per_year == data.periods_per_year and loaded.max_seq_len == data.max_seq_len
    assert not loaded.features.flags.writeable
    assert not isinstance(PreparedData.load(tmp_path / "prep", mmap=False).features, np.memmap)


HOLDOUT = ValidationSpec(scheme="holdout")


def test_prepare_builtin_eurusd_default_spec() -> None:
    data = prepare_data(DataSpec(validation=HOLDOUT), feature_set="multi_timeframe", max_seq_len=100)
    assert data.features.shape == (6225, 46) and data.features.dtype == np.float32
    assert data.splits.sizes() == {"train": 4275, "val": 916, "test": 917}
    assert data.bar_seconds == 3600.0 and data.periods_per_year == pytest.approx(6280.6, rel=1e-4)
    train = data.features[: data.splits.train[1]]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-4)  # z-scored on the training part
    assert (data.labels[: data.splits.test[1]] >= 0).all() and (data.labels[-6:] == -1).all()
    assert data.meta["timeframes"] == ["4h", "1D", "1W"]
    bars = train_bars(DataSpec(validation=HOLDOUT), max_seq_len=100)
    assert (
        len(bars) == data.splits.train[1]
        and bars.index[-1].value == data.timestamps[data.splits.train[1] - 1]
    )


def _positions(data: PreparedData, model: TinyModel, bars: np.ndarray, seq_len: int) -> np.ndarray:
    view = window_view(torch.from_numpy(np.array(data.features)), seq_len)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(gather_windows(view, torch.from_numpy(bars), seq_len)).logits, -1)
    return actions_to_positions(probs.numpy(), confidence_gate=0.34, allow_short=True)


@pytest.mark.parametrize("feature_set", ["ohlcv", "basic", "multi_timeframe"])
def test_backtest_decisions_do_not_see_the_future(tmp_path: Path, feature_set: str) -> None:
    """Perturbing bars after t (t in validation/test) leaves every decision at <= t unchanged."""
    bars = make_bars(700, seed=4)
    spec = DataSpec(source=str(tmp_path / "a.csv"), label=LabelSpec(horizon=3))
    write_csv(bars, tmp_path / "a.csv")
    base = prepare_data(spec, feature_set=feature_set, max_seq_len=20)
    t = base.splits.val[0] + 40
    other = bars.copy()
    other.iloc[t + 1 :] = make_bars(700, seed=9, start_price=50.0).iloc[t + 1 :].to_numpy()
    write_csv(other, tmp_path / "b.csv")
    changed = prepare_data(
        spec.model_copy(update={"source": str(tmp_path / "b.csv")}), feature_set=feature_set, max_seq_len=20
    )
    model = TinyModel(base.n_features, seed=1)
    decided = np.arange(base.splits.val[0], t + 1)
    np.testing.assert_array_equal(
        _positions(base, model, decided, 20), _positions(changed, model, decided, 20)
    )
    later = np.arange(t + 1, base.splits.test[1])
    assert not np.array_equal(base.features[later], changed.features[later])  # the future did change


def test_prepare_with_user_feature_columns(tmp_path: Path) -> None:
    bars = make_bars(400, seed=2)
    bars["signal"] = np.arange(400, dtype=float)
    bars["other"] = np.sin(np.arange(400))
    write_csv(bars, tmp_path / "user.csv")
    spec = DataSpec(
        source=str(tmp_path / "user.csv"), feature_set="columns", feature_columns=("signal", "other")
    )
    data = prepare_data(spec, feature_set="columns", max_seq_len=10)
    assert data.feature_names == ("signal", "other") and data.n_features == 2
    stop = data.splits.train[1]
    expected = (np.arange(400) - np.arange(stop).mean()) / np.arange(stop).std()
    np.testing.assert_allclose(data.features[:, 0], expected, rtol=1e-5)


def test_facts_date_every_split_fold_and_fit_in_order(tmp_path: Path) -> None:
    import pandas as pd

    bars = make_bars(900, seed=5)
    write_csv(bars, tmp_path / "bars.csv")
    spec = DataSpec(
        source=str(tmp_path / "bars.csv"), validation=ValidationSpec(scheme="walk_forward", folds=3)
    )
    data = prepare_data(spec, feature_set="ohlcv", max_seq_len=10)
    facts = data.facts()
    assert facts["input_size"] == data.n_features and facts["splits"] == data.splits.sizes()
    assert len(facts["folds"]) == 3 and "fit" not in facts
    spans = [facts["split_dates"][k] for k in ("train", "val", "test")]
    for fold in facts["folds"]:
        spans.append(fold["val"])
        assert pd.Timestamp(fold["train"][1]) < pd.Timestamp(fold["val"][0])  # trained before it trades
    for first, last in spans:
        assert pd.Timestamp(first) <= pd.Timestamp(last)
    # the first fold's first traded bar is the validation split's first bar; the final fit ends before test
    assert facts["folds"][0]["val"][0] == facts["split_dates"]["val"][0]
    assert pd.Timestamp(facts["final_fit"]["train"][1]) < pd.Timestamp(facts["split_dates"]["test"][0])
    start, stop = data.splits.test
    assert data.dates({"test": (start, stop), "none": (stop, stop)}) == {
        "test": [str(pd.Timestamp(data.timestamps[start])), str(pd.Timestamp(data.timestamps[stop - 1]))]
    }
