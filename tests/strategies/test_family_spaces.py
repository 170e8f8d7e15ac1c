"""Every point a search space can propose builds a working model."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from strategies import FAMILIES, TRAINING_PARAMS, build_model, count_parameters, get_family, model_config
from strategies.exceptions import ConfigError
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, Param, SearchSpace

INPUT_SIZE = 5


def _forward_ok(family: str, point: dict[str, Any]) -> None:
    model = build_model(family, point, INPUT_SIZE, seed=0).eval()
    x = torch.randn(2, int(point["seq_len"]), INPUT_SIZE)
    with torch.no_grad():
        out = model(x)
    assert out.logits.shape == (2, 3) and torch.isfinite(out.logits).all()


def _ends(p: Param) -> tuple[Any, ...]:
    if isinstance(p, ChoiceParam):
        return (p.values[0], p.values[-1])
    if isinstance(p, (IntParam, FloatParam)):
        return (p.low, p.high)
    return (p.value,)


def _corners(space: SearchSpace) -> list[dict[str, Any]]:
    """All combinations of range ends of the structural parameters (training rates held at the low end)."""
    structural = [p for p in space.params if p.name not in TRAINING_PARAMS or p.name == "seq_len"]
    rest = {p.name: _ends(p)[0] for p in space.params if p not in structural}
    return [rest | dict(zip([p.name for p in structural], combo, strict=True)) for combo in
            itertools.product(*(_ends(p) for p in structural))]  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_spaces_are_well_formed(family: str) -> None:
    fam = get_family(family)
    for space in (fam.default_space(), fam.gpu_space()):
        names = set(space.names)
        assert names <= fam.model_param_names | TRAINING_PARAMS
        assert {
            "learning_rate",
            "weight_decay",
            "batch_size",
            "seq_len",
            "dropout",
            "predict_profit",
        } <= names
        assert isinstance(space["learning_rate"], FloatParam) and space["learning_rate"].log
        assert isinstance(space["weight_decay"], FloatParam) and space["weight_decay"].log
        assert "d_model" not in names  # searched as n_heads x head_dim, so heads always divide it
        assert "num_layers" in names
        assert ("hidden_size" in names) != ("n_heads" in names and "head_dim" in names)
    if family == "moe_transformer":
        for space in (fam.default_space(), fam.gpu_space()):
            assert [str(c) for c in space.constraints] == ["top_k - num_experts <= 0"]
            assert isinstance(space["top_k"], IntParam) and isinstance(space["num_experts"], IntParam)


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_space_sizes(family: str) -> None:
    space = get_family(family).default_space()
    d_max = max(_ends(space["n_heads"])) * max(_ends(space["head_dim"])) if "n_heads" in space else None
    assert d_max is None or d_max <= 64
    assert max(_ends(space["seq_len"])) <= 64
    assert max(_ends(space["num_layers"])) <= 3


@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_space_reaches_original_sizes(family: str) -> None:
    space = get_family(family).gpu_space()
    expected_seq = 100 if family in ("transformer_huge", "lstm", "llm") else 500
    assert max(_ends(space["seq_len"])) == expected_seq
    if "n_heads" in space:
        assert max(_ends(space["n_heads"])) * max(_ends(space["head_dim"])) == 512
        assert max(_ends(space["num_layers"])) == 8


@pytest.mark.parametrize("family", FAMILIES)
def test_200_random_points_build(family: str) -> None:
    space = get_family(family).default_space()
    rng = np.random.default_rng(2024)
    for _ in range(200):
        point = space.sample(rng)
        assert space.contains(point)
        _forward_ok(family, point)


@pytest.mark.parametrize("family", FAMILIES)
def test_corner_points_build_or_are_excluded(family: str) -> None:
    space = get_family(family).default_space()
    n_valid = 0
    for point in _corners(space):
        if space.contains(point):
            _forward_ok(family, point)
            n_valid += 1
        else:  # only a constraint can exclude a corner, and the model refuses it too
            with pytest.raises(ConfigError):
                build_model(family, point, INPUT_SIZE)
    assert n_valid >= 16


@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_space_points_build(family: str) -> None:
    space = get_family(family).gpu_space()
    rng = np.random.default_rng(7)
    for _ in range(20):
        point = space.sample(rng)
        with torch.device("meta"):
            model = build_model(family, point, 46)
        assert count_parameters(model) == model_config(family, point, 46).num_parameters()


def test_moe_constraint_binds_in_cpu_space() -> None:
    space = get_family("moe_transformer").default_space()
    bad = space.sample(np.random.default_rng(0)) | {"num_experts": 1, "top_k": 2}
    assert not space.contains(bad)
    with pytest.raises(ConfigError, match="top_k"):
        build_model("moe_transformer", bad, INPUT_SIZE)


def test_fixed_overrides_keep_space_valid() -> None:
    space = get_family("transformer_huge").default_space().with_overrides([FixedParam("seq_len", 100)])
    point = space.sample(np.random.default_rng(0))
    assert point["seq_len"] == 100
    _forward_ok("transformer_huge", point)
