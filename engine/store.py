"""The study directory: everything a study knows, on disk, resumable.

Layout of ``studies/<name>/``::

    spec.json          the spec as run (every default filled in, for the record)
    spec.given.json    the spec as written by the user (what resume compares and reloads)
    meta.json          storage URL, versions, data facts (input size, bars per year)
    ax.db              the Ax experiment and generation strategy (Ax's SQL store)
    data/              features, labels and prices prepared once, memory-mapped by workers
    trials/<i>/        curve.jsonl (per-epoch reports), result.json, model.pt (weights)
    batches.jsonl      one record per proposal batch: trials proposed, seconds taken
    runs.jsonl         one record per ``boengine run``: start, end, workers
    test.json          held-out test metrics of the final Pareto set
    study.log          the run's log
    .lock              held by the one ``boengine run`` working on the study

Only the driver process writes here (workers return results to it), so the
files never see two writers. JSON files are written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from strategies.exceptions import StudyError

__all__ = ["StudyStore", "bind_sql_storage", "spec_differences"]

logger = logging.getLogger(__name__)


class StudyStore:
    """Paths and small I/O helpers of one study directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    # -- paths -------------------------------------------------------------
    @property
    def spec_path(self) -> Path:
        return self.dir / "spec.json"

    @property
    def meta_path(self) -> Path:
        return self.dir / "meta.json"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "study.log"

    @property
    def default_storage_url(self) -> str:
        return f"sqlite:///{(self.dir / 'ax.db').resolve()}"

    def trial_dir(self, index: int) -> Path:
        return self.dir / "trials" / str(index)

    def checkpoint_path(self, index: int) -> Path:
        return self.trial_dir(index) / "model.pt"

    # -- existence, creation ---------------------------------------------------
    def exists(self) -> bool:
        return self.spec_path.is_file() and self.meta_path.is_file()

    def create(self, spec: Mapping[str, Any], given: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.meta_path, meta)
        write_json(self.dir / "spec.given.json", given)
        write_json(self.spec_path, spec)  # last: its presence marks a complete study

    def set_aside(self) -> Path:
        """Move an existing study out of the way (``--fresh``); nothing is deleted."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir.with_name(f"{self.dir.name}.old-{stamp}")
        shutil.move(str(self.dir), str(target))
        return target

    def read_spec(self) -> dict[str, Any]:
        """The spec as the user wrote it (falls back to the full record)."""
        given = self.dir / "spec.given.json"
        return read_json(given if given.is_file() else self.spec_path)

    def read_meta(self) -> dict[str, Any]:
        return read_json(self.meta_path)

    def update_meta(self, **values: Any) -> None:
        meta = self.read_meta()
        meta.update(values)
        write_json(self.meta_path, meta)

    # -- lock --------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Refuse a second concurrent ``run`` on the same study."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.dir / ".lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise StudyError(
                f"{self.dir}: another 'boengine run' is working on this study; wait for it to finish "
                "or stop it first"
            ) from None
        try:
            yield
        finally:
            lock.release()

    # -- per-trial files -------------------------------------------------------
    def append_curve(self, index: int, report: Mapping[str, Any]) -> None:
        path = self.trial_dir(index) / "curve.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(dict(report)) + "\n")

    def read_curve(self, index: int) -> list[dict[str, Any]]:
        return read_jsonl(self.trial_dir(index) / "curve.jsonl")

    def write_result(self, index: int, result: Mapping[str, Any]) -> None:
        write_json(self.trial_dir(index) / "result.json", result)

    def read_result(self, index: int) -> dict[str, Any] | None:
        path = self.trial_dir(index) / "result.json"
        return read_json(path) if path.is_file() else None

    def write_checkpoint(self, index: int, payload: bytes) -> None:
        write_bytes(self.checkpoint_path(index), payload)

    # -- study-level logs --------------------------------------------------------
    def append_batch(self, record: Mapping[str, Any]) -> None:
        with (self.dir / "batches.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(dict(record)) + "\n")

    def read_batches(self) -> list[dict[str, Any]]:
        return read_jsonl(self.dir / "batches.jsonl")

    def append_run(self, record: Mapping[str, Any]) -> None:
        """One record per ``boengine run`` of the study: start, end, workers."""
        with (self.dir / "runs.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(dict(record)) + "\n")

    def read_runs(self) -> list[dict[str, Any]]:
        return read_jsonl(self.dir / "runs.jsonl")


def spec_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two canonical specs differ (``budget.trials``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(spec_differences(old[key], new[key], path))
        return out
    return [] if old == new else [prefix or "<root>"]


def bind_sql_storage(url: str) -> None:
    """Point Ax's process-global SQL engine at ``url`` and create its tables.

    Ax keeps one SQLAlchemy engine per process and silently ignores a second
    initialisation with another URL, which would write one study into another
    study's database. So rebind explicitly whenever the URL changes.
    """
    from ax.storage.sqa_store import db

    factory = db.SESSION_FACTORY
    if factory is not None and str(db._bound_engine(factory).url) == url:
        return
    db.init_engine_and_session_factory(url=url, force_init=factory is not None)
    db.create_all_tables(db.get_engine())


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def write_bytes(path: Path, payload: bytes) -> None:
    """Write atomically: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path}: missing; is {path.parent} a boengine study directory?") from None
    except json.JSONDecodeError as exc:
        raise StudyError(f"{path}: corrupt JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise StudyError(f"{path}: expected a JSON object")
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s: skipping a truncated line (the process was killed mid-write)", path)
    return rows


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
