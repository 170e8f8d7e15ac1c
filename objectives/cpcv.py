"""Combinatorial purged cross-validation (CPCV, López de Prado 2018, ch. 12) of one configuration.

Geometry (:func:`cpcv_ranges`). The decision bars before the test split,
``splits.val``, are cut into N contiguous groups (the last takes the
remainder). Each of the C(N, k) splits, in ``itertools.combinations`` order of
its k test groups, trades those groups and trains on every other bar, except:

- the purge: the ``horizon`` bars before each run of test groups (their labels
  look into it) and the ``horizon`` bars after it (their labels share no price
  with a test label; skfolio's ``purged_size`` does the same on both sides);
- the embargo: ``embargo_bars`` more after each run of test groups.

Its inner selection slice is the last ``select_fraction`` (at least
:data:`~objectives.dataset.MIN_SELECT_BARS`) of its training bars in time
order, purged from the bars it trains on by ``horizon + embargo_bars``
(:func:`~objectives.dataset.inner_selection` over several ranges); the slice
alone chooses the kept epoch, patience and the ``plateau`` schedule, so
nothing a split chooses looks at its test groups. (A slice that spans a test
group is one series to the per-epoch backtest of the learning curves: its
return across the gap is the move between two training bars.) The purge
keeps labels apart; a training bar's input window still reaches
``seq_len - 1`` bars back, into a test group just before it, unless
``embargo_bars`` covers it. Every group is traded by
C(N-1, k-1) splits, and the p-th of them (in combination order) supplies the
group's positions to backtest path p: φ = k/N · C(N, k) = C(N-1, k-1) paths,
each a stitched out-of-sample series over every group (:func:`path_table`,
the path ids of skfolio's ``CombinatorialPurgedCV``).

Training (:func:`evaluate_cpcv`). Every split starts afresh with the trial's
seed and trains up to ``max_epochs`` (warm-starting from another split would
carry weights trained on its test groups). Its features are standardised again
on its own training bars (:func:`split_features`): the study's column scaler
is fitted on every pre-test bar, test groups included, and a z-score of a
z-score is the z-score of the raw column, so each split's inputs are those of
a scaler fitted on its training bars alone. The ``'train_quantile'`` gate and
the class weights come from its training bars too.

The trial's objectives are the **mean over paths** of each path's backtest
figures (return, Sharpe ratio, drawdown and the rest), not the figures of the
bar-wise mean path. What a live system runs is one model; each path is one
model per group trading the whole span, as a deployed model would. The
bar-wise mean path is the equal-weight ensemble of φ models: its drawdown is
smaller and its Sharpe ratio higher than a single model's, the more so the
more the models disagree, so a search on it would favour unstable
configurations. The standard error of each figure (:func:`path_standard_errors`)
adds the two sources of noise: a stationary bootstrap that resamples the same
bars in every path at once (the market's path, which all paths share) and the
dispersion of the figure over the paths divided by φ (which model traded
which group). The bar-wise mean path is still what the trial stores for the
verdict (``returns.npy``: one series over the same bars as every other
trial); the paths themselves are kept (``paths.npy``, `φ x T`) for a PBO over
paths.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import Tensor, nn

from objectives.backtest import equity_stats, net_returns, ratio_stats, run_backtest
from objectives.config import SplitSpec, ValidationSpec
from objectives.dataset import MIN_SELECT_BARS, MIN_SPLIT_BARS, CPCVSplit, FitWindow, PreparedData, Splits
from objectives.evaluate import EvalSettings, TrialModel
from objectives.noise import SE_FIGURES, block_length
from objectives.train_config import TrainConfig
from objectives.training import (
    EpochReport,
    TrainResult,
    TrialTensors,
    resolve_device,
    score_split,
    train_model,
)
from strategies.exceptions import DataError, TrialError

__all__ = [
    "CPCVResult",
    "SplitFit",
    "SplitReport",
    "check_cpcv",
    "cpcv_ranges",
    "evaluate_cpcv",
    "final_epochs",
    "n_paths",
    "path_standard_errors",
    "path_table",
    "purged_train_ranges",
    "split_features",
    "train_split",
]

Range = tuple[int, int]
#: Called after each epoch of each split with (split, step, report); True stops the trial.
SplitCallback = Callable[[int, int, EpochReport], bool]


def n_paths(groups: int, test_groups: int) -> int:
    """φ = k/N · C(N, k) = C(N-1, k-1): backtest paths of N groups with k tested per split."""
    return math.comb(groups - 1, test_groups - 1)


def path_table(groups: int, test_groups: int) -> np.ndarray:
    """`φ x N` int: ``table[p, g]`` is the split (its index in combination order) whose
    positions on group g path p takes: the p-th split, in combination order, that tests g."""
    combos = list(itertools.combinations(range(groups), test_groups))
    table = np.empty((n_paths(groups, test_groups), groups), dtype=np.int64)
    for g in range(groups):
        table[:, g] = [j for j, c in enumerate(combos) if g in c]
    return table


def _pre_test(n_bars: int, seq_len: int, horizon: int, splits: SplitSpec) -> tuple[int, int, Range]:
    """(first decision bar, one past the last pre-test bar, the test split): as walk-forward cuts them."""
    first = seq_len - 1
    usable = n_bars - horizon - first
    n_test = int(max(usable - horizon, 0) * splits.test) if splits.test > 0 else 0
    pre_stop = first + usable - n_test - (horizon if splits.test > 0 else 0)
    test = (pre_stop + horizon, pre_stop + horizon + n_test) if splits.test > 0 else (pre_stop, pre_stop)
    return first, pre_stop, test


def purged_train_ranges(
    groups: tuple[Range, ...], test: tuple[int, ...], horizon: int, embargo: int
) -> list[Range]:
    """The bars of the groups not in ``test``, purged by ``horizon`` on both sides of every run of
    test groups and embargoed by ``embargo`` after it (empty ranges dropped)."""
    out = []
    runs = itertools.groupby(range(len(groups)), key=lambda g: g in test)
    for tested, members in runs:
        run = list(members)
        if tested:
            continue
        a, b = groups[run[0]][0], groups[run[-1]][1]
        if run[0] > 0:  # a run of test groups ends at a
            a += horizon + embargo
        if run[-1] < len(groups) - 1:  # one starts at b
            b -= horizon
        if b > a:
            out.append((a, b))
    return out


def _with_selection(ranges: list[Range], gap: int, fraction: float) -> FitWindow:
    """The fit of training ranges: the last ``fraction`` of their bars (at least MIN_SELECT_BARS),
    in time order, is the inner selection slice; the bars trained on end ``gap`` before it."""
    n = max(int(sum(b - a for a, b in ranges) * fraction), MIN_SELECT_BARS)
    select: list[Range] = []
    i = len(ranges)
    while n > 0 and i > 0:
        i -= 1
        a, b = ranges[i]
        take = min(n, b - a)
        select.insert(0, (b - take, b))
        n -= take
    train = list(ranges[:i])
    if select and select[0][0] > ranges[i][0]:  # the slice starts inside a range: purge its head
        a, cut = ranges[i][0], select[0][0]
        train.append((a, max(a, cut - gap)))
    train = [r for r in train if r[1] > r[0]] or [(0, 0)]
    select = select or [(0, 0)]
    return FitWindow(
        train=train[0], more_train=tuple(train[1:]), select=select[0], more_select=tuple(select[1:])
    )


def cpcv_ranges(
    n_bars: int, seq_len: int, horizon: int, splits: SplitSpec, validation: ValidationSpec
) -> tuple[Splits, tuple[Range, ...], tuple[CPCVSplit, ...], FitWindow]:
    """The groups, the C(N, k) splits and the final fit of CPCV (see the module docstring).

    Returns:
        (splits: train = val = every pre-test decision bar (the scaler's rows; each split
        standardises again on its own training bars), test as walk-forward cuts it; the N
        groups tiling ``val``; the splits in combination order; the final fit: every
        pre-test bar up to ``embargo_bars`` before the end, as walk-forward's).
    """
    first, pre_stop, test = _pre_test(n_bars, seq_len, horizon, splits)
    n, k, embargo = validation.groups, validation.test_groups, validation.embargo_bars
    size = max((pre_stop - first) // n, 0)
    bounds = [first + i * size for i in range(n)] + [pre_stop]
    groups = tuple(itertools.pairwise(bounds))
    out = []
    for tested in itertools.combinations(range(n), k):
        ranges = purged_train_ranges(groups, tested, horizon, embargo)
        fit = _with_selection(ranges, horizon + embargo, validation.select_fraction)
        out.append(CPCVSplit(tested, fit))
    final = FitWindow(train=(first, max(first, pre_stop - embargo)))
    return Splits(train=(first, pre_stop), val=(first, pre_stop), test=test), groups, tuple(out), final


def check_cpcv(
    n_bars: int, seq_len: int, horizon: int, splits: SplitSpec, validation: ValidationSpec, *, source: str
) -> None:
    """Raise :class:`DataError` (naming the field and the fix) unless every group and split has room."""
    parts, groups, cpcv, _ = cpcv_ranges(n_bars, seq_len, horizon, splits, validation)
    where = f"{source}: {n_bars} bars, data.validation"
    need = max(seq_len + horizon, 2 * horizon + validation.embargo_bars + 1, MIN_SPLIT_BARS["val"])
    smallest = min(b - a for a, b in groups)
    if smallest < need:
        most = (parts.val[1] - parts.val[0]) // need
        fewer = f"use at most {most} groups, " if most >= 3 else ""
        raise DataError(
            f"{where}.groups {validation.groups}: groups of {max(smallest, 0)} decision bars are shorter than "
            f"{need} (seq_len {seq_len} + label horizon {horizon}, twice the horizon + embargo_bars "
            f"{validation.embargo_bars}, and at least {MIN_SPLIT_BARS['val']}); {fewer}a shorter max seq_len, "
            "a shorter horizon or more bars"
        )
    for s in cpcv:
        trained = sum(b - a for a, b in s.fit.train_ranges)
        if trained < MIN_SPLIT_BARS["train"]:
            raise DataError(
                f"{where}.test_groups {validation.test_groups}: the split trading groups {list(s.test_groups)} "
                f"trains on {trained} decision bars after purge gaps of {horizon} + embargo "
                f"{validation.embargo_bars} around them and its inner selection slice (select_fraction "
                f"{validation.select_fraction:g}), need at least {MIN_SPLIT_BARS['train']}; lower test_groups, "
                "embargo_bars or select_fraction, or use more bars"
            )
    if splits.test > 0 and parts.test[1] - parts.test[0] < MIN_SPLIT_BARS["test"]:
        raise DataError(
            f"{source}: {n_bars} bars leave {parts.test[1] - parts.test[0]} test decision bars (data.splits.test "
            f"{splits.test:g}), need at least {MIN_SPLIT_BARS['test']}; raise splits.test or use more bars"
        )


def split_features(data: PreparedData, fit: FitWindow) -> PreparedData:
    """``data`` with its features standardised again on ``fit``'s training bars (column normalisation).

    The study's scaler saw every pre-test bar; per column, the z-score over the
    split's training bars of those features is the z-score of the raw column
    over the same bars (up to float rounding), which no test group moves. Row
    normalisation fits nothing and is left as it is.
    """
    if data.meta.get("normalization", "column") != "column":
        return data
    x = np.asarray(data.features, dtype=np.float64)
    rows = x[fit.train_bars()]
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    std = np.where(std < 1e-12, 1.0, std)
    return replace(data, features=((x - mean) / std).astype(np.float32))


def final_epochs(best_epochs: list[int]) -> int:
    """Epochs of the final fit: the median of the splits' kept epochs (rounded half up, at least 1)."""
    return max(1, math.floor(float(np.median(best_epochs)) + 0.5)) if best_epochs else 1


@dataclass(frozen=True)
class SplitReport:
    """One split: its test groups, kept epoch, epochs run, and the figures of its pieces of the paths."""

    split: int
    test_groups: tuple[int, ...]
    best_epoch: int
    epochs_run: int
    sharpe: float
    return_pct: float
    stop_reason: str


@dataclass(frozen=True)
class CPCVResult:
    """What a CPCV trial reports.

    Attributes:
        metrics: the mean over paths of each path's backtest figures, plus ``val_accuracy``
            and ``val_loss`` over every traded bar (empty when stopped).
        sems: standard errors of :data:`~objectives.noise.SE_FIGURES` (:func:`path_standard_errors`).
        returns: `T` the bar-wise mean of the paths' per-bar net returns (None when stopped).
        paths: `φ x T` each path's per-bar net returns; positions: `φ x T` its positions.
        path_metrics: each path's backtest figures.
        splits: one :class:`SplitReport` per split run.
        stopped_by_callback: the callback stopped the trial (its partial splits are no result).
        epochs_run: epochs over all splits; seconds: ``train``.
        state: the last split's kept weights.
    """

    metrics: dict[str, float]
    sems: dict[str, float]
    returns: np.ndarray | None
    splits: list[SplitReport]
    stopped_by_callback: bool
    epochs_run: int
    seconds: dict[str, float] = field(default_factory=dict)
    paths: np.ndarray | None = None
    positions: np.ndarray | None = None
    path_metrics: list[dict[str, float]] = field(default_factory=list)
    state: dict[str, Tensor] | None = None


@dataclass(frozen=True)
class SplitFit:
    """One split trained: the model (its kept weights loaded), its config, the training outcome, and
    the split's tensors and standardised data (to trade its test groups with)."""

    model: nn.Module
    cfg: TrainConfig
    trained: TrainResult
    tensors: TrialTensors
    data: PreparedData


def train_split(
    family: str,
    params: Mapping[str, Any],
    data: PreparedData,
    split: CPCVSplit,
    settings: EvalSettings,
    *,
    time_budget_s: float | None = None,
    on_epoch: Callable[[EpochReport], bool] | None = None,
) -> SplitFit:
    """Train ``params`` afresh (the settings' seed) on ``split``'s training bars, choosing on its slice."""
    device = resolve_device(settings.device)
    built = TrialModel.build(family, params, data, settings)
    model, cfg = built.module, built.cfg
    fit_data = split_features(data, split.fit)
    stop = data.splits.val[1]
    tensors = TrialTensors(
        fit_data, cfg.seq_len, stop, device, cfg.class_weights, train_bars=split.fit.train_bars()
    )
    trained = train_model(
        model,
        fit_data,
        cfg,
        max_epochs=settings.max_epochs,
        seed=settings.seed,
        backtest=settings.backtest,
        device=device,
        time_budget_s=time_budget_s,
        on_epoch=on_epoch,
        window=split.fit,
        tensors=tensors,
    )
    return SplitFit(model, cfg, trained, tensors, fit_data)


def evaluate_cpcv(
    family: str,
    params: Mapping[str, Any],
    data: PreparedData,
    settings: EvalSettings,
    *,
    on_epoch: SplitCallback | None = None,
    bootstrap_reps: int = 200,
) -> CPCVResult:
    """Train ``params`` on every CPCV split of ``data``, trade its test groups, recombine the paths."""
    if not data.cpcv:
        raise TrialError("the prepared data have no CPCV splits; prepare them with scheme 'cpcv'")
    started = time.perf_counter()
    deadline = started + settings.time_budget_s if settings.time_budget_s is not None else math.inf
    table = path_table(len(data.groups), len(data.cpcv[0].test_groups))
    v0, v1 = data.splits.val
    positions = np.zeros((len(table), v1 - v0))
    reports: list[tuple[int, int, str]] = []
    losses, accs, weights = [], [], []
    epochs, model = 0, None
    for j, split in enumerate(data.cpcv):

        def report(r: EpochReport, j: int = j) -> bool:
            return on_epoch is not None and on_epoch(j, j * settings.max_epochs + r.epoch, r)

        left = None if math.isinf(deadline) else max(deadline - time.perf_counter(), 0.0)
        fit = train_split(family, params, data, split, settings, time_budget_s=left, on_epoch=report)
        model, trained = fit.model, fit.trained
        epochs += trained.epochs_run
        if trained.stopped_by_callback and (
            j < len(data.cpcv) - 1 or trained.epochs_run < settings.max_epochs
        ):
            return CPCVResult(
                {}, {}, None, _split_reports(data, reports, None), True, epochs, _seconds(started)
            )
        bars = np.concatenate([np.arange(*data.groups[g]) for g in split.test_groups])
        batch = fit.cfg.eval_batch_size
        score = score_split(
            model,
            fit.tensors,
            bars,
            fit.cfg,
            fit.data,
            settings.backtest,
            batch,
            gate_bars=split.fit.train_bars(),
        )
        for g in split.test_groups:
            a, b = data.groups[g]
            path = int(np.flatnonzero(table[:, g] == j)[0])
            positions[path, a - v0 : b - v0] = score.positions[
                np.searchsorted(bars, a) : np.searchsorted(bars, b)
            ]
        losses.append(score.loss)
        accs.append(score.accuracy)
        weights.append(len(bars))
        reports.append((trained.best_epoch, trained.epochs_run, trained.stop_reason))
    return _recombine(
        data, settings, positions, losses, accs, weights, reports, epochs, started, model, bootstrap_reps
    )


def _recombine(
    data: PreparedData,
    settings: EvalSettings,
    positions: np.ndarray,
    losses: list[float],
    accs: list[float],
    weights: list[int],
    reports: list[tuple[int, int, str]],
    epochs: int,
    started: float,
    model: nn.Module | None,
    reps: int,
) -> CPCVResult:
    """One backtest per path, the mean of their figures, the mean path and the standard errors."""
    close = np.asarray(data.close[slice(*data.splits.val)])
    bt = settings.backtest
    costs = {"fee_bps": bt.fee_bps, "slippage_bps": bt.slippage_bps}
    per_path = [
        run_backtest(close, p, periods_per_year=data.periods_per_year, **costs).to_dict() for p in positions
    ]
    paths = np.stack([net_returns(close, p, **costs) for p in positions])
    metrics = {name: float(np.mean([m[name] for m in per_path])) for name in per_path[0]}
    w = np.asarray(weights, dtype=np.float64)
    metrics["val_loss"] = float(np.dot(losses, w) / w.sum())
    metrics["val_accuracy"] = float(np.dot(accs, w) / w.sum())
    sems = path_standard_errors(paths, data.periods_per_year, reps=reps, seed=settings.seed)
    state = (
        None if model is None else {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    )
    return CPCVResult(
        metrics,
        sems,
        paths.mean(axis=0),
        _split_reports(data, reports, paths),
        False,
        epochs,
        _seconds(started),
        paths,
        positions,
        per_path,
        state,
    )


def _split_reports(
    data: PreparedData, reports: list[tuple[int, int, str]], paths: np.ndarray | None
) -> list[SplitReport]:
    """Each split run, with the return and Sharpe ratio of its pieces of the paths (NaN without them)."""
    table = path_table(len(data.groups), len(data.cpcv[0].test_groups)) if data.cpcv else None
    v0 = data.splits.val[0]
    out = []
    for j, (best, run, reason) in enumerate(reports):
        split = data.cpcv[j]
        ret, sharpe = math.nan, math.nan
        if paths is not None and table is not None:
            pieces = [
                paths[
                    int(np.flatnonzero(table[:, g] == j)[0]), data.groups[g][0] - v0 : data.groups[g][1] - v0
                ]
                for g in split.test_groups
            ]
            ret, sharpe, _ = equity_stats(np.concatenate(pieces), data.periods_per_year)
        out.append(SplitReport(j, split.test_groups, best, run, sharpe, ret, reason))
    return out


def path_standard_errors(
    paths: np.ndarray, periods_per_year: float, *, reps: int = 200, seed: int = 0
) -> dict[str, float]:
    """Standard errors of the mean over paths of each of :data:`~objectives.noise.SE_FIGURES`.

    ``paths``: `φ x T` per-bar net returns over the same bars. Two sources add
    up: the market's path, by a stationary bootstrap that resamples the same
    bars in every path at once (mean block length from the mean path, as
    :func:`~objectives.noise.bootstrap_standard_errors` chooses it), and which
    model traded which group, by the variance of the figure over the paths
    divided by φ (zero for one path). Seeded.
    """
    r = np.asarray(paths, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"paths must be `φ x T` with T >= 2, got shape {r.shape}")
    if reps < 2:
        raise ValueError(f"reps must be >= 2, got {reps}")
    figures = np.array([_figures(p, periods_per_year) for p in r])  # φ x F
    spread = figures.var(axis=0, ddof=1) / len(r) if len(r) > 1 else np.zeros(len(SE_FIGURES))
    if float(r.std()) < 1e-15:
        return dict.fromkeys(SE_FIGURES, 0.0)
    from arch.bootstrap import StationaryBootstrap  # arch loads in seconds: on use only

    mean_path = r.mean(axis=0)
    length = max(1, round(block_length(mean_path)))
    bs = StationaryBootstrap(length, r.T, seed=np.random.default_rng(seed))
    draws = np.array(
        [
            np.mean([_figures(p, periods_per_year) for p in data[0][0].T], axis=0)
            for data in bs.bootstrap(reps)
        ]
    )
    market = draws.var(axis=0, ddof=1)
    return {name: float(math.sqrt(market[i] + spread[i])) for i, name in enumerate(SE_FIGURES)}


def _figures(net: np.ndarray, periods_per_year: float) -> tuple[float, ...]:
    """The :data:`~objectives.noise.SE_FIGURES` of per-bar net returns `T`."""
    stats = equity_stats(net, periods_per_year)
    return (*stats, *ratio_stats(net, periods_per_year, stats[0], stats[2]))


def _seconds(started: float) -> dict[str, float]:
    return {"train": time.perf_counter() - started}
