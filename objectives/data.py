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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from objectives.builtin import BUILTIN_SOURCES, builtin_path
from objectives.config import COLUMN_KEYS, DataSpec
from strategies.exceptions import DataError

__all__ = [
    "BAR_COLUMNS",
    "check_data_header",
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
_FIELDS = COLUMN_KEYS
_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "time", "date", "datetime"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "price_current"),
    "volume": ("volume", "volume_1m"),
}
_BUILTIN_PREFIX = "builtin:"
_CSV_SUFFIXES = (".csv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_INDEX_TIMESTAMP = "__index_timestamp__"
_LAYOUT = "a header line (timestamp,open,high,low,close,volume) and one row per bar"


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


def check_data_header(spec: DataSpec) -> None:
    """What can be checked without loading the bars: the file of ``spec.source`` exists, is a
    ``.csv`` or ``.parquet`` file, and its header has the columns :func:`load_bars` needs
    (timestamp and close, all of open/high/low or none, the mapped and feature columns).

    Raises:
        DataError: one line naming the file, what is wrong and the fix.
    """
    path = source_path(spec.source)
    columns = _builtin_columns(spec.source, spec.columns)
    header = _read_header(path)
    _resolve_columns(header, path, columns or {})
    _check_extra(header, path, spec.feature_columns or ())


def load_spec_bars(spec: DataSpec) -> pd.DataFrame:
    """:func:`load_bars` with the settings of a :class:`DataSpec` (incl. ``end`` and ``max_bars``)."""
    return load_bars(
        spec.source,
        columns=spec.columns,
        timestamp_format=spec.timestamp_format,
        extra_columns=spec.feature_columns or (),
        max_bars=spec.max_bars,
        end=spec.end,
    )


def load_bars(
    source: str,
    *,
    columns: Mapping[str, str] | None = None,
    timestamp_format: str | None = None,
    extra_columns: Sequence[str] = (),
    max_bars: int | None = None,
    end: str | None = None,
) -> pd.DataFrame:
    """Load and validate OHLCV bars.

    Args:
        source: ``builtin:eurusd_1h``, ``builtin:msft_1d``, or a ``.csv`` /
            ``.parquet`` path.
        columns: boengine field -> file column name, for other headers.
        timestamp_format: strftime format of string timestamps.
        extra_columns: further numeric file columns to keep (feature set
            ``columns``); validated finite like the prices.
        max_bars: keep only the last ``max_bars`` bars (of those at or before ``end``).
        end: keep only the bars at or before this timestamp (naive UTC, ISO).

    Returns:
        `n_bars` rows, DatetimeIndex ``timestamp``, float64 columns
        ``open, high, low, close, volume`` then ``extra_columns``.
    """
    path = source_path(source)
    if source.startswith(_BUILTIN_PREFIX):
        timestamp_format = (
            timestamp_format or BUILTIN_SOURCES[source[len(_BUILTIN_PREFIX) :]].timestamp_format
        )
    columns = _builtin_columns(source, columns)
    raw = _read_table(path)
    bars = _to_bars(raw, path, columns or {}, timestamp_format, tuple(extra_columns))
    if end is not None:
        bars = bars.loc[bars.index <= pd.Timestamp(end)]
        if len(bars) < 2:
            raise DataError(f"{path}: {len(bars)} bar(s) at or before data.end {end}; choose a later end")
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


def _builtin_columns(source: str, columns: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """The column mapping of ``source``: a built-in source's own, overridden by ``columns``."""
    if not source.startswith(_BUILTIN_PREFIX):
        return columns
    return {**BUILTIN_SOURCES[source[len(_BUILTIN_PREFIX) :]].columns, **(columns or {})}


def _check_file(path: Path) -> str:
    """The lower-case suffix of an existing data file of a supported type."""
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(
            f"data file {path} {what}; give a .csv or .parquet path in data.source or a built-in "
            f"source ({', '.join(_BUILTIN_PREFIX + k for k in BUILTIN_SOURCES)})"
        )
    suffix = path.suffix.lower()
    if suffix not in (*_CSV_SUFFIXES, *_PARQUET_SUFFIXES):
        raise DataError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; save the bars as .csv or .parquet"
        )
    return suffix


def _read_header(path: Path) -> list[str]:
    """The column names of a data file, read without its rows (a Parquet file's schema)."""
    suffix = _check_file(path)
    try:
        if suffix in _CSV_SUFFIXES:
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        return _parquet_columns(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; it needs {_LAYOUT}") from None
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{path}: cannot read the file ({_first_line(exc)}); {_FIX_FILE}") from exc


def _parquet_columns(path: Path) -> list[str]:
    """Columns of a Parquet file; a stored DatetimeIndex counts as the timestamp column."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    meta = schema.pandas_metadata or {}
    index = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    types = {c.get("field_name"): c.get("pandas_type") for c in meta.get("columns", [])}
    names = [str(n) for n in schema.names if n not in index]
    if any(types.get(c) in ("datetime", "datetimetz") for c in index):
        names.append(_INDEX_TIMESTAMP)
    return names


_FIX_FILE = "check that it is a valid CSV or Parquet file"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _read_table(path: Path) -> pd.DataFrame:
    suffix = _check_file(path)
    try:
        if suffix in _CSV_SUFFIXES:
            return pd.read_csv(path)
        frame = pd.read_parquet(path)
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index(names=_INDEX_TIMESTAMP)
        return frame
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; it needs {_LAYOUT}") from None
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{path}: cannot read the file ({_first_line(exc)}); {_FIX_FILE}") from exc


def _check_extra(header: Sequence[str], path: Path, extra: Sequence[str]) -> None:
    for col in extra:
        if col not in header:
            raise DataError(
                f"{path}: feature column {col!r} (data.feature_columns) not found; file columns: "
                f"{', '.join(header)}; fix data.feature_columns"
            )


def _resolve_columns(header: Sequence[str], path: Path, mapping: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(mapping) - set(_FIELDS))
    if unknown:
        raise DataError(f"{path}: unknown keys {unknown} in data.columns; known: {', '.join(_FIELDS)}")
    by_lower = {str(c).lower(): str(c) for c in header}
    found: dict[str, str] = {}
    for field in _FIELDS:
        if field in mapping:
            if mapping[field] not in header:
                raise DataError(
                    f"{path}: column {mapping[field]!r} (mapped to {field}) not found; "
                    f"file columns: {', '.join(map(str, header))}; fix data.columns.{field}"
                )
            found[field] = mapping[field]
            continue
        for alias in _ALIASES[field]:
            if alias in by_lower:
                found[field] = by_lower[alias]
                break
    if "timestamp" not in found and _INDEX_TIMESTAMP in header:
        found["timestamp"] = _INDEX_TIMESTAMP
    missing = [f for f in ("timestamp", "close") if f not in found]
    ohl = [f for f in ("open", "high", "low") if f in found]
    if 0 < len(ohl) < 3:
        missing += [f for f in ("open", "high", "low") if f not in found]
    if missing:
        fix = "map them with data.columns"
        separator = next((sep for sep in ";\t|" if len(header) == 1 and sep in header[0]), None)
        if separator is not None:
            fix = f"the file seems to separate columns by {separator!r}: save it comma-separated"
        raise DataError(
            f"{path}: missing columns {missing}; file columns: {', '.join(map(str, header)) or 'none'}; {fix}"
        )
    return found


def _to_bars(
    raw: pd.DataFrame,
    path: Path,
    mapping: Mapping[str, str],
    timestamp_format: str | None,
    extra: tuple[str, ...],
) -> pd.DataFrame:
    header = [str(c) for c in raw.columns]
    found = _resolve_columns(header, path, mapping)
    _check_extra(header, path, extra)
    if raw.empty:
        raise DataError(f"{path}: no bars, only a header; the file needs {_LAYOUT}")
    index = _parse_timestamps(raw[found["timestamp"]], path, found["timestamp"], timestamp_format)
    values: dict[str, np.ndarray] = {}
    for field in ("open", "high", "low", "close", "volume"):
        if field in found:
            values[field] = _numeric(raw[found[field]], path, found[field])
    notes = []  # logged once the bars are valid: a refused file gets its one error line only
    if "open" not in values:
        notes.append("no open/high/low columns; using close for all three")
        for field in ("open", "high", "low"):
            values[field] = values["close"].copy()
    if "volume" not in values:
        notes.append("no volume column; volume set to 0")
        values["volume"] = np.zeros(len(raw))
    for col in extra:
        values[col] = _numeric(raw[col], path, col)
    bars = pd.DataFrame({k: values[k] for k in (*BAR_COLUMNS, *extra)}, index=index)
    _validate(bars, path)
    for note in notes:
        logger.warning("%s: %s", path, note)
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
        raise DataError(_timestamp_problem(col, path, name, fmt, exc)) from exc
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


def _timestamp_problem(col: pd.Series, path: Path, name: str, fmt: str | None, exc: Exception) -> str:
    """Which value failed to parse (not the first one), and the fix."""
    fix = (
        "fix that value or set data.timestamp_format (strftime, e.g. '%Y-%m-%d %H:%M:%S')"
        if fmt is None
        else f"fix that value or data.timestamp_format ({fmt!r})"
    )
    row = _first_unparsed(col, fmt)
    if row is None:
        return f"{path}: cannot parse the timestamps in column {name!r} ({_pandas_reason(exc)}); {fix}"
    return (
        f"{path}: cannot parse timestamps in column {name!r}: {col.iloc[row]!r} at data row {row + 1}; {fix}"
    )


def _first_unparsed(col: pd.Series, fmt: str | None) -> int | None:
    """The first row whose timestamp does not parse the way the rows before it do."""
    try:
        coerced = pd.to_datetime(col, format=fmt, errors="coerce")
    except (ValueError, TypeError, OverflowError):
        return None
    bad = np.flatnonzero(pd.isna(coerced) & col.notna().to_numpy())
    return int(bad[0]) if len(bad) else None


def _pandas_reason(exc: Exception) -> str:
    """Pandas' reason without its position and its multi-line list of suggestions."""
    first = _first_line(exc)
    return re.split(r"(?:, at position \d+)?\. You might want", first)[0].rstrip(":. ")


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
        coerced = pd.to_numeric(col, errors="coerce")
        bad = np.flatnonzero(pd.isna(coerced).to_numpy() & col.notna().to_numpy())
        where = f": {col.iloc[bad[0]]!r} at data row {bad[0] + 1}" if len(bad) else f" ({_first_line(exc)})"
        raise DataError(f"{path}: column {name!r} is not numeric{where}; fix or drop that row") from exc


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
