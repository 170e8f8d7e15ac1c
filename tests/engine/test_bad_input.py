"""Bad specs and data files: ``validate`` and ``run`` refuse them the same way.

Each case writes a spec (and for data cases a data file) into ``tmp_path``
and runs the CLI in-process. A refusal is exit code 2 and one line on stderr,
``error: <file>: <json.path>: what is wrong (got X); how to fix it``, with no
traceback and nothing written. Spec, header and bar problems are refused by
``validate`` (which loads the bars, the cheap part of ``check-data``); too
few bars for the folds (``stage="run"``) only show when ``run`` prepares
them, which must refuse them before writing anything.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytest

from tests.objectives.helpers import make_bars, write_csv

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.json"))
NAN, INF = math.nan, math.inf
DELETE = object()

Writer = Callable[[Path], Path]


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        edits: dotted JSON path -> new value (``DELETE`` removes the key).
        path: the JSON path the message must start with ('' for none).
        hint: a fragment of the fix the message must contain.
        base: the spec edited: a small model study ('model') or DTLZ2 ('synthetic').
        text: the spec file's text instead of JSON from ``base`` and ``edits``.
        data: writes the data file the spec's ``data.source`` points to.
        run: also run ``boengine run`` on it (always for data cases).
        stage: 'validate' refuses it, or 'run' only (validate accepts it).
    """

    edits: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    hint: str = ""
    base: Literal["model", "synthetic"] = "model"
    text: bytes | None = None
    data: Writer | None = None
    run: bool = False
    stage: Literal["validate", "run"] = "validate"


def model_spec() -> dict[str, Any]:
    """experiments/smoke.json on one worker: a tiny LSTM study on built-in bars."""
    raw: dict[str, Any] = json.loads((ROOT / "experiments" / "smoke.json").read_text())
    raw["executor"] = {"kind": "local", "workers": 1}
    return raw


def synthetic_spec() -> dict[str, Any]:
    return {
        "name": "syn",
        "strategy": "synthetic:dtlz2",
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -1.1},
            "sharpe": {"goal": "max", "threshold": -1.1},
            "max_drawdown_pct": {"goal": "min", "threshold": 1.1},
        },
        "budget": {"trials": 6, "sobol_trials": 6, "max_epochs": 3, "trial_timeout_s": 60},
        "early_stopping": {"enabled": False},
        "executor": {"workers": 1},
        "seed": 3,
    }


