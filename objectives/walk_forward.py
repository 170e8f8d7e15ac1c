"""Walk-forward evaluation of one configuration: folds trained in turn, one stitched backtest.

The folds come from the prepared data (:func:`objectives.dataset.walk_forward_ranges`).
For fold k the model trains on the fold's training bars and, after every
epoch, is scored on the fold's inner selection slice (the end of its own
training window, purged from the bars it trains on); the epoch with the
lowest loss there is kept (patience and the ``plateau`` schedule follow the
same loss), and only then is block k traded: its positions are the trial's
out-of-fold positions there. With ``warm_start_folds`` fold k starts from fold
k-1's kept weights and trains at most ``fold_epochs`` epochs; otherwise every
fold starts afresh (same seed) for ``max_epochs``. Nothing fold k chooses
depends on a bar of block k or later: its training bars and selection slice
end a purge gap before the block, and its gate is calibrated on its own
training bars. Block k is scored once, after training.

The trial's figures are one backtest of the stitched positions over all
blocks (one equity curve, costs included at the switches between folds), not
an average of per-fold figures; their standard errors come from a stationary
bootstrap of the stitched per-bar returns (:mod:`objectives.noise`). After
every fold but the last, ``on_fold`` (if given) gets the positions stitched so
far; :func:`stitched_figures` gives their figures the same way (Pareto-aware
stopping across folds, :mod:`engine.study.fold_stopping`).

:func:`refit_and_score` trains the model that is scored on the test split:
on every bar before it (the final fit), for the number of epochs the last
fold kept, from the last fold's weights when folds are warm-started.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from objectives.backtest import net_returns, run_backtest
from objectives.dataset import PreparedData
from objectives.evaluate import EvalSettings, TrialModel
from objectives.noise import bootstrap_standard_errors
from objectives.training import EpochReport, TrialTensors, resolve_device, score_split, train_model
from strategies.exceptions import TrialError

__all__ = [
    "FoldReport",
    "WalkForwardResult",
    "evaluate_walk_forward",
    "fold_epochs",
    "refit_and_score",
    "stitched_figures",
]

#: Called after each epoch of each fold with (fold, step, report); True stops the trial.
FoldCallback = Callable[[int, int, EpochReport], bool]
#: Called after each fold but the last with (fold, stitched out-of-fold positions so far); True stops.
FoldEndCallback = Callable[[int, np.ndarray], bool]


def fold_epochs(max_epochs: int, n_folds: int, *, warm_start: bool, fold_epochs: int | None) -> list[int]:
    """Planned epochs of each fold: ``max_epochs`` for the first (and for all when not warm-started),
    ``fold_epochs`` (default ``max_epochs // 2``, at least 1) for warm-started later folds."""
    later = max_epochs if not warm_start else (fold_epochs or max(1, max_epochs // 2))
    return [max_epochs] + [min(later, max_epochs)] * (n_folds - 1)


@dataclass(frozen=True)
class FoldReport:
    """One fold: its kept epoch, epochs run, and its block's backtest figures (on its own)."""

    fold: int
    best_epoch: int
    epochs_run: int
    sharpe: float
    return_pct: float
    stop_reason: str


@dataclass(frozen=True)
class WalkForwardResult:
    """What a walk-forward trial reports.

    Attributes:
        metrics: the stitched backtest's figures, plus ``val_accuracy`` and
            ``val_loss`` over the blocks' bars whose labels end inside them (empty when stopped).
        sems: bootstrap standard errors of ``return_pct``, ``sharpe``, ``max_drawdown_pct``.
        returns: `n_oof` per-bar net returns of the stitched backtest (None when stopped).
        folds: one :class:`FoldReport` per fold run.
        stopped_by_callback: the callback stopped the trial (its partial folds are no result).
        epochs_run: epochs over all folds; seconds: ``train``, ``total``.
        state: the last fold's kept weights; positions: the stitched out-of-fold positions.
    """

    metrics: dict[str, float]
    sems: dict[str, float]
    returns: np.ndarray | None
    folds: list[FoldReport]
    stopped_by_callback: bool
    epochs_run: int
    seconds: dict[str, float] = field(default_factory=dict)
    state: dict[str, Tensor] | None = None
    positions: np.ndarray | None = None  # `n_oof` stitched out-of-fold positions


def evaluate_walk_forward(
    family: str,
    params: Mapping[str, Any],
    data: PreparedData,
    settings: EvalSettings,
    *,
    warm_start_folds: bool,
    epochs_per_fold: list[int],
    on_epoch: FoldCallback | None = None,
    on_fold: FoldEndCallback | None = None,
    bootstrap_reps: int = 200,
) -> WalkForwardResult:
    """Train and score ``params`` on every fold of ``data``; see the module docstring."""
    if not data.folds:
        raise TrialError(
            "the prepared data have no walk-forward folds; prepare them with scheme 'walk_forward'"
        )
    started = time.perf_counter()
    deadline = started + settings.time_budget_s if settings.time_budget_s is not None else math.inf
    device = resolve_device(settings.device)
    built = TrialModel.build(family, params, data, settings)
    model, cfg = built.module, built.cfg
    tensors = TrialTensors(data, cfg.seq_len, data.folds[-1].stop, device, cfg.class_weights)
    offsets = np.concatenate([[0], np.cumsum(epochs_per_fold)[:-1]]).astype(int)
    positions: list[np.ndarray] = []
    folds: list[FoldReport] = []
    losses: list[float] = []
    accs: list[float] = []
    weights: list[int] = []
    epochs = 0
    for k, window in enumerate(data.folds):
        if k > 0 and not warm_start_folds:
            built = TrialModel.build(family, params, data, settings)
            model, cfg = built.module, built.cfg
        tensors.set_class_weights(window.train_bars())

        def report(r: EpochReport, k: int = k) -> bool:
            return on_epoch is not None and on_epoch(k, int(offsets[k]) + r.epoch, r)

        left = None if math.isinf(deadline) else max(deadline - time.perf_counter(), 0.0)
        trained = train_model(
            model,
            data,
            cfg,
            max_epochs=epochs_per_fold[k],
            seed=settings.seed,
            backtest=settings.backtest,
            device=device,
            time_budget_s=left,
            on_epoch=report,
            window=window,
            tensors=tensors,
        )
        epochs += trained.epochs_run
        if trained.stopped_by_callback and (
            k < len(data.folds) - 1 or trained.epochs_run < epochs_per_fold[k]
        ):
            return WalkForwardResult({}, {}, None, folds, True, epochs, _seconds(started))
        block = window.val_bars()
        batch = cfg.eval_batch_size
        score = score_split(
            model,
            tensors,
            block,
            cfg,
            data,
            settings.backtest,
            batch,
            n_labelled=window.n_labelled(),
            gate_bars=window.train_bars(),
        )
        positions.append(score.positions)
        losses.append(score.loss)
        accs.append(score.accuracy)
        weights.append(window.n_labelled())
        bt = score.backtest
        folds.append(
            FoldReport(
                k, trained.best_epoch, trained.epochs_run, bt.sharpe, bt.return_pct, trained.stop_reason
            )
        )
        if on_fold is not None and k < len(data.folds) - 1 and on_fold(k, np.concatenate(positions)):
            return WalkForwardResult({}, {}, None, folds, True, epochs, _seconds(started))
    return _stitch(
        data, settings, positions, losses, accs, weights, folds, epochs, started, model, bootstrap_reps
    )


def _stitch(
    data: PreparedData,
    settings: EvalSettings,
    positions: list[np.ndarray],
    losses: list[float],
    accs: list[float],
    weights: list[int],
    folds: list[FoldReport],
    epochs: int,
    started: float,
    model: torch.nn.Module,
    reps: int,
) -> WalkForwardResult:
    """One backtest over the stitched out-of-fold positions, its returns and standard errors."""
    pos = np.concatenate(positions)
    metrics, returns, sems = stitched_figures(data, settings, pos, reps=reps)
    w = np.asarray(weights, dtype=np.float64)
    metrics["val_loss"] = float(np.dot(losses, w) / w.sum())
    metrics["val_accuracy"] = float(np.dot(accs, w) / w.sum())
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return WalkForwardResult(metrics, sems, returns, folds, False, epochs, _seconds(started), state, pos)


def stitched_figures(
    data: PreparedData, settings: EvalSettings, positions: np.ndarray, *, reps: int = 200
) -> tuple[dict[str, float], np.ndarray, dict[str, float]]:
    """The backtest figures, per-bar net returns and bootstrap standard errors of stitched
    out-of-fold ``positions``, which start at the first block's first bar: every block's (the
    trial's figures) or the first k blocks' (its partial figures after fold k)."""
    start = data.folds[0].val[0]
    bars = np.arange(start, start + len(positions))
    bt = settings.backtest
    costs = {"fee_bps": bt.fee_bps, "slippage_bps": bt.slippage_bps}
    result = run_backtest(data.close[bars], positions, periods_per_year=data.periods_per_year, **costs)
    returns = net_returns(data.close[bars], positions, **costs)
    sems = bootstrap_standard_errors(returns, data.periods_per_year, reps=reps, seed=settings.seed)
    return result.to_dict(), returns, sems


def _seconds(started: float) -> dict[str, float]:
    return {"train": time.perf_counter() - started}


def refit_and_score(
    family: str,
    params: Mapping[str, Any],
    data: PreparedData,
    settings: EvalSettings,
    *,
    epochs: int,
    init_state: Path | None,
    split: str = "test",
) -> tuple[dict[str, float], np.ndarray, dict[str, Tensor]]:
    """Train on the final fit (every bar before the test split) for ``epochs``, score on ``split``.

    ``init_state``: the last fold's weights to start from (warm-started folds),
    or None to start afresh with the trial's seed. No validation bar chooses
    anything here: the number of epochs is fixed in advance.

    Returns:
        (metrics, per-bar net returns on ``split``, the trained weights).
    """
    if data.final is None:
        raise TrialError("the prepared data have no final fit; prepare them with scheme 'walk_forward'")
    built = TrialModel.build(family, params, data, settings)
    model, cfg = built.module, built.cfg
    if init_state is not None:
        model.load_state_dict(torch.load(init_state, map_location="cpu", weights_only=True))
    trained = train_model(
        model,
        data,
        cfg,
        max_epochs=max(1, epochs),
        seed=settings.seed,
        backtest=settings.backtest,
        device=settings.device,
        window=data.final,
    )
    metrics, returns = TrialModel(model, cfg, data, replace(settings, time_budget_s=None)).score(
        split, gate_bars=data.final.train_bars()
    )
    return metrics, returns, trained.best_state
