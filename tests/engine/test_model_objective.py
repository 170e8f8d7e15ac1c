"""The model objective's strategy-config entry: the gate a live system trades with."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from engine.objective import make_objective
from engine.records import TrialRecord
from engine.spec import parse_spec


def _entry(tmp_path: Path, gate: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[str]]:
    from objectives.evaluate import TrialModel

    spec = parse_spec({"name": "g", "strategy": "lstm", "backtest": {"gate": gate, "confidence_gate": 0.45}})
    loaded: list[str] = []
    monkeypatch.setattr(
        TrialModel, "load", classmethod(lambda cls, *a, **k: loaded.append("load") or _Gate())
    )
    monkeypatch.setattr("objectives.PreparedData.load", lambda *a, **k: None)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    store = SimpleNamespace(
        read_meta=lambda: SimpleNamespace(facts={"input_size": 10}),
        model_path=lambda index: ckpt,
        has_prepared_data=lambda: True,
        data_dir=tmp_path,
    )
    record = TrialRecord(index=0, status="completed", params=spec.space.sample(np.random.default_rng(0)))
    return make_objective(spec).config_entry(store, record), loaded  # type: ignore[arg-type]


class _Gate:
    def gate(self) -> float:
        return 0.61


def test_a_probability_gate_is_written_without_loading_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry, loaded = _entry(tmp_path, "probability", monkeypatch)
    assert entry["backtest"]["min_confidence"] == 0.45 and not loaded
    entry, loaded = _entry(tmp_path, "train_quantile", monkeypatch)  # resolved by the model
    assert entry["backtest"]["min_confidence"] == 0.61 and loaded == ["load"]
