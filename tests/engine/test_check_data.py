"""``boengine check-data``: planted look-ahead is named, the built-in feature sets pass on the built-in data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.check_data import check_data
from engine.spec import parse_spec
from objectives.features import FEATURE_SETS
from tests.engine.test_bad_input import _keep_signal_handlers, cli, snapshot  # noqa: F401  (fixture)
from tests.objectives.helpers import make_bars, write_csv


def spec_raw(**data: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((Path(__file__).parents[2] / "experiments" / "smoke.json").read_text())
    raw["data"].update(data)
    return raw


def bars_with_columns(n: int = 1200) -> pd.DataFrame:
    """Bars with a causal column (the last bar's return) and tomorrow's close (look-ahead)."""
    bars = make_bars(n, seed=4)
    close = bars["close"].to_numpy()
    bars["past_ret"] = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0])
    bars["next_close"] = np.concatenate([close[1:], close[-1:]])  # the last bar has no tomorrow
    return bars


def write_spec(tmp_path: Path, bars: pd.DataFrame, columns: list[str]) -> Path:
    write_csv(bars, tmp_path / "bars.csv")
    spec = tmp_path / "spec.json"
    raw = spec_raw(source=str(tmp_path / "bars.csv"), feature_set="columns", feature_columns=columns)
    raw["data"].pop("max_bars")
    spec.write_text(json.dumps(raw))
    return spec


def test_tomorrows_close_as_a_column_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, bars_with_columns(), ["past_ret", "next_close"])
    before = snapshot(tmp_path)
    code, out, err = cli(monkeypatch, capsys, "check-data", str(spec), "--cuts", "3")
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec}: "), err
    assert "feature columns that look ahead: next_close (" in lines[0] and "past_ret" not in lines[0]
    assert "fix or drop those columns" in lines[0]
    assert snapshot(tmp_path) == before
    code, out, err = cli(monkeypatch, capsys, "validate", str(spec))  # the cheap part: no look-ahead test
    assert (code, err) == (0, ""), err


def test_the_causal_column_alone_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, bars_with_columns(), ["past_ret"])
    code, out, err = cli(monkeypatch, capsys, "check-data", str(spec), "--cuts", "3")
    assert (code, err) == (0, ""), err
    assert "look-ahead (3 cut points" in out and f"{spec}: ok" in out


def test_a_computed_feature_that_reads_the_next_bar_is_found_by_perturbation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def planted(ctx: Any) -> dict[str, np.ndarray]:
        close = ctx.close
        return {
            "ret_1": np.concatenate([[0.0], close[1:] / close[:-1] - 1.0]),
            "next_ret": np.concatenate([close[1:] / close[:-1] - 1.0, [0.0]]),  # reads bar t + 1
        }

    monkeypatch.setitem(FEATURE_SETS, "planted_future", planted)
    spec = parse_spec(spec_raw(feature_set="planted_future"))
    found = check_data(spec, cuts=2)
    assert list(found.lookahead) == ["next_ret"] and len(found.cuts) == 2
    assert "changed when the bars after" in found.lookahead["next_ret"]
    assert not found.ok and "next_ret" in found.error()
    assert check_data(spec, cuts=0).ok  # validate's cheap part does not perturb


@pytest.mark.parametrize("source", ["builtin:eurusd_1h", "builtin:msft_1d"])
@pytest.mark.parametrize("feature_set", ["ohlcv", "basic", "multi_timeframe"])
def test_the_built_in_feature_sets_pass_on_the_built_in_data(source: str, feature_set: str) -> None:
    found = check_data(parse_spec(spec_raw(source=source, feature_set=feature_set, max_bars=1500)), cuts=2)
    assert found.ok, found.error()
    assert found.n_bars == 1500 and len(found.cuts) == 2 and found.gaps > 0  # weekends


def test_constant_columns_and_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bars = bars_with_columns()
    bars["flag"] = 1.0
    bars = bars.drop(bars.index[300:540])  # ten days missing
    spec = write_spec(tmp_path, bars, ["past_ret", "flag"])
    code, _, err = cli(monkeypatch, capsys, "validate", str(spec))
    assert code == 2 and "constant feature columns: flag;" in err and len(err.strip().splitlines()) == 1
    found = check_data(parse_spec(json.loads(spec.read_text())), cuts=0)
    assert found.constant == ("flag",)
    hole = found.largest_gaps[0]
    assert hole[0] == str(bars.index[299]) and hole[2] > 10 * 24  # the longest gap first, in hours
    assert found.gaps > 1  # and the weekends


def test_duplicated_timestamps_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bars = bars_with_columns()
    index = bars.index.to_numpy().copy()
    index[11] = index[10]
    bars.index = pd.DatetimeIndex(index, name="timestamp")
    spec = write_spec(tmp_path, bars, ["past_ret"])
    code, _, err = cli(monkeypatch, capsys, "check-data", str(spec))
    assert code == 2 and "duplicate timestamps" in err and len(err.strip().splitlines()) == 1
