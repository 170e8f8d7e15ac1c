"""MLflow tracking: a study as a parent run with one child run per trial, logged idempotently.

Against a temporary SQLite tracking store (MLflow's local database backend).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_extra

require_extra("mlflow", "mlflow")

from mlflow.entities import Run  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from engine import load_study  # noqa: E402
from engine.interfaces.tracking import log_study, study_key, track_study  # noqa: E402
from engine.spec import MlflowSpec  # noqa: E402
from engine.store import StudyStore  # noqa: E402
from engine.study.run import run_study  # noqa: E402
from tests.engine import faulty  # noqa: E402
from tests.engine.conftest import synthetic_spec  # noqa: E402
from tests.engine.test_bad_input import _keep_signal_handlers, cli  # noqa: E402, F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENT = "boengine-test"
BUDGET = {"trials": 4, "sobol_trials": 4}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A tracking database, and an experiment whose artifacts stay in the temporary directory."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    yield uri, root


@pytest.fixture(scope="module")
def study(store: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic study whose spec asks for tracking, logged by run_study when the loop ends;
    the configurations with x0 > 0.5 fail (trials 2 and 3)."""
    uri, _ = store
    directory = tmp_path_factory.mktemp("study") / "s"
    spec = synthetic_spec("mlf", budget=BUDGET, tracking={"mlflow": {"uri": uri, "experiment": EXPERIMENT}})
    run_study(spec, directory, trial_fn=faulty.raise_when_x0_high)
    return directory


def _runs(uri: str, directory: Path) -> list[Run]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    key = study_key(load_study(directory).results)
    return list(
        client.search_runs([experiment.experiment_id], filter_string=f"tags.`boengine.study_key` = '{key}'")
    )


