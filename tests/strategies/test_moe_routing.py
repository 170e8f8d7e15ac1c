"""MoE mechanics: top-k routing renormalised over the chosen experts, balance loss, causal window."""

from __future__ import annotations

import pytest
import torch

from strategies import build_model
from strategies.layers import past_window_mask
from strategies.moe import MoEConfig, MoEEncoderLayer, MoEFeedForward


def _dense_reference(moe: MoEFeedForward, x: torch.Tensor, k: int) -> torch.Tensor:
    tokens = x.reshape(-1, x.size(-1))
    logits = moe.gate(tokens)
    top, idx = logits.topk(k, dim=-1)
    weights = torch.zeros_like(logits).scatter(-1, idx, top.softmax(-1))  # n x E, zero off the top-k
    outs = torch.stack([expert(tokens) for expert in moe.experts], dim=1)  # n x E x d
    return (weights.unsqueeze(-1) * outs).sum(1).view_as(x)


@pytest.mark.parametrize(("num_experts", "top_k"), [(4, 1), (4, 2), (3, 3), (1, 1)])
def test_routing_matches_dense_reference(num_experts: int, top_k: int) -> None:
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 32, num_experts, top_k, dropout=0.0).eval()
    x = torch.randn(3, 5, 8)
    out, aux = moe(x)
    torch.testing.assert_close(out, _dense_reference(moe, x, top_k))
    assert aux.item() >= 1.0 - 1e-6


def test_balance_loss_is_one_for_uniform_gate_and_sums_over_layers() -> None:
    model = build_model("moe_transformer", {"n_heads": 2, "head_dim": 4, "num_layers": 3}, 5, seed=0).eval()
    gates = [m.gate for m in model.modules() if isinstance(m, MoEFeedForward)]
    assert len(gates) == 3
    for gate in gates:
        torch.nn.init.zeros_(gate.weight)
        torch.nn.init.zeros_(gate.bias)
    out = model(torch.randn(2, 6, 5))
    assert out.aux_loss is not None
    assert out.aux_loss.item() == pytest.approx(3.0)


def test_balance_loss_grows_when_one_expert_dominates() -> None:
    moe = MoEFeedForward(4, 8, 4, 2, dropout=0.0)
    torch.nn.init.zeros_(moe.gate.weight)
    with torch.no_grad():
        moe.gate.bias.copy_(torch.tensor([10.0, 0.0, 0.0, 0.0]))
    _, aux = moe(torch.randn(2, 3, 4))
    assert aux.item() > 3.9  # close to E = 4 when one expert takes everything


def test_past_window_mask() -> None:
    mask = past_window_mask(5, 2)
    allowed = [[j for j in range(5) if not mask[i, j]] for i in range(5)]
    assert allowed == [[0], [0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert past_window_mask(4, None).tolist() == torch.ones(4, 4, dtype=torch.bool).triu(1).tolist()


def test_encoder_layer_is_causal_and_windowed() -> None:
    torch.manual_seed(0)
    cfg = MoEConfig(input_size=4, d_model=8, n_heads=2, num_experts=2, top_k=1, window_size=2)
    layer = MoEEncoderLayer(cfg).eval()
    mask = past_window_mask(8, cfg.window_size)
    x = torch.randn(1, 8, 8)
    base, _ = layer(x, mask)
    future = x.clone()
    future[:, 5:] += 3.0  # change bars after t = 4
    out, _ = layer(future, mask)
    torch.testing.assert_close(out[:, :5], base[:, :5])
    assert not torch.allclose(out[:, 5:], base[:, 5:])
    distant_past = x.clone()
    distant_past[:, 0] += 3.0  # outside the window of positions >= 3
    out, _ = layer(distant_past, mask)
    torch.testing.assert_close(out[:, 3:], base[:, 3:])
    assert not torch.allclose(out[:, :3], base[:, :3])
