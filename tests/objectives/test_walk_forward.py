"""Walk-forward folds: geometry, purge and embargo at every boundary, no look-ahead across folds."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from objectives import EvalSettings, prepare_data
from objectives.config import DataSpec, LabelSpec, SplitSpec, ValidationSpec
from objectives.dataset import walk_forward_ranges
from objectives.walk_forward import evaluate_walk_forward, fold_epochs, refit_and_score
from strategies.exceptions import DataError
from tests.objectives.helpers import make_bars, write_csv

PARAMS = {"hidden_size": 8, "num_layers": 1, "seq_len": 8, "batch_size": 64, "predict_profit": False}
SETTINGS = EvalSettings(max_epochs=2, seed=3, device="cpu")


@pytest.mark.parametrize("window", ["expanding", "rolling"])
@pytest.mark.parametrize(("folds", "embargo", "horizon"), [(4, 0, 6), (3, 5, 2), (6, 12, 1)])
def test_fold_geometry_purge_and_embargo(window: str, folds: int, embargo: int, horizon: int) -> None:
    v = ValidationSpec(
        scheme="walk_forward", folds=folds, window=window, embargo_bars=embargo, initial_train=0.3
    )
    splits, wf, final = walk_forward_ranges(3000, 20, horizon, SplitSpec(), v)
    assert len(wf) == folds
    assert wf[0].val[0] == splits.val[0] and wf[-1].val[1] == splits.val[1]  # blocks cover the span
    for a, b in itertools.pairwise(wf):
        assert a.val[1] == b.val[0]  # consecutive blocks: one stitched curve
    lengths = {f.select[1] - f.train[0] for f in wf}
    gap = horizon + embargo
    for f in wf:
        # the fold's window ends a purge gap before the block: no label of it looks into the block
        assert f.select[1] == f.val[0] - gap and (f.select[1] - 1) + horizon < f.val[0] - embargo
        # the inner selection slice is the window's last 20 %, purged from the bars trained on
        assert f.select[1] - f.select[0] == max(int((f.select[1] - f.train[0]) * 0.2), 16)
        assert f.train[1] == f.select[0] - gap and (f.train[1] - 1) + horizon < f.select[0] - embargo
        assert f.label_stop == f.val[1] - horizon  # reported loss: labels that end inside the block
        assert f.train[0] == 19 or window == "rolling"
    assert splits.train == (wf[0].train[0], wf[0].select[1])  # fold 0's window (the scaler's rows)
    assert len(lengths) == (1 if window == "rolling" else folds)
    assert final.train[1] == splits.val[1] - embargo and final.val == (0, 0) and final.select == (0, 0)
    assert splits.test[0] == splits.val[1] + horizon  # purged from the test split
    assert (final.train[1] - 1) + horizon < splits.test[0]


def test_epoch_schedule() -> None:
    assert fold_epochs(8, 4, warm_start=True, fold_epochs=None) == [8, 4, 4, 4]
    assert fold_epochs(8, 3, warm_start=True, fold_epochs=2) == [8, 2, 2]
    assert fold_epochs(8, 3, warm_start=False, fold_epochs=2) == [8, 8, 8]
    assert fold_epochs(1, 2, warm_start=True, fold_epochs=None) == [1, 1]


def _data(tmp_path: Path, bars: object, name: str, **validation: object) -> object:
    path = tmp_path / f"{name}.csv"
    write_csv(bars, path)
    spec = DataSpec(
        source=str(path),
        label=LabelSpec(horizon=3),
        validation=ValidationSpec(scheme="walk_forward", folds=3, **validation),
    )
    return prepare_data(spec, feature_set="ohlcv", max_seq_len=8)


@pytest.mark.parametrize("warm", [True, False])
def test_no_look_ahead_across_folds(tmp_path: Path, warm: bool) -> None:
    """Bars after fold k's block change nothing of folds <= k: training data, labels, decisions."""
    bars = make_bars(1400, seed=5)
    a = _data(tmp_path, bars, "a", embargo_bars=2)
    k = 1
    cut = a.folds[k].val[1]  # the first bar after block k
    later = bars.copy()
    later.iloc[cut:, :4] *= 1.07  # a different future
    later.iloc[cut:, 4] *= 3.0
    b = _data(tmp_path, later, "b", embargo_bars=2)
    for f in a.folds[: k + 1]:
        rows = slice(0, f.stop)
        np.testing.assert_array_equal(a.features[rows], b.features[rows])
        np.testing.assert_array_equal(a.labels[f.train_bars()], b.labels[f.train_bars()])
        np.testing.assert_array_equal(a.labels[f.val[0] : f.label_stop], b.labels[f.val[0] : f.label_stop])
    epochs = fold_epochs(2, 3, warm_start=warm, fold_epochs=1)
    ra = evaluate_walk_forward("lstm", PARAMS, a, SETTINGS, warm_start_folds=warm, epochs_per_fold=epochs)
    rb = evaluate_walk_forward("lstm", PARAMS, b, SETTINGS, warm_start_folds=warm, epochs_per_fold=epochs)
    n = cut - a.folds[0].val[0]  # out-of-fold bars of blocks 0..k
    assert ra.positions is not None and rb.positions is not None
    np.testing.assert_array_equal(ra.positions[:n], rb.positions[:n])
    assert [f.best_epoch for f in ra.folds[: k + 1]] == [f.best_epoch for f in rb.folds[: k + 1]]
    # and the check can fail: the last fold saw the other future, and decided differently
    assert not np.array_equal(ra.positions[n:], rb.positions[n:]) or ra.folds[-1] != rb.folds[-1]


