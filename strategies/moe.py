"""``moe_transformer``: the mixture-of-experts Transformer with a profit head.

Pipeline (reference §1.2): input projection -> sinusoidal positions -> post-LN
layers of [causal self-attention limited to ``window_size`` past steps, then a
top-k mixture-of-experts feed-forward] -> attention pooling with the last step
as query -> Dropout 0.3 -> action head (3 logits) and profit head.

Routing: the gate scores every token; the top-k scores are softmaxed over the
k chosen experts only; each expert runs on the tokens routed to it. The
load-balancing loss ``E * sum_e(mean softmax(gate)_e ** 2)`` (minimum 1 per
layer, uniform usage) is summed over the layer passes and returned as
``aux_loss``; its weight belongs to the training loop (``aux_weight``).

The original's quirks are options, off by default: ``shared_layers`` applies
one layer's weights ``num_layers`` times (2,784,008 parameters at the training
script's sizes instead of 14,621,468), ``legacy_softmax`` returns softmax
probabilities instead of logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from strategies.base import ModelOutput
from strategies.layers import (
    ActionHead,
    AttentionPool,
    ProfitHead,
    SinusoidalPositionalEncoding,
    action_head_params,
    attention_params,
    layer_norm_params,
    linear_params,
    past_window_mask,
    profit_head_params,
)
from strategies.registry import (
    check_encoder,
    cpu_training_params,
    gpu_training_params,
    read_params,
    recipe,
    register_family,
    require,
    resolve_d_model,
)
from strategies.space import ChoiceParam, FloatParam, IntParam, LinearConstraint, SearchSpace

__all__ = ["MoEConfig", "MoEEncoderLayer", "MoEFeedForward", "MoETradingTransformer"]


@dataclass(frozen=True)
class MoEConfig:
    """Settings of :class:`MoETradingTransformer` (defaults: the training script's model).

    Shapes: ``x: batch x seq x input_size`` -> ``batch x seq x d_model`` through
    the layers -> pooled ``batch x d_model`` -> logits ``batch x 3``, profit
    ``batch``, aux_loss scalar. Gate: ``tokens x num_experts``; each expert
    ``d_model -> ffn_mult * d_model -> d_model``.

    Attributes:
        window_size: each query sees itself and ``window_size`` past steps.
        attention_dropout: extra dropout on the attention output in training.
        dropout: encoder dropout (attention weights, residual branches, experts).
    """

    input_size: int = 46
    d_model: int = 256
    n_heads: int = 8
    num_layers: int = 6
    num_experts: int = 4
    top_k: int = 2
    window_size: int = 20
    attention_dropout: float = 0.1
    dropout: float = 0.1
    ffn_mult: int = 4
    predict_profit: bool = True
    shared_layers: bool = False
    legacy_softmax: bool = False

    PARAMS: ClassVar[frozenset[str]] = frozenset(
        {"n_heads", "head_dim", "d_model", "num_layers", "num_experts", "top_k", "window_size",
         "attention_dropout", "dropout", "ffn_mult", "predict_profit", "shared_layers", "legacy_softmax"}
    )  # fmt: skip
    max_len: ClassVar[int] = 1000

    def __post_init__(self) -> None:
        check_encoder(self.d_model, self.n_heads, self.num_layers, self.ffn_mult)
        require(self.num_experts >= 1, f"num_experts must be >= 1, got {self.num_experts}")
        require(
            1 <= self.top_k <= self.num_experts,
            f"top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}",
        )
        require(self.window_size >= 0, f"window_size must be >= 0, got {self.window_size}")
        for name in ("attention_dropout", "dropout"):
            value = getattr(self, name)
            require(0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], input_size: int) -> MoEConfig:
        n_heads, d_model = resolve_d_model(params, cls.n_heads, cls.d_model)
        return cls(
            input_size=input_size, **read_params(cls, params) | {"n_heads": n_heads, "d_model": d_model}
        )

    def num_parameters(self) -> int:
        d, f, e = self.d_model, self.ffn_mult * self.d_model, self.num_experts
        experts = e * (linear_params(d, f) + linear_params(f, d))
        layer = attention_params(d) + linear_params(d, e) + experts + 2 * layer_norm_params(d)
        total = linear_params(self.input_size, d) + (1 if self.shared_layers else self.num_layers) * layer
        total += attention_params(d) + action_head_params(d, layer_norm=True)
        return total + (profit_head_params(d) if self.predict_profit else 0)


class MoEFeedForward(nn.Module):
    """Top-k routed experts replacing the FFN; returns the output and the balance loss."""

    def __init__(self, d_model: int, d_ff: int, num_experts: int, top_k: int, dropout: float) -> None:
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(d_model, num_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
            for _ in range(num_experts)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """`x: batch x seq x d` -> (`batch x seq x d`, scalar aux loss)."""
        tokens = x.reshape(-1, x.size(-1))  # n x d
        gate_logits = self.gate(tokens)  # n x E
        usage = gate_logits.softmax(dim=-1).mean(dim=0)  # E
        aux = len(self.experts) * usage.pow(2).sum()
        top_logits, top_idx = gate_logits.topk(self.top_k, dim=-1)  # n x k
        top_weights = top_logits.softmax(dim=-1)  # n x k, renormalised over the chosen experts
        out = tokens.new_zeros(tokens.shape)  # n x d
        for e, expert in enumerate(self.experts):
            chosen = top_idx == e  # n x k
            rows = chosen.any(dim=-1).nonzero(as_tuple=True)[0]  # r
            if rows.numel() == 0:
                continue
            weight = (top_weights * chosen).sum(dim=-1)[rows].unsqueeze(-1)  # r x 1
            out = out.index_add(0, rows, weight * expert(tokens[rows]))
        return out.view_as(x), aux


class MoEEncoderLayer(nn.Module):
    """Post-LN: ``x = LN1(x + Drop(Attn(x)))``, then ``x = LN2(x + Drop(MoE(x)))``."""

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.self_attn = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.dropout, batch_first=True)
        self.attn_dropout = nn.Dropout(cfg.attention_dropout)
        self.moe = MoEFeedForward(d, cfg.ffn_mult * d, cfg.num_experts, cfg.top_k, cfg.dropout)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(cfg.dropout)
        self.dropout2 = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """`x: batch x seq x d`, `mask: seq x seq` (True = blocked) -> (`batch x seq x d`, aux)."""
        attn, _ = self.self_attn(x, x, x, attn_mask=mask, need_weights=False)  # batch x seq x d
        x = self.norm1(x + self.dropout1(self.attn_dropout(attn)))
        ff, aux = self.moe(x)  # batch x seq x d
        return self.norm2(x + self.dropout2(ff)), aux


def _space() -> SearchSpace:
    """CPU-sized: d_model 16-64, 1-2 layers, 1-4 experts, top-1 or top-2, sequence 16-48.

    Measured (one CPU thread, AdamW step with CE + MSE + 0.01 aux, clip 1.0,
    input 46): d 32, 1 layer, 3 experts top-2, sequence 32-40, batch 32 takes
    30-52 ms a step, 37-65 s for 10 epochs of 4,000 windows; the median of 12
    random points of this space 30-48 s, the largest corner (d 64, 2 layers,
    sequence 48) 100-140 ms a step, 2-3 min. A third of the time is dropout's
    random numbers (attention weights and expert activations).
    """
    return SearchSpace(
        (
            *cpu_training_params(seq_len=(16, 48)),
            ChoiceParam("n_heads", (2, 4)),
            ChoiceParam("head_dim", (8, 16)),
            IntParam("num_layers", 1, 2),
            IntParam("num_experts", 1, 4),
            IntParam("top_k", 1, 2),
            FloatParam("dropout", 0.0, 0.3),
            ChoiceParam("predict_profit", (False, True), ordered=False),
        ),
        (LinearConstraint.less_equal("top_k", "num_experts"),),
    )


def _gpu_space() -> SearchSpace:
    """The original sizes: d_model up to 512, up to 8 layers and 8 experts, sequence up to 500."""
    return SearchSpace(
        (
            *gpu_training_params(seq_lens=(50, 100, 300, 500)),
            ChoiceParam("n_heads", (4, 8)),
            ChoiceParam("head_dim", (16, 32, 64)),
            ChoiceParam("num_layers", (2, 4, 6, 8)),
            IntParam("num_experts", 2, 8),
            IntParam("top_k", 1, 4),
            FloatParam("dropout", 0.1, 0.3),
            ChoiceParam("predict_profit", (False, True), ordered=False),
        ),
        (LinearConstraint.less_equal("top_k", "num_experts"),),
    )


@register_family(
    "moe_transformer",
    config_cls=MoEConfig,
    default_space=_space,
    gpu_space=_gpu_space,
    feature_set="multi_timeframe",
    # The training script's v2.0 recipe (reference §1.2.7): AdamW 2e-4 / 1e-3, cosine,
    # focal loss (gamma 2) with class weights, MSE profit x 1.0, aux x 0.01, mixup/augment,
    # sequence 500 with batch 8.
    train_defaults=recipe(
        learning_rate=2e-4,
        weight_decay=1e-3,
        batch_size=8,
        seq_len=500,
        schedule="cosine",
        loss="focal",
        aux_weight=0.01,
        augment=True,
    ),
)
class MoETradingTransformer(nn.Module):
    """The MoE Transformer; ``forward`` returns logits, profit and the summed aux loss."""

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.input_projection = nn.Linear(cfg.input_size, d)
        self.positions = SinusoidalPositionalEncoding(d, cfg.max_len)
        if cfg.shared_layers:
            shared = MoEEncoderLayer(cfg)
            self.layers = nn.ModuleList([shared] * cfg.num_layers)
        else:
            self.layers = nn.ModuleList(MoEEncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.pool = AttentionPool(d, cfg.n_heads, cfg.dropout)
        self.pool_dropout = nn.Dropout(0.3)
        self.action_head = ActionHead(d, "gelu", (0.3, 0.2), layer_norm=True)
        self.profit_head = ProfitHead(d, "gelu") if cfg.predict_profit else None
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal (fan_in, ReLU gain) in the encoder and pooling attention,
        Xavier-uniform elsewhere; LayerNorm weights 1, biases 0."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                if name.startswith(("layers.", "pool.")):
                    nn.init.kaiming_normal_(p, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(p)
            elif "bias" in name:
                nn.init.zeros_(p)
            else:
                nn.init.ones_(p)

    def forward(self, x: Tensor) -> ModelOutput:
        """`x: batch x seq x input_size` -> :class:`ModelOutput` with ``aux_loss``."""
        h = self.positions(self.input_projection(x))  # batch x seq x d
        mask = past_window_mask(h.size(1), self.cfg.window_size, h.device)  # seq x seq
        aux = h.new_zeros(())
        for layer in self.layers:
            h, layer_aux = layer(h, mask)  # batch x seq x d
            aux = aux + layer_aux
        pooled = self.pool_dropout(self.pool(h))  # batch x d
        logits = self.action_head(pooled)  # batch x 3
        if self.cfg.legacy_softmax:
            logits = logits.softmax(dim=-1)
        profit = self.profit_head(pooled) if self.profit_head is not None else None  # batch
        return ModelOutput(logits, profit, None, aux)
