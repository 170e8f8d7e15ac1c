"""Typed, frozen settings of the objective: data, labels, splits, backtest.

These are sections of the experiment spec (``engine.spec`` composes them) and
the arguments of :mod:`objectives` functions. Validation happens here, once;
unknown keys are errors so that a typo never goes unnoticed.
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from objectives.builtin import BUILTIN_SOURCES

__all__ = [
    "COLUMN_KEYS",
    "MAX_CPCV_SPLITS",
    "BacktestSpec",
    "DataSpec",
    "LabelSpec",
    "SpecSection",
    "SplitSpec",
    "ValidationSpec",
    "json_type_problem",
]

#: The boengine fields a data file's columns map to (``DataSpec.columns`` keys).
COLUMN_KEYS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
_BUILTIN_PREFIX = "builtin:"


def json_type_problem(annotation: Any, value: Any) -> str | None:
    """Why ``value`` (parsed JSON) does not have the JSON type ``annotation`` asks for, or None.

    Stricter than pydantic's lax mode, which reads ``true`` as 1, ``"3"`` as 3
    and ``1`` or ``"yes"`` as true: numbers must be JSON numbers, integers
    whole, floats finite, booleans ``true``/``false``. Other types are left
    to pydantic. Items of ``tuple[X, ...]`` are checked one by one.
    """
    if value is None:
        return None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return json_type_problem(args[0], value) if len(args) == 1 else None
    if typing.get_origin(annotation) is tuple and isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = json_type_problem(args[0], item) if args else None
            if problem:
                return f"item {i}: {problem}"
        return None
    return _scalar_problem(annotation, value)


def _scalar_problem(annotation: Any, value: Any) -> str | None:
    shown = json.dumps(value, default=str)
    if annotation is bool and not isinstance(value, bool):
        return f"Input should be a valid boolean (got {shown}); write true or false, without quotes"
    if annotation not in (int, float):
        return None
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
        if annotation is int:
            return (
                f"Input should be a valid integer (got {shown}); write a whole number without quotes, e.g. 3"
            )
        return f"Input should be a valid number (got {shown}); write a number without quotes, e.g. 0.5"
    if not math.isfinite(value):
        return (
            f"Input should be a finite number (got {shown}); NaN and Infinity are not allowed, write a number"
        )
    if annotation is int and not float(value).is_integer():
        return (
            f"Input should be a valid integer, got a number with a fractional part (got {shown}); "
            f"write a whole number such as {math.floor(value)}"
        )
    return None


class SpecSection(BaseModel):
    """Base of every section of the experiment spec.

    Frozen; unknown keys are errors; JSON types are taken literally
    (:func:`json_type_problem`): ``"trials": true`` or ``"trials": 2.5`` is an
    error, not 1 or 2. A field whose type is a model from outside the spec
    (say :class:`engine.optimizer.OptimizerSpec`) gets its keys checked the
    same way, with errors of type ``nested_value_error`` whose ``key`` names
    the inner field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not issubclass(annotation, SpecSection) and isinstance(value, dict):
                _check_foreign(annotation, value)
            return value
        problem = json_type_problem(annotation, value)
        if problem:
            raise ValueError(problem)
        return value


def _check_foreign(model: type[BaseModel], value: dict[str, Any]) -> None:
    for key, item in value.items():
        inner = model.model_fields.get(key)
        problem = json_type_problem(inner.annotation, item) if inner is not None else None
        if problem:
            raise PydanticCustomError("nested_value_error", "{problem}", {"key": key, "problem": problem})


class LabelSpec(SpecSection):
    """How the 3-class action labels and the profit target are made.

    Scheme ``A`` is the original position-aware rule (with no position, as in
    training); scheme ``B`` the symmetric one. Both look ``horizon`` bars ahead:
    ``buy_profit = (max(P[t+1..t+H]) - P[t]) / P[t]`` and
    ``sell_profit = (P[t] - min(P[t+1..t+H])) / P[t]``; a side is labelled when
    its profit exceeds ``profit_threshold`` and beats the other side by at least
    ``min_diff``. Classes: 0 hold, 1 long, 2 short.
    """

    scheme: Literal["A", "B"] = "A"
    horizon: int = Field(default=6, ge=1, le=10_000, description="bars looked ahead")
    profit_threshold: float = Field(default=0.002, gt=0, lt=1)
    min_diff: float = Field(default=0.001, ge=0, lt=1)


class SplitSpec(SpecSection):
    """Chronological fractions of the bars: train, then validation, then test.

    The test part is held out: the search never sees it; only the final
    Pareto set is evaluated there. A purge gap of ``label.horizon`` bars
    separates the parts so that no label looks into the next part.
    """

    train: float = Field(default=0.7, gt=0, lt=1)
    val: float = Field(default=0.15, gt=0, lt=1)
    test: float = Field(default=0.15, ge=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitSpec:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + val + test must be 1, got {self.train} + {self.val} + {self.test} = {total:g}; "
                "change them so that they add up to 1"
            )
        return self


