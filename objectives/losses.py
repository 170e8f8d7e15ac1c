"""Training losses on model logits (never on softmax outputs).

Action losses, each a plain mean over the batch of per-sample losses
multiplied by ``weight[target]``:

- ``ce``: cross-entropy.
- ``focal``: ``weight[y] * (1 - p_y)^gamma * CE``, where ``p_y`` is the
  model's probability of the true class. (The original took ``p_t =
  exp(-weighted CE)``, which lets the class weight distort ``p_t``; boengine
  uses the standard definition.)
- ``label_smoothing``: 1 - s on the true class, s / (C - 1) on each other.
- ``ls_focal``: ``0.7 * label_smoothing + 0.3 * focal`` (the PEFT recipe).

Class weights ``N / (K * n_c)`` over the K classes present in the training
labels, placed at each class's own id (the original's shorter, sorted vector
misaligned ids when a class was missing); an absent class gets weight 1.

Total loss = action + ``profit_weight`` x profit loss (MSE or Huber) on the
profit head + ``aux_weight`` x the model's auxiliary loss (MoE load balance).
No grid-adjustment target is prepared for bar data, so a grid head, if a
model has one, is not trained and ``grid_weight`` has no effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from strategies.base import ModelOutput

__all__ = ["LossParts", "action_loss", "class_weights", "total_loss"]

N_CLASSES = 3
ACTION_LOSSES = ("ce", "focal", "label_smoothing", "ls_focal")
PROFIT_LOSSES = ("mse", "huber")


def class_weights(labels: Tensor, n_classes: int = N_CLASSES) -> Tensor:
    """``N / (K * n_c)`` per class id for the K present classes, 1 for absent ones: `n_classes`."""
    counts = torch.bincount(labels[labels >= 0], minlength=n_classes).to(torch.float32)
    present = counts > 0
    n_total, k = counts.sum(), present.sum()
    weights = torch.ones(n_classes)
    weights[present] = n_total / (k * counts[present])
    return weights


def _focal(logits: Tensor, y: Tensor, w: Tensor, gamma: float) -> Tensor:
    ce = F.cross_entropy(logits, y, reduction="none")  # batch
    p_true = torch.exp(-ce)
    return (w[y] * (1.0 - p_true).pow(gamma) * ce).mean()


def _smoothed(logits: Tensor, y: Tensor, w: Tensor, smoothing: float) -> Tensor:
    n_cls = logits.shape[-1]
    log_p = F.log_softmax(logits, dim=-1)  # batch x C
    target = torch.full_like(log_p, smoothing / (n_cls - 1))
    target.scatter_(1, y.unsqueeze(1), 1.0 - smoothing)
    return (w[y] * -(target * log_p).sum(dim=-1)).mean()


def action_loss(
    logits: Tensor, y: Tensor, weights: Tensor, kind: str, *, gamma: float = 2.0, smoothing: float = 0.2
) -> Tensor:
    """Scalar action loss. ``logits``: `batch x 3`; ``y``: `batch` int64; ``weights``: `3`."""
    if kind == "ce":
        return (weights[y] * F.cross_entropy(logits, y, reduction="none")).mean()
    if kind == "focal":
        return _focal(logits, y, weights, gamma)
    if kind == "label_smoothing":
        return _smoothed(logits, y, weights, smoothing)
    if kind == "ls_focal":
        return 0.7 * _smoothed(logits, y, weights, smoothing) + 0.3 * _focal(logits, y, weights, gamma)
    raise ValueError(f"loss must be one of {ACTION_LOSSES}, got {kind!r}")


@dataclass(frozen=True)
class LossParts:
    """The total loss (for backward) and its detached components."""

    total: Tensor
    action: float
    profit: float
    aux: float


@dataclass(frozen=True)
class LossSettings:
    """The loss-related training parameters."""

    loss: str = "ce"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.2
    profit_loss: str = "mse"
    profit_weight: float = 1.0
    huber_delta: float = 0.01
    aux_weight: float = 0.01


def _profit_loss(pred: Tensor, target: Tensor, s: LossSettings) -> Tensor:
    if s.profit_loss == "huber":
        return F.huber_loss(pred, target, delta=s.huber_delta)
    return F.mse_loss(pred, target)


def total_loss(
    out: ModelOutput,
    y: Tensor,
    profit: Tensor,
    weights: Tensor,
    s: LossSettings,
    *,
    mix: tuple[Tensor, float] | None = None,
) -> LossParts:
    """Loss of one batch.

    Args:
        out: model outputs (logits `batch x 3`, profit `batch` or None, aux scalar or None).
        y: `batch` labels; profit: `batch` profit targets; weights: `3` class weights.
        s: loss settings.
        mix: for mixup, (the permuted labels `batch`, lambda): the action loss
            becomes ``lambda * L(y) + (1 - lambda) * L(y_perm)``.
    """
    act = action_loss(out.logits, y, weights, s.loss, gamma=s.focal_gamma, smoothing=s.label_smoothing)
    if mix is not None:
        y_perm, lam = mix
        other = action_loss(
            out.logits, y_perm, weights, s.loss, gamma=s.focal_gamma, smoothing=s.label_smoothing
        )
        act = lam * act + (1.0 - lam) * other
    total = act
    prof = torch.zeros((), device=act.device)
    if out.profit is not None and s.profit_weight > 0:
        prof = _profit_loss(out.profit.reshape(-1), profit, s)
        total = total + s.profit_weight * prof
    aux = torch.zeros((), device=act.device)
    if out.aux_loss is not None and s.aux_weight > 0:
        aux = out.aux_loss
        total = total + s.aux_weight * aux
    return LossParts(
        total=total, action=float(act.detach()), profit=float(prof.detach()), aux=float(aux.detach())
    )
