"""The training parameters every family shares, and the training recipes.

:data:`TRAINING_PARAMS` are the trial parameters the training loop owns
(the rest of a trial's parameters configure the model); a family's recipe
gives each of them a default (the original system's values, :func:`recipe`).
"""

from __future__ import annotations

from typing import Any

from strategies.space import ChoiceParam, FloatParam, IntParam, Param

__all__ = ["TRAINING_PARAMS", "cpu_training_params", "default_recipe", "gpu_training_params", "recipe"]

TRAINING_PARAMS: frozenset[str] = frozenset(
    {
        "learning_rate",
        "weight_decay",
        "batch_size",
        "seq_len",
        "schedule",  # "none" | "cosine" | "warmup_cosine" | "plateau"
        "warmup_epochs",
        "loss",  # "ce" | "focal" | "label_smoothing" | "ls_focal"
        "focal_gamma",
        "label_smoothing",
        "class_weights",
        "profit_loss",  # "mse" | "huber"
        "profit_weight",
        "huber_delta",
        "grid_weight",
        "aux_weight",
        "grad_clip",
        "patience",
        "augment",
        "confidence_gate",
    }
)
"""Trial parameters that belong to the training loop, not to the model."""


def cpu_training_params(seq_len: tuple[int, int] = (16, 64)) -> tuple[Param, ...]:
    """Learning rate, weight decay, batch size and sequence length for CPU studies.

    The families' CPU spaces are sized so that one trial (about 4,000 training
    windows, about 10 epochs, one torch thread) trains in roughly 20-60 s.
    Batches are 32 or 64: on a CPU smaller batches are dominated by per-step
    overhead (batch 16 costs about 1.5-2x the time per epoch).
    """
    return (
        FloatParam("learning_rate", 1e-4, 3e-3, log=True),
        FloatParam("weight_decay", 1e-5, 1e-2, log=True),
        ChoiceParam("batch_size", (32, 64)),
        IntParam("seq_len", *seq_len),
    )


def gpu_training_params(seq_lens: tuple[int, ...] = (50, 100, 300, 500)) -> tuple[Param, ...]:
    """The same at the original sizes (reference discrete sets: batch 8/16/32, seq up to 500)."""
    return (
        FloatParam("learning_rate", 1e-4, 2e-3, log=True),
        FloatParam("weight_decay", 1e-5, 1e-2, log=True),
        ChoiceParam("batch_size", (8, 16, 32)),
        ChoiceParam("seq_len", seq_lens),
    )


_COMMON_RECIPE: dict[str, Any] = {
    "schedule": "none",
    "warmup_epochs": 0,
    "loss": "ce",
    "focal_gamma": 2.0,
    "label_smoothing": 0.2,
    "class_weights": True,
    "profit_loss": "mse",
    "profit_weight": 1.0,
    "huber_delta": 0.01,
    "grid_weight": 0.0,
    "aux_weight": 0.0,
    "grad_clip": 1.0,
    "patience": 10,
    "augment": False,
    "confidence_gate": 0.4,
}
"""Shared by every original recipe (reference §3): AdamW, clip 1.0, patience 10, gate 0.4."""


def default_recipe() -> dict[str, Any]:
    """A complete recipe for a family that gives none: :func:`recipe` with learning rate 1e-3,
    weight decay 1e-4, batch 32 and sequence length 32."""
    return recipe(learning_rate=1e-3, weight_decay=1e-4, batch_size=32, seq_len=32)


def recipe(**overrides: Any) -> dict[str, Any]:
    """A complete training recipe: the common values with the family's ``overrides``."""
    extra = set(overrides) - TRAINING_PARAMS
    if extra:
        raise ValueError(f"recipe: unknown training parameters {sorted(extra)}")
    return {**_COMMON_RECIPE, **overrides}
