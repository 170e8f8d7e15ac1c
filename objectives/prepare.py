"""Prepare a study's data once: load, features, labels, splits, normalisation.

Normalisation (``DataSpec.normalization``):

- ``column`` (default): per-feature z-score with mean and population std
  fitted on the training part only, i.e. feature rows ``[0, train_stop)``
  (the training decision bars and the window history before them). A
  constant column (std < 1e-12) is only centred. CPCV: every row before the
  test split (the final fit's); each split standardises its inputs again on
  its own training bars (:func:`objectives.cpcv.split_features`).
- ``row``: the original per-row z-score across one bar's features
  (population std + 1e-8); nothing is fitted.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from objectives.config import DataSpec
from objectives.cpcv import check_cpcv, cpcv_ranges
from objectives.data import infer_bar_seconds, infer_periods_per_year, load_spec_bars
from objectives.dataset import (
    CPCVSplit,
    FitWindow,
    PreparedData,
    Splits,
    check_length,
    check_walk_forward,
    holdout_fit,
    split_ranges,
    walk_forward_ranges,
)
from objectives.features import build_features
from objectives.labels import make_labels
from strategies.exceptions import ConfigError

__all__ = ["normalize", "prepare_data", "study_parts", "train_bars"]

logger = logging.getLogger(__name__)


def normalize(features: np.ndarray, method: str, fit_stop: int) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Normalise `n_bars x F` features; ``column`` stats come from rows ``[0, fit_stop)`` only.

    Returns:
        (`n_bars x F` float32, scaler stats ``{"mean": F, "std": F}`` or {} for ``row``).
    """
    x = np.asarray(features, dtype=np.float64)
    if method == "row":
        mean = x.mean(axis=1, keepdims=True)
        std = x.std(axis=1, keepdims=True)
        return ((x - mean) / (std + 1e-8)).astype(np.float32), {}
    if method != "column":
        raise ConfigError(f"normalization must be 'column' or 'row', got {method!r}")
    if fit_stop < 1:
        raise ConfigError(f"normalisation needs at least one training row, got fit_stop={fit_stop}")
    mean = x[:fit_stop].mean(axis=0)
    std = x[:fit_stop].std(axis=0)
    std = np.where(std < 1e-12, 1.0, std)
    return ((x - mean) / std).astype(np.float32), {"mean": mean.tolist(), "std": std.tolist()}


def study_parts(
    spec: DataSpec, n_bars: int, max_seq_len: int
) -> tuple[Splits, tuple[FitWindow, ...], FitWindow | None]:
    """The splits, walk-forward folds and final fit of ``n_bars`` under ``spec.validation``
    (CPCV: no folds; its groups and splits come from :func:`objectives.cpcv.cpcv_ranges`).

    Raises :class:`DataError` (naming the field and the fix) when the data are too short.
    """
    h = spec.label.horizon
    if spec.validation.scheme == "cpcv":
        check_cpcv(n_bars, max_seq_len, h, spec.splits, spec.validation, source=spec.source)
        splits, _, _, final = cpcv_ranges(n_bars, max_seq_len, h, spec.splits, spec.validation)
        return splits, (), final
    if spec.validation.scheme == "walk_forward":
        check_walk_forward(n_bars, max_seq_len, h, spec.splits, spec.validation, source=spec.source)
        return walk_forward_ranges(n_bars, max_seq_len, h, spec.splits, spec.validation)
    check_length(
        n_bars,
        max_seq_len,
        h,
        spec.splits,
        source=spec.source,
        select_fraction=spec.validation.select_fraction,
    )
    return split_ranges(n_bars, max_seq_len, h, spec.splits), (), None


def prepare_data(spec: DataSpec, *, feature_set: str, max_seq_len: int) -> PreparedData:
    """Load ``spec.source`` and compute features, labels, splits and the normalisation once.

    Args:
        spec: the data section of the experiment.
        feature_set: a registered feature set (``spec.feature_set`` or the family default).
        max_seq_len: the longest ``seq_len`` any trial may use (fixes the decision bars).
    """
    if max_seq_len < 1:
        raise ConfigError(f"max_seq_len must be >= 1, got {max_seq_len}")
    started = time.perf_counter()
    bars = load_spec_bars(spec)
    splits, folds, final = study_parts(spec, len(bars), max_seq_len)
    cpcv = spec.validation.scheme == "cpcv"
    groups: tuple[tuple[int, int], ...] = ()
    combinations: tuple[CPCVSplit, ...] = ()
    if cpcv:
        _, groups, combinations, _ = cpcv_ranges(
            len(bars), max_seq_len, spec.label.horizon, spec.splits, spec.validation
        )
    index = pd.DatetimeIndex(bars.index)
    bar_seconds = infer_bar_seconds(index)
    frame = build_features(bars, feature_set, columns=spec.feature_columns, bar_seconds=bar_seconds)
    close = bars["close"].to_numpy(dtype=np.float64)
    labels, profit = make_labels(close, spec.label)
    features, scaler = normalize(frame.to_numpy(), spec.normalization, splits.train[1])
    meta = {
        "source": spec.source,
        "feature_set": feature_set,
        "normalization": spec.normalization,
        "scaler": scaler,
        "label": spec.label.model_dump(),
        "validation": spec.validation.model_dump(),
        "timeframes": list(frame.attrs.get("timeframes", ())),
        "first_timestamp": str(index[0]),
        "last_timestamp": str(index[-1]),
    }
    data = PreparedData(
        features=features,
        labels=labels,
        profit=profit,
        close=close,
        timestamps=index.as_unit("ns").asi8.astype(np.int64),
        feature_names=tuple(str(c) for c in frame.columns),
        splits=splits,
        periods_per_year=infer_periods_per_year(index),
        bar_seconds=bar_seconds,
        max_seq_len=max_seq_len,
        meta=meta,
        folds=folds,
        final=final,
        fit=None
        if folds or cpcv
        else holdout_fit(splits, spec.label.horizon, spec.validation.select_fraction),
        groups=groups,
        cpcv=combinations,
    )
    logger.info(
        "prepared %s: %d bars x %d features (%s), splits %s, %.2fs",
        spec.source,
        data.n_bars,
        data.n_features,
        feature_set,
        splits.sizes(),
        time.perf_counter() - started,
    )
    return data


def train_bars(spec: DataSpec, *, max_seq_len: int = 1) -> pd.DataFrame:
    """Raw bars of the training part (rows ``[0, train_stop)``), e.g. for data-driven priors.

    The part ends where :func:`prepare_data` with the same ``max_seq_len`` ends it
    (walk-forward: the first fold's training bars, before any validation block; CPCV:
    every bar before the test split, since each group is trained on by some split).
    """
    bars = load_spec_bars(spec)
    stop = study_parts(spec, len(bars), max_seq_len)[0].train[1]
    return bars.iloc[:stop]
