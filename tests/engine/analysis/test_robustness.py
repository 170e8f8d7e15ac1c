"""Robustness of the pick: the plateau score tells a spike from a plateau, cost stress reuses the
backtest's cost model, the Monte Carlo agrees with a worked case, trials store their positions, and
the report shows all three for the knee."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from engine.analysis.results import StudyResults
from engine.analysis.robustness import (
    FLAT_SDS,
    MC_PERCENTILES,
    SPIKE_THRESHOLD,
    cost_stress,
    fit_gp,
    gp_predictor,
    monte_carlo,
    plateau_score,
    stressed_figures,
    study_robustness,
)
from engine.reporting.report import write_report
from engine.reporting.tables import fmt_number
from engine.store import StudyStore
from objectives.backtest import equity_stats, net_returns, run_backtest
from tests.engine.made_studies import trading_study

PPY = 252.0 * 24


def _close(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))


# ----------------------------------------------------------------- the plateau score


def _bump_score(width: float) -> tuple[float, bool, float]:
    """Plateau score of the top of a Gaussian bump of ``width`` on [0, 1], from the project's GP
    fitted to 23 noise-free points (known noise variance 1e-6)."""
    x = np.sort(np.concatenate([np.linspace(0.0, 1.0, 21), [0.47, 0.53]]))
    y = np.exp(-((x - 0.5) ** 2) / (2 * width**2))
    predict = gp_predictor(fit_gp(x[:, None], y, np.full(len(x), 1e-6), seed=0))
    p = plateau_score(predict, np.array([0.5]), [0], np.linspace(0.0, 1.0, 101)[:, None], maximize=True)
    return p.score, p.spike, p.pick_mean


def test_the_plateau_score_tells_a_narrow_spike_from_a_broad_plateau() -> None:
    narrow, narrow_spike, narrow_top = _bump_score(0.03)
    broad, broad_spike, broad_top = _bump_score(0.5)
    assert narrow_top == pytest.approx(1.0, abs=0.05) and broad_top == pytest.approx(1.0, abs=0.05)
    # the narrow bump falls to nothing within ±0.1: nearly all of the spread is lost next to the pick
    assert narrow > 0.8 and narrow_spike
    # the broad one loses ~2 % of its height within ±0.1, ~5 % of its spread over [0, 1]
    assert broad < 0.2 and not broad_spike
    assert SPIKE_THRESHOLD == 0.5


def test_noise_without_structure_is_flat_not_a_plateau_and_a_clear_bump_is_not_flat() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, (8, 2))
    space = rng.uniform(0.0, 1.0, (200, 2))
    pick = x[int(np.argmax(x[:, 0]))]
    # 8 noisy observations of nothing (SE 1 each): the GP's mean barely moves, its SD stays large
    noise = gp_predictor(fit_gp(x, rng.normal(0.0, 1.0, 8), np.ones(8), seed=0))
    flat = plateau_score(noise, pick, [0, 1], space, maximize=True)
    assert flat.flat and not flat.spike
    assert flat.spread < FLAT_SDS * flat.pick_sd
    # the same points on a clear slope (SE 0.01): structure far beyond the SD
    slope = gp_predictor(fit_gp(x, 3.0 * x[:, 0], np.full(8, 1e-4), seed=0))
    clear = plateau_score(slope, pick, [0, 1], space, maximize=True)
    assert not clear.flat and clear.spread > 10 * clear.pick_sd


def test_a_minimised_objective_counts_higher_neighbours_as_worse() -> None:
    x = np.linspace(0.0, 1.0, 21)
    y = (x - 0.5) ** 2  # the pick at 0.5 is the best (lowest) point
    predict = gp_predictor(fit_gp(x[:, None], y, np.full(len(x), 1e-8)))
    space = np.linspace(0.0, 1.0, 101)[:, None]
    low = plateau_score(predict, np.array([0.5]), [0], space, maximize=False)
    high = plateau_score(predict, np.array([0.5]), [0], space, maximize=True)
    # minimised: neighbours are at most 0.01 higher of a 0.25 spread; maximised: 0.5 is the worst point
    assert low.score == pytest.approx(0.04, abs=0.01)
    assert high.score == pytest.approx(0.0, abs=1e-3)


# ----------------------------------------------------------------- cost stress


def test_cost_stress_hurts_a_strategy_that_trades_every_bar_more_than_a_rare_trader() -> None:
    close = _close()
    busy = np.where(np.arange(len(close)) % 2 == 0, 1.0, -1.0)  # reverses every bar
    calm = np.where(np.arange(len(close)) < len(close) // 2, 1.0, -1.0)  # one reversal
    costs = {"fee_bps": 1.0, "slippage_bps": 1.5}
    stress = cost_stress(
        close,
        [("busy", 0, busy), ("calm", 1, calm)],
        fee_bps=1.0,
        slippage_bps=1.5,
        periods_per_year=PPY,
        allow_short=True,
    )
    wide = stress.wide().set_index("row")
    assert list(wide.index) == ["busy", "calm", "buy and hold", "short and hold"]
    lost = wide["return_pct@1"] - wide["return_pct@5"]
    assert lost["busy"] > 0 and lost["calm"] > 0
    assert lost["busy"] > 50 * lost["calm"]
    assert wide.loc["busy", "sharpe@1"] > wide.loc["busy", "sharpe@2"] > wide.loc["busy", "sharpe@5"]
    # 1x is the backtest's own figure, exactly: the same cost model, the same positions
    for name, pos in (("busy", busy), ("calm", calm), ("buy and hold", np.ones(len(close)))):
        bt = run_backtest(close, pos, periods_per_year=PPY, **costs)
        assert wide.loc[name, "return_pct@1"] == bt.return_pct
        assert wide.loc[name, "sharpe@1"] == bt.sharpe
        assert wide.loc[name, "max_drawdown_pct@1"] == bt.max_drawdown_pct
    # 5x is the same cost model with both costs multiplied
    five = run_backtest(close, busy, periods_per_year=PPY, fee_bps=5.0, slippage_bps=7.5)
    assert wide.loc["busy", "return_pct@5"] == pytest.approx(five.return_pct, rel=1e-12)
    # no shorts allowed: no short-and-hold; a trial without positions is listed, not guessed
    longs = cost_stress(
        close,
        [("busy", 0, busy), ("old", 7, None)],
        fee_bps=1.0,
        slippage_bps=1.5,
        periods_per_year=PPY,
        allow_short=False,
    )
    assert list(longs.wide()["row"]) == ["busy", "buy and hold"] and longs.missing == [7]


def test_the_1x_figures_equal_the_stored_returns_figures(tmp_path: Path) -> None:
    close = _close(400, seed=3)
    pos = np.random.default_rng(4).choice([-1.0, 0.0, 1.0], len(close))
    store = StudyStore(tmp_path)
    store.write_array(0, "positions", pos)
    store.write_array(0, "returns", net_returns(close, pos, fee_bps=2.0, slippage_bps=1.0))
    stored = store.read_array(0, "positions")
    assert stored is not None and np.array_equal(stored, pos)  # {-1, 0, 1} survive float32 exactly
    figures = stressed_figures(close, stored, fee_bps=2.0, slippage_bps=1.0, periods_per_year=PPY)
    returns = store.read_array(0, "returns")
    assert returns is not None
    assert figures[1.0] == pytest.approx(equity_stats(returns.astype(np.float64), PPY), rel=1e-5)


# ----------------------------------------------------------------- Monte Carlo


def test_monte_carlo_of_iid_returns_against_the_sample_sharpe() -> None:
    rng = np.random.default_rng(8)
    n = 2000
    r = rng.normal(0.0005, 0.01, n)
    b = rng.normal(0.0, 0.01, n)
    mc = monte_carlo(r, b, 252.0, resamples=1000, seed=3)
    sample = equity_stats(r, 252.0)[1]
    assert mc.observed["pick"]["sharpe"] == sample
    se = np.sqrt(252.0 / n)  # the i.i.d. standard error of an annualised Sharpe ratio (Lo, 2002)
    p5, p50, p95 = mc.percentiles["pick"]["sharpe"]
    assert abs(p50 - sample) < 0.1  # ~0.3 standard errors
    assert (p95 - p5) == pytest.approx(2 * 1.645 * se, rel=0.2)
    for series in ("pick", "buy_and_hold"):
        for low, mid, high in mc.percentiles[series].values():
            assert low < mid < high
    assert MC_PERCENTILES == (5.0, 50.0, 95.0) and mc.resamples == 1000
    assert monte_carlo(r, b, 252.0, resamples=1000, seed=3) == mc  # seeded: reproduced
    assert monte_carlo(r, b, 252.0, resamples=1000, seed=4).percentiles != mc.percentiles


def test_the_monte_carlo_resamples_both_series_with_the_same_bars() -> None:
    r = np.random.default_rng(1).normal(0.0002, 0.01, 500)
    mc = monte_carlo(r, r.copy(), 252.0, resamples=200, seed=0)
    assert mc.percentiles["pick"] == mc.percentiles["buy_and_hold"]  # paired: identical draws
    assert mc.sharpe_beats == 0.0


# ----------------------------------------------------------------- a study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The made trading study (6 walk-forward trials on real prepared bars), every trial's positions
    stored with its returns and figures (from the backtest), and its report written."""
    from objectives import PreparedData

    directory = tmp_path_factory.mktemp("robust") / "study"
    trading_study(directory, tmp_path_factory.mktemp("bars"))
    res = StudyResults.load(directory)
    store = res.store
    data = PreparedData.load(store.data_dir)
    close = np.asarray(data.close[data.splits.bars("val")])
    costs = {"fee_bps": res.spec.backtest.fee_bps, "slippage_bps": res.spec.backtest.slippage_bps}
    rng = np.random.default_rng(11)
    for rec in res.records:
        pos = rng.choice([-1.0, 0.0, 1.0], size=len(close), p=[0.3, 0.4, 0.3])
        raw = store.read_result(rec.index)
        assert raw is not None
        raw["metrics"] = run_backtest(close, pos, periods_per_year=data.periods_per_year, **costs).to_dict()
        store.write_array(rec.index, "positions", pos)
        store.write_array(rec.index, "returns", net_returns(close, pos, **costs))
        store.write_result(rec.index, raw)
    write_report(directory)
    return directory


