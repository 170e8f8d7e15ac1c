"""A model family of your own: a small MLP over the last bars' features (README, "Your own model").

``experiments/my_family.json`` runs it: ``"strategy": "experiments.my_family:TinyMLP"`` is
imported by name from the current directory, so run boengine from the repository root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from strategies import ModelOutput, read_params, register_family, require
from strategies.space import ChoiceParam, FloatParam, IntParam, LinearConstraint, SearchSpace


@dataclass(frozen=True)
class TinyMLPConfig:
    """Settings of :class:`TinyMLP`: ``x: batch x seq x input_size`` -> logits ``batch x 3``."""

    input_size: int = 10
    hidden: int = 32
    window: int = 4  # the last `window` bars of the sequence are read
    dropout: float = 0.1
    seq_len: int = 16  # the training loop's window length, read to check `window` against it

    #: The trial parameters the config reads (the model's; training parameters are the loop's).
    PARAMS: ClassVar[frozenset[str]] = frozenset({"hidden", "window", "dropout"})

    def __post_init__(self) -> None:
        require(self.hidden >= 2, f"hidden must be >= 2, got {self.hidden}")
        require(
            1 <= self.window <= self.seq_len,
            f"window must be in [1, seq_len={self.seq_len}], got {self.window}",
        )
        require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], input_size: int) -> TinyMLPConfig:
        seq_len = int(params.get("seq_len", cls.seq_len))
        return cls(input_size=input_size, seq_len=seq_len, **read_params(cls, params))


def tiny_space() -> SearchSpace:
    """Learning rate, batch and window length (training), width, bars read and dropout (model)."""
    return SearchSpace(
        (
            FloatParam("learning_rate", 3e-4, 3e-3, log=True),
            ChoiceParam("batch_size", (32, 64)),
            IntParam("seq_len", 8, 16),
            ChoiceParam("hidden", (16, 32, 64)),
            IntParam("window", 1, 8),
            FloatParam("dropout", 0.0, 0.3),
        ),
        constraints=(LinearConstraint.less_equal("window", "seq_len"),),  # window <= seq_len
    )


@register_family(config_cls=TinyMLPConfig, default_space=tiny_space, feature_set="ohlcv")
class TinyMLP(nn.Module):
    """Flattens the last ``window`` bars and maps them through one hidden layer to 3 action logits."""

    def __init__(self, cfg: TinyMLPConfig) -> None:
        super().__init__()
        self.window = cfg.window
        self.net = nn.Sequential(
            nn.Linear(cfg.window * cfg.input_size, cfg.hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, 3),  # 0 hold, 1 long, 2 short
        )

    def forward(self, x: Tensor) -> ModelOutput:
        last = x[:, -self.window :, :].flatten(1)  # batch x (window * input_size)
        return ModelOutput(logits=self.net(last))  # logits: batch x 3
