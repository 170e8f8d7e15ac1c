"""A tiny CPCV study end to end: trials on C(4, 2) splits, paths stored, the final fit, a verdict."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.analysis.results import StudyResults
from engine.objective import objective_name
from engine.objective.cpcv_objective import path_pbo
from engine.reporting.report import write_report
from engine.spec import parse_spec
from engine.study.run import run_study


def _series(path: Path, n: int, seed: int = 3) -> Path:
    """Hourly OHLCV bars of an AR(1) return series (a little momentum to learn)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 0.004, n)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = 0.2 * x[t - 1] + e[t]
    close = 100.0 * np.exp(np.cumsum(x))
    open_ = np.concatenate([[100.0], close[:-1]])
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2022-01-03", periods=n, freq="1h").strftime("%Y-%m-%d %H:%M:%S"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": rng.integers(100, 1000, n),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _spec(source: Path, **data: Any) -> dict[str, Any]:
    return {
        "name": "cpcv",
        "strategy": "lstm",
        "data": {
            "source": str(source),
            "feature_set": "ohlcv",
            "label": {"scheme": "A", "horizon": 3, "profit_threshold": 0.002, "min_diff": 0.001},
            "validation": {"scheme": "cpcv", "groups": 4, "test_groups": 2, "embargo_bars": 2},
            **data,
        },
        "search_space": {
            "hidden_size": {"values": [8, 16]},
            "num_layers": 1,
            "seq_len": 8,
            "batch_size": 64,
            "predict_profit": False,
        },
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -50.0},
            "sharpe": {"goal": "max", "threshold": -10.0},
            "max_drawdown_pct": {"goal": "min", "threshold": 80.0},
        },
        "budget": {"trials": 2, "sobol_trials": 2, "max_epochs": 1, "trial_timeout_s": 300},
        "early_stopping": {"enabled": False},
        "executor": {"kind": "local", "workers": 1},
        "seed": 0,
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cpcv")
    spec = parse_spec(_spec(_series(root / "bars.csv", 1200)))
    assert objective_name(spec.strategy, spec.data.validation.scheme) == "cpcv"
    run_study(spec, root / "study")
    return root / "study"


def test_a_tiny_cpcv_study_runs_end_to_end_and_gets_a_verdict(study: Path) -> None:
    res = StudyResults.load(study)
    done = [r for r in res.records if r.status == "completed"]
    assert len(done) == 2, [(r.status, r.reason) for r in res.records]
    stamps = res.store.oos_timestamps()
    assert stamps is not None
    for rec in done:
        returns, paths = res.store.read_array(rec.index, "returns"), res.store.read_array(rec.index, "paths")
        assert returns is not None and paths is not None
        # one series over every pre-test bar, the same for every trial: the bar-wise mean of 3 paths
        assert paths.shape == (3, len(stamps)) and returns.shape == (len(stamps),)
        np.testing.assert_allclose(returns, paths.mean(axis=0), atol=1e-6)
        assert len(rec.info["folds"]) == 6 and rec.info["final_epochs"] == 1 and len(rec.info["paths"]) == 3
        assert rec.metrics["sharpe"] == pytest.approx(np.mean([p["sharpe"] for p in rec.info["paths"]]))
        assert all(rec.sems[k] > 0 for k in ("return_pct", "sharpe", "max_drawdown_pct"))
        assert res.store.final_model_path(rec.index).is_file()  # the final fit, scored on test
    verdict = res.verdict
    assert verdict is not None and verdict.n_obs == len(stamps) and verdict.n_study == 2
    sizes = res.store.fold_sizes()  # the verdict's blocks are CPCV's four groups, not a holdout split
    assert len(sizes) == 4 and sum(sizes) == len(stamps)
    assert verdict.folds["folds"] == 4 and len(verdict.folds["sharpes"]) == 4
    assert verdict.sentence.startswith(("Evidence", "No evidence"))
    pbo = path_pbo(res.store, [r.index for r in done])
    assert pbo is not None and len(pbo["per_path"]) == 3 and 0.0 <= pbo["pbo"] <= 1.0
    report = write_report(study)
    md = (report if report.suffix == ".md" else report / "report.md").read_text()
    assert "combinatorial purged cross-validation: 4 groups, 2 traded per split, 6 splits" in md
    assert "3 backtest paths" in md
    (row,) = [line for line in md.splitlines() if "PBO over CPCV's paths" in line]
    assert f"{pbo['pbo']:.3f}" in row and "3 backtest paths" in row
    facts = json.loads((study / "meta.json").read_text())["facts"]
    assert len(facts["groups"]) == 4 and "train" not in facts["split_dates"]


EIGHT = {"scheme": "cpcv", "groups": 8, "test_groups": 2}


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str) -> tuple[int, str, str]:
    from engine.interfaces.cli import main

    monkeypatch.setattr(sys, "argv", ["boengine", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.mark.parametrize(
    ("command", "bars", "data", "expected"),
    [
        (
            "validate",
            1200,
            {"max_bars": 120, "validation": EIGHT},
            "data.max_bars: 120 bars, data.validation.groups 8",
        ),
        ("run", 150, {"validation": EIGHT}, "150 bars, data.validation.groups 8: groups of 14 decision bars"),
        ("validate", 1200, {"validation": {"scheme": "cpcv", "folds": 3}}, "folds: walk_forward settings"),
    ],
)
def test_too_few_bars_per_group_exit_2_with_one_line(
    command: str,
    bars: int,
    data: dict[str, Any],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_spec(_series(tmp_path / "bars.csv", bars), **data)))
    args = [command, str(path), *(["--study-dir", str(tmp_path / "s")] if command == "run" else [])]
    code, _, err = _cli(monkeypatch, capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert expected in err, err
    assert not (tmp_path / "s").exists()
