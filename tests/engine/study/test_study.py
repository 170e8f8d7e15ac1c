"""End-to-end studies on synthetic problems: the loop, failures, warm start, lock, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ax.core.base_trial import TrialStatus

from engine.analysis.results import StudyResults
from engine.reporting.best import pick_trial, strategy_entry
from engine.reporting.export import write_pareto
from engine.store import StudyStore
from engine.study.run import StudyOutcome, run_study
from engine.weekly.live_config import write_config
from strategies.exceptions import SpecError, StudyError
from tests.engine import faulty
from tests.engine.conftest import DTLZ2_OBJECTIVES, output_under_hash_seeds, synthetic_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudyOutcome]:
    """A small study that reaches the GP: the centre and 3 Sobol trials, then 6 model-based in batches of 2."""
    directory = tmp_path_factory.mktemp("studies") / "first"
    spec = synthetic_spec("first", budget={"trials": 10, "sobol_trials": 4})
    return directory, run_study(spec, directory)


def test_study_runs_to_budget_with_model_based_trials(finished: tuple[Path, StudyOutcome]) -> None:
    directory, outcome = finished
    assert not outcome.interrupted
    assert [r.status for r in outcome.records] == ["completed"] * 10
    assert [r.source for r in outcome.records][:4] == ["center", "sobol", "sobol", "sobol"]
    assert {r.source for r in outcome.records[4:]} == {"model"}
    assert outcome.front and outcome.hypervolume > 0
    store = StudyStore(directory)
    # every epoch of every trial reached its curve, including the last ones before completion
    assert [[int(r["epoch"]) for r in store.read_curve(i)] for i in range(10)] == [[1, 2, 3]] * 10
    batches = store.read_batches()
    assert sum(len(b["trials"]) for b in batches) == 10
    assert all(b["seconds"] >= 0 for b in batches)


def test_exports_and_report(finished: tuple[Path, StudyOutcome], tmp_path: Path) -> None:
    directory, outcome = finished
    assert (directory / "pareto.csv").is_file() and (directory / "report.html").is_file()
    report = (directory / "report.md").read_text()
    assert "Pareto set" in report and "Hypervolume over trials" in report
    for fmt in ("json", "html", "png"):
        path = write_pareto(directory, fmt, tmp_path / f"front.{fmt}")
        assert path.stat().st_size > 0
    payload = json.loads((tmp_path / "front.json").read_text())
    assert [p["trial"] for p in payload["front"]] == [r.index for r in outcome.front]
    html = (tmp_path / "front.html").read_text()
    assert 'src="http' not in html and len(html) > 1_000_000  # plotly.js inline: works offline


def test_best_writes_and_merges_config(finished: tuple[Path, StudyOutcome], tmp_path: Path) -> None:
    directory, _ = finished
    res = StudyResults.load(directory)
    config = tmp_path / "strategy_config.json"
    config.write_text(
        json.dumps(
            {
                "default_strategy": "lstm",
                "lstm": {"seq_length": 30},
                "synthetic:dtlz2": {"description": "kept"},
            }
        )
    )
    rec = pick_trial(res, "knee")
    write_config(config, res.spec.strategy, strategy_entry(res, rec, "knee"))
    written = json.loads(config.read_text())
    assert written["lstm"] == {"seq_length": 30} and written["default_strategy"] == "lstm"
    entry = written["synthetic:dtlz2"]
    assert entry["description"] == "kept" and entry["boengine"]["trial"] == rec.index
    assert entry["hyperparameters"] == rec.params
    best_sharpe = pick_trial(res, "sharpe")
    assert best_sharpe.metrics["sharpe"] == max(r.metrics["sharpe"] for r in res.front)


def test_status_json_lists_trials_and_batches(
    finished: tuple[Path, StudyOutcome], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.interfaces.cli import main

    directory, _ = finished
    monkeypatch.setattr(sys, "argv", ["boengine", "status", str(directory), "--json"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 0
    payload = json.loads(capsys.readouterr().out)
    assert [t["index"] for t in payload["trials"]] == list(range(10))
    assert {"index", "status", "reason", "parameters", "metrics", "seconds"} <= set(payload["trials"][0])
    assert all({"trials", "seconds"} <= set(b) for b in payload["batches"])


def test_synchronous_study_is_reproducible(tmp_path: Path) -> None:
    spec = synthetic_spec("sync", budget={"trials": 8, "sobol_trials": 4}, executor={"synchronous": True})
    runs = [run_study(spec, tmp_path / str(i)) for i in range(2)]
    first, second = ([(r.params, r.metrics) for r in out.records] for out in runs)
    assert first == second
    assert [r.source for r in runs[0].records] == ["center"] + ["sobol"] * 3 + ["model"] * 4


_MOE_PROPOSALS = """
import json, sys
import numpy as np
from engine.optimizer import seeded_rounding
from engine.spec import parse_spec
from engine.study.experiment import configure_client
spec = parse_spec(json.load(open("experiments/moe.json")))
client = configure_client(spec, "sqlite:///" + sys.argv[1])
rng, batches = np.random.default_rng(0), []
for _ in range(5):  # the centre and 7 Sobol trials, then the model's first batch
    with seeded_rounding(f"{spec.seed}:{len(client._experiment.trials)}"):  # as the study loop asks
        batch = client.get_next_trials(max_trials=2)
    batches.append(batch)
    for index in batch:
        client.complete_trial(index, {"return_pct": (float(rng.normal()), 0.5), "sharpe": (float(rng.normal()), 0.5),
                                      "max_drawdown_pct": (float(abs(rng.normal())) * 5, 0.5), "num_trades": 50.0})
print(json.dumps(batches, sort_keys=True))
"""


def test_the_moe_spec_proposes_the_same_trials_in_any_process(tmp_path: Path) -> None:
    """moe's integers meet in a constraint (top_k <= num_experts), which Ax rounds at random; two
    processes with different string hashing propose the same Sobol and model trials."""
    outputs = output_under_hash_seeds(_MOE_PROPOSALS, str(tmp_path / "ax{hash_seed}.db"))
    assert outputs[0] == outputs[1]
    trials = [trial for batch in outputs[0] for trial in batch.values()]
    assert len(trials) == 10 and len({json.dumps(t, sort_keys=True) for t in trials}) == 10


def test_changed_spec_is_refused(finished: tuple[Path, StudyOutcome]) -> None:
    """A change of what a trial measures (here its epochs) is refused; a longer budget is not (below)."""
    directory, _ = finished
    spec = synthetic_spec("first", budget={"trials": 10, "sobol_trials": 4, "max_epochs": 5})
    with pytest.raises(SpecError, match=r"spec changed since this study started \(budget.max_epochs\)"):
        run_study(spec, directory)


def test_a_finished_study_resumes_with_a_larger_budget(tmp_path: Path) -> None:
    spec = synthetic_spec("grow", budget={"trials": 4, "sobol_trials": 4})
    first = run_study(spec, tmp_path / "s")
    assert len(first.records) == 4
    more = synthetic_spec("grow", budget={"trials": 6, "sobol_trials": 4, "trial_timeout_s": 90})
    second = run_study(more, tmp_path / "s")
    assert [r.index for r in second.records] == list(range(6))
    assert [r.metrics for r in second.records[:4]] == [r.metrics for r in first.records]  # kept, not rerun
    assert json.loads((tmp_path / "s" / "spec.given.json").read_text())["budget"]["trials"] == 6


def test_a_study_of_an_older_format_resumes_under_its_own_defaults(tmp_path: Path) -> None:
    """A format-2 study (fold stopping off unless asked) resumed with the same spec file: the spec
    is read as format 2, so it resumes instead of differing in ``pareto_folds.enabled``."""
    spec = synthetic_spec("old", budget={"trials": 2, "sobol_trials": 2})
    run_study(spec, tmp_path / "s")
    meta_path = tmp_path / "s" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "version": 2}))
    more = synthetic_spec("old", budget={"trials": 3, "sobol_trials": 2})
    assert more.early_stopping.pareto_folds.enabled == "auto"
    second = run_study(more, tmp_path / "s")
    assert [r.index for r in second.records] == [0, 1, 2]
    given = json.loads((tmp_path / "s" / "spec.given.json").read_text())
    assert given["early_stopping"]["pareto_folds"] == {"enabled": False}
    assert given["budget"]["trials"] == 3


def test_warm_start_attaches_previous_trials(finished: tuple[Path, StudyOutcome], tmp_path: Path) -> None:
    directory, first = finished
    spec = synthetic_spec("second", budget={"trials": 2, "sobol_trials": 2})
    url = (
        f"sqlite:///{tmp_path / 'elsewhere.db'}"  # any SQLAlchemy URL; the first study stays in its own file
    )
    outcome = run_study(spec, tmp_path / "second", warm_start=[directory], storage_url=url)
    assert (tmp_path / "elsewhere.db").is_file() and not (tmp_path / "second" / "ax.db").exists()
    attached = [r for r in outcome.records if r.source == "warm_start:first"]
    assert len(attached) == 10
    assert {json.dumps(r.params, sort_keys=True) for r in attached} == {
        json.dumps(r.params, sort_keys=True) for r in first.records
    }
    new = [r for r in outcome.records if not r.source.startswith("warm_start")]
    # attached trials don't use the budget, but they do fill the Sobol phase: model-based at once
    assert [r.source for r in new] == ["model", "model"]


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    spec = synthetic_spec("failing", budget={"trials": 8, "sobol_trials": 8, "max_consecutive_failures": 8})
    outcome = run_study(spec, tmp_path / "s", trial_fn=faulty.raise_when_x0_high)
    failed = [r for r in outcome.records if r.status == "failed"]
    completed = [r for r in outcome.records if r.status == "completed"]
    assert len(outcome.records) == 8 and failed and completed
    assert all(r.params["x0"] > 0.5 and "unknown synthetic problem" in (r.reason or "") for r in failed)
    assert all(r.params["x0"] <= 0.5 for r in completed)


def test_consecutive_failures_stop_the_study(tmp_path: Path) -> None:
    spec = synthetic_spec(
        "nan", budget={"trials": 8, "sobol_trials": 8, "max_consecutive_failures": 3}, executor={"workers": 1}
    )
    with pytest.raises(
        StudyError, match=r"3 trials failed in a row; last \(trial 2\): non-finite metrics: sharpe"
    ):
        run_study(spec, tmp_path / "s", trial_fn=faulty.nan_always)
    res = StudyResults.load(tmp_path / "s")
    assert [r.status for r in res.records] == ["failed"] * 3


def test_lock_refuses_a_concurrent_run(tmp_path: Path) -> None:
    spec = synthetic_spec("locked")
    with StudyStore(tmp_path / "s").lock(), pytest.raises(StudyError, match="another 'boengine run'"):
        run_study(spec, tmp_path / "s")


def test_early_stopping_stops_bad_curves(tmp_path: Path) -> None:
    spec = synthetic_spec(
        "es",
        budget={"trials": 10, "sobol_trials": 10, "max_epochs": 6},
        early_stopping={
            "enabled": True,
            "metric": "val_return_pct",
            "percentile": 50,
            "min_epochs": 2,
            "min_curves": 3,
        },
        synthetic={"epoch_seconds": 0.4},
    )
    outcome = run_study(spec, tmp_path / "s")
    stopped = [r for r in outcome.records if r.status == "early_stopped"]
    assert stopped and all(r.epochs < 6 for r in stopped)
    res = StudyResults.load(tmp_path / "s")
    assert res.epochs_saved() == sum(6 - r.epochs for r in stopped)
    # Ax knows them as early-stopped, with no objective values attached
    from engine.study.experiment import load_client

    client = load_client(spec, StudyStore(tmp_path / "s").storage_url)
    trials = client._experiment.trials
    assert {i for i, t in trials.items() if t.status == TrialStatus.EARLY_STOPPED} == {
        r.index for r in stopped
    }
    data = client._experiment.lookup_data().df
    assert set(data[data.trial_index.isin([r.index for r in stopped])].metric_name) == {"val_return_pct"}


def test_curve_points_stay_in_memory_until_the_trial_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learning-curve point goes into the Ax experiment without a save to the SQL store (a save
    per epoch kept the driver busy); the trial's end saves the curve with the objective values."""
    from engine.study.experiment import configure_client, load_client
    from engine.study.tell import TrialBook
    from engine.study.trial import TrialOutcome

    spec = synthetic_spec("curves")
    url = f"sqlite:///{tmp_path / 'ax.db'}"
    client = configure_client(spec, url)
    book = TrialBook(spec, StudyStore(tmp_path / "s"), client)
    (index, params), *_ = client.get_next_trials(max_trials=1).items()
    book.started(index, params, "sobol")
    saves: list[int] = []
    real_save = client._save_or_update_trials_in_db_if_possible

    def counted_save(experiment: Any, trials: Any) -> bool:
        saves.append(len(trials))
        return real_save(experiment=experiment, trials=trials)

    monkeypatch.setattr(client, "_save_or_update_trials_in_db_if_possible", counted_save)
    for epoch, value in enumerate([0.1, 0.3, 0.2], start=1):
        assert book.curve_point(index, "val_sharpe", value, epoch)
    assert saves == []  # nothing written per epoch
    curve = client._experiment.lookup_data(trial_indices=[index]).full_df  # .df: the latest step
    assert list(curve["step"]) == [1, 2, 3] and list(curve["mean"]) == [0.1, 0.3, 0.2]  # Ax sees it
    book.tell(
        TrialOutcome(index, "completed", metrics={"return_pct": 0.5, "sharpe": 0.4, "max_drawdown_pct": 0.3})
    )
    assert saves  # saved at the end
    stored = load_client(spec, url)._experiment.lookup_data(trial_indices=[index]).full_df
    assert set(stored["metric_name"]) == {"val_sharpe", "return_pct", "sharpe", "max_drawdown_pct"}
    assert list(stored[stored.metric_name == "val_sharpe"]["mean"]) == pytest.approx([0.1, 0.3, 0.2])


