from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from objectives.config import BacktestSpec
from objectives.evaluate import EvalSettings, TrialModel
from objectives.train_config import TrainConfig
from objectives.training import EpochReport, TrialTensors, _scheduler, score_split, train_model
from strategies.base import ModelOutput
from strategies.exceptions import ConfigError, TrialError
from tests.objectives.helpers import TinyModel, synthetic_data

CFG = TrainConfig(learning_rate=5e-3, batch_size=32, seq_len=4, patience=50)
SETTINGS = EvalSettings(max_epochs=6, seed=3, device="cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_data(600)


def test_loss_decreases_on_a_learnable_problem(data) -> None:
    result = TrialModel(TinyModel(4, seed=0), CFG, data, SETTINGS).train()
    first, last = result.curve[0], result.curve[-1]
    assert last.train_loss < 0.6 * first.train_loss
    assert result.metrics["val_accuracy"] > 0.7  # majority class: ~0.38
    assert result.epochs_run == 6 and 1 <= result.best_epoch <= 6
    assert [r.epoch for r in result.curve] == [1, 2, 3, 4, 5, 6]
    assert all(b.seconds >= a.seconds for a, b in zip(result.curve, result.curve[1:], strict=False))
    assert set(result.seconds) == {"train", "backtest", "total"} and result.input_size == 4
    expected = {
        "return_pct",
        "sharpe",
        "max_drawdown_pct",
        "win_rate_pct",
        "num_trades",
        "profit_factor",
        "exposure_pct",
        "avg_trade_pct",
        "sortino",
        "calmar",
        "turnover",
        "bh_return_pct",
        "bh_sharpe",
        "bh_max_drawdown_pct",
        "val_accuracy",
        "val_loss",
    }
    assert set(result.metrics) == expected and all(math.isfinite(v) for v in result.metrics.values())


def test_best_epoch_is_the_lowest_loss_on_the_selection_slice(data) -> None:
    model = TinyModel(4, seed=0)
    result = TrialModel(model, CFG, data, SETTINGS).train()
    losses = [r.val_loss for r in result.curve]
    assert all(math.isfinite(v) for v in losses)
    assert result.best_epoch == 1 + losses.index(min(losses))
    # the restored weights: scoring the selection slice again gives the kept epoch's loss
    t = TrialTensors(
        data,
        CFG.seq_len,
        data.fit.stop,
        torch.device("cpu"),
        CFG.class_weights,
        train_bars=data.fit.train_bars(),
    )
    again = score_split(model, t, data.fit.select_bars(), CFG, data, SETTINGS.backtest, 64)
    assert again.loss == pytest.approx(min(losses), rel=1e-6)
    # the slice is the end of the training split, purged from the bars trained on; the traded
    # validation split is another range
    fit = data.fit
    assert fit.select[1] == data.splits.train[1] and fit.train[1] + 2 == fit.select[0]
    assert fit.val == data.splits.val and result.metrics["val_loss"] != pytest.approx(min(losses))


def test_callback_stops_training(data) -> None:
    seen: list[EpochReport] = []

    def stop_after_two(report: EpochReport) -> bool:
        seen.append(report)
        return report.epoch >= 2

    result = TrialModel(TinyModel(4), CFG, data, SETTINGS).train(on_epoch=stop_after_two)
    assert result.epochs_run == 2 and result.stopped_by_callback and result.stop_reason == "callback"
    assert [r.epoch for r in seen] == [1, 2] and seen == result.curve


def test_same_seed_same_metrics_other_seed_differs(data) -> None:
    a = TrialModel(TinyModel(4, seed=7), CFG, data, EvalSettings(max_epochs=3, seed=11, device="cpu")).train()
    b = TrialModel(TinyModel(4, seed=7), CFG, data, EvalSettings(max_epochs=3, seed=11, device="cpu")).train()
    c = TrialModel(TinyModel(4, seed=7), CFG, data, EvalSettings(max_epochs=3, seed=12, device="cpu")).train()
    assert a.metrics == b.metrics
    assert [r.train_loss for r in a.curve] == [r.train_loss for r in b.curve]
    assert [r.train_loss for r in a.curve] != [r.train_loss for r in c.curve]


def test_training_leaves_the_global_rng_alone(data) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TrialModel(TinyModel(4), CFG, data, EvalSettings(max_epochs=1, seed=5, device="cpu")).train()
    assert torch.equal(torch.rand(3), expected)


def test_early_stopping_on_a_flat_validation_loss(data) -> None:
    result = TrialModel(TinyModel(4, dead=True), TrainConfig(seq_len=4, patience=2), data, SETTINGS).train()
    assert result.stop_reason == "early_stopping" and result.epochs_run == 3 and result.best_epoch == 1


def test_time_budget_stops_after_the_first_batch(data) -> None:
    settings = EvalSettings(max_epochs=50, seed=0, device="cpu", time_budget_s=0.0)
    result = TrialModel(TinyModel(4), CFG, data, settings).train()
    assert result.epochs_run == 1 and result.stop_reason == "time_budget"


def test_checkpoint_restores_the_validation_metrics(data, tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "best.pt"
    result = TrialModel(TinyModel(4, seed=2), CFG, data, SETTINGS).train(checkpoint_path=path)
    fresh = TinyModel(4, seed=99)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert TrialModel(fresh, CFG, data, SETTINGS).score("val")[0] == result.metrics
    test = TrialModel(fresh, CFG, data, SETTINGS).score("test")[0]
    assert "test_accuracy" in test and "test_loss" in test


def test_confidence_gate_from_params_overrides_the_spec(data) -> None:
    model = TinyModel(4, seed=2)
    TrialModel(model, CFG, data, EvalSettings(max_epochs=2, seed=0, device="cpu")).train()
    absolute = EvalSettings(device="cpu", backtest=BacktestSpec(gate="probability"))
    never = TrainConfig(seq_len=4, confidence_gate=0.999)
    gated = TrialModel(model, never, data, absolute).score("val")[0]
    assert gated["num_trades"] == 0 and gated["exposure_pct"] == 0.0
    strict = EvalSettings(device="cpu", backtest=BacktestSpec(confidence_gate=0.999, gate="probability"))
    assert TrialModel(model, CFG, data, strict).score("val")[0]["num_trades"] == 0
    assert TrialModel(model, CFG, data, absolute).score("val")[0]["num_trades"] > 0


def test_seq_len_beyond_the_prepared_windows_is_a_trial_error(data) -> None:
    with pytest.raises(TrialError, match="exceeds the prepared max_seq_len 8"):
        TrialModel(TinyModel(4), TrainConfig(seq_len=9), data, SETTINGS).train()


class _NaNModel(TinyModel):
    def forward(self, x: torch.Tensor) -> ModelOutput:
        out = super().forward(x)
        return ModelOutput(logits=out.logits * float("nan"), profit=out.profit)


def test_non_finite_loss_is_a_trial_error(data) -> None:
    with pytest.raises(TrialError, match="non-finite"):
        TrialModel(_NaNModel(4), CFG, data, SETTINGS).train()


@pytest.mark.parametrize("schedule", ["augment", "cosine", "warmup_cosine", "plateau"])
def test_schedules_and_augmentation_train(data, schedule: str) -> None:
    cfg = (
        TrainConfig(seq_len=4, learning_rate=5e-3, augment=True)
        if schedule == "augment"
        else TrainConfig(seq_len=4, learning_rate=5e-3, schedule=schedule, warmup_epochs=2)
    )
    result = TrialModel(TinyModel(4), cfg, data, EvalSettings(max_epochs=3, seed=0, device="cpu")).train()
    assert result.curve[-1].train_loss < result.curve[0].train_loss


def test_warmup_cosine_learning_rates() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = _scheduler(opt, TrainConfig(schedule="warmup_cosine", warmup_epochs=2), max_epochs=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()  # type: ignore[union-attr]
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[3] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_train_model_returns_best_state(data) -> None:
    model = TinyModel(4)
    out = train_model(model, data, CFG, max_epochs=2, seed=0, backtest=BacktestSpec(), device="cpu")
    for key, value in model.state_dict().items():
        assert torch.equal(value, out.best_state[key])


def test_eval_settings_validation() -> None:
    with pytest.raises(ConfigError, match="max_epochs must be >= 1"):
        EvalSettings(max_epochs=0)
    with pytest.raises(ConfigError, match="time_budget_s"):
        EvalSettings(time_budget_s=-1.0)


def test_train_quantile_gate_is_calibrated_on_training_bars_only(data) -> None:
    """A 'train_quantile' gate trades the model's most confident bars, its threshold fitted on training bars."""
    import dataclasses

    import numpy as np

    from objectives.training import GATE_CALIBRATION_BARS, TrialTensors, gate_threshold

    model = TinyModel(4, seed=2)
    TrialModel(model, CFG, data, EvalSettings(max_epochs=2, seed=0, device="cpu")).train()
    t = TrialTensors(data, CFG.seq_len, data.splits.val[1], torch.device("cpu"), CFG.class_weights)
    thr = gate_threshold(model, t, data, 0.8, 64)
    # the threshold is the 0.8-quantile of max(p_long, p_short) over the last training bars
    bars = torch.from_numpy(data.splits.bars("train")[-GATE_CALIBRATION_BARS:])
    with torch.no_grad():
        probs = torch.softmax(model(t.batch(bars)[0]).logits, -1).numpy().astype(np.float64)
    assert thr == pytest.approx(float(np.quantile(np.maximum(probs[:, 1], probs[:, 2]), 0.8)), rel=1e-6)
    longs_only = gate_threshold(model, t, data, 0.8, 64, allow_short=False)
    assert longs_only == pytest.approx(float(np.quantile(probs[:, 1], 0.8)), rel=1e-6)
    assert gate_threshold(model, t, data, 0.0, 64) == 0.0
    # validation and test features do not move it
    changed = data.features.copy()
    changed[data.splits.val[0] :] = 5.0
    other = dataclasses.replace(data, features=changed)
    t2 = TrialTensors(other, CFG.seq_len, other.splits.val[1], torch.device("cpu"), CFG.class_weights)
    assert gate_threshold(model, t2, other, 0.8, 64) == thr

    # more quantile, fewer trading bars; a probability gate the model never reaches trades nothing,
    # while the same number as a training quantile still trades its most confident bars
    def exposure(gate: float, kind: str) -> float:
        spec = BacktestSpec(confidence_gate=gate, gate=kind)
        return TrialModel(model, CFG, data, EvalSettings(device="cpu", backtest=spec)).score("val")[0][
            "exposure_pct"
        ]

    assert exposure(0.2, "train_quantile") > exposure(0.9, "train_quantile") > 0.0
    assert exposure(0.0, "train_quantile") == pytest.approx(100.0)  # quantile 0: always long or short
    assert exposure(0.999, "probability") == 0.0 < exposure(0.9, "train_quantile")
