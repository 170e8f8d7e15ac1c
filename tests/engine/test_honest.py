"""Honest selection end to end: a planted signal is found, pure noise is flagged.

Small walk-forward studies on synthetic price series with known answers:
AR(1) returns with positive autocorrelation (a learnable momentum), and
random walks with nothing to learn: one drifting down (a falling market,
where a learned short bias beats flat and buy-and-hold without any skill) and
one drifting up. The first must end with "evidence" and a chosen
configuration that earns on the held-out test split; the others with "no
evidence". How often the verdict is wrong is measured over many generated
series in benchmarks/verdict_calibration.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.analysis.results import StudyResults
from engine.reporting.best import pick_trial
from engine.spec import parse_spec
from engine.study.run import run_study


def write_series(
    path: Path, *, n: int, phi: float, seed: int, sigma: float = 0.004, drift: float = 0.0
) -> Path:
    """Hourly OHLCV bars whose log returns follow r_t = drift + x_t, x_t = phi * x_{t-1} + e_t."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sigma, n)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    r = x + drift
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, sigma / 4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, sigma / 4, n)))
    stamps = pd.date_range("2022-01-03", periods=n, freq="1h").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"timestamp": stamps, "open": open_, "high": high, "low": low, "close": close})
    frame["volume"] = rng.integers(100, 1000, n)
    frame.to_csv(path, index=False)
    return path


def honest_spec(name: str, source: Path, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": name,
        "strategy": "lstm",
        "data": {
            "source": str(source),
            "feature_set": "ohlcv",
            "label": {"scheme": "A", "horizon": 3, "profit_threshold": 0.002, "min_diff": 0.001},
            "validation": {"scheme": "walk_forward", "folds": 4},
        },
        "search_space": {
            "hidden_size": {"values": [8, 16]},
            "num_layers": 1,
            "seq_len": {"low": 4, "high": 8},
            "batch_size": 64,
            "predict_profit": False,
        },
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -20.0},
            "sharpe": {"goal": "max", "threshold": -5.0},
            "max_drawdown_pct": {"goal": "min", "threshold": 40.0},
        },
        "constraints": ["num_trades >= 1"],
        "budget": {"trials": 5, "sobol_trials": 4, "max_epochs": 3, "trial_timeout_s": 300},
        "early_stopping": {"enabled": False},
        "backtest": {"fee_bps": 0.5, "slippage_bps": 0.5},
        "executor": {"kind": "local", "workers": 2},
        "seed": 0,
    }
    raw.update(overrides)
    return raw


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    source = write_series(root / "momentum.csv", n=3000, phi=0.3, seed=1)
    run_study(parse_spec(honest_spec("planted", source)), root / "study")
    return root / "study"


