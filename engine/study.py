"""Opening a study: create it, or resume it when its spec is unchanged.

:func:`run_study` is what ``boengine run`` calls. It holds the study's lock,
prepares the data once (or reuses what is on disk), builds or restores the Ax
client, attaches warm-start trials on a new study, runs the loop
(:mod:`engine.loop`) and finishes with the held-out test evaluation of the
Pareto set and the exports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
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
from strategies.exceptions import SpecError, StudyError

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
) -> StudyOutcome:
    """Run (or resume) the study of ``spec`` in ``study_dir``."""
    store = StudyStore(study_dir)
    if fresh and store.exists():
        with store.lock():
            moved = store.set_aside()
        logger.info("--fresh: the previous study was moved to %s", moved)
    with store.lock():
        resumed = store.exists()
        if resumed:
            _check_unchanged(store, spec)
            if warm_start:
                logger.warning("warm start ignored: the study already exists (use --fresh to start over)")
        loop = _open(spec, store, resumed=resumed, progress=progress or QuietProgress(), trial_fn=trial_fn)
        if not resumed:
            from engine.warmstart import attach_prior_studies, prior_configurations

            dirs = [*spec.warm_start.studies, *(str(d) for d in warm_start)]
            attach_prior_studies(loop, dirs)
            if spec.warm_start.priors == "data_driven":
                configs, info = prior_configurations(spec, loop.data_bars())
                write_json(store.dir / "priors.json", {**info, "suggestions": configs})
                loop.queue_configurations(configs, source="prior")
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


def _check_unchanged(store: StudyStore, spec: ExperimentSpec) -> None:
    old = store.read_spec()
    diffs = spec_differences(old, spec.canonical())
    if diffs:
        shown = ", ".join(diffs[:5]) + (" ..." if len(diffs) > 5 else "")
        raise SpecError(
            f"{store.dir}: the spec changed since this study started ({shown}); "
            "rerun with --fresh to start over, or pass --study-dir for a new study"
        )


def _open(
    spec: ExperimentSpec, store: StudyStore, *, resumed: bool, progress: Progress, trial_fn: TrialFn
) -> StudyLoop:
    if resumed:
        meta = store.read_meta()
        client = load_client(spec, meta["storage_url"])
        loop = StudyLoop(spec, store, client, progress=progress, trial_fn=trial_fn, meta=meta)
        loop.recover()
        return loop
    meta = _prepare(spec, store)
    store.create(spec.canonical(), meta)
    try:
        client = configure_client(spec, meta["storage_url"])
    except Exception:
        # Nothing half-written: a study whose Ax experiment could not be created is removed.
        import shutil

        shutil.rmtree(store.dir / "trials", ignore_errors=True)
        store.spec_path.unlink(missing_ok=True)
        raise
    return StudyLoop(spec, store, client, progress=progress, trial_fn=trial_fn, meta=meta)


def _prepare(spec: ExperimentSpec, store: StudyStore) -> dict[str, Any]:
    """Prepare data once per study (skipped for synthetic problems); return the meta record."""
    meta: dict[str, Any] = {
        "version": META_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "storage_url": store.default_storage_url,
    }
    if spec.is_synthetic:
        return meta
    from engine.data import prepare_study_data

    meta.update(prepare_study_data(spec, store.data_dir))
    return meta


def load_study_spec(store: StudyStore) -> ExperimentSpec:
    """The spec a study ran with (``spec.json``), validated again."""
    return parse_spec(store.read_spec(), source=str(store.spec_path))


def require_study(directory: str | Path) -> StudyStore:
    store = StudyStore(directory)
    if not store.exists():
        raise StudyError(
            f"{store.dir}: not a boengine study (no spec.json/meta.json); run 'boengine run SPEC' first"
        )
    return store
