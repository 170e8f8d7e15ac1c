"""Chronological splits with purge gaps, the prepared data of a study, and windows.

Decision bars: bar t can be decided on (and trained on) when it has a full
window of ``max_seq_len`` feature rows ``[t - L + 1, t]`` and a label (its
horizon ``[t + 1, t + H]`` lies inside the data). The usable bars are cut
chronologically into train / validation / test by :class:`SplitSpec`
fractions, with a purge gap of H bars between consecutive parts: the last
training label looks at most at the bar before the first validation decision
bar, and likewise validation -> test. Using ``max_seq_len`` (not each trial's
``seq_len``) fixes the decision bars for every trial of a study, so all
trials are scored on the same bars. Windows may reach back before a part's
start: those rows are the past, which a live model would also see.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from objectives.config import SplitSpec
from strategies.exceptions import DataError

__all__ = [
    "MIN_SPLIT_BARS",
    "PreparedData",
    "Splits",
    "as_tensor",
    "check_length",
    "gather_windows",
    "split_ranges",
    "window_view",
]

MIN_SPLIT_BARS: dict[str, int] = {"train": 32, "val": 16, "test": 16}
_FORMAT_VERSION = 1
_ARRAYS = ("features", "labels", "profit", "close", "timestamps")


@dataclass(frozen=True)
class Splits:
    """Decision-bar ranges ``[start, stop)`` of each part (test may be empty)."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def bars(self, name: str) -> np.ndarray:
        """Decision-bar indices of part ``name`` ('train', 'val' or 'test'): `n_part` int64."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        start, stop = getattr(self, name)
        return np.arange(start, stop, dtype=np.int64)

    def sizes(self) -> dict[str, int]:
        return {k: stop - start for k, (start, stop) in asdict(self).items()}


def split_ranges(n_bars: int, seq_len: int, horizon: int, splits: SplitSpec) -> Splits:
    """Cut the usable decision bars ``[seq_len - 1, n_bars - horizon)`` into purged parts."""
    first = seq_len - 1
    usable = n_bars - horizon - first
    gaps = horizon * (2 if splits.test > 0 else 1)
    rest = max(usable - gaps, 0)
    n_train = int(rest * splits.train)
    n_val = int(rest * splits.val) if splits.test > 0 else rest - n_train
    n_test = rest - n_train - n_val if splits.test > 0 else 0
    train = (first, first + n_train)
    val = (train[1] + horizon, train[1] + horizon + n_val)
    test_start = val[1] + horizon if splits.test > 0 else val[1]
    return Splits(train=train, val=val, test=(test_start, test_start + n_test))


def check_length(n_bars: int, seq_len: int, horizon: int, splits: SplitSpec, *, source: str = "data") -> None:
    """Raise :class:`DataError` unless every part gets enough decision bars (:data:`MIN_SPLIT_BARS`)."""
    sizes = split_ranges(n_bars, seq_len, horizon, splits).sizes()
    need = {k: (v if k != "test" or splits.test > 0 else 0) for k, v in MIN_SPLIT_BARS.items()}
    if all(sizes[k] >= need[k] for k in need):
        return
    got = "/".join(str(sizes[k]) for k in need)
    want = "/".join(str(need[k]) for k in need)
    raise DataError(
        f"{source}: {n_bars} bars are too few for seq_len {seq_len} + label horizon {horizon} + splits "
        f"{splits.train:g}/{splits.val:g}/{splits.test:g} with purge gaps: train/val/test get {got} decision "
        f"bars, need at least {want}; use more bars, a shorter max seq_len or a shorter horizon"
    )


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Everything a trial needs, computed once per study and shared by workers.

    Attributes:
        features: `n_bars x n_features` float32, normalised (fitted on train).
        labels: `n_bars` int64 in {0, 1, 2}, -1 where undefined.
        profit: `n_bars` float32 profit target (0 for hold / undefined).
        close: `n_bars` float64 closes (for the backtest).
        timestamps: `n_bars` int64 nanoseconds since the epoch (UTC).
        feature_names: `n_features` names.
        splits: decision-bar ranges of train / val / test.
        periods_per_year: bars per year (Sharpe annualisation).
        bar_seconds: median bar spacing.
        max_seq_len: the longest window any trial may use.
        meta: JSON-able description (source, feature set, normalisation, labels, scaler).
    """

    features: np.ndarray
    labels: np.ndarray
    profit: np.ndarray
    close: np.ndarray
    timestamps: np.ndarray
    feature_names: tuple[str, ...]
    splits: Splits
    periods_per_year: float
    bar_seconds: float
    max_seq_len: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_bars(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def save(self, directory: Path) -> None:
        """Write one ``.npy`` per array and ``meta.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", np.ascontiguousarray(getattr(self, name)))
        info = {
            "format_version": _FORMAT_VERSION,
            "feature_names": list(self.feature_names),
            "splits": {k: list(v) for k, v in asdict(self.splits).items()},
            "periods_per_year": self.periods_per_year,
            "bar_seconds": self.bar_seconds,
            "max_seq_len": self.max_seq_len,
            "meta": dict(self.meta),
        }
        (directory / "meta.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> PreparedData:
        """Read what :meth:`save` wrote; ``mmap`` maps the arrays read-only (shared between processes)."""
        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{directory}: no prepared data (meta.json missing); run prepare_data first")
        info = json.loads(meta_path.read_text())
        if info.get("format_version") != _FORMAT_VERSION:
            raise DataError(
                f"{directory}: prepared-data format {info.get('format_version')} is not "
                f"{_FORMAT_VERSION}; prepare the data again"
            )
        arrays = {n: np.load(directory / f"{n}.npy", mmap_mode="r" if mmap else None) for n in _ARRAYS}
        return cls(
            **arrays,
            feature_names=tuple(info["feature_names"]),
            splits=Splits(**{k: (int(v[0]), int(v[1])) for k, v in info["splits"].items()}),
            periods_per_year=float(info["periods_per_year"]),
            bar_seconds=float(info["bar_seconds"]),
            max_seq_len=int(info["max_seq_len"]),
            meta=info["meta"],
        )


def window_view(features: Tensor, seq_len: int) -> Tensor:
    """All windows as a view: `n_bars x F` -> `(n_bars - L + 1) x L x F`; row t - L + 1 ends at bar t."""
    return features.unfold(0, seq_len, 1).transpose(1, 2)


def gather_windows(view: Tensor, bars: Tensor, seq_len: int) -> Tensor:
    """Windows of decision bars ``bars`` (`batch`, each >= L - 1): `batch x L x F`."""
    return view[bars - (seq_len - 1)].contiguous()


def as_tensor(array: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """Copy a (possibly read-only, memory-mapped) array to a tensor on ``device``."""
    return torch.from_numpy(np.array(array, copy=True)).to(device)
