"""One contract over every registered family: shapes, gradients, determinism, parameter counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from strategies import FAMILIES, ModelOutput, build_model, count_parameters, get_family, model_config

INPUT_SIZE = 7


def _small_point(family: str, seed: int = 0) -> dict[str, Any]:
    point = get_family(family).default_space().sample(np.random.default_rng(seed))
    return point | {"predict_profit": True}


def _loss(out: ModelOutput, y: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(out.logits, y)
    if out.profit is not None:
        loss = loss + out.profit.pow(2).mean()
    if out.grid is not None:
        loss = loss + (out.grid - 1.0).pow(2).mean()
    if out.aux_loss is not None:
        loss = loss + 0.01 * out.aux_loss
    return loss


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward_shapes(family: str) -> None:
    model = build_model(family, _small_point(family), INPUT_SIZE, seed=0)
    x = torch.randn(4, 8, INPUT_SIZE, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (4, 3) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.logits).all()
    assert out.profit is not None and out.profit.shape == (4,)
    if family in ("lstm", "llm"):
        assert out.grid is not None and out.grid.shape == (4,)
        assert ((out.grid >= 0.8) & (out.grid <= 1.2)).all()
    else:
        assert out.grid is None
    assert (out.aux_loss is not None) == (family == "moe_transformer")
    if out.aux_loss is not None:
        assert out.aux_loss.dim() == 0 and out.aux_loss.item() >= 1.0 - 1e-5  # >= 1 per layer
    _loss(out, torch.tensor([0, 1, 2, 1])).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert next(model.parameters()).grad is not None  # gradient reaches the input layer


@pytest.mark.parametrize("family", FAMILIES)
def test_profit_head_is_optional(family: str) -> None:
    point = _small_point(family) | {"predict_profit": False}
    out = build_model(family, point, INPUT_SIZE, seed=0).eval()(torch.randn(2, 8, INPUT_SIZE))
    assert out.profit is None


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_model(family: str) -> None:
    point = _small_point(family, seed=3)
    x = torch.randn(4, 8, INPUT_SIZE)
    a = build_model(family, point, INPUT_SIZE, seed=11).eval()
    b = build_model(family, point, INPUT_SIZE, seed=11).eval()
    c = build_model(family, point, INPUT_SIZE, seed=12).eval()
    with torch.no_grad():
        assert torch.equal(a(x).logits, b(x).logits)
        assert not torch.equal(a(x).logits, c(x).logits)
    # the global RNG is forked, not reseeded
    state = torch.get_rng_state()
    build_model(family, point, INPUT_SIZE, seed=11)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parameter_count_formula(family: str, seed: int) -> None:
    point = get_family(family).default_space().sample(np.random.default_rng(seed))
    model = build_model(family, point, INPUT_SIZE, seed=0)
    assert count_parameters(model) == model_config(family, point, INPUT_SIZE).num_parameters()


@pytest.mark.parametrize("family", FAMILIES)
def test_legacy_softmax_only_when_asked(family: str) -> None:
    cfg_names = get_family(family).model_param_names
    x = torch.randn(3, 8, INPUT_SIZE)
    plain = build_model(family, _small_point(family), INPUT_SIZE, seed=0).eval()(x).logits
    assert not torch.allclose(plain.sum(-1), torch.ones(3))
    if "legacy_softmax" in cfg_names:
        probs = build_model(
            family, _small_point(family) | {"legacy_softmax": True}, INPUT_SIZE, seed=0
        ).eval()(x)
        torch.testing.assert_close(probs.logits, plain.softmax(-1))
