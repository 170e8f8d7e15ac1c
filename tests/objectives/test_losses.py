from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from objectives.losses import LossSettings, action_loss, class_weights, total_loss
from objectives.train_config import TrainConfig
from strategies.base import ModelOutput
from strategies.exceptions import ConfigError


def test_class_weights_aligned_to_class_ids_with_a_missing_class() -> None:
    w = class_weights(torch.tensor([0, 0, 0, 2, -1]))
    # N=4, K=2 present: class 0 -> 4/(2*3), class 1 absent -> 1, class 2 -> 4/(2*1)
    torch.testing.assert_close(w, torch.tensor([4 / 6, 1.0, 2.0]))


def test_losses_reduce_to_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y, w = torch.randn(16, 3, generator=g), torch.randint(0, 3, (16,), generator=g), torch.ones(3)
    ce = F.cross_entropy(logits, y)
    torch.testing.assert_close(action_loss(logits, y, w, "ce"), ce)
    torch.testing.assert_close(action_loss(logits, y, w, "focal", gamma=0.0), ce)
    torch.testing.assert_close(action_loss(logits, y, w, "label_smoothing", smoothing=0.0), ce)
    mix = 0.7 * action_loss(logits, y, w, "label_smoothing") + 0.3 * action_loss(logits, y, w, "focal")
    torch.testing.assert_close(action_loss(logits, y, w, "ls_focal"), mix)
    assert action_loss(logits, y, w, "focal", gamma=2.0) < ce  # down-weights easy samples


def test_weighted_ce_is_a_plain_mean_of_weighted_samples() -> None:
    logits, y, w = torch.zeros(2, 3), torch.tensor([0, 2]), torch.tensor([1.0, 1.0, 3.0])
    expected = (1.0 + 3.0) / 2 * torch.log(torch.tensor(3.0))
    torch.testing.assert_close(action_loss(logits, y, w, "ce"), expected)


def test_label_smoothing_targets() -> None:
    logits, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    log_p = F.log_softmax(logits, -1)[0]
    expected = -(0.8 * log_p[0] + 0.1 * log_p[1] + 0.1 * log_p[2])
    torch.testing.assert_close(
        action_loss(logits, y, torch.ones(3), "label_smoothing", smoothing=0.2), expected
    )


def test_total_loss_adds_profit_and_aux_terms() -> None:
    out = ModelOutput(logits=torch.zeros(4, 3), profit=torch.full((4,), 0.1), aux_loss=torch.tensor(2.0))
    y, target, w = torch.zeros(4, dtype=torch.long), torch.zeros(4), torch.ones(3)
    s = LossSettings(profit_weight=0.5, aux_weight=0.01)
    parts = total_loss(out, y, target, w, s)
    ce = torch.log(torch.tensor(3.0)).item()
    assert parts.total.item() == pytest.approx(ce + 0.5 * 0.01 + 0.01 * 2.0)
    huber = total_loss(out, y, target, w, LossSettings(profit_loss="huber", huber_delta=0.01, aux_weight=0))
    assert huber.profit == pytest.approx(0.01 * (0.1 - 0.005))
    no_heads = total_loss(ModelOutput(logits=torch.zeros(4, 3)), y, target, w, s)
    assert no_heads.total.item() == pytest.approx(ce)


def test_mixup_mixes_the_action_loss() -> None:
    g = torch.Generator().manual_seed(1)
    out = ModelOutput(logits=torch.randn(6, 3, generator=g))
    y, y2, w, s = (
        torch.tensor([0, 1, 2, 0, 1, 2]),
        torch.tensor([2, 2, 2, 1, 1, 1]),
        torch.ones(3),
        LossSettings(),
    )
    a, b = total_loss(out, y, torch.zeros(6), w, s).total, total_loss(out, y2, torch.zeros(6), w, s).total
    mixed = total_loss(out, y, torch.zeros(6), w, s, mix=(y2, 0.25)).total
    torch.testing.assert_close(mixed, 0.25 * a + 0.75 * b)


def test_train_config_from_params() -> None:
    defaults = {"learning_rate": 2e-4, "schedule": "cosine", "confidence_gate": 0.4, "batch_size": 8}
    cfg = TrainConfig.from_params({"learning_rate": 1e-3, "d_model": 64, "batch_size": 32.0}, defaults)
    assert cfg.learning_rate == 1e-3 and cfg.schedule == "cosine" and cfg.batch_size == 32
    assert cfg.confidence_gate is None  # the family's gate never overrides the backtest spec
    assert TrainConfig.from_params({"confidence_gate": 0.6}, defaults).confidence_gate == 0.6
    assert TrainConfig.from_params({"augment": "true"}).augment is True


@pytest.mark.parametrize(
    ("params", "defaults", "match"),
    [
        ({"schedule": "linear"}, None, "schedule must be one of"),
        ({"batch_size": 32.5}, None, "batch_size must be int"),
        ({"learning_rate": -1.0}, None, "learning_rate must be > 0"),
        ({"loss": "hinge"}, None, "loss must be one of"),
        ({}, {"lerning_rate": 1e-3}, "unknown training defaults"),
    ],
)
def test_train_config_rejects(params: dict, defaults: dict | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_params(params, defaults)
