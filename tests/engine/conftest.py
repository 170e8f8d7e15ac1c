"""Engine test helpers: small synthetic specs."""

from __future__ import annotations

from typing import Any

import pytest

from engine.spec import ExperimentSpec, parse_spec

DTLZ2_OBJECTIVES = {
    "return_pct": {"goal": "max", "threshold": -1.1},
    "sharpe": {"goal": "max", "threshold": -1.1},
    "max_drawdown_pct": {"goal": "min", "threshold": 1.1},
}


def synthetic_spec(name: str = "syn", **overrides: Any) -> ExperimentSpec:
    raw: dict[str, Any] = {
        "name": name,
        "strategy": "synthetic:dtlz2",
        "objectives": DTLZ2_OBJECTIVES,
        "budget": {"trials": 6, "sobol_trials": 6, "max_epochs": 3, "trial_timeout_s": 60},
        "early_stopping": {"enabled": False},
        "executor": {"workers": 2},
        "seed": 3,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return parse_spec(raw)


@pytest.fixture
def make_spec() -> Any:
    return synthetic_spec
