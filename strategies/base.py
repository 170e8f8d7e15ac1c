"""What every model family returns."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["ModelOutput"]


class ModelOutput(NamedTuple):
    """Outputs of one forward pass.

    Attributes:
        logits: `batch x 3` raw action scores (0 hold, 1 long, 2 short); never
            softmaxed inside the model unless a legacy option asks for it.
        profit: `batch` predicted profit of the chosen side, or None.
        grid: `batch` grid-adjustment factor in [0.8, 1.2], or None.
        aux_loss: scalar auxiliary loss (MoE load balancing), or None.
    """

    logits: Tensor
    profit: Tensor | None = None
    grid: Tensor | None = None
    aux_loss: Tensor | None = None
