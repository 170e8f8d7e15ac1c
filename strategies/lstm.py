"""LSTM families: ``lstm`` and ``llm`` (the original "LLM strategy").

Both are the original ``TradingLSTM``: a stacked LSTM read at its last time
step, a linear 3-way action head, an optional three-layer profit head and an
optional grid-adjustment head squashed into [0.8, 1.2]. ``llm`` adds the
original strategy's ``mode``, which picks the input features: ``hybrid`` is
the multi-timeframe set, ``pure_ml`` raw OHLCV.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from strategies.base import ModelOutput
from strategies.layers import ProfitHead, linear_params, profit_head_params
from strategies.registry import (
    cpu_training_params,
    gpu_training_params,
    read_params,
    recipe,
    register_family,
    require,
)
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, Param, SearchSpace

__all__ = ["LLMConfig", "LSTMConfig", "TradingLSTM"]


@dataclass(frozen=True)
class LSTMConfig:
    """Settings of :class:`TradingLSTM` (defaults: the original 46/128/3 model).

    Shapes: ``x: batch x seq x input_size`` -> logits ``batch x 3``, profit
    ``batch`` (if ``predict_profit``), grid ``batch`` in [0.8, 1.2] (if ``predict_grid``).

    Attributes:
        hidden_size: LSTM width ``h``; the profit head narrows to ``h // 2``.
        lstm_dropout: dropout between stacked LSTM layers (unused with one layer).
        dropout: dropout on the last step's output, before the heads.
    """

    input_size: int = 46
    hidden_size: int = 128
    num_layers: int = 3
    lstm_dropout: float = 0.2
    dropout: float = 0.3
    predict_profit: bool = True
    predict_grid: bool = True

    PARAMS: ClassVar[frozenset[str]] = frozenset(
        {"hidden_size", "num_layers", "lstm_dropout", "dropout", "predict_profit", "predict_grid"}
    )

    def __post_init__(self) -> None:
        require(self.hidden_size >= 2, f"hidden_size must be >= 2, got {self.hidden_size}")
        require(self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}")
        for name in ("lstm_dropout", "dropout"):
            value = getattr(self, name)
            require(0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], input_size: int) -> LSTMConfig:
        return cls(input_size=input_size, **read_params(cls, params))

    def num_parameters(self) -> int:
        h = self.hidden_size
        first = 4 * h * (self.input_size + h) + 8 * h
        rest = (self.num_layers - 1) * (4 * h * 2 * h + 8 * h)
        heads = linear_params(h, 3)
        heads += profit_head_params(h) if self.predict_profit else 0
        heads += linear_params(h, 1) if self.predict_grid else 0
        return first + rest + heads


@dataclass(frozen=True)
class LLMConfig(LSTMConfig):
    """:class:`LSTMConfig` plus the strategy ``mode``: ``hybrid`` or ``pure_ml``."""

    mode: str = "hybrid"

    PARAMS: ClassVar[frozenset[str]] = LSTMConfig.PARAMS | {"mode"}

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.mode in ("hybrid", "pure_ml"), f"mode must be 'hybrid' or 'pure_ml', got {self.mode!r}")


def _lstm_space(extra: tuple[Param, ...] = ()) -> SearchSpace:
    """CPU-sized: hidden 16-128, 1-2 layers, sequence 10-50.

    Measured (one CPU thread, AdamW step with CE + MSE, clip 1.0, input 46):
    hidden 64, 2 layers, sequence 30, batch 32 takes 17-19 ms a step, about
    20 s for 10 epochs of 4,000 windows; hidden 128, 2 layers, sequence 50 about
    1 min; the median of 12 random points of this space 5-8 s.
    """
    return SearchSpace(
        (
            *cpu_training_params(seq_len=(10, 50)),
            ChoiceParam("hidden_size", (16, 32, 64, 128)),
            IntParam("num_layers", 1, 2),
            FloatParam("dropout", 0.0, 0.4),
            ChoiceParam("predict_profit", (False, True), ordered=False),
            *extra,
        )
    )


def _lstm_gpu_space(extra: tuple[Param, ...] = ()) -> SearchSpace:
    return SearchSpace(
        (
            *gpu_training_params(seq_lens=(10, 20, 30, 50, 100)),
            ChoiceParam("hidden_size", (64, 128, 256, 512)),
            IntParam("num_layers", 2, 4),
            FloatParam("dropout", 0.1, 0.5),
            ChoiceParam("predict_profit", (False, True), ordered=False),
            *extra,
        )
    )


# The mode picks the feature set, which a study prepares once before its first
# trial; so it is fixed per study (``"search_space": {"mode": "pure_ml"}``).
_MODE = (FixedParam("mode", "hybrid"),)


def _llm_feature_set(params: Mapping[str, Any]) -> str:
    return "ohlcv" if params.get("mode", "hybrid") == "pure_ml" else "multi_timeframe"


# Recipes: the strategy's AdamW 1e-3 / 1e-5 (lstm, sequence 30 as served) and the
# LLM strategy's train_model (AdamW 5e-4 / 1e-4, sequence 10); both with
# ReduceLROnPlateau on val accuracy, weighted CE, Huber(0.01) profit, 0.1 x grid MSE.
_LSTM_RECIPE = dict(schedule="plateau", profit_loss="huber", grid_weight=0.1, batch_size=16)


@register_family(
    "llm",
    config_cls=LLMConfig,
    default_space=lambda: _lstm_space(_MODE),
    gpu_space=lambda: _lstm_gpu_space(_MODE),
    feature_set=_llm_feature_set,
    train_defaults=recipe(learning_rate=5e-4, weight_decay=1e-4, seq_len=10, **_LSTM_RECIPE),
)
@register_family(
    "lstm",
    config_cls=LSTMConfig,
    default_space=_lstm_space,
    gpu_space=_lstm_gpu_space,
    feature_set="multi_timeframe",
    train_defaults=recipe(learning_rate=1e-3, weight_decay=1e-5, seq_len=30, **_LSTM_RECIPE),
)
class TradingLSTM(nn.Module):
    """Stacked LSTM on the last time step, with action / profit / grid heads."""

    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(
            cfg.input_size,
            cfg.hidden_size,
            cfg.num_layers,
            batch_first=True,
            dropout=cfg.lstm_dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.action_head = nn.Linear(cfg.hidden_size, 3)
        self._init_weights()  # before the optional heads: they keep PyTorch's default init
        self.profit_head = ProfitHead(cfg.hidden_size, "relu") if cfg.predict_profit else None
        self.grid_head = nn.Linear(cfg.hidden_size, 1) if cfg.predict_grid else None

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if "bias" in name:
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                nn.init.xavier_uniform_(p)

    def forward(self, x: Tensor) -> ModelOutput:
        """`x: batch x seq x input_size` -> :class:`ModelOutput`."""
        out, _ = self.lstm(x)  # batch x seq x h (zero initial state)
        last = self.dropout(out[:, -1])  # batch x h
        logits = self.action_head(last)  # batch x 3
        profit = self.profit_head(last) if self.profit_head is not None else None  # batch
        grid = None
        if self.grid_head is not None:
            grid = torch.sigmoid(self.grid_head(last).squeeze(-1)) * 0.4 + 0.8  # batch, in [0.8, 1.2]
        return ModelOutput(logits, profit, grid)