def _split(runs: list[Run]) -> tuple[Run, dict[int, Run]]:
    parents = [r for r in runs if r.data.tags["boengine.kind"] == "study"]
    children = [r for r in runs if r.data.tags["boengine.kind"] == "trial"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    by_trial = {int(r.data.tags["boengine.trial"]): r for r in children}
    assert len(by_trial) == len(children), "two runs for one trial"
    return parents[0], by_trial


def _histories(uri: str, run: Run) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(uri)
    keys = [k for k in run.data.metrics if k.startswith("curve/")]
    return {
        k.removeprefix("curve/"): sorted(
            (m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)
        )
        for k in keys
    }


def _expected_curves(directory: Path, trial: int) -> dict[str, list[tuple[int, float]]]:
    frame = load_study(directory).curves()
    rows = frame[frame.trial == trial]
    return {
        metric: sorted((int(s), float(v)) for s, v in zip(group.step, group.value))
        for metric, group in rows.groupby("metric")
    }


def test_a_run_logs_one_parent_and_one_child_per_trial(study: Path, store: tuple[str, Path]) -> None:
    uri, _ = store
    parent, children = _split(_runs(uri, study))
    records = {r.index: r for r in load_study(study).results.records}
    assert sorted(children) == sorted(records) and len(records) == BUDGET["trials"]
    assert parent.info.run_name == "mlf" and parent.info.status == "FINISHED"
    assert parent.data.tags["boengine.state"] == "finished"
    assert parent.data.tags["boengine.study_dir"] == str(study.resolve())
    statuses = [r.status for r in records.values()]
    assert statuses.count("completed") == 2 and statuses.count("failed") == 2
    assert parent.data.metrics["trials/completed"] == 2 and parent.data.metrics["trials/failed"] == 2
    for index, run in children.items():
        rec = records[index]
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["boengine.status"] == rec.status and tags["boengine.source"] == rec.source
        assert run.info.status == {"completed": "FINISHED", "failed": "FAILED"}[rec.status]
        assert tags.get("boengine.reason") == rec.reason
        assert run.data.params == {k: str(v) for k, v in rec.params.items()}
        for name, value in rec.metrics.items():
            assert run.data.metrics[f"validation/{name}"] == pytest.approx(value, rel=1e-12)
        assert run.data.metrics["epochs"] == rec.epochs
        curves = _expected_curves(study, index)
        assert _histories(uri, run) == curves
        assert bool(curves) == (rec.status == "completed")


def test_the_front_is_tagged_and_hypervolume_has_one_step_per_trial(
    study: Path, store: tuple[str, Path]
) -> None:
    uri, _ = store
    res = load_study(study).results
    parent, children = _split(_runs(uri, study))
    front = {r.index for r in res.front}
    assert front and {i for i, r in children.items() if r.data.tags["boengine.pareto"] == "true"} == front
    history = sorted(
        (m.step, m.value) for m in MlflowClient(uri).get_metric_history(parent.info.run_id, "hypervolume")
    )
    trace = res.objectives.hypervolume_trace(res.records)
    assert [step for step, _ in history] == [r.index for r in res.records]
    assert [value for _, value in history] == pytest.approx(trace)
    assert parent.data.metrics["hypervolume"] == pytest.approx(res.hypervolume)


def test_export_twice_duplicates_nothing_and_adds_what_is_new(study: Path, store: tuple[str, Path]) -> None:
    uri, root = store
    settings = MlflowSpec(uri=uri, experiment=EXPERIMENT)
    before = _runs(uri, study)
    again = log_study(study, settings)
    assert (again.created, again.updated) == (0, 0) and again.unchanged == len(again.trial_runs)
    # a model file and held-out figures appear (as the end of a study writes them): one run changes
    model = bytes(range(256)) * 4
    (study / "trials" / "0" / "model.pt").write_bytes(model)
    store_ = StudyStore(study)
    test_figures = {0: {"sharpe": 0.25, "return_pct": 1.5}}
    store_.write_test_metrics(test_figures)
    changed = log_study(study, settings)
    assert (changed.created, changed.updated) == (0, 1)
    third = log_study(study, settings)
    assert (third.created, third.updated) == (0, 0)
    after = _runs(uri, study)
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in before)
    _, children = _split(after)
    run = children[0]
    assert run.data.metrics["test/sharpe"] == 0.25 and run.data.metrics["test/return_pct"] == 1.5
    for r in children.values():  # curve histories were not logged a second time
        assert _histories(uri, r) == _expected_curves(study, int(r.data.tags["boengine.trial"]))
    client = MlflowClient(uri)
    listed = [a.path for a in client.list_artifacts(run.info.run_id, "model")]
    assert listed == ["model/model.pt"]
    got = Path(client.download_artifacts(run.info.run_id, "model/model.pt", str(root)))
    assert got.read_bytes() == model
    # the study's own files went to the parent run
    parent, _ = _split(after)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.json", "pareto.csv", "report.md", "test.json"} <= names


