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

from objectives.config import SplitSpec, ValidationSpec
from strategies.exceptions import DataError

__all__ = [
    "MIN_SELECT_BARS",
    "MIN_SPLIT_BARS",
    "CPCVSplit",
    "FitWindow",
    "PreparedData",
    "Splits",
    "as_tensor",
    "check_length",
    "check_walk_forward",
    "gather_windows",
    "holdout_fit",
    "inner_selection",
    "split_ranges",
    "walk_forward_ranges",
    "window_view",
]

MIN_SPLIT_BARS: dict[str, int] = {"train": 32, "val": 16, "test": 16}
MIN_SELECT_BARS = 16  # the inner selection slice of a fit: at least this many bars
# 3: inner selection slices (folds and the holdout fit). Formats 1 and 2 chose the kept epoch on
# the bars a fit then traded; they are refused, so that no study mixes the two.
_FORMAT_VERSION = 3
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


@dataclass(frozen=True)
class FitWindow:
    """The decision bars of one model fit, as ranges ``[start, stop)``.

    Attributes:
        train: bars the model is trained on (gradient steps); with ``more_train``, the first range.
        select: the inner selection slice: bars scored after every epoch,
            whose lowest loss chooses the kept epoch, drives patience and the
            ``plateau`` learning-rate schedule (empty: nothing is chosen, the
            last epoch is kept). It is the end of the fit's own training
            window, a purge gap after ``train``, and never the bars the fit
            then trades.
        val: the bars the fitted model trades and reports (a walk-forward
            block, or the holdout validation split). Nothing in the fit looks
            at them: they are scored once, after training.
        label_stop: validation bars below it have labels that end inside
            ``val`` (their loss and accuracy are reported); None: all of them.
        more_train: further training ranges after ``train``, in time order: a
            CPCV split trains on the groups around the ones it trades
            (:mod:`objectives.cpcv`); empty for walk-forward and holdout fits.
        more_select: further ranges of the selection slice after ``select`` (a CPCV
            split's slice, the end of its training bars, may span groups).
    """

    train: tuple[int, int]
    val: tuple[int, int] = (0, 0)
    label_stop: int | None = None
    select: tuple[int, int] = (0, 0)
    more_train: tuple[tuple[int, int], ...] = ()
    more_select: tuple[tuple[int, int], ...] = ()

    @property
    def train_ranges(self) -> tuple[tuple[int, int], ...]:
        """Every range of training bars, in time order."""
        return (self.train, *self.more_train)

    @property
    def select_ranges(self) -> tuple[tuple[int, int], ...]:
        """Every range of the inner selection slice, in time order."""
        return (self.select, *self.more_select)

    def train_bars(self) -> np.ndarray:
        """The training bars of every range, in time order: `n_train` int64."""
        if not self.more_train:
            return np.arange(*self.train, dtype=np.int64)
        return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in self.train_ranges])

    def select_bars(self) -> np.ndarray:
        if not self.more_select:
            return np.arange(*self.select, dtype=np.int64)
        return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in self.select_ranges])

    def val_bars(self) -> np.ndarray:
        return np.arange(*self.val, dtype=np.int64)

    def n_labelled(self) -> int:
        """How many of the validation bars (a prefix) have labels that end inside ``val``."""
        stop = self.val[1] if self.label_stop is None else min(self.label_stop, self.val[1])
        return max(0, stop - self.val[0])

    @property
    def stop(self) -> int:
        """One past the last bar the fit reads a label or a window of."""
        ranges = (*self.train_ranges, *self.select_ranges, self.val)
        return max(stop for _, stop in ranges)

    @classmethod
    def holdout(cls, splits: Splits) -> FitWindow:
        """Train on the training split, trade the validation split; nothing selected (the last
        epoch is kept). Prepared data carry the purged inner selection slice in ``PreparedData.fit``."""
        return cls(train=splits.train, val=splits.val)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "train": list(self.train),
            "select": list(self.select),
            "val": list(self.val),
            "label_stop": self.label_stop,
        }
        if self.more_train:
            out["more_train"] = [list(r) for r in self.more_train]
        if self.more_select:
            out["more_select"] = [list(r) for r in self.more_select]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitWindow:
        select = d.get("select") or (0, 0)
        return cls(
            train=(int(d["train"][0]), int(d["train"][1])),
            val=(int(d["val"][0]), int(d["val"][1])),
            label_stop=None if d.get("label_stop") is None else int(d["label_stop"]),
            select=(int(select[0]), int(select[1])),
            more_train=tuple((int(r[0]), int(r[1])) for r in d.get("more_train") or ()),
            more_select=tuple((int(r[0]), int(r[1])) for r in d.get("more_select") or ()),
        )