# -- the process is killed: resume --------------------------------------------------------


def _spec_file(tmp_path: Path, name: str) -> Path:
    raw = {
        "name": name,
        "strategy": "synthetic:dtlz2",
        "objectives": DTLZ2_OBJECTIVES,
        "budget": {"trials": 10, "sobol_trials": 10, "max_epochs": 4, "trial_timeout_s": 120},
        "early_stopping": {"enabled": False},
        "synthetic": {"epoch_seconds": 0.5},
        "executor": {"workers": 2},
        "seed": 11,
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(raw))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.interfaces.cli", "--quiet", *args]


def _completed(directory: Path) -> dict[int, dict[str, Any]]:
    out = {}
    for path in (directory / "trials").glob("*/result.json"):
        rec = json.loads(path.read_text())
        if rec["status"] == "completed":
            out[rec["index"]] = rec
    return out


def _wait_for(directory: Path, n: int, proc: subprocess.Popen[bytes], limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while len(_completed(directory)) < n:
        assert proc.poll() is None, "the study ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _pool_processes(parent: int) -> list[str]:
    """The driver's multiprocessing children (workers, the report channel's manager); not, say, a
    compiler that BoTorch's one-time kernel build runs, which finishes on its own."""
    pids = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    out = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing" in cmdline:
            out.append(pid)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("zombie") < 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_resume_after_the_process_is_killed(tmp_path: Path, sig: signal.Signals) -> None:
    spec = _spec_file(tmp_path, "killed")
    directory = tmp_path / "study"
    proc = subprocess.Popen(
        _cli("run", str(spec), "--study-dir", str(directory), "--progress", "quiet"), cwd=ROOT
    )
    _wait_for(directory, 3, proc)
    before = _completed(directory)
    children = _pool_processes(proc.pid)
    assert len(children) >= 2  # the pool's workers (and the channel's manager)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code == (-9 if sig == signal.SIGKILL else 130)
    # the workers die with their driver (a parent-death signal): wait for that, with a generous limit
    deadline = time.monotonic() + 30
    while [pid for pid in children if _alive(int(pid))] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if _alive(int(pid))]
    again = subprocess.run(
        _cli("run", str(spec), "--study-dir", str(directory), "--progress", "quiet"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    res = StudyResults.load(directory)
    runs = res.store.read_runs()
    assert len(runs) == 2 and runs[0]["interrupted"] and not runs[1]["interrupted"]
    assert runs[0].get("crashed", False) == (sig == signal.SIGKILL)  # a killed run is recorded too
    after = {r.index: r for r in res.records}
    for index, rec in before.items():  # nothing completed was lost or changed
        assert after[index].status == "completed" and after[index].metrics == rec["metrics"]
    counted = [r for r in res.records if r.status != "abandoned"]
    assert len(counted) == 10 and all(r.status == "completed" for r in counted)
    assert len({r.index for r in res.records}) == len(res.records)
    assert all(r.status == "abandoned" for r in res.records if r.index not in {c.index for c in counted})


def test_failed_trial_traceback_reaches_error_txt_and_study_log(tmp_path: Path, capsys: Any) -> None:
    spec = synthetic_spec("tb", budget={"trials": 4, "sobol_trials": 4, "max_consecutive_failures": 4})
    outcome = run_study(spec, tmp_path / "s", trial_fn=faulty.raise_when_x0_high)
    failed = [r.index for r in outcome.records if r.status == "failed"]
    assert failed
    store = StudyStore(tmp_path / "s")
    for index in failed:
        text = store.error_path(index).read_text()
        assert text.startswith("Traceback (most recent call last)") and "ConfigError" in text
    assert not any(store.error_path(r.index).exists() for r in outcome.records if r.status != "failed")
    log = store.log_path.read_text()
    assert f"trial {failed[0]} traceback:" in log and "Traceback (most recent call last)" in log
    from engine.interfaces.cli import _status_table

    _status_table(StudyResults.load(tmp_path / "s"))
    assert "trials/<i>/error.txt" in capsys.readouterr().out


def test_study_log_holds_every_trial_in_any_display_mode(finished: tuple[Path, StudyOutcome]) -> None:
    """The fixture ran with no display at all (quiet); study.log still has each trial's events."""
    directory, outcome = finished
    log = (directory / "study.log").read_text()
    for rec in outcome.records:
        assert f"trial {rec.index} started ({rec.source})" in log
        assert f"trial {rec.index} completed ({rec.source})" in log
    assert "proposed trials" in log
