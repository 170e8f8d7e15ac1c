"""The engine's side of the data: which feature set, how long a window, prepared once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.spec import ExperimentSpec
from strategies import get_family
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, SearchSpace

if TYPE_CHECKING:
    from objectives import PreparedData

__all__ = ["feature_set_for", "max_seq_len", "prepare_study_data", "training_bars"]


def feature_set_for(spec: ExperimentSpec) -> str:
    """The spec's feature set, or the family's own (e.g. ``llm`` by its fixed ``mode``)."""
    if spec.data.feature_set:
        return spec.data.feature_set
    fixed = {p.name: p.value for p in spec.space.params if isinstance(p, FixedParam)}
    return get_family(spec.strategy).default_feature_set(fixed)


def max_seq_len(space: SearchSpace) -> int:
    """The longest window any proposal may ask for (1 if the space has no ``seq_len``)."""
    if "seq_len" not in space:
        return 1
    p = space["seq_len"]
    if isinstance(p, (IntParam, FloatParam)):
        return int(p.high)
    if isinstance(p, ChoiceParam):
        return int(max(float(v) for v in p.values))  # type: ignore[arg-type]
    return int(p.value)  # type: ignore[arg-type]


def prepare_study_data(spec: ExperimentSpec) -> tuple[PreparedData, dict[str, Any]]:
    """Features, labels and splits, computed once per study, and facts for meta.json."""
    from objectives import prepare_data

    data = prepare_data(spec.data, feature_set=feature_set_for(spec), max_seq_len=max_seq_len(spec.space))
    return data, {
        "input_size": data.n_features,
        "feature_set": data.meta.get("feature_set"),
        "feature_names": list(data.feature_names),
        "splits": data.splits.sizes(),
        "periods_per_year": data.periods_per_year,
        "bar_seconds": data.bar_seconds,
        "first_timestamp": data.meta.get("first_timestamp"),
        "last_timestamp": data.meta.get("last_timestamp"),
    }


def training_bars(spec: ExperimentSpec) -> pd.DataFrame:
    """Raw bars of the training part: all that data-driven priors may look at."""
    from objectives import train_bars

    return train_bars(spec.data, max_seq_len=max_seq_len(spec.space))
