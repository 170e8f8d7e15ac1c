"""Skill, not beta: the beta hedge against a worked example, the skill test both ways, StepM, and the
verdict on constructed return matrices (each case planted, each able to fail)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.analysis.selection import spa_test
from engine.analysis.skill import beats_benchmark, beta_hedge, skill_test
from engine.analysis.verdict import fold_consistency, verdict_from_returns

T = 2000  # about eight years of daily bars
PPY = 252.0


def test_beta_hedge_against_a_hand_worked_example() -> None:
    m = np.array([0.01, -0.02, 0.03, 0.0, -0.01])
    r = np.column_stack([2.0 * m + 0.001, -m, np.array([0.002, 0.001, -0.001, 0.0, 0.003])])
    h = beta_hedge(r, m)
    # column 0: beta 2 exactly, alpha 0.001 a bar; column 1 (a constant short): beta -1, alpha 0
    np.testing.assert_allclose(h.beta[:2], [2.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(h.alpha[:2], [0.001, 0.0], atol=1e-15)
    np.testing.assert_allclose(h.returns[:, 1], 0.0, atol=1e-15)
    # column 2 by hand: beta = cov(r, m) / var(m) with the means removed
    dm = m - m.mean()
    beta = float(dm @ (r[:, 2] - r[:, 2].mean()) / (dm @ dm))
    assert h.beta[2] == pytest.approx(beta, rel=1e-12)
    assert h.alpha[2] == pytest.approx(r[:, 2].mean() - beta * m.mean(), rel=1e-12)
    flat = beta_hedge(r, np.zeros(5))  # an instrument that does not move: nothing to hedge
    np.testing.assert_array_equal(flat.beta, 0.0)
    np.testing.assert_array_equal(flat.returns, r)


def _ar1(phi: float, seed: int, drift: float = 0.0, sigma: float = 0.01) -> np.ndarray:
    """T returns: ``drift`` plus an AR(1) with coefficient ``phi`` (a learnable momentum)."""
    e = np.random.default_rng(seed).normal(0.0, sigma, T)
    x = np.zeros(T)
    for t in range(1, T):
        x[t] = phi * x[t - 1] + e[t]
    return x + drift


def _momentum_trials(r: np.ndarray, n: int, seed: int, hit: float = 0.8) -> np.ndarray:
    """n trials that follow the sign of the last return with probability ``hit`` a bar, else oppose it."""
    rng = np.random.default_rng(seed)
    signal = np.sign(np.concatenate([[0.0], r[:-1]]))
    pos = np.where(rng.random((T, n)) < hit, signal[:, None], -signal[:, None])
    return pos * r[:, None] - 0.0001 * np.abs(np.diff(pos, axis=0, prepend=0.0))


def test_a_momentum_edge_in_a_rising_market_is_skill() -> None:
    r = _ar1(0.25, seed=1, drift=0.0008)
    trials = _momentum_trials(r, 20, seed=2)
    pick = int(np.argmax(trials.mean(axis=0)))
    s = skill_test(trials, r, pick, periods_per_year=PPY, reps=500, seed=0)
    assert s.pvalue_family < 0.05 and s.pvalue_pick < 0.05
    assert abs(s.beta) < 0.2 and s.alpha_sharpe > 1.5  # timing, not exposure
    v = verdict_from_returns(trials, r, pick, periods_per_year=PPY, seed=0)
    assert v.edge and v.sentence.startswith("Evidence of an edge")


def test_a_constant_short_in_a_falling_market_is_no_skill() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(-0.0008, 0.01, T)  # a falling market: about -18 % a year
    size = rng.uniform(0.6, 1.0, 20)
    trials = -np.outer(m, size) - 0.0001 * rng.random((T, 20))  # short, sized, no timing
    pick = int(np.argmax(trials.mean(axis=0) / trials.std(axis=0)))
    # the raw-return SPA the verdict used to decide on takes the short for an edge over both benchmarks
    assert spa_test(np.zeros(T), trials, reps=500, seed=0).pvalue < 0.05
    assert spa_test(m, trials, reps=500, seed=0).pvalue < 0.05
    s = skill_test(trials, m, pick, periods_per_year=PPY, reps=500, seed=0)
    assert s.pvalue_family > 0.5 and s.beta == pytest.approx(-size[pick], abs=0.01)
    v = verdict_from_returns(trials, m, pick, periods_per_year=PPY, seed=0)
    assert not v.edge and "beyond a fixed long, short or flat position" in v.sentence
    assert any("short market exposure" in c for c in v.caveats)


def test_a_timing_strategy_against_a_volatile_buy_and_hold_is_evidence() -> None:
    """Sharpe about 2 over 2,000 bars, nearly uncorrelated with holding a market 3x as volatile."""
    rng = np.random.default_rng(4)
    m = rng.normal(0.0004, 0.02, T)  # volatile, drifting up
    timing = rng.normal(0.00063, 0.0045, T)  # what the family's timing earns: Sharpe ~2.2 alone
    trials = timing[:, None] + rng.normal(0.0, 0.002, (T, 10))  # ten configurations of it
    sharpes = trials.mean(axis=0) / trials.std(axis=0) * math.sqrt(PPY)
    assert 1.6 < sharpes.max() < 2.6
    pick = int(np.argmax(sharpes))
    # mean-return differences against buy-and-hold carry its volatility: that test cannot see it
    assert spa_test(m, trials, reps=500, seed=0).pvalue > 0.05
    v = verdict_from_returns(trials, m, pick, periods_per_year=PPY, seed=0)
    assert v.edge, v.sentence
    assert v.skill_p_family < 0.01 and v.deflated_sharpe >= 0.95


def test_pure_noise_trials_are_no_evidence() -> None:
    rng = np.random.default_rng(5)
    m = rng.normal(0.0003, 0.01, T)
    pos = np.sign(rng.normal(size=(T, 30)))
    trials = pos * m[:, None]
    pick = int(np.argmax(trials.mean(axis=0) / trials.std(axis=0)))
    v = verdict_from_returns(trials, m, pick, periods_per_year=PPY, seed=0)
    assert not v.edge
    assert v.skill_p_family > 0.05 and v.deflated_sharpe < 0.95
    assert "indistinguishable from luck" in v.sentence


def test_the_verdict_needs_all_three_conditions_and_counts_the_ledger() -> None:
    rng = np.random.default_rng(6)
    m = rng.normal(0.0, 0.01, T)
    good = rng.normal(0.0009, 0.01, T)  # Sharpe ~1.4 annualised, no beta
    trials = np.column_stack([good, *(rng.normal(0.0, 0.01, T) for _ in range(4))])
    few = verdict_from_returns(trials, m, 0, periods_per_year=PPY, seed=0)
    many = verdict_from_returns(trials, m, 0, periods_per_year=PPY, seed=0, n_bars=400)
    # the same returns judged after 400 configurations were tried on these bars: SR0 rises
    assert (few.n_study, few.n_bars) == (5, 5) and (many.n_study, many.n_bars) == (5, 400)
    assert many.n_effective > few.n_effective
    assert many.members[0]["benchmark"] > few.members[0]["benchmark"]
    assert many.deflated_sharpe < few.deflated_sharpe
    assert few.skill_p_pick == many.skill_p_pick  # the skill test does not depend on the ledger
    # each condition alone decides "no evidence": a DSR below the bar here
    assert few.edge and not many.edge and "independent tries shows by luck" in many.sentence


def test_fold_consistency_by_hand() -> None:
    r = np.array([0.01, 0.02, -0.01, -0.01, 0.0, 0.0, 0.05, -0.01, 0.0])
    f = fold_consistency(r, [3, 3, 3], 252.0)
    assert f["folds"] == 3 and f["positive"] == 2 and f["best_fold"] == 2
    assert not f["carried_by_one"]  # blocks 0 and 1 still gain 0.01 without block 2
    assert f["sharpes"][1] == pytest.approx(-0.01 / 3 / np.std([-0.01, 0.0, 0.0]) * math.sqrt(252.0))
    g = fold_consistency(np.array([0.001, -0.002, -0.001, -0.001, 0.05, 0.0]), [2, 2, 2], 252.0)
    assert g["carried_by_one"] and g["positive"] == 1  # without block 2 the rest lose
    assert fold_consistency(r, [4, 4], 252.0) == {}  # sizes that do not cover the returns


def test_stepm_finds_the_better_candidate_only() -> None:
    rng = np.random.default_rng(7)
    bench = rng.normal(0.0002, 0.01, T)
    same = bench[:, None] + rng.normal(0.0, 0.004, (T, 6))  # as good as the benchmark
    better = bench + 0.0015 + rng.normal(0.0, 0.004, T)  # 15 bp a bar better
    res = beats_benchmark(bench, np.column_stack([same, better]), reps=500, seed=0)
    assert res.superior == (6,) and res.n_models == 7
    assert beats_benchmark(bench, same, reps=500, seed=0).superior == ()
    # a copy of the benchmark is never better; a copy plus a constant gain always is
    flat = beats_benchmark(bench, np.column_stack([bench, bench + 1e-4]), reps=200, seed=0)
    assert flat.superior == (1,)
