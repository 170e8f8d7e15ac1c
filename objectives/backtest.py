"""Vectorised backtest of model positions on a price series, and its metrics.

Conventions (one per question):

- ``positions[t]`` (in [-1, 1]; fractional allowed) is decided at the close
  of bar t and held from t to t+1, earning ``close[t+1] / close[t] - 1``. A
  position is a fraction of current equity (rebalanced every bar), so a long
  held for k bars compounds exactly like the price, and a short earns
  ``-return`` each bar: shorts make money when the price falls.
- Costs: ``(fee_bps + slippage_bps) / 1e4`` x |position change|, charged at
  the bar of the change, including the entry from flat at the first bar and
  a final exit to flat after the last bar. The last bar's position earns
  nothing (there is no t+1).
- Per-bar net return ``r_t = p_t * ret_t - cost_t``; equity starts at 1.0 and
  compounds, ``E_{t+1} = E_t * max(1 + r_t, 0)`` (a loss beyond 100% ruins).
- ``sharpe = mean(r) / std(r) * sqrt(periods_per_year)`` over the n per-bar
  net returns (population std); 0 when the std is 0. ``periods_per_year``
  comes from the data (see :mod:`objectives.data`); without it, 252.
- ``max_drawdown_pct``: largest peak-to-trough fall of the equity curve,
  including the starting 1.0, as a positive percentage.
- Round trips: a trade opens when the position leaves 0 or reverses sign and
  closes when it returns to 0, reverses, or at the end. Its return
  compounds ``1 + p_t * ret_t`` over its bars and the costs attributed to it:
  its entry, any resizing while open, and its exit (a reversal's cost is
  split into the old trade's exit and the new one's entry).
- ``win_rate_pct``: trades with a positive return (above 1e-12, float
  noise counts as neither win nor loss) / trades; ``profit_factor``:
  sum of winning trade returns / |sum of losing ones|, capped at
  :data:`PROFIT_FACTOR_CAP` (also its value when there are wins and no
  losses; 0 without trades or wins); ``exposure_pct``: share of the n - 1
  holding periods with a non-zero position; ``avg_trade_pct``: mean trade
  return (0 without trades).
- ``sortino``: ``mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year)``
  (downside deviation below 0 over all n bars); ``calmar``: the compound
  annual growth rate of the equity curve, ``E_n^(periods_per_year / n) - 1``,
  over ``max_drawdown_pct / 100``. Without downside (no losing bar, no
  drawdown) they are :data:`RATIO_CAP` when the mean (the growth) is
  positive and 0 otherwise; both are clipped to ``[-RATIO_CAP, RATIO_CAP]``.
  ``turnover``: the position changes (the entry from flat and the final exit
  included, as costs are charged) summed and annualised, ``sum |p_t -
  p_{t-1}| / n * periods_per_year``: 2 a year is one round trip of the whole
  capital a year; the costs a year are ``(fee_bps + slippage_bps) / 1e4`` times it.
- ``bh_*``: buy-and-hold over the same bars (long 1.0 throughout, same costs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "PROFIT_FACTOR_CAP",
    "RATIO_CAP",
    "BacktestResult",
    "action_confidence",
    "actions_to_positions",
    "equity_stats",
    "net_returns",
    "ranked_positions",
    "ratio_stats",
    "run_backtest",
    "turnover",
]

PROFIT_FACTOR_CAP = 100.0
RATIO_CAP = 100.0  # |sortino| and |calmar| at most (also their value without downside and a gain)
_FLAT_TRADE = 1e-12  # a trade whose |return| is below this is neither a win nor a loss (float noise)
DEFAULT_PERIODS_PER_YEAR = 252.0


@dataclass(frozen=True)
class BacktestResult:
    """Metrics of one backtest (percentages are percent, e.g. 12.5 = 12.5%)."""

    return_pct: float
    sharpe: float
    max_drawdown_pct: float
    win_rate_pct: float
    num_trades: int
    profit_factor: float
    exposure_pct: float
    avg_trade_pct: float
    sortino: float
    calmar: float
    turnover: float
    bh_return_pct: float
    bh_sharpe: float
    bh_max_drawdown_pct: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def actions_to_positions(probs: np.ndarray, *, confidence_gate: float, allow_short: bool) -> np.ndarray:
    """Positions from action probabilities.

    Args:
        probs: `batch x 3` probabilities (0 hold, 1 long, 2 short).
        confidence_gate: the argmax action is taken only if its probability
            is >= the gate; otherwise flat.
        allow_short: if False, a short action is flat.

    Returns:
        `batch` float64 positions in {-1, 0, 1}.
    """
    probs = np.asarray(probs, dtype=np.float64)
    action = probs.argmax(axis=1)
    confident = probs.max(axis=1) >= confidence_gate
    pos = np.where(action == 1, 1.0, np.where((action == 2) & allow_short, -1.0, 0.0))
    return np.where(confident, pos, 0.0)


def action_confidence(probs: np.ndarray, *, allow_short: bool) -> np.ndarray:
    """The probability of the best trade at each bar: max(p_long, p_short), or p_long without shorts."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.maximum(probs[:, 1], probs[:, 2]) if allow_short else probs[:, 1].copy()