def edited(base: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    raw = json.loads(json.dumps(base))
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return raw


# --- data files -----------------------------------------------------------------------------

GOOD_ROWS = 400


def bars_frame(n: int = GOOD_ROWS) -> pd.DataFrame:
    """Valid hourly OHLCV bars with a ``timestamp`` column of ISO strings."""
    bars = make_bars(n, seed=1)
    out = bars.copy()
    out.insert(0, "timestamp", out.index.strftime("%Y-%m-%d %H:%M:%S"))
    return out.reset_index(drop=True)


def csv_with(edit: Callable[[pd.DataFrame], pd.DataFrame], n: int = GOOD_ROWS) -> Writer:
    def write(directory: Path) -> Path:
        path = directory / "bars.csv"
        edit(bars_frame(n).astype(object)).to_csv(path, index=False)
        return path

    return write


def raw_file(name: str, content: bytes) -> Writer:
    def write(directory: Path) -> Path:
        path = directory / name
        path.write_bytes(content)
        return path

    return write


def no_file(name: str) -> Writer:
    return lambda directory: directory / name


def a_directory(directory: Path) -> Path:
    path = directory / "bars.csv"
    path.mkdir()
    return path


def parquet_without_timestamp(directory: Path) -> Path:
    path = directory / "bars.parquet"
    bars_frame().drop(columns="timestamp").to_parquet(path)
    return path


def parquet_with_duplicate_index(directory: Path) -> Path:
    path = directory / "bars.parquet"
    bars = make_bars(GOOD_ROWS, seed=1)
    bars.index = bars.index.where(bars.index != bars.index[50], bars.index[49])
    bars.to_parquet(path)
    return path


def cell(row: int, column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame

    return edit


def swap_rows(a: int, b: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.iloc[[a, b]] = frame.iloc[[b, a]].to_numpy()
        return frame

    return edit


def drop(*columns: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.drop(columns=list(columns))


def header_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


def unchanged(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


# --- the corpus -----------------------------------------------------------------------------

OBJECTIVES = {
    "threshold NaN": Case(
        {"objectives.sharpe.threshold": NAN}, "objectives.sharpe.threshold", "NaN", run=True
    ),
    "threshold Infinity": Case({"objectives.sharpe.threshold": INF}, "objectives.sharpe.threshold", "finite"),
    "threshold -Infinity": Case(
        {"objectives.return_pct.threshold": -INF}, "objectives.return_pct.threshold", "finite"
    ),
    "synthetic threshold NaN": Case(
        {"objectives.max_drawdown_pct.threshold": NAN},
        "objectives.max_drawdown_pct.threshold",
        "finite",
        "synthetic",
    ),
    "drawdown threshold below 0": Case(
        {"objectives.max_drawdown_pct.threshold": -1},
        "objectives.max_drawdown_pct.threshold",
        "inside that range",
    ),
    "drawdown threshold above 100": Case(
        {"objectives.max_drawdown_pct.threshold": 150},
        "objectives.max_drawdown_pct.threshold",
        "inside that range",
    ),
    "drawdown goal max": Case(
        {"objectives.max_drawdown_pct.goal": "max"},
        "objectives.max_drawdown_pct.goal",
        '"goal": "min"',
        run=True,
    ),
    "return goal min": Case(
        {"objectives.return_pct.goal": "min"}, "objectives.return_pct.goal", '"goal": "max"'
    ),
    "sharpe goal min": Case({"objectives.sharpe.goal": "min"}, "objectives.sharpe.goal", '"goal": "max"'),
    "synthetic sharpe goal min": Case(
        {"objectives.sharpe.goal": "min"}, "objectives.sharpe.goal", '"goal": "max"', "synthetic"
    ),
    "return threshold -100": Case(
        {"objectives.return_pct.threshold": -100}, "objectives.return_pct.threshold", "set it above -100"
    ),
    "return threshold -250": Case(
        {"objectives.return_pct.threshold": -250}, "objectives.return_pct.threshold", "set it above -100"
    ),
    "val_accuracy threshold as percent": Case(
        {"objectives.max_drawdown_pct": DELETE, "objectives.val_accuracy": {"goal": "max", "threshold": 55}},
        "objectives.val_accuracy.threshold",
        "inside that range",
    ),
    "val_loss goal max": Case(
        {"objectives.val_loss": {"goal": "max", "threshold": 1.0}},
        "objectives.val_loss.goal",
        '"goal": "min"',
    ),
    "buy-and-hold objective": Case(
        {"objectives.sharpe": DELETE, "objectives.bh_sharpe": {"goal": "max", "threshold": 0}},
        "objectives.bh_sharpe",
        "use 'sharpe' instead",
    ),
    "unknown objective metric": Case(
        {"objectives.pnl": {"goal": "max", "threshold": 0}}, "objectives", "known:"
    ),
    "no objectives": Case({"objectives": {}}, "objectives", "add objectives from"),
    "one objective": Case(
        {"objectives": {"sharpe": {"goal": "max", "threshold": 0}}}, "objectives", "add objectives"
    ),
    "objective not an object": Case({"objectives.sharpe": "max"}, "objectives.sharpe", "JSON object"),
    "objective goal unknown": Case(
        {"objectives.sharpe.goal": "maximise"}, "objectives.sharpe.goal", "'max' or 'min'"
    ),
    "threshold missing": Case(
        {"objectives.sharpe": {"goal": "max"}}, "objectives.sharpe.threshold", "add it"
    ),
    "objective key typo": Case(
        {"objectives.sharpe.tresh": 0}, "objectives.sharpe.tresh", "known keys: goal, threshold"
    ),
}

CONSTRAINTS = {
    "bound NaN": Case(
        {"constraints": [{"metric": "num_trades", "op": ">=", "bound": NAN}]},
        "constraints.0.bound",
        "finite",
        run=True,
    ),
    "bound Infinity": Case(
        {"constraints": [{"metric": "num_trades", "op": "<=", "bound": INF}]}, "constraints.0.bound", "finite"
    ),
    "bound overflows to inf": Case({"constraints": ["num_trades >= 1e999"]}, "constraints", "must look like"),
    "win rate above 100": Case(
        {"constraints": ["win_rate_pct >= 120"]}, "constraints.0", "inside that range"
    ),
    "exposure below 0": Case({"constraints": ["exposure_pct <= -5"]}, "constraints.0", "inside that range"),
    "num_trades below 0": Case({"constraints": ["num_trades >= -1"]}, "constraints.0", "inside that range"),
    "buy-and-hold constraint": Case(
        {"constraints": ["bh_return_pct >= 0"]}, "constraints.0", "use 'return_pct'"
    ),
    "duplicate metric and side": Case(
        {"constraints": ["num_trades >= 1", "num_trades >= 5"]}, "constraints.1", "keep one"
    ),
    "contradictory bounds": Case(
        {"constraints": ["win_rate_pct >= 60", "win_rate_pct <= 40"]}, "constraints.1", "widen them"
    ),
    "unknown metric": Case({"constraints": ["alpha >= 1"]}, "constraints.0", "known:"),
    "constraint on an objective": Case(
        {"constraints": ["sharpe >= 0"]}, "constraints.0", "threshold in objectives"
    ),
    "constraint op unknown": Case(
        {"constraints": [{"metric": "num_trades", "op": ">", "bound": 1}]}, "constraints.0.op", "'>=' or '<='"
    ),
    "malformed constraint": Case({"constraints": ["num_trades > 1"]}, "constraints", "'num_trades >= 10'"),
    "constraint not a string": Case({"constraints": [5]}, "constraints", "string like"),
    "constraints not a list": Case({"constraints": "num_trades >= 1"}, "constraints", "JSON list"),
}

TYPES = {
    "trials true": Case({"budget.trials": True}, "budget.trials", "integer", run=True),
    "trials 2.5": Case({"budget.trials": 2.5}, "budget.trials", "whole number such as 2"),
    "trials as a string": Case({"budget.trials": "6"}, "budget.trials", "without quotes"),
    "seed 1.5": Case({"seed": 1.5}, "seed", "integer"),
    "enabled 1": Case({"early_stopping.enabled": 1}, "early_stopping.enabled", "true or false"),
    "synchronous yes": Case({"executor.synchronous": "yes"}, "executor.synchronous", "true or false"),
    "timeout true": Case({"budget.trial_timeout_s": True}, "budget.trial_timeout_s", "write a number"),
    "fee as a string": Case({"backtest.fee_bps": "0.5"}, "backtest.fee_bps", "without quotes"),
    "fee NaN": Case({"backtest.fee_bps": NAN}, "backtest.fee_bps", "finite"),
    "timeout Infinity": Case({"budget.trial_timeout_s": INF}, "budget.trial_timeout_s", "finite"),
    "max_bars true": Case({"data.max_bars": True}, "data.max_bars", "integer"),
    "horizon 6.5": Case({"data.label.horizon": 6.5}, "data.label.horizon", "integer"),
    "optimizer restarts true": Case({"optimizer.num_restarts": True}, "optimizer.num_restarts", "integer"),
    "optimizer list item true": Case(
        {"optimizer.halve_restarts_after": [True, 10]}, "optimizer.halve_restarts_after", "integer"
    ),
    "section not an object": Case({"budget": "many"}, "budget", "JSON object"),
    "name not a string": Case({"name": 5}, "name", "double quotes"),
    "name with spaces": Case({"name": "bad name!"}, "name", "letters, digits"),
    "name missing": Case({"name": DELETE}, "name", "add it"),
    "strategy missing": Case({"strategy": DELETE}, "strategy", "add it"),
    "unknown top-level key": Case({"budgett": {}}, "budgett", "known keys: name"),
    "unknown nested key": Case({"budget.trails": 3}, "budget.trails", "known keys: trials"),
}

SEARCH_SPACE = {
    "int parameter as a string": Case(
        {"search_space.num_layers": "two"}, "search_space.num_layers", "of that type", run=True
    ),
    "float parameter as a string": Case(
        {"search_space.dropout": "high"}, "search_space.dropout", "of that type"
    ),
    "float parameter as a bool": Case({"search_space.dropout": True}, "search_space.dropout", "of that type"),
    "fixed value with low": Case(
        {"search_space.hidden_size": {"value": 16, "low": 8}}, "search_space.hidden_size", "remove low"
    ),
    "fixed value with values": Case(
        {"search_space.hidden_size": {"value": 16, "values": [8, 16]}},
        "search_space.hidden_size",
        "remove values",
    ),
    "choice with log": Case(
        {"search_space.hidden_size": {"values": [16, 32], "log": True}},
        "search_space.hidden_size",
        "remove log",
    ),
    "dropout fixed above 1": Case(
        {"search_space.dropout": 1.5}, "search_space.dropout", "change the fixed value"
    ),
    "dropout range below 0": Case(
        {"search_space.dropout": {"low": -0.1, "high": 0.3}},
        "search_space.dropout",
        "raise the range's low end",
    ),
    "dropout range up to 1": Case(
        {"search_space.dropout": {"low": 0.1, "high": 1.0}},
        "search_space.dropout",
        "lower the range's high end",
    ),
    "dropout NaN": Case({"search_space.dropout": NAN}, "search_space.dropout", "NaN"),
    "zero layers": Case({"search_space.num_layers": 0}, "search_space.num_layers", "change the fixed value"),
    "layer range from 0": Case(
        {"search_space.num_layers": {"low": 0, "high": 2}}, "search_space.num_layers", "low end"
    ),
    "negative hidden size": Case(
        {"search_space.hidden_size": {"values": [-8, 16]}},
        "search_space.hidden_size",
        "remove the choice value -8",
    ),
    "float range on an int parameter": Case(
        {"search_space.num_layers": {"type": "float", "low": 1, "high": 2}},
        "search_space.num_layers",
        '"type": "int"',
    ),
    "range bound as a string": Case(
        {"search_space.seq_len": {"low": 8, "high": "16"}}, "search_space.seq_len", "without quotes"
    ),
    "range bound as a bool": Case(
        {"search_space.dropout": {"low": False, "high": 0.3}}, "search_space.dropout", "without quotes"
    ),
    "values not a list": Case(
        {"search_space.hidden_size": {"values": "16,32"}}, "search_space.hidden_size", "[16, 32"
    ),
    "one choice value": Case(
        {"search_space.hidden_size": {"values": [16]}}, "search_space.hidden_size", "fixed value"
    ),
    "log as a string": Case(
        {"search_space.dropout": {"low": 0.1, "high": 0.3, "log": "yes"}},
        "search_space.dropout",
        "true or false",
    ),
    "fixed value as a list": Case(
        {"search_space.num_layers": [1, 2]}, "search_space.num_layers", '{"values": [1, 2]}'
    ),
    "fixed value null": Case({"search_space.num_layers": None}, "search_space.num_layers", "give one value"),
    "unknown parameter": Case({"search_space.lr": 0.1}, "search_space", "known: learning_rate"),
    "unknown type": Case(
        {"search_space.dropout": {"type": "normal", "low": 0, "high": 1}},
        "search_space.dropout",
        "use float, int",
    ),
    "training parameter out of range": Case(
        {"search_space.learning_rate": {"low": -0.1, "high": 0.1}},
        "search_space.learning_rate",
        "raise the range's low end",
    ),
    "zero heads": Case(
        {"strategy": "transformer_large", "search_space": {"n_heads": {"values": [0, 2]}}},
        "search_space.n_heads",
        "remove the choice value 0",
    ),
    "d_model is not a search parameter": Case(
        {"strategy": "transformer_large", "search_space": {"d_model": 64}},
        "search_space",
        "known: learning_rate",
    ),
    "negative head_dim": Case(
        {"strategy": "transformer_large", "search_space": {"head_dim": -8}},
        "search_space.head_dim",
        "fixed value",
    ),
    "top_k above fixed experts": Case(
        {"strategy": "moe_transformer", "search_space": {"top_k": 3, "num_experts": 2}},
        "search_space",
        "change the fixed values",
    ),
    "no experts": Case(
        {"strategy": "moe_transformer", "search_space": {"num_experts": 0}},
        "search_space",
        "widen the ranges",
    ),
    "bool parameter as an int range": Case(
        {"search_space.predict_profit": {"low": 0, "high": 1}}, "search_space.predict_profit", "of that type"
    ),
    "repeated choice values": Case(
        {"search_space.hidden_size": {"values": [16, 16]}}, "search_space.hidden_size", "repeat"
    ),
    "empty range": Case(
        {"search_space.seq_len": {"low": 8, "high": 8}}, "search_space.seq_len", "use a fixed value"
    ),
    "range without high": Case({"search_space.dropout": {"low": 0.1}}, "search_space.dropout", "add them"),
    "unknown loss": Case({"search_space.loss": "hinge"}, "search_space.loss", "change the fixed value"),
    "gate of 1.5": Case(
        {"search_space.confidence_gate": 1.5}, "search_space.confidence_gate", "change the fixed value"
    ),
    "learnable positions too short": Case(
        {"strategy": "transformer_huge", "search_space": {"seq_len": {"low": 8, "high": 200}}},
        "search_space.seq_len",
        "lower the range's high end",
    ),
    "unknown llm mode": Case(
        {"strategy": "llm", "search_space": {"mode": "bogus"}}, "search_space.mode", "change the fixed value"
    ),
    "choice on a constrained parameter": Case(
        {"strategy": "moe_transformer", "search_space": {"top_k": {"values": [1, 2]}}},
        "search_space",
        "give it a range",
    ),
    "every parameter fixed": Case(
        {"search_space": {f"x{i}": 0.5 for i in range(6)}}, "search_space", "give at least one", "synthetic"
    ),
    "synthetic range outside the box": Case(
        {"search_space.x0": {"low": -1.0, "high": 1.0}}, "search_space.x0", "inside that range", "synthetic"
    ),
}

SECTIONS = {
    "batch above trials": Case({"budget.batch_size": 8}, "budget.batch_size", "at most 6", run=True),
    "priors above trials": Case(
        {"warm_start": {"priors": "data_driven", "num_priors": 10}}, "warm_start.num_priors", "at most 6"
    ),
    "num_priors without priors": Case({"warm_start.num_priors": 2}, "warm_start.num_priors", "data_driven"),
    "sobol above trials": Case({"budget.sobol_trials": 8}, "budget", "lower it"),
    "early stopping never acts": Case(
        {"early_stopping.enabled": True}, "early_stopping.min_epochs", "lower min_epochs"
    ),
    "early stopping never compares": Case(
        {"early_stopping.enabled": True, "budget.max_epochs": 8, "early_stopping.min_curves": 8},
        "early_stopping.min_curves",
        "lower min_curves",
    ),
    "time budget above timeout": Case({"budget.trial_time_budget_s": 400}, "budget", "below trial_timeout_s"),
    "unknown column key": Case({"data.columns": {"price": "Close"}}, "data.columns", "map only timestamp"),
    "column name not a string": Case({"data.columns": {"close": 5}}, "data.columns.close", "double quotes"),
    "columns not an object": Case({"data.columns": "Close"}, "data.columns", "JSON object"),
    "empty column name": Case({"data.columns": {"close": " "}}, "data.columns", "column name"),
    "end that moves with the clock": Case({"data.end": "now"}, "data.end", "write an ISO date"),
    "end not a timestamp": Case({"data.end": "Nov 27 2026"}, "data.end", "write an ISO date"),
    "unknown built-in source": Case({"data.source": "builtin:nope"}, "data.source", "builtin:eurusd_1h"),
    "empty source": Case({"data.source": ""}, "data.source", "builtin:eurusd_1h"),
    "timestamp format without %": Case(
        {"data.timestamp_format": "YYYY-MM-DD"}, "data.timestamp_format", "%Y-%m-%d"
    ),
    "feature columns without feature set": Case(
        {"data.feature_columns": ["signal"]}, "data.feature_columns", "set feature_set to 'columns'"
    ),
    "unknown feature set": Case({"data.feature_set": "fancy"}, "data.feature_set", "known:"),
    "max_bars too few for the folds": Case({"data.max_bars": 100}, "data.max_bars", "raise data.max_bars"),
    "splits do not sum to 1": Case(
        {"data.splits": {"train": 0.5, "val": 0.2, "test": 0.2}}, "data.splits", "must be 1"
    ),
    "unknown strategy": Case({"strategy": "gpt5"}, "strategy", "known: lstm"),
    "unknown synthetic problem": Case({"strategy": "synthetic:nope"}, "strategy", "known: synthetic:"),
    "gpus on a local executor": Case(
        {"executor.gpus_per_trial": 1}, "executor.gpus_per_trial", "set kind to 'ray'"
    ),
    "address on a local executor": Case({"executor.address": "auto"}, "executor", "set kind to 'ray'"),
    "synthetic with a data source": Case(
        {"data.source": "builtin:msft_1d"}, "data.source", "remove it", "synthetic"
    ),
    "synthetic with priors": Case(
        {"warm_start": {"priors": "data_driven", "num_priors": 2}},
        "warm_start.priors",
        "model family",
        "synthetic",
    ),
    "model with a synthetic section": Case(
        {"synthetic": {"epoch_seconds": 1}}, "synthetic", "remove the section"
    ),
}

TEXTS = {
    "invalid JSON": Case(text=b'{"name": "x",}', hint="fix the syntax", run=True),
    "empty spec file": Case(text=b"", hint="fix the syntax"),
    "repeated key": Case(
        text=b'{"name": "a", "strategy": "synthetic:dtlz2", "name": "b"}', path="name", hint="keep one"
    ),
    "repeated nested key": Case(
        text=b'{"name": "a", "strategy": "synthetic:dtlz2", "budget": {"trials": 6, "trials": 9}}',
        path="budget.trials",
        hint="keep one",
    ),
    "spec is a list": Case(text=b"[1, 2]", hint='{"name"'),
    "not UTF-8": Case(text='{"name": "caf\u00e9"}'.encode("latin-1"), hint="save the file as UTF-8"),
}

DATA = {
    "missing data file": Case(data=no_file("missing.csv"), hint="give a .csv or .parquet path"),
    "wrong suffix": Case(data=raw_file("bars.xlsx", b"timestamp,close\n"), hint="save the bars as .csv"),
    "data path is a directory": Case(data=a_directory, hint="give a .csv or .parquet path"),
    "empty data file": Case(data=raw_file("bars.csv", b""), hint="a header line"),
    "no close column": Case(data=csv_with(drop("close")), hint="map them with data.columns"),
    "no timestamp column": Case(data=csv_with(drop("timestamp")), hint="map them with data.columns"),
    "open and high without low": Case(data=csv_with(drop("low")), hint="map them with data.columns"),
    "semicolon-separated file": Case(
        data=raw_file("bars.csv", b"timestamp;open;high;low;close;volume\n2021-01-04 00:00:00;1;1;1;1;1\n"),
        hint="save it comma-separated",
    ),
    "ragged rows": Case(
        data=raw_file(
            "bars.csv",
            b"timestamp,open,high,low,close,volume\n2021-01-04,1,1,1,1,1\n2021-01-05,1,1,1,1,1,7,8\n",
        ),
        hint="valid CSV",
    ),
    "parquet without a timestamp": Case(data=parquet_without_timestamp, hint="map them with data.columns"),
    "not a parquet file": Case(
        data=raw_file("bars.parquet", b"PAR1 not really"), hint="valid CSV or Parquet"
    ),
    "mapped column not in the file": Case(
        {"data.columns": {"close": "Price"}}, data=csv_with(unchanged), hint="fix data.columns.close"
    ),
    "feature column not in the file": Case(
        {"data.feature_set": "columns", "data.feature_columns": ["signal"]},
        data=csv_with(unchanged),
        hint="file columns: timestamp",
    ),
    "header only": Case(data=csv_with(header_only), hint="one row per bar"),
    "unparsable timestamp": Case(
        data=csv_with(cell(7, "timestamp", "2021-13-45 99:00")), hint="data.timestamp_format"
    ),
    "timestamp against its format": Case(
        {"data.timestamp_format": "%Y-%m-%d %H:%M:%S"},
        data=csv_with(cell(9, "timestamp", "04.01.2021 10:00")),
        hint="fix that value",
    ),
    "empty timestamp": Case(data=csv_with(cell(5, "timestamp", "")), hint="fix the file"),
    "non-monotonic timestamps": Case(data=csv_with(swap_rows(20, 21)), hint="sort the file by time"),
    "duplicate timestamps": Case(
        data=csv_with(cell(31, "timestamp", bars_frame().loc[30, "timestamp"])), hint="drop the duplicates"
    ),
    "duplicate parquet index": Case(data=parquet_with_duplicate_index, hint="drop the duplicates"),
    "NaN price": Case(data=csv_with(cell(12, "close", "NaN")), hint="clean or drop those rows"),
    "zero price": Case(data=csv_with(cell(12, "low", 0.0)), hint="fix or drop those bars"),
    "high below low": Case(data=csv_with(cell(12, "high", 1.0)), hint="fix or drop those bars"),
    "non-numeric price": Case(data=csv_with(cell(12, "close", "n/a-price")), hint="fix or drop that row"),
    "NaN price without volume or open/high/low": Case(
        data=csv_with(lambda f: cell(12, "close", "NaN")(f.drop(columns=["open", "high", "low", "volume"]))),
        hint="clean or drop those rows",
    ),
    "negative volume": Case(data=csv_with(cell(12, "volume", -5.0)), hint="fix or drop those bars"),
    "too few bars for the folds": Case(data=csv_with(unchanged, n=60), hint="more bars", stage="run"),
}

CASES: dict[str, Case] = {
    **{f"objectives: {k}": v for k, v in OBJECTIVES.items()},
    **{f"constraints: {k}": v for k, v in CONSTRAINTS.items()},
    **{f"types: {k}": v for k, v in TYPES.items()},
    **{f"search space: {k}": v for k, v in SEARCH_SPACE.items()},
    **{f"sections: {k}": v for k, v in SECTIONS.items()},
    **{f"text: {k}": v for k, v in TEXTS.items()},
    **{f"data: {k}": v for k, v in DATA.items()},
}


# --- running the CLI ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    """``run`` installs SIGINT/SIGTERM handlers in this process; put the test runner's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    from engine.interfaces.cli import main

    monkeypatch.setattr(sys, "argv", ["boengine", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root``: its mode and (for files) the SHA-256 of its bytes."""
    listing = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        listing[str(path.relative_to(root))] = (path.stat().st_mode, digest)
    return listing


def write_case(case: Case, tmp_path: Path) -> tuple[Path, Path | None]:
    """The spec file and the data file (if any) of ``case``, written into ``tmp_path``."""
    spec_path = tmp_path / "spec.json"
    if case.text is not None:
        spec_path.write_bytes(case.text)
        return spec_path, None
    raw = edited(synthetic_spec() if case.base == "synthetic" else model_spec(), case.edits)
    data_path = None
    if case.data is not None:
        data_path = case.data(tmp_path)
        raw["data"]["source"] = str(data_path)
        raw["data"].pop("max_bars", None)
    spec_path.write_text(json.dumps(raw, indent=2))
    return spec_path, data_path


def assert_refused(
    code: int, out: str, err: str, case: Case, spec_path: Path, data_path: Path | None
) -> None:
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in out + err
    if data_path is not None:
        assert str(data_path) in line, line
    else:
        prefix = f"error: {spec_path}: "
        assert line.startswith(prefix), line
        assert line[len(prefix) :].startswith(f"{case.path}: " if case.path else ""), line
    assert case.hint in line, line


@pytest.mark.parametrize("name", list(CASES))
def test_validate_refuses(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    spec_path, data_path = write_case(case, tmp_path)
    before = snapshot(tmp_path)
    code, out, err = cli(monkeypatch, capsys, "validate", str(spec_path))
    if case.stage == "run":
        assert (code, err) == (0, ""), err
        assert "ok" in out
    else:
        assert_refused(code, out, err, case, spec_path, data_path)
    assert snapshot(tmp_path) == before


RUN_CASES = [name for name, case in CASES.items() if case.run or case.data is not None]


@pytest.mark.parametrize("name", RUN_CASES)
def test_run_refuses_before_writing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    spec_path, data_path = write_case(case, tmp_path)
    before = snapshot(tmp_path)
    study = tmp_path / "study"
    code, out, err = cli(
        monkeypatch, capsys, "run", str(spec_path), "--study-dir", str(study), "--progress", "quiet"
    )
    assert_refused(code, out, err, case, spec_path, data_path)
    assert snapshot(tmp_path) == before


def test_bad_timestamp_is_quoted_not_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = DATA["unparsable timestamp"]
    spec_path, _ = write_case(case, tmp_path)
    first = bars_frame().loc[0, "timestamp"]
    _, _, err = cli(
        monkeypatch, capsys, "run", str(spec_path), "--study-dir", str(tmp_path / "s"), "--progress", "quiet"
    )
    assert "'2021-13-45 99:00' at data row 8" in err
    assert first not in err
    assert "You might want" not in err and not err.rstrip().endswith(":")


def test_corpus_size() -> None:
    assert len(CASES) >= 60
    assert sum(case.data is not None for case in CASES.values()) >= 12


# --- what must stay accepted ----------------------------------------------------------------


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_every_experiment_validates(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(monkeypatch, capsys, "validate", str(path))
    assert (code, err) == (0, ""), err
    assert f"{path}: ok" in out


def test_spec_with_a_byte_order_mark_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(model_spec()).encode())
    code, out, err = cli(monkeypatch, capsys, "validate", str(path))
    assert (code, err) == (0, ""), err
    assert "ok" in out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_good_data_files_validate(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / f"bars{suffix}"
    if suffix == ".csv":
        write_csv(make_bars(50), data)
    else:
        make_bars(50).to_parquet(data)  # the timestamps are the DatetimeIndex
    raw = edited(model_spec(), {"data.source": str(data), "data.max_bars": DELETE})
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    code, out, err = cli(monkeypatch, capsys, "validate", str(path))
    assert (code, err) == (0, ""), err
    assert f"{path}: ok" in out
