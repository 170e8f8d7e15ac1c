"""The registry: names, lookup errors, parameter routing, recipes and feature sets."""

from __future__ import annotations

import pytest

import strategies
from strategies import (
    FAMILIES,
    TRAINING_PARAMS,
    build_model,
    get_family,
    model_config,
)
from strategies.exceptions import ConfigError, InputError
from strategies.lstm import LLMConfig
from strategies.moe import MoEConfig
from strategies.transformer import HugeTransformerConfig

EXPECTED = {"lstm", "llm", "transformer_large", "transformer_enhanced", "transformer_huge", "moe_transformer"}


def test_registered_names() -> None:
    assert set(FAMILIES) == EXPECTED
    assert len(FAMILIES) == len(EXPECTED)
    assert set(strategies.__all__) >= {"FAMILIES", "TRAINING_PARAMS", "build_model", "get_family", "Family"}


def test_unknown_family_lists_known_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'gru'; known: lstm, llm, .*moe_transformer"):
        get_family("gru")
    assert issubclass(ConfigError, InputError)


def test_training_params_are_exactly_the_contract() -> None:
    expected = {
        "learning_rate", "weight_decay", "batch_size", "seq_len", "schedule", "warmup_epochs", "loss",
        "focal_gamma", "label_smoothing", "class_weights", "profit_loss", "profit_weight", "huber_delta",
        "grid_weight", "aux_weight", "grad_clip", "patience", "augment", "confidence_gate",
    }  # fmt: skip
    assert expected == TRAINING_PARAMS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_train_defaults_cover_every_training_param(name: str) -> None:
    fam = get_family(name)
    assert set(fam.train_defaults) == TRAINING_PARAMS
    assert fam.train_defaults["schedule"] in ("none", "cosine", "warmup_cosine", "plateau")
    assert fam.train_defaults["loss"] in ("ce", "focal", "label_smoothing", "ls_focal")
    assert fam.train_defaults["profit_loss"] in ("mse", "huber")
    assert not (fam.model_param_names & TRAINING_PARAMS)
    with pytest.raises(TypeError):
        fam.train_defaults["learning_rate"] = 1.0  # type: ignore[index]


def test_original_recipes() -> None:
    moe = get_family("moe_transformer").train_defaults
    assert (moe["learning_rate"], moe["weight_decay"], moe["schedule"], moe["loss"]) == (
        2e-4,
        1e-3,
        "cosine",
        "focal",
    )
    assert (moe["focal_gamma"], moe["profit_loss"], moe["profit_weight"], moe["aux_weight"]) == (
        2.0,
        "mse",
        1.0,
        0.01,
    )
    lstm = get_family("lstm").train_defaults
    assert (lstm["learning_rate"], lstm["weight_decay"], lstm["schedule"], lstm["loss"]) == (
        1e-3,
        1e-5,
        "plateau",
        "ce",
    )
    assert (lstm["profit_loss"], lstm["huber_delta"], lstm["grid_weight"]) == ("huber", 0.01, 0.1)
    for name in ("transformer_large", "transformer_enhanced", "transformer_huge"):
        rec = get_family(name).train_defaults
        assert (rec["learning_rate"], rec["weight_decay"], rec["aux_weight"]) == (5e-4, 1e-4, 0.0)
    assert {get_family(n).train_defaults["seq_len"] for n in EXPECTED} == {10, 30, 100, 500}


def test_feature_sets() -> None:
    assert get_family("llm").default_feature_set({"mode": "hybrid"}) == "multi_timeframe"
    assert get_family("llm").default_feature_set({"mode": "pure_ml"}) == "ohlcv"
    assert get_family("llm").default_feature_set({}) == "multi_timeframe"
    assert get_family("lstm").default_feature_set({}) == "multi_timeframe"
    assert get_family("moe_transformer").default_feature_set({}) == "multi_timeframe"
    for name in ("transformer_large", "transformer_enhanced", "transformer_huge"):
        assert get_family(name).default_feature_set({}) == "basic"


def test_training_keys_are_ignored_and_derived_values_computed() -> None:
    params = {"n_heads": 4, "head_dim": 8, "num_experts": 3, "top_k": 2, "learning_rate": 1e-3, "seq_len": 32,
              "loss": "focal", "batch_size": 64}  # fmt: skip
    cfg = model_config("moe_transformer", params, 9)
    assert isinstance(cfg, MoEConfig)
    assert (cfg.d_model, cfg.n_heads, cfg.num_experts, cfg.top_k, cfg.input_size) == (32, 4, 3, 2, 9)
    assert cfg.window_size == 20 and cfg.shared_layers is False  # original defaults kept
    llm = model_config("llm", {"mode": "pure_ml", "hidden_size": 32.0}, 10)
    assert isinstance(llm, LLMConfig) and llm.hidden_size == 32 and isinstance(llm.hidden_size, int)


@pytest.mark.parametrize(
    ("family", "params", "match"),
    [
        ("lstm", {"hidden_sizes": 32}, r"unknown parameter\(s\) \['hidden_sizes'\]"),
        ("lstm", {"n_heads": 2}, r"unknown parameter"),
        ("transformer_large", {"mode": "hybrid"}, r"unknown parameter"),
        ("moe_transformer", {"top_k": 3, "num_experts": 2}, r"top_k must be in \[1, num_experts=2\]"),
        ("transformer_large", {"d_model": 30, "n_heads": 4}, r"divisible by n_heads=4"),
        ("transformer_large", {"d_model": 64, "n_heads": 4, "head_dim": 8}, r"d_model must equal"),
        ("transformer_huge", {"seq_len": 101}, r"seq_len must be <= 100"),
        ("llm", {"mode": "gpt"}, r"mode must be"),
        ("lstm", {"num_layers": 2.5}, r"must be an integer"),
        ("lstm", {"predict_profit": 1}, r"must be true or false"),
        ("lstm", {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ("moe_transformer", {"dropout": float("nan")}, r"finite number"),
    ],
)
def test_invalid_params_raise_config_error(family: str, params: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_model(family, params, 8)


def test_bad_input_size() -> None:
    with pytest.raises(ConfigError, match="input_size"):
        model_config("lstm", {}, 0)


def test_config_defaults_are_the_originals() -> None:
    assert (HugeTransformerConfig.d_model, HugeTransformerConfig.num_layers, HugeTransformerConfig.max_len) == (
        512, 8, 100,
    )  # fmt: skip
    assert (MoEConfig.d_model, MoEConfig.num_layers, MoEConfig.num_experts, MoEConfig.top_k) == (256, 6, 4, 2)