@pytest.fixture(scope="module", params=[(-0.0004, 2), (0.0003, 3)], ids=["falling", "rising"])
def noise(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random walk with a drift (about -40 % or +30 % over the series), 8 trials searched."""
    drift, seed = request.param
    root = tmp_path_factory.mktemp("noise")
    source = write_series(root / "walk.csv", n=3000, phi=0.0, seed=seed, drift=drift)
    budget = {"trials": 8, "sobol_trials": 6, "max_epochs": 3, "trial_timeout_s": 300}
    run_study(parse_spec(honest_spec("noise", source, budget=budget)), root / "study")
    return root / "study"


@pytest.mark.slow
def test_planted_signal_is_evidence_and_the_choice_earns_on_test(planted: Path) -> None:
    res = StudyResults.load(planted)
    verdict = res.verdict
    assert verdict is not None and verdict.edge, verdict and verdict.sentence
    assert verdict.sentence.startswith("Evidence of an edge: the knee (trial")
    assert verdict.skill_p_family < 0.05 and verdict.skill_p_pick < 0.05 and verdict.deflated_sharpe >= 0.95
    chosen = pick_trial(res, "knee")
    assert verdict.pick == chosen.index and verdict.n_study == 5 and verdict.n_effective <= verdict.n_bars
    test = res.test[chosen.index]
    assert test["return_pct"] > 0 and test["sharpe"] > 0  # held out: never seen by the search
    assert res.store.final_model_path(chosen.index).is_file()  # the final fit was scored
    # the baseline (the family's defaults) ran first, and every trial has out-of-fold returns
    assert res.records[0].source == "baseline"
    n_oof = res.meta.facts["splits"]["val"]
    for rec in res.records:
        returns = res.store.read_array(rec.index, "returns")
        assert returns is not None and len(returns) == n_oof and returns.dtype == np.float32
        assert set(rec.sems) == {"return_pct", "sharpe", "max_drawdown_pct", "sortino", "calmar"}
        assert [f["fold"] for f in rec.info["folds"]] == [0, 1, 2, 3]


@pytest.mark.slow
def test_pure_noise_is_no_evidence(noise: Path) -> None:
    res = StudyResults.load(noise)
    verdict = res.verdict
    assert verdict is not None and not verdict.edge
    assert verdict.sentence.startswith(
        f"No evidence: the knee (trial {verdict.pick}) is indistinguishable from luck"
    )
    assert verdict.reasons and all(r in verdict.sentence for r in verdict.reasons)
    assert verdict.n_study == 8 and verdict.n_returns <= 8
    # the figures the sentence rests on are in the record status --json shows
    assert {"skill_p_family", "skill_p_pick", "deflated_sharpe", "n_effective"} <= set(verdict.summary())


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str) -> tuple[int, str, str]:
    from engine.interfaces.cli import main

    monkeypatch.setattr(sys, "argv", ["boengine", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.mark.slow
def test_status_json_carries_the_verdict(noise: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    code, out, _ = _cli(monkeypatch, capsys, "status", str(noise), "--json")
    assert code == 0
    verdict = json.loads(out)["verdict"]
    assert verdict["edge"] is False and verdict["pick_name"] == "knee"
    keys = ("deflated_sharpe", "skill_p_family", "skill_p_pick", "pbo", "spa_p_buy_and_hold", "spa_p_flat")
    assert all(isinstance(verdict[k], float) for k in keys)
    assert all(isinstance(verdict[k], int) for k in ("n_study", "n_bars", "n_effective", "pick"))


@pytest.mark.slow
def test_best_writes_the_verdict_and_warns_without_evidence(
    noise: Path, planted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    config = tmp_path / "strategy_config.json"
    code, out, err = _cli(monkeypatch, capsys, "best", str(noise), "--write-config", str(config))
    assert code == 0 and out.startswith("No evidence:")
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        line for line in err.splitlines() if "no evidence" in line
    ]
    assert "warning: no evidence" in err
    entry = json.loads(config.read_text())["lstm"]["boengine"]
    assert entry["verdict"]["edge"] is False and "deflated_sharpe" in entry
    code, out, err = _cli(monkeypatch, capsys, "best", str(planted), "--write-config", str(config))
    assert code == 0 and out.startswith("Evidence of an edge") and "warning" not in err
    assert json.loads(config.read_text())["lstm"]["boengine"]["verdict"]["edge"] is True
    # the live model: the final fit on every bar before the test split
    assert json.loads(config.read_text())["lstm"]["model_path"].endswith("final.pt")


@pytest.mark.parametrize(
    ("validation", "expected"),
    [
        (
            {"scheme": "kfold"},
            r"data\.validation\.scheme: Input should be 'holdout', 'walk_forward' or 'cpcv'",
        ),
        ({"scheme": "walk_forward", "window": "sliding"}, r"data\.validation\.window: Input should be"),
        ({"scheme": "holdout", "folds": 3}, r"folds: walk_forward settings"),
        ({"scheme": "walk_forward", "folds": 1}, r"data\.validation\.folds: Input should be greater"),
    ],
)
def test_bad_validation_settings_exit_2_at_validate(
    validation: dict[str, Any], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    raw = honest_spec("bad", tmp_path / "x.csv")
    raw["data"]["validation"] = validation
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    code, _, err = _cli(monkeypatch, capsys, "validate", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(expected, err), err


def test_more_folds_than_the_data_allow_exit_2_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    source = write_series(tmp_path / "short.csv", n=600, phi=0.0, seed=0)
    raw = honest_spec("short", source)
    raw["data"]["validation"]["folds"] = 40
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = _cli(monkeypatch, capsys, "run", str(path), "--study-dir", str(tmp_path / "study"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "data.validation.folds 40" in err and "use at most" in err and "short.csv" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
