from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from objectives.config import DataSpec, SplitSpec, ValidationSpec
from objectives.data import infer_bar_seconds, infer_periods_per_year, load_bars, load_spec_bars
from objectives.dataset import check_length
from objectives.prepare import prepare_data
from strategies.exceptions import DataError
from tests.objectives.helpers import make_bars, write_csv

HOLDOUT = ValidationSpec(scheme="holdout")

GOOD = """timestamp,open,high,low,close,volume
2021-01-04 00:00:00,1.0,1.2,0.9,1.1,10
2021-01-04 01:00:00,1.1,1.3,1.0,1.2,11
2021-01-04 02:00:00,1.2,1.4,1.1,1.3,12
"""


def _csv(tmp_path: Path, text: str, name: str = "bars.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _rejects(tmp_path: Path, text: str, match: str, **kwargs: object) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(DataError, match=match) as info:
        load_bars(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "bars.csv" in message and "\n" not in message


def _edit(line: int, new: str) -> str:
    rows = GOOD.splitlines()
    rows[line] = new
    return "\n".join(rows) + "\n"


def test_builtin_sources_load_clean() -> None:
    for source, n, seconds, ppy in (
        ("builtin:eurusd_1h", 6225, 3600.0, 6281.0),
        ("builtin:msft_1d", 7983, 86400.0, 252.1),
    ):
        bars = load_bars(source)
        assert len(bars) == n
        assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
        assert all(bars.dtypes == np.float64)
        assert isinstance(bars.index, pd.DatetimeIndex) and bars.index.is_monotonic_increasing
        assert infer_bar_seconds(bars.index) == seconds
        assert infer_periods_per_year(bars.index) == pytest.approx(ppy, rel=1e-3)


def test_eurusd_first_bar_parsed_with_its_format() -> None:
    bars = load_bars("builtin:eurusd_1h")
    assert bars.index[0] == pd.Timestamp("2017-01-01 22:00")
    assert bars.iloc[0]["close"] == pytest.approx(1.05227)


def test_good_csv_and_max_bars(tmp_path: Path) -> None:
    bars = load_bars(_csv(tmp_path, GOOD))
    assert bars["close"].tolist() == [1.1, 1.2, 1.3]
    assert len(load_bars(_csv(tmp_path, GOOD), max_bars=2)) == 2


def test_original_schema_close_is_price_current(tmp_path: Path) -> None:
    text = (
        "timestamp,price_current,volume_1m,rsi_1m\n2021-01-04 00:00,10.0,5,50\n2021-01-04 00:01,10.5,6,51\n"
    )
    bars = load_bars(_csv(tmp_path, text))
    assert bars["close"].tolist() == [10.0, 10.5]
    assert bars["open"].tolist() == bars["high"].tolist() == bars["low"].tolist() == [10.0, 10.5]
    assert bars["volume"].tolist() == [5.0, 6.0]


def test_column_mapping_extra_columns_and_format(tmp_path: Path) -> None:
    text = "When,O,H,L,C,V,signal\n04.01.2021 00:00,1,2,0.5,1.5,3,0.1\n04.01.2021 01:00,1,2,0.5,1.5,3,0.2\n"
    mapping = {"timestamp": "When", "open": "O", "high": "H", "low": "L", "close": "C", "volume": "V"}
    bars = load_bars(
        _csv(tmp_path, text), columns=mapping, timestamp_format="%d.%m.%Y %H:%M", extra_columns=["signal"]
    )
    assert bars.index[1] == pd.Timestamp("2021-01-04 01:00")
    assert bars["signal"].tolist() == [0.1, 0.2]


def test_parquet_with_datetime_index_and_epoch_csv(tmp_path: Path) -> None:
    bars = make_bars(50)
    bars.to_parquet(tmp_path / "bars.parquet")
    loaded = load_bars(str(tmp_path / "bars.parquet"))
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False)
    epoch = bars.reset_index(drop=True)
    epoch.insert(0, "timestamp", bars.index.asi8 // 10**9)
    epoch.to_csv(tmp_path / "epoch.csv", index=False)
    assert (load_bars(str(tmp_path / "epoch.csv")).index == bars.index).all()


def test_timezone_aware_timestamps_become_utc(tmp_path: Path) -> None:
    text = GOOD.replace("00:00:00,", "00:00:00+02:00,").replace("01:00:00,", "01:00:00+02:00,")
    text = text.replace("02:00:00,", "02:00:00+02:00,")
    assert load_bars(_csv(tmp_path, text)).index[0] == pd.Timestamp("2021-01-03 22:00")


def test_spec_helper(tmp_path: Path) -> None:
    spec = DataSpec(source=_csv(tmp_path, GOOD), max_bars=100)
    assert len(load_spec_bars(spec)) == 3


# --- one test per rejected condition ------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_bars(str(tmp_path / "nope.csv"))


def test_unknown_builtin() -> None:
    with pytest.raises(DataError, match="known: builtin:eurusd_1h"):
        load_bars("builtin:gold")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "bars.json"
    path.write_text("{}")
    with pytest.raises(DataError, match="unsupported file type"):
        load_bars(str(path))


def test_missing_close_column(tmp_path: Path) -> None:
    _rejects(tmp_path, GOOD.replace(",close,", ",last,"), r"missing columns \['close'\]")


def test_missing_timestamp_column(tmp_path: Path) -> None:
    _rejects(tmp_path, GOOD.replace("timestamp,", "when,"), r"missing columns \['timestamp'\]")


def test_partial_ohl_columns(tmp_path: Path) -> None:
    _rejects(tmp_path, GOOD.replace(",high,", ",hi,"), r"missing columns \['high'\]")


def test_mapped_column_not_found(tmp_path: Path) -> None:
    _rejects(tmp_path, GOOD, "column 'Last' \\(mapped to close\\) not found", columns={"close": "Last"})


def test_unknown_mapping_key(tmp_path: Path) -> None:
    _rejects(tmp_path, GOOD, "unknown keys", columns={"price": "close"})


def test_unparseable_timestamps(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "yesterday,1.1,1.3,1.0,1.2,11"), "timestamp")


def test_wrong_timestamp_format(tmp_path: Path) -> None:
    _rejects(tmp_path, GOOD, "cannot parse timestamps", timestamp_format="%d.%m.%Y")


def test_non_increasing_timestamps(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(3, "2021-01-04 00:30:00,1.2,1.4,1.1,1.3,12"), "timestamps must increase")


def test_duplicate_timestamps(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(3, "2021-01-04 01:00:00,1.2,1.4,1.1,1.3,12"), "duplicate timestamps")


def test_nan_value(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,1.1,1.3,1.0,,11"), "'close' has NaN/inf")


def test_inf_value(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,1.1,inf,1.0,1.2,11"), "'high' has NaN/inf")


def test_non_numeric_value(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,1.1,1.3,1.0,abc,11"), "'close' is not numeric")


def test_high_below_low(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,1.1,1.0,1.3,1.2,11"), "high must be >= low")


def test_close_outside_range(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,1.1,1.3,1.0,1.5,11"), "close must lie within")


def test_open_outside_range(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,0.5,1.3,1.0,1.2,11"), "open must lie within")


def test_non_positive_price(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,0,0,0,0,11"), "prices must be > 0")


def test_negative_volume(tmp_path: Path) -> None:
    _rejects(tmp_path, _edit(2, "2021-01-04 01:00:00,1.1,1.3,1.0,1.2,-1"), "volume must be >= 0")


def test_too_few_rows_for_seq_len_horizon_and_splits(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    write_csv(make_bars(150), path)
    with pytest.raises(DataError, match=r"short\.csv: 150 bars are too few"):
        prepare_data(DataSpec(source=str(path), validation=HOLDOUT), feature_set="basic", max_seq_len=60)
    prepare_data(
        DataSpec(source=str(path), validation=HOLDOUT), feature_set="basic", max_seq_len=10
    )  # enough


def test_check_length_boundary() -> None:
    splits = SplitSpec()
    check_length(300, 30, 6, splits)
    with pytest.raises(DataError, match="train/val/test get"):
        check_length(120, 30, 6, splits)