_WALK_FORWARD_KEYS = ("folds", "window", "embargo_bars", "initial_train", "warm_start_folds", "fold_epochs")
_CPCV_KEYS = ("groups", "test_groups")
_SHARED_KEYS = ("embargo_bars",)  # walk_forward and cpcv
#: The most splits (model fits a trial) a cpcv spec may ask for.
MAX_CPCV_SPLITS = 256


class ValidationSpec(SpecSection):
    """How a trial is validated before the held-out test split (which no scheme touches).

    - ``holdout``: train on the training split, backtest on the validation
      split (``splits.train`` / ``splits.val``).
    - ``walk_forward``: the decision bars before the test split are cut into
      an initial training block (``initial_train`` of them) and ``folds``
      consecutive validation blocks. Fold k trains on the bars before block k
      (``expanding``: all of them; ``rolling``: the last ``initial_train``
      share), purged by the label horizon plus ``embargo_bars``, and is
      backtested on block k. The objectives come from the stitched
      out-of-fold returns (one equity curve over all blocks). With
      ``warm_start_folds`` fold k starts from fold k-1's weights and trains at
      most ``fold_epochs`` epochs (default: ``max_epochs`` // 2, at least 1).
    - ``cpcv``: combinatorial purged cross-validation (López de Prado): the
      decision bars before the test split are cut into ``groups`` contiguous
      groups; each of the C(groups, test_groups) splits trades
      ``test_groups`` of them and trains afresh on the rest, purged by the
      label horizon on both sides of every test group and embargoed by
      ``embargo_bars`` after it. The trades recombine into
      ``test_groups`` / ``groups`` x C(groups, test_groups) backtest paths
      over every group (:mod:`objectives.cpcv`).

    In every scheme, what a fit chooses (the epoch kept, early stopping on patience,
    the ``plateau`` learning-rate schedule) is chosen on an inner selection
    slice: the last ``select_fraction`` of its own training window, purged
    from the bars it trains on. The bars it then trades choose nothing.
    """

    scheme: Literal["holdout", "walk_forward", "cpcv"] = "walk_forward"
    folds: int = Field(default=4, ge=2, le=64, description="walk_forward: validation blocks")
    window: Literal["expanding", "rolling"] = Field(
        default="expanding", description="walk_forward: train on all earlier bars, or a rolling window"
    )
    embargo_bars: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="walk_forward and cpcv: bars dropped after the purge gap (cpcv: after each test group)",
    )
    initial_train: float = Field(
        default=0.4,
        gt=0,
        lt=1,
        description="walk_forward: share of the pre-test decision bars in the first training block "
        "(and the rolling window's length)",
    )
    warm_start_folds: bool = Field(
        default=True, description="walk_forward: each fold starts from the previous fold's weights"
    )
    fold_epochs: int | None = Field(
        default=None, ge=1, le=10_000, description="walk_forward, warm-started folds: epochs after the first"
    )
    select_fraction: float = Field(
        default=0.2,
        ge=0.05,
        le=0.5,
        description="share of each fit's training window, at its end, that chooses the kept epoch, "
        "patience and the plateau schedule (not trained on; the traded bars choose nothing)",
    )
    groups: int = Field(
        default=6,
        ge=3,
        le=64,
        description="cpcv: contiguous groups of the decision bars before the test split",
    )
    test_groups: int = Field(
        default=2, ge=1, le=63, description="cpcv: groups each split trades (the rest it trains on)"
    )

    @model_validator(mode="after")
    def _keys_of_the_scheme(self) -> ValidationSpec:
        given = self.model_fields_set
        if self.scheme != "walk_forward":
            allowed = _SHARED_KEYS if self.scheme == "cpcv" else ()
            extra = [k for k in _WALK_FORWARD_KEYS if k in given and k not in allowed]
            if extra:
                raise ValueError(
                    f"{', '.join(extra)}: walk_forward settings; remove them or set scheme 'walk_forward'"
                )
        if self.scheme != "cpcv":
            extra = [k for k in _CPCV_KEYS if k in given]
            if extra:
                raise ValueError(f"{', '.join(extra)}: cpcv settings; remove them or set scheme 'cpcv'")
            return self
        if self.test_groups >= self.groups:
            raise ValueError(
                f"test_groups {self.test_groups} must be below groups {self.groups} (each split trains on "
                f"the groups it does not trade); lower test_groups or raise groups"
            )
        n_splits = math.comb(self.groups, self.test_groups)
        if n_splits > MAX_CPCV_SPLITS:
            raise ValueError(
                f"groups {self.groups}, test_groups {self.test_groups}: {n_splits} splits, each a model fit "
                f"of every trial (at most {MAX_CPCV_SPLITS}); use fewer groups, or test_groups further from "
                "groups / 2"
            )
        return self


