"""Faults: the driver killed at the worst moments, a full disk, damaged files.

Each case runs a small synthetic study in a subprocess that dies at a chosen
point (:mod:`tests.engine.fault_driver`), then reruns the same command: the
study must complete with every completed trial kept exactly once and none
lost or changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.analysis.results import StudyResults
from tests.engine.conftest import DTLZ2_OBJECTIVES
from tests.engine.study.test_study import _completed

ROOT = Path(__file__).resolve().parents[3]
TRIALS = 6


def _spec(tmp_path: Path) -> Path:
    raw = {
        "name": "faulty",
        "strategy": "synthetic:dtlz2",
        "objectives": DTLZ2_OBJECTIVES,
        "budget": {"trials": TRIALS, "sobol_trials": 3, "max_epochs": 2, "trial_timeout_s": 120},
        "early_stopping": {"enabled": False},
        "executor": {"workers": 2},
        "seed": 5,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    return path


def _faulty_run(spec: Path, directory: Path, point: str, n: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.engine.fault_driver", str(spec), str(directory), point, str(n)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rerun(spec: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.interfaces.cli",
            "-q",
            "run",
            str(spec),
            "--study-dir",
            str(directory),
            "--progress",
            "quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_complete(directory: Path, before: dict[int, dict[str, Any]]) -> None:
    res = StudyResults.load(directory)
    counted = [r for r in res.records if r.status != "abandoned"]
    assert len(counted) == TRIALS and all(r.status == "completed" for r in counted)
    after = {r.index: r for r in res.records}
    for index, rec in before.items():  # nothing completed was lost, changed or run twice
        assert after[index].status == "completed" and after[index].metrics == rec["metrics"]
    params = [json.dumps(r.params, sort_keys=True) for r in counted]
    assert len(set(params)) == len(params)


@pytest.mark.slow
@pytest.mark.parametrize(("point", "n"), [("create", 1), ("propose", 3), ("write", 2)])
def test_the_driver_killed_at_the_worst_moment_loses_nothing(tmp_path: Path, point: str, n: int) -> None:
    spec = _spec(tmp_path)
    directory = tmp_path / "study"
    first = _faulty_run(spec, directory, point, n)
    assert first.returncode == 9, first.stderr[-2000:]
    if point == "create":
        assert not (directory / "spec.json").exists()  # not a study yet: the rerun starts it afresh
    before = _completed(directory)
    again = _rerun(spec, directory)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    _assert_complete(directory, before)


@pytest.mark.slow
def test_a_full_disk_says_so_and_the_rerun_completes(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    directory = tmp_path / "study"
    first = _faulty_run(spec, directory, "disk_full", 3)
    assert first.returncode == 1, first.stderr[-2000:]
    lines = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "the disk is full writing" in lines[0] and "result.json" in lines[0]
    assert "resumes safely" in lines[0] and "Traceback" not in first.stderr
    before = _completed(directory)
    again = _rerun(spec, directory)
    assert again.returncode == 0, again.stderr[-2000:]
    _assert_complete(directory, before)
