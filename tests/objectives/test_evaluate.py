"""evaluate() by family name, through strategies.build_model (one contract run per family)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import strategies
from objectives.evaluate import EvalSettings, evaluate, evaluate_checkpoint
from strategies.exceptions import ConfigError
from tests.objectives.helpers import synthetic_data

TINY = {
    "lstm": {"hidden_size": 8, "num_layers": 1},
    "llm": {"hidden_size": 8, "num_layers": 1, "mode": "pure_ml"},
    "moe_transformer": {"n_heads": 2, "head_dim": 4, "num_layers": 1, "num_experts": 2, "top_k": 1},
    "transformer_large": {"n_heads": 2, "head_dim": 4, "num_layers": 1},
    "transformer_enhanced": {"n_heads": 2, "head_dim": 4, "num_layers": 1},
    "transformer_huge": {"n_heads": 2, "head_dim": 4, "num_layers": 1},
}
SETTINGS = EvalSettings(max_epochs=1, seed=0, device="cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_data(300, n_features=5, max_seq_len=8)


@pytest.mark.parametrize("family", sorted(TINY))
def test_every_family_evaluates(data, family: str, tmp_path: Path) -> None:
    assert family in strategies.FAMILIES
    params = {**TINY[family], "seq_len": 6, "batch_size": 64}
    path = tmp_path / "best.pt"
    result = evaluate(family, params, data, SETTINGS, checkpoint_path=path)
    assert result.epochs_run == 1 and result.input_size == 5
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert evaluate_checkpoint(family, params, data, SETTINGS, path, split="val") == result.metrics
    test = evaluate_checkpoint(family, params, data, SETTINGS, path)
    assert {"test_accuracy", "test_loss", "return_pct", "sharpe", "max_drawdown_pct"} <= set(test)


def test_unknown_family(data) -> None:
    with pytest.raises(ConfigError, match="unknown strategy"):
        evaluate("nope", {}, data, SETTINGS)
