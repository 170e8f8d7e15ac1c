"""Standard errors of a backtest's figures, by a stationary block bootstrap of its per-bar returns.

A backtest's return, Sharpe ratio and maximum drawdown are estimates from
one path of per-bar net returns; their standard errors say how far another
path of the same process would put them. :func:`bootstrap_standard_errors`
resamples the returns with ``arch``'s stationary bootstrap (Politis & Romano,
1994: blocks of geometric length, so that serial dependence within a block
survives) and takes the standard deviation of each figure over the
resamples. The mean block length is ``arch.bootstrap.optimal_block_length``
(Politis & White, 2004) of the returns and of their squares (volatility
clusters), the larger of the two, clamped to ``[1, T // 10]``.

The same resamples give the standard errors of the Sortino and Calmar
ratios (:data:`RATIO_FIGURES`), which are functions of the per-bar returns
too. Figures of the positions (turnover, exposure) and of the round trips
(win rate, profit factor, average trade) have none here: resampling bars
does not resample trades.

Reference point: for i.i.d. returns the Sharpe ratio's standard error is
about ``sqrt(periods_per_year / T)`` annualised (Lo, 2002); the bootstrap
agrees with it there (tested) and widens it under dependence.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from objectives.backtest import equity_stats, ratio_stats

__all__ = [
    "FIGURES",
    "RATIO_FIGURES",
    "SE_FIGURES",
    "block_length",
    "bootstrap_standard_errors",
    "paired_difference_standard_errors",
]

#: The figures of :func:`objectives.backtest.equity_stats`, in its order.
FIGURES = ("return_pct", "sharpe", "max_drawdown_pct")
#: The figures of :func:`objectives.backtest.ratio_stats`, in its order.
RATIO_FIGURES = ("sortino", "calmar")
#: Every figure :func:`bootstrap_standard_errors` gives a standard error.
SE_FIGURES = (*FIGURES, *RATIO_FIGURES)


def _figures(net: np.ndarray, periods_per_year: float) -> tuple[float, ...]:
    """The :data:`SE_FIGURES` of per-bar net returns `T`."""
    stats = equity_stats(net, periods_per_year)
    return (*stats, *ratio_stats(net, periods_per_year, stats[0], stats[2]))


def block_length(returns: np.ndarray) -> float:
    """Mean block length of the stationary bootstrap for `T` returns (see the module docstring)."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    if n < 20 or float(r.std()) < 1e-15:
        return 1.0
    from arch.bootstrap import optimal_block_length  # arch loads in seconds: on use only

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = optimal_block_length(np.column_stack([r, r * r]))
    length = float(np.nanmax(table["stationary"].to_numpy()))
    return float(min(max(length if math.isfinite(length) else 1.0, 1.0), max(1.0, n // 10)))


def bootstrap_standard_errors(
    returns: np.ndarray, periods_per_year: float, *, reps: int = 200, seed: int = 0
) -> dict[str, float]:
    """Standard errors of the :data:`SE_FIGURES` (return, Sharpe, drawdown, Sortino, Calmar) of `T`
    per-bar net returns.

    Seeded (``seed``): the same returns give the same figures. Returns of
    zero variance (a model that never trades) have zero standard errors.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2:
        raise ValueError(f"returns must be 1-D with at least 2 values, got shape {r.shape}")
    if reps < 2:
        raise ValueError(f"reps must be >= 2, got {reps}")
    if float(r.std()) < 1e-15:
        return dict.fromkeys(SE_FIGURES, 0.0)
    from arch.bootstrap import StationaryBootstrap

    bs = StationaryBootstrap(max(1, round(block_length(r))), r, seed=np.random.default_rng(seed))
    draws = np.array([_figures(data[0][0], periods_per_year) for data in bs.bootstrap(reps)])
    return {name: float(draws[:, i].std(ddof=1)) for i, name in enumerate(SE_FIGURES)}


def figure_standard_errors(returns: np.ndarray, periods_per_year: float, seed: int) -> dict[str, float]:
    """:func:`bootstrap_standard_errors` as ``<figure>_se`` keys, to sit beside a backtest's figures
    (one path of held-out bars is a noisy figure too); none for fewer than 2 returns."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return {}
    return {f"{k}_se": v for k, v in bootstrap_standard_errors(r, periods_per_year, seed=seed).items()}


def paired_difference_standard_errors(
    a: np.ndarray, b: np.ndarray, periods_per_year: float, *, reps: int = 200, seed: int = 0
) -> dict[str, float]:
    """Standard errors of ``figure(a) - figure(b)`` for two return series over the same bars.

    Both series are resampled with the same stationary-bootstrap indices, so
    what the two have in common (the market's path) cancels: the error of a
    difference between two configurations traded on the same bars is much
    smaller than either one's own.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need two 1-D return series of one length >= 2, got {x.shape} and {y.shape}")
    if reps < 2:
        raise ValueError(f"reps must be >= 2, got {reps}")
    d = x - y
    if float(d.std()) < 1e-15:
        return dict.fromkeys(FIGURES, 0.0)
    from arch.bootstrap import StationaryBootstrap

    length = max(block_length(x), block_length(y))
    bs = StationaryBootstrap(max(1, round(length)), x, y, seed=np.random.default_rng(seed))
    draws = np.array(
        [
            np.subtract(equity_stats(data[0], periods_per_year), equity_stats(data[1], periods_per_year))
            for data, _ in bs.bootstrap(reps)
        ]
    )
    return {name: float(draws[:, i].std(ddof=1)) for i, name in enumerate(FIGURES)}
