"""The study directory: everything a study knows, on disk, resumable.

Layout of ``studies/<name>/``::

    spec.json          the spec as run (every default filled in, for the record)
    spec.given.json    the spec as written by the user (what resume compares and reloads)
    meta.json          format and library versions, objective, data hash, data facts (engine.meta)
    ax.db              the Ax experiment and generation strategy (Ax's SQL store)
    data/              features, labels and prices prepared once, memory-mapped by workers
    trials/<i>/        result.json, curve.jsonl (per-epoch reports), model.pt (weights),
                       returns.npy (per-bar validation returns), positions.npy (the positions behind
                       them; walk-forward: stitched out of fold; not for CPCV), error.txt (a failed trial's traceback),
                       final.pt and test_returns.npy (the model scored on test, and its returns)
    batches.jsonl      one record per proposal batch: trials proposed, seconds taken
    runs.jsonl         one record per ``boengine run``: start, end, workers
    test.json          held-out test metrics of the final set
    verdict.json       the knee's verdict (a cache: computed again when missing or stale)
    carry_over.json    a study window's carried-over configurations (engine.weekly)
    regime.json        a study window's regime statistics of its training bars
    warm_start.json    the studies attached by ``--warm-start`` and what was skipped
    priors.json        the DataDrivenOptimizer's statistics and suggestions
    pareto.csv, report.md, report.html   written when the study ends
    study.log          the run's log
    .lock              held by the one ``boengine run`` working on the study

Only the driver process writes here (workers return results to it), so the
files never see two writers. JSON files are written atomically.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import numpy as np
from filelock import FileLock, Timeout

from engine.meta import StudyMeta, migrate_spec
from engine.records import TrialRecord
from strategies.exceptions import InputError, StudyError

__all__ = [
    "PAGE_FILES",
    "REPORT_FILES",
    "StudyStore",
    "append_line",
    "bind_sql_storage",
    "check_storage",
    "check_target",
    "no_link_below",
    "read_array",
    "read_bytes",
    "read_json",
    "read_jsonl",
    "read_user_json",
    "redact_text",
    "redact_url",
    "replacing",
    "spec_differences",
    "write_bytes",
    "write_json",
]

logger = logging.getLogger(__name__)


#: The study's pages a reader may open in a browser (the dashboard serves them).
PAGE_FILES = ("report.html", "pareto.html")
#: Files whose change changes what a reader shows, by part (:meth:`StudyStore.file_stamps`).
_WATCHED = {
    "spec": ("spec.json", "spec.given.json", "meta.json"),
    "results": ("test.json", "verdict.json"),
    "batches": ("batches.jsonl",),
    "outputs": PAGE_FILES,
    "run": (".run",),
}
_TRIAL_WATCHED = {"records": "result.json", "curves": "curve.jsonl"}
_MARKERS = ("spec.json", "meta.json", ".lock")  # a study, or one that a run is creating
#: The final outputs a finished run writes; either one marks a study that ended.
_ENDED = ("report.md", "pareto.csv", "test.json")
#: What a tracking server keeps of a study and of each trial (MLflow artifacts).
_STUDY_ARTIFACTS = ("spec.json", "pareto.csv", "report.md", "report.html", "verdict.json", "test.json")
_TRIAL_ARTIFACTS = ("model.pt", "final.pt")
#: The report's files (``boengine report`` writes both or neither).
REPORT_FILES = ("report.md", "report.html")


def _stamp(path: Path) -> tuple[int, int] | None:
    """(mtime ns, size) of ``path`` itself (never through a link), or None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


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
    def given_spec_path(self) -> Path:
        """The spec as the user wrote it (what resume compares and reloads)."""
        return self.dir / "spec.given.json"

    def pareto_path(self, fmt: str) -> Path:
        """The front exported as ``fmt`` (csv, json, html, png) in the study."""
        return self.dir / f"pareto.{fmt}"

    def has_prepared_data(self) -> bool:
        """Whether the study's data were prepared (``data/meta.json`` is there)."""
        return self.inside(self.data_dir / "meta.json").is_file()

    @property
    def log_path(self) -> Path:
        return self.dir / "study.log"

    @property
    def ax_db_path(self) -> Path:
        """Ax's SQLite experiment store (unless ``--storage`` names another database)."""
        return self.dir / "ax.db"

    @property
    def storage_url(self) -> str:
        """The Ax experiment's SQLAlchemy URL (derived from this directory unless ``--storage`` was given)."""
        return self.read_meta().storage_url(self.dir)

    def trial_dir(self, index: int) -> Path:
        return self.dir / "trials" / str(index)

    def result_path(self, index: int) -> Path:
        """The trial's record (``result.json``)."""
        return self.trial_dir(index) / "result.json"

    def checkpoint_path(self, index: int) -> Path:
        return self.trial_dir(index) / "model.pt"

    def final_model_path(self, index: int) -> Path:
        """The model scored on the held-out test split when it was trained for that (walk-forward)."""
        return self.trial_dir(index) / "final.pt"

    def model_path(self, index: int) -> Path | None:
        """The weights a live system would load: the final model, else the trial's own, else None."""
        for path in (self.final_model_path(index), self.checkpoint_path(index)):
            if _regular(self.inside(path)):
                return path
        return None

    def error_path(self, index: int) -> Path:
        return self.trial_dir(index) / "error.txt"

    # -- existence, creation ---------------------------------------------------
    def exists(self) -> bool:
        return self.spec_path.is_file() and self.meta_path.is_file()

    def looks_like_study(self) -> bool:
        """A study, or one that ``boengine run`` is creating (its lock or meta written, no spec yet)."""
        d = self.dir
        return d.is_dir() and not d.is_symlink() and any((d / m).is_file() for m in _MARKERS)

    def may_be_running(self) -> bool:
        """A run's marker is there (cheap; :meth:`is_running` asks the lock)."""
        return (self.dir / ".run").is_file()

    def artifact_paths(self, index: int | None = None) -> list[Path]:
        """The study's (or trial ``index``'s) files a tracking server keeps: regular files only,
        InputError for a link (an artifact is never read from outside the study)."""
        where, names = (
            (self.dir, _STUDY_ARTIFACTS) if index is None else (self.trial_dir(index), _TRIAL_ARTIFACTS)
        )
        out = []
        for name in names:
            try:
                mode = self.inside(where / name).lstat().st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(mode):
                out.append(where / name)
        return out

    def file_stamps(self) -> dict[str, tuple[Any, ...]]:
        """(mtime, size) of every file a reader shows, by part: ``spec`` (spec, given spec, meta),
        ``results`` (test figures, verdict), ``batches``, ``outputs`` (report, Pareto HTML),
        ``run`` (a run's marker), and per trial ``records`` and ``curves``: a part's stamps change
        whenever one of its files does."""
        out: dict[str, tuple[Any, ...]] = {
            part: tuple((name, _stamp(self.dir / name)) for name in names) for part, names in _WATCHED.items()
        }
        per_trial: dict[str, list[Any]] = {part: [] for part in _TRIAL_WATCHED}
        trials = self.dir / "trials"
        if trials.is_dir() and not trials.is_symlink():
            with os.scandir(trials) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.is_dir(follow_symlinks=False):
                        for part, name in _TRIAL_WATCHED.items():
                            per_trial[part].append((entry.name, _stamp(Path(entry.path) / name)))
        out.update({part: tuple(v) for part, v in per_trial.items()})
        return out

    def create(self, spec: Mapping[str, Any], given: Mapping[str, Any], meta: StudyMeta) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.meta_path, meta.to_dict())
        write_json(self.given_spec_path, given)
        write_json(self.spec_path, spec)  # last: its presence marks a complete study

    def update_spec(self, spec: Mapping[str, Any], given: Mapping[str, Any]) -> None:
        """Record a resumable change of the spec (a new budget), given spec last."""
        write_json(self.inside(self.spec_path), spec)
        write_json(self.inside(self.given_spec_path), given)

    def set_aside(self) -> Path:
        """Move an existing study out of the way (``--fresh``); nothing is deleted."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir.with_name(f"{self.dir.name}.old-{stamp}")
        shutil.move(str(self.dir), str(target))
        return target

    def read_spec(self) -> dict[str, Any]:
        """The spec as the user wrote it (falls back to the full record), migrated to this version."""
        given = self.given_spec_path
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
        return no_link_below(self.dir, path)

    def append_line(self, path: Path, line: str) -> None:
        """Append one line to a file of the study (created if missing; never through a link; after
        a last line cut short, on a line of its own)."""
        append_line(path, line, root=self.dir)

    def log_stream(self) -> Any:
        """``study.log`` opened for appending without following a link (for the log handler)."""
        return os.fdopen(_open_append(self.inside(self.log_path)), "a", encoding="utf-8")

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
        """``trials/<index>/<name>.npy``, or None when there is none (InputError naming a damaged one)."""
        path = self.inside(self.trial_dir(index) / f"{name}.npy")
        return read_array(path) if path.is_file() else None

    def write_error(self, index: int, text: str) -> None:
        write_bytes(self.inside(self.error_path(index)), text.encode())

    def trial_records(self, *, damaged: list[str] | None = None) -> list[TrialRecord]:
        """Every trial record (``trials/<i>/result.json``), by trial index: the one reader of them.

        A damaged record raises InputError naming it; with ``damaged`` (a list) it is skipped and
        its error appended there instead (for readers that count what they can, the ledger)."""
        records = []
        for path in (self.dir / "trials").glob("*/result.json"):
            try:
                records.append(TrialRecord.from_dict(self.read(path), source=str(path)))
            except InputError as exc:
                if damaged is None:
                    raise
                damaged.append(str(exc))
        return sorted(records, key=lambda r: r.index)

    def has_ended(self) -> bool:
        """Whether a run finished the study: its final outputs (the front, the report or the test
        figures) are written."""
        return any((self.dir / name).is_file() for name in _ENDED)

    def oos_timestamps(self) -> np.ndarray | None:
        """Timestamps (int64 ns) of the bars a trial's ``returns.npy`` covers: the stitched
        walk-forward blocks, or the holdout validation split. None without prepared data."""
        info_path = self.inside(self.data_dir / "meta.json")
        stamps = self.inside(self.data_dir / "timestamps.npy")
        if not info_path.is_file() or not stamps.is_file():
            return None
        start, stop = (int(v) for v in read_json(info_path)["splits"]["val"])
        return np.asarray(read_array(stamps, mmap_mode="r")[start:stop])

    def oos_close(self) -> np.ndarray | None:
        """Closes (float64) of the bars a trial's ``returns.npy`` and ``positions.npy`` cover (the
        bars of :meth:`oos_timestamps`); None without prepared data."""
        info_path = self.inside(self.data_dir / "meta.json")
        close = self.inside(self.data_dir / "close.npy")
        if not info_path.is_file() or not close.is_file():
            return None
        start, stop = (int(v) for v in read_json(info_path)["splits"]["val"])
        return np.asarray(read_array(close, mmap_mode="r")[start:stop], dtype=np.float64)

    def fold_sizes(self) -> list[int]:
        """Bars of each out-of-sample block, in order: CPCV's groups (each traded by several
        splits; the verdict's returns are their mean over the paths), the walk-forward folds'
        blocks, or the one holdout validation split ([] without prepared data)."""
        info_path = self.inside(self.data_dir / "meta.json")
        if not info_path.is_file():
            return []
        info = read_json(info_path)
        groups = info.get("groups") or []
        if groups:
            return [int(stop) - int(start) for start, stop in groups]
        folds = info.get("folds") or []
        if folds:
            return [int(f["val"][1]) - int(f["val"][0]) for f in folds]
        start, stop = info["splits"]["val"]
        return [int(stop) - int(start)]

    # -- the verdict ----------------------------------------------------------------
    def read_verdict(self) -> dict[str, Any] | None:
        """``verdict.json`` (the knee's verdict, cached), or None when there is none or it is unreadable."""
        path = self.inside(self.dir / "verdict.json")
        if not path.is_file():
            return None
        try:
            return read_json(path)
        except InputError as exc:
            logger.warning("%s; ignored: the verdict is computed again", exc)
            return None

    def write_verdict(self, verdict: Mapping[str, Any]) -> None:
        write_json(self.inside(self.dir / "verdict.json"), verdict)

    # -- a study window's and a warm start's records ------------------------------
    def _optional(self, name: str) -> dict[str, Any] | None:
        path = self.inside(self.dir / name)
        return read_json(path) if path.is_file() else None

    def read_carry_over(self) -> dict[str, Any] | None:
        """``carry_over.json``: what a study window carried over (None for a study of its own)."""
        return self._optional("carry_over.json")

    def first_configurations(self) -> list[tuple[dict[str, Any], str]]:
        """(params, source) of the configurations a new study window runs first (``carry_over.json``)."""
        carry = self.read_carry_over() or {}
        return [(c["params"], c["source"]) for c in carry.get("reevaluated", [])]

    def write_carry_over(self, carry: Mapping[str, Any]) -> None:
        write_json(self.inside(self.dir / "carry_over.json"), dict(carry))

    def read_regime(self) -> dict[str, Any] | None:
        """``regime.json``: a study window's regime statistics of its training bars (or None)."""
        return self._optional("regime.json")

    def write_regime(self, stats: Mapping[str, Any]) -> None:
        write_json(self.inside(self.dir / "regime.json"), dict(stats))

    def read_warm_start(self) -> dict[str, Any] | None:
        """``warm_start.json``: per attached study, the trials attached and skipped (or None)."""
        return self._optional("warm_start.json")

    def write_warm_start(self, summary: Mapping[str, Any]) -> None:
        write_json(self.inside(self.dir / "warm_start.json"), dict(summary))

    def read_priors(self) -> dict[str, Any] | None:
        """``priors.json``: the DataDrivenOptimizer's statistics and suggestions (or None)."""
        return self._optional("priors.json")

    def write_priors(self, priors: Mapping[str, Any]) -> None:
        write_json(self.inside(self.dir / "priors.json"), dict(priors))

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
        return read_jsonl(self.inside(self.dir / "batches.jsonl"))

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
        return read_jsonl(self.inside(self.dir / "runs.jsonl"))


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
            f"--storage {redact_url(url)}: the database driver {driver} is not installed; install it "
            f"(e.g. pip install {_DRIVERS.get(driver, driver)}) or use a sqlite:/// URL"
        ) from None
    except Exception as exc:  # SQLAlchemy's errors: a bad URL, a database that cannot be opened
        raise InputError(
            f"{redact_url(url)}: cannot open the Ax database ({type(exc).__name__}: "
            f"{redact_text(str(exc).splitlines()[0] if str(exc) else '')}); "
            "check the URL, or for a study's own ax.db that the file is intact"
        ) from None