def test_the_report_shows_the_robustness_of_the_pick(study: Path) -> None:
    res = StudyResults.load(study)
    pick = res.pick("knee")
    md = (study / "report.md").read_text()
    assert f"## Robustness: trial {pick.index} (the knee, the configuration best writes) and the front" in md
    part = md.split("## Robustness")[1].split("\n## ")[0]
    assert "How to read this" in part and "no retraining" in part
    row = next(line for line in part.splitlines() if line.startswith("| front, the knee (pick)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == str(pick.index)
    # the 1x figures are the trial's own validation figures
    assert cells[2] == fmt_number(pick.metrics["return_pct"])
    assert cells[5] == fmt_number(pick.metrics["sharpe"])
    assert cells[8] == fmt_number(pick.metrics["max_drawdown_pct"])
    assert sum(line.startswith("| front") for line in part.splitlines()) == len(res.front)
    assert "| buy and hold" in part and "| short and hold" in part and "No positions stored" not in part
    mc = next(line for line in part.splitlines() if line.startswith("| pick ") and "| Sharpe" in line)
    assert [c.strip() for c in mc.strip("|").split("|")][2] == fmt_number(pick.metrics["sharpe"])
    plateau = [line for line in part.splitlines() if line.endswith(("| plateau |", "| ⚠ spike |"))]
    assert len(plateau) == 3
    body = (study / "report.html").read_text()
    assert "<h2>Robustness: trial" in body and "Stability: GP posterior mean" in body


def test_the_front_is_stressed_from_stored_positions_exactly(study: Path, tmp_path: Path) -> None:
    res = StudyResults.load(study)
    rob = study_robustness(res)
    assert rob.costs is not None and rob.costs.missing == []
    wide = rob.costs.wide().set_index("trial")
    for rec in res.front:
        for fig in ("return_pct", "sharpe", "max_drawdown_pct"):
            assert wide.loc[rec.index, f"{fig}@1"] == rec.metrics[fig]  # exact: the same cost model
    assert rob.stability is not None and rob.stability.n_trials == len(res.records)
    # an older study, without positions: listed, never guessed
    copy = Path(shutil.copytree(study, tmp_path / "old"))
    (copy / "trials" / str(rob.pick) / "positions.npy").unlink()
    old = study_robustness(StudyResults.load(copy))
    assert old.costs is not None and old.costs.missing == [rob.pick]
    assert rob.pick not in set(old.costs.frame["trial"])


def test_too_few_trials_fit_no_gp(study: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(study, tmp_path / "few"))
    res = StudyResults.load(copy)
    keep = {res.pick("knee").index, *[r.index for r in res.records][:3]}
    for rec in res.records:
        if rec.index not in keep:
            shutil.rmtree(copy / "trials" / str(rec.index))
    rob = study_robustness(StudyResults.load(copy))
    assert rob.stability is None and rob.stability_note.startswith("too few trials")


# ----------------------------------------------------------------- a trial stores its positions


class _Quiet:
    def report(self, trial_index: int, report: Mapping[str, float]) -> None:
        return None

    def should_stop(self, trial_index: int) -> bool:
        return False


@pytest.mark.parametrize("scheme", ["walk_forward", "holdout"])
def test_a_completed_trial_writes_positions_beside_its_returns(
    study: Path, tmp_path: Path, scheme: str
) -> None:
    from engine.study.trial import TrialJob, execute

    if scheme == "holdout":
        study = tmp_path / "holdout"
        trading_study(study, tmp_path, n_trials=1, validation={"scheme": "holdout"})
    res = StudyResults.load(study)
    assert res.spec.data.validation.scheme == scheme
    job = TrialJob(
        0, res.records[0].params, seed=1, objective=res.evaluator, data_dir=str(res.store.data_dir)
    )
    outcome = execute(job, _Quiet())
    assert outcome.status == "completed", outcome.reason
    store = StudyStore(tmp_path / "recorded")
    for name, array in outcome.arrays.items():  # as the driver records a finished trial
        store.write_array(0, name, array)
    positions, returns = store.read_array(0, "positions"), store.read_array(0, "returns")
    close = res.store.oos_close()
    assert positions is not None and returns is not None and close is not None
    assert len(positions) == len(returns) == len(close)
    bt = res.spec.backtest
    ppy = float(res.meta.facts["periods_per_year"])
    figures = stressed_figures(
        close,
        positions,
        fee_bps=bt.fee_bps,
        slippage_bps=bt.slippage_bps,
        periods_per_year=ppy,
        multiples=(1.0,),
    )
    # the stored positions give the trial's own figures again, exactly
    metrics = outcome.metrics
    assert figures[1.0] == (metrics["return_pct"], metrics["sharpe"], metrics["max_drawdown_pct"])
