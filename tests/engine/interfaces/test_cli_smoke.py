"""The product as a user runs it: `boengine run experiments/smoke.json`, then the output commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[3]


def boengine(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.interfaces.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "smoke"
    out = boengine("run", "experiments/smoke.json", "--study-dir", str(directory), "--progress", "plain")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "on the Pareto front" in out.stdout
    return directory


@pytest.mark.slow
def test_smoke_run_writes_front_with_test_figures(smoke_study: Path) -> None:
    front = pd.read_csv(smoke_study / "pareto.csv")
    assert len(front) >= 1
    for name in ("return_pct", "sharpe", "max_drawdown_pct"):
        assert front[f"val_{name}"].notna().all()
        assert front[f"test_{name}"].notna().all()  # the held-out split, evaluated at the end
    assert (front["val_num_trades"] >= 1).all()  # the spec's outcome constraint
    assert (smoke_study / "report.html").stat().st_size > 1_000_000
    results = [json.loads(p.read_text()) for p in (smoke_study / "trials").glob("*/result.json")]
    assert len(results) == 6 and all(
        (smoke_study / "trials" / str(r["index"]) / "model.pt").is_file()
        for r in results
        if r["status"] == "completed"
    )


@pytest.mark.slow
def test_best_pareto_status_report(smoke_study: Path, tmp_path: Path) -> None:
    config = tmp_path / "strategy_config.json"
    config.write_text(
        json.dumps({"default_strategy": "moe_transformer", "moe_transformer": {"seq_length": 500}})
    )
    out = boengine("best", str(smoke_study), "--pick", "knee", "--write-config", str(config))
    assert out.returncode == 0, out.stderr
    written = json.loads(config.read_text())
    assert written["moe_transformer"] == {"seq_length": 500}
    entry = written["lstm"]
    assert entry["model_family"] == "lstm" and entry["feature_set"] == "ohlcv"
    assert entry["seq_length"] == entry["hyperparameters"]["seq_len"]
    assert Path(entry["model_path"]).is_file() and entry["model_config"]["input_size"] == 10
    # the gate it trades with, as a probability a live system can apply
    gate = entry["backtest"]
    assert gate["gate"] == "train_quantile" and 0.0 <= gate["confidence_gate"] < 1.0
    assert 0.0 <= gate["min_confidence"] <= 1.0 and gate["fee_bps"] > 0

    png = tmp_path / "front.png"
    assert boengine("pareto", str(smoke_study), "--format", "png", "--out", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status = boengine("status", str(smoke_study))
    assert status.returncode == 0 and "smoke" in status.stdout
    assert boengine("report", str(smoke_study), "--out", str(tmp_path)).returncode == 0
    assert "Pareto set" in (tmp_path / "report.md").read_text()


def test_bad_study_dir_exits_2(tmp_path: Path) -> None:
    out = boengine("status", str(tmp_path / "nothing"))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) == 1


def test_missing_data_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = json.loads((ROOT / "experiments" / "smoke.json").read_text())
    spec["data"]["source"] = str(tmp_path / "missing.csv")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = boengine("run", str(path), "--study-dir", str(tmp_path / "study"), "--progress", "quiet")
    assert out.returncode == 2, out.stderr
    assert "missing.csv" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "study").exists()


def test_priors_command(tmp_path: Path) -> None:
    out = boengine("priors", "--data", "builtin:msft_1d", "--strategy", "lstm", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert len(payload["suggestions"]["lstm"]) == 3
