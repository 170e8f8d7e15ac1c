"""A user's own family and metric, in a temporary module: a tiny study end to end; broken ones exit 2.

The study runs its trials in the local pool's spawned worker processes, which import the user's
module by name again (from the working directory the driver gave them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from engine.records import TrialRecord
from engine.spec import parse_spec
from engine.study.run import run_study
from tests.conftest import require_extra
from tests.engine.test_bad_input import _keep_signal_handlers, cli, snapshot  # noqa: F401  (fixture)
from tests.strategies.plugin_helpers import (  # noqa: F401  (fixture)
    EXAMPLE_FAMILY,
    EXAMPLE_METRICS,
    workdir,
    write_package,
)


def tiny_spec(strategy: str, **extra: Any) -> dict[str, Any]:
    """Seconds: 600 bars, two folds, two trials of one epoch, one worker."""
    return {
        "name": "user",
        "strategy": strategy,
        "data": {"source": "builtin:eurusd_1h", "max_bars": 600, "validation": {"folds": 2}},
        "search_space": {"hidden": 16, "batch_size": 64},
        "budget": {"trials": 2, "sobol_trials": 2, "max_epochs": 1, "trial_timeout_s": 120},
        "early_stopping": {"enabled": False},
        "executor": {"workers": 1},
        "seed": 0,
        **extra,
    }


@pytest.mark.usefixtures("workdir")
def test_a_user_family_and_metric_run_a_tiny_study(tmp_path: Path) -> None:
    pkg = write_package(tmp_path, {"models": EXAMPLE_FAMILY, "metrics": EXAMPLE_METRICS})
    raw = tiny_spec(
        f"{pkg}.models:TinyMLP",
        metrics={"worst_bar_pct": f"{pkg}.metrics:worst_bar_pct"},
        constraints=["worst_bar_pct >= -50"],
    )
    outcome = run_study(parse_spec(raw), tmp_path / "study")
    assert not outcome.interrupted
    paths = sorted((tmp_path / "study" / "trials").glob("*/result.json"))
    records = [TrialRecord.from_dict(json.loads(p.read_text())) for p in paths]
    assert [r.status for r in records] == ["completed", "completed"], [r.reason for r in records]
    for rec in records:  # computed in the worker process, beside the backtest's own figures
        assert math.isfinite(rec.metrics["worst_bar_pct"]) and rec.metrics["worst_bar_pct"] <= 0
        assert {"sortino", "calmar", "turnover"} <= set(rec.metrics) and "sortino" in rec.sems
    stored = json.loads((tmp_path / "study" / "spec.json").read_text())
    assert stored["strategy"] == f"{pkg}.models:TinyMLP"
    assert (tmp_path / "study" / "report.md").is_file()


@pytest.mark.parametrize(
    ("module", "strategy", "message"),
    [
        (None, "nosuch_pkg_q.models:TinyMLP", "cannot find module 'nosuch_pkg_q.models'"),
        (EXAMPLE_FAMILY, "{pkg}.models:tiny_space", "is a function, not a model family"),
        (
            "import torch\nraise ImportError('needs CUDA')\n",
            "{pkg}.models:Net",
            "failed: ImportError: needs CUDA",
        ),
    ],
    ids=["bad path", "not a family", "import error"],
)
@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.usefixtures("workdir")
def test_a_broken_family_exits_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    module: str | None,
    strategy: str,
    message: str,
) -> None:
    pkg = "nosuch_pkg_q" if module is None else write_package(tmp_path, {"models": module})
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(strategy.format(pkg=pkg))))
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    before = snapshot(tmp_path)
    study = ["--study-dir", str(tmp_path / "study"), "--progress", "quiet"] if command == "run" else []
    code, out, err = cli(monkeypatch, capsys, command, str(spec), *study)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec}: strategy: "), err
    assert message in lines[0] and "Traceback" not in out + err
    assert snapshot(tmp_path) == before  # nothing written


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"tail": "nosuch_pkg_q.m:tail"}, "metrics.tail: cannot find module 'nosuch_pkg_q.m'"),
        ({"tail": "{pkg}.metrics:nothing"}, "metrics.tail: module '{pkg}.metrics'"),
        ({"sharpe": "{pkg}.metrics:worst_bar_pct"}, "metrics.sharpe: a metric of the catalogue already has"),
        ({"tail": "{pkg}.metrics:np"}, "metrics.tail: {pkg}.metrics:np is a module, not a function"),
    ],
    ids=["bad path", "no function", "a catalogue name", "not a function"],
)
@pytest.mark.usefixtures("workdir")
def test_a_broken_user_metric_exits_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    metrics: dict[str, str],
    message: str,
) -> None:
    pkg = write_package(tmp_path, {"metrics": EXAMPLE_METRICS})
    spec = tmp_path / "spec.json"
    given = {k: v.format(pkg=pkg) for k, v in metrics.items()}
    spec.write_text(json.dumps(tiny_spec("lstm", search_space={}, metrics=given)))
    code, _, err = cli(monkeypatch, capsys, "validate", str(spec))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert message.format(pkg=pkg) in lines[0], lines[0]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.usefixtures("workdir")
def test_ray_workers_import_the_user_family_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray task unpickles the spec and finds the family by its reference: Ray puts the driver's
    working directory on its workers' ``sys.path``."""
    require_extra("ray", "ray")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    pkg = write_package(tmp_path, {"models": EXAMPLE_FAMILY})
    raw = tiny_spec(f"{pkg}.models:TinyMLP", executor={"kind": "ray", "workers": 1})
    run_study(parse_spec(raw), tmp_path / "study")
    paths = sorted((tmp_path / "study" / "trials").glob("*/result.json"))
    records = [TrialRecord.from_dict(json.loads(p.read_text())) for p in paths]
    assert [r.status for r in records] == ["completed", "completed"], [r.reason for r in records]