def _flip_block(tmp_path: Path, bars: object, lo: int, hi: int) -> object:
    """The same bars with other prices inside decision bars [lo, hi) and long/short labels swapped there."""
    rng = np.random.default_rng(0)
    other = bars.copy()
    other.iloc[lo:hi, :4] = other.iloc[lo:hi, :4].to_numpy() * np.exp(rng.normal(0, 0.02, (hi - lo, 1)))
    data = _data(tmp_path, other, "flipped", embargo_bars=2)
    labels = data.labels.copy()
    block = labels[lo:hi]
    labels[lo:hi] = np.where(block == 1, 2, np.where(block == 2, 1, block))
    return dataclasses.replace(data, labels=labels)


def _fold_k_state(data: object, k: int, *, select_on_block: bool = False) -> dict[str, torch.Tensor]:
    """The kept weights of fold k (folds 0..k run, warm-started); ``select_on_block``: choose the
    epoch on block k itself, as a fold that leaks would."""
    folds = data.folds[: k + 1]
    if select_on_block:
        f = folds[k]
        folds = (*folds[:k], dataclasses.replace(f, select=(f.val[0], f.label_stop)))
    settings = EvalSettings(max_epochs=4, seed=3, device="cpu")
    r = evaluate_walk_forward(
        "lstm",
        PARAMS,
        dataclasses.replace(data, folds=folds),
        settings,
        warm_start_folds=True,
        epochs_per_fold=[4, 4],
    )
    assert r.state is not None
    return r.state


def test_prices_and_labels_inside_block_k_do_not_change_fold_k(tmp_path: Path) -> None:
    """Fold k chooses its epoch, patience and schedule without block k: other prices and
    swapped labels inside the block leave its trained weights bit-identical."""
    bars = make_bars(1400, seed=5)
    a = _data(tmp_path, bars, "a", embargo_bars=2)
    k = 1
    lo, hi = a.folds[k].val
    b = _flip_block(tmp_path, bars, lo, hi)
    assert (a.labels[lo:hi] != b.labels[lo:hi]).sum() > 50 and not np.array_equal(
        a.close[lo:hi], b.close[lo:hi]
    )
    np.testing.assert_array_equal(a.features[:lo], b.features[:lo])
    clean_a, clean_b = _fold_k_state(a, k), _fold_k_state(b, k)
    assert all(torch.equal(clean_a[n], clean_b[n]) for n in clean_a)
    # and the check can fail: a fold that chooses its epoch on the block it trades is moved by it
    leaky_a, leaky_b = _fold_k_state(a, k, select_on_block=True), _fold_k_state(b, k, select_on_block=True)
    assert not all(torch.equal(leaky_a[n], leaky_b[n]) for n in leaky_a)


