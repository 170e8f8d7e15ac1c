"""CPCV: groups and paths, purge and embargo at every boundary, no look-ahead from a split's test groups."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from objectives import EvalSettings, prepare_data
from objectives.config import DataSpec, LabelSpec, SplitSpec, ValidationSpec
from objectives.cpcv import (
    check_cpcv,
    cpcv_ranges,
    evaluate_cpcv,
    final_epochs,
    n_paths,
    path_standard_errors,
    path_table,
    purged_train_ranges,
    split_features,
    train_split,
)
from objectives.dataset import PreparedData, walk_forward_ranges
from objectives.noise import bootstrap_standard_errors
from strategies.exceptions import DataError
from tests.objectives.helpers import make_bars, write_csv

PARAMS = {"hidden_size": 8, "num_layers": 1, "seq_len": 8, "batch_size": 64, "predict_profit": False}
SETTINGS = EvalSettings(max_epochs=2, seed=3, device="cpu")


def _cpcv(groups: int, test_groups: int, **kw: Any) -> ValidationSpec:
    return ValidationSpec(scheme="cpcv", groups=groups, test_groups=test_groups, **kw)


# --- groups and paths --------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(4, 2), (6, 2), (5, 3), (6, 1), (7, 4)])
def test_every_group_is_tested_c_n1_k1_times_and_there_are_phi_paths(n: int, k: int) -> None:
    _, groups, splits, _ = cpcv_ranges(3000, 8, 3, SplitSpec(), _cpcv(n, k))
    assert len(groups) == n and len(splits) == math.comb(n, k)
    assert [s.test_groups for s in splits] == list(itertools.combinations(range(n), k))
    tested = [sum(g in s.test_groups for s in splits) for g in range(n)]
    assert tested == [math.comb(n - 1, k - 1)] * n
    phi = n_paths(n, k)
    assert phi == k * math.comb(n, k) // n  # φ = k/N · C(N, k)
    table = path_table(n, k)
    assert table.shape == (phi, n)
    # every path takes each group from a split that tests it, and every (split, test group)
    # piece goes to exactly one path
    assert all(g in splits[table[p, g]].test_groups for p in range(phi) for g in range(n))
    pieces = sorted((int(table[p, g]), g) for p in range(phi) for g in range(n))
    assert pieces == sorted((j, g) for j, s in enumerate(splits) for g in s.test_groups)


def test_paths_are_skfolios_path_ids() -> None:
    """skfolio's ``CombinatorialPurgedCV(n_folds=4, n_test_folds=2).get_path_ids()``, written by hand:
    splits (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); the p-th split testing a group supplies path p."""
    skfolio_path_ids = [[0, 0], [1, 0], [2, 0], [1, 1], [2, 1], [2, 2]]  # split x its test groups
    table = path_table(4, 2)
    combos = list(itertools.combinations(range(4), 2))
    for j, c in enumerate(combos):
        for i, g in enumerate(c):
            assert table[skfolio_path_ids[j][i], g] == j


def test_groups_tile_the_pre_test_bars_and_the_test_split_is_walk_forwards() -> None:
    splits, groups, _, final = cpcv_ranges(3000, 20, 6, SplitSpec(), _cpcv(6, 2, embargo_bars=4))
    wf, _, wf_final = walk_forward_ranges(3000, 20, 6, SplitSpec(), ValidationSpec(embargo_bars=4))
    assert groups[0][0] == splits.val[0] == 19 and groups[-1][1] == splits.val[1] == wf.val[1]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(groups))
    assert {b - a for a, b in groups[:-1]} == {(splits.val[1] - splits.val[0]) // 6}
    assert splits.test == wf.test and final.train == (19, wf_final.train[1])  # the same held-out bars


# --- purge and embargo ---------------------------------------------------------------------------


def _skfolio_train(n_obs: int, n_folds: int, n_test: int, purged: int, embargo: int) -> list[list[int]]:
    """The training indices of each split as skfolio's ``CombinatorialPurgedCV.split`` documents them
    (groups of n // N, the last one longer; ``purged`` before and ``purged + embargo`` after
    every run of test groups), computed here independently of :mod:`objectives.cpcv`."""
    fold = np.minimum(np.arange(n_obs) // (n_obs // n_folds), n_folds - 1)
    out = []
    for test in itertools.combinations(range(n_folds), n_test):
        is_test = np.isin(fold, test)
        drop = is_test.copy()
        for t in range(n_obs):
            if is_test[t] and (t == 0 or not is_test[t - 1]):  # a run starts at t
                drop[max(0, t - purged) : t] = True
            if is_test[t] and (t == n_obs - 1 or not is_test[t + 1]):  # a run ends at t
                drop[t + 1 : t + 1 + purged + embargo] = True
        out.append([int(t) for t in np.flatnonzero(~drop)])
    return out


def _bars(ranges: list[tuple[int, int]]) -> list[int]:
    return [t for a, b in ranges for t in range(a, b)]


def test_skfolios_documented_examples() -> None:
    """The three examples of skfolio's ``CombinatorialPurgedCV`` docstring (12 observations, 3 folds, 2
    test folds), written out by hand; our purge is the label horizon."""
    groups = ((0, 4), (4, 8), (8, 12))
    expected = {
        (0, 0): [[8, 9, 10, 11], [4, 5, 6, 7], [0, 1, 2, 3]],
        (1, 0): [[9, 10, 11], [5, 6], [0, 1, 2]],  # purged_size=1
        (0, 1): [[9, 10, 11], [5, 6, 7], [0, 1, 2, 3]],  # embargo_size=1
    }
    for (purge, embargo), trains in expected.items():
        got = [
            _bars(purged_train_ranges(groups, t, purge, embargo)) for t in itertools.combinations(range(3), 2)
        ]
        assert got == trains, (purge, embargo)


@pytest.mark.parametrize(
    ("n", "k", "horizon", "embargo"), [(4, 2, 3, 0), (6, 2, 6, 5), (5, 3, 1, 12), (6, 1, 4, 2), (7, 4, 2, 0)]
)
def test_purge_and_embargo_hold_at_every_boundary_of_every_split(
    n: int, k: int, horizon: int, embargo: int
) -> None:
    parts, groups, splits, _ = cpcv_ranges(4000, 12, horizon, SplitSpec(), _cpcv(n, k, embargo_bars=embargo))
    first = parts.val[0]
    reference = _skfolio_train(parts.val[1] - first, n, k, horizon, embargo)
    gap = horizon + embargo
    for s, ref in zip(splits, reference, strict=True):
        train, select = s.fit.train_bars(), s.fit.select_bars()
        assert np.all(np.diff(train) > 0) and np.all(np.diff(select) > 0) and len(train) >= 32
        for g in s.test_groups:
            a, b = groups[g]
            for bars in (train, select):
                assert not np.any((bars >= a) & (bars < b))  # nothing of a test group
                assert not np.any((bars < a) & (bars + horizon >= a))  # no label reaches into it
                assert not np.any((bars >= b) & (bars < b + gap))  # purged and embargoed after it
        # the selection slice: the last 20 % of the kept bars, after every bar trained on, purged from them
        ref_bars = set((np.asarray(ref) + first).tolist())
        assert len(select) == max(int(len(ref_bars) * 0.2), 16) and select[-1] == max(ref_bars)
        assert select[0] - train[-1] > gap
        # nothing else is dropped: training bars, slice and the slice's purge gap are skfolio's train set
        slice_gap = {t for t in ref_bars if train[-1] < t < select[0]}
        assert len(slice_gap) <= gap
        assert set(train.tolist()) | set(select.tolist()) | slice_gap == ref_bars


def test_the_boundary_check_can_fail() -> None:
    """Unpurged training ranges (horizon 0 in place of 3) put labels into a test group."""
    groups = ((0, 50), (50, 100), (100, 150), (150, 200))
    leaky = _bars(purged_train_ranges(groups, (1, 2), 0, 0))
    assert any(t < 50 and t + 3 >= 50 for t in leaky)
    purged = _bars(purged_train_ranges(groups, (1, 2), 3, 0))
    assert not any(t < 50 and t + 3 >= 50 for t in purged)


# --- spec checks -----------------------------------------------------------------------------------


def test_too_few_bars_per_group_names_the_field() -> None:
    with pytest.raises(
        DataError, match=r"x\.csv: 400 bars, data\.validation\.groups 16: groups of 19 decision"
    ):
        check_cpcv(400, 20, 6, SplitSpec(), _cpcv(16, 2), source="x.csv")
    with pytest.raises(
        DataError,
        match=r"data\.validation\.test_groups 5: the split trading groups \[0, 1, 2, 3, 4\] trains on 12",
    ):
        check_cpcv(800, 8, 3, SplitSpec(), _cpcv(6, 5, embargo_bars=40), source="x.csv")
    check_cpcv(3000, 20, 6, SplitSpec(), _cpcv(6, 2), source="x.csv")  # room enough


@pytest.mark.parametrize(
    ("validation", "message"),
    [
        ({"scheme": "cpcv", "folds": 3}, "folds: walk_forward settings"),
        ({"scheme": "cpcv", "window": "rolling"}, "window: walk_forward settings"),
        ({"scheme": "walk_forward", "groups": 4}, "groups: cpcv settings"),
        ({"scheme": "holdout", "test_groups": 1}, "test_groups: cpcv settings"),
        ({"scheme": "holdout", "embargo_bars": 3}, "embargo_bars: walk_forward settings"),
        ({"scheme": "cpcv", "groups": 4, "test_groups": 4}, "test_groups 4 must be below groups 4"),
        ({"scheme": "cpcv", "groups": 20, "test_groups": 10}, "184756 splits"),
    ],
)
def test_keys_of_the_scheme(validation: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValidationSpec(**validation)
    assert ValidationSpec(scheme="cpcv", embargo_bars=3, select_fraction=0.3).groups == 6


# --- prepared data ---------------------------------------------------------------------------------


def _data(tmp_path: Path, bars: Any, name: str, **validation: Any) -> PreparedData:
    path = tmp_path / f"{name}.csv"
    write_csv(bars, path)
    v = {"groups": 4, "test_groups": 2, **validation}
    spec = DataSpec(
        source=str(path), label=LabelSpec(horizon=3), validation=ValidationSpec(scheme="cpcv", **v)
    )
    return prepare_data(spec, feature_set="ohlcv", max_seq_len=8)


def test_prepared_data_round_trip_and_walk_forward_files_unchanged(tmp_path: Path) -> None:
    bars = make_bars(1400, seed=5)
    data = _data(tmp_path, bars, "c", embargo_bars=2)
    assert data.fit is None and data.folds == () and len(data.cpcv) == 6 and len(data.groups) == 4
    data.save(tmp_path / "c")
    back = PreparedData.load(tmp_path / "c")
    assert back.cpcv == data.cpcv and back.groups == data.groups and back.final == data.final
    path = tmp_path / "w.csv"
    write_csv(bars, path)
    wf = prepare_data(
        DataSpec(source=str(path), label=LabelSpec(horizon=3)), feature_set="ohlcv", max_seq_len=8
    )
    wf.save(tmp_path / "w")
    info = json.loads((tmp_path / "w" / "meta.json").read_text())
    assert info["format_version"] == 3 and "cpcv" not in info and "groups" not in info
    assert all("more_train" not in f for f in info["folds"])
    assert PreparedData.load(tmp_path / "w").cpcv == ()


def test_a_split_standardises_on_its_own_training_bars(tmp_path: Path) -> None:
    data = _data(tmp_path, make_bars(1400, seed=5), "s")
    fit = data.cpcv[1].fit
    x = split_features(data, fit).features[fit.train_bars()].astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0)[x.std(axis=0) > 0], 1.0, atol=1e-4)
    # the study's scaler (fitted on every pre-test bar, test groups included) does not matter:
    # another affine normalisation of the columns gives the same inputs up to float rounding
    rng = np.random.default_rng(0)
    scale, shift = rng.uniform(0.5, 2.0, data.n_features), rng.normal(0, 1, data.n_features)
    other = dataclasses.replace(data, features=(data.features * scale + shift).astype(np.float32))
    np.testing.assert_allclose(
        split_features(other, fit).features, split_features(data, fit).features, atol=2e-4
    )
    # and the check can fail: the study's own features are not standardised on the split's bars
    assert not np.allclose(data.features[fit.train_bars()].mean(axis=0), 0.0, atol=1e-3)


# --- no look-ahead from the test groups ---------------------------------------------------------------


def _flip_test_groups(data: PreparedData, j: int) -> PreparedData:
    """``data`` with other closes, other feature rows and long/short labels swapped inside the test
    groups of split j."""
    rng = np.random.default_rng(0)
    features, labels, close = data.features.copy(), data.labels.copy(), data.close.copy()
    for g in data.cpcv[j].test_groups:
        lo, hi = data.groups[g]
        close[lo:hi] *= np.exp(rng.normal(0, 0.02, hi - lo))
        features[lo:hi] = rng.normal(0, 1, (hi - lo, data.n_features))
        block = labels[lo:hi]
        labels[lo:hi] = np.where(block == 1, 2, np.where(block == 2, 1, block))
    return dataclasses.replace(data, features=features, labels=labels, close=close)


def _split_state(data: PreparedData, j: int, *, select_on_test: bool = False) -> dict[str, torch.Tensor]:
    """The kept weights of split j; ``select_on_test``: choose its epoch on its first test group, as a
    split that leaks would."""
    split = data.cpcv[j]
    if select_on_test:
        leaky = dataclasses.replace(split.fit, select=data.groups[split.test_groups[0]], more_select=())
        split = dataclasses.replace(split, fit=leaky)
    # a high learning rate: the selection loss is not monotone, so the epoch choice matters
    params = {**PARAMS, "learning_rate": 0.03}
    fit = train_split("lstm", params, data, split, EvalSettings(max_epochs=4, seed=0, device="cpu"))
    return fit.trained.best_state


def test_prices_features_and_labels_inside_a_splits_test_groups_do_not_change_its_weights(
    tmp_path: Path,
) -> None:
    """Split j chooses its epoch, patience and schedule without its test groups, and no training window
    reads them (the embargo covers seq_len): other closes, feature rows and swapped labels inside them
    leave its trained weights bit-identical. Prepared arrays are perturbed, not raw prices: the
    study's scaler sees every pre-test bar, and the split standardises again on its own training bars."""
    a = _data(tmp_path, make_bars(1400, seed=5), "a", embargo_bars=8)
    j = 3  # tests groups 1 and 2: training bars on both sides
    assert a.cpcv[j].test_groups == (1, 2)
    b = _flip_test_groups(a, j)
    lo, hi = a.groups[1][0], a.groups[2][1]
    assert (a.labels[lo:hi] != b.labels[lo:hi]).sum() > 50 and not np.array_equal(
        a.close[lo:hi], b.close[lo:hi]
    )
    clean_a, clean_b = _split_state(a, j), _split_state(b, j)
    assert all(torch.equal(clean_a[n], clean_b[n]) for n in clean_a)
    # and the check can fail: a split that chooses its epoch on a test group is moved by it
    leaky_a, leaky_b = _split_state(a, j, select_on_test=True), _split_state(b, j, select_on_test=True)
    assert not all(torch.equal(leaky_a[n], leaky_b[n]) for n in leaky_a)