def ranked_positions(probs: np.ndarray, *, threshold: float, allow_short: bool) -> np.ndarray:
    """Positions of a ``'train_quantile'`` gate: the more likely trade where its probability >= ``threshold``.

    Unlike :func:`actions_to_positions`, a bar where *hold* is the top class
    can still trade, if its long (or short) probability is high for this
    model: the threshold comes from the model's own training-split
    confidences, so it sets how much of the time the model is in the market.

    Returns:
        `batch` float64 positions in {-1, 0, 1}.
    """
    probs = np.asarray(probs, dtype=np.float64)
    conf = action_confidence(probs, allow_short=allow_short)
    short = probs[:, 2] > probs[:, 1] if allow_short else np.zeros(len(probs), dtype=bool)
    side = np.where(short, -1.0, 1.0)
    return np.where(conf >= threshold, side, 0.0)


def equity_stats(net: np.ndarray, periods_per_year: float) -> tuple[float, float, float]:
    """(return_pct, sharpe, max_drawdown_pct) of per-bar net returns `n`."""
    growth = 1.0 + net
    np.maximum(growth, 0.0, out=growth)
    equity = np.empty(len(net) + 1)
    equity[0] = 1.0
    np.cumprod(growth, out=equity[1:])
    peak = np.maximum.accumulate(equity)  # >= 1: the curve starts at 1.0
    drawdown = 1.0 - float((equity / peak).min())
    std = float(net.std())
    sharpe = float(net.mean()) / std * math.sqrt(periods_per_year) if std > 1e-15 else 0.0
    return 100.0 * (float(equity[-1]) - 1.0), sharpe, 100.0 * drawdown


def ratio_stats(
    net: np.ndarray, periods_per_year: float, return_pct: float, max_drawdown_pct: float
) -> tuple[float, float]:
    """(sortino, calmar) of per-bar net returns `n`, given their :func:`equity_stats` return and drawdown."""
    n = len(net)
    mean = float(net.mean()) if n else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(net, 0.0) ** 2))) if n else 0.0
    sortino = mean / downside * math.sqrt(periods_per_year) if downside > 1e-15 else _no_risk(mean)
    growth = 1.0 + return_pct / 100.0
    # in logs: a short, good backtest compounds to a huge annual rate (the cap bounds it)
    cagr = math.expm1(min(math.log(growth) * periods_per_year / max(n, 1), 700.0)) if growth > 0 else -1.0
    calmar = cagr / (max_drawdown_pct / 100.0) if max_drawdown_pct > 1e-12 else _no_risk(cagr)
    return _clip(sortino), _clip(calmar)


def _no_risk(gain: float) -> float:
    """A risk-adjusted ratio without risk: the cap for a gain, else 0."""
    return RATIO_CAP if gain > 1e-15 else 0.0


def _clip(value: float) -> float:
    return float(min(max(value, -RATIO_CAP), RATIO_CAP))


def turnover(positions: np.ndarray, periods_per_year: float) -> float:
    """Annualised turnover of `n` positions: ``sum |p_t - p_{t-1}|`` (from flat before the first bar,
    to flat after the last) ``/ n * periods_per_year``."""
    p = np.asarray(positions, dtype=np.float64)
    if len(p) == 0:
        return 0.0
    changes = float(np.abs(np.diff(p, prepend=0.0, append=0.0)).sum())
    return changes / len(p) * float(periods_per_year)


def _trade_returns(positions: np.ndarray, gross: np.ndarray, change: np.ndarray, cost: float) -> np.ndarray:
    """Compounded return of each round trip: `n_trades`.

    ``gross``: `n` per-bar ``p_t * ret_t``; ``change``: `n` ``|p_t - p_{t-1}|``.
    Trades are contiguous runs of one sign, so per-trade sums of log growth
    are differences of one cumulative sum.
    """
    side = np.sign(positions)
    in_trade = side != 0
    starts_mask = in_trade.copy()
    starts_mask[1:] &= side[1:] != side[:-1]
    starts = np.flatnonzero(starts_mask)
    if len(starts) == 0:
        return np.zeros(0)
    ends_mask = in_trade.copy()
    ends_mask[:-1] &= side[:-1] != side[1:]
    ends = np.flatnonzero(ends_mask)
    log_w = np.log1p(gross if gross.min() > -1.0 else np.maximum(gross, -1.0 + 1e-15))
    log_w *= in_trade
    # costs where the position changes inside a trade: resizing |p_t - p_{t-1}|, opening |p_t|
    paid = np.flatnonzero((change > 0) & in_trade)
    entry = change[paid]
    opening = starts_mask[paid]
    entry[opening] = np.abs(positions[paid[opening]])
    log_w[paid] += np.log1p(-np.minimum(cost * entry, 1.0 - 1e-15))
    csum = np.cumsum(log_w)
    exit_cost = np.log1p(-np.minimum(cost * np.abs(positions[ends]), 1.0 - 1e-15))
    return np.expm1(csum[ends] - csum[starts] + log_w[starts] + exit_cost)


