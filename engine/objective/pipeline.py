"""The engine's one door to the trading pipeline (``objectives/``).

Only ``engine/objective/`` imports ``objectives/`` (and ``engine/spec_model.py`` its
spec sections). What the rest of the engine needs of the pipeline outside an
objective — the cost model and equity figures (robustness, champion), the
noise figures, the data loader and features (``check-data``), regime
statistics and the DataDrivenOptimizer (study windows, priors) — is named
here, so that one file shows the boundary.

Names whose module imports torch (the DataDrivenOptimizer, the regime
statistics, the prepared arrays) are functions that import on call: the
read-only commands start without torch.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from objectives.backtest import equity_stats, net_returns
from objectives.config import json_type_problem
from objectives.data import infer_bar_seconds, load_spec_bars
from objectives.features import FEATURE_SETS, build_features
from objectives.noise import FIGURES, block_length, paired_difference_standard_errors

if TYPE_CHECKING:
    import pandas as pd

    from objectives import PreparedData
    from objectives.regime import DataDrivenOptimizer, RegimeStats

__all__ = [
    "FEATURE_SETS",
    "FIGURES",
    "block_length",
    "build_features",
    "data_driven_optimizer",
    "equity_stats",
    "infer_bar_seconds",
    "json_type_problem",
    "load_prepared",
    "load_spec_bars",
    "net_returns",
    "paired_difference_standard_errors",
    "regime_statistics",
]


def data_driven_optimizer(bars: pd.DataFrame, bar_seconds: float | None = None) -> DataDrivenOptimizer:
    """The DataDrivenOptimizer of ``bars`` (the training split; the bar length inferred when not given)."""
    from objectives.regime import data_driven_optimizer as make

    return make(bars, bar_seconds)


def regime_statistics(bars: pd.DataFrame) -> RegimeStats:
    """Regime statistics of ``bars`` (pass the training split only)."""
    from objectives.regime import regime_statistics as stats

    return stats(bars)


@lru_cache(maxsize=2)
def load_prepared(directory: str) -> PreparedData:
    """Memory-map the study's prepared arrays once per worker process."""
    from objectives import PreparedData

    return PreparedData.load(Path(directory), mmap=True)
