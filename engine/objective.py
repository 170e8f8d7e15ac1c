"""What a trial evaluates: a model family (train + backtest) or a synthetic problem.

The engine speaks of a *strategy* string from the spec. This module turns it
into a search space, the metrics the objective reports, and, inside a worker,
the call that evaluates one configuration.
"""

from __future__ import annotations

from strategies import get_family
from strategies.space import SearchSpace

__all__ = ["CURVE_METRICS", "KNOWN_METRICS", "reported_metrics", "strategy_space"]

#: Metrics a trading objective reports for the validation split.
KNOWN_METRICS: tuple[str, ...] = (
    "return_pct",
    "sharpe",
    "max_drawdown_pct",
    "win_rate_pct",
    "num_trades",
    "profit_factor",
    "exposure_pct",
    "avg_trade_pct",
    "bh_return_pct",
    "bh_sharpe",
    "bh_max_drawdown_pct",
    "val_accuracy",
    "val_loss",
)

#: Per-epoch learning-curve metrics (early stopping uses one of them).
CURVE_METRICS: dict[str, bool] = {  # name -> lower is better
    "val_sharpe": False,
    "val_return_pct": False,
    "val_loss": True,
    "val_accuracy": False,
}

SYNTHETIC_PREFIX = "synthetic:"


def strategy_space(strategy: str, preset: str = "cpu") -> SearchSpace:
    """The default search space of a model family (``cpu`` or ``gpu`` sized) or synthetic problem."""
    if strategy.startswith(SYNTHETIC_PREFIX):
        from objectives.synthetic import get_problem

        return get_problem(strategy.removeprefix(SYNTHETIC_PREFIX)).space()
    family = get_family(strategy)
    return family.gpu_space() if preset == "gpu" else family.default_space()


def reported_metrics(strategy: str) -> tuple[str, ...]:
    """The final metrics an objective reports (synthetic problems report fewer)."""
    if strategy.startswith(SYNTHETIC_PREFIX):
        from objectives.synthetic import get_problem

        return get_problem(strategy.removeprefix(SYNTHETIC_PREFIX)).metric_names
    return KNOWN_METRICS
