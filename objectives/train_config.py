"""The training parameters of one trial, validated once: :class:`TrainConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from objectives.losses import ACTION_LOSSES, PROFIT_LOSSES, LossSettings
from strategies.exceptions import ConfigError

__all__ = ["SCHEDULES", "TrainConfig"]

SCHEDULES = ("none", "cosine", "warmup_cosine", "plateau")


@dataclass(frozen=True)
class TrainConfig:
    """Training parameters shared by every family (``strategies.TRAINING_PARAMS``).

    ``confidence_gate`` None means: use the backtest spec's gate.
    """

    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    seq_len: int = 30
    schedule: str = "none"
    warmup_epochs: int = 5
    loss: str = "ce"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.2
    class_weights: bool = True
    profit_loss: str = "mse"
    profit_weight: float = 1.0
    huber_delta: float = 0.01
    grid_weight: float = 0.1
    aux_weight: float = 0.01
    grad_clip: float = 1.0
    patience: int = 10
    augment: bool = False
    confidence_gate: float | None = None

    @property
    def eval_batch_size(self) -> int:
        """Sequences per forward pass when scoring (no gradients kept: larger batches than training's)."""
        return max(4 * self.batch_size, 64)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> TrainConfig:
        """Class defaults, then the family's ``defaults``, then the trial's ``params``.

        Keys of ``params`` that are not training parameters (model
        hyper-parameters) are ignored; unknown keys in ``defaults`` are errors.
        ``confidence_gate`` is taken from ``params`` only: it is a backtest
        setting, so a family default never overrides the spec's gate.
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(defaults or {}) - set(names))
        if unknown:
            raise ConfigError(f"unknown training defaults {unknown}; known: {', '.join(names)}")
        base = {k: v for k, v in (defaults or {}).items() if k != "confidence_gate"}
        merged = {**base, **{k: v for k, v in params.items() if k in names}}
        values = {k: _coerce(k, v, names[k].type) for k, v in merged.items()}
        cfg = cls(**values)
        cfg._validate()
        return cfg

    def loss_settings(self) -> LossSettings:
        return LossSettings(
            loss=self.loss,
            focal_gamma=self.focal_gamma,
            label_smoothing=self.label_smoothing,
            profit_loss=self.profit_loss,
            profit_weight=self.profit_weight,
            huber_delta=self.huber_delta,
            aux_weight=self.aux_weight,
        )

    def _validate(self) -> None:
        checks = (
            (self.learning_rate > 0, "learning_rate", "> 0"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.batch_size >= 1, "batch_size", ">= 1"),
            (self.seq_len >= 1, "seq_len", ">= 1"),
            (self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}"),
            (self.warmup_epochs >= 0, "warmup_epochs", ">= 0"),
            (self.loss in ACTION_LOSSES, "loss", f"one of {ACTION_LOSSES}"),
            (self.focal_gamma >= 0, "focal_gamma", ">= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)"),
            (self.profit_loss in PROFIT_LOSSES, "profit_loss", f"one of {PROFIT_LOSSES}"),
            (self.profit_weight >= 0, "profit_weight", ">= 0"),
            (self.grid_weight >= 0, "grid_weight", ">= 0"),
            (self.aux_weight >= 0, "aux_weight", ">= 0"),
            (self.huber_delta > 0, "huber_delta", "> 0"),
            (self.grad_clip >= 0, "grad_clip", ">= 0 (0 = off)"),
            (self.patience >= 1, "patience", ">= 1"),
            (self.confidence_gate is None or 0 <= self.confidence_gate < 1, "confidence_gate", "in [0, 1)"),
        )
        for ok, name, rule in checks:
            if not ok:
                raise ConfigError(f"training parameter {name} must be {rule}, got {getattr(self, name)!r}")


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    kind = str(annotation)
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if kind == "int":
            as_float = float(value)
            if not as_float.is_integer():
                raise ValueError(value)
            return int(as_float)
        if kind.startswith("float"):
            return None if value is None else float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training parameter {name} must be {kind}, got {value!r}") from exc
