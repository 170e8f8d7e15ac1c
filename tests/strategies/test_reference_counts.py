"""Parameter counts at the original sizes equal the figures measured on the original models.

Models are built on the meta device: shapes only, no memory, a few ms each.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from strategies import build_model, count_parameters, model_config
from strategies.moe import MoETradingTransformer

CASES: list[tuple[str, dict[str, Any], int, int]] = [
    # 12-feature strategy models (no profit head, as in the originals)
    ("transformer_large", {}, 12, 4_783_235),
    ("transformer_enhanced", {}, 12, 26_441_731),
    ("transformer_huge", {}, 12, 25_441_539),
    # 46-feature "with profit" training-script variants of the same architectures
    ("transformer_large", {"predict_profit": True}, 46, 4_891_524),
    ("transformer_enhanced", {"predict_profit": True}, 46, 26_854_916),
    # LSTM / LLM strategy
    ("lstm", {}, 46, 380_037),
    ("lstm", {"predict_profit": False}, 46, 354_820),
    ("llm", {"mode": "pure_ml"}, 10, 361_605),
    ("lstm", {"hidden_size": 64, "num_layers": 2, "predict_profit": False}, 12, 53_508),
    (
        "lstm",
        {"hidden_size": 64, "num_layers": 2, "predict_profit": False, "predict_grid": False},
        12,
        53_443,
    ),
    # MoE: the training script's model, unshared (default) and with the original's shared layers
    ("moe_transformer", {}, 46, 14_621_468),
    ("moe_transformer", {"shared_layers": True}, 46, 2_784_008),
    (
        "moe_transformer",
        {"shared_layers": True, "head_dim": 64, "num_layers": 8, "num_experts": 8},
        46,
        19_490_316,
    ),
    ("moe_transformer", {"head_dim": 64, "num_layers": 8, "num_experts": 8}, 46, 144_471_620),
]


@pytest.mark.parametrize(("family", "params", "input_size", "expected"), CASES)
def test_reference_parameter_count(
    family: str, params: dict[str, Any], input_size: int, expected: int
) -> None:
    with torch.device("meta"):
        model = build_model(family, params, input_size)
    assert count_parameters(model) == expected
    assert model_config(family, params, input_size).num_parameters() == expected


def test_moe_breakdown_at_training_script_sizes() -> None:
    with torch.device("meta"):
        model = build_model("moe_transformer", {"shared_layers": True}, 46)
    parts = {name: count_parameters(getattr(model, name)) for name in
             ("input_projection", "pool", "action_head", "profit_head")}  # fmt: skip
    assert parts == {
        "input_projection": 12_032,
        "pool": 263_168,
        "action_head": 41_731,
        "profit_head": 99_585,
    }
    assert isinstance(model, MoETradingTransformer)
    assert count_parameters(model.layers[0]) == 2_367_492
    assert model.layers[0] is model.layers[5]


def test_moe_layers_are_separate_by_default() -> None:
    with torch.device("meta"):
        model = build_model("moe_transformer", {}, 46)
    assert isinstance(model, MoETradingTransformer)
    assert model.layers[0] is not model.layers[1]