def test_the_holdout_fit_chooses_nothing_on_the_validation_split(tmp_path: Path) -> None:
    from objectives.evaluate import TrialModel
    from objectives.training import train_model

    path = tmp_path / "h.csv"
    bars = make_bars(1400, seed=5)
    write_csv(bars, path)
    spec = DataSpec(source=str(path), label=LabelSpec(horizon=3), validation=ValidationSpec(scheme="holdout"))
    a = prepare_data(spec, feature_set="ohlcv", max_seq_len=8)
    assert a.fit is not None and a.fit.val == a.splits.val and a.fit.select[1] == a.splits.train[1]
    lo, hi = a.splits.val
    labels = a.labels.copy()
    labels[lo:hi] = (labels[lo:hi] + 1) % 3
    b = dataclasses.replace(a, labels=labels)

    def fit(data: object, window: object) -> dict[str, torch.Tensor]:
        # a high learning rate: the selection loss is not monotone, so the epoch choice matters
        built = TrialModel.build("lstm", {**PARAMS, "learning_rate": 0.03}, data, EvalSettings(seed=3))
        model, cfg = built.module, built.cfg
        return train_model(
            model, data, cfg, max_epochs=4, seed=3, backtest=SETTINGS.backtest, device="cpu", window=window
        ).best_state

    sa, sb = fit(a, None), fit(b, None)  # the default window: the prepared holdout fit
    assert all(torch.equal(sa[n], sb[n]) for n in sa)
    leaky = dataclasses.replace(a.fit, select=a.fit.val)  # chosen on the split it trades
    la, lb = fit(a, leaky), fit(b, leaky)
    assert not all(torch.equal(la[n], lb[n]) for n in la)


def test_stitched_figures_are_one_backtest(tmp_path: Path) -> None:
    from objectives.backtest import run_backtest

    data = _data(tmp_path, make_bars(1400, seed=2), "s")
    r = evaluate_walk_forward(
        "lstm", PARAMS, data, SETTINGS, warm_start_folds=True, epochs_per_fold=[2, 1, 1]
    )
    bars = np.arange(data.folds[0].val[0], data.folds[-1].val[1])
    assert r.returns is not None and r.positions is not None and len(r.returns) == len(bars)
    again = run_backtest(
        data.close[bars], r.positions, fee_bps=1.0, slippage_bps=1.0, periods_per_year=data.periods_per_year
    )
    assert r.metrics["sharpe"] == pytest.approx(again.sharpe) and r.metrics["return_pct"] == pytest.approx(
        again.return_pct
    )
    assert set(r.sems) == {"return_pct", "sharpe", "max_drawdown_pct", "sortino", "calmar"} and all(
        v >= 0 for v in r.sems.values()
    )
    assert [f.epochs_run for f in r.folds] == [2, 1, 1]
    metrics, returns, _ = refit_and_score("lstm", PARAMS, data, SETTINGS, epochs=1, init_state=None)
    assert len(returns) == data.splits.test[1] - data.splits.test[0] and "test_loss" in metrics


def test_a_stop_request_leaves_no_objectives(tmp_path: Path) -> None:
    data = _data(tmp_path, make_bars(1400, seed=2), "stop")
    seen: list[tuple[int, int]] = []

    def stop_in_fold_1(fold: int, step: int, report: object) -> bool:
        seen.append((fold, step))
        return fold == 1

    r = evaluate_walk_forward(
        "lstm",
        PARAMS,
        data,
        SETTINGS,
        warm_start_folds=True,
        epochs_per_fold=[2, 2, 2],
        on_epoch=stop_in_fold_1,
    )
    assert r.stopped_by_callback and r.metrics == {} and r.returns is None
    assert seen == [(0, 1), (0, 2), (1, 3)]  # steps count over the planned schedule


def test_too_many_folds_is_refused_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    write_csv(make_bars(400), path)
    spec = DataSpec(source=str(path), validation=ValidationSpec(scheme="walk_forward", folds=30))
    with pytest.raises(
        DataError, match=r"short\.csv: 400 bars, data\.validation\.folds 30: .*use at most \d+ folds"
    ):
        prepare_data(spec, feature_set="ohlcv", max_seq_len=8)
    spec = DataSpec(
        source=str(path),
        validation=ValidationSpec(scheme="walk_forward", initial_train=0.05, embargo_bars=40),
    )
    with pytest.raises(DataError, match=r"data\.validation\.initial_train 0\.05"):
        prepare_data(spec, feature_set="ohlcv", max_seq_len=8)