def test_cli_option_resume_adds_one_child_and_a_tracking_change_resumes(
    study: Path,
    store: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run --mlflow-uri`` on the study, with one more trial and the spec's tracking section removed:
    the resume is accepted, trial 4 gets a run, nothing is duplicated."""
    from engine.interfaces.cli import app

    uri, _ = store
    before = {r.info.run_id for r in _runs(uri, study)}
    raw = synthetic_spec("mlf", budget={**BUDGET, "trials": 5}).given()
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)
    args = ["run", str(spec_file), "--study-dir", str(study), "--progress", "quiet"]
    result = CliRunner().invoke(app, [*args, "--mlflow-uri", uri, "--mlflow-experiment", EXPERIMENT])
    assert result.exit_code == 0, (result.output, result.exception)
    parent, children = _split(_runs(uri, study))
    assert sorted(children) == [0, 1, 2, 3, 4]
    assert before == {parent.info.run_id} | {r.info.run_id for i, r in children.items() if i < 4}
    assert _histories(uri, children[4]) == _expected_curves(study, 4)
    counts = load_study(study).results.counts()
    assert parent.data.metrics["trials/completed"] == counts["completed"] == 3
    assert parent.data.metrics["trials/budget"] == 5


def test_a_server_that_is_down_is_one_warning_and_costs_seconds(
    study: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = MlflowSpec(uri=f"http://user:secret@127.0.0.1:{port}")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in study.rglob("*"))
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        assert track_study(study, settings, state="finished") is None
    assert time.perf_counter() - start < 30
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "export-mlflow" in message and "secret" not in message and str(port) in message
    assert sorted((p.name, p.stat().st_mtime_ns) for p in study.rglob("*")) == before


def test_export_to_a_server_that_is_down_exits_1(
    study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli(monkeypatch, capsys, "export-mlflow", str(study), "--uri", f"http://127.0.0.1:{port}")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "rerun" in err, err


BAD = {
    "not a URI": ({"mlflow": {"uri": "mlruns"}}, "tracking.mlflow.uri: not an MLflow tracking URI"),
    "unknown key": ({"mlflow": {"uri": "http://h:5000", "run": "x"}}, "tracking.mlflow.run: unknown key"),
    "empty experiment": ({"mlflow": {"uri": "http://h:5000", "experiment": " "}}, "empty experiment name"),
    "wrong type": ({"mlflow": {"uri": 5000}}, "tracking.mlflow.uri: Input should be a valid string"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_validate_refuses_bad_tracking_with_exit_2(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tracking, expected = BAD[name]
    raw: dict[str, Any] = {**synthetic_spec("bad").given(), "tracking": tracking}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    code, _, err = cli(monkeypatch, capsys, "validate", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


OPTIONS = {
    "bad uri": (["--mlflow-uri", "localhost"], "--mlflow-uri: not an MLflow tracking URI"),
    "experiment alone": (["--mlflow-experiment", "e"], "--mlflow-experiment: no tracking URI"),
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_run_refuses_bad_tracking_options_before_writing(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options, expected = OPTIONS[name]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(synthetic_spec("opt").given()))
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(monkeypatch, capsys, "run", str(path), "--study-dir", "s", *options)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "s").exists()


def test_without_the_extra_each_command_exits_2_naming_it(
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an environment without the extra sees
    spec = tmp_path / "spec.json"
    tracked = {**synthetic_spec("ext").given(), "tracking": {"mlflow": {"uri": "http://h:5000"}}}
    spec.write_text(json.dumps(tracked))
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(synthetic_spec("ext").given()))
    monkeypatch.chdir(tmp_path)
    commands = [
        ["validate", str(spec)],
        ["run", str(spec), "--study-dir", "a"],
        ["run", str(plain), "--study-dir", "b", "--mlflow-uri", "http://h:5000"],
        ["export-mlflow", str(study), "--uri", "http://h:5000"],
    ]
    for args in commands:
        code, _, err = cli(monkeypatch, capsys, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "boengine[mlflow]" in lines[0], (args, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_fresh_study_in_the_same_directory_is_another_study(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    """Runs are matched by directory and creation time: --fresh starts a new parent run."""
    uri, _ = store
    directory = tmp_path / "f"
    spec = synthetic_spec("fresh", budget={"trials": 2, "sobol_trials": 2})
    settings = MlflowSpec(uri=uri, experiment=EXPERIMENT)
    run_study(spec, directory, mlflow=settings)
    first = _runs(uri, directory)
    time.sleep(1.1)  # meta.json's creation time has a resolution of one second
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec.given()))
    # in a new process, as `boengine run --fresh` is (Ax keeps the first ax.db open in this one)
    command = [
        sys.executable,
        "-m",
        "engine.interfaces.cli",
        "-q",
        "run",
        str(spec_file),
        "--study-dir",
        str(directory),
    ]
    command += ["--fresh", "--progress", "quiet", "--mlflow-uri", uri, "--mlflow-experiment", EXPERIMENT]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    second = _runs(uri, directory)
    assert len(first) == len(second) == 3  # a parent and two trials each
    assert {r.info.run_id for r in first}.isdisjoint(r.info.run_id for r in second)
    dirs = {r.data.tags["boengine.study_dir"] for r in [*first, *second]}
    assert dirs == {str(directory.resolve())}