_DRIVERS = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
}


# -- secrets in URLs ---------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
_HIDDEN = "***"
_AUTHORITY_SECRET = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@")
_QUERY_SECRET = re.compile(r"([?&;][^=&;\s]*(?:pass|pwd|secret|token)[^=&;\s]*=)[^&;\s]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A database URL without its secrets: the password (with or without a user name) and every
    query parameter that holds one (``?password=``), through SQLAlchemy's own URL parsing."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a SQLAlchemy URL: the same rules on the text
        return redact_text(url)
    hidden = {k: _HIDDEN if _SECRET_KEY.search(k) else v for k, v in parsed.query.items()}
    shown = str(parsed.set(query=hidden).render_as_string(hide_password=True))
    return shown.replace(quote_plus(_HIDDEN), "***")


def redact_text(text: str) -> str:
    """``text`` (a message, a URI) with every ``scheme://user:password@`` password and every
    secret query parameter replaced by ``***``."""
    return _QUERY_SECRET.sub(r"\1***", _AUTHORITY_SECRET.sub(r"\1:***@", text))


def check_storage(url: str, study_dir: str | os.PathLike[str]) -> None:
    """Refuse a ``--storage`` SQLite database that lies inside another study's directory (it would
    write this study's experiment into that study's own ``ax.db``)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return  # bind_sql_storage names a URL it cannot open
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return
    own = Path(study_dir).resolve()
    for directory in Path(database).expanduser().resolve().parents:
        if directory == own:
            return
        if StudyStore(directory).exists() or _being_created(directory):
            raise InputError(
                f"--storage {redact_url(url)}: the database lies inside the study {directory}, which "
                "it belongs to; give a database outside every study directory, or leave --storage out "
                "(a study keeps its own ax.db)"
            )


def _being_created(directory: Path) -> bool:
    """A study whose creation has begun: its prepared data and ``meta.json``, no spec yet."""
    return (directory / "meta.json").is_file() and (directory / "data").is_dir()


# -- files: one way to write them, one way to read them ------------------------------------------


def no_link_below(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` if it lies in ``root`` and no part of it below ``root`` is a symbolic link; else
    InputError (``root`` itself may be a link: the user named it)."""
    root, path = Path(root), Path(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise InputError(f"{path}: outside the study directory {root}") from None
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            raise InputError(
                f"{current}: a symbolic link inside the study directory; boengine does not follow "
                "links there (remove it, or copy the real file in its place)"
            )
    return path


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself (a link to one is not)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def check_target(
    path: str | os.PathLike[str], *, root: Path | None = None, example: str | None = None
) -> Path:
    """``path`` if a file may be written there; InputError (exit 2) naming it otherwise.

    Refused: a symbolic link at ``path`` (never written through, never replaced), anything but a
    regular file (a directory, a device such as /dev/null, a named pipe), a parent that is not a
    directory; with ``root`` (a study directory), a link at any part of ``path`` below ``root``.
    ``example``: a file name to suggest when ``path`` is a directory.
    """
    path = Path(path)
    if root is not None:
        no_link_below(root, path)
    try:
        mode: int | None = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        mode = None  # a parent is a file: said below
    if mode is not None and stat.S_ISLNK(mode):
        raise InputError(
            f"{path}: a symbolic link (to {os.readlink(path)}); boengine never writes through a link "
            f"or replaces one: give the real path ({os.path.realpath(path)}) or remove the link"
        )
    if mode is not None and stat.S_ISDIR(mode):
        name = f"e.g. {path / example}" if example else "inside it or elsewhere"
        raise InputError(f"{path}: a directory, not a file; name a file ({name})")
    if mode is not None and not stat.S_ISREG(mode):
        raise InputError(
            f"{path}: {_kind(mode)}, not a regular file; boengine replaces only regular files: "
            "give the path of a file"
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent and not parent.is_symlink():
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(
            f"{parent}: not a directory, so {path} cannot be written there; give a path inside a directory"
        )
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replacing(
    path: str | os.PathLike[str],
    *,
    root: Path | None = None,
    suffix: str | None = None,
    durable: bool = False,
    example: str | None = None,
) -> Iterator[Path]:
    """A new temporary file beside ``path`` to write; renamed onto ``path`` when the block ends.

    Every file boengine writes, in a study or at a path the user names,
    goes through here: :func:`check_target` first (no link, nothing but a
    regular file replaced), then a temporary file in the same directory,
    then an atomic rename, so a reader sees the old file or the new one,
    never half. The file keeps the mode of the one it replaces; a new file
    gets the usual mode (0666 less the umask). ``suffix``: the temporary
    file's (a writer that infers the format from it); ``durable``: synced to
    disk before and after the rename. On an error the temporary file goes.
    """
    target = check_target(path, root=root, example=example)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = os.lstat(target).st_mode & 0o7777 if _regular(target) else 0o666 & ~_umask()
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix if suffix is None else suffix
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        if durable:
            _fsync(tmp)
        check_target(target, root=root, example=example)  # still no link or device there
        os.replace(tmp, target)
        if durable:
            _fsync(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(
    path: Path, payload: bytes, *, root: Path | None = None, durable: bool = False, example: str | None = None
) -> None:
    """Write ``payload`` to ``path`` atomically, never through a link (see :func:`replacing`)."""
    with replacing(path, root=root, durable=durable, example=example) as tmp:
        tmp.write_bytes(payload)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def _open_append(path: Path) -> int:
    """A descriptor appending to the regular file ``path`` (created if missing), never through a
    link; InputError for anything else at ``path``."""
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_target(path)  # a link planted since: said as a link
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        check_target(path)
        raise InputError(f"{path}: not a regular file; give the path of a file")
    return fd


def append_line(path: Path, line: str, *, root: Path | None = None, durable: bool = False) -> None:
    """Append ``line`` and a newline to the file at ``path`` (created if missing; never through a
    link; InputError for a directory or a device). A last line cut short (a kill, a full disk) is
    kept as it is, and ``line`` starts on a line of its own. ``durable``: synced before returning."""
    if root is not None:
        no_link_below(root, path)
    fd = _open_append(Path(path))
    try:
        size = os.fstat(fd).st_size
        cut = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        payload = (("\n" if cut else "") + line + "\n").encode()
        while payload:
            payload = payload[os.write(fd, payload) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at ``path``, never through a link: InputError for a link, a
    directory or a device; FileNotFoundError when there is nothing."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            check_target(path)
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{path}: {_kind(mode)}, not a regular file; give the path of a file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` (UTF-8, a byte-order mark accepted; never through a link);
    InputError naming the file for anything else."""
    try:
        data = json.loads(read_bytes(path).decode("utf-8-sig"))
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


def read_user_json(path: str | os.PathLike[str], *, what: str) -> dict[str, Any] | None:
    """The JSON object in a file the user names (``what``: "a JSON strategy config"), by the same
    rule as every JSON file boengine reads (UTF-8, a byte-order mark accepted, never through a
    link); None when there is no file; InputError naming the file otherwise."""
    p = Path(path)
    try:
        raw = read_bytes(p)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p}: not {what} (not UTF-8 text: {exc.reason}); save it as UTF-8 or move it"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{p}: not {what} (invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}); fix or move it first"
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            f"{p}: not {what} (a JSON {type(data).__name__}, not an object); fix or move it first"
        )
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a file with one a line; a line that is cut short, not UTF-8 or not an
    object is skipped with a warning (and left in the file)."""
    try:
        raw = read_bytes(path)
    except FileNotFoundError:
        return []
    rows = []
    for n, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            logger.warning("%s line %d: not UTF-8 text; skipped (left in the file)", path, n)
            continue
        except json.JSONDecodeError:
            logger.warning("%s line %d: not JSON (cut short when a process was killed?); skipped", path, n)
            continue
        if not isinstance(row, dict):
            logger.warning("%s line %d: not a JSON object; skipped", path, n)
            continue
        rows.append(row)
    return rows


def read_array(path: Path, **kwargs: Any) -> np.ndarray:
    """A ``.npy`` array (never pickled objects, never through a link); InputError naming a damaged file."""
    try:
        return np.load(no_link_below(path.parent, path), allow_pickle=False, **kwargs)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(
            f"{path}: not a readable NumPy array ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            "restore it from a backup or move the trial's directory aside"
        ) from None


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