@dataclass(frozen=True)
class CPCVSplit:
    """One split of combinatorial purged cross-validation (:mod:`objectives.cpcv`).

    Attributes:
        test_groups: the groups (indices into ``PreparedData.groups``) the split trades.
        fit: its training ranges (every other group, purged and embargoed around the
            test groups) and its inner selection slice; ``fit.val`` is empty.
    """

    test_groups: tuple[int, ...]
    fit: FitWindow

    def to_dict(self) -> dict[str, Any]:
        return {"test_groups": list(self.test_groups), **self.fit.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CPCVSplit:
        return cls(tuple(int(g) for g in d["test_groups"]), FitWindow.from_dict(d))


def inner_selection(
    train: tuple[int, int], gap: int, fraction: float
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Cut a training window ``[a, b)`` into (training bars, the inner selection slice).

    The slice is the last ``fraction`` of the window (at least :data:`MIN_SELECT_BARS`
    bars), ``[b - n, b)``; the training bars end ``gap`` bars before it (the label
    horizon plus the embargo: no training label looks into the slice). The
    slice's own labels end where the window's do, so they never reach the bars
    the fit trades.
    """
    a, b = train
    n = max(int((b - a) * fraction), MIN_SELECT_BARS)
    return (a, max(a, b - n - gap)), (max(a, b - n), b)


def walk_forward_ranges(
    n_bars: int, seq_len: int, horizon: int, splits: SplitSpec, validation: ValidationSpec
) -> tuple[Splits, tuple[FitWindow, ...], FitWindow]:
    """Walk-forward folds over the decision bars before the test split.

    The usable decision bars ``[seq_len - 1, n_bars - horizon)`` end with the
    test part (``splits.test`` of them, after a purge gap of ``horizon``). The
    bars before it, P, are an initial block (``initial_train`` of P) and
    ``folds`` consecutive validation blocks (the last one takes the
    remainder). Fold k's training window is the bars before block k up to a
    gap of ``horizon + embargo_bars`` (the purge: no training label looks into
    the block; the embargo: extra distance for serial correlation), from the
    start (``expanding``) or over the initial block's length (``rolling``).
    The window's last ``select_fraction`` is the fold's inner selection slice
    (:func:`inner_selection`, purged from the training bars by the same gap):
    it alone chooses the fold's kept epoch, patience and learning-rate
    schedule, so nothing chosen in fold k looks at block k.

    Returns:
        (splits: train = fold 0's training window (its training bars and its
        selection slice), val = all validation blocks, test; the folds; the
        final fit: every bar before the test split up to the same gap, without
        validation or selection).
    """
    first = seq_len - 1
    usable = n_bars - horizon - first
    has_test = splits.test > 0
    n_test = int(max(usable - horizon, 0) * splits.test) if has_test else 0
    pre_stop = first + usable - n_test - (horizon if has_test else 0)
    test = (pre_stop + horizon, pre_stop + horizon + n_test) if has_test else (pre_stop, pre_stop)
    gap = horizon + validation.embargo_bars
    n_init = int((pre_stop - first) * validation.initial_train)
    v0 = first + n_init
    k = validation.folds
    size = max((pre_stop - v0) // k, 0)
    length = n_init - gap  # the rolling window's length: fold 0's
    folds = []
    for i in range(k):
        start = v0 + i * size
        stop = pre_stop if i == k - 1 else start + size
        train_stop = start - gap
        train_start = first if validation.window == "expanding" else max(first, train_stop - length)
        inner, select = inner_selection((train_start, train_stop), gap, validation.select_fraction)
        folds.append(FitWindow(train=inner, select=select, val=(start, stop), label_stop=stop - horizon))
    final_stop = pre_stop - validation.embargo_bars
    final_start = first if validation.window == "expanding" else max(first, final_stop - length)
    final = FitWindow(train=(final_start, final_stop))
    window0 = (folds[0].train[0], folds[0].select[1])
    return Splits(train=window0, val=(v0, pre_stop), test=test), tuple(folds), final


def holdout_fit(splits: Splits, horizon: int, fraction: float) -> FitWindow:
    """The holdout scheme's fit: train on the training split less its inner selection slice
    (the split's last ``fraction``, purged by ``horizon``), choose there, trade the validation split."""
    inner, select = inner_selection(splits.train, horizon, fraction)
    return FitWindow(train=inner, select=select, val=splits.val)


def check_walk_forward(
    n_bars: int, seq_len: int, horizon: int, splits: SplitSpec, validation: ValidationSpec, *, source: str
) -> None:
    """Raise :class:`DataError` (naming the field and the fix) unless every fold has room."""
    parts, folds, _ = walk_forward_ranges(n_bars, seq_len, horizon, splits, validation)
    need_block = max(seq_len + horizon, MIN_SPLIT_BARS["val"])
    block = min(f.val[1] - f.val[0] for f in folds)
    where = f"{source}: {n_bars} bars, data.validation"
    if block < need_block:
        most = (parts.val[1] - parts.val[0]) // need_block
        fewer = f"use at most {most} folds, " if most >= 2 else ""
        raise DataError(
            f"{where}.folds {validation.folds}: validation blocks of {max(block, 0)} decision bars are shorter "
            f"than seq_len {seq_len} + label horizon {horizon} (and at least {MIN_SPLIT_BARS['val']}); "
            f"{fewer}a smaller initial_train, a shorter max seq_len or more bars"
        )
    if folds[0].train[1] - folds[0].train[0] < MIN_SPLIT_BARS["train"]:
        raise DataError(
            f"{where}.initial_train {validation.initial_train:g}: the first fold trains on "
            f"{max(folds[0].train[1] - folds[0].train[0], 0)} decision bars after the purge gap of {horizon} "
            f"+ embargo {validation.embargo_bars} and its inner selection slice (select_fraction "
            f"{validation.select_fraction:g}), need at least {MIN_SPLIT_BARS['train']}; raise initial_train, "
            "lower embargo_bars or select_fraction, or use more bars"
        )
    if splits.test > 0 and parts.test[1] - parts.test[0] < MIN_SPLIT_BARS["test"]:
        raise DataError(
            f"{source}: {n_bars} bars leave {parts.test[1] - parts.test[0]} test decision bars (data.splits.test "
            f"{splits.test:g}), need at least {MIN_SPLIT_BARS['test']}; raise splits.test or use more bars"
        )


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


def check_length(
    n_bars: int,
    seq_len: int,
    horizon: int,
    splits: SplitSpec,
    *,
    source: str = "data",
    select_fraction: float = 0.2,
) -> None:
    """Raise :class:`DataError` unless every part gets enough decision bars (:data:`MIN_SPLIT_BARS`)."""
    parts = split_ranges(n_bars, seq_len, horizon, splits)
    sizes = parts.sizes()
    need = {k: (v if k != "test" or splits.test > 0 else 0) for k, v in MIN_SPLIT_BARS.items()}
    if all(sizes[k] >= need[k] for k in need):
        fit = holdout_fit(parts, horizon, select_fraction)
        if fit.train[1] - fit.train[0] >= MIN_SPLIT_BARS["train"]:
            return
        raise DataError(
            f"{source}: the training split of {sizes['train']} decision bars leaves "
            f"{max(fit.train[1] - fit.train[0], 0)} to train on after its inner selection slice "
            f"(data.validation.select_fraction {select_fraction:g}) and a purge gap of {horizon}, need at "
            f"least {MIN_SPLIT_BARS['train']}; lower select_fraction, raise splits.train or use more bars"
        )
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
        splits: decision-bar ranges of train / val / test (walk-forward: fold 0's
            training bars / all validation blocks / test).
        periods_per_year: bars per year (Sharpe annualisation).
        bar_seconds: median bar spacing.
        max_seq_len: the longest window any trial may use.
        meta: JSON-able description (source, feature set, normalisation, labels, scaler).
        folds: walk-forward folds (empty for holdout validation).
        final: walk-forward: the fit on every bar before the test split (the model scored on test).
        fit: holdout: the fit of every trial (training bars, inner selection slice, the
            validation split it trades); None for walk-forward.
        groups: CPCV: the contiguous groups ``[start, stop)`` that tile ``splits.val`` (empty otherwise).
        cpcv: CPCV: the C(N, k) splits, in ``itertools.combinations`` order of their test groups.
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
    folds: tuple[FitWindow, ...] = ()
    final: FitWindow | None = None
    fit: FitWindow | None = None
    groups: tuple[tuple[int, int], ...] = ()
    cpcv: tuple[CPCVSplit, ...] = ()

    @property
    def n_bars(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def facts(self) -> dict[str, Any]:
        """What a study records about its data (``meta.json``'s facts): sizes, bar frequency, the
        span of the bars and the dates of every split, fold and fit."""
        facts: dict[str, Any] = {
            "input_size": self.n_features,
            "feature_set": self.meta.get("feature_set"),
            "feature_names": list(self.feature_names),
            "splits": self.splits.sizes(),
            "periods_per_year": self.periods_per_year,
            "bar_seconds": self.bar_seconds,
            "first_timestamp": self.meta.get("first_timestamp"),
            "last_timestamp": self.meta.get("last_timestamp"),
            # CPCV has groups instead of a training split (every pre-test bar is trained on by some
            # splits and traded by others)
            "split_dates": self.dates(
                {"val": self.splits.val, "test": self.splits.test}
                if self.groups
                else {"train": self.splits.train, "val": self.splits.val, "test": self.splits.test}
            ),
        }
        if self.folds:
            facts["folds"] = [
                self.dates({"train": f.train, "select": f.select, "val": f.val}) for f in self.folds
            ]
            if self.final is not None:
                facts["final_fit"] = self.dates({"train": self.final.train})
        elif self.fit is not None:
            facts["fit"] = self.dates(
                {"train": self.fit.train, "select": self.fit.select, "val": self.fit.val}
            )
        if self.groups:  # CPCV
            facts["groups"] = [self.dates({"group": g})["group"] for g in self.groups]
            if self.final is not None:
                facts["final_fit"] = self.dates({"train": self.final.train})
        return facts

    def dates(self, ranges: Mapping[str, tuple[int, int]]) -> dict[str, list[str]]:
        """First and last timestamp of each non-empty decision-bar range ``[start, stop)`` (ISO, UTC)."""
        import pandas as pd

        out = {}
        for name, (start, stop) in ranges.items():
            if stop > start:
                stamps = pd.to_datetime(self.timestamps[[start, stop - 1]])
                out[name] = [str(t) for t in stamps]
        return out

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
            "folds": [f.to_dict() for f in self.folds],
            "final": None if self.final is None else self.final.to_dict(),
            "fit": None if self.fit is None else self.fit.to_dict(),
        }
        if self.cpcv:  # absent from walk-forward and holdout data, as before
            info["groups"] = [list(g) for g in self.groups]
            info["cpcv"] = [c.to_dict() for c in self.cpcv]
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
                f"{_FORMAT_VERSION} (earlier formats chose each fit's epoch on the bars it then traded); "
                "start a new study (run with --fresh, or another study directory)"
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
            folds=tuple(FitWindow.from_dict(f) for f in info.get("folds", ())),
            final=None if info.get("final") is None else FitWindow.from_dict(info["final"]),
            fit=None if info.get("fit") is None else FitWindow.from_dict(info["fit"]),
            groups=tuple((int(g[0]), int(g[1])) for g in info.get("groups") or ()),
            cpcv=tuple(CPCVSplit.from_dict(c) for c in info.get("cpcv") or ()),
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
