"""The objective of one trial: train a configuration, backtest it on validation.

:class:`TrialModel` is one configuration of a family as a model: :meth:`~TrialModel.build`
makes the family's model (``strategies.build_model``, imported lazily) with seeded weights,
:meth:`~TrialModel.load` with saved ones; :meth:`~TrialModel.train` trains it with
:func:`objectives.training.train_model`, restores the best epoch (lowest validation loss) and
backtests its actions on the validation split; :meth:`~TrialModel.score` scores it on another
split (the held-out test, for the final Pareto set only); :meth:`~TrialModel.gate` is the
probability gate it trades with. :func:`evaluate` is build-then-train in one call.

Metric keys: the :class:`~objectives.backtest.BacktestResult` fields
(``return_pct``, ``sharpe``, ``max_drawdown_pct``, ``win_rate_pct``,
``num_trades``, ``profit_factor``, ``exposure_pct``, ``avg_trade_pct``,
``bh_return_pct``, ``bh_sharpe``, ``bh_max_drawdown_pct``) plus
``<split>_accuracy`` and ``<split>_loss`` (``val_accuracy``, ``val_loss`` in
:class:`EvalResult`). A non-finite metric raises :class:`TrialError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from objectives.config import BacktestSpec
from objectives.dataset import PreparedData
from objectives.train_config import TrainConfig
from objectives.training import (
    EpochCallback,
    EpochReport,
    SplitScore,
    TrialTensors,
    gate_threshold,
    resolve_device,
    score_split,
    train_model,
)
from strategies.exceptions import ConfigError, TrialError

__all__ = ["EvalResult", "EvalSettings", "TrialModel", "evaluate"]


@dataclass(frozen=True)
class EvalSettings:
    """How a trial is run (the same for every trial of a study)."""

    max_epochs: int = 50
    time_budget_s: float | None = None
    backtest: BacktestSpec = field(default_factory=BacktestSpec)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ConfigError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.time_budget_s is not None and self.time_budget_s < 0:
            raise ConfigError(f"time_budget_s must be >= 0 or None, got {self.time_budget_s}")


@dataclass(frozen=True)
class EvalResult:
    """What one trial reports.

    Attributes:
        metrics: validation backtest metrics plus ``val_accuracy``, ``val_loss``.
        epochs_run, best_epoch: epochs trained; the epoch whose weights were kept.
        curve: one :class:`EpochReport` per epoch.
        stopped_by_callback: the ``on_epoch`` callback asked to stop.
        seconds: ``train``, ``backtest``, ``total``.
        input_size: number of features the model was built for.
        stop_reason: ``max_epochs``, ``early_stopping``, ``time_budget`` or ``callback``.
        returns: per-bar net returns of the validation backtest.
        positions: the positions behind them, bar by bar.
    """

    metrics: dict[str, float]
    epochs_run: int
    best_epoch: int
    curve: list[EpochReport]
    stopped_by_callback: bool
    seconds: dict[str, float]
    input_size: int
    stop_reason: str = "max_epochs"
    returns: np.ndarray | None = None  # `n_val` per-bar net returns of the validation backtest
    positions: np.ndarray | None = None  # `n_val` positions held on those bars


def _family(family: str) -> tuple[Any, Mapping[str, Any]]:
    import strategies  # lazy: keeps objectives importable while a family registry is absent

    return strategies, strategies.get_family(family).train_defaults


@dataclass
class TrialModel:
    """One configuration of a model family as a model: built with seeded weights
    (:meth:`build`) or with saved ones (:meth:`load`), then trained and validated
    (:meth:`train`), scored on a split (:meth:`score`) and asked for the probability
    gate it trades with (:meth:`gate`).

    Attributes:
        module: the torch module.
        cfg: its training configuration (the family's defaults, then the trial's parameters).
        data: the study's prepared data.
        settings: how the study's trials are run.
    """

    module: nn.Module
    cfg: TrainConfig
    data: PreparedData
    settings: EvalSettings

    @classmethod
    def build(
        cls, family: str, params: Mapping[str, Any], data: PreparedData, settings: EvalSettings
    ) -> TrialModel:
        """The family's model for ``params``, its weights seeded with ``settings.seed``."""
        strategies, defaults = _family(family)
        cfg = TrainConfig.from_params(params, defaults)
        module = strategies.build_model(family, params, data.n_features, seed=settings.seed)
        return cls(module, cfg, data, settings)

    @classmethod
    def load(
        cls,
        family: str,
        params: Mapping[str, Any],
        data: PreparedData,
        settings: EvalSettings,
        checkpoint_path: Path,
    ) -> TrialModel:
        """The model of ``params`` with the weights saved at ``checkpoint_path``."""
        model = cls.build(family, params, data, settings)
        model.module.load_state_dict(torch.load(checkpoint_path, map_location="cpu", weights_only=True))
        return model

    def train(
        self, *, on_epoch: EpochCallback | None = None, checkpoint_path: Path | None = None
    ) -> EvalResult:
        """Train, restore the best epoch and backtest it on validation; the best weights
        (``state_dict``) go to ``checkpoint_path`` when given."""
        started = time.perf_counter()
        settings = self.settings
        trained = train_model(
            self.module,
            self.data,
            self.cfg,
            max_epochs=settings.max_epochs,
            seed=settings.seed,
            backtest=settings.backtest,
            device=settings.device,
            time_budget_s=settings.time_budget_s,
            on_epoch=on_epoch,
        )
        train_s = time.perf_counter() - started
        if checkpoint_path is not None:
            Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
            torch.save(trained.best_state, checkpoint_path)
        t0 = time.perf_counter()
        metrics, score = self._score("val")
        backtest_s = time.perf_counter() - t0
        return EvalResult(
            metrics=metrics,
            epochs_run=trained.epochs_run,
            best_epoch=trained.best_epoch,
            curve=list(trained.curve),
            stopped_by_callback=trained.stopped_by_callback,
            seconds={"train": train_s, "backtest": backtest_s, "total": time.perf_counter() - started},
            input_size=self.data.n_features,
            stop_reason=trained.stop_reason,
            returns=score.returns,
            positions=score.positions,
        )

    def score(
        self, split: str, *, gate_bars: np.ndarray | None = None
    ) -> tuple[dict[str, float], np.ndarray]:
        """Metrics (keys as in :attr:`EvalResult.metrics`, prefix ``split``) and per-bar net returns
        `n` on ``split`` (no training); a ``'train_quantile'`` gate is calibrated on ``gate_bars``
        (default: the training split)."""
        metrics, score = self._score(split, gate_bars=gate_bars)
        return metrics, score.returns

    def gate(self, *, train_bars: np.ndarray | None = None) -> float:
        """The probability gate the model trades with: the spec's gate, or the threshold a
        ``'train_quantile'`` gate resolves to for this model on ``train_bars`` (default: the
        training split): what a live system should use (trade the more likely of long and
        short when its probability is at least this)."""
        backtest = self.settings.backtest
        gate = self.cfg.confidence_gate if self.cfg.confidence_gate is not None else backtest.confidence_gate
        if backtest.gate == "probability":
            return float(gate)
        device = resolve_device(self.settings.device)
        self.module.to(device)
        bars = self.data.splits.bars("train") if train_bars is None else train_bars
        tensors = TrialTensors(self.data, self.cfg.seq_len, int(bars[-1]) + 1, device, self.cfg.class_weights)
        return gate_threshold(
            self.module,
            tensors,
            self.data,
            gate,
            self.cfg.eval_batch_size,
            allow_short=backtest.allow_short,
            train_bars=bars,
        )

    def _score(
        self, split: str, *, gate_bars: np.ndarray | None = None
    ) -> tuple[dict[str, float], SplitScore]:
        """:meth:`score` with the whole :class:`SplitScore` (returns and positions)."""
        data, cfg = self.data, self.cfg
        bars = data.splits.bars(split)
        if len(bars) < 2:
            raise TrialError(f"split {split!r} has {len(bars)} decision bars; nothing to backtest")
        device = resolve_device(self.settings.device)
        self.module.to(device)
        stop = int(max(bars[-1], gate_bars[-1] if gate_bars is not None and len(gate_bars) else 0)) + 1
        tensors = TrialTensors(data, cfg.seq_len, stop, device, cfg.class_weights)
        score: SplitScore = score_split(
            self.module,
            tensors,
            bars,
            cfg,
            data,
            self.settings.backtest,
            cfg.eval_batch_size,
            gate_bars=gate_bars,
        )
        metrics = score.backtest.to_dict()
        metrics[f"{split}_accuracy"] = score.accuracy
        metrics[f"{split}_loss"] = score.loss
        bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
        if bad:
            raise TrialError(f"non-finite metrics on {split}: {', '.join(bad)}")
        return metrics, score


def evaluate(
    family: str,
    params: Mapping[str, Any],
    data: PreparedData,
    settings: EvalSettings,
    *,
    on_epoch: EpochCallback | None = None,
    checkpoint_path: Path | None = None,
) -> EvalResult:
    """Build, train and validate one configuration of ``family`` (:meth:`TrialModel.train`)."""
    return TrialModel.build(family, params, data, settings).train(
        on_epoch=on_epoch, checkpoint_path=checkpoint_path
    )
