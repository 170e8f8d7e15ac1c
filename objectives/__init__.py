"""The shared objective of boengine: prepare data once, train one configuration, backtest it.

Typical use (the engine does this)::

    data = prepare_data(spec.data, feature_set="multi_timeframe", max_seq_len=100)
    result = evaluate("moe", params, data, EvalSettings(max_epochs=20, seed=7))
    result.metrics["sharpe"], result.metrics["max_drawdown_pct"]

Modules: :mod:`~objectives.data` (loading, validation, bar frequency),
:mod:`~objectives.features` (causal feature sets), :mod:`~objectives.labels`,
:mod:`~objectives.dataset` (splits, :class:`PreparedData`, windows),
:mod:`~objectives.prepare`, :mod:`~objectives.losses`,
:mod:`~objectives.training`, :mod:`~objectives.backtest`,
:mod:`~objectives.evaluate`.
"""

from objectives.backtest import BacktestResult, actions_to_positions, run_backtest
from objectives.config import BacktestSpec, DataSpec, LabelSpec, SplitSpec, ValidationSpec
from objectives.data import infer_bar_seconds, infer_periods_per_year, load_bars, load_spec_bars
from objectives.dataset import PreparedData, Splits, check_length, split_ranges
from objectives.evaluate import (
    EvalResult,
    EvalSettings,
    evaluate,
    evaluate_checkpoint,
    evaluate_module,
    score_module,
)
from objectives.features import FEATURE_SETS, build_features, feature_set_width
from objectives.labels import make_labels
from objectives.prepare import normalize, prepare_data, train_bars
from objectives.train_config import TrainConfig
from objectives.training import EpochReport, TrainResult, train_model

__all__ = [
    "FEATURE_SETS",
    "BacktestResult",
    "BacktestSpec",
    "DataSpec",
    "EpochReport",
    "EvalResult",
    "EvalSettings",
    "LabelSpec",
    "PreparedData",
    "SplitSpec",
    "Splits",
    "TrainConfig",
    "TrainResult",
    "ValidationSpec",
    "actions_to_positions",
    "build_features",
    "check_length",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_module",
    "feature_set_width",
    "infer_bar_seconds",
    "infer_periods_per_year",
    "load_bars",
    "load_spec_bars",
    "make_labels",
    "normalize",
    "prepare_data",
    "run_backtest",
    "score_module",
    "split_ranges",
    "train_bars",
    "train_model",
]
