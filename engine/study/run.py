"""Opening a study: create it, or resume it when its spec is unchanged.

:func:`run_study` is what ``boengine run`` calls. Everything that can be
checked is checked before the first byte is written (the spec, the executor's
size, the data, the warm-start directories). It then holds the study's lock,
writes the prepared data once, builds or restores the Ax client, queues
baselines and attaches warm-start trials on a new study, runs the loop
(:mod:`engine.study.loop`) and finishes with the held-out test evaluation of the
Pareto set and the exports (:mod:`engine.study.finish`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.analysis.model_selection import choose_front
from engine.executors import ExecutorPlan, TrialFn, available_cores, check_executor, plan_executor
from engine.meta import META_VERSION, StudyMeta, migrate_spec
from engine.objective import Objective, Prepared, make_objective
from engine.records import ObjectiveSet, TrialRecord
from engine.spec import ExperimentSpec, MlflowSpec, parse_spec, study_spec
from engine.store import StudyStore, check_storage, redact_url, spec_differences
from engine.study.experiment import configure_client, load_client
from engine.study.finish import finish_study
from engine.study.loop import StudyLoop
from engine.study.progress import Progress, QuietProgress
from engine.study.tell import study_log
from engine.study.trial import execute
from strategies.exceptions import InputError, SpecError

__all__ = ["StudyOutcome", "StudyStart", "run_study"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyOutcome:
    """How a ``run`` ended."""

    directory: Path
    records: list[TrialRecord]
    front: list[TrialRecord]
    hypervolume: float
    interrupted: bool
    seconds: float


class StudyStart(Protocol):
    """What a new study runs first and records around its creation, given by its caller
    (a study window: :mod:`engine.weekly`'s ``WindowStart``)."""

    def plan(self, spec: ExperimentSpec) -> list[str]:
        """Read what the new study takes, before anything is written (InputError: exit 2); the
        studies it attaches as a warm start."""
        ...

    def before_create(self, store: StudyStore) -> None:
        """Record what a run killed early must still run first (before ``spec.json`` is written)."""
        ...

    def first(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The configurations to run first, by source, in order."""
        ...

    def created(self, store: StudyStore, objective: Objective) -> None:
        """Once the study exists: record what the caller keeps of it."""
        ...

    def resumed(self) -> None:
        """The study existed: nothing is planned again."""
        ...


def run_study(
    spec: ExperimentSpec,
    study_dir: str | Path,
    *,
    fresh: bool = False,
    warm_start: Sequence[str | Path] = (),
    progress: Progress | None = None,
    trial_fn: TrialFn = execute,
    storage_url: str | None = None,
    stop: threading.Event | None = None,
    start: StudyStart | None = None,
    mlflow: MlflowSpec | None = None,
) -> StudyOutcome:
    """Run (or resume) the study of ``spec`` in ``study_dir``.

    ``storage_url`` (any SQLAlchemy URL) keeps a new study's Ax experiment in
    that database instead of ``<study_dir>/ax.db``; it is recorded, and a
    resume must give the same URL again.

    Bad input (data that fail validation, an executor larger than the machine, a warm-start
    directory that is not a study) is reported before anything is written. ``start`` says what a
    new study runs first and records around its creation (a study window: :mod:`engine.weekly`'s
    ``WindowStart``). Setting ``stop`` (Ctrl-C, SIGTERM) interrupts the loop like a
    KeyboardInterrupt does: running trials are abandoned, the state is saved.

    ``mlflow`` (``run --mlflow-uri``, else the spec's ``tracking.mlflow``):
    once the loop has ended, the study is logged to MLflow
    (:mod:`engine.interfaces.tracking`); a tracking failure is a warning.
    """
    store = StudyStore(study_dir)
    if not fresh:
        spec = _as_the_study_reads_it(spec, store)
    opening = _Opening.checked(spec, store, storage_url, mlflow)
    if fresh and store.exists():
        with store.lock():
            moved = store.set_aside()
        logger.info("--fresh: the previous study was moved to %s", moved)
    prepared, warm_dirs = _plan_new(
        spec, store, opening.objective, [*spec.warm_start.studies, *(str(d) for d in warm_start)], start
    )
    undo = _Undo.before(store.dir)
    opened, resumed = False, None
    try:
        with store.lock(), _study_log(store):
            resumed = store.exists()
            objective, plan = opening.objective, opening.plan
            if resumed:
                loop = _resume(
                    spec, store, objective, plan, storage_url, progress, trial_fn, bool(warm_start)
                )
            else:
                assert prepared is not None, "a new study needs its prepared data"
                loop = _create(
                    spec, store, objective, plan, prepared, storage_url, progress, trial_fn, warm_dirs, start
                )
            opened = True
            return opening.ran(_run(spec, store, objective, loop, stop))
    except BaseException:
        if not opened and resumed is False:
            undo.revert()  # nothing half-written: what a study that never started created is removed
        raise


def _as_the_study_reads_it(spec: ExperimentSpec, store: StudyStore) -> ExperimentSpec:
    """``spec`` read under the format of the study it resumes: a study made by an older boengine
    goes on under the defaults its trials ran with (:func:`engine.meta.migrate_spec`; e.g. no
    fold stopping for a format-2 study that did not ask for it), so the same spec file resumes it."""
    if not store.exists():
        return spec
    version = store.read_meta().version
    if version >= META_VERSION:
        return spec
    return parse_spec(migrate_spec(spec.given(), version), source=f"{store.dir} (format {version})")


def _plan_new(
    spec: ExperimentSpec,
    store: StudyStore,
    objective: Objective,
    warm_dirs: Sequence[str],
    start: StudyStart | None,
) -> tuple[Prepared | None, list[str]]:
    """For a new study, before anything is written: the warm-start studies checked, ``start``
    planned, the data prepared. Returns the prepared data and the studies to attach (``warm_dirs``
    and those ``start`` attaches); (None, ``warm_dirs``) for a study that exists (resumed: nothing
    is planned again)."""
    if store.exists():
        if start is not None:
            start.resumed()
        return None, list(warm_dirs)
    for d in warm_dirs:
        if not StudyStore(d).exists():
            raise InputError(f"warm start: {d} is not a boengine study directory (no spec.json)")
    attached = [*warm_dirs, *(start.plan(spec) if start is not None else [])]
    return objective.prepare(), attached


@dataclass(frozen=True)
class _Opening:
    """What a run checks before anything is written: the objective, the executor plan (a Ray
    cluster that is unreachable or lacks GPUs is refused here), the study's database (never
    another study's), MLflow when the study is to be tracked."""

    store: StudyStore
    objective: Objective
    plan: ExecutorPlan
    tracking: MlflowSpec | None

    @classmethod
    def checked(
        cls, spec: ExperimentSpec, store: StudyStore, storage_url: str | None, mlflow: MlflowSpec | None
    ) -> _Opening:
        if storage_url is not None:
            check_storage(storage_url, store.dir)
        objective = make_objective(spec)
        plan = plan_executor(spec.executor)
        check_executor(plan)
        tracking = mlflow or spec.tracking.mlflow
        if tracking is not None:
            from engine.interfaces.tracking import require_mlflow

            require_mlflow("MLflow tracking" if mlflow else "tracking.mlflow")
        return cls(store, objective, plan, tracking)

    def ran(self, outcome: StudyOutcome) -> StudyOutcome:
        """Once the loop has ended: the study logged to MLflow when it is tracked."""
        if self.tracking is not None:
            from engine.interfaces.tracking import track_study

            state = "interrupted" if outcome.interrupted else "finished"
            track_study(self.store.dir, self.tracking, state=state)
        return outcome


@dataclass(frozen=True)
class _Undo:
    """What creating a study adds to the file system, to remove it if the study never starts.

    The study directory and any parents made for it go as a whole; in a
    directory that existed (a user's ``--study-dir``), only the entries that
    were not there before.
    """

    top: Path | None  # the topmost directory that did not exist, or None
    directory: Path
    entries: frozenset[str]

    @classmethod
    def before(cls, directory: Path) -> _Undo:
        top = None
        for d in (directory, *directory.parents):
            if d.exists():
                break
            top = d
        entries = frozenset(os.listdir(directory)) if top is None and directory.is_dir() else frozenset()
        return cls(top, directory, entries)

    def revert(self) -> None:
        if self.top is not None:
            shutil.rmtree(self.top, ignore_errors=True)
            return
        if not self.directory.is_dir():
            return
        for name in set(os.listdir(self.directory)) - self.entries:
            path = self.directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _run(
    spec: ExperimentSpec,
    store: StudyStore,
    objective: Objective,
    loop: StudyLoop,
    stop: threading.Event | None,
) -> StudyOutcome:
    """Run the opened study's loop, then finish it (test figures, verdict, exports)."""
    start = time.perf_counter()
    loop.stop = stop
    interrupted = loop.run()
    records = loop.book.ordered()
    if not interrupted:
        finish_study(spec, store, objective, records, threads=available_cores())
    objectives = ObjectiveSet.from_spec(spec)
    return StudyOutcome(
        directory=store.dir,
        records=records,
        front=choose_front(spec, records).front,
        hypervolume=objectives.hypervolume(records),
        interrupted=interrupted,
        seconds=time.perf_counter() - start,
    )


def _create(
    spec: ExperimentSpec,
    store: StudyStore,
    objective: Objective,
    plan: ExecutorPlan,
    prepared: Prepared,
    storage_url: str | None,
    progress: Progress | None,
    trial_fn: TrialFn,
    warm_dirs: Sequence[str],
    start: StudyStart | None = None,
) -> StudyLoop:
    baselines = objective.baseline_configurations()
    shown = redact_url(storage_url) if storage_url is not None else None  # no password in meta.json
    meta = StudyMeta.new(objective.name, facts=prepared.facts, data_hash=prepared.data_hash, storage=shown)
    # spec.json, written last, marks a complete study: a creation killed before it leaves no
    # study, and the half-saved Ax experiment it left is removed here before a new one is saved
    leftover = store.ax_db_path
    if storage_url is None and leftover.is_file():
        logger.info("removing %s, left by a study creation that did not finish", leftover)
        leftover.unlink()
    prepared.save(store.data_dir)
    if start is not None:  # before spec.json: a study that exists knows what it must run first
        start.before_create(store)
    first = start.first() if start is not None else []
    attaches = bool(warm_dirs or spec.warm_start.priors or baselines or any(c for _, c in first))
    client = configure_client(spec, storage_url or meta.storage_url(store.dir), attaches_trials=attaches)
    store.create(spec.canonical(), spec.given(), meta)
    loop = StudyLoop(
        spec,
        store,
        client,
        objective=objective,
        plan=plan,
        progress=progress or QuietProgress(),
        trial_fn=trial_fn,
    )
    for source, configs in first:  # e.g. a new window's: the live configuration, the previous front
        loop.queue_configurations(configs, source=source)
    if start is not None:
        start.created(store, objective)
    loop.queue_configurations(baselines, source="baseline")
    _warm_start(loop, spec, store, objective, warm_dirs)
    return loop


def _resume(
    spec: ExperimentSpec,
    store: StudyStore,
    objective: Objective,
    plan: ExecutorPlan,
    storage_url: str | None,
    progress: Progress | None,
    trial_fn: TrialFn,
    warm_start_given: bool,
) -> StudyLoop:
    meta = store.read_meta()
    _check_unchanged(store, spec)
    kept = redact_url(meta.storage) if meta.storage else None  # meta.json keeps no password
    if kept != (redact_url(storage_url) if storage_url else None):
        where = kept or f"{store.ax_db_path}"
        secret = " (the password in place of ***)" if kept and "***" in kept else ""
        raise InputError(
            f"{store.dir}: this study keeps its Ax experiment in {where}; resume it with "
            + (f"--storage {kept}{secret}" if kept else "no --storage option")
        )
    now = StudyMeta.new(objective.name, facts={}, data_hash="", storage=None)
    diffs = meta.differences(now)
    if diffs:
        logger.warning(
            "%s was made with other versions (%s); resuming with these", store.dir, "; ".join(diffs)
        )
    if meta.data_hash and objective.data_hash() != meta.data_hash:
        logger.warning(
            "%s changed since this study started; the study goes on with the data prepared then (%s); "
            "start a new study (--fresh or --study-dir) to use the new data",
            spec.data.source,
            store.data_dir,
        )
    if warm_start_given:
        logger.warning("warm start ignored: the study already exists (use --fresh to start over)")
    client = load_client(spec, storage_url or meta.storage_url(store.dir))
    loop = StudyLoop(
        spec,
        store,
        client,
        objective=objective,
        plan=plan,
        progress=progress or QuietProgress(),
        trial_fn=trial_fn,
    )
    loop.book.recover()
    again = loop.book.interrupted_configurations()
    again = _first_not_started(store, loop) + again
    for params, source in again:
        loop.queue_configurations([params], source=source)
    if again:
        logger.info("%d configuration(s) interrupted earlier run first", len(again))
    return loop


def _first_not_started(store: StudyStore, loop: StudyLoop) -> list[tuple[dict[str, Any], str]]:
    """Configurations a new study was to run first that a run killed early never started."""
    tried = [r.params for r in loop.book.records.values()]
    return [(params, source) for params, source in store.first_configurations() if params not in tried]


def _warm_start(
    loop: StudyLoop, spec: ExperimentSpec, store: StudyStore, objective: Objective, warm_dirs: Sequence[str]
) -> None:
    from engine.study.warmstart import attach_prior_studies, prior_configurations

    summary = attach_prior_studies(loop.book, warm_dirs, with_sems=objective.reports_sems)
    if summary:
        store.write_warm_start(summary)
    if spec.warm_start.priors == "data_driven":
        configs, info = prior_configurations(spec, objective.training_bars())
        store.write_priors({**info, "suggestions": configs})
        loop.queue_configurations(configs, source="prior")


@contextmanager
def _study_log(store: StudyStore) -> Iterator[None]:
    """Copy this process's log records to the study's own ``study.log`` while it runs.

    The file gets the same events in every display mode (rich, plain, jsonl, quiet).
    """
    stream = store.log_stream()
    handler = logging.StreamHandler(stream)
    # the loop writes every trial event to study_log whatever the display; the plain display's
    # own lines (engine.study.progress) would repeat them
    handler.addFilter(lambda record: not record.name.startswith("engine.study.progress"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = (logging.getLogger(), study_log)  # study_log: events for this file only (tracebacks)
    for log in loggers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for log in loggers:
            log.removeHandler(handler)
        handler.close()
        stream.close()


#: Spec fields that change how long a study runs or how patient it is, not what a trial measures:
#: a finished study whose spec differs only in these resumes (e.g. to extend its budget).
RESUMABLE_CHANGES = frozenset({"budget.trials", "budget.max_consecutive_failures", "budget.trial_timeout_s"})
#: Spec sections that say where a study is reported, not what it runs: any change in them resumes.
RESUMABLE_SECTIONS = frozenset({"tracking"})


def _check_unchanged(store: StudyStore, spec: ExperimentSpec) -> None:
    old = study_spec(store).canonical()
    diffs = spec_differences(old, spec.canonical())
    if diffs and all(d in RESUMABLE_CHANGES or d.split(".")[0] in RESUMABLE_SECTIONS for d in diffs):
        changes = ", ".join(f"{d} {_at(old, d)} -> {_at(spec.canonical(), d)}" for d in diffs)
        logger.info("%s: resuming with %s", store.dir, changes)
        store.update_spec(spec.canonical(), spec.given())
        return
    if diffs:
        shown = ", ".join(diffs[:5]) + (" ..." if len(diffs) > 5 else "")
        raise SpecError(
            f"{store.dir}: the spec changed since this study started ({shown}); "
            "rerun with --fresh to start over, or pass --study-dir for a new study"
        )


def _at(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree
