"""meta.json: versions and data hash recorded, older formats read, newer ones refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.analysis.results import StudyResults
from engine.meta import META_VERSION, StudyMeta, migrate_spec
from engine.store import StudyStore
from engine.study.run import run_study
from strategies.exceptions import InputError
from tests.engine.conftest import synthetic_spec


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("meta") / "m"
    run_study(synthetic_spec("m", budget={"trials": 2, "sobol_trials": 2}), directory)
    return directory


def test_meta_records_versions_and_objective(study: Path) -> None:
    raw = json.loads((study / "meta.json").read_text())
    assert raw["version"] == META_VERSION and raw["objective"] == "synthetic"
    assert set(raw["libraries"]) >= {"python", "ax", "botorch", "torch"}
    assert raw["boengine"] != "not installed" and raw["storage"] is None
    # the storage URL is derived from where the study is, not stored
    assert "storage_url" not in raw and StudyStore(study).storage_url.endswith(f"{study.name}/ax.db")


def test_a_newer_format_is_refused(study: Path, tmp_path: Path) -> None:
    meta = json.loads((study / "meta.json").read_text())
    meta["version"] = META_VERSION + 1
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="upgrade boengine"):
        StudyMeta.from_dict(meta, source=str(path), study_dir=tmp_path)


def test_differences_name_each_changed_version(study: Path) -> None:
    meta = StudyStore(study).read_meta()
    other = StudyMeta(**{**meta.to_dict(), "libraries": {**meta.libraries, "torch": "9.9"}})
    assert meta.differences(other) == [f"torch {meta.libraries['torch']} -> 9.9"]


def test_format_1_is_read_and_its_spec_means_holdout(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "created": "2026-11-29T10:00:00+0000",
        "storage_url": f"sqlite:///{tmp_path / 'elsewhere' / 'old' / 'ax.db'}",
        "input_size": 10,
        "feature_set": "ohlcv",
    }
    meta = StudyMeta.from_dict(old, source="meta.json", study_dir=tmp_path / "old")
    assert meta.version == 1 and meta.facts["input_size"] == 10
    assert meta.storage is None  # its own ax.db: a moved study uses the one beside it
    assert meta.storage_url(tmp_path / "old") == f"sqlite:///{(tmp_path / 'old' / 'ax.db').resolve()}"
    spec = migrate_spec({"name": "x", "strategy": "lstm", "data": {"source": "builtin:msft_1d"}}, 1)
    assert spec["data"]["validation"] == {"scheme": "holdout"}
    assert migrate_spec({"name": "x", "data": {"validation": {"scheme": "walk_forward"}}}, 1)["data"][
        "validation"
    ] == {"scheme": "walk_forward"}


def test_older_studies_keep_fold_stopping_off_unless_they_asked_for_it() -> None:
    """Format 2 stopped across folds only when asked; format 3's default is "auto" (on where it
    applies), so a resumed format-2 study gets ``false`` written in and keeps its rule."""
    from engine.spec import parse_spec

    raw = {"name": "x", "strategy": "lstm", "early_stopping": {"percentile": 30}}
    migrated = migrate_spec(raw, 2)
    assert migrated["early_stopping"] == {"percentile": 30, "pareto_folds": {"enabled": False}}
    assert not parse_spec(migrated).pareto_folds_on and parse_spec(raw).pareto_folds_on
    asked = {"name": "x", "early_stopping": {"pareto_folds": {"enabled": True, "z": 2.0}}}
    assert migrate_spec(asked, 2)["early_stopping"]["pareto_folds"] == {"enabled": True, "z": 2.0}
    assert migrate_spec(raw, META_VERSION) == raw  # this format's specs mean what they say


def test_older_studies_keep_eight_quasi_random_trials() -> None:
    """Formats 1-3 started every study with 8 quasi-random trials; format 4's default is 4 for
    trials without standard errors, so a resumed older study gets 8 written in."""
    from engine.spec import parse_spec

    raw = {"name": "x", "strategy": "synthetic:dtlz2", "budget": {"trials": 12}}
    migrated = migrate_spec(raw, 3)
    assert migrated["budget"] == {"trials": 12, "sobol_trials": 8}
    assert parse_spec(migrated).budget.sobol_count(noisy=False) == 8
    assert parse_spec(raw).budget.sobol_count(noisy=False) == 4
    kept = {"name": "x", "budget": {"sobol_trials": 5}}
    assert migrate_spec(kept, 2)["budget"] == {"sobol_trials": 5}
    assert migrate_spec(raw, META_VERSION) == raw


def test_resume_needs_the_recorded_storage(tmp_path: Path) -> None:
    spec = synthetic_spec("st", budget={"trials": 2, "sobol_trials": 2})
    url = f"sqlite:///{tmp_path / 'other.db'}"
    run_study(spec, tmp_path / "s", storage_url=url)
    with pytest.raises(InputError, match=r"--storage sqlite:///.*other\.db"):
        run_study(spec, tmp_path / "s")
    res = StudyResults.load(tmp_path / "s")  # reading needs no storage
    assert len(res.records) == 2
    again = run_study(spec, tmp_path / "s", storage_url=url)  # given again: resumes (nothing left to do)
    assert len(again.records) == 2
