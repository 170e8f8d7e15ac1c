"""evaluate() by family name, through strategies.build_model (one contract run per family)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import strategies
from objectives.evaluate import EvalSettings, TrialModel, evaluate
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
    saved = TrialModel.load(family, params, data, SETTINGS, path)
    assert saved.score("val")[0] == result.metrics
    test, _ = saved.score("test")
    assert {"test_accuracy", "test_loss", "return_pct", "sharpe", "max_drawdown_pct"} <= set(test)


def test_unknown_family(data) -> None:
    with pytest.raises(ConfigError, match="unknown strategy"):
        evaluate("nope", {}, data, SETTINGS)


def test_the_saved_model_s_gate(data, tmp_path: Path) -> None:
    """TrialModel.gate: the spec's probability gate as it is; a 'train_quantile' gate resolved to the
    threshold of the saved weights' confidence on the training bars (the trial's own parameter first)."""
    from objectives.config import BacktestSpec
    from objectives.training import TrialTensors, gate_threshold

    params = {**TINY["lstm"], "seq_len": 6, "batch_size": 64}
    path = tmp_path / "best.pt"
    evaluate("lstm", params, data, SETTINGS, checkpoint_path=path)
    fixed = EvalSettings(
        max_epochs=1, device="cpu", backtest=BacktestSpec(gate="probability", confidence_gate=0.6)
    )
    assert TrialModel.load("lstm", params, data, fixed, path).gate() == 0.6
    quantile = EvalSettings(
        max_epochs=1, device="cpu", backtest=BacktestSpec(gate="train_quantile", confidence_gate=0.7)
    )
    saved = TrialModel.load("lstm", params, data, quantile, path)
    bars = data.splits.bars("train")
    tensors = TrialTensors(data, 6, int(bars[-1]) + 1, "cpu", saved.cfg.class_weights)
    expected = gate_threshold(saved.module, tensors, data, 0.7, saved.cfg.eval_batch_size, train_bars=bars)
    assert saved.gate() == expected and 1 / 3 <= expected <= 1.0
    own = TrialModel.load("lstm", {**params, "confidence_gate": 0.0}, data, quantile, path)
    assert own.gate() == 0.0  # quantile 0: every bar trades
