"""The metric catalogue: one entry per reported metric, the spec checks it drives, and a study that
optimises win rate under a profit-factor constraint."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from engine.analysis.results import StudyResults
from engine.interfaces.cli import Pick
from engine.metric_rules import MARKET_METRICS, MetricCatalogue
from engine.objective import objective_class
from engine.objective.model import METRICS
from engine.reporting.plots import axis_title
from engine.spec import parse_spec
from engine.study.run import run_study
from objectives.backtest import BacktestResult
from objectives.noise import SE_FIGURES
from strategies.exceptions import SpecError
from tests.engine.conftest import synthetic_spec
from tests.engine.test_bad_input import _keep_signal_handlers, cli  # noqa: F401  (fixture)

NEW = ("sortino", "calmar", "win_rate_pct", "profit_factor", "turnover", "exposure_pct", "avg_trade_pct")


def test_every_backtest_figure_has_one_entry_and_nothing_else_does() -> None:
    catalogue = objective_class("lstm", "walk_forward").metric_catalogue("lstm")
    fields = [f.name for f in dataclasses.fields(BacktestResult)]
    assert list(catalogue) == list(METRICS) == [*fields, "val_accuracy", "val_loss"]
    assert [m.name for m in MARKET_METRICS] == list(METRICS)  # no entry for a metric nobody reports
    for metric in catalogue.values():
        assert metric.label and metric.doc and metric.label != metric.name, metric
    assert {n for n, m in catalogue.items() if m.se} == set(SE_FIGURES)  # the bootstrap's figures
    assert all(catalogue[n].goal for n in NEW if n != "exposure_pct") and catalogue["turnover"].goal == "min"


def test_synthetic_metrics_come_from_the_problem() -> None:
    catalogue = objective_class("synthetic:dtlz2", "walk_forward").metric_catalogue("synthetic:dtlz2")
    assert [(n, m.goal) for n, m in catalogue.items()] == [
        ("return_pct", "max"),
        ("sharpe", "max"),
        ("max_drawdown_pct", "min"),
    ]
    assert catalogue.label("sharpe") == "sharpe"  # a closed-form output, not a backtest's Sharpe


def model_raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((Path(__file__).parents[2] / "experiments" / "smoke.json").read_text())
    raw.update(changes)
    return raw


@pytest.mark.parametrize("name", NEW)
def test_each_new_metric_is_an_objective_and_a_constraint(name: str) -> None:
    metric = MetricCatalogue(MARKET_METRICS)[name]
    goal = metric.goal or "max"
    threshold = metric.low if math.isfinite(metric.low) and not metric.above_low else 0.5
    objectives = {name: {"goal": goal, "threshold": threshold}, "sharpe": {"goal": "max", "threshold": -3}}
    spec = parse_spec(model_raw(objectives=objectives))
    assert list(spec.objectives) == [name, "sharpe"]
    bound = 0.5 if metric.high >= 1 else 0.1
    spec = parse_spec(model_raw(constraints=[f"{name} >= {bound}"]))
    assert spec.constraints[0].metric == name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"objectives": {"sortino": {"goal": "min", "threshold": 0}, "sharpe": {"goal": "max", "threshold": 0}}},
         r"objectives\.sortino\.goal: higher sortino is better"),
        ({"objectives": {"turnover": {"goal": "max", "threshold": 10}, "sharpe": {"goal": "max", "threshold": 0}}},
         r"objectives\.turnover\.goal: lower turnover is better"),
        ({"constraints": ["win_rate_pct >= 120"]}, r"constraints\.0: win_rate_pct lies in \[0, 100\]"),
        ({"constraints": ["profit_factor >= 150"]}, r"constraints\.0: profit_factor lies in \[0, 100\]"),
        ({"constraints": ["turnover <= -1"]}, r"constraints\.0: turnover is never below 0"),
        ({"constraints": ["calmar >= 500"]}, r"calmar lies in \[-100, 100\]"),
        ({"objectives": {"calmar": {"goal": "max", "threshold": -1e3}, "sharpe": {"goal": "max", "threshold": 0}}},
         r"objectives\.calmar\.threshold: calmar lies in \[-100, 100\]"),
        ({"constraints": ["bh_sharpe >= 1"]}, r"the buy-and-hold benchmark's figure"),
        ({"metrics": {"x": "experiments.my_metrics:worst_bar_pct"}, "data": {"validation": {"scheme": "holdout"}}},
         r"metrics: user metrics \(x\) are computed on the stitched walk-forward positions"),
        ({"metrics": {"1x": "experiments.my_metrics:worst_bar_pct"}}, r"metrics\.1x: a metric name is a Python"),
    ],
    ids=["sortino min", "turnover max", "win rate range", "profit factor cap", "turnover below 0",
         "calmar cap", "calmar threshold", "benchmark", "user metric on holdout", "user metric name"],
)  # fmt: skip
def test_the_catalogue_refuses_what_a_metric_cannot_do(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(model_raw(**changes))


def test_a_closed_form_problem_has_no_user_metrics() -> None:
    with pytest.raises(SpecError, match="metrics: user metrics are computed from a backtest"):
        synthetic_spec(metrics={"x": "experiments.my_metrics:worst_bar_pct"})


def test_best_picks_by_any_metric_with_a_direction() -> None:
    choices = {p.value for p in Pick}
    assert {"knee", "return_pct", "sharpe", "max_drawdown_pct", *NEW} - {"exposure_pct"} <= choices
    assert not {"num_trades", "exposure_pct", "bh_sharpe"} & choices


def test_win_rate_objective_under_a_profit_factor_constraint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = model_raw(
        objectives={
            "win_rate_pct": {"goal": "max", "threshold": 10.0},
            "sharpe": {"goal": "max", "threshold": -30.0},
        },
        constraints=["profit_factor >= 1.1"],
        search_space={
            "hidden_size": 8,
            "num_layers": 1,
            "seq_len": 8,
            "batch_size": 64,
            "predict_profit": False,
        },
        budget={"trials": 2, "sobol_trials": 2, "max_epochs": 1, "trial_timeout_s": 120},
        executor={"workers": 1},
    )
    raw["data"].update(max_bars=600, validation={"folds": 2})
    outcome = run_study(parse_spec(raw), tmp_path / "study")
    assert not outcome.interrupted
    res = StudyResults.load(tmp_path / "study")
    done = [r for r in res.records if r.status == "completed"]
    assert len(done) == 2, [r.reason for r in res.records]
    for rec in done:
        assert 0 <= rec.metrics["win_rate_pct"] <= 100 and "win_rate_pct" not in rec.sems  # no bootstrap SE
        assert res.objectives.feasible(rec) == (rec.metrics["profit_factor"] >= 1.1)
    assert axis_title(res, "win_rate_pct") == "Win rate (%, higher is better)"
    code, out, _ = cli(monkeypatch, capsys, "status", str(tmp_path / "study"))
    assert code == 0 and "win rate %" in out and "Sharpe" in out