# --- the trial's figures --------------------------------------------------------------------------------


def test_paths_recombine_the_splits_and_the_objectives_are_their_mean(tmp_path: Path) -> None:
    from objectives.backtest import net_returns, run_backtest

    data = _data(tmp_path, make_bars(1400, seed=2), "p")
    r = evaluate_cpcv(
        "lstm", PARAMS, data, EvalSettings(max_epochs=1, seed=3, device="cpu"), bootstrap_reps=50
    )
    assert r.paths is not None and r.positions is not None and r.returns is not None
    bars = np.arange(*data.splits.val)
    assert r.paths.shape == (3, len(bars)) and len(r.splits) == 6 and r.epochs_run == 6
    np.testing.assert_allclose(r.returns, r.paths.mean(axis=0))
    costs = {"fee_bps": 1.0, "slippage_bps": 1.0}
    sharpes = []
    for p in range(3):
        np.testing.assert_allclose(r.paths[p], net_returns(data.close[bars], r.positions[p], **costs))
        sharpes.append(
            run_backtest(
                data.close[bars], r.positions[p], periods_per_year=data.periods_per_year, **costs
            ).sharpe
        )
    assert r.metrics["sharpe"] == pytest.approx(np.mean(sharpes))
    assert set(r.sems) >= {"return_pct", "sharpe", "max_drawdown_pct"} and all(v > 0 for v in r.sems.values())
    assert final_epochs([s.best_epoch for s in r.splits]) == 1


