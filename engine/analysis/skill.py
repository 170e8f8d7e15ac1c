"""Skill, not beta: what a trial earns beyond its exposure to the instrument.

A long/short timing strategy and buy-and-hold trade the same instrument. A
test of *mean-return differences* against buy-and-hold carries the
benchmark's whole volatility (a timing strategy is nearly uncorrelated with
holding), so a large risk-adjusted edge can be a small t-statistic; and a
constant short in a falling market beats flat and long buy-and-hold without
any skill. Both are fixed exposures to the instrument. So each trial's
per-bar returns r are regressed on the instrument's per-bar return m over the
same bars, r = α + β·m + ε (OLS), and the tests look at the hedged series
h = r − β̂·m, whose mean is α̂: the return no constant long, short or flat
position explains.

- :func:`skill_test`: Hansen's SPA (``arch.bootstrap.SPA`` through
  :func:`engine.analysis.selection.spa_test`) of the hedged series of all trials
  against zero: "no trial has timing skill", accounting for all of them, and
  the same test of one named trial alone.
- :func:`beats_benchmark`: Romano–Wolf StepM (the steps of ``arch.bootstrap.StepM``):
  which of k candidates beat a benchmark series with the family-wise error
  controlled, e.g. whether a challenger chosen among a study's trials beats
  the live champion re-measured on the same bars.

Units: per-bar (per-period) returns; ``T`` rows (bars, oldest first), ``N``
columns (trials).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from engine.analysis.selection import (
    _STD_FLOOR,
    _default_block_size,
    _long_run_variance,
    _matrix,
    _vector,
    spa_test,
)

__all__ = ["Hedged", "SkillTest", "StepMResult", "beats_benchmark", "beta_hedge", "skill_test"]


@dataclass(frozen=True)
class Hedged:
    """Returns net of their beta to the instrument.

    Attributes:
        returns: `T x N` hedged series h = r − β̂·m (mean α̂ per column).
        alpha: `N` per-period α̂.
        beta: `N` β̂ (0 when the instrument does not move).
    """

    returns: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


def beta_hedge(returns: np.ndarray, market: np.ndarray) -> Hedged:
    """OLS β̂ of each column of ``returns`` (`T x N`) on ``market`` (`T`), and r − β̂·m."""
    r = _matrix(returns, "returns")
    m = _vector(market, "market", min_len=2)
    if len(m) != len(r):
        raise ValueError(f"market must have the returns' T = {len(r)} rows; got {len(m)}")
    dm = m - m.mean()
    var = float(dm @ dm)
    beta = (dm @ (r - r.mean(axis=0))) / var if var > _STD_FLOOR**2 else np.zeros(r.shape[1])
    hedged = r - np.outer(m, beta)
    return Hedged(hedged, hedged.mean(axis=0), beta)


@dataclass(frozen=True)
class SkillTest:
    """Timing skill of a family of trials and of one of them.

    Attributes:
        pvalue_family: SPA p-value (consistent) of "no trial's hedged mean is above 0" over all N.
        pvalue_pick: the same test of the named trial alone (its own, one-sided).
        alpha_annual: the named trial's α̂ times periods a year (a return, not a ratio).
        alpha_sharpe: its hedged series' Sharpe ratio, annualised (the information ratio).
        beta: its β̂.
        n_trials, n_obs, block_size, reps, seed: the inputs of the bootstrap.
    """

    pvalue_family: float
    pvalue_pick: float
    alpha_annual: float
    alpha_sharpe: float
    beta: float
    n_trials: int
    n_obs: int
    block_size: int
    reps: int
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        return {k: (int(v) if isinstance(v, int) else float(v)) for k, v in asdict(self).items()}


def skill_test(
    returns: np.ndarray,
    market: np.ndarray,
    pick: int,
    *,
    periods_per_year: float,
    reps: int = 1000,
    seed: int = 0,
) -> SkillTest:
    """SPA of all trials' beta-hedged returns against zero, and of column ``pick`` alone.

    ``returns``: `T x N` per-bar net returns; ``market``: `T` per-bar returns
    of the instrument on the same bars (T >= 20). A trial that holds the
    instrument long, short or not at all hedges to zero (minus its costs): it
    has no skill, whatever the market did.
    """
    hedged = beta_hedge(returns, market)
    h = hedged.returns
    family = spa_test(np.zeros(len(h)), h, reps=reps, seed=seed)
    own = spa_test(np.zeros(len(h)), h[:, pick], reps=reps, seed=seed)
    col = h[:, pick]
    std = float(col.std())
    ann = math.sqrt(periods_per_year)
    return SkillTest(
        pvalue_family=family.pvalue,
        pvalue_pick=own.pvalue,
        alpha_annual=float(hedged.alpha[pick]) * periods_per_year,
        alpha_sharpe=float(col.mean()) / std * ann if std > _STD_FLOOR else 0.0,
        beta=float(hedged.beta[pick]),
        n_trials=h.shape[1],
        n_obs=len(h),
        block_size=family.block_size,
        reps=reps,
        seed=seed,
    )


def _stepm(scaled: np.ndarray, size: float, block: int, reps: int, seed: int) -> list[int]:
    """Romano–Wolf's steps over ``arch.bootstrap.SPA``: columns of ``scaled`` (`T x k` differentials)
    rejected as not better than zero, each step re-run without those already rejected.

    The loop of ``arch.bootstrap.StepM.compute`` (arch 8) with one guard: StepM stops when a
    single step rejects all k models, but not when the steps together reject them all, and then
    runs SPA on an empty set (a ValueError). Each step here is arch's SPA, recentring and
    ``better_models`` rule unchanged.
    """
    from arch.bootstrap import SPA  # arch loads in seconds: on use only

    k = scaled.shape[1]
    spa = SPA(np.zeros(len(scaled)), -scaled, block_size=block, reps=reps, bootstrap="stationary", seed=seed)
    spa.compute()
    step = [int(i) for i in spa.better_models(size)]
    rejected = list(step)
    while step and len(rejected) < k:
        keep = np.ones(k, dtype=bool)
        keep[rejected] = False
        spa.subset(keep)
        spa.compute()
        step = [int(i) for i in spa.better_models(size)]
        rejected += step
    return sorted(rejected)


@dataclass(frozen=True)
class StepMResult:
    """Romano–Wolf StepM: the candidates that beat the benchmark, family-wise error ``size``."""

    superior: tuple[int, ...]
    size: float
    n_models: int
    n_obs: int
    block_size: int
    reps: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["superior"] = list(self.superior)
        return out


def beats_benchmark(
    benchmark: np.ndarray,
    candidates: np.ndarray,
    *,
    size: float = 0.05,
    reps: int = 1000,
    seed: int = 0,
    block_size: int | None = None,
) -> StepMResult:
    """Which columns of ``candidates`` (`T x k` per-bar returns) have a higher mean than ``benchmark`` (`T`).

    Romano & Wolf's (2005) StepM, the steps of ``arch.bootstrap.StepM`` over
    arch's SPA (stationary bootstrap, Hansen's consistent recentring; see
    :func:`_stepm` for why the loop is ours), on studentized differentials:
    as in :func:`engine.analysis.selection.spa_test`, each d_k = candidate_k −
    benchmark is divided by its long-run standard deviation first, because
    arch does not rescale the statistic it compares. A candidate identical
    to the benchmark is never superior. The family-wise error rate over the
    k candidates is at most ``size``: a candidate chosen among them by any
    rule is superior only when it beats the benchmark by more than choosing
    the best of k explains.
    """
    bench = _vector(benchmark, "benchmark", min_len=20)
    cand = _matrix(candidates, "candidates")
    if len(cand) != len(bench):
        raise ValueError(f"candidates must have the benchmark's T = {len(bench)} rows; got {len(cand)}")
    diffs = cand - bench[:, None]
    block = _default_block_size(diffs) if block_size is None else int(block_size)
    omega = np.sqrt(np.maximum(_long_run_variance(diffs, block), 0.0))
    varying = omega > _STD_FLOOR
    superior: list[int] = []
    if varying.any():
        cols = np.flatnonzero(varying)
        scaled = diffs[:, cols] / omega[cols]
        superior = [int(cols[j]) for j in _stepm(scaled, size, block, reps, seed)]
    # a constant positive differential (the same trades plus a fixed gain) has nothing to resample
    superior += [int(j) for j in np.flatnonzero(~varying) if diffs[:, j].mean() > _STD_FLOOR]
    return StepMResult(tuple(sorted(superior)), size, cand.shape[1], len(cand), block, reps, seed)
