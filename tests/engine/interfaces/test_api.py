"""The Python API: load_study / run_study give frames equal to what the CLI writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine import load_study, run_study
from tests.engine.conftest import synthetic_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("api") / "s"
    raw = synthetic_spec("api", budget={"trials": 4, "sobol_trials": 4}).given()
    run_study(raw, directory)
    return directory


def test_trials_pareto_curves_batches(study_dir: Path) -> None:
    study = load_study(study_dir)
    trials = study.trials()
    assert list(trials.index) == [0, 1, 2, 3]
    assert {"status", "reason", "source", "epochs", "seconds", "param_x0", "val_sharpe"} <= set(
        trials.columns
    )
    assert (trials["status"] == "completed").all()
    pd.testing.assert_frame_equal(study.pareto(), pd.read_csv(study_dir / "pareto.csv"), check_dtype=False)
    curves = study.curves()
    written = [
        json.loads(line) for line in (study_dir / "trials" / "0" / "curve.jsonl").read_text().splitlines()
    ]
    assert sorted(curves[curves.trial == 0].epoch.unique()) == [r["epoch"] for r in written]
    assert set(curves.columns) == {"trial", "fold", "epoch", "step", "metric", "value"}
    assert study.batches()["seconds"].ge(0).all()
    assert study.verdict is None  # a closed-form problem has no returns to judge
    assert study.figures()


def test_run_study_resumes(study_dir: Path) -> None:
    before = load_study(study_dir).trials()
    again = run_study(synthetic_spec("api", budget={"trials": 4, "sobol_trials": 4}).given(), study_dir)
    pd.testing.assert_frame_equal(again.trials(), before)


def test_plain_ax_loads_the_study_after_registration(study_dir: Path) -> None:
    code = (
        "import engine, sys; engine.register_with_ax()\n"
        "from ax.api.client import Client; from ax.api.configs import StorageConfig\n"
        f"c = Client.load_from_database('api', StorageConfig(url='sqlite:///{study_dir / 'ax.db'}'))\n"
        "print(len(c._experiment.trials))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "4"
