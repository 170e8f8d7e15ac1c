"""The live strategy config: the JSON file a trading system reads (``config/strategy_config.json``),
and its decision history beside it. This module is its only reader and writer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.store import check_target, read_user_json, write_bytes
from strategies.exceptions import InputError

__all__ = ["check_config", "history_path", "live_entry", "write_config"]

logger = logging.getLogger(__name__)


def live_entry(path: str | Path, key: str) -> dict[str, Any] | None:
    """The entry under ``key`` of the strategy config at ``path`` (None when the file or the
    entry does not exist). Read like every JSON file of boengine (a byte-order mark accepted;
    a link, a directory or a device refused with one line)."""
    p = Path(path)
    config = read_user_json(p, what="a JSON strategy config")
    if config is None:
        return None
    entry = config.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("hyperparameters"), dict):
        raise InputError(
            f"{p}: entry '{key}' has no 'hyperparameters' object; fix the file or remove the entry"
        )
    return entry


def check_config(path: str | Path, *, history: bool = False) -> None:
    """InputError (before anything is computed or written) when ``path`` cannot take a strategy
    config: not a regular file, a link, not JSON; ``history``: its decision history too."""
    p = check_target(Path(path), example="strategy_config.json")
    read_user_json(p, what="a JSON strategy config")
    if history:
        check_target(history_path(p))


def history_path(config: str | Path) -> Path:
    """``config/strategy_config.json`` -> ``config/strategy_config.history.jsonl``."""
    p = Path(config)
    return p.with_name(f"{p.stem}.history.jsonl")


def write_config(path: str | Path, key: str, entry: dict[str, Any]) -> None:
    """Merge ``entry`` under ``key`` into the JSON file at ``path`` (created if missing).

    Read and written like every file boengine touches: a byte-order mark accepted, never through a
    link or over anything but a regular file, atomically (a temporary file renamed) and synced.
    """
    p = check_target(Path(path), example="strategy_config.json")
    config = read_user_json(p, what="a JSON strategy config") or {}
    old = config.get(key)
    merged = {**old, **entry} if isinstance(old, dict) else entry
    config[key] = merged
    config.setdefault("default_strategy", key)
    write_bytes(p, (json.dumps(config, indent=2, default=str) + "\n").encode(), durable=True)
    logger.info("wrote %s[%s]", p, key)
