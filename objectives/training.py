"""One training loop for every model family.

AdamW with gradient clipping, an LR schedule (``none``, ``cosine`` to
``max_epochs`` with eta_min 1e-6, ``warmup_cosine``: linear warmup over
``warmup_epochs`` then cosine, ``plateau``: halve on a selection-loss
plateau of 5 epochs), the losses of :mod:`objectives.losses`, optional
augmentation, and per-epoch scoring of the fit's inner selection slice
(loss, accuracy, and a backtest of the model's own actions) reported to a
callback that may stop the trial.

Which weights are kept: the epoch with the lowest loss on the selection
slice, and early stopping counts epochs without a lower selection loss (the
original used validation accuracy). The slice is the end of the fit's own
training window (:class:`~objectives.dataset.FitWindow`), purged from the
bars it trains on; the bars the fit then trades (a walk-forward block, the
holdout validation split) are never scored during training, so no choice made
here (epoch, early stop, learning-rate schedule, gate) has seen them.
Choosing on a Sharpe ratio instead of the loss would select on the very
figure the search optimises.

Augmentation (``augment=True``, off by default; the MoE recipe): per batch,
with probability 0.3 mixup (lambda ~ Beta(0.2, 0.2), inputs and profit
targets mixed, the action loss mixed between both labels), with probability
0.3 Gaussian noise (std 0.01) on half of the samples, else nothing.

Determinism: shuffling and augmentation use generators seeded from ``seed``;
dropout draws from torch's global generator inside a ``fork_rng`` block
seeded with ``seed``, so the global state is left untouched. The same seed
gives the same metrics on the same CPU machine (CUDA kernels such as cuDNN's
LSTM are not guaranteed bit-identical). Minibatches are
gathered by index from a window view of the feature tensor (no DataLoader).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from objectives.backtest import (
    BacktestResult,
    action_confidence,
    actions_to_positions,
    net_returns,
    ranked_positions,
    run_backtest,
)
from objectives.config import BacktestSpec
from objectives.dataset import FitWindow, PreparedData, as_tensor, gather_windows, window_view
from objectives.losses import LossSettings, class_weights, total_loss
from objectives.train_config import TrainConfig
from strategies.base import ModelOutput
from strategies.exceptions import TrialError

__all__ = [
    "EpochCallback",
    "EpochReport",
    "SplitScore",
    "TrainResult",
    "TrialTensors",
    "gate_threshold",
    "resolve_device",
    "score_split",
    "train_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochReport:
    """Progress after one epoch (``seconds``: elapsed since training started).

    The ``val_*`` figures are those of the fit's inner selection slice (NaN
    without one), never of the bars the fit trades.
    """

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_sharpe: float
    val_return_pct: float
    seconds: float


EpochCallback = Callable[[EpochReport], bool]


@dataclass(frozen=True)
class SplitScore:
    """A model scored on decision bars: loss and accuracy (on the first ``n_labelled`` bars),
    probabilities `n x 3`, positions `n`, backtest, per-bar net returns `n`."""

    loss: float
    accuracy: float
    probs: np.ndarray
    backtest: BacktestResult
    positions: np.ndarray
    returns: np.ndarray


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_model`; the model holds the best weights afterwards."""

    best_state: dict[str, Tensor]
    best_epoch: int
    epochs_run: int
    curve: tuple[EpochReport, ...]
    stopped_by_callback: bool
    stop_reason: str


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class TrialTensors:
    """Device tensors of one trial: the window view, labels, profit targets, class weights."""

    def __init__(
        self,
        data: PreparedData,
        seq_len: int,
        stop: int,
        device: torch.device,
        use_class_weights: bool,
        train_bars: np.ndarray | None = None,
    ) -> None:
        if seq_len > data.max_seq_len:
            raise TrialError(
                f"seq_len {seq_len} exceeds the prepared max_seq_len {data.max_seq_len}; "
                "prepare the data with max_seq_len >= the largest seq_len searched"
            )
        self.seq_len = seq_len
        self.device = device
        self.view = window_view(as_tensor(data.features[:stop], device), seq_len)  # (stop-L+1) x L x F
        self.labels = as_tensor(data.labels[:stop], device)
        self.profit = as_tensor(data.profit[:stop], device)
        self.data = data
        self.use_class_weights = use_class_weights
        self.set_class_weights(data.splits.bars("train") if train_bars is None else train_bars)

    def set_class_weights(self, train_bars: np.ndarray) -> None:
        """Class weights from the labels of ``train_bars`` (all ones without class weighting)."""
        train = torch.from_numpy(self.data.labels[train_bars].copy())
        weights = class_weights(train) if self.use_class_weights else torch.ones(3)
        self.weights = weights.to(self.device)

    def batch(self, bars: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(windows `batch x L x F`, labels `batch`, profit `batch`) of decision bars ``bars``."""
        return gather_windows(self.view, bars, self.seq_len), self.labels[bars], self.profit[bars]


GATE_CALIBRATION_BARS = 1024  # training bars whose confidence calibrates a 'train_quantile' gate


def score_split(
    model: nn.Module,
    t: TrialTensors,
    bars: np.ndarray,
    cfg: TrainConfig,
    data: PreparedData,
    spec: BacktestSpec,
    batch_size: int,
    *,
    n_labelled: int | None = None,
    gate_bars: np.ndarray | None = None,
) -> SplitScore:
    """Loss, accuracy and backtest of ``model`` on decision bars ``bars`` (eval mode, no grad).

    Loss and accuracy are taken over the first ``n_labelled`` bars (default all);
    a ``'train_quantile'`` gate is calibrated on ``gate_bars`` (default: the
    training split).
    """
    model.eval()
    settings = cfg.loss_settings()
    idx = torch.from_numpy(np.asarray(bars, dtype=np.int64)).to(t.device)
    n_sel = len(idx) if n_labelled is None else max(0, min(n_labelled, len(idx)))
    probs, loss_sum = [], 0.0
    with torch.no_grad():
        # batches split at n_sel, so that the loss needs no second pass
        for lo, hi in ((0, n_sel), (n_sel, len(idx))):
            for start in range(lo, hi, batch_size):
                x, y, p = t.batch(idx[start : min(start + batch_size, hi)])
                out = _forward(model, x)
                if hi == n_sel:
                    loss_sum += total_loss(out, y, p, t.weights, settings).total.item() * len(y)
                probs.append(torch.softmax(out.logits.float(), dim=-1).cpu())
    prob = torch.cat(probs).numpy().astype(np.float64)
    labels = data.labels[bars]
    gate = cfg.confidence_gate if cfg.confidence_gate is not None else spec.confidence_gate
    if spec.gate == "train_quantile":
        threshold = gate_threshold(
            model, t, data, gate, batch_size, allow_short=spec.allow_short, train_bars=gate_bars
        )
        positions = ranked_positions(prob, threshold=threshold, allow_short=spec.allow_short)
    else:
        positions = actions_to_positions(prob, confidence_gate=gate, allow_short=spec.allow_short)
    close = data.close[bars]
    costs = {"fee_bps": spec.fee_bps, "slippage_bps": spec.slippage_bps}
    result = run_backtest(close, positions, periods_per_year=data.periods_per_year, **costs)
    return SplitScore(
        loss=loss_sum / n_sel if n_sel else math.nan,
        accuracy=float((prob[:n_sel].argmax(1) == labels[:n_sel]).mean()) if n_sel else math.nan,
        probs=prob,
        backtest=result,
        positions=positions,
        returns=net_returns(close, positions, **costs),
    )


def gate_threshold(
    model: nn.Module,
    t: TrialTensors,
    data: PreparedData,
    quantile: float,
    batch_size: int,
    *,
    allow_short: bool = True,
    train_bars: np.ndarray | None = None,
) -> float:
    """The probability threshold of a ``'train_quantile'`` gate: the ``quantile`` of ``model``'s confidence.

    Confidence is the probability of the more likely trade, max(p_long,
    p_short) (p_long without shorts; see :func:`~objectives.backtest.ranked_positions`),
    over the last :data:`GATE_CALIBRATION_BARS` decision bars the model was
    trained on (``train_bars``, default the training split); their windows end
    inside it, so the threshold uses no validation or test bar. ``quantile`` 0
    trades every bar.
    """
    if quantile <= 0.0:
        return 0.0
    bars = (data.splits.bars("train") if train_bars is None else train_bars)[-GATE_CALIBRATION_BARS:]
    idx = torch.from_numpy(bars).to(t.device)
    top = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(idx), batch_size):
            x, _, _ = t.batch(idx[start : start + batch_size])
            top.append(torch.softmax(_forward(model, x).logits.float(), dim=-1).cpu())
    conf = action_confidence(torch.cat(top).numpy().astype(np.float64), allow_short=allow_short)
    return float(np.quantile(conf, quantile))


def _forward(model: nn.Module, x: Tensor) -> ModelOutput:
    out = model(x)
    if not isinstance(out, ModelOutput):
        raise TrialError(f"the model must return strategies.base.ModelOutput, got {type(out).__name__}")
    return out


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, max_epochs: int) -> object | None:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs, eta_min=1e-6)
    if cfg.schedule == "warmup_cosine":
        warm = max(cfg.warmup_epochs, 0)

        def factor(e: int) -> float:
            if e < warm:
                return (e + 1) / warm
            return 0.5 * (1.0 + math.cos(math.pi * (e - warm) / max(1, max_epochs - warm)))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=0.5, patience=5, min_lr=1e-6
        )
    return None


def _augment(
    x: Tensor, y: Tensor, p: Tensor, gen: torch.Generator, rng: np.random.Generator
) -> tuple[Tensor, Tensor, tuple[Tensor, float] | None]:
    u = rng.random()
    if u < 0.3 and len(y) > 1:
        lam = float(rng.beta(0.2, 0.2))
        perm = torch.randperm(len(y), generator=gen).to(x.device)
        return lam * x + (1 - lam) * x[perm], lam * p + (1 - lam) * p[perm], (y[perm], lam)
    if u < 0.6:
        noise = 0.01 * torch.randn(x.shape, generator=gen).to(x.device)
        pick = (torch.rand(len(y), generator=gen) < 0.5).to(x.device).view(-1, 1, 1)
        return x + noise * pick, p, None
    return x, p, None


def _train_epoch(
    model: nn.Module,
    t: TrialTensors,
    train_bars: Tensor,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    settings: LossSettings,
    gen: torch.Generator,
    rng: np.random.Generator,
    deadline: float,
) -> tuple[float, bool]:
    """One pass over shuffled training bars: (mean loss, ran out of time)."""
    model.train()
    perm = torch.randperm(len(train_bars), generator=gen).to(t.device)
    loss_sum, seen = 0.0, 0
    for start in range(0, len(perm), cfg.batch_size):
        x, y, p = t.batch(train_bars[perm[start : start + cfg.batch_size]])
        mix = None
        if cfg.augment:
            x, p, mix = _augment(x, y, p, gen, rng)
        parts = total_loss(_forward(model, x), y, p, t.weights, settings, mix=mix)
        if not torch.isfinite(parts.total):
            raise TrialError(
                f"training loss became non-finite ({parts.total.item()}) with learning_rate "
                f"{cfg.learning_rate}; lower the learning rate or enable grad_clip"
            )
        opt.zero_grad(set_to_none=True)
        parts.total.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        loss_sum += parts.total.item() * len(y)
        seen += len(y)
        if time.perf_counter() > deadline:
            return loss_sum / seen, True
    return loss_sum / max(seen, 1), False


def train_model(
    model: nn.Module,
    data: PreparedData,
    cfg: TrainConfig,
    *,
    max_epochs: int,
    seed: int,
    backtest: BacktestSpec,
    device: str | torch.device = "auto",
    time_budget_s: float | None = None,
    on_epoch: EpochCallback | None = None,
    window: FitWindow | None = None,
    tensors: TrialTensors | None = None,
) -> TrainResult:
    """Train ``model`` on ``window``'s training bars, validating every epoch; restore the best weights.

    Args:
        model: maps `batch x seq_len x n_features` float32 to a ModelOutput.
        data: prepared study data.
        cfg: training parameters.
        max_epochs: epoch budget.
        seed: seeds shuffling, augmentation and dropout.
        backtest: costs, gate and shorting of the per-epoch validation backtest.
        device: ``auto``, ``cpu``, ``cuda``, ...
        time_budget_s: stop after the batch at which this many seconds have passed.
        on_epoch: called after each epoch; returning True stops training.
        window: the decision bars to train on and to choose by: its inner
            selection slice chooses the kept epoch, patience and the plateau
            schedule (default: ``data.fit``, the holdout fit; else the
            training split with nothing selected). Its ``val`` bars (those the
            fit trades) are not looked at. Without a selection slice every
            epoch is kept in turn: the last one is returned.
        tensors: device tensors to reuse (e.g. across walk-forward folds);
            they must reach ``window.stop``. Class weights come from them.
    """
    dev = resolve_device(device)
    model.to(dev)
    started = time.perf_counter()
    deadline = started + time_budget_s if time_budget_s is not None else math.inf
    window = window or data.fit or FitWindow.holdout(data.splits)
    t = tensors or TrialTensors(
        data, cfg.seq_len, window.stop, dev, cfg.class_weights, train_bars=window.train_bars()
    )
    train_np = window.train_bars()
    train_bars = torch.from_numpy(train_np).to(dev)
    select_bars = window.select_bars()
    eval_batch = cfg.eval_batch_size
    settings = cfg.loss_settings()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = _scheduler(opt, cfg, max_epochs)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    curve: list[EpochReport] = []
    best_loss, best_epoch, best_state, stale = math.inf, 0, _cpu_state(model), 0
    reason, by_callback = "max_epochs", False
    devices = (
        [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for epoch in range(1, max_epochs + 1):
            train_loss, out_of_time = _train_epoch(
                model, t, train_bars, opt, cfg, settings, gen, rng, deadline
            )
            report = _validate(
                model, t, select_bars, train_np, cfg, data, backtest, eval_batch, epoch, train_loss
            )
            report = dataclasses.replace(report, seconds=time.perf_counter() - started)
            curve.append(report)
            logger.debug("epoch %d: %s", epoch, report)
            score = report.val_loss if len(select_bars) else -float(epoch)  # nothing to choose on: the last
            if score < best_loss:
                best_loss, best_epoch, best_state, stale = score, epoch, _cpu_state(model), 0
            else:
                stale += 1
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(report.val_loss if len(select_bars) else train_loss)
            elif isinstance(sched, torch.optim.lr_scheduler.LRScheduler):
                sched.step()
            if on_epoch is not None and on_epoch(report):
                reason, by_callback = "callback", True
                break
            if out_of_time or time.perf_counter() > deadline:
                reason = "time_budget"
                break
            if stale >= cfg.patience:
                reason = "early_stopping"
                break
    model.load_state_dict(best_state)
    return TrainResult(
        best_state=best_state,
        best_epoch=best_epoch,
        epochs_run=len(curve),
        curve=tuple(curve),
        stopped_by_callback=by_callback,
        stop_reason=reason,
    )


def _validate(
    model: nn.Module,
    t: TrialTensors,
    select_bars: np.ndarray,
    train_bars: np.ndarray,
    cfg: TrainConfig,
    data: PreparedData,
    backtest: BacktestSpec,
    batch_size: int,
    epoch: int,
    train_loss: float,
) -> EpochReport:
    """One epoch's report on the selection slice (its figures NaN when there is none)."""
    if not len(select_bars):
        nan = math.nan
        return EpochReport(epoch, train_loss, nan, nan, nan, nan, 0.0)
    val = score_split(model, t, select_bars, cfg, data, backtest, batch_size, gate_bars=train_bars)
    if not math.isfinite(val.loss):
        raise TrialError(f"selection loss is non-finite at epoch {epoch}")
    return EpochReport(
        epoch=epoch,
        train_loss=train_loss,
        val_loss=val.loss,
        val_accuracy=val.accuracy,
        val_sharpe=val.backtest.sharpe,
        val_return_pct=val.backtest.return_pct,
        seconds=0.0,
    )


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
