"""The study directory: everything a study knows, on disk, resumable.

Layout of ``studies/<name>/``::

    spec.json          the spec as run (every default filled in, for the record)
    spec.given.json    the spec as written by the user (what resume compares and reloads)
    meta.json          format and library versions, objective, data hash, data facts (engine.meta)
    ax.db              the Ax experiment and generation strategy (Ax's SQL store)
    data/              features, labels and prices prepared once, memory-mapped by workers
    trials/<i>/        result.json, curve.jsonl (per-epoch reports), model.pt (weights),
                       returns.npy (per-bar validation returns), error.txt (a failed trial's traceback),
                       final.pt and test_returns.npy (the model scored on test, and its returns)
    batches.jsonl      one record per proposal batch: trials proposed, seconds taken
    runs.jsonl         one record per ``boengine run``: start, end, workers
    test.json          held-out test metrics of the final set
    study.log          the run's log
    .lock              held by the one ``boengine run`` working on the study

Only the driver process writes here (workers return results to it), so the
files never see two writers. JSON files are written atomically.
"""

from __future__ import annotations

import io
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

import numpy as np
from filelock import FileLock, Timeout

from engine.meta import StudyMeta, migrate_spec
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
    def storage_url(self) -> str:
        """The Ax experiment's SQLAlchemy URL (derived from this directory unless ``--storage`` was given)."""
        return self.read_meta().storage_url(self.dir)

    def trial_dir(self, index: int) -> Path:
        return self.dir / "trials" / str(index)

    def checkpoint_path(self, index: int) -> Path:
        return self.trial_dir(index) / "model.pt"

    def final_model_path(self, index: int) -> Path:
        """The model scored on the held-out test split when it was trained for that (walk-forward)."""
        return self.trial_dir(index) / "final.pt"

    def model_path(self, index: int) -> Path | None:
        """The weights a live system would load: the final model, else the trial's own, else None."""
        for path in (self.final_model_path(index), self.checkpoint_path(index)):
            if path.is_file():
                return path
        return None

    def error_path(self, index: int) -> Path:
        return self.trial_dir(index) / "error.txt"

    # -- existence, creation ---------------------------------------------------
    def exists(self) -> bool:
        return self.spec_path.is_file() and self.meta_path.is_file()

    def create(self, spec: Mapping[str, Any], given: Mapping[str, Any], meta: StudyMeta) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.meta_path, meta.to_dict())
        write_json(self.dir / "spec.given.json", given)
        write_json(self.spec_path, spec)  # last: its presence marks a complete study

    def set_aside(self) -> Path:
        """Move an existing study out of the way (``--fresh``); nothing is deleted."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir.with_name(f"{self.dir.name}.old-{stamp}")
        shutil.move(str(self.dir), str(target))
        return target

    def read_spec(self) -> dict[str, Any]:
        """The spec as the user wrote it (falls back to the full record), migrated to this version."""
        given = self.dir / "spec.given.json"
        return migrate_spec(read_json(given if given.is_file() else self.spec_path), self.read_meta().version)

    def read_meta(self) -> StudyMeta:
        return StudyMeta.from_dict(read_json(self.meta_path), source=str(self.meta_path), study_dir=self.dir)

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

    def write_checkpoint(self, index: int, payload: bytes, *, final: bool = False) -> None:
        write_bytes(self.final_model_path(index) if final else self.checkpoint_path(index), payload)

    def write_array(self, index: int, name: str, array: np.ndarray) -> None:
        """``trials/<index>/<name>.npy`` (float32), written atomically."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array, dtype=np.float32))
        write_bytes(self.trial_dir(index) / f"{name}.npy", buffer.getvalue())

    def read_array(self, index: int, name: str) -> np.ndarray | None:
        path = self.trial_dir(index) / f"{name}.npy"
        return np.load(path) if path.is_file() else None

    def write_error(self, index: int, text: str) -> None:
        write_bytes(self.error_path(index), text.encode())

    # -- held-out test ----------------------------------------------------------
    def read_test_metrics(self) -> dict[int, dict[str, float]]:
        """Test metrics of the final set by trial index (``test.json``; empty before the end)."""
        path = self.dir / "test.json"
        if not path.is_file():
            return {}
        return {int(k): v for k, v in read_json(path).items()}

    def write_test_metrics(self, metrics: Mapping[int, Mapping[str, float]]) -> None:
        write_json(self.dir / "test.json", {str(k): dict(v) for k, v in sorted(metrics.items())})

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
