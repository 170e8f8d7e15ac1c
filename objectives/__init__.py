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

The names below are imported from their modules on first use (PEP 562):
:mod:`objectives.training` and :mod:`objectives.evaluate` import torch,
which reading a study or a spec does not need. ``objectives.evaluate`` is both a
module and a function: once anything has imported the module
(``from objectives.evaluate import ...``), Python's import system makes the
package attribute the module, so code that calls it imports the function
from its module: ``from objectives.evaluate import evaluate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from objectives.backtest import BacktestResult, actions_to_positions, run_backtest
    from objectives.config import BacktestSpec, DataSpec, LabelSpec, SplitSpec, ValidationSpec
    from objectives.data import infer_bar_seconds, infer_periods_per_year, load_bars, load_spec_bars
    from objectives.dataset import PreparedData, Splits, check_length, split_ranges
    from objectives.evaluate import EvalResult, EvalSettings, TrialModel, evaluate
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
    "TrialModel",
    "ValidationSpec",
    "actions_to_positions",
    "build_features",
    "check_length",
    "evaluate",
    "feature_set_width",
    "infer_bar_seconds",
    "infer_periods_per_year",
    "load_bars",
    "load_spec_bars",
    "make_labels",
    "normalize",
    "prepare_data",
    "run_backtest",
    "split_ranges",
    "train_bars",
    "train_model",
]


_MODULES: dict[str, str] = {
    "BacktestResult": "objectives.backtest",
    "BacktestSpec": "objectives.config",
    "DataSpec": "objectives.config",
    "EpochReport": "objectives.training",
    "EvalResult": "objectives.evaluate",
    "EvalSettings": "objectives.evaluate",
    "FEATURE_SETS": "objectives.features",
    "LabelSpec": "objectives.config",
    "PreparedData": "objectives.dataset",
    "SplitSpec": "objectives.config",
    "Splits": "objectives.dataset",
    "TrainConfig": "objectives.train_config",
    "TrainResult": "objectives.training",
    "TrialModel": "objectives.evaluate",
    "ValidationSpec": "objectives.config",
    "actions_to_positions": "objectives.backtest",
    "build_features": "objectives.features",
    "check_length": "objectives.dataset",
    "evaluate": "objectives.evaluate",
    "feature_set_width": "objectives.features",
    "infer_bar_seconds": "objectives.data",
    "infer_periods_per_year": "objectives.data",
    "load_bars": "objectives.data",
    "load_spec_bars": "objectives.data",
    "make_labels": "objectives.labels",
    "normalize": "objectives.prepare",
    "prepare_data": "objectives.prepare",
    "run_backtest": "objectives.backtest",
    "split_ranges": "objectives.dataset",
    "train_bars": "objectives.prepare",
    "train_model": "objectives.training",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'objectives' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value
    return value
