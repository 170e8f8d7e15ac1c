"""Opening a study: create it, or resume it when its spec is unchanged.

:func:`run_study` is what ``boengine run`` calls. It holds the study's lock,
prepares the data once (or reuses what is on disk), builds or restores the Ax
client, attaches warm-start trials on a new study, runs the loop
(:mod:`engine.loop`) and finishes with the held-out test evaluation of the
Pareto set and the exports.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.executors import TrialFn
from engine.experiment import configure_client, load_client
from engine.loop import StudyLoop
from engine.progress import Progress, QuietProgress
from engine.records import TrialRecord
from engine.spec import ExperimentSpec, parse_spec
from engine.store import StudyStore, spec_differences, write_json
from engine.trial import execute
from strategies.exceptions import InputError, SpecError

__all__ = ["StudyOutcome", "run_study"]

logger = logging.getLogger(__name__)

META_VERSION = 1


@dataclass(frozen=True)
class StudyOutcome:
    """How a ``run`` ended."""

    directory: Path
    records: list[TrialRecord]
    front: list[TrialRecord]
    hypervolume: float
    interrupted: bool
    seconds: float


def run_study(
    spec: ExperimentSpec,
    study_dir: str | Path,
    *,
    fresh: bool = False,
    warm_start: Sequence[str | Path] = (),
    progress: Progress | None = None,
    trial_fn: TrialFn = execute,
    storage_url: str | None = None,
) -> StudyOutcome:
    """Run (or resume) the study of ``spec`` in ``study_dir``.

    ``storage_url`` (any SQLAlchemy URL) keeps a new study's Ax experiment in
    that database instead of ``<study_dir>/ax.db``; a resumed study uses the
    URL it was created with.

    Bad input (data that fail validation, a warm-start directory that is not a
    study) is reported before anything is written.
    """
    store = StudyStore(study_dir)
    if fresh and store.exists():
        with store.lock():
            moved = store.set_aside()
        logger.info("--fresh: the previous study was moved to %s", moved)
    warm_dirs = [*spec.warm_start.studies, *(str(d) for d in warm_start)]
    prepared: tuple[Any, dict[str, Any]] | None = None
    if not store.exists():
        for d in warm_dirs:
            if not StudyStore(d).exists():
                raise InputError(f"warm start: {d} is not a boengine study directory (no spec.json)")
        prepared = _prepare(spec, store, storage_url)
    created = not store.dir.exists()
    with store.lock(), _study_log(store):
        resumed = store.exists()
        if resumed:
            _check_unchanged(store, spec)
            if warm_start:
                logger.warning("warm start ignored: the study already exists (use --fresh to start over)")
        try:
            loop = _open(
                spec,
                store,
                prepared,
                progress=progress or QuietProgress(),
                trial_fn=trial_fn,
                attaches_trials=bool(warm_dirs or spec.warm_start.priors),
            )
            if not resumed:
                _warm_start(loop, spec, store, warm_dirs)
        except BaseException:
            if created and not resumed:  # nothing half-written: a study that never started is removed
                shutil.rmtree(store.dir, ignore_errors=True)
            raise
        start = time.perf_counter()
        interrupted = loop.run()
        if not interrupted:
            loop.finish()
        return StudyOutcome(
            directory=store.dir,
            records=loop.records_list(),
            front=loop.front(),
            hypervolume=loop.hypervolume(),
            interrupted=interrupted,
            seconds=time.perf_counter() - start,
        )


def _warm_start(loop: StudyLoop, spec: ExperimentSpec, store: StudyStore, warm_dirs: Sequence[str]) -> None:
    from engine.warmstart import attach_prior_studies, prior_configurations

    attach_prior_studies(loop, warm_dirs)
    if spec.warm_start.priors == "data_driven":
        configs, info = prior_configurations(spec, loop.data_bars())
        write_json(store.dir / "priors.json", {**info, "suggestions": configs})
        loop.queue_configurations(configs, source="prior")


@contextmanager
def _study_log(store: StudyStore) -> Iterator[None]:
    """Copy this process's log records to the study's own ``study.log`` while it runs."""
    handler = logging.FileHandler(store.log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _check_unchanged(store: StudyStore, spec: ExperimentSpec) -> None:
    old = parse_spec(store.read_spec(), source=str(store.dir / "spec.given.json")).canonical()
    diffs = spec_differences(old, spec.canonical())
    if diffs:
        shown = ", ".join(diffs[:5]) + (" ..." if len(diffs) > 5 else "")
        raise SpecError(
            f"{store.dir}: the spec changed since this study started ({shown}); "
            "rerun with --fresh to start over, or pass --study-dir for a new study"
        )


def _open(
    spec: ExperimentSpec,
    store: StudyStore,
    prepared: tuple[Any, dict[str, Any]] | None,
    *,
    progress: Progress,
    trial_fn: TrialFn,
    attaches_trials: bool,
) -> StudyLoop:
    if store.exists():
        meta = store.read_meta()
        client = load_client(spec, meta["storage_url"])
        loop = StudyLoop(spec, store, client, progress=progress, trial_fn=trial_fn, meta=meta)
        loop.recover()
        return loop
    assert prepared is not None, "a new study needs its prepared data"
    data, meta = prepared
    if data is not None:
        data.save(store.data_dir)
    store.create(spec.canonical(), spec.given(), meta)
    client = configure_client(spec, meta["storage_url"], attaches_trials=attaches_trials)
    return StudyLoop(spec, store, client, progress=progress, trial_fn=trial_fn, meta=meta)


def _prepare(spec: ExperimentSpec, store: StudyStore, storage_url: str | None) -> tuple[Any, dict[str, Any]]:
    """Prepare data in memory (nothing written yet); return it with the meta record."""
    meta: dict[str, Any] = {
        "version": META_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "storage_url": storage_url or store.default_storage_url,
    }
    if spec.is_synthetic:
        return None, meta
    from engine.data import prepare_study_data

    data, facts = prepare_study_data(spec)
    meta.update(facts)
    return data, meta