def test_path_standard_errors() -> None:
    from objectives.backtest import equity_stats

    rng = np.random.default_rng(1)
    market = rng.normal(0.0002, 0.01, 800)
    one = path_standard_errors(market[None, :], 6000.0, reps=100, seed=4)
    assert one == pytest.approx(bootstrap_standard_errors(market, 6000.0, reps=100, seed=4))
    # paths that agree: one path's error (the market's path is all there is)
    close = np.stack([market + rng.normal(0, 1e-6, 800) for _ in range(5)])
    assert path_standard_errors(close, 6000.0, reps=100, seed=4)["sharpe"] == pytest.approx(
        one["sharpe"], rel=0.02
    )
    # paths that disagree: models long, short and flat on the same market. Their mean Sharpe ratio
    # is 0 in every resample, so its error is all spread: sd over the paths / sqrt(5)
    apart = np.stack([market * s for s in (-1.0, -0.5, 0.0, 0.5, 1.0)])
    sharpe = equity_stats(market, 6000.0)[1]
    spread = np.std([-sharpe, -sharpe, 0.0, sharpe, sharpe], ddof=1) / math.sqrt(5)
    assert path_standard_errors(apart, 6000.0, reps=100, seed=4)["sharpe"] == pytest.approx(spread, rel=1e-6)


def test_final_epochs_is_the_median() -> None:
    assert final_epochs([1, 4, 2]) == 2 and final_epochs([2, 3]) == 3 and final_epochs([]) == 1
