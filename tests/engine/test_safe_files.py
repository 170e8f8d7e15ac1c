"""Every surface keeps the contract: bad input is one line and exit 2, nothing is half-written or
lost, no symbolic link is followed, nothing is written outside the study or the file the user named.

The study is a trading study made from prepared data (no search: seconds), copied per test. Each
refused command is checked for its exit code, its one line on stderr, and the directory tree (and
a link's target, and the live config) byte for byte afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from engine.store import (
    StudyStore,
    check_storage,
    check_target,
    read_json,
    redact_text,
    redact_url,
    write_bytes,
)
from engine.weekly.champion import _append, read_history
from engine.weekly.live_config import live_entry
from strategies.exceptions import InputError
from tests.engine.conftest import synthetic_spec
from tests.engine.made_studies import trading_study
from tests.engine.test_bad_input import _keep_signal_handlers, cli, snapshot  # noqa: F401  (fixture)

Edit = Callable[[Path, Path], list[str]]  # (study, scratch) -> the command's arguments


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("safe") / "trading"
    trading_study(directory, tmp_path_factory.mktemp("bars"))
    return directory


@pytest.fixture
def study(made: Path, tmp_path: Path) -> Path:
    target = tmp_path / "study"
    shutil.copytree(made, target, symlinks=True)
    return target


def _outside(scratch: Path, name: str = "outside.txt") -> Path:
    path = scratch / "elsewhere" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("keep me")
    return path


def _link(at: Path, to: Path) -> None:
    if at.exists() or at.is_symlink():
        at.unlink()
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(to)


def _refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root: Path, *args: str
) -> str:
    """Run the command; assert exit 2, one line on stderr, and every file under ``root`` (links'
    targets included) byte-identical; return the line."""
    before = snapshot(root)
    code, out, err = cli(monkeypatch, capsys, "-q", *args)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    assert snapshot(root) == before
    return lines[0]


# ----------------------------------------------------------------- writers refuse links and non-files


def _png_through_out_link(study: Path, scratch: Path) -> list[str]:
    _link(scratch / "link.png", _outside(scratch))
    return ["pareto", str(study), "--format", "png", "--out", str(scratch / "link.png")]


def _png_through_study_link(study: Path, scratch: Path) -> list[str]:
    _link(study / "pareto.png", _outside(scratch))
    return ["pareto", str(study), "--format", "png"]


def _csv_through_study_link(study: Path, scratch: Path) -> list[str]:
    _link(study / "pareto.csv", _outside(scratch))
    return ["pareto", str(study)]


def _out_a_directory(study: Path, scratch: Path) -> list[str]:
    (scratch / "dir").mkdir()
    return ["pareto", str(study), "--out", str(scratch / "dir")]


def _out_a_pipe(study: Path, scratch: Path) -> list[str]:
    os.mkfifo(scratch / "pipe")  # a non-regular file, as /dev/null is (never replaced by a file)
    return ["pareto", str(study), "--format", "json", "--out", str(scratch / "pipe")]


def _png_named_csv(study: Path, scratch: Path) -> list[str]:
    return ["pareto", str(study), "--format", "png", "--out", str(scratch / "plot.csv")]


def _report_out_a_file(study: Path, scratch: Path) -> list[str]:
    (scratch / "afile").write_text("x")
    return ["report", str(study), "--out", str(scratch / "afile")]


def _report_html_a_link(study: Path, scratch: Path) -> list[str]:
    _link(study / "report.html", _outside(scratch))  # report.md is not written either
    return ["report", str(study)]


def _config_a_directory(study: Path, scratch: Path) -> list[str]:
    (scratch / "config").mkdir()
    return ["best", str(study), "--write-config", str(scratch / "config")]


def _config_a_link(study: Path, scratch: Path) -> list[str]:
    _link(scratch / "config.json", _outside(scratch, "live.json"))
    return ["best", str(study), "--write-config", str(scratch / "config.json")]


def _history_a_link(study: Path, scratch: Path) -> list[str]:
    (scratch / "c.json").write_text("{}")
    _link(scratch / "c.history.jsonl", _outside(scratch))
    return ["best", str(study), "--write-config", str(scratch / "c.json"), "--replace-if-better"]


def _final_model_a_link(study: Path, scratch: Path) -> list[str]:
    weights = _outside(scratch, "weights.pt")
    for trial in (study / "trials").iterdir():
        _link(trial / "final.pt", weights)
    (scratch / "c.json").write_text('{"keep": 1}')
    return ["best", str(study), "--write-config", str(scratch / "c.json")]


def _verdict_a_link(study: Path, scratch: Path) -> list[str]:
    outside = _outside(scratch, "verdict.json")
    outside.write_text(json.dumps({"sentence": "Evidence of an edge (planted)", "edge": True}))
    _link(study / "verdict.json", outside)
    return ["status", str(study)]


def _returns_corrupt(study: Path, scratch: Path) -> list[str]:
    (study / "trials" / "2" / "returns.npy").write_bytes(b"not an array at all")
    return ["status", str(study)]


def _live_config_a_directory(study: Path, scratch: Path) -> list[str]:
    (scratch / "live").mkdir()
    spec = scratch / "syn.json"
    spec.write_text(json.dumps(synthetic_spec("syn").given()))
    return ["run", str(spec), "--study-dir", str(scratch / "new"), "--live-config", str(scratch / "live")]


REFUSED: dict[str, tuple[Edit, str]] = {
    "pareto png through --out link": (_png_through_out_link, "a symbolic link"),
    "pareto png through a link in the study": (_png_through_study_link, "symbolic link inside the study"),
    "pareto csv through a link in the study": (_csv_through_study_link, "symbolic link inside the study"),
    "pareto --out a directory": (_out_a_directory, "a directory, not a file"),
    "pareto --out a named pipe": (_out_a_pipe, "not a regular file"),
    "pareto png --out plot.csv": (_png_named_csv, "the extension says csv but --format is png"),
    "report --out a file": (_report_out_a_file, "not a directory"),
    "report.html a link": (_report_html_a_link, "symbolic link inside the study"),
    "--write-config a directory": (_config_a_directory, "a directory, not a file"),
    "--write-config a link": (_config_a_link, "a symbolic link"),
    "decision history a link": (_history_a_link, "c.history.jsonl: a symbolic link"),
    "final.pt a link": (_final_model_a_link, "final.pt: a symbolic link inside the study"),
    "verdict.json a link": (_verdict_a_link, "verdict.json: a symbolic link inside the study"),
    "returns.npy corrupt": (_returns_corrupt, "returns.npy: not a readable NumPy array"),
    "--live-config a directory": (_live_config_a_directory, "live: a directory"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_surface_refuses_with_one_line_and_changes_nothing(
    name: str,
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    edit, expected = REFUSED[name]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = edit(study, scratch)
    line = _refused(monkeypatch, capsys, tmp_path, *args)
    assert expected in line, line
    assert not list((tmp_path / "scratch" / "elsewhere").glob(".*"))  # no temporary file left there
    if (scratch / "pipe").exists():
        assert stat.S_ISFIFO(os.lstat(scratch / "pipe").st_mode)


def test_a_device_is_never_a_target() -> None:
    with pytest.raises(InputError, match=r"/dev/null: a character device, not a regular file"):
        check_target(Path("/dev/null"))
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_png_without_an_extension_is_written_where_it_says(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        monkeypatch, capsys, "-q", "pareto", str(study), "--format", "png", "--out", str(tmp_path / "plot")
    )
    assert code == 0, err
    assert out.strip() == str(tmp_path / "plot")
    assert (tmp_path / "plot").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot", "study"]  # no plot.png, no temporary


def test_a_written_file_replaces_a_regular_file_atomically(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("old")
    write_bytes(tmp_path / "a.json", b"new")
    assert (tmp_path / "a.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    outside = _outside(tmp_path)
    _link(tmp_path / "b.json", outside)
    with pytest.raises(InputError, match="a symbolic link"):
        write_bytes(tmp_path / "b.json", b"new")
    assert outside.read_text() == "keep me" and (tmp_path / "b.json").is_symlink()


# ----------------------------------------------------------------- a window that is a link to a study


def test_a_window_linking_to_another_study_is_refused(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = tmp_path / "line"
    # the newest window of the line is a link to another study (named by its last bar's day)
    spec = tmp_path / "trading.json"
    spec.write_text((study / "spec.given.json").read_text())
    source = json.loads(spec.read_text())["data"]["source"]
    last = pd.Timestamp(pd.read_csv(source)["timestamp"].iloc[-1]).strftime("%Y-%m-%d")
    _link(line / last, study)
    for args in (["pareto", str(line)], ["report", str(line)], ["status", str(line)]):
        assert "a window of the study line is a symbolic link" in _refused(
            monkeypatch, capsys, tmp_path, *args
        )
    line_arg = ["run", str(spec), "--study-dir", str(line), "--window", "latest", "--progress", "quiet"]
    assert "symbolic link" in _refused(monkeypatch, capsys, tmp_path, *line_arg)


def test_a_window_study_dir_that_is_a_file_is_refused_before_the_data_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import engine.objective

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data were read before the line was checked")

    monkeypatch.setattr(engine.objective, "make_objective", no_data)
    (tmp_path / "afile").write_text("x")
    spec = Path(__file__).resolve().parents[2] / "experiments" / "smoke.json"
    args = ["run", str(spec), "--window", "latest", "--study-dir", str(tmp_path / "afile")]
    assert "--study-dir" in _refused(monkeypatch, capsys, tmp_path, *args)


# ----------------------------------------------------------------- the decision history


def test_history_lines_that_are_not_decisions_are_skipped_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "c.json"
    path = tmp_path / "c.history.jsonl"
    damaged = b'[1, 2]\n{"reason": "no decision"}\n\xff\xfe not UTF-8\n{"decision": "keep", "n": 0}\n'
    path.write_bytes(damaged)
    assert [h["n"] for h in read_history(config)] == [0]
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 3
    _append(path, {"decision": "replace", "n": 1})
    assert path.read_bytes().startswith(damaged)  # never lost
    assert [h["n"] for h in read_history(config)] == [0, 1]
    outside = _outside(tmp_path)
    _link(path, outside)
    with pytest.raises(InputError, match="a symbolic link"):
        _append(path, {"decision": "keep", "n": 2})
    with pytest.raises(InputError, match="a symbolic link"):
        read_history(config)
    assert outside.read_text() == "keep me"


# ----------------------------------------------------------------- reading JSON: one rule


def test_a_byte_order_mark_is_accepted_by_every_json_reader(tmp_path: Path) -> None:
    from engine.weekly.live_config import write_config

    config = tmp_path / "c.json"
    config.write_bytes(b"\xef\xbb\xbf" + json.dumps({"lstm": {"hyperparameters": {"x": 1}}}).encode())
    assert live_entry(config, "lstm") == {"hyperparameters": {"x": 1}}  # run --live-config
    write_config(config, "moe", {"hyperparameters": {"y": 2}})  # best --write-config
    assert set(json.loads(config.read_text())) == {"lstm", "moe", "default_strategy"}
    study_file = tmp_path / "result.json"
    study_file.write_bytes(b"\xef\xbb\xbf{}")
    assert read_json(study_file) == {}


# ----------------------------------------------------------------- secrets and storage


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://:hunter2@db.example/ax", "hunter2"),
        ("postgresql://me:hunter2@db.example/ax", "hunter2"),
        ("mysql+pymysql://db.example/ax?user=me&password=hunter2", "hunter2"),
        ("postgresql://db.example/ax?sslpassword=hunter2&sslmode=require", "hunter2"),
    ],
)
def test_storage_passwords_are_redacted(url: str, secret: str) -> None:
    assert secret not in redact_url(url) and "***" in redact_url(url)
    assert secret not in redact_text(f"error: cannot open {url} now") and "***" in redact_text(url)
    assert redact_url("sqlite:////tmp/x/ax.db") == "sqlite:////tmp/x/ax.db"


def test_a_password_never_reaches_the_study_or_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "syn.json"
    spec.write_text(json.dumps(synthetic_spec("syn", budget={"trials": 2, "sobol_trials": 2}).given()))
    url = f"sqlite:///{tmp_path / 'shared.db'}?password=hunter2"
    common = ["-q", "run", str(spec), "--study-dir", str(tmp_path / "s"), "--progress", "quiet"]
    code, _, err = cli(monkeypatch, capsys, *common, "--storage", url)
    assert code == 0, err
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["storage"].endswith("?password=***")
    for path in (tmp_path / "s").rglob("*"):
        assert not path.is_file() or path.name == "ax.db" or b"hunter2" not in path.read_bytes(), path
    line = _refused(monkeypatch, capsys, tmp_path / "s", *common[1:])  # resumed without --storage
    assert "hunter2" not in line and "password=***" in line


def test_a_storage_url_inside_another_study_is_refused(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "syn.json"
    spec.write_text(json.dumps(synthetic_spec("syn").given()))
    url = f"sqlite:///{study / 'ax.db'}"
    args = ["run", str(spec), "--study-dir", str(tmp_path / "new"), "--storage", url]
    assert f"inside the study {study.resolve()}" in _refused(monkeypatch, capsys, tmp_path, *args)
    assert not (tmp_path / "new").exists()
    check_storage(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path / "new")  # outside every study: fine
    check_storage(f"sqlite:///{tmp_path / 'new' / 'ax.db'}", tmp_path / "new")  # its own directory


# ----------------------------------------------------------------- MLflow


def test_mlflow_refusals(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    line = _refused(
        monkeypatch, capsys, tmp_path, "export-mlflow", str(study), "--uri", f"file://{tmp_path}/mlruns"
    )
    assert "--uri file://" in line and f"sqlite:///{tmp_path}/mlruns.db" in line
    (study / "report.md").symlink_to(_outside(tmp_path))
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    line = _refused(monkeypatch, capsys, tmp_path, "export-mlflow", str(study), "--uri", db)
    assert "report.md: a symbolic link inside the study" in line
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow was touched


def test_a_linked_study_file_is_refused_by_the_store(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "s")
    (store.dir / "trials" / "0").mkdir(parents=True)
    _link(store.final_model_path(0), _outside(tmp_path, "w.pt"))
    with pytest.raises(InputError, match=r"final\.pt: a symbolic link"):
        store.model_path(0)
