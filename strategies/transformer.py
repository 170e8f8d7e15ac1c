"""Transformer families: ``transformer_large``, ``transformer_enhanced``, ``transformer_huge``.

One encoder-classifier with three fixed architectures (reference §1.4):

| family | defaults | activation | positions | pooling | action head |
|---|---|---|---|---|---|
| large | d 256, 6 layers | ReLU | sinusoidal | last token | ReLU, Drop 0.2 / 0.1 |
| enhanced | d 512, 8 layers | GELU | sinusoidal | attention, last step as query, Drop 0.3 | GELU + LayerNorm, Drop 0.3 / 0.2 |
| huge | d 512, 8 layers | GELU | learnable, 100 steps | last token | GELU, Drop 0.1 / 0.1 |

All: input projection, post-LN encoder layers with 8 heads, FFN ``4 * d``,
dropout 0.1, and raw logits. The originals applied a softmax inside forward
and then cross-entropy; ``legacy_softmax=True`` reproduces that. The profit
head (off by default, as in the 12-feature originals) is the three-layer
head of the "with profit" variants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from torch import Tensor, nn

from strategies.base import ModelOutput
from strategies.layers import (
    ActionHead,
    AttentionPool,
    LearnablePositionalEncoding,
    ProfitHead,
    SinusoidalPositionalEncoding,
    action_head_params,
    attention_params,
    layer_norm_params,
    linear_params,
    profit_head_params,
)
from strategies.registry import (
    check_encoder,
    cpu_training_params,
    gpu_training_params,
    read_int,
    read_params,
    recipe,
    register_family,
    require,
    resolve_d_model,
)
from strategies.space import ChoiceParam, FloatParam, IntParam, SearchSpace

__all__ = [
    "EnhancedTransformerConfig",
    "HugeTransformerConfig",
    "LargeTransformerConfig",
    "TradingTransformer",
    "TransformerConfig",
]


@dataclass(frozen=True)
class TransformerConfig:
    """Shared settings; the subclasses fix the architecture and the original sizes.

    Shapes: ``x: batch x seq x input_size`` -> projection ``batch x seq x d_model``
    -> pooled ``batch x d_model`` -> logits ``batch x 3`` (profit ``batch``).
    ``d_model = n_heads * head_dim`` when searched.
    """

    input_size: int = 12
    d_model: int = 256
    n_heads: int = 8
    num_layers: int = 6
    dropout: float = 0.1
    ffn_mult: int = 4
    predict_profit: bool = False
    legacy_softmax: bool = False

    PARAMS: ClassVar[frozenset[str]] = frozenset(
        {"n_heads", "head_dim", "d_model", "num_layers", "dropout", "ffn_mult", "predict_profit",
         "legacy_softmax"}
    )  # fmt: skip
    activation: ClassVar[str] = "relu"
    positions: ClassVar[str] = "sinusoidal"  # or "learnable"
    max_len: ClassVar[int] = 1000  # precomputed (sinusoidal) or learned (learnable) positions
    pooling: ClassVar[str] = "last"  # or "attention"
    pool_dropout: ClassVar[float] = 0.0
    head_layer_norm: ClassVar[bool] = False
    head_dropouts: ClassVar[tuple[float, float]] = (0.2, 0.1)
    xavier_init: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_encoder(self.d_model, self.n_heads, self.num_layers, self.ffn_mult)
        require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], input_size: int) -> TransformerConfig:
        n_heads, d_model = resolve_d_model(params, cls.n_heads, cls.d_model)
        values = read_params(cls, params) | {"n_heads": n_heads, "d_model": d_model}
        if cls.positions == "learnable" and "seq_len" in params:
            seq_len = read_int("seq_len", params["seq_len"])
            require(
                seq_len <= cls.max_len,
                f"seq_len must be <= {cls.max_len} (learnable positions), got {seq_len}",
            )
        return cls(input_size=input_size, **values)

    def num_parameters(self) -> int:
        d, f = self.d_model, self.ffn_mult * self.d_model
        layer = attention_params(d) + linear_params(d, f) + linear_params(f, d) + 2 * layer_norm_params(d)
        total = linear_params(self.input_size, d) + self.num_layers * layer
        total += self.max_len * d if self.positions == "learnable" else 0
        total += attention_params(d) if self.pooling == "attention" else 0
        total += action_head_params(d, self.head_layer_norm)
        return total + (profit_head_params(d) if self.predict_profit else 0)


@dataclass(frozen=True)
class LargeTransformerConfig(TransformerConfig):
    """``LargeTradingTransformer``: d 256, 6 layers, ReLU, last token (4,783,235 params at input 12)."""


@dataclass(frozen=True)
class EnhancedTransformerConfig(TransformerConfig):
    """``EnhancedTradingTransformer``: d 512, 8 layers, GELU, attention pooling (26,441,731 at input 12)."""

    d_model: int = 512
    num_layers: int = 8

    activation: ClassVar[str] = "gelu"
    pooling: ClassVar[str] = "attention"
    pool_dropout: ClassVar[float] = 0.3
    head_layer_norm: ClassVar[bool] = True
    head_dropouts: ClassVar[tuple[float, float]] = (0.3, 0.2)


@dataclass(frozen=True)
class HugeTransformerConfig(TransformerConfig):
    """``HugeTransformer``: d 512, 8 layers, GELU, 100 learnable positions (25,441,539 at input 12)."""

    d_model: int = 512
    num_layers: int = 8

    activation: ClassVar[str] = "gelu"
    positions: ClassVar[str] = "learnable"
    max_len: ClassVar[int] = 100
    head_dropouts: ClassVar[tuple[float, float]] = (0.1, 0.1)
    xavier_init: ClassVar[bool] = True


def _space() -> SearchSpace:
    """CPU-sized: d_model 16-64, 1-2 layers, sequence 16-64.

    Measured (one CPU thread, AdamW step with CE, clip 1.0, input 12): d 32, 2
    layers, sequence 40, batch 32 takes 28-36 ms a step, 35-45 s for 10 epochs
    of 4,000 windows; the largest corner (d 64, sequence 64) about 2-3 min.
    """
    return SearchSpace(
        (
            *cpu_training_params(seq_len=(16, 64)),
            ChoiceParam("n_heads", (2, 4)),
            ChoiceParam("head_dim", (8, 16)),
            IntParam("num_layers", 1, 2),
            FloatParam("dropout", 0.0, 0.3),
            ChoiceParam("predict_profit", (False, True), ordered=False),
        )
    )


def _gpu_space(seq_lens: tuple[int, ...]) -> SearchSpace:
    return SearchSpace(
        (
            *gpu_training_params(seq_lens=seq_lens),
            ChoiceParam("n_heads", (2, 4, 8)),
            ChoiceParam("head_dim", (32, 64)),
            ChoiceParam("num_layers", (2, 3, 4, 6, 8)),
            FloatParam("dropout", 0.1, 0.3),
            ChoiceParam("predict_profit", (False, True), ordered=False),
        )
    )


# The strategies' recipes (reference §1.4, §3.1): AdamW 5e-4 / 1e-4, ReduceLROnPlateau,
# class-weighted CE, batch 16; sequence 100 as served ("transformer" in strategy_config.json).
_RECIPE = recipe(learning_rate=5e-4, weight_decay=1e-4, batch_size=16, seq_len=100, schedule="plateau")
_FULL_SEQS = (10, 20, 30, 50, 100, 300, 500)
_SHORT_SEQS = (10, 20, 30, 50, 100)  # huge: learnable positions, seq_len <= 100


@register_family(
    "transformer_huge",
    config_cls=HugeTransformerConfig,
    default_space=_space,
    gpu_space=partial(_gpu_space, seq_lens=_SHORT_SEQS),
    feature_set="basic",
    train_defaults=_RECIPE,
)
@register_family(
    "transformer_enhanced",
    config_cls=EnhancedTransformerConfig,
    default_space=_space,
    gpu_space=partial(_gpu_space, seq_lens=_FULL_SEQS),
    feature_set="basic",
    train_defaults=_RECIPE,
)
@register_family(
    "transformer_large",
    config_cls=LargeTransformerConfig,
    default_space=_space,
    gpu_space=partial(_gpu_space, seq_lens=_FULL_SEQS),
    feature_set="basic",
    train_defaults=_RECIPE,
)
class TradingTransformer(nn.Module):
    """Input projection, positions, post-LN encoder, pooling, action [and profit] heads."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.input_projection = nn.Linear(cfg.input_size, d)
        self.positions: nn.Module = (
            LearnablePositionalEncoding(d, cfg.max_len)
            if cfg.positions == "learnable"
            else SinusoidalPositionalEncoding(d, cfg.max_len)
        )
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, cfg.n_heads, cfg.ffn_mult * d, cfg.dropout, activation=cfg.activation, batch_first=True
            )
            for _ in range(cfg.num_layers)
        )
        self.pool = AttentionPool(d, cfg.n_heads, cfg.dropout) if cfg.pooling == "attention" else None
        self.pool_dropout = nn.Dropout(cfg.pool_dropout)
        self.action_head = ActionHead(d, cfg.activation, cfg.head_dropouts, cfg.head_layer_norm)
        self.profit_head = ProfitHead(d, cfg.activation) if cfg.predict_profit else None
        if cfg.xavier_init:
            self._init_weights()

    def _init_weights(self) -> None:
        """Xavier on weight matrices, zero biases; the learnable positions stay zero."""
        for name, p in self.named_parameters():
            if name.startswith("positions"):
                continue
            if p.dim() >= 2:
                nn.init.xavier_uniform_(p)
            elif "bias" in name:
                nn.init.zeros_(p)

    def forward(self, x: Tensor) -> ModelOutput:
        """`x: batch x seq x input_size` -> :class:`ModelOutput`."""
        h = self.positions(self.input_projection(x))  # batch x seq x d
        for layer in self.layers:
            h = layer(h)  # batch x seq x d
        pooled = self.pool(h) if self.pool is not None else h[:, -1]  # batch x d
        pooled = self.pool_dropout(pooled)
        logits = self.action_head(pooled)  # batch x 3
        if self.cfg.legacy_softmax:
            logits = logits.softmax(dim=-1)
        profit = self.profit_head(pooled) if self.profit_head is not None else None  # batch
        return ModelOutput(logits, profit)
