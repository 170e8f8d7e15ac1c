"""The trial ledger: which studies count, N in the study / on these bars / effective, and the clusters."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.analysis.ledger import CLUSTER_CORRELATION, effective_trials, trial_ledger
from engine.meta import StudyMeta
from engine.records import TrialRecord
from engine.store import StudyStore, write_json
from strategies.exceptions import InputError

HOURS = pd.date_range("2024-01-01", periods=3000, freq="1h").as_unit("ns").asi8


def _study(
    directory: Path,
    *,
    start: int,
    n: int = 1000,
    source: str = "builtin:eurusd_1h",
    data_hash: str = "abc",
    trials: dict[int, tuple[dict[str, Any], np.ndarray | None, str]] | None = None,
    warm_from: list[Path] | None = None,
) -> StudyStore:
    """A study directory with out-of-sample bars HOURS[start:start + n] and the given trials
    ({index: (params, returns or None, status or source)})."""
    store = StudyStore(directory)
    spec = {"name": directory.name, "strategy": "lstm", "data": {"source": source}}
    store.create(spec, spec, StudyMeta.new("walk_forward", facts={}, data_hash=data_hash, storage=None))
    store.data_dir.mkdir()
    np.save(store.data_dir / "timestamps.npy", HOURS)
    write_json(store.data_dir / "meta.json", {"splits": {"val": [start, start + n]}, "folds": []})
    for index, (params, returns, status) in (trials or {}).items():
        source_kind = status if status.startswith("warm_start") else "model"
        rec = TrialRecord(
            index=index, status="completed" if source_kind != "model" else status, params=params
        )
        rec.source = source_kind
        (store.trial_dir(index)).mkdir(parents=True)
        write_json(store.trial_dir(index) / "result.json", rec.to_dict())
        if returns is not None:
            buffer = io.BytesIO()
            np.save(buffer, returns.astype(np.float32))
            (store.trial_dir(index) / "returns.npy").write_bytes(buffer.getvalue())
    if warm_from:
        write_json(directory / "warm_start.json", {str(d): {"attached": 1} for d in warm_from})
    return store


def _results(store: StudyStore) -> Any:
    """What trial_ledger reads of StudyResults: the store, the spec's strategy, the records."""
    records = store.trial_records()
    return SimpleNamespace(store=store, spec=SimpleNamespace(strategy="lstm"), records=records)


