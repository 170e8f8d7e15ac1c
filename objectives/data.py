"""Market-data loading and validation: built-in sources, CSV and Parquet files.

:func:`load_bars` returns a frame indexed by a ``DatetimeIndex`` (nanosecond,
timezone-naive UTC) with float64 columns ``open, high, low, close, volume``,
plus any requested extra columns. Every problem is a one-line
:class:`~strategies.exceptions.DataError` that names the file.

Column resolution, per boengine field (``DataSpec.columns`` overrides):

- ``timestamp``: ``timestamp``, ``time``, ``date`` or ``datetime`` (any case);
  a Parquet file may carry it as its ``DatetimeIndex`` instead.
- ``close``: ``close``, else ``price_current`` (the original system's schema).
- ``volume``: ``volume``, else ``volume_1m``; absent -> 0 (logged).
- ``open``/``high``/``low``: all three, or none. With none (e.g. files in the
  original schema, which record one price per row) all three equal ``close``
  (logged): range-based features (ATR, intrabar range) then degrade to
  close-to-close values.

Timestamps: strings are parsed with ``timestamp_format`` (strftime) when
given, else inferred by pandas; integers are epoch seconds, milliseconds,
microseconds or nanoseconds by magnitude; timezone-aware values are converted
to UTC and made naive.

Bar frequency: :func:`infer_bar_seconds` is the median spacing.
:func:`infer_periods_per_year` counts the bars actually present per year of
calendar time spanned, so FX hourly data with weekend gaps gets ~6,270 bars a
year (not 24 x 365) and daily equities ~252; Sharpe ratios use this figure.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from objectives.builtin import BUILTIN_SOURCES, builtin_path
from objectives.config import DataSpec
from strategies.exceptions import DataError

__all__ = [
    "BAR_COLUMNS",
    "file_sha256",
    "infer_bar_seconds",
    "infer_periods_per_year",
    "load_bars",
    "load_spec_bars",
    "source_path",
]

logger = logging.getLogger(__name__)

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
SECONDS_PER_YEAR = 365.25 * 86_400.0
_FIELDS = ("timestamp", *BAR_COLUMNS)
_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "time", "date", "datetime"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "price_current"),
    "volume": ("volume", "volume_1m"),
}
_BUILTIN_PREFIX = "builtin:"


def source_path(source: str) -> Path:
    """The file behind a data source (``builtin:<name>`` or a path); it need not exist."""
    if source.startswith(_BUILTIN_PREFIX):
        name = source[len(_BUILTIN_PREFIX) :]
        if name not in BUILTIN_SOURCES:
            known = ", ".join(_BUILTIN_PREFIX + k for k in BUILTIN_SOURCES)
            raise DataError(f"unknown built-in data source {source!r}; known: {known}")
        return builtin_path(name)
    return Path(source).expanduser()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_spec_bars(spec: DataSpec) -> pd.DataFrame:
    """:func:`load_bars` with the settings of a :class:`DataSpec` (incl. ``max_bars``)."""
    return load_bars(
        spec.source,
        columns=spec.columns,
        timestamp_format=spec.timestamp_format,
        extra_columns=spec.feature_columns or (),
        max_bars=spec.max_bars,
    )


def load_bars(
    source: str,
    *,
    columns: Mapping[str, str] | None = None,
    timestamp_format: str | None = None,
    extra_columns: Sequence[str] = (),
    max_bars: int | None = None,
) -> pd.DataFrame:
    """Load and validate OHLCV bars.

    Args:
        source: ``builtin:eurusd_1h``, ``builtin:msft_1d``, or a ``.csv`` /
            ``.parquet`` path.
        columns: boengine field -> file column name, for other headers.
        timestamp_format: strftime format of string timestamps.
        extra_columns: further numeric file columns to keep (feature set
            ``columns``); validated finite like the prices.
        max_bars: keep only the last ``max_bars`` bars.

    Returns:
        `n_bars` rows, DatetimeIndex ``timestamp``, float64 columns
        ``open, high, low, close, volume`` then ``extra_columns``.
    """
    path = source_path(source)
    if source.startswith(_BUILTIN_PREFIX):
        entry = BUILTIN_SOURCES[source[len(_BUILTIN_PREFIX) :]]
        columns = {**entry.columns, **(columns or {})}
        timestamp_format = timestamp_format or entry.timestamp_format
    raw = _read_table(path)
    bars = _to_bars(raw, path, columns or {}, timestamp_format, tuple(extra_columns))
    if max_bars is not None and len(bars) > max_bars:
        bars = bars.iloc[-max_bars:]
    return bars


def infer_bar_seconds(index: pd.DatetimeIndex) -> float:
    """Median spacing of consecutive bars, in seconds."""
    if len(index) < 2:
        raise DataError(f"need at least 2 bars to infer the bar frequency, got {len(index)}")
    diffs = np.diff(index.as_unit("ns").asi8).astype(np.float64) / 1e9
    return float(np.median(diffs))


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year actually present: ``(n - 1) / years spanned``.

    Counts real bars rather than assuming 24 x 365 (FX with weekend gaps) or
    a trading calendar; daily equity data gives ~252.
    """
    if len(index) < 2:
        raise DataError(f"need at least 2 bars to infer bars per year, got {len(index)}")
    ns = index.as_unit("ns").asi8
    span_years = float(ns[-1] - ns[0]) / 1e9 / SECONDS_PER_YEAR
    return float((len(index) - 1) / span_years)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist; give a .csv or .parquet path or a built-in "
            f"source ({', '.join(_BUILTIN_PREFIX + k for k in BUILTIN_SOURCES)})"
        )
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            if isinstance(frame.index, pd.DatetimeIndex):
                frame = frame.reset_index(names="__index_timestamp__")
            return frame
    except (OSError, ValueError, ImportError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read the file ({detail})") from exc
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def _resolve_columns(raw: pd.DataFrame, path: Path, mapping: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(mapping) - set(_FIELDS))
    if unknown:
        raise DataError(f"{path}: unknown keys {unknown} in data.columns; known: {', '.join(_FIELDS)}")
    by_lower = {str(c).lower(): str(c) for c in raw.columns}
    found: dict[str, str] = {}
    for field in _FIELDS:
        if field in mapping:
            if mapping[field] not in raw.columns:
                raise DataError(
                    f"{path}: column {mapping[field]!r} (mapped to {field}) not found; "
                    f"file columns: {', '.join(map(str, raw.columns))}"
                )
            found[field] = mapping[field]
            continue
        for alias in _ALIASES[field]:
            if alias in by_lower:
                found[field] = by_lower[alias]
                break
    if "timestamp" not in found and "__index_timestamp__" in raw.columns:
        found["timestamp"] = "__index_timestamp__"
    missing = [f for f in ("timestamp", "close") if f not in found]
    ohl = [f for f in ("open", "high", "low") if f in found]
    if 0 < len(ohl) < 3:
        missing += [f for f in ("open", "high", "low") if f not in found]
    if missing:
        raise DataError(
            f"{path}: missing columns {missing}; file columns: "
            f"{', '.join(map(str, raw.columns))}; map them with data.columns"
        )
    return found


def _to_bars(
    raw: pd.DataFrame,
    path: Path,
    mapping: Mapping[str, str],
    timestamp_format: str | None,
    extra: tuple[str, ...],
) -> pd.DataFrame:
    found = _resolve_columns(raw, path, mapping)
    for col in extra:
        if col not in raw.columns:
            raise DataError(
                f"{path}: feature column {col!r} not found; file columns: {', '.join(map(str, raw.columns))}"
            )
    index = _parse_timestamps(raw[found["timestamp"]], path, found["timestamp"], timestamp_format)
    values: dict[str, np.ndarray] = {}
    for field in ("open", "high", "low", "close", "volume"):
        if field in found:
            values[field] = _numeric(raw[found[field]], path, found[field])
    if "open" not in values:
        logger.warning("%s: no open/high/low columns; using close for all three", path)
        for field in ("open", "high", "low"):
            values[field] = values["close"].copy()
    if "volume" not in values:
        logger.warning("%s: no volume column; volume set to 0", path)
        values["volume"] = np.zeros(len(raw))
    for col in extra:
        values[col] = _numeric(raw[col], path, col)
    bars = pd.DataFrame({k: values[k] for k in (*BAR_COLUMNS, *extra)}, index=index)
    _validate(bars, path)
    return bars


def _parse_timestamps(col: pd.Series, path: Path, name: str, fmt: str | None) -> pd.DatetimeIndex:
    try:
        if pd.api.types.is_datetime64_any_dtype(col):
            parsed = pd.to_datetime(col)
        elif pd.api.types.is_numeric_dtype(col):
            parsed = pd.to_datetime(col, unit=_epoch_unit(col.to_numpy(dtype=np.float64)))
        else:
            parsed = pd.to_datetime(col, format=fmt)
    except (ValueError, TypeError, OverflowError) as exc:
        example = col.iloc[0] if len(col) else ""
        raise DataError(
            f"{path}: cannot parse timestamps in column {name!r} (first value {example!r}): "
            f"{str(exc).splitlines()[0]}; set data.timestamp_format"
        ) from exc
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    if index.hasnans:
        row = int(np.flatnonzero(index.isna())[0])
        raise DataError(
            f"{path}: unparseable or empty timestamp at data row {row + 1} "
            f"in column {name!r}; fix the file or set data.timestamp_format"
        )
    return index.as_unit("ns").rename("timestamp")


def _epoch_unit(values: np.ndarray) -> str:
    magnitude = float(np.nanmax(np.abs(values))) if len(values) else 0.0
    for bound, unit in ((1e17, "ns"), (1e14, "us"), (1e11, "ms")):
        if magnitude >= bound:
            return unit
    return "s"


def _numeric(col: pd.Series, path: Path, name: str) -> np.ndarray:
    try:
        return pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: column {name!r} is not numeric ({str(exc).splitlines()[0]})") from exc


def _first_bad(mask: np.ndarray, index: pd.DatetimeIndex) -> str:
    row = int(np.flatnonzero(mask)[0])
    return f"{int(mask.sum())} rows, first at data row {row + 1} ({index[row]})"


def _validate(bars: pd.DataFrame, path: Path) -> None:
    index = pd.DatetimeIndex(bars.index)
    for name in bars.columns:
        bad = ~np.isfinite(bars[name].to_numpy())
        if bad.any():
            raise DataError(
                f"{path}: column {name!r} has NaN/inf values ({_first_bad(bad, index)}); "
                "clean or drop those rows"
            )
    ns = index.asi8
    dup = np.concatenate([[False], ns[1:] == ns[:-1]])
    if dup.any():
        raise DataError(f"{path}: duplicate timestamps ({_first_bad(dup, index)}); drop the duplicates")
    back = np.concatenate([[False], ns[1:] < ns[:-1]])
    if back.any():
        raise DataError(
            f"{path}: timestamps must increase ({_first_bad(back, index)}); sort the file by time"
        )
    o, h, lo, c, v = (bars[k].to_numpy() for k in BAR_COLUMNS)
    checks = (
        ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "prices must be > 0"),
        (v < 0, "volume must be >= 0"),
        (h < lo, "high must be >= low"),
        ((c < lo) | (c > h), "close must lie within [low, high]"),
        ((o < lo) | (o > h), "open must lie within [low, high]"),
    )
    for bad, rule in checks:
        if bad.any():
            raise DataError(f"{path}: {rule} ({_first_bad(bad, index)}); fix or drop those bars")
