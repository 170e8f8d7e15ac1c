"""Study store: atomic files, spec differences, the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.store import StudyStore, spec_differences
from strategies.exceptions import InputError, StudyError


def test_spec_differences_name_the_fields() -> None:
    old = {"budget": {"trials": 24, "max_epochs": 8}, "seed": 1}
    new = {"budget": {"trials": 30, "max_epochs": 8}, "seed": 1, "extra": 1}
    assert spec_differences(old, new) == ["budget.trials", "extra"]
    assert spec_differences(old, old) == []


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "s")
    with (
        store.lock(),
        pytest.raises(StudyError, match="another 'boengine run'"),
        StudyStore(tmp_path / "s").lock(),
    ):
        pass
    with store.lock():  # released again
        pass


def test_results_and_curves_round_trip(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    store.write_result(3, {"index": 3, "status": "completed"})
    store.append_curve(3, {"epoch": 1.0, "val_sharpe": 0.5})
    store.append_curve(3, {"epoch": 2.0, "val_sharpe": 0.7})
    assert store.read_result(3) == {"index": 3, "status": "completed"}
    assert [r["epoch"] for r in store.read_curve(3)] == [1.0, 2.0]
    assert not list((tmp_path / "trials" / "3").glob(".result.json.*"))  # no temp files left


def test_truncated_curve_line_is_skipped(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    store.append_curve(0, {"epoch": 1.0})
    with (store.trial_dir(0) / "curve.jsonl").open("a") as fh:
        fh.write('{"epoch": 2')  # killed mid-write
    assert store.read_curve(0) == [{"epoch": 1.0}]


def test_links_inside_the_study_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    store = StudyStore(tmp_path / "s")
    (store.dir / "trials" / "0").mkdir(parents=True)
    (store.dir / "runs.jsonl").symlink_to(outside)
    with pytest.raises(InputError, match="symbolic link inside the study directory"):
        store.append_run({"start": 0})
    (store.dir / "study.log").symlink_to(outside)
    with pytest.raises(InputError, match="symbolic link"):
        store.log_stream()
    (store.dir / "trials" / "1").symlink_to(tmp_path)
    with pytest.raises(InputError, match="symbolic link"):
        store.write_result(1, {"index": 1})
    assert outside.read_text() == "keep" and not (tmp_path / "result.json").exists()
    store.write_result(0, {"index": 0})  # a plain directory is fine
    assert store.read_result(0) == {"index": 0}


def test_written_files_get_the_usual_mode_and_keep_an_existing_one(tmp_path: Path) -> None:
    import os

    from engine.store import write_bytes

    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "new.json", b"{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
        (tmp_path / "kept.json").write_text("{}")
        (tmp_path / "kept.json").chmod(0o640)
        write_bytes(tmp_path / "kept.json", b"{ }")
        assert (tmp_path / "kept.json").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
