"""The report says how much of every number is luck: verdict first, statistics with their inputs,
baselines beside the front, noise yardsticks, withheld importance, and views that survive synthetic
studies and empty fronts."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.analysis.results import StudyResults
from engine.reporting.export import write_pareto
from engine.reporting.report import MIN_TRIALS_FOR_IMPORTANCE, parameter_importance, write_report
from engine.reporting.tables import FLAG, fmt_number, front_table
from engine.spec import parse_spec
from engine.study.run import run_study
from tests.engine.conftest import synthetic_spec


def _write_bars(path: Path, n: int = 2000, phi: float = 0.4, seed: int = 1) -> Path:
    """Hourly OHLCV bars whose log returns are AR(1): r_t = phi * r_{t-1} + e_t."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 0.004, n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.001, (2, n)))
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2022-01-03", periods=n, freq="1h").strftime("%Y-%m-%d %H:%M:%S"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.integers(100, 1000, n),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _trading_spec(source: Path) -> dict[str, Any]:
    return {
        "name": "report_wf",
        "strategy": "lstm",
        "data": {
            "source": str(source),
            "feature_set": "ohlcv",
            "label": {"scheme": "A", "horizon": 3, "profit_threshold": 0.002, "min_diff": 0.001},
            "validation": {"scheme": "walk_forward", "folds": 4},
        },
        "search_space": {
            "hidden_size": {"values": [8, 16]},
            "num_layers": 1,
            "seq_len": {"low": 4, "high": 8},
            "batch_size": 64,
            "predict_profit": False,
        },
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -20.0},
            "sharpe": {"goal": "max", "threshold": -5.0},
            "max_drawdown_pct": {"goal": "min", "threshold": 40.0},
        },
        "constraints": ["num_trades >= 1"],
        "budget": {"trials": 4, "sobol_trials": 3, "max_epochs": 2, "trial_timeout_s": 300},
        "early_stopping": {"enabled": False},
        "backtest": {"fee_bps": 0.5, "slippage_bps": 0.5},
        "executor": {"kind": "local", "workers": 2},
        "seed": 0,
    }


@pytest.fixture(scope="module")
def trading(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished walk-forward study of 4 trials on 2,000 AR(1) bars (the family default among them)."""
    root = tmp_path_factory.mktemp("report_wf")
    run_study(parse_spec(_trading_spec(_write_bars(root / "bars.csv"))), root / "study")
    return root / "study"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report_syn") / "study"
    run_study(synthetic_spec("report_syn", executor={"workers": 1}), directory)
    return directory


def _paragraphs(md: str) -> list[str]:
    return [p.strip() for p in md.split("\n\n") if p.strip()]


def _row(md: str, label: str) -> str:
    """The line of a Markdown table whose first cell starts with ``label``."""
    rows = [line for line in md.splitlines() if line.startswith(f"| {label}")]
    assert len(rows) == 1, label
    return rows[0]


def _copy(study: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(study, tmp_path / "copy"))


# ----------------------------------------------------------------- the verdict and its inputs


def test_report_opens_with_the_verdict_sentence(trading: Path) -> None:
    res = StudyResults.load(trading)
    assert res.verdict is not None
    paragraphs = _paragraphs((trading / "report.md").read_text())
    assert paragraphs[0] == "# Study report: report_wf"
    assert paragraphs[1] == res.verdict.sentence
    body = (trading / "report.html").read_text()
    assert re.search(r"</h1><p class='verdict[^']*'>", body)


def test_statistics_appear_with_their_inputs(trading: Path) -> None:
    res = StudyResults.load(trading)
    v = res.verdict
    assert v is not None and v.members and v.pick == res.pick("knee").index
    md = (trading / "report.md").read_text()
    assert f"## How much of this is luck: the verdict on trial {v.pick}, the knee" in md
    for index, member in v.members.items():
        assert f"deflated Sharpe ratio, trial {index}" in md
        assert f"against SR0 {fmt_number(member['benchmark_annual'])}" in md
        assert member["n_trials"] == v.n_effective
    s = v.skill_details
    for text in (
        "| skill: all trials (SPA, returns net of beta)",
        f"| skill: trial {v.pick} alone",
        f"over {s['n_trials']} trials and {s['n_obs']:,} bars",
        f"block size {s['block_size']}",
        f"beyond beta {fmt_number(v.beta)} to the market",
        "one-sided test of 'true Sharpe <= SR0'",
        f"{v.n_study} evaluated in this study; {v.n_bars} configurations tried on these bars",
        f"{v.n_effective} effective",
        "The deflated Sharpe ratio used the effective N",
        f"per-block Sharpe, trial {v.pick}",
        f"{v.folds['positive']} of {v.folds['folds']} blocks positive",
        f"CSCV over {v.pbo_details['n_blocks']} blocks",
        f"{v.pbo_details['n_combinations']:,} combinations",
        "degradation slope",
        "probability of an out-of-sample loss",
        "SPA of raw returns against buy-and-hold (reference)",
        "SPA of raw returns against flat (reference)",
        f"{v.spa_details['flat']['n_obs']:,} bars; does not decide",
        f"| {v.n_obs:,} ",
        f"{v.periods_per_year:,.0f} periods a year",
        "## How to read this",
        f"best of {v.n_trials} independent skill-less tries",
        "It is not the probability that the true Sharpe ratio is higher",
    ):
        assert text in md, text
    assert f"{v.skill_p_family:.3f}" in _row(md, "skill: all trials")
    assert f"{v.skill_p_pick:.3f}" in _row(md, f"skill: trial {v.pick} alone")
    assert v.folds["folds"] == 4 and len(v.folds["sharpes"]) == 4
    assert re.search(rf"\| trials counted\s+\| {v.n_trials} \(effective\)\s+\|", md)
    how = md.split("## How to read this")[1].split("##")[0]
    assert 4 <= sum(line.startswith("- ") for line in how.splitlines()) <= 6
    caveats = md.split("Caveats:")[1].split("##")[0]
    assert all(c in caveats for c in v.caveats)
    assert bool(v.caveats) is not ("- none" in caveats)


def test_noise_yardstick_beside_the_best_validation_sharpe(trading: Path) -> None:
    res = StudyResults.load(trading)
    v = res.verdict
    assert v is not None
    best = max(r.metrics["sharpe"] for r in res.records if res.objectives.feasible(r))
    yardstick = (
        f"{best:.2f} (± {v.sharpe_se:.2f} standard error over {v.n_obs:,} bars; "
        f"the best of {v.n_trials} independent skill-less tries, the trial ledger's effective count, is "
        f"expected near {v.noise_best_sharpe:.2f})"
    )
    md = (trading / "report.md").read_text()
    summary, front = md.split("## Summary")[1].split("## Pareto set")
    assert yardstick in summary and yardstick in front


# ----------------------------------------------------------------- the front beside the baselines


def test_front_table_holds_front_and_baselines_with_test_figures(trading: Path) -> None:
    res = StudyResults.load(trading)
    table, _ = front_table(res)
    labels = list(table[""])
    assert labels[: len(res.front)] == [
        "front (family default)" if r.source == "baseline" else "front" for r in res.front
    ]
    assert {"baseline: flat", "baseline: buy and hold", "baseline: short and hold"} <= set(labels)
    assert any("family default" in label for label in labels)
    test_cols = ["test Sharpe ± SE", "test return %", "test max drawdown %", "test trades"]
    assert (table[test_cols] != "-").all().all()  # every row, baselines included, has test figures
    assert table["validation Sharpe ± SE"].str.contains(" ± ").sum() >= len(res.front)
    # test figures carry their bootstrap standard error too, front and baselines alike
    assert table["test Sharpe ± SE"].str.contains(" ± ").all()
    assert (table["DSR"][: len(res.front)] != "-").all()
    assert list(table["blocks won"][: len(res.front)]) == [
        f"{sum(f['sharpe'] > 0 for f in r.info['folds'])}/4" for r in res.front
    ]
    md = (trading / "report.md").read_text()
    assert "| baseline: buy and hold" in md and "| baseline: flat" in md
    assert "Buy and hold on the validation split" not in md


def test_too_few_test_trades_are_flagged(trading: Path, tmp_path: Path) -> None:
    res = StudyResults.load(trading)
    bound = res.constraint_bound("num_trades")
    assert bound == 1
    ok = all(res.test[r.index]["num_trades"] >= bound for r in [*res.front, *res.baseline_records])
    assert (FLAG in (trading / "report.md").read_text()) is not ok
    study = _copy(trading, tmp_path)
    test = json.loads((study / "test.json").read_text())
    low = res.front[0].index
    test[str(low)]["num_trades"] = 0.0
    (study / "test.json").write_text(json.dumps(test))
    md = write_report(study).read_text()
    assert f"{FLAG} 0" in md
    assert f"(trial {low}" in md and "rests on too few trades" in md
    assert "class='flag'" in (study / "report.html").read_text()


def test_pareto_csv_is_the_front_with_new_columns(trading: Path) -> None:
    res = StudyResults.load(trading)
    front = pd.read_csv(trading / "pareto.csv")
    assert list(front["trial"]) == [r.index for r in res.front]
    assert {"val_sharpe_se", "test_num_trades"} <= set(front.columns)
    assert list(front["test_num_trades"]) == [res.test[r.index]["num_trades"] for r in res.front]
    assert list(front["val_sharpe_se"]) == pytest.approx([r.sems["sharpe"] for r in res.front])


def test_pareto_html_has_test_markers_baselines_and_axis_titles(trading: Path, tmp_path: Path) -> None:
    body = write_pareto(trading, "html", tmp_path / "front.html").read_text()
    for name in ("Pareto front (held-out test)", "Pareto front (validation)", "buy and hold (test)"):
        assert f'"name":"{name}"' in body, name
    for title in (
        "Sharpe ratio (annualised, higher is better)",
        "Return (%, higher is better)",
        "Max drawdown (%, lower is better)",
    ):
        assert title in body, title
    assert '"type":"splom"' not in body and "class='wrap'" in body and ".wrap{overflow-x:auto" in body
    assert write_pareto(trading, "png", tmp_path / "front.png").stat().st_size > 10_000


# ----------------------------------------------------------------- parameter importance


def test_importance_is_withheld_below_twenty_trials(trading: Path) -> None:
    res = StudyResults.load(trading)
    n = sum(res.objectives.feasible(r) for r in res.records)
    assert n < MIN_TRIALS_FOR_IMPORTANCE and not len(parameter_importance(res))
    section = (trading / "report.md").read_text().split("## Parameter importance")[1].split("##")[0]
    assert f"Not shown: {n} feasible trials" in section and "at least 20" in section and "noisy" in section


def test_importance_from_twenty_trials_has_a_bootstrap_sd(synthetic: Path, tmp_path: Path) -> None:
    study = _copy(synthetic, tmp_path)
    rng = np.random.default_rng(0)
    template = json.loads((study / "trials" / "0" / "result.json").read_text())
    for i in range(24):
        params = {k: float(rng.uniform()) for k in template["params"]}
        x0 = params["x0"]
        metrics = {"return_pct": x0, "sharpe": -x0, "max_drawdown_pct": x0 + 0.01 * rng.normal()}
        record = {**template, "index": i, "params": params, "metrics": metrics}
        (study / "trials" / str(i)).mkdir(exist_ok=True)
        (study / "trials" / str(i) / "result.json").write_text(json.dumps(record))
    imp = parameter_importance(StudyResults.load(study), seed=3, resamples=5)
    assert set(imp["objective"]) == {"return_pct", "sharpe", "max_drawdown_pct"}
    assert imp["sd"].notna().all() and (imp["sd"] >= 0).all()
    top = imp.loc[imp.groupby("objective")["importance"].idxmax(), "parameter"]
    assert set(top) == {"x0"}  # every objective depends on x0 only
    section = write_report(study).read_text().split("## Parameter importance")[1].split("##")[0]
    assert "Fitted on 24 noisy validation figures" in section and " ± " in section


# ----------------------------------------------------------------- synthetic studies, empty fronts


def test_synthetic_report_says_there_is_no_verdict(synthetic: Path, tmp_path: Path) -> None:
    md = (synthetic / "report.md").read_text()
    paragraphs = _paragraphs(md)
    assert paragraphs[1].startswith("No verdict: selection statistics")
    assert "per-bar returns of a trading objective" in paragraphs[1]
    assert "baseline:" not in md and "Pareto set" in md and "Hypervolume over trials" in md
    for fmt in ("csv", "html", "png"):
        assert write_pareto(synthetic, fmt, tmp_path / f"front.{fmt}").stat().st_size > 0
    assert "test_num_trades" in pd.read_csv(tmp_path / "front.csv").columns


def test_empty_front_still_reports(synthetic: Path, tmp_path: Path) -> None:
    study = _copy(synthetic, tmp_path)
    for path in (study / "trials").glob("*/result.json"):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "status": "failed", "reason": "broken on purpose"}))
    assert StudyResults.load(study).front == []
    md = write_report(study).read_text()
    assert "Empty: no completed trial meets the constraints." in md
    for fmt in ("csv", "html", "png"):
        assert write_pareto(study, fmt, tmp_path / f"empty.{fmt}").is_file()
    assert math.isfinite(StudyResults.load(study).hypervolume)