def test_the_ledger_counts_other_windows_warm_start_studies_and_nothing_else(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    r = lambda n=1000: rng.normal(0.0, 0.01, n)  # noqa: E731
    root = tmp_path / "studies"
    # an earlier window of the same line: 3 configurations, one of which (x=1) is tried again now
    _study(
        root / "line" / "2024-02-10",
        start=400,
        trials={
            0: ({"x": 1}, r(), "completed"),
            1: ({"x": 2}, r(), "completed"),
            2: ({"x": 3}, None, "early_stopped"),
        },
    )
    # a warm-start study outside the root, on the same file (found through warm_start.json)
    warm = _study(tmp_path / "elsewhere" / "old", start=0, trials={0: ({"x": 9}, r(), "completed")})
    # same data but no overlap, other data with overlap, a failed trial: none of them count
    _study(root / "before", start=0, n=300, trials={0: ({"x": 20}, r(300), "completed")})
    _study(
        root / "msft",
        start=500,
        source="builtin:msft_1d",
        data_hash="zzz",
        trials={0: ({"x": 21}, r(), "completed")},
    )
    _study(root / "failed", start=500, trials={0: ({"x": 22}, None, "failed")})
    here = _study(
        root / "line" / "2024-02-17",
        start=500,
        trials={
            0: ({"x": 1}, r(), "completed"),
            1: ({"x": 4}, r(), "completed"),
            2: ({"x": 5}, None, "early_stopped"),
            3: ({"x": 9}, None, "warm_start:old"),  # attached from `old`: counted there, not twice
        },
        warm_from=[warm.dir],
    )
    res = _results(here)
    own = {i: here.read_array(i, "returns") for i in (0, 1)}
    ledger = trial_ledger(res, own)
    counts = ledger.counts()
    assert counts.n_study == 3  # 0, 1 and the early-stopped 2; the attached 3 is not this study's
    # x=1..5 here and in the earlier window, x=9 from the warm-start study: 6 configurations
    assert counts.n_bars == 6
    assert counts.studies == {str((root / "line" / "2024-02-10").resolve()): 3, str(warm.dir.resolve()): 1}
    # independent noise: every series with returns is its own cluster; 5 configurations have returns
    assert counts.n_clusters == 5 and counts.n_with_returns == 5
    assert counts.n_effective == 6  # ceil(5 clusters x 6 configurations / 4 with returns), at most 6
    assert counts.null_variance == 1.0 / 1000
    # the earlier window's returns are aligned by timestamp: our first 900 bars, NaN after its last
    other = next(e for e in ledger.entries if e.study.endswith("2024-02-10") and e.returns is not None)
    assert np.isnan(other.returns[900:]).all() and np.isfinite(other.returns[:900]).all()
    # a new study on the same bars changes the fingerprint (a cached verdict is recomputed)
    _study(root / "another", start=500, trials={0: ({"x": 30}, r(), "completed")})
    again = trial_ledger(res, own)
    assert again.fingerprint != ledger.fingerprint and again.counts().n_bars == 7


def test_links_are_not_followed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    real = _study(
        tmp_path / "outside" / "s", start=0, trials={0: ({"x": 1}, rng.normal(0, 0.01, 1000), "completed")}
    )
    root = tmp_path / "studies"
    here = _study(root / "here", start=0, trials={0: ({"x": 2}, rng.normal(0, 0.01, 1000), "completed")})
    (root / "link").symlink_to(real.dir, target_is_directory=True)
    counts = trial_ledger(_results(here), {0: here.read_array(0, "returns")}).counts()
    assert counts.n_bars == 1 and counts.studies == {}


def test_effective_trials_finds_planted_clusters() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(2000, 3))
    cols = [base[:, g] + 0.3 * rng.normal(size=2000) for g in (0, 0, 0, 1, 1, 2)]  # corr ~0.92 within
    cols += [np.zeros(2000), np.zeros(2000)]  # two configurations that never traded: one try
    c = effective_trials(np.column_stack(cols))
    assert c.n == 4
    assert len(set(c.labels[:3])) == 1 and len(set(c.labels[3:5])) == 1 and c.labels[5] not in c.labels[:5]
    assert c.labels[6] == c.labels[7] and len(c.medoids) == 4
    independent = effective_trials(rng.normal(size=(2000, 12)))
    assert independent.n == 12
    # the cut: two series correlated just above the threshold are one try, just below two
    z = rng.normal(size=(20000, 2))
    for rho, expected in ((CLUSTER_CORRELATION + 0.1, 1), (CLUSTER_CORRELATION - 0.1, 2)):
        pair = np.column_stack([z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]])
        assert effective_trials(pair).n == expected
    # too little overlap to measure a correlation: counted as independent
    short = np.full((2000, 2), np.nan)
    short[:30, 0] = short[:30, 1] = rng.normal(size=30)
    short[30:, 0] = rng.normal(size=1970)
    assert effective_trials(short).n == 2


def test_the_null_variance_floors_v(tmp_path: Path) -> None:
    """Strongly correlated trials spread less than independent noise: V never goes below 1/T."""
    rng = np.random.default_rng(3)
    common = rng.normal(0.0, 0.01, 1000)
    trials = {i: ({"x": i}, common + 0.001 * rng.normal(size=1000), "completed") for i in range(5)}
    here = _study(tmp_path / "s", start=0, trials=trials)
    counts = trial_ledger(_results(here), {i: here.read_array(i, "returns") for i in range(5)}).counts()
    assert counts.n_clusters == 1 and counts.n_effective == 1
    assert counts.sharpe_variance == counts.null_variance == 1.0 / 1000
    json.dumps(counts.to_dict())  # JSON-ready for verdict.json


def test_a_damaged_record_of_another_study_leaves_its_readable_trials_counted(
    tmp_path: Path, caplog: Any
) -> None:
    rng = np.random.default_rng(2)
    root = tmp_path / "studies"
    other = _study(
        root / "other",
        start=0,
        trials={i: ({"x": i}, rng.normal(0, 0.01, 1000), "completed") for i in range(3)},
    )
    (other.trial_dir(1) / "result.json").write_text("{not json")
    here = _study(root / "here", start=0, trials={0: ({"x": 7}, rng.normal(0, 0.01, 1000), "completed")})
    with caplog.at_level("WARNING", logger="engine.analysis.ledger"):
        counts = trial_ledger(_results(here), {0: here.read_array(0, "returns")}).counts()
    assert counts.studies == {str(other.dir.resolve()): 2} and counts.n_bars == 3  # x=0, x=2 and ours
    assert "1 damaged trial record(s) not counted" in caplog.text and "result.json" in caplog.text
    damaged: list[str] = []
    assert [r.index for r in other.trial_records(damaged=damaged)] == [0, 2] and len(damaged) == 1
    with pytest.raises(InputError, match=r"1/result\.json"):
        other.trial_records()  # every other reader is told