class DataSpec(SpecSection):
    """Where the bars come from and how features and labels are built."""

    source: str = Field(
        default="builtin:eurusd_1h",
        description="'builtin:eurusd_1h', 'builtin:msft_1d', or a path to a CSV/Parquet file",
    )
    columns: dict[str, str] | None = Field(
        default=None,
        description="map of boengine column (timestamp, open, high, low, close, volume) "
        "to the file's column name, for files with other headers",
    )
    timestamp_format: str | None = Field(default=None, description="strftime format of the timestamps")
    feature_set: str | None = Field(
        default=None, description="feature set name; default: the strategy's own feature set"
    )
    feature_columns: tuple[str, ...] | None = Field(
        default=None, description="the file's columns used as features by feature_set 'columns'"
    )
    normalization: Literal["column", "row"] = Field(
        default="column",
        description="'column': per-column z-score fitted on the training split; "
        "'row': the original per-row z-score across one bar's features",
    )
    end: str | None = Field(
        default=None,
        description="use only the bars at or before this time (ISO date or timestamp, UTC): "
        "the cut of a study window; default: every bar",
    )
    max_bars: int | None = Field(
        default=None, ge=100, description="keep only the last N bars (of those at or before end)"
    )
    label: LabelSpec = LabelSpec()
    splits: SplitSpec = SplitSpec()
    validation: ValidationSpec = ValidationSpec()

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "must name a data file or a built-in source (got \"\"); e.g. 'builtin:eurusd_1h'"
            )
        name = value[len(_BUILTIN_PREFIX) :] if value.startswith(_BUILTIN_PREFIX) else None
        if name is not None and name not in BUILTIN_SOURCES:
            known = ", ".join(_BUILTIN_PREFIX + k for k in BUILTIN_SOURCES)
            raise ValueError(f"unknown built-in source (got {value!r}); use one of {known} or a file path")
        return value

    @field_validator("end")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is None:
            return value
        import pandas as pd

        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ValueError(
                f"not a date or timestamp (got {value!r}); write e.g. '2026-11-27' or '2026-11-27T23:00'"
            ) from None
        if ts is pd.NaT:
            raise ValueError(f"not a date or timestamp (got {value!r})")
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts.isoformat()

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(COLUMN_KEYS))
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown}; map only {', '.join(COLUMN_KEYS)} to the file's column names"
            )
        empty = sorted(k for k, v in value.items() if not v.strip())
        if empty:
            raise ValueError(f'empty column name for {empty}; give the file\'s column name, e.g. "Close"')
        return value

    @field_validator("timestamp_format")
    @classmethod
    def _strftime(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise ValueError(
                f"must be a strftime format with % directives (got {value!r}); e.g. '%Y-%m-%d %H:%M:%S'"
            )
        return value

    @model_validator(mode="after")
    def _columns_feature_set(self) -> DataSpec:
        if self.feature_set == "columns" and not self.feature_columns:
            raise ValueError("feature_set 'columns' needs feature_columns: the list of file columns to use")
        if self.feature_columns is not None and self.feature_set != "columns":
            raise ValueError(
                f"feature_columns: used by feature_set 'columns' only (feature_set is "
                f"{json.dumps(self.feature_set)}); set feature_set to 'columns' or remove feature_columns"
            )
        if self.feature_columns is not None:
            repeated = sorted({c for c in self.feature_columns if self.feature_columns.count(c) > 1})
            if repeated:
                raise ValueError(f"feature_columns: {repeated} repeat; list each column once")
        return self


class BacktestSpec(SpecSection):
    """How model actions become positions and P&L on a split.

    The action decided at the close of bar t sets the position held from t to
    t+1. Costs (``fee_bps + slippage_bps``, per unit of turnover) are always
    on: a cost-free backtest flatters every high-turnover model.
    """

    fee_bps: float = Field(default=1.0, ge=0, le=1000)
    slippage_bps: float = Field(default=1.0, ge=0, le=1000)
    confidence_gate: float = Field(
        default=0.4,
        ge=0,
        lt=1,
        description="with gate 'probability': actions whose probability is below this are flat; "
        "with gate 'train_quantile': the quantile of the model's trade probability on the training "
        "split below which it is flat",
    )
    gate: Literal["probability", "train_quantile"] = Field(
        default="train_quantile",
        description="'probability': the original's absolute gate on the action probability; "
        "'train_quantile': the model takes the more likely of long and short where its probability "
        "is at least the confidence_gate-quantile of the same probability over its last training "
        "bars, so a gate of 0.8 is in the market about 20% of the time whatever its calibration",
    )
    allow_short: bool = True

    @model_validator(mode="after")
    def _costs_on(self) -> BacktestSpec:
        if self.fee_bps + self.slippage_bps <= 0:
            raise ValueError("costs are always on: set fee_bps and/or slippage_bps above 0 (e.g. 1.0 each)")
        return self
