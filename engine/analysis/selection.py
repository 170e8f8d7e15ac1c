"""Selection statistics: is the best of many noisy backtests just luck?

A search scores many trials on the same history and keeps the best. The best
of N noisy scores is biased upwards even when no trial has an edge, so its
backtest figures need a correction for the selection. This module has three
complementary ones, all pure functions of per-period (per-bar) returns:

- **Deflated Sharpe ratio** (Bailey & López de Prado, 2014): the probability
  that the member's true Sharpe ratio exceeds SR₀, the Sharpe ratio the best
  of N skill-less trials is expected to reach. SR₀ = sqrt(V) · E[max of N
  standard normals], with V the variance of the trials' Sharpe ratios; the
  probability is the probabilistic Sharpe ratio (PSR), which corrects for the
  track length and the skewness and kurtosis of the member's returns.
- **Probability of backtest overfitting** (Bailey, Borwein, López de Prado &
  Zhu, 2017), by combinatorially symmetric cross-validation (CSCV): how often
  the trial that is best in-sample ranks in the lower half out-of-sample.
- **Hansen's (2005) test for superior predictive ability** (SPA), through
  ``arch.bootstrap.SPA``: a p-value for "no model beats the benchmark" that
  accounts for having looked at all k models.

Units and conventions:

- A Sharpe ratio is *per period* (mean / std of the per-bar returns, the
  population std, ddof=0; 0.0 when the std is at most 1e-15, as in the
  project's backtest) unless its name says ``annual``; an annualised figure is
  the per-period one times sqrt(periods_per_year).
- Skewness γ₃ and kurtosis γ₄ are the population (biased) moment ratios; the
  kurtosis is the non-excess one (3 for a normal distribution).
- Array shapes in the docstrings: ``T`` periods (rows, oldest first), ``N``
  trials or ``k`` models (columns).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import combinations, islice

import numpy as np
from scipy import stats

__all__ = [
    "EULER_GAMMA",
    "DeflatedSharpe",
    "PBOResult",
    "SPAResult",
    "deflated_sharpe",
    "expected_max_normal",
    "expected_max_sharpe",
    "pbo_cscv",
    "probabilistic_sharpe",
    "sharpe_ratio",
    "sharpe_standard_error",
    "spa_test",
]

EULER_GAMMA = 0.5772156649
"""The Euler–Mascheroni constant γ, to the precision the DSR papers use."""

_STD_FLOOR = 1e-15
_CSCV_CHUNK = 4096  # combinations evaluated at once: bounds memory for large S
_SPA_MIN_OBS = 20  # fewer periods than this: no dependence (block length) to speak of


# ---------------------------------------------------------------- validation


def _vector(x: np.ndarray, name: str, min_len: int = 1) -> np.ndarray:
    """`x` as a finite float64 vector of at least `min_len` elements."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size < min_len:
        raise ValueError(f"{name} must be a 1-D array of at least {min_len} values; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got {int((~np.isfinite(arr)).sum())} NaN/inf values")
    return arr


def _matrix(x: np.ndarray, name: str) -> np.ndarray:
    """`x` as a finite float64 T x N matrix (a vector becomes one column)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (T x N); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got {int((~np.isfinite(arr)).sum())} NaN/inf values")
    return arr


# ------------------------------------------------------------ Sharpe ratios


def sharpe_ratio(returns: np.ndarray) -> float:
    """Per-period Sharpe ratio of `returns`: T.

    mean / std with the population std (ddof=0); 0.0 when the std is at most
    1e-15 (a flat series), as in the project's backtest.
    """
    r = _vector(returns, "returns")
    std = float(r.std())
    return float(r.mean()) / std if std > _STD_FLOOR else 0.0


def sharpe_standard_error(n_obs: int, periods_per_year: float, sharpe: float = 0.0) -> float:
    """Standard error of an annualised Sharpe ratio estimated from `n_obs` i.i.d. bars (Lo, 2002).

    sqrt(P / n) · sqrt(1 + SR² / 2), with P = `periods_per_year` and SR the
    per-period Sharpe ratio `sharpe`; the result is in annual units. For
    example 924 bars at P = 6240 give about 2.6, 750 daily bars about 0.58.
    """
    if n_obs < 1:
        raise ValueError(f"n_obs must be >= 1; got {n_obs}")
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be > 0; got {periods_per_year}")
    return math.sqrt(periods_per_year / n_obs) * math.sqrt(1.0 + sharpe**2 / 2.0)


def expected_max_normal(n_trials: int) -> float:
    """Expected maximum of `n_trials` independent standard normals, approximately.

    (1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)), γ the Euler–Mascheroni
    constant: the approximation the deflated Sharpe ratio uses. 0.0 for N < 2
    (a single trial is not selected from anything).
    """
    if n_trials < 2:
        return 0.0
    n = float(n_trials)
    return float(
        (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n)
        + EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (n * math.e))
    )


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR₀ = sqrt(V) · expected_max_normal(N): the best Sharpe ratio N skill-less trials reach.

    `sharpe_variance` V is the variance of the trials' Sharpe ratios; SR₀ is
    in the same units as they are (per period when V is).
    """
    if not sharpe_variance >= 0:
        raise ValueError(f"sharpe_variance must be >= 0; got {sharpe_variance}")
    return math.sqrt(sharpe_variance) * expected_max_normal(n_trials)


