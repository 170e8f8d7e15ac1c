"""engine.analysis.selection: worked examples from the formulas, and behaviour on planted data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.bootstrap import SPA
from scipy import integrate, stats

from engine.analysis import selection as sel
from engine.analysis.selection import (
    EULER_GAMMA,
    deflated_sharpe,
    expected_max_normal,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe,
    sharpe_ratio,
    sharpe_standard_error,
    spa_test,
)

PHI_INV = stats.norm.ppf
PHI = stats.norm.cdf


# ----------------------------------------------------------- Sharpe basics


def test_sharpe_ratio_uses_population_std_and_zero_for_flat() -> None:
    # mean 2, population std sqrt(((1-2)^2 + (3-2)^2) / 2) = 1  ->  2.0 (ddof=1 would give sqrt(2))
    assert sharpe_ratio(np.array([1.0, 3.0])) == pytest.approx(2.0)
    assert sharpe_ratio(np.full(10, 0.01)) == 0.0
    with pytest.raises(ValueError, match="1-D"):
        sharpe_ratio(np.ones((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        sharpe_ratio(np.array([1.0, np.nan]))


def test_sharpe_standard_error_worked_examples() -> None:
    # sqrt(P/n) * sqrt(1 + SR^2/2):  sqrt(6240/924) = sqrt(6.7532) = 2.5987
    assert sharpe_standard_error(924, 6240) == pytest.approx(2.5987, abs=1e-4)
    assert sharpe_standard_error(924, 6240) == pytest.approx(2.6, abs=0.01)
    # sqrt(252/750) = sqrt(0.336) = 0.57966
    assert sharpe_standard_error(750, 252) == pytest.approx(0.57966, abs=1e-5)
    # per-period SR 0.2: factor sqrt(1 + 0.04/2) = sqrt(1.02)
    assert sharpe_standard_error(750, 252, sharpe=0.2) == pytest.approx(math.sqrt(0.336 * 1.02))
    with pytest.raises(ValueError, match="n_obs"):
        sharpe_standard_error(0, 252)
    with pytest.raises(ValueError, match="periods_per_year"):
        sharpe_standard_error(10, 0.0)


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_expected_max_normal_matches_formula_and_exact_expectation(n: int) -> None:
    formula = (1 - 0.5772156649) * PHI_INV(1 - 1 / n) + 0.5772156649 * PHI_INV(1 - 1 / (n * math.e))
    assert expected_max_normal(n) == pytest.approx(formula, rel=1e-12)
    # the approximation is close to the exact E[max of n N(0,1)] = ∫ x n φ(x) Φ(x)^(n-1) dx
    exact, _ = integrate.quad(lambda x: x * n * stats.norm.pdf(x) * PHI(x) ** (n - 1), -10, 10, limit=200)
    assert expected_max_normal(n) == pytest.approx(exact, abs=0.05)


def test_expected_max_normal_hand_values_and_small_n() -> None:
    # N = 10: Φ⁻¹(0.9) = 1.28155, Φ⁻¹(1 - 1/(10e)) = Φ⁻¹(0.963212) = 1.78965
    # (1 - 0.57722) * 1.28155 + 0.57722 * 1.78965 = 0.54182 + 1.03302 = 1.57484
    assert expected_max_normal(10) == pytest.approx(1.5748, abs=1e-3)
    assert expected_max_normal(1) == 0.0
    assert expected_max_normal(0) == 0.0
    assert EULER_GAMMA == 0.5772156649


def test_expected_max_sharpe_scales_by_the_trial_std() -> None:
    assert expected_max_sharpe(100, 0.04) == pytest.approx(0.2 * expected_max_normal(100))
    assert expected_max_sharpe(1, 0.04) == 0.0
    with pytest.raises(ValueError, match="sharpe_variance"):
        expected_max_sharpe(10, -1.0)


# ------------------------------------------------------------- PSR / DSR


def test_probabilistic_sharpe_small_explicit_cases() -> None:
    # normal returns: (0.1 - 0.05) * sqrt(100) / sqrt(1 - 0 + (3-1)/4 * 0.01) = 0.5 / sqrt(1.005) = 0.498755
    assert probabilistic_sharpe(0.1, 0.05, 101) == pytest.approx(PHI(0.5 / math.sqrt(1.005)), rel=1e-12)
    assert probabilistic_sharpe(0.1, 0.05, 101) == pytest.approx(0.69103, abs=1e-5)
    # skew -1, kurtosis 6: variance term 1 + 0.1 + 5/4 * 0.01 = 1.1125
    assert probabilistic_sharpe(0.1, 0.05, 101, skew=-1.0, kurtosis=6.0) == pytest.approx(
        PHI(0.5 / math.sqrt(1.1125)), rel=1e-12
    )
    # SR̂ = SR₀ -> 0.5 whatever the moments
    assert probabilistic_sharpe(0.2, 0.2, 50, skew=-2.0, kurtosis=9.0) == pytest.approx(0.5)


def test_probabilistic_sharpe_guards_a_non_positive_variance_term() -> None:
    # skew 3, kurtosis 3, SR 1: 1 - 3 + 0.5 = -1.5 <= 0 (impossible moments) -> by the numerator's sign
    assert probabilistic_sharpe(1.0, 0.5, 100, skew=3.0, kurtosis=3.0) == 1.0
    assert probabilistic_sharpe(1.0, 1.5, 100, skew=3.0, kurtosis=3.0) == 0.0
    assert probabilistic_sharpe(1.0, 1.0, 100, skew=3.0, kurtosis=3.0) == 0.5
    with pytest.raises(ValueError, match="n_obs"):
        probabilistic_sharpe(0.1, 0.0, 1)


def test_bailey_lopez_de_prado_2014_numerical_example() -> None:
    # The DSR paper's example as recalled (NOT confirmed against the paper's text: no copy of that
    # section was available here): N = 100 trials, variance of the trials' annualised Sharpe ratios
    # 1/2, 250 observations a year, 5 years (T = 1250), best annualised SR 2.5, skewness -3,
    # kurtosis 10. The recalled results, SR₀ = 0.1132 per period (1.7894 annualised) and
    # DSR = 0.9004, are what the formulas give to 4 digits:
    #   E[max] = 0.42278 * Φ⁻¹(0.99) + 0.57722 * Φ⁻¹(1 - 1/(100e)) = 0.42278*2.32635 + 0.57722*2.68127
    #          = 2.53060;   SR₀ = sqrt(0.5/250) * 2.53060 = 0.044721 * 2.53060 = 0.113172
    #   SR̂ = 2.5/sqrt(250) = 0.158114;   z = (0.158114 - 0.113172) * sqrt(1249)
    #        / sqrt(1 + 3*0.158114 + 9/4*0.025) = 1.58830 / 1.23717 = 1.28382;   Φ(z) = 0.90040
    periods = 250
    sr0 = expected_max_sharpe(100, 0.5 / periods)
    assert sr0 == pytest.approx(0.113172, abs=1e-6)
    assert sr0 * math.sqrt(periods) == pytest.approx(1.7894, abs=1e-4)
    dsr = probabilistic_sharpe(2.5 / math.sqrt(periods), sr0, 5 * periods, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_deflated_sharpe_small_explicit_case() -> None:
    r = np.array([0.02, -0.01, 0.03, 0.00, 0.01, -0.02, 0.04, 0.01])
    trial_sharpes = np.array([0.10, 0.30, -0.20, 0.05])
    res = deflated_sharpe(r, trial_sharpes, periods_per_year=252)
    # by hand with plain numpy moments (population: divide by T)
    mean, dev = r.mean(), r - r.mean()  # mean = 0.08/8 = 0.01
    m2, m3, m4 = (dev**2).mean(), (dev**3).mean(), (dev**4).mean()
    sr, skew, kurt = mean / math.sqrt(m2), m3 / m2**1.5, m4 / m2**2
    v = np.var(
        trial_sharpes, ddof=1
    )  # mean 0.0625; squared deviations 0.0375², 0.2375², 0.2625², 0.0125² sum to 0.126875; / 3
    assert v == pytest.approx(0.126875 / 3)
    sr0 = math.sqrt(v) * (
        (1 - 0.5772156649) * PHI_INV(1 - 1 / 4) + 0.5772156649 * PHI_INV(1 - 1 / (4 * math.e))
    )
    z = (sr - sr0) * math.sqrt(8 - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert res.sharpe == pytest.approx(sr)
    assert res.skew == pytest.approx(skew)
    assert res.kurtosis == pytest.approx(kurt)
    assert res.trial_sharpe_variance == pytest.approx(v)
    assert res.benchmark == pytest.approx(sr0)
    assert res.dsr == pytest.approx(PHI(z))
    assert res.sharpe_annual == pytest.approx(sr * math.sqrt(252))
    assert res.benchmark_annual == pytest.approx(sr0 * math.sqrt(252))
    assert (res.n_trials, res.n_obs, res.periods_per_year) == (4, 8, 252.0)
    d = res.to_dict()
    assert type(d["n_trials"]) is int and type(d["n_obs"]) is int and type(d["dsr"]) is float
    assert set(d) == {
        "dsr", "sharpe", "sharpe_annual", "benchmark", "benchmark_annual", "n_trials",
        "trial_sharpe_variance", "skew", "kurtosis", "n_obs", "periods_per_year",
    }  # fmt: skip


def test_deflated_sharpe_single_trial_and_validation() -> None:
    r = np.random.default_rng(3).normal(0.05, 1.0, 400)
    one = deflated_sharpe(r, np.array([sharpe_ratio(r)]), periods_per_year=252)
    # one trial: V = 0 and SR₀ = 0, so the DSR is the PSR against zero
    assert one.trial_sharpe_variance == 0.0 and one.benchmark == 0.0
    assert one.dsr == pytest.approx(probabilistic_sharpe(one.sharpe, 0.0, 400, one.skew, one.kurtosis))
    flat = deflated_sharpe(np.zeros(50), np.array([0.0, 0.1]), periods_per_year=252)
    assert (flat.sharpe, flat.skew, flat.kurtosis) == (0.0, 0.0, 3.0)
    with pytest.raises(ValueError, match="periods_per_year"):
        deflated_sharpe(r, np.array([0.1]), periods_per_year=0)
    with pytest.raises(ValueError, match="n_trials"):
        deflated_sharpe(r, np.array([0.1]), periods_per_year=252, n_trials=0)
    with pytest.raises(ValueError, match="returns"):
        deflated_sharpe(np.array([0.1]), np.array([0.1]), periods_per_year=252)


def test_deflated_sharpe_falls_with_more_trials() -> None:
    rng = np.random.default_rng(11)
    r = rng.normal(0.08, 1.0, 750)
    trials = rng.normal(0.0, 0.04, 30)
    dsr = [deflated_sharpe(r, trials, periods_per_year=252, n_trials=n).dsr for n in (2, 10, 100, 1000)]
    assert dsr[0] > dsr[1] > dsr[2] > dsr[3]


def test_deflated_sharpe_planted_edge_with_few_trials_is_significant() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0, 1.0, (1000, 5))
    returns[:, 2] += 0.2  # per-period Sharpe about 0.2 (annualised ~3.2 at 252)
    sharpes = np.array([sharpe_ratio(returns[:, j]) for j in range(5)])
    best = int(np.argmax(sharpes))
    assert best == 2
    res = deflated_sharpe(returns[:, best], sharpes, periods_per_year=252)
    assert res.dsr > 0.95


def test_deflated_sharpe_best_of_pure_noise_is_not_significant() -> None:
    rng = np.random.default_rng(7)
    returns = rng.normal(0.0, 1.0, (500, 200))
    sharpes = returns.mean(axis=0) / returns.std(axis=0)
    best = int(np.argmax(sharpes))
    res = deflated_sharpe(returns[:, best], sharpes, periods_per_year=252)
    # the naive test against zero is fooled by the selection; the deflated one is not
    assert probabilistic_sharpe(res.sharpe, 0.0, 500, res.skew, res.kurtosis) > 0.95
    assert res.dsr < 0.95


# ------------------------------------------------------------------- PBO


def _pair(sharpe: float) -> list[float]:
    """Two returns with mean `sharpe` and population std 1: their Sharpe ratio is `sharpe`."""
    return [sharpe - 1.0, sharpe + 1.0]


def test_pbo_tiny_case_by_hand() -> None:
    # T = 5, S = 2 blocks of 2 rows: the first (oldest) row is dropped. Trials A, B, C, D (N = 4).
    # Block 0 (rows 1-2) Sharpe ratios: A 3, B 2, C 1, D 0.  Block 1 (rows 3-4): A -1, B 4, C 1, D 2.
    # C(2, 1) = 2 combinations:
    #   J = {0}: n* = A (3); on block 1 A is lowest, rank 1 -> ω = 1/5, λ = ln(1/4) < 0 (overfit).
    #   J = {1}: n* = B (4); on block 0 B ranks 3 of 4 -> ω = 3/5, λ = ln(3/2) > 0.
    # PBO = 1/2. n*'s (IS, OOS) Sharpe: (3, -1), (4, 2) -> OLS slope 3, one OOS loss in two.
    cols = [_pair(3) + _pair(-1), _pair(2) + _pair(4), _pair(1) + _pair(1), _pair(0) + _pair(2)]
    dropped = np.array([[100.0, -100.0, 50.0, -50.0]])  # would change every Sharpe ratio if used
    returns = np.vstack([dropped, np.array(cols).T])
    res = pbo_cscv(returns, n_blocks=2)
    assert res.pbo == 0.5
    assert res.n_combinations == 2
    assert (res.n_blocks, res.n_trials, res.n_obs) == (2, 4, 4)
    np.testing.assert_allclose(res.logits, [math.log(1 / 4), math.log(3 / 2)])
    assert res.degradation_slope == pytest.approx(3.0)
    assert res.prob_oos_loss == 0.5
    d = res.to_dict()
    assert "logits" not in d and type(d["n_combinations"]) is int and type(d["pbo"]) is float


def test_pbo_ties_pick_the_lowest_index_and_average_ranks() -> None:
    # Two identical trials: n* is column 0 in every combination; on J̄ the two tie, average rank 1.5,
    # ω = 1.5/3 = 1/2, λ = 0, which counts as overfit (λ <= 0): PBO = 1. S = 4 -> C(4, 2) = 6.
    col = np.array([0.5, -1.0, 2.0, 0.3, -0.7, 1.1, 0.2, -0.4])
    res = pbo_cscv(np.column_stack([col, col]), n_blocks=4)
    assert res.n_combinations == 6
    np.testing.assert_allclose(res.logits, 0.0, atol=1e-12)
    assert res.pbo == 1.0


def test_pbo_tie_rules_by_hand() -> None:
    # T = 4, S = 2, trials A, B, C. Block 0 Sharpe ratios: A 1, B 1, C 0.  Block 1: A 0, B 2, C 1.
    #   J = {0}: A and B tie in-sample -> n* = A (lowest index); on block 1 A ranks 1 -> ω = 1/4,
    #            λ = ln(1/3)  (picking B instead would give rank 3, λ = ln 3).
    #   J = {1}: n* = B; on block 0 A and B tie for ranks 2 and 3 -> average 2.5, ω = 2.5/4,
    #            λ = ln(0.625/0.375) = ln(5/3)  (max rank would give ln 3, min rank 0).
    cols = [_pair(1) + _pair(0), _pair(1) + _pair(2), _pair(0) + _pair(1)]
    res = pbo_cscv(np.array(cols).T, n_blocks=2)
    np.testing.assert_allclose(res.logits, [math.log(1 / 3), math.log(5 / 3)])
    assert res.pbo == 0.5


def test_pbo_matches_a_direct_computation() -> None:
    # every combination recomputed from the raw rows (sharpe_ratio per trial) agrees with the sums
    # route; the trials have means far from zero and one is a constant 0.3 (Sharpe 0 everywhere),
    # which a naive sq/n - mean² would turn into a huge Sharpe ratio through rounding
    from itertools import combinations

    rng = np.random.default_rng(2)
    x = np.column_stack([rng.normal(3.0, 1.0, (801, 4)), np.full(801, 0.3)])
    res = pbo_cscv(x, n_blocks=4)
    blocks = x[1:].reshape(4, 200, 5)
    expected = []
    for j in combinations(range(4), 2):
        rest = [b for b in range(4) if b not in j]
        ins, oos = blocks[list(j)].reshape(-1, 5), blocks[rest].reshape(-1, 5)
        n_star = int(np.argmax([sharpe_ratio(ins[:, k]) for k in range(5)]))
        omega = stats.rankdata([sharpe_ratio(oos[:, k]) for k in range(5)])[n_star] / 6
        expected.append(math.log(omega / (1 - omega)))
    np.testing.assert_allclose(res.logits, expected)


def test_pbo_pure_noise_is_about_one_half() -> None:
    noise = np.random.default_rng(0).normal(size=(1600, 20))
    res = pbo_cscv(noise)
    assert res.n_combinations == 12870
    assert 0.3 <= res.pbo <= 0.75
    # one matrix is a noisy draw (its combinations share data); the mean over ten is closer to 1/2
    mean_pbo = np.mean([pbo_cscv(np.random.default_rng(s).normal(size=(1600, 20))).pbo for s in range(10)])
    assert 0.35 <= mean_pbo <= 0.7


def test_pbo_persistent_edge_is_not_overfit() -> None:
    x = np.random.default_rng(1).normal(size=(1600, 20))
    x[:, 7] += 0.2  # mean 0.2 std per period, in every block
    res = pbo_cscv(x)
    assert res.pbo < 0.1
    assert res.prob_oos_loss < 0.1


def test_pbo_is_fast_for_sixteen_blocks_and_fifty_trials() -> None:
    import time

    x = np.random.default_rng(4).normal(size=(2000, 50))
    start = time.perf_counter()
    res = pbo_cscv(x, n_blocks=16)
    assert time.perf_counter() - start < 1.5  # well under a second on an idle core
    assert res.n_combinations == 12870


def test_pbo_rejects_bad_inputs() -> None:
    x = np.random.default_rng(0).normal(size=(64, 3))
    with pytest.raises(ValueError, match="N >= 2"):
        pbo_cscv(x[:, :1])
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(x, n_blocks=5)
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(x, n_blocks=0)
    with pytest.raises(ValueError, match="2 rows per block"):
        pbo_cscv(x[:31], n_blocks=16)


# ------------------------------------------------------------------- SPA


def test_spa_detects_a_dominant_model() -> None:
    rng = np.random.default_rng(10)
    bench = rng.normal(0.0, 1.0, 1000)
    models = np.column_stack(
        [bench + 0.15 + rng.normal(0.0, 0.5, 1000), bench + rng.normal(0.0, 1.0, 1000), rng.normal(size=1000)]
    )
    res = spa_test(bench, models, reps=500, seed=1)
    assert res.pvalue < 0.05
    assert res.pvalue_lower <= res.pvalue <= res.pvalue_upper
    assert (res.n_models, res.n_obs, res.reps, res.seed) == (3, 1000, 500, 1)


def test_spa_no_model_beats_the_benchmark() -> None:
    rng = np.random.default_rng(12)
    bench = rng.normal(0.05, 1.0, 1000)
    models = rng.normal(-0.05, 1.0, (1000, 5))  # pure noise around a lower mean
    res = spa_test(bench, models, reps=500, seed=2)
    assert res.pvalue > 0.2


def test_spa_is_reproducible_by_seed() -> None:
    rng = np.random.default_rng(13)
    bench = rng.normal(size=600)
    models = bench[:, None] + rng.normal(0.02, 1.0, (600, 4))
    a = spa_test(bench, models, reps=300, seed=7)
    b = spa_test(bench, models, reps=300, seed=7)
    assert a == b
    assert a.to_dict() == b.to_dict() and type(a.to_dict()["pvalue"]) is float


def test_spa_against_a_flat_benchmark_and_one_model() -> None:
    rng = np.random.default_rng(14)
    flat = np.zeros(1000)
    edge = rng.normal(0.2, 1.0, 1000)
    as_vector = spa_test(flat, edge, reps=400, seed=0)
    as_column = spa_test(flat, edge[:, None], reps=400, seed=0)
    assert as_vector == as_column
    assert as_vector.n_models == 1 and as_vector.pvalue < 0.05
    assert spa_test(flat, rng.normal(-0.1, 1.0, 1000), reps=400, seed=0).pvalue > 0.2


def test_spa_is_studentized() -> None:
    # A small, steady edge next to a very noisy zero-mean model. Studentized, the edge (t ≈ 6)
    # decides the test; raw mean differentials would let the noisy model's bootstrap spread swamp it.
    rng = np.random.default_rng(1)
    bench = rng.normal(0.0, 1.0, 500)
    models = np.column_stack(
        [bench + rng.normal(0.15, 0.5, 500), bench + rng.normal(0.0, 5.0, 500), bench - 0.1]
    )
    assert spa_test(bench, models, block_size=2, reps=500, seed=3).pvalue < 0.01


def test_long_run_variance_is_arch_spa_estimate() -> None:
    # The studentizing scale is the variance estimate arch's SPA computes for its recentring rule
    # (a private attribute; if arch renames it, update this check rather than the module).
    rng = np.random.default_rng(6)
    bench = rng.normal(size=300)
    models = np.column_stack([bench + rng.normal(0.05, 0.5, 300), np.cumsum(rng.normal(size=300)) * 0.1])
    spa = SPA(-bench, -models, block_size=7, reps=10, seed=0)
    spa.compute()
    np.testing.assert_allclose(sel._long_run_variance(models - bench[:, None], 7), spa._loss_diff_var)


def test_spa_block_size_default_and_validation() -> None:
    rng = np.random.default_rng(15)
    bench = rng.normal(size=400)
    models = bench[:, None] + rng.normal(size=(400, 3))
    iid = spa_test(bench, models, reps=50, seed=0)
    assert 1 <= iid.block_size <= 5  # serially independent differentials: short blocks
    ar = np.zeros(400)
    for t in range(1, 400):  # strongly autocorrelated differential: longer blocks
        ar[t] = 0.9 * ar[t - 1] + rng.normal()
    assert spa_test(bench, (bench + ar)[:, None], reps=50, seed=0).block_size > iid.block_size
    assert spa_test(bench, models, block_size=9, reps=50, seed=0).block_size == 9
    with pytest.raises(ValueError, match="rows"):
        spa_test(bench, models[:-1], reps=50)
    with pytest.raises(ValueError, match="block_size"):
        spa_test(bench, models, block_size=0, reps=50)
    with pytest.raises(ValueError, match="reps"):
        spa_test(bench, models, reps=0)


def test_spa_flat_differentials_and_short_series() -> None:
    bench = np.random.default_rng(16).normal(size=100)
    same = spa_test(bench, np.column_stack([bench, bench]), reps=50)  # identical to the benchmark
    assert (same.pvalue, same.pvalue_lower, same.pvalue_upper) == (1.0, 1.0, 1.0)
    assert spa_test(bench, bench + 0.01, reps=50).pvalue == 0.0  # a constant, riskless edge
    with pytest.raises(ValueError, match="at least 20"):
        spa_test(bench[:19], bench[:19, None], reps=50)
