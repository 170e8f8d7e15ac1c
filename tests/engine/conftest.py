"""Engine test helpers: small synthetic specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
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


def output_under_hash_seeds(code: str, *args: str, hash_seeds: tuple[str, ...] = ("1", "2")) -> list[Any]:
    """The JSON that ``python -c code args`` prints last, run once per ``PYTHONHASHSEED`` (the
    repository root as working directory and import path; ``{hash_seed}`` in an arg is replaced)."""
    root = Path(__file__).resolve().parents[2]
    outputs = []
    for hash_seed in hash_seeds:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", code, *(a.format(hash_seed=hash_seed) for a in args)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return outputs
