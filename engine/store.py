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
import re
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
from strategies.exceptions import InputError, StudyError

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

    def update_spec(self, spec: Mapping[str, Any], given: Mapping[str, Any]) -> None:
        """Record a resumable change of the spec (a new budget), given spec last."""
        write_json(self.inside(self.spec_path), spec)
        write_json(self.inside(self.dir / "spec.given.json"), given)

    def set_aside(self) -> Path:
        """Move an existing study out of the way (``--fresh``); nothing is deleted."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir.with_name(f"{self.dir.name}.old-{stamp}")
        shutil.move(str(self.dir), str(target))
        return target

    def read_spec(self) -> dict[str, Any]:
        """The spec as the user wrote it (falls back to the full record), migrated to this version."""
        given = self.dir / "spec.given.json"
        return migrate_spec(self.read(given if given.is_file() else self.spec_path), self.read_meta().version)

    def read_meta(self) -> StudyMeta:
        return StudyMeta.from_dict(self.read(self.meta_path), source=str(self.meta_path), study_dir=self.dir)

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

    # -- safe file access ------------------------------------------------------
    def inside(self, path: Path) -> Path:
        """``path`` if no part of it below the study directory is a symbolic link; else InputError.

        Everything the study writes, appends or reads back lives in its own
        directory: a link planted there (``study.log`` -> a file elsewhere,
        ``trials`` -> another study) is refused instead of followed.
        """
        try:
            rel = Path(path).relative_to(self.dir)
        except ValueError:
            raise InputError(f"{path}: outside the study directory {self.dir}") from None
        current = self.dir
        for part in rel.parts:
            current = current / part
            if current.is_symlink():
                raise InputError(
                    f"{current}: a symbolic link inside the study directory; boengine does not follow "
                    "links there (remove it, or copy the real file in its place)"
                )
        return Path(path)

    def append_line(self, path: Path, line: str) -> None:
        """Append one line to a file of the study (created if missing; never through a link)."""
        self.inside(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def log_stream(self) -> Any:
        """``study.log`` opened for appending without following a link (for the log handler)."""
        self.inside(self.log_path)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        return os.fdopen(fd, "a", encoding="utf-8")

    def read(self, path: Path) -> dict[str, Any]:
        """A JSON object of the study (never through a link)."""
        return read_json(self.inside(path))

    def is_running(self) -> bool:
        """Whether a ``boengine run`` holds this study's lock now (reads only; creates nothing)."""
        import fcntl

        path = self.dir / ".lock"
        if not path.is_file():
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    # -- per-trial files -------------------------------------------------------
    def append_curve(self, index: int, report: Mapping[str, Any]) -> None:
        self.append_line(self.trial_dir(index) / "curve.jsonl", json.dumps(dict(report)))

    def read_curve(self, index: int) -> list[dict[str, Any]]:
        return read_jsonl(self.inside(self.trial_dir(index) / "curve.jsonl"))

    def write_result(self, index: int, result: Mapping[str, Any]) -> None:
        write_json(self.inside(self.trial_dir(index) / "result.json"), result)

    def read_result(self, index: int) -> dict[str, Any] | None:
        path = self.inside(self.trial_dir(index) / "result.json")
        return read_json(path) if path.is_file() else None

    def write_checkpoint(self, index: int, payload: bytes, *, final: bool = False) -> None:
        path = self.final_model_path(index) if final else self.checkpoint_path(index)
        write_bytes(self.inside(path), payload)

    def write_array(self, index: int, name: str, array: np.ndarray) -> None:
        """``trials/<index>/<name>.npy`` (float32), written atomically."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array, dtype=np.float32))
        write_bytes(self.inside(self.trial_dir(index) / f"{name}.npy"), buffer.getvalue())

    def read_array(self, index: int, name: str) -> np.ndarray | None:
        path = self.inside(self.trial_dir(index) / f"{name}.npy")
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def write_error(self, index: int, text: str) -> None:
        write_bytes(self.inside(self.error_path(index)), text.encode())

    # -- held-out test ----------------------------------------------------------
    def read_test_metrics(self) -> dict[int, dict[str, float]]:
        """Test metrics of the final set by trial index (``test.json``; empty before the end)."""
        path = self.inside(self.dir / "test.json")
        if not path.is_file():
            return {}
        return {int(k): v for k, v in read_json(path).items()}

    def write_test_metrics(self, metrics: Mapping[int, Mapping[str, float]]) -> None:
        write_json(self.inside(self.dir / "test.json"), {str(k): dict(v) for k, v in sorted(metrics.items())})

    # -- study-level logs --------------------------------------------------------
    def append_batch(self, record: Mapping[str, Any]) -> None:
        self.append_line(self.dir / "batches.jsonl", json.dumps(dict(record)))

    def read_batches(self) -> list[dict[str, Any]]:
        return read_jsonl(self.dir / "batches.jsonl")

    def append_run(self, record: Mapping[str, Any]) -> None:
        """One record per ``boengine run`` of the study: start, end, workers."""
        self.append_line(self.dir / "runs.jsonl", json.dumps(dict(record)))

    def begin_run(self, record: Mapping[str, Any]) -> None:
        """Mark a run as started (``.run``); a marker left by a run that died is recorded first."""
        marker = self.inside(self.dir / ".run")
        if marker.is_file():
            try:
                crashed = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                crashed = {"start": marker.stat().st_mtime}
            end = max((p.stat().st_mtime for p in self.dir.rglob("*") if p.is_file()), default=time.time())
            self.append_run({**crashed, "end": end, "interrupted": True, "crashed": True})
        write_json(marker, dict(record))

    def end_run(self, record: Mapping[str, Any]) -> None:
        """Record a run that ended (finished, interrupted or failed) and remove its marker."""
        self.append_run(record)
        (self.dir / ".run").unlink(missing_ok=True)

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
    try:
        db.init_engine_and_session_factory(url=url, force_init=factory is not None)
        db.create_all_tables(db.get_engine())
    except ModuleNotFoundError as exc:
        driver = exc.name or "its driver"
        raise InputError(
            f"--storage {_redact(url)}: the database driver {driver} is not installed; install it "
            f"(e.g. pip install {_DRIVERS.get(driver, driver)}) or use a sqlite:/// URL"
        ) from None
    except Exception as exc:  # SQLAlchemy's errors: a bad URL, a database that cannot be opened
        raise InputError(
            f"{_redact(url)}: cannot open the Ax database ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "check the URL, or for a study's own ax.db that the file is intact"
        ) from None


_DRIVERS = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
}


def _redact(url: str) -> str:
    """A URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: Path, payload: bytes) -> None:
    """Write atomically: a reader sees the old file or the new one, never half.

    The file keeps the mode of the one it replaces; a new file gets the usual
    mode (0666 less the umask), not the temporary file's 0600. A link at
    ``path`` is replaced by the file, never written through.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode & 0o7777 if not path.is_symlink() else 0o666 & ~_umask()
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: missing; is {path.parent} a boengine study directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputError(
            f"{path}: corrupt JSON ({getattr(exc, 'msg', exc)}{where}); restore the file from a backup "
            "or move it aside"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}; restore the file")
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
