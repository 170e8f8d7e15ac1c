"""Pareto-aware stopping across folds: the rule, the spec section, and a walk-forward study that uses it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.objective.pipeline import load_prepared
from engine.records import ObjectiveSet, TrialRecord
from engine.spec import parse_spec
from engine.study.fold_stopping import PartialTrial, await_answer, is_fold_report, judge, optimistic_corner
from engine.study.trial import Channel, TrialJob, TrialOutcome, execute
from strategies.exceptions import SpecError
from tests.engine.made_studies import bars

OBJECTIVES = ObjectiveSet(
    names=("return_pct", "sharpe", "max_drawdown_pct"),
    maximize=(True, True, False),
    thresholds=(-50.0, -10.0, 80.0),
)
Z = 1.645


def _rec(index: int, ret: float, sharpe: float, mdd: float, *, source: str = "sobol") -> TrialRecord:
    metrics = {"return_pct": ret, "sharpe": sharpe, "max_drawdown_pct": mdd}
    return TrialRecord(index=index, status="completed", params={}, source=source, metrics=metrics)


#: Two trials on the front and one behind it.
FRONT = [_rec(0, 20.0, 2.0, 5.0), _rec(1, 10.0, 3.0, 4.0), _rec(2, 5.0, 1.0, 10.0)]


def _partial(
    ret: float,
    sharpe: float,
    drawdown: float,
    *,
    se: float = 0.5,
    folds_done: int = 1,
    n_folds: int = 3,
) -> PartialTrial:
    return PartialTrial(
        folds_done=folds_done,
        n_folds=n_folds,
        bars=100,
        bars_total=300,
        values={"return_pct": ret, "sharpe": sharpe, "max_drawdown_pct": drawdown + 1.0},
        sems={"return_pct": se, "sharpe": se, "max_drawdown_pct": 3.0},
        drawdown_bound=drawdown,
    )


def _judge(partial: PartialTrial, records: list[TrialRecord] = FRONT, **kw: Any) -> Any:
    settings = {"z": Z, "min_folds": 1, "min_completed": 3} | kw
    return judge(partial, records, OBJECTIVES, **settings)


# -- the rule ---------------------------------------------------------------------------------


def test_a_trial_far_below_the_front_is_stopped() -> None:
    decision = _judge(_partial(-5.0, -1.0, 12.0))
    assert decision is not None and decision.stop
    assert decision.dominated_by == 0  # the first front trial that dominates the corner
    assert decision.failed_threshold is None
    assert "after fold 1 of 3" in decision.reason and "trial 0" in decision.reason
    info = decision.to_info()
    assert info["fold"] == 1 and info["z"] == Z
    assert info["partial"]["sharpe"] == -1.0 and info["sems"]["sharpe"] == 0.5
    assert info["corner"]["sharpe"] == pytest.approx(-1.0 + Z * 0.5)


def test_a_trial_near_the_front_continues() -> None:
    # return 6 % over a third of the bars compounds to about 25 %: beyond both front trials' returns
    decision = _judge(_partial(6.0, 1.8, 4.5))
    assert decision is not None and not decision.stop and decision.dominated_by is None
    assert decision.corner["return_pct"] > 20.0


def test_a_large_standard_error_keeps_a_trial_alive() -> None:
    assert _judge(_partial(-5.0, -1.0, 12.0, se=0.5)).stop
    decision = _judge(_partial(-5.0, -1.0, 12.0, se=5.0))
    assert not decision.stop
    assert decision.corner["sharpe"] == pytest.approx(-1.0 + Z * 5.0)


def test_return_is_compounded_to_the_full_length_and_drawdown_is_the_realised_bound() -> None:
    corner = optimistic_corner(OBJECTIVES, _partial(2.0, 0.5, 7.0, se=1.0), Z)
    assert corner["return_pct"] == pytest.approx(100.0 * ((1.0 + (2.0 + Z) / 100.0) ** 3 - 1.0))
    assert corner["max_drawdown_pct"] == 7.0  # neither the partial figure nor moved by its SE
    assert corner["sharpe"] == pytest.approx(0.5 + Z)


def test_a_minimised_objective_is_moved_down_and_compared_as_lower_is_better() -> None:
    # bad return and Sharpe, but a drawdown below every front trial's: nothing dominates it
    assert not _judge(_partial(-5.0, -1.0, 1.0)).stop
    assert _judge(_partial(-5.0, -1.0, 12.0)).stop
    # a minimised objective with a standard error is moved down by z SE (here: Sharpe minimised)
    flipped = ObjectiveSet(names=("sharpe",), maximize=(False,), thresholds=(10.0,))
    corner = optimistic_corner(flipped, _partial(0.0, 1.0, 0.0, se=0.5), Z)
    assert corner["sharpe"] == pytest.approx(1.0 - Z * 0.5)


def test_a_corner_that_fails_a_threshold_is_stopped_even_when_nothing_dominates_it() -> None:
    decision = _judge(_partial(50.0, 5.0, 85.0))  # drawdown 85 % > 80 % can never shrink
    assert decision.stop and decision.failed_threshold == "max_drawdown_pct" and decision.dominated_by is None


def test_an_objective_without_a_rule_is_never_worse() -> None:
    objectives = ObjectiveSet(
        names=("sharpe", "win_rate_pct"), maximize=(True, True), thresholds=(-10.0, 0.0)
    )
    front = [TrialRecord(i, "completed", {}, metrics={"sharpe": 3.0, "win_rate_pct": 90.0}) for i in range(3)]
    partial = PartialTrial(1, 3, 100, 300, {"sharpe": -5.0, "win_rate_pct": 1.0}, {"sharpe": 0.1})
    decision = judge(partial, front, objectives, z=Z, min_folds=1, min_completed=3)
    assert decision is not None and not decision.stop and decision.corner["win_rate_pct"] == math.inf


def test_never_judged_after_the_last_fold_nor_before_min_folds_or_min_completed() -> None:
    bad = _partial(-5.0, -1.0, 12.0)
    assert _judge(bad).stop
    assert _judge(_partial(-5.0, -1.0, 12.0, folds_done=3, n_folds=3)) is None
    assert _judge(_partial(-5.0, -1.0, 12.0, folds_done=2, n_folds=3)).stop
    assert _judge(bad, min_folds=2) is None
    assert _judge(bad, min_completed=4) is None
    # trials attached from another study, or not completed, are not the study's completed trials
    attached = [*FRONT[:2], _rec(3, 30.0, 4.0, 1.0, source="warm_start:other")]
    assert _judge(bad, attached) is None
    stopped = TrialRecord(4, "early_stopped", {}, metrics={})
    assert _judge(bad, [*FRONT[:2], stopped]) is None


class _Channel:
    """A channel whose driver has answered the fold reports in ``answered`` and stops ``stops``."""

    def __init__(self, answered: set[tuple[int, int]], stops: set[int], *, folds: bool = True) -> None:
        self.answered, self.stops = answered, stops
        if not folds:
            self.fold_answered = None  # type: ignore[assignment]

    def report(self, trial_index: int, report: Mapping[str, float]) -> None:
        return None

    def should_stop(self, trial_index: int) -> bool:
        return trial_index in self.stops

    def fold_answered(self, trial_index: int, fold: int) -> bool:
        return (trial_index, fold) in self.answered


def test_a_trial_waits_for_the_answer_to_its_fold_report() -> None:
    assert await_answer(_Channel({(7, 1)}, set()), 7, 1, wait_s=30.0) is False  # answered: go on at once
    assert await_answer(_Channel({(7, 1)}, {7}), 7, 1, wait_s=30.0) is True
    assert await_answer(_Channel(set(), {7}), 7, 1, wait_s=30.0) is True  # the stop before the answer
    started = time.monotonic()
    assert await_answer(_Channel({(7, 2)}, set()), 7, 1, wait_s=0.3) is False  # no answer: trains on
    assert 0.3 <= time.monotonic() - started < 5.0
    started = time.monotonic()
    assert await_answer(_Channel(set(), set(), folds=False), 7, 1, wait_s=30.0) is False  # cannot answer
    assert time.monotonic() - started < 5.0


def test_the_local_channel_carries_answers_to_fold_reports() -> None:
    from engine.executors.local import LocalExecutor, QueueChannel

    executor = LocalExecutor(workers=1, threads=1, trial_timeout_s=10.0, fn=execute)
    executor._channel = channel = QueueChannel(None, {})
    assert not channel.fold_answered(3, 1)
    executor.request_stop(3)
    executor.answer_fold(3, 1)
    assert channel.fold_answered(3, 1) and not channel.fold_answered(3, 2) and channel.should_stop(3)
    assert not channel.should_stop(4) and await_answer(channel, 3, 1) is True


def test_fold_reports_round_trip_on_the_channel() -> None:
    partial = _partial(1.0, 0.2, 3.0)
    report = partial.to_report()
    assert is_fold_report(report) and not is_fold_report({"epoch": 1.0, "val_sharpe": 0.1})
    assert all(isinstance(v, float) for v in report.values())
    assert PartialTrial.from_report(report) == partial


# -- the spec -----------------------------------------------------------------------------------


def _spec(pareto: Mapping[str, Any], **more: Any) -> Any:
    raw = {"name": "t", "strategy": "moe_transformer", "early_stopping": {"pareto_folds": pareto}} | more
    return parse_spec(raw, source="x.json")


def test_the_spec_section_defaults_to_auto_and_validates() -> None:
    spec = parse_spec({"name": "t", "strategy": "moe_transformer"})
    pf = spec.early_stopping.pareto_folds
    assert (pf.enabled, pf.z, pf.min_folds, pf.min_completed) == ("auto", 1.645, 1, 5)
    assert spec.pareto_folds_on  # walk-forward, 4 folds, 24 trials: it applies
    spec = _spec({"enabled": True, "z": 2.0, "min_folds": 2, "min_completed": 3})
    assert spec.early_stopping.pareto_folds.min_folds == 2 and spec.pareto_folds_on
    assert not _spec({"enabled": False}).pareto_folds_on


@pytest.mark.parametrize(
    ("pareto", "more"),
    [
        ({}, {"data": {"validation": {"scheme": "holdout"}}}),  # no folds to judge
        ({}, {"data": {"validation": {"scheme": "cpcv"}}}),  # not walk-forward
        ({"min_folds": 4}, {}),  # no fold left after min_folds (4 folds)
        ({}, {"budget": {"trials": 4, "sobol_trials": 4}}),  # fewer trials than min_completed (5)
    ],
)
def test_auto_is_off_where_it_cannot_apply_and_says_nothing(
    pareto: dict[str, Any], more: dict[str, Any]
) -> None:
    spec = _spec(pareto, **more)
    assert spec.early_stopping.pareto_folds.enabled == "auto"
    assert not spec.pareto_folds_on


@pytest.mark.parametrize(
    ("pareto", "more", "expected"),
    [
        ({"zz": 1}, {}, "early_stopping.pareto_folds.zz: unknown key; known keys: enabled, z, min_folds"),
        ({"z": 0}, {}, "early_stopping.pareto_folds.z: Input should be greater than 0"),
        ({"z": "big"}, {}, "early_stopping.pareto_folds.z: Input should be a valid number"),
        (
            {"enabled": "yes"},
            {},
            'early_stopping.pareto_folds.enabled: Input should be true, false or "auto"',
        ),
        ({"enabled": 1}, {}, 'early_stopping.pareto_folds.enabled: Input should be true, false or "auto"'),
        (
            {"min_folds": 0},
            {},
            "early_stopping.pareto_folds.min_folds: Input should be greater than or equal",
        ),
        (
            {"enabled": True, "min_folds": 4},
            {},
            "early_stopping.pareto_folds.min_folds: 4 is not below data.validation.folds (4)",
        ),
        (
            {"enabled": True, "min_completed": 30},
            {},
            "early_stopping.pareto_folds.min_completed: 30 completed trials are needed but the study has 24",
        ),
        (
            {"enabled": True},
            {"data": {"validation": {"scheme": "holdout"}}},
            "early_stopping.pareto_folds.enabled: judges walk-forward folds, but this study's trials are "
            "'holdout'",
        ),
    ],
)
def test_bad_values_are_refused_with_one_line_naming_the_field(
    pareto: dict[str, Any], more: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SpecError) as info:
        _spec(pareto, **more)
    message = str(info.value)
    assert message.startswith("x.json: ") and "\n" not in message
    assert expected in message


# -- a walk-forward study that uses it -------------------------------------------------------

#: Trials below this index are the fake front (figures no trained model reaches on random bars).
FAKE_FRONT = 2


def front_then_walk_forward(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    """Trials 0 and 1: a fake front (completed at once, with per-bar returns); later trials train
    and trade their folds (the real objective) and send their fold reports to the real driver."""
    if job.trial_index >= FAKE_FRONT:
        return execute(job, channel, data)
    prepared = load_prepared(str(job.data_dir))
    n = int(prepared.folds[-1].val[1] - prepared.folds[0].val[0])
    returns = np.random.default_rng(job.trial_index).normal(2e-3, 1e-3, n)
    ret, sharpe = (900.0, 1000.0) if job.trial_index == 0 else (1000.0, 900.0)
    metrics = {"return_pct": ret, "sharpe": sharpe, "max_drawdown_pct": 0.0, "num_trades": 50.0}
    return TrialOutcome(job.trial_index, "completed", metrics=metrics, epochs=1, arrays={"returns": returns})


def test_a_study_stops_a_trial_that_cannot_reach_the_front(tmp_path: Path) -> None:
    from engine.analysis.results import StudyResults
    from engine.study.run import run_study

    raw = {
        "name": "pareto-folds",
        "strategy": "lstm",
        "data": {
            "source": str(bars(tmp_path / "bars.csv", n=1200)),
            "feature_set": "ohlcv",
            "label": {"scheme": "A", "horizon": 3, "profit_threshold": 0.002, "min_diff": 0.001},
            "validation": {"scheme": "walk_forward", "folds": 3},
        },
        "search_space": {
            "hidden_size": {"values": [8, 16]},
            "num_layers": 1,
            "seq_len": {"low": 4, "high": 8},
        },
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -90.0},
            "sharpe": {"goal": "max", "threshold": -50.0},
            "max_drawdown_pct": {"goal": "min", "threshold": 95.0},
        },
        "budget": {"trials": 3, "sobol_trials": 3, "max_epochs": 2, "trial_timeout_s": 300},
        "early_stopping": {"enabled": False, "pareto_folds": {"enabled": True, "min_completed": 2}},
        "executor": {"workers": 1},
        "seed": 0,
    }
    outcome = run_study(parse_spec(raw), tmp_path / "s", trial_fn=front_then_walk_forward)
    stopped = {r.index: r for r in outcome.records if r.status == "early_stopped"}
    assert set(stopped) == {2}, [(r.index, r.status, r.reason) for r in outcome.records]
    rec = stopped[2]
    decision = rec.info["pareto_stop"]
    assert decision["fold"] == 1 and decision["folds"] == 3 and decision["dominated_by"] in (0, 1)
    assert set(decision["partial"]) == set(decision["corner"]) == set(raw["objectives"])
    assert {"return_pct", "sharpe"} <= set(decision["sems"])
    assert decision["bars"] < decision["bars_total"]
    assert len(rec.info["folds"]) == 1  # it waited for the answer: no epoch of fold 2 was trained
    assert (
        rec.metrics == {}
        and rec.reason is not None
        and rec.reason.startswith("Pareto fold stop after fold 1")
    )
    # on disk, counted by the verdict, and in the report's early-stop lines
    on_disk = json.loads((tmp_path / "s" / "trials" / "2" / "result.json").read_text())
    assert on_disk["status"] == "early_stopped" and on_disk["info"]["pareto_stop"]["fold"] == 1
    # its training time is recorded beside the total, as a completed trial's is
    assert 0 < on_disk["seconds"]["train"] <= on_disk["seconds"]["total"]
    res = StudyResults.load(tmp_path / "s")
    assert 2 not in {r.index for r in res.front}
    verdict = json.loads((tmp_path / "s" / "verdict.json").read_text())
    assert verdict["n_study"] == 3
    report = (tmp_path / "s" / "report.md").read_text()
    line = next(x for x in report.splitlines() if x.lstrip("- ").startswith("trial 2: early_stopped"))
    assert "Pareto fold stop after fold 1 of 3" in line and "optimistic corner (z = 1.645)" in line


# -- the worker's side: the per-fold callback ------------------------------------------------


def test_the_fold_callback_gets_the_stitched_positions_and_can_stop_the_trial(tmp_path: Path) -> None:
    from objectives import EvalSettings, prepare_data
    from objectives.backtest import equity_stats
    from objectives.config import DataSpec, LabelSpec, ValidationSpec
    from objectives.walk_forward import evaluate_walk_forward, stitched_figures
    from tests.objectives.helpers import make_bars, write_csv

    write_csv(make_bars(1400, seed=5), tmp_path / "bars.csv")
    data = prepare_data(
        DataSpec(
            source=str(tmp_path / "bars.csv"),
            label=LabelSpec(horizon=3),
            validation=ValidationSpec(scheme="walk_forward", folds=3),
        ),
        feature_set="ohlcv",
        max_seq_len=8,
    )
    params = {"hidden_size": 8, "num_layers": 1, "seq_len": 8, "batch_size": 64, "predict_profit": False}
    settings = EvalSettings(max_epochs=1, seed=3, device="cpu")
    seen: dict[int, np.ndarray] = {}

    def record(fold: int, positions: np.ndarray) -> bool:
        seen[fold] = positions.copy()
        return False

    kw: dict[str, Any] = {"warm_start_folds": False, "epochs_per_fold": [1, 1, 1]}
    full = evaluate_walk_forward("lstm", params, data, settings, on_fold=record, **kw)
    start = data.folds[0].val[0]
    assert sorted(seen) == [0, 1]  # never after the last fold
    for k, positions in seen.items():
        assert len(positions) == data.folds[k].val[1] - start
        np.testing.assert_array_equal(positions, full.positions[: len(positions)])
    assert full.positions is not None and full.returns is not None
    metrics, returns, sems = stitched_figures(data, settings, full.positions)
    np.testing.assert_array_equal(returns, full.returns)
    assert metrics["sharpe"] == full.metrics["sharpe"] and sems == full.sems  # the final figures' functions
    _, partial, _ = stitched_figures(data, settings, seen[1])
    bound = equity_stats(partial[:-1], data.periods_per_year)[2]
    assert bound <= full.metrics["max_drawdown_pct"] + 1e-9  # the realised drawdown only grows

    stopped = evaluate_walk_forward("lstm", params, data, settings, on_fold=lambda k, p: True, **kw)
    assert stopped.stopped_by_callback and len(stopped.folds) == 1 and stopped.metrics == {}
