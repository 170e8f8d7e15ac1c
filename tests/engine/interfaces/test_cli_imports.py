"""The read-only commands start without torch or Ax (importing them takes seconds).

Each check runs the command in a fresh interpreter and reads ``sys.modules``
afterwards. ``validate`` of a model family's spec imports torch: the
families' search spaces live in their ``nn.Module`` modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.study.run import run_study
from tests.engine.conftest import synthetic_spec

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "ax", "botorch", "gpytorch", "mlflow")

PROBE = """
import json, sys
watched = json.loads(sys.argv[2])
sys.argv = ["boengine", *json.loads(sys.argv[1])]
from engine.interfaces.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted(m for m in watched if m in sys.modules)}),
      file=sys.stderr)
"""


def _probe(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stderr.strip().splitlines()[-1])
    result["stdout"] = done.stdout
    return result


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("latency") / "s"
    run_study(synthetic_spec("latency", budget={"trials": 2, "sobol_trials": 2}), directory)
    return directory


def test_help_imports_neither_torch_nor_ax() -> None:
    result = _probe("--help")
    assert result["code"] == 0 and "export-mlflow" in str(result["stdout"])
    assert result["loaded"] == []


def test_status_of_a_finished_study_imports_neither_torch_nor_ax(finished: Path) -> None:
    for args in (["status", str(finished)], ["status", str(finished), "--json"]):
        result = _probe(*args)
        assert result["code"] == 0 and "latency" in str(result["stdout"]), result
        assert result["loaded"] == [], args


def test_validate_of_a_synthetic_spec_imports_neither_torch_nor_ax() -> None:
    result = _probe("validate", str(ROOT / "experiments" / "synthetic.json"))
    assert result["code"] == 0 and ": ok" in str(result["stdout"])
    assert result["loaded"] == []


def test_the_probe_sees_an_import() -> None:
    """The probe reports what a command did import, so the empty lists above mean something."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            json.dumps(["--version"]),
            json.dumps(["typer", "engine.interfaces.cli"]),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(done.stderr.strip().splitlines()[-1])["loaded"] == ["engine.interfaces.cli", "typer"]