def probabilistic_sharpe(
    sharpe: float, benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Probabilistic Sharpe ratio PSR(SR₀): the probability that the true Sharpe ratio exceeds `benchmark`.

    Φ((SR̂ − SR₀) · sqrt(T − 1) / sqrt(1 − γ₃ SR̂ + (γ₄ − 1)/4 · SR̂²)), with
    SR̂ = `sharpe` and SR₀ = `benchmark` per period, T = `n_obs`, γ₃ = `skew`
    and γ₄ = `kurtosis` (non-excess) of the returns. The variance term is
    positive for any real distribution (γ₄ >= 1 + γ₃²); for inconsistent
    moments that make it <= 0 the result is the limit by the numerator's
    sign: 1.0 when SR̂ > SR₀, 0.0 when SR̂ < SR₀, 0.5 when they are equal.
    """
    if n_obs < 2:
        raise ValueError(f"n_obs must be >= 2 for a probabilistic Sharpe ratio; got {n_obs}")
    numerator = (sharpe - benchmark) * math.sqrt(n_obs - 1)
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if variance <= 0.0:
        return 1.0 if numerator > 0 else (0.0 if numerator < 0 else 0.5)
    return float(stats.norm.cdf(numerator / math.sqrt(variance)))


# ------------------------------------------------------------------- DSR


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of a member and the figures it came from.

    `dsr` is a probability; `sharpe`, `benchmark` (SR₀) and
    `trial_sharpe_variance` are per period, the ``_annual`` fields are times
    sqrt(periods_per_year); `kurtosis` is non-excess.
    """

    dsr: float
    sharpe: float
    sharpe_annual: float
    benchmark: float
    benchmark_annual: float
    n_trials: int
    trial_sharpe_variance: float
    skew: float
    kurtosis: float
    n_obs: int
    periods_per_year: float

    def to_dict(self) -> dict[str, float | int]:
        """Plain floats and ints, for JSON."""
        return {k: (int(v) if k in ("n_trials", "n_obs") else float(v)) for k, v in asdict(self).items()}


def deflated_sharpe(
    returns: np.ndarray,
    trial_sharpes: np.ndarray,
    *,
    periods_per_year: float,
    n_trials: int | None = None,
    sharpe_variance: float | None = None,
) -> DeflatedSharpe:
    """Deflated Sharpe ratio (Bailey & López de Prado, 2014) of a member chosen from a search.

    `returns`: T per-period returns of the member. `trial_sharpes`: N
    per-period Sharpe ratios of all trials of the search, the member
    included; their variance V (ddof=1; 0 for a single trial) sets
    SR₀ = expected_max_sharpe(n_trials, V), and DSR = PSR(SR₀) with the
    member's own skewness and kurtosis. `n_trials` is the number of
    independent trials; it defaults to N, the usual stand-in, which
    overstates it when trials are correlated (then SR₀ is too high and the
    DSR conservative). `sharpe_variance` replaces V when given (e.g. the
    variance of independent clusters' Sharpe ratios, see
    :mod:`engine.analysis.ledger`). A flat member (std <= 1e-15) gets skew 0 and
    kurtosis 3.

    DSR is 1 − p of a one-sided test of "the true Sharpe ratio is at most
    SR₀" (asymptotic, non-normal returns allowed): DSR >= 0.95 rejects it at
    5 %. It is not a posterior probability that the true Sharpe ratio is higher.
    """
    r = _vector(returns, "returns", min_len=2)
    trials = _vector(trial_sharpes, "trial_sharpes")
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be > 0; got {periods_per_year}")
    n = len(trials) if n_trials is None else n_trials
    if n < 1:
        raise ValueError(f"n_trials must be >= 1; got {n}")
    sr = sharpe_ratio(r)
    if float(r.std()) > _STD_FLOOR:
        skew, kurt = float(stats.skew(r)), float(stats.kurtosis(r, fisher=True) + 3.0)
    else:
        skew, kurt = 0.0, 3.0
    if sharpe_variance is not None:
        if not sharpe_variance >= 0:
            raise ValueError(f"sharpe_variance must be >= 0; got {sharpe_variance}")
        variance = float(sharpe_variance)
    else:
        variance = float(trials.var(ddof=1)) if len(trials) >= 2 else 0.0
    sr0 = expected_max_sharpe(n, variance)
    annual = math.sqrt(periods_per_year)
    return DeflatedSharpe(
        dsr=probabilistic_sharpe(sr, sr0, len(r), skew, kurt),
        sharpe=sr,
        sharpe_annual=sr * annual,
        benchmark=sr0,
        benchmark_annual=sr0 * annual,
        n_trials=int(n),
        trial_sharpe_variance=variance,
        skew=skew,
        kurtosis=kurt,
        n_obs=len(r),
        periods_per_year=float(periods_per_year),
    )


# ------------------------------------------------------------------- PBO


@dataclass(frozen=True)
class PBOResult:
    """Probability of backtest overfitting by CSCV, with its by-products.

    `logits`: one λ = ln(ω̄ / (1 − ω̄)) per combination, in the order of
    ``itertools.combinations(range(n_blocks), n_blocks // 2)`` (left out of
    `to_dict`). `degradation_slope`: OLS slope of the out-of-sample Sharpe
    ratio of the in-sample best on its in-sample Sharpe ratio (NaN when the
    latter does not vary); `prob_oos_loss`: the fraction of combinations in
    which that out-of-sample Sharpe ratio is negative. `n_obs`: rows used.
    """

    pbo: float
    n_blocks: int
    n_combinations: int
    n_trials: int
    n_obs: int
    logits: np.ndarray = field(repr=False)
    degradation_slope: float
    prob_oos_loss: float

    def to_dict(self) -> dict[str, float | int]:
        """Plain floats and ints, for JSON (without the logits)."""
        ints = ("n_blocks", "n_combinations", "n_trials", "n_obs")
        return {k: (int(v) if k in ints else float(v)) for k, v in asdict(self).items() if k != "logits"}


def _cscv_chunk(
    combos: np.ndarray, sums: np.ndarray, sqs: np.ndarray, shift: np.ndarray, n_half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For C combinations (C x S/2 block indices): λ, and n*'s in- and out-of-sample Sharpe ratios."""
    n_comb, n_blocks = len(combos), len(sums)
    mask = np.zeros((n_comb, n_blocks))
    mask[np.arange(n_comb)[:, None], combos] = 1.0
    sharpes = []
    for weights in (mask, 1.0 - mask):  # J (in-sample), then J̄ (out-of-sample)
        mean_dev = (weights @ sums) / n_half  # C x N, mean of x − shift
        var = np.maximum((weights @ sqs) / n_half - mean_dev**2, 0.0)
        std = np.sqrt(var)
        safe = np.where(std > _STD_FLOOR, std, 1.0)
        sharpes.append(np.where(std > _STD_FLOOR, (mean_dev + shift) / safe, 0.0))
    is_sr, oos_sr = sharpes
    rows = np.arange(n_comb)
    best = np.argmax(is_sr, axis=1)  # ties: the lowest column index
    rank = stats.rankdata(oos_sr, axis=1)[rows, best]  # 1..N, ties averaged
    omega = rank / (oos_sr.shape[1] + 1.0)
    return np.log(omega / (1.0 - omega)), is_sr[rows, best], oos_sr[rows, best]


def _combination_chunks(n_blocks: int) -> Iterator[np.ndarray]:
    """The C(S, S/2) in-sample block sets, in chunks of at most _CSCV_CHUNK rows."""
    it = combinations(range(n_blocks), n_blocks // 2)
    while chunk := list(islice(it, _CSCV_CHUNK)):
        yield np.array(chunk, dtype=np.intp)


def pbo_cscv(returns: np.ndarray, n_blocks: int = 16) -> PBOResult:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu, 2017).

    `returns`: T x N, N trials over the same T periods (oldest row first).
    The rows are cut into S = `n_blocks` contiguous blocks of T // S rows;
    the first (oldest) T mod S rows are dropped. For each of the C(S, S/2)
    choices of S/2 blocks as the in-sample set J (J̄ the rest), n* is the
    trial with the best Sharpe ratio on J (ties: the lowest column index),
    ω̄ its relative rank rank/(N + 1) on J̄ (rank 1..N, ties averaged) and
    λ = ln(ω̄ / (1 − ω̄)). PBO is the fraction of combinations with λ <= 0.
    Each combination's Sharpe ratios come from per-block sums, so S = 16
    (12,870 combinations) takes well under a second for N = 50.
    """
    data = _matrix(returns, "returns")
    n_rows, n_trials = data.shape
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int | np.integer):
        raise ValueError(f"n_blocks must be an int; got {n_blocks!r}")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be even and >= 2; got {n_blocks}")
    if n_trials < 2:
        raise ValueError(f"returns must have N >= 2 trials (columns); got {n_trials}")
    block_len = n_rows // n_blocks
    if block_len < 2:
        raise ValueError(
            f"need at least 2 rows per block: T >= 2 * n_blocks = {2 * n_blocks}; got T = {n_rows}"
        )
    used = data[n_rows - block_len * n_blocks :]
    shift = used.mean(axis=0)
    blocks = (used - shift).reshape(n_blocks, block_len, n_trials)
    sums, sqs = blocks.sum(axis=1), (blocks**2).sum(axis=1)  # S x N each
    n_half = block_len * (n_blocks // 2)
    parts = [_cscv_chunk(c, sums, sqs, shift, n_half) for c in _combination_chunks(n_blocks)]
    logits, is_best, oos_best = (np.concatenate(p) for p in zip(*parts))
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        n_blocks=n_blocks,
        n_combinations=len(logits),
        n_trials=n_trials,
        n_obs=len(used),
        logits=logits,
        degradation_slope=_ols_slope(is_best, oos_best),
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
    )


def _ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    """OLS slope of `y` on `x` (both C); NaN when `x` does not vary."""
    dx = x - x.mean()
    sxx = float(dx @ dx)
    return float(dx @ (y - y.mean())) / sxx if sxx > 0.0 else math.nan


# ------------------------------------------------------------------- SPA


@dataclass(frozen=True)
class SPAResult:
    """Hansen's SPA test: p-values for "no model beats the benchmark".

    `pvalue` is Hansen's consistent p-value; `pvalue_lower` and
    `pvalue_upper` bound it (the upper one is White's Reality Check, studentized).
    """

    pvalue: float
    pvalue_lower: float
    pvalue_upper: float
    n_models: int
    n_obs: int
    block_size: int
    reps: int
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain floats and ints, for JSON."""
        floats = ("pvalue", "pvalue_lower", "pvalue_upper")
        return {k: (float(v) if k in floats else int(v)) for k, v in asdict(self).items()}


def _default_block_size(diffs: np.ndarray) -> int:
    """Mean stationary-bootstrap block length of Politis & White (2004) over the columns of `diffs`: T x k.

    From ``arch.bootstrap.optimal_block_length``, rounded up and clamped to
    [1, T // 4]; flat columns (no dependence to measure) are skipped.
    """
    n_rows = len(diffs)
    varying = diffs[:, diffs.std(axis=0) > _STD_FLOOR]
    block = 1.0
    if varying.shape[1]:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            from arch.bootstrap import optimal_block_length  # arch loads in seconds: on use only

            lengths = np.asarray(optimal_block_length(varying)["stationary"], dtype=np.float64)
        lengths = lengths[np.isfinite(lengths)]
        if lengths.size:
            block = float(np.ceil(lengths.mean()))
    return int(min(max(block, 1.0), max(n_rows // 4, 1)))


def _long_run_variance(diffs: np.ndarray, block_size: int) -> np.ndarray:
    """Hansen's (2005) variance estimate of sqrt(T) times the mean of each column of `diffs`: T x k -> k.

    ω̂² = γ̂₀ + 2 Σᵢ κᵢ γ̂ᵢ with κᵢ = (1 − i/T)(1 − q)ⁱ + (i/T)(1 − q)^(T−i),
    q = 1/block_size: the stationary-bootstrap kernel, the same estimate
    ``arch.bootstrap.SPA`` computes (not nested) for its recentring rule.
    """
    n_rows = len(diffs)
    dev = diffs - diffs.mean(axis=0)
    size = 1 << (2 * n_rows - 1).bit_length()  # zero-padded: no circular wrap
    spec = np.fft.rfft(dev, n=size, axis=0)
    autocov = np.fft.irfft(spec * np.conj(spec), n=size, axis=0)[:n_rows] / n_rows  # γ̂₀..γ̂_{T−1}
    lags = np.arange(1, n_rows)
    q = 1.0 / block_size
    kappa = (1.0 - lags / n_rows) * (1.0 - q) ** lags + (lags / n_rows) * (1.0 - q) ** (n_rows - lags)
    return np.asarray(autocov[0] + 2.0 * (kappa @ autocov[1:]))


def _studentized_spa_pvalues(
    diffs: np.ndarray, block: int, reps: int, seed: int
) -> tuple[float, float, float]:
    """(lower, consistent, upper) SPA p-values for the loss differentials `diffs`: T x k.

    Each column is divided by its long-run std ω̂_k and handed to arch against
    a zero benchmark (losses = −d_k/ω̂_k). When every differential is flat
    (ω̂_k <= 1e-15 for all k) there is nothing to resample: the p-values are
    0.0 if some model's constant edge is positive, else 1.0.
    """
    omega = np.sqrt(np.maximum(_long_run_variance(diffs, block), 0.0))
    if np.all(omega <= _STD_FLOOR):
        p = 0.0 if float(diffs.mean(axis=0).max()) > 0.0 else 1.0
        return p, p, p
    scaled = diffs / np.maximum(omega, _STD_FLOOR)
    from arch.bootstrap import SPA  # arch loads in seconds: on use only

    spa = SPA(np.zeros(len(diffs)), -scaled, block_size=block, reps=reps, bootstrap="stationary", seed=seed)
    spa.compute()
    pvalues = spa.pvalues
    return float(pvalues["lower"]), float(pvalues["consistent"]), float(pvalues["upper"])


def spa_test(
    benchmark_returns: np.ndarray,
    model_returns: np.ndarray,
    *,
    block_size: int | None = None,
    reps: int = 1000,
    seed: int = 0,
) -> SPAResult:
    """Hansen's (2005) studentized test for superior predictive ability, through ``arch.bootstrap.SPA``.

    `benchmark_returns`: T per-period returns (zeros for a flat benchmark);
    `model_returns`: T x k (a T vector is one model). Null hypothesis: no
    model has a higher expected return than the benchmark; a small `pvalue`
    says the best model beats it even after looking at all k. T >= 20.

    arch works with losses, so the losses are the negated returns and the
    loss differentials d_k = model_k − benchmark. arch 8's ``studentize`` flag
    does not rescale the statistic it reports, so each d_k is divided by its
    long-run std ω̂_k (Hansen's kernel estimate, the one arch uses for its
    recentring) before it is handed to arch against a zero benchmark: the
    bootstrap (stationary, `reps` resamples, seeded with `seed`) and the
    lower/consistent/upper recentring are arch's own. Models identical to the
    benchmark (all differentials flat) get p-values of 1.0. `block_size` defaults
    to the mean Politis–White optimal block length of the d_k, rounded up and
    clamped to [1, T // 4] (about 1 for serially independent returns, longer
    when the differentials are autocorrelated).
    """
    bench = _vector(benchmark_returns, "benchmark_returns", min_len=_SPA_MIN_OBS)
    models = _matrix(model_returns, "model_returns")
    if len(models) != len(bench):
        raise ValueError(f"model_returns must have the benchmark's T = {len(bench)} rows; got {len(models)}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1; got {reps}")
    diffs = models - bench[:, None]
    n_rows = len(diffs)
    block = _default_block_size(diffs) if block_size is None else int(block_size)
    if not 1 <= block <= n_rows:
        raise ValueError(f"block_size must be in [1, T = {n_rows}]; got {block_size}")
    lower, consistent, upper = _studentized_spa_pvalues(diffs, block, reps, seed)
    return SPAResult(
        pvalue=consistent,
        pvalue_lower=lower,
        pvalue_upper=upper,
        n_models=models.shape[1],
        n_obs=n_rows,
        block_size=block,
        reps=reps,
        seed=seed,
    )
