"""Built-in real market data (package data) and its attribution.

See ``SOURCES.md`` in this folder for where each file comes from and its
licence. :func:`objectives.data.load_bars` resolves ``builtin:<name>``
sources through :data:`BUILTIN_SOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["BUILTIN_SOURCES", "BuiltinSource", "builtin_path"]


@dataclass(frozen=True)
class BuiltinSource:
    """One vendored data file and how to read it."""

    filename: str
    columns: dict[str, str]
    timestamp_format: str
    description: str


BUILTIN_SOURCES: dict[str, BuiltinSource] = {
    "eurusd_1h": BuiltinSource(
        filename="eurusd_1h_2017.csv",
        columns={
            "timestamp": "Time",
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
        },
        timestamp_format="%d.%m.%Y %H:%M:%S.%f",
        description="EUR/USD hourly ask bars, 2017 (6,225 bars; gym-anytrading, MIT)",
    ),
    "msft_1d": BuiltinSource(
        filename="msft_daily_1986_2017.csv",
        columns={
            "timestamp": "Date",
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
        },
        timestamp_format="%Y-%m-%d",
        description="Microsoft daily split-adjusted bars, 1986-2017 (7,983 bars; pmdarima, MIT)",
    ),
}


def builtin_path(name: str) -> Path:
    """Filesystem path of the vendored file of built-in source ``name``."""
    entry = BUILTIN_SOURCES[name]
    return Path(str(resources.files(__name__).joinpath(entry.filename)))
