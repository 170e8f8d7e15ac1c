"""Building blocks shared by the model families.

Positional encodings (fixed sinusoidal, learnable), sequence pooling (last
token, attention with the last step as query), the causal past-window mask,
and the MLP heads of the original models (action head, profit head).
Parameter-count helpers sit next to each block so that a family's closed-form
count is assembled from the same pieces the module is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from strategies.exceptions import ConfigError

__all__ = [
    "ACTIVATIONS",
    "ActionHead",
    "AttentionPool",
    "LearnablePositionalEncoding",
    "ProfitHead",
    "SinusoidalPositionalEncoding",
    "action_head_params",
    "attention_params",
    "layer_norm_params",
    "linear_params",
    "past_window_mask",
    "profit_head_params",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}


def linear_params(n_in: int, n_out: int) -> int:
    """Parameters of ``nn.Linear(n_in, n_out)`` with bias."""
    return n_in * n_out + n_out


def layer_norm_params(d: int) -> int:
    return 2 * d


def attention_params(d: int) -> int:
    """Parameters of ``nn.MultiheadAttention(d, h)`` (in- and out-projections, biases)."""
    return 3 * d * d + 3 * d + linear_params(d, d)


def _sinusoid_table(n_positions: int, d_model: int) -> Tensor:
    """`n_positions x d_model`: sin on even dims, cos on odd dims, base 10000."""
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: d_model // 2])
    return table


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table; ``max_len`` positions are precomputed.

    Longer sequences get a table computed on the fly, as in the original.
    """

    pe: Tensor

    def __init__(self, d_model: int, max_len: int = 1000) -> None:
        super().__init__()
        self.d_model = d_model
        self.register_buffer("pe", _sinusoid_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """`x: batch x seq x d_model` -> same shape."""
        seq = x.size(1)
        if seq <= self.pe.size(0):
            return x + self.pe[:seq]
        return x + _sinusoid_table(seq, self.d_model).to(x)


class LearnablePositionalEncoding(nn.Module):
    """A learned `max_len x d_model` table (zeros at init), so ``seq <= max_len``."""

    def __init__(self, d_model: int, max_len: int = 100) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.zeros(1, max_len, d_model))

    def forward(self, x: Tensor) -> Tensor:
        """`x: batch x seq x d_model` -> same shape."""
        seq, max_len = x.size(1), self.pe.size(1)
        if seq > max_len:
            raise ConfigError(
                f"sequence length must be <= {max_len} (learnable positions), got {seq}; "
                f"use seq_len <= {max_len}"
            )
        return x + self.pe[:, :seq]


def past_window_mask(seq: int, window: int | None, device: torch.device | None = None) -> Tensor:
    """`seq x seq` boolean mask, True where attention is *blocked*.

    Query i may attend to keys j with ``i - window <= j <= i`` (itself plus
    ``window`` past steps); ``window=None`` gives a plain causal mask.
    """
    i = torch.arange(seq, device=device).unsqueeze(1)
    j = torch.arange(seq, device=device).unsqueeze(0)
    blocked = j > i
    if window is not None:
        blocked = blocked | (j < i - window)
    return blocked


class AttentionPool(nn.Module):
    """Pools a sequence with multi-head attention, the last step as the query."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        """`x: batch x seq x d` -> `batch x d`."""
        query = x[:, -1:]  # batch x 1 x d
        pooled, _ = self.attn(query, x, x, need_weights=False)  # batch x 1 x d
        return pooled.squeeze(1)


class ActionHead(nn.Sequential):
    """``d -> d/2 -> d/4 -> n_out``: Linear, activation, [LayerNorm], Dropout, twice.

    ``layer_norm`` places a LayerNorm after each activation (Enhanced / MoE
    order: Linear -> act -> LN -> Dropout).
    """

    def __init__(
        self,
        d: int,
        activation: str,
        dropouts: tuple[float, float],
        layer_norm: bool,
        n_out: int = 3,
    ) -> None:
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        for n_in, n_hidden, p in ((d, d // 2, dropouts[0]), (d // 2, d // 4, dropouts[1])):
            layers += [nn.Linear(n_in, n_hidden), act()]
            if layer_norm:
                layers.append(nn.LayerNorm(n_hidden))
            layers.append(nn.Dropout(p))
        layers.append(nn.Linear(d // 4, n_out))
        super().__init__(*layers)


def action_head_params(d: int, layer_norm: bool, n_out: int = 3) -> int:
    norms = layer_norm_params(d // 2) + layer_norm_params(d // 4) if layer_norm else 0
    return linear_params(d, d // 2) + linear_params(d // 2, d // 4) + linear_params(d // 4, n_out) + norms


class ProfitHead(nn.Module):
    """``d -> d -> d/2 -> 1``: Linear, LayerNorm, activation, Dropout (0.3, then 0.2).

    The three-layer profit regressor of the LSTM (ReLU) and of the MoE / Enhanced
    models (GELU). Output is unbounded (clamping belongs to inference).
    """

    def __init__(self, d: int, activation: str) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        self.net = nn.Sequential(
            nn.Linear(d, d), nn.LayerNorm(d), act(), nn.Dropout(0.3),
            nn.Linear(d, d // 2), nn.LayerNorm(d // 2), act(), nn.Dropout(0.2),
            nn.Linear(d // 2, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        """`x: batch x d` -> `batch`."""
        return self.net(x).squeeze(-1)


def profit_head_params(d: int) -> int:
    return (
        linear_params(d, d)
        + layer_norm_params(d)
        + linear_params(d, d // 2)
        + layer_norm_params(d // 2)
        + linear_params(d // 2, 1)
    )