def _bar_returns(close: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(``ret``: `n` close-to-next-close returns, 0 at the last bar; gross `n`; |position change| `n`)."""
    ret = np.empty(len(close))  # ret[t] = close[t+1] / close[t] - 1; the last bar earns nothing
    np.divide(close[1:], close[:-1], out=ret[:-1])
    ret[:-1] -= 1.0
    ret[-1] = 0.0
    change = np.empty(len(positions))  # |p_t - p_{t-1}|, from flat before the first bar
    change[0] = positions[0]
    np.subtract(positions[1:], positions[:-1], out=change[1:])
    np.abs(change, out=change)
    return ret, positions * ret, change


def _check(close: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    close = np.asarray(close, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if close.ndim != 1 or close.shape != positions.shape or len(close) < 2:
        raise ValueError(
            f"close and positions must be 1-D of equal length >= 2, got {close.shape} and {positions.shape}"
        )
    return close, positions


def net_returns(
    close: np.ndarray, positions: np.ndarray, *, fee_bps: float, slippage_bps: float
) -> np.ndarray:
    """Per-bar net returns `n` of :func:`run_backtest` (costs included; the final exit at the last bar)."""
    close, positions = _check(close, positions)
    cost = (fee_bps + slippage_bps) / 1e4
    _, gross, change = _bar_returns(close, positions)
    net = gross - cost * change
    net[-1] -= cost * abs(positions[-1])  # final exit to flat
    return net


def run_backtest(
    close: np.ndarray,
    positions: np.ndarray,
    *,
    fee_bps: float,
    slippage_bps: float,
    periods_per_year: float | None = None,
) -> BacktestResult:
    """Backtest positions on closes (conventions in the module docstring).

    Args:
        close: `n` closes (> 0), one per decision bar, consecutive bars.
        positions: `n` positions decided at each close.
        fee_bps, slippage_bps: costs in basis points per unit of position change.
        periods_per_year: bars per year for the Sharpe ratio (default 252).
    """
    close, positions = _check(close, positions)
    ppy = DEFAULT_PERIODS_PER_YEAR if periods_per_year is None else float(periods_per_year)
    cost = (fee_bps + slippage_bps) / 1e4
    ret, gross, change = _bar_returns(close, positions)
    net = gross - cost * change
    net[-1] -= cost * abs(positions[-1])  # final exit to flat
    ret_pct, sharpe, mdd = equity_stats(net, ppy)
    sortino, calmar = ratio_stats(net, ppy, ret_pct, mdd)
    trades = _trade_returns(positions, gross, change, cost)
    won, lost = trades > _FLAT_TRADE, trades < -_FLAT_TRADE
    wins, losses = float(trades[won].sum()), float(-trades[lost].sum())
    pf = (
        0.0
        if not won.any()
        else PROFIT_FACTOR_CAP
        if not lost.any()
        else min(wins / losses, PROFIT_FACTOR_CAP)
    )
    bh_net = ret.copy()  # long 1.0 throughout: entry at bar 0, exit after the last bar
    bh_net[0] -= cost
    bh_net[-1] -= cost
    bh_ret, bh_sharpe, bh_mdd = equity_stats(bh_net, ppy)
    return BacktestResult(
        return_pct=ret_pct,
        sharpe=sharpe,
        max_drawdown_pct=mdd,
        win_rate_pct=100.0 * float(won.mean()) if len(trades) else 0.0,
        num_trades=len(trades),
        profit_factor=float(pf),
        exposure_pct=100.0 * float((positions[:-1] != 0).mean()),
        avg_trade_pct=100.0 * float(trades.mean()) if len(trades) else 0.0,
        sortino=sortino,
        calmar=calmar,
        turnover=turnover(positions, ppy),
        bh_return_pct=bh_ret,
        bh_sharpe=bh_sharpe,
        bh_max_drawdown_pct=bh_mdd,
    )


#: The rule baselines a model is compared with: a constant position held on every bar.
RULE_BASELINES: dict[str, float] = {"flat": 0.0, "buy_and_hold": 1.0, "short_and_hold": -1.0}


def rule_baselines(
    close: np.ndarray,
    *,
    fee_bps: float,
    slippage_bps: float,
    allow_short: bool,
    periods_per_year: float | None = None,
) -> dict[str, tuple[BacktestResult, np.ndarray]]:
    """The :data:`RULE_BASELINES` on ``close`` with costs (short-and-hold only where shorts are
    allowed): each rule's backtest and per-bar net returns."""
    costs = {"fee_bps": fee_bps, "slippage_bps": slippage_bps}
    out = {}
    for name, level in RULE_BASELINES.items():
        if level < 0 and not allow_short:
            continue
        pos = np.full(len(close), level)
        out[name] = (
            run_backtest(close, pos, periods_per_year=periods_per_year, **costs),
            net_returns(close, pos, **costs),
        )
    return out
