"""Bad command lines and bad study directories: exit 2, one line, nothing changed.

The other half of the bad-input corpus (:mod:`tests.engine.test_bad_input`
has the specs and data files): usage errors of every command, and study
directories that are not studies, are damaged, or hold links.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.study.run import run_study
from tests.engine.conftest import synthetic_spec
from tests.engine.test_bad_input import _keep_signal_handlers, cli, snapshot  # noqa: F401  (fixture)

USAGE = {
    "unknown command": (["nosuch"], "No such command 'nosuch'"),
    "unknown option": (["status", "x", "--nosuch"], "No such option"),
    "run without a spec": (["run"], "Missing argument"),
    "status without a directory": (["status"], "Missing argument"),
    "best without a directory": (["best"], "Missing argument"),
    "pareto without a directory": (["pareto"], "Missing argument"),
    "report without a directory": (["report"], "Missing argument"),
    "validate without a spec": (["validate"], "Missing argument"),
    "priors without data": (["priors"], "Missing option '--data'"),
    "bad pick": (["best", "d", "--pick", "foo"], "Invalid value for '--pick'"),
    "bad format": (["pareto", "d", "--format", "xls"], "Invalid value for '--format'"),
    "bad progress": (["run", "s.json", "--progress", "loud"], "Invalid value for '--progress'"),
    "priors n zero": (["priors", "--data", "builtin:msft_1d", "--n", "0"], "Invalid value for '--n'"),
    "priors n too large": (["priors", "--data", "builtin:msft_1d", "--n", "99"], "Invalid value for '--n'"),
    "priors seed not a number": (
        ["priors", "--data", "builtin:msft_1d", "--seed", "x"],
        "Invalid value for '--seed'",
    ),
    "extra argument": (["status", "a", "b"], "unexpected extra argument"),
    "option without value": (["run", "s.json", "--study-dir"], "requires an argument"),
}


@pytest.mark.parametrize("name", list(USAGE))
def test_usage_errors_exit_2_with_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args, expected = USAGE[name]
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0] and "--help" in lines[0] and "Traceback" not in out + err
    assert not list(tmp_path.iterdir())  # nothing written


def test_bare_command_prints_help_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(monkeypatch, capsys)
    assert code == 2 and "Usage: boengine" in out + err


def test_version(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    code, out, _ = cli(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"boengine {version('boengine')}"


def test_help_shows_defaults_and_no_type_placeholders(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(monkeypatch, capsys, "run", "--help")
    assert code == 0
    assert "[default: studies/<name>]" in out and "<bool>" not in out


# --- study directories -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("good") / "study"
    run_study(
        synthetic_spec("good", budget={"trials": 3, "sobol_trials": 3}, executor={"workers": 1}), directory
    )
    return directory


def _copy(study: Path, tmp_path: Path) -> Path:
    target = tmp_path / "study"
    shutil.copytree(study, target, symlinks=True)
    return target


def _corrupt(name: str, content: bytes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / name).write_bytes(content)

    return edit


def _link(name: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        outside = d.parent / "outside.json"
        outside.write_text((d / name).read_text())
        (d / name).unlink()
        (d / name).symlink_to(outside)

    return edit


def _remove(name: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / name).unlink()

    return edit


STUDY_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "meta.json not JSON": (_corrupt("meta.json", b"{not json"), "meta.json: corrupt JSON"),
    "meta.json a list": (_corrupt("meta.json", b"[1, 2]"), "meta.json: expected a JSON object"),
    "meta.json of a newer format": (
        _corrupt("meta.json", json.dumps({"version": 99, "boengine": "9.0"}).encode()),
        "upgrade boengine",
    ),
    "meta.json without a version": (_corrupt("meta.json", b"{}"), "no valid format version"),
    "spec.given.json not JSON": (_corrupt("spec.given.json", b"{"), "spec.given.json: corrupt JSON"),
    "spec.given.json invalid spec": (
        _corrupt("spec.given.json", json.dumps({"name": "x"}).encode()),
        "spec.given.json: strategy",
    ),
    "result.json not JSON": (_corrupt("trials/0/result.json", b"\x00\x01"), "result.json: corrupt JSON"),
    "result.json wrong shape": (
        _corrupt("trials/1/result.json", json.dumps({"index": "one", "status": 3}).encode()),
        "result.json: not a trial record",
    ),
    "result.json wrong status": (
        _corrupt(
            "trials/1/result.json",
            json.dumps({"index": 1, "status": "finished", "params": {}}).encode(),
        ),
        "result.json: not a trial record",
    ),
    "result.json a link": (_link("trials/0/result.json"), "symbolic link inside the study directory"),
    "meta.json a link": (_link("meta.json"), "symbolic link inside the study directory"),
    "test.json not JSON": (_corrupt("test.json", b"nope"), "test.json: corrupt JSON"),
}


@pytest.mark.parametrize("command", ["status", "report", "best", "pareto"])
@pytest.mark.parametrize("name", list(STUDY_CASES))
def test_damaged_study_is_refused_by_name(
    name: str,
    command: str,
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    edit, expected = STUDY_CASES[name]
    target = _copy(study, tmp_path)
    edit(target)
    before = snapshot(tmp_path)
    code, out, err = cli(monkeypatch, capsys, "-q", command, str(target))
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert "Traceback" not in out + err
    assert snapshot(tmp_path) == before


def test_not_a_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "afile").write_text("x")
    for target in ("plain", "afile", "missing"):
        code, _, err = cli(monkeypatch, capsys, "status", str(tmp_path / target))
        assert code == 2 and "not a boengine study" in err and len(err.strip().splitlines()) == 1


def test_resume_of_a_damaged_ax_db_is_refused_by_name(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _copy(study, tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(json.loads((target / "spec.given.json").read_text())))
    (target / "ax.db").write_bytes(b"this is not a database" * 100)
    code, _, err = cli(monkeypatch, capsys, "-q", "run", str(spec), "--study-dir", str(target))
    assert code == 2, err
    assert "ax.db" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_result_of_a_completed_trial_is_refused(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _copy(study, tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(json.loads((target / "spec.given.json").read_text())))
    os.unlink(target / "trials" / "1" / "result.json")
    code, _, err = cli(monkeypatch, capsys, "-q", "run", str(spec), "--study-dir", str(target))
    assert code == 2, err
    assert "trials/1/result.json: missing" in err and len(err.strip().splitlines()) == 1


def test_storage_without_its_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sqlalchemy")
    try:
        import psycopg  # noqa: F401

        pytest.skip("psycopg is installed here")
    except ImportError:
        pass
    spec = tmp_path / "spec.json"
    raw = synthetic_spec("pg").given()
    spec.write_text(json.dumps(raw))
    code, _, err = cli(
        monkeypatch, capsys, "-q", "run", str(spec), "--study-dir", str(tmp_path / "s"),
        "--storage", "postgresql+psycopg://user:secret@localhost/db",
    )  # fmt: skip
    assert code == 2, err
    assert "not installed" in err and "psycopg" in err and "secret" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_a_corrupt_warm_start_study_is_bad_input(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _copy(study, tmp_path)
    (old / "trials" / "0" / "result.json").write_text("{")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(synthetic_spec("new").given()))
    code, _, err = cli(
        monkeypatch, capsys, "-q", "run", str(spec), "--study-dir", str(tmp_path / "new"), "--warm-start", str(old)
    )  # fmt: skip
    assert code == 2, err
    assert "result.json: corrupt JSON" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_a_refused_run_leaves_a_users_directory_as_it_was(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused after the study was begun (a warm start that cannot be read): only what it added goes."""
    old = _copy(study, tmp_path)
    (old / "trials" / "2" / "result.json").write_text("[]")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(synthetic_spec("new").given()))
    nested = tmp_path / "made" / "for" / "it"
    for target in (mine, nested):
        code, _, err = cli(
            monkeypatch, capsys, "-q", "run", str(spec), "--study-dir", str(target), "--warm-start", str(old)
        )  # fmt: skip
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "made").exists()  # parents made for the study go too


def test_an_oversized_executor_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(synthetic_spec("big", executor={"workers": 201}).given()))
    for command in (
        ["validate", str(spec)],
        ["run", str(spec), "--study-dir", str(tmp_path / "studies" / "big")],
    ):
        code, _, err = cli(monkeypatch, capsys, "-q", *command)
        assert code == 2 and "exceeds the" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize(
    ("name", "more", "expected"),
    [
        ("moe.json", {}, "early stopping per epoch and across folds\n"),  # walk-forward: "auto" is on
        ("moe.json", {"data": {"validation": {"scheme": "holdout"}}}, "early stopping per epoch\n"),
        (
            "moe.json",
            {"early_stopping": {"enabled": False, "pareto_folds": {"enabled": False}}},
            "early stopping off\n",
        ),
    ],
)
def test_validate_says_which_early_stopping_runs(
    name: str,
    more: dict[str, object],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = json.loads((Path(__file__).resolve().parents[3] / "experiments" / name).read_text())
    for key, value in more.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(raw))
    code, out, err = cli(monkeypatch, capsys, "validate", str(spec))
    assert code == 0, err
    first = out.splitlines()[0] + "\n"
    assert first.endswith(expected), first  # the line ends with what runs
