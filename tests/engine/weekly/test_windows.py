"""The weekly job: study windows, carry-over, champion against challenger, the decision history.

Two windows of one planted series (AR(1) momentum, hourly): the first cut at
a date, the second at the last bar. Each runs a tiny walk-forward LSTM study.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from engine.analysis.results import StudyResults
from engine.interfaces.cli import app
from engine.spec import parse_spec
from engine.weekly import champion
from engine.weekly.carry_over import WindowStart, plan_carry_over, why_outside
from engine.weekly.champion import history_path, read_history, replace_if_better
from engine.weekly.windows import list_windows, open_window, resolve_study
from tests.engine.test_bad_input import _keep_signal_handlers, cli, snapshot  # noqa: F401  (fixture)
from tests.engine.test_honest import honest_spec, write_series

pytestmark = pytest.mark.slow

runner = CliRunner()


def _invoke(*args: str) -> Any:
    out = runner.invoke(app, list(args))
    assert out.exit_code == 0, (out.output, out.exception)
    return out


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("weekly")
    source = write_series(root / "planted.csv", n=2400, phi=0.3, seed=1)
    raw = honest_spec(
        "weekly", source, budget={"trials": 4, "sobol_trials": 4, "max_epochs": 2, "trial_timeout_s": 300}
    )
    raw["data"]["validation"]["folds"] = 3
    spec = root / "weekly.json"
    spec.write_text(json.dumps(raw))
    first_cut = str(pd.read_csv(source)["timestamp"].iloc[2000])[:10]
    config = root / "config" / "strategy_config.json"
    studies = root / "line"
    common = ("--study-dir", str(studies), "--live-config", str(config), "--progress", "quiet")
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}  # run sets its own
    _invoke("-q", "run", str(spec), "--window", first_cut, *common)
    first = _invoke("best", str(studies), "--write-config", str(config), "--replace-if-better")
    after_first = config.read_text()
    _invoke("-q", "run", str(spec), "--window", "latest", *common)
    second = _invoke("best", str(studies), "--write-config", str(config), "--replace-if-better")
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    return SimpleNamespace(
        root=root,
        spec=spec,
        raw=raw,
        studies=studies,
        config=config,
        first_cut=first_cut,
        first_output=first.output,
        second_output=second.output,
        after_first=after_first,
    )


def test_windows_are_named_by_their_last_bar_and_listed(line: SimpleNamespace) -> None:
    windows = list_windows(line.studies)
    assert [w.name for w in windows] == [line.first_cut, "2022-04-12"]
    first, second = (StudyResults.load(w) for w in windows)
    assert first.spec.data.end == f"{line.first_cut}T23:00:00"  # cut at the day's last bar
    assert first.meta.facts["last_timestamp"].startswith(line.first_cut)
    assert second.spec.data.end == "2022-04-12T23:00:00"
    assert resolve_study(line.studies) == windows[-1]
    out = _invoke("status", str(line.studies), "--json")
    rows = json.loads(out.output)["windows"]
    assert [r["window"] for r in rows] == [w.name for w in windows]
    assert rows[0]["carried"] == 0 and rows[1]["carried"] >= 1
    assert all(r["state"] == "finished" and r["trials"] == 4 for r in rows)


def test_second_window_runs_the_live_configuration_and_previous_front_first(line: SimpleNamespace) -> None:
    first, second = (StudyResults.load(w) for w in list_windows(line.studies))
    live = json.loads(line.after_first)["lstm"]["hyperparameters"]
    front = [r.params for r in first.front]
    carried = json.loads((second.store.dir / "carry_over.json").read_text())
    expected = [live, *[p for p in front if p != live]]
    assert [c["params"] for c in carried["reevaluated"]] == expected
    head = second.records[: len(expected)]
    assert [r.params for r in head] == expected
    assert [r.source for r in head] == ["champion", *["previous_front"] * (len(expected) - 1)]
    then = {json.dumps(r.params, sort_keys=True): r for r in first.records}
    for rec in head:
        assert rec.status == "completed" and rec.epochs == second.evaluator.planned_epochs()  # all of them
        old = then[json.dumps(rec.params, sort_keys=True)]
        assert rec.metrics["sharpe"] != old.metrics["sharpe"]  # measured again, on the new bars
    report = (second.store.dir / "report.md").read_text()
    assert "## Study window" in report and "Regime statistics of the training bars" in report
    regime = json.loads((second.store.dir / "regime.json").read_text())
    assert regime["data_end"] == second.spec.data.end and regime["n_bars"] > 0


def test_each_decision_is_recorded_once_and_rerunning_applies_it_again(line: SimpleNamespace) -> None:
    history = read_history(line.config)
    assert [h["window"] for h in history] == [line.first_cut, "2022-04-12"]
    first, second = history
    # the first window: a planted momentum, no live configuration yet: written on the pick's evidence
    assert (
        first["champion"] is None
        and first["verdict"]["edge"]
        and first["verdict"]["pick"] == first["challenger"]["trial"]
    )
    assert (first["decision"], first["rule"]) == ("replace", "first deployment")
    # the second: the re-evaluated champion against the new knee. With 2 epochs the configurations
    # differ a lot in how much of the momentum they learn, and the champion learns little of it on
    # the new bars: the knee beats it beyond its selection among the study's trials (StepM)
    assert second["champion"]["source"] == "champion" and second["verdict"]["edge"]
    assert (second["decision"], second["rule"]) == ("replace", "better"), second["reason"]
    c = second["comparison"]
    assert c["sharpe"]["difference"] > 2 * c["sharpe"]["se"] and not any(v["worse"] for v in c.values())
    assert second["challenger"]["trial"] in second["stepm"]["superior"]
    assert second["champion"]["trial"] not in second["stepm"]["superior"]
    config = json.loads(line.config.read_text())["lstm"]
    assert config["hyperparameters"] == second["challenger"]["params"]
    before = line.config.read_bytes()
    again = _invoke("best", str(line.studies), "--write-config", str(line.config), "--replace-if-better")
    assert "found in" in again.output
    assert read_history(line.config) == history  # nothing appended
    assert line.config.read_bytes() == before
    # the same choice asked with another pick is a new question; the live one is that choice now
    same = _invoke(
        "best",
        str(line.studies),
        "--pick",
        "sharpe",
        "--write-config",
        str(line.config),
        "--replace-if-better",
    )
    last = read_history(line.config)[-1]
    assert len(read_history(line.config)) == 3 and last["pick"] == "sharpe"
    assert last["decision"] == "keep" and "kept" in same.output
    assert last["verdict"]["pick_name"] == "sharpe"  # the verdict on this pick, not on the knee


def test_a_job_killed_between_history_and_config_ends_with_the_same_decision(
    line: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "strategy_config.json"
    res = StudyResults.load(list_windows(line.studies)[0])
    chosen = res.front[0]

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the job dies after the history line, before the config

    monkeypatch.setattr(champion, "write_config", killed)
    with pytest.raises(KeyboardInterrupt):
        replace_if_better(res, chosen, "knee", config)
    assert len(read_history(config)) == 1 and not config.exists()
    monkeypatch.undo()
    decision, earlier = replace_if_better(res, chosen, "knee", config)
    assert earlier and len(read_history(config)) == 1
    assert decision.decision == read_history(config)[0]["decision"]
    if decision.replaces:
        assert json.loads(config.read_text())["lstm"]["hyperparameters"] == chosen.params
    # a line cut short by a crash is skipped, not fatal
    with open(history_path(config), "a") as f:
        f.write('{"decision": "repl')
    assert len(read_history(config)) == 1


def test_an_incompatible_previous_window_is_counted_by_reason(line: SimpleNamespace, tmp_path: Path) -> None:
    studies = tmp_path / "line"
    studies.mkdir()
    shutil.copytree(list_windows(line.studies)[0], studies / line.first_cut)
    raw = {**line.raw, "search_space": {**line.raw["search_space"], "hidden_size": 32}}
    raw["budget"] = {"trials": 2, "sobol_trials": 2, "max_epochs": 1, "trial_timeout_s": 300}
    spec = tmp_path / "wider.json"
    spec.write_text(json.dumps(raw))
    _invoke("run", str(spec), "--study-dir", str(studies), "--window", "latest", "--progress", "quiet")
    carried = json.loads((studies / "2022-04-12" / "carry_over.json").read_text())
    n_front = len(StudyResults.load(studies / line.first_cut).front)
    assert carried["reevaluated"] == []
    assert carried["skipped"] == {"previous front: hidden_size=8 outside this search space": n_front} or (
        sum(carried["skipped"].values()) == n_front
        and all("hidden_size" in k and "outside this search space" in k for k in carried["skipped"])
    )
    log = (studies / "2022-04-12" / "study.log").read_text()
    noted = next(row for row in log.splitlines() if "not carried:" in row)
    assert "previous front: hidden_size=" in noted and "outside this search space" in noted
    report = (studies / "2022-04-12" / "report.md").read_text()
    assert "not carried over: previous front: hidden_size=" in report


def test_window_input_is_checked_before_anything_is_written(
    line: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ("run", str(line.spec), "--study-dir", str(tmp_path / "x"), "--window")
    for window, message in (
        ("next week", "give 'latest' or a date"),
        ("2021-02-30", "not a calendar date"),
        ("2000-01-01", "at or before data.end"),
    ):
        code, _, err = cli(monkeypatch, capsys, *target, window)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    # a line that is itself a study cannot hold windows
    a_study = list_windows(line.studies)[0]
    before = snapshot(a_study)
    code, _, err = cli(
        monkeypatch, capsys, "run", str(line.spec), "--study-dir", str(a_study), "--window", "latest"
    )
    assert code == 2 and "without --window" in err
    code, _, err = cli(monkeypatch, capsys, "best", str(a_study), "--replace-if-better")
    assert code == 2 and "--write-config" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    code, _, err = cli(monkeypatch, capsys, *target, "latest", "--live-config", str(broken))
    assert code == 2 and "not a JSON strategy config" in err
    assert not (tmp_path / "x").exists() and snapshot(a_study) == before


def test_carry_over_plan_dedupes_and_explains(line: SimpleNamespace, tmp_path: Path) -> None:
    first = list_windows(line.studies)[0]
    spec = open_window(StudyResults.load(first).spec, tmp_path / "new_line", "latest").spec
    live = StudyResults.load(first).front[0].params
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"lstm": {"hyperparameters": live}}))
    plan = plan_carry_over(spec, first, config)
    assert plan.configs[0] == (live, "champion")
    assert [p for p, _ in plan.configs].count(live) == 1
    assert why_outside(spec.space, {**live, "hidden_size": 33}) == "hidden_size=33 outside this search space"
    assert (
        why_outside(spec.space, {k: v for k, v in live.items() if k != "seq_len"}) == "no value for seq_len"
    )
    config.write_text("{not json")
    with pytest.raises(Exception, match="not a JSON strategy config"):
        plan_carry_over(spec, first, config)


def test_a_window_killed_before_its_first_trial_still_runs_the_carry_over(
    line: SimpleNamespace, tmp_path: Path
) -> None:
    import threading

    from engine.study.run import run_study

    studies = tmp_path / "line"
    studies.mkdir()
    shutil.copytree(list_windows(line.studies)[0], studies / line.first_cut)
    raw = {**line.raw, "budget": {"trials": 2, "sobol_trials": 2, "max_epochs": 1, "trial_timeout_s": 300}}
    spec = parse_spec(raw)
    window = open_window(spec, studies, "latest")
    stop = threading.Event()
    stop.set()  # interrupted as soon as the study exists: nothing has started
    outcome = run_study(window.spec, window.directory, start=WindowStart(window), stop=stop)
    assert outcome.interrupted and outcome.records == []
    again = open_window(spec, studies, "latest")
    run_study(again.spec, again.directory, start=WindowStart(again))
    res = StudyResults.load(window.directory)
    front = StudyResults.load(studies / line.first_cut).front
    assert [r.source for r in res.records[: len(front)]] == ["previous_front"] * len(front)
    assert [r.params for r in res.records[: len(front)]] == [
        p["params"] for p in json.loads((window.directory / "carry_over.json").read_text())["reevaluated"]
    ]
