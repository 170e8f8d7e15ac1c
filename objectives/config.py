"""Typed, frozen settings of the objective: data, labels, splits, backtest.

These are sections of the experiment spec (``engine.spec`` composes them) and
the arguments of :mod:`objectives` functions. Validation happens here, once;
unknown keys are errors so that a typo never goes unnoticed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BacktestSpec", "DataSpec", "LabelSpec", "SplitSpec", "ValidationSpec"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class LabelSpec(_Frozen):
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


class SplitSpec(_Frozen):
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
                f"train + val + test must be 1, got {self.train} + {self.val} + {self.test} = {total:g}"
            )
        return self


_WALK_FORWARD_KEYS = ("folds", "window", "embargo_bars", "initial_train", "warm_start_folds", "fold_epochs")


class ValidationSpec(_Frozen):
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
    """

    scheme: Literal["holdout", "walk_forward"] = "walk_forward"
    folds: int = Field(default=4, ge=2, le=64, description="walk_forward: validation blocks")
    window: Literal["expanding", "rolling"] = Field(
        default="expanding", description="walk_forward: train on all earlier bars, or a rolling window"
    )
    embargo_bars: int = Field(
        default=0, ge=0, le=100_000, description="walk_forward: bars dropped after the purge gap"
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

    @model_validator(mode="after")
    def _keys_of_the_scheme(self) -> ValidationSpec:
        if self.scheme == "holdout":
            extra = [k for k in _WALK_FORWARD_KEYS if k in self.model_fields_set]
            if extra:
                raise ValueError(
                    f"{', '.join(extra)}: walk_forward settings; remove them or set scheme 'walk_forward'"
                )
        return self


class DataSpec(_Frozen):
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
    max_bars: int | None = Field(default=None, ge=100, description="keep only the last N bars")
    label: LabelSpec = LabelSpec()
    splits: SplitSpec = SplitSpec()
    validation: ValidationSpec = ValidationSpec()

    @model_validator(mode="after")
    def _columns_feature_set(self) -> DataSpec:
        if self.feature_set == "columns" and not self.feature_columns:
            raise ValueError("feature_set 'columns' needs feature_columns: the list of file columns to use")
        return self


class BacktestSpec(_Frozen):
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
