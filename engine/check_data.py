"""``boengine check-data SPEC``: the spec's bars and feature columns, checked before a study trusts them.

What is checked (a model family's spec; a synthetic problem reads no data):

- **Duplicated timestamps**, NaN values, prices out of order: the loader
  refuses them (one line naming the file and the first row).
- **Gaps**: spacings longer than :data:`GAP_FACTOR` times the median
  spacing, counted, the largest named. Weekends and holidays are gaps too,
  so they are reported, never refused.
- **Constant feature columns**: no information, refused by name.
- **Look-ahead** (not in ``validate``, which runs the rest): for a computed
  feature set (``ohlcv``, ``basic``, ``multi_timeframe``) the bars after
  each of several cut points are perturbed (prices by a random walk of
  factors, volumes by random factors) and the features are built again; a
  column whose value at or before the cut changes uses the future. A
  ``"columns"`` feature set is the file's own columns, which boengine cannot
  rebuild: a column looks ahead when its value (or its change from the bar
  before) is rank-correlated with a *later* return of the instrument (the
  next bar's, or the label horizon's) by at least
  :data:`LOOKAHEAD_CORRELATION`; causal features of real markets stay far
  below (a correlation of 0.05 with the next return would be a rare edge).

Any look-ahead or constant column makes the check fail with one line that
names the columns (exit 2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from engine.spec import ExperimentSpec

__all__ = ["DEFAULT_CUTS", "GAP_FACTOR", "LOOKAHEAD_CORRELATION", "DataCheck", "check_data"]

GAP_FACTOR = 3.0
LOOKAHEAD_CORRELATION = 0.3
DEFAULT_CUTS = 5
_CUT_SPAN = (0.2, 0.9)  # cut points lie between these shares of the bars
_TOLERANCE = 1e-9  # relative change of a feature value that counts as a change
_LARGEST = 3  # gaps named in the report


@dataclass(frozen=True)
class DataCheck:
    """What :func:`check_data` found.

    Attributes:
        source, feature_set: the spec's data source and the feature set checked.
        n_bars, first, last, bar_seconds: the bars the study would load (after ``end`` and ``max_bars``).
        columns: the feature columns.
        gaps: the number of spacings longer than :data:`GAP_FACTOR` bars; ``largest_gaps``
            the longest, as ``(from, to, hours)``.
        constant: feature columns with one value over every bar.
        lookahead: feature column -> why it looks ahead.
        cuts: the cut points perturbed (none: the cheap check of ``validate``).
    """

    source: str
    feature_set: str
    n_bars: int
    first: str
    last: str
    bar_seconds: float
    columns: tuple[str, ...]
    gaps: int = 0
    largest_gaps: tuple[tuple[str, str, float], ...] = ()
    constant: tuple[str, ...] = ()
    lookahead: dict[str, str] = field(default_factory=dict)
    cuts: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.constant or self.lookahead)

    def error(self) -> str:
        """One line: the offending columns, what is wrong with them and the fix ('' when ok)."""
        parts = []
        if self.lookahead:
            first = next(iter(self.lookahead.items()))
            parts.append(
                f"feature columns that look ahead: {', '.join(self.lookahead)} ({first[0]}: {first[1]})"
            )
        if self.constant:
            parts.append(f"constant feature columns: {', '.join(self.constant)}")
        if not parts:
            return ""
        return f"{self.source} ({self.feature_set}): {'; '.join(parts)}; fix or drop those columns"

    def lines(self) -> list[str]:
        """The report, one finding a line."""
        hours = self.bar_seconds / 3600
        out = [
            f"{self.source}: {self.n_bars:,} bars {self.first} .. {self.last}, one every "
            f"{hours:g} h; feature set {self.feature_set} ({len(self.columns)} columns)",
        ]
        if self.gaps:
            largest = ", ".join(f"{a} .. {b} ({h:g} h)" for a, b, h in self.largest_gaps)
            out.append(
                f"gaps: {self.gaps} spacings longer than {GAP_FACTOR:g} bars (weekends and holidays count); "
                f"the longest: {largest}"
            )
        else:
            out.append(f"gaps: none longer than {GAP_FACTOR:g} bars")
        out.append(f"constant columns: {', '.join(self.constant) or 'none'}")
        if self.cuts:
            found = "; ".join(f"{c}: {why}" for c, why in self.lookahead.items()) or "none"
            out.append(f"look-ahead ({len(self.cuts)} cut points, {', '.join(self.cuts)}): {found}")
        return out


def check_data(spec: ExperimentSpec, *, cuts: int = DEFAULT_CUTS, seed: int = 0) -> DataCheck:
    """Load the spec's bars and features and check them (``cuts=0``: no perturbation, as ``validate``).

    Raises:
        DataError: the loader's one line (a missing file, duplicated timestamps, NaN values, ...).
    """
    from engine.objective.model import feature_set_for
    from engine.objective.pipeline import infer_bar_seconds, load_spec_bars

    bars = load_spec_bars(spec.data)
    index = pd.DatetimeIndex(bars.index)
    bar_seconds = infer_bar_seconds(index)
    name = feature_set_for(spec)
    frame = _features(bars, spec, name, bar_seconds)
    n_gaps, largest = _gaps(index, bar_seconds)
    check = DataCheck(
        source=spec.data.source,
        feature_set=name,
        n_bars=len(bars),
        first=str(index[0]),
        last=str(index[-1]),
        bar_seconds=bar_seconds,
        columns=tuple(str(c) for c in frame.columns),
        gaps=n_gaps,
        largest_gaps=largest,
        constant=_constant(frame),
    )
    if cuts <= 0:
        return check
    positions = _cut_positions(len(bars), cuts)
    if name == "columns":
        found = _correlated_with_the_future(frame, bars["close"].to_numpy(), spec.data.label.horizon)
    else:
        found = _perturbation(bars, frame, spec, name, bar_seconds, positions, seed)
    return dataclasses.replace(check, lookahead=found, cuts=tuple(str(index[c]) for c in positions))


def _features(bars: pd.DataFrame, spec: ExperimentSpec, name: str, bar_seconds: float) -> pd.DataFrame:
    from engine.objective.pipeline import build_features

    return build_features(bars, name, columns=spec.data.feature_columns, bar_seconds=bar_seconds)


def _gaps(index: pd.DatetimeIndex, bar_seconds: float) -> tuple[int, tuple[tuple[str, str, float], ...]]:
    spacing = np.diff(index.as_unit("ns").asi8) / 1e9
    long = np.flatnonzero(spacing > GAP_FACTOR * bar_seconds)
    longest = long[np.argsort(-spacing[long], kind="stable")][:_LARGEST]
    named = tuple((str(index[i]), str(index[i + 1]), round(float(spacing[i]) / 3600, 2)) for i in longest)
    return len(long), named


def _constant(frame: pd.DataFrame) -> tuple[str, ...]:
    values = frame.to_numpy(dtype=np.float64)
    if len(values) == 0:
        return ()
    spread = values.max(axis=0) - values.min(axis=0)
    scale = np.maximum(np.abs(values).max(axis=0), 1.0)
    return tuple(str(c) for c, s, m in zip(frame.columns, spread, scale) if s <= 1e-12 * m)


def _cut_positions(n: int, cuts: int) -> list[int]:
    """``cuts`` distinct row positions, evenly spread over the middle of the bars."""
    low, high = (int(n * f) for f in _CUT_SPAN)
    return sorted({int(p) for p in np.linspace(max(low, 1), max(high, 1), cuts)} - {n - 1})


def _perturbation(
    bars: pd.DataFrame,
    frame: pd.DataFrame,
    spec: ExperimentSpec,
    name: str,
    bar_seconds: float,
    positions: list[int],
    seed: int,
) -> dict[str, str]:
    """Columns whose values at or before a cut change when the bars after it change."""
    rng = np.random.default_rng(seed)
    base = frame.to_numpy(dtype=np.float64)
    found: dict[str, str] = {}
    for cut in positions:
        changed = _features(_perturbed(bars, cut, rng), spec, name, bar_seconds).to_numpy(dtype=np.float64)
        past = slice(0, cut + 1)
        moved = np.abs(changed[past] - base[past]) > _TOLERANCE * (1.0 + np.abs(base[past]))
        for j in np.flatnonzero(moved.any(axis=0)):
            column = str(frame.columns[j])
            if column not in found:
                row = int(np.flatnonzero(moved[:, j])[0])
                found[column] = (
                    f"its value at {frame.index[row]} changed when the bars after {frame.index[cut]} changed"
                )
    return found


def _perturbed(bars: pd.DataFrame, cut: int, rng: np.random.Generator) -> pd.DataFrame:
    """``bars`` with every bar after row ``cut`` changed: prices along a random walk of factors
    (one factor a bar for open, high, low and close, so a bar stays consistent), volumes and
    extra columns by random factors."""
    out = bars.copy()
    later = len(bars) - cut - 1
    if later <= 0:
        return out
    walk = np.exp(np.cumsum(rng.normal(0.0, 0.01, later)))
    for col in ("open", "high", "low", "close"):
        out.iloc[cut + 1 :, out.columns.get_loc(col)] *= walk
    for col in out.columns.drop(["open", "high", "low", "close"]):
        out.iloc[cut + 1 :, out.columns.get_loc(col)] *= rng.uniform(0.5, 2.0, later)
    return out


def _correlated_with_the_future(frame: pd.DataFrame, close: np.ndarray, horizon: int) -> dict[str, str]:
    """File columns rank-correlated with a later return (see the module docstring)."""
    found: dict[str, str] = {}
    for h in sorted({1, max(int(horizon), 1)}):
        if len(close) <= h + 2:
            continue
        later = pd.Series(close[h:] / close[:-h] - 1.0)  # the return from bar t to bar t + h
        for column in frame.columns:
            if str(column) in found:
                continue
            x = frame[column].to_numpy(dtype=np.float64)
            for what, values in (("value", x), ("change from the bar before", np.diff(x, prepend=x[0]))):
                rho = later.corr(pd.Series(values[:-h]), method="spearman")
                if np.isfinite(rho) and abs(rho) >= LOOKAHEAD_CORRELATION:
                    found[str(column)] = (
                        f"its {what} at a bar has a rank correlation of {rho:.2f} with the return over "
                        f"the next {h} bar{'s' if h > 1 else ''} (causal features stay far below "
                        f"{LOOKAHEAD_CORRELATION:g})"
                    )
                    break
    return found
