"""MLflow tracking: a study as a parent run, each trial as a child run (optional extra ``mlflow``).

What is logged, from the study directory alone:

- the **parent run** (named after the study): a few spec settings as
  parameters, the hypervolume after each trial as the ``hypervolume``
  metric's history, trial counts and the budget (``trials/<status>``,
  ``trials/budget``), the verdict's figures, the study's state
  (``finished``, ``interrupted``, ``running``) as a tag, and ``spec.json``,
  ``pareto.csv``, ``report.md``/``.html``, ``verdict.json`` and
  ``test.json`` as artifacts;
- one **child run per trial** (``trial <i>``): its parameters, its final
  validation metrics (``validation/<metric>``, standard errors as
  ``validation/<metric>_se``) and, for the front and the baselines, the
  held-out test metrics (``test/<metric>``); the per-epoch curve of
  ``curve.jsonl`` as metric histories (``curve/<metric>``, one step per
  report, the same rows as :meth:`engine.interfaces.api.Study.curves`); its status,
  reason and source as tags; ``model.pt`` and ``final.pt`` under ``model/``.
  Non-finite values are left out.

Design: one function, :func:`log_study`, logs a whole study directory. It is
what ``boengine export-mlflow`` runs, and what :func:`engine.study.run.run_study`
runs in the driver process once the loop has ended (finished, after the
exports, or interrupted), never in a worker. Logging each trial as the
driver records it would put calls to a tracking server inside the loop that
keeps the workers busy: a slow or unreachable server would slow the study,
and every failure would need handling there. At the end the study's own
files are complete, the same code path serves a run and an export, and the
cost is that runs appear in MLflow when ``run`` returns (``boengine status``
and ``export-mlflow`` show a study while it runs).

Idempotent: every run is tagged with the study's key (its resolved directory
and creation time in ``meta.json``, so a ``--fresh`` study in the same
directory is another study), its directory and, for a trial, its index.
Existing runs are found by these tags; a run whose content fingerprint
(``boengine.fingerprint``) is unchanged is left alone; a changed one gets
only what it lacks (new parameters, changed final metrics, curve steps it
does not have). A resume or a second export therefore creates no duplicate.

A tracking failure during a run (server down, a bad database) is one
warning line and never fails the study: HTTP requests are bounded (10 s, no
retries) unless ``MLFLOW_HTTP_REQUEST_*`` are set, and the first failure
ends the logging. ``boengine export-mlflow`` reports the same failure as an
error (exit 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.records import TrialRecord
from engine.spec import ExperimentSpec, MlflowSpec
from strategies.exceptions import BoengineError, InputError, StudyError

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, Run, RunTag
    from mlflow.tracking import MlflowClient

    from engine.analysis.results import StudyResults

__all__ = ["LoggedStudy", "check_store", "log_study", "mlflow_settings", "require_mlflow", "track_study"]

logger = logging.getLogger(__name__)

EXTRA = "pip install 'boengine[mlflow]'"
TAG = "boengine."
#: MLflow's HTTP settings while a run logs, unless the environment sets them: a server that is
#: down costs at most one timeout, not MLflow's default of 7 retries with exponential backoff.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_RUN_STATUS = {
    "completed": "FINISHED",
    "early_stopped": "FINISHED",
    "failed": "FAILED",
    "abandoned": "KILLED",
}
_STUDY_STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "running": "RUNNING"}
_MAX_TAG = 8000
_BATCH_METRICS = 1000
_BATCH_OTHER = 100


# -- settings ---------------------------------------------------------------------------------


def mlflow_installed() -> bool:
    """Whether the ``mlflow`` package can be imported (looked up without importing it)."""
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["mlflow"] is None
        return False


def require_mlflow(where: str) -> None:
    """InputError naming the extra when MLflow tracking is asked for (``where``) but not installed."""
    if not mlflow_installed():
        raise InputError(f"{where}: MLflow tracking needs the optional extra 'mlflow'; install it: {EXTRA}")


def mlflow_settings(
    spec: ExperimentSpec,
    uri: str | None,
    experiment: str | None,
    *,
    flags: tuple[str, str] = ("--mlflow-uri", "--mlflow-experiment"),
) -> MlflowSpec | None:
    """Command-line tracking options (``flags``: the URI's and the experiment's) over the spec's
    ``tracking.mlflow``; None when neither asks for MLflow."""
    given = spec.tracking.mlflow
    if uri is None and experiment is None:
        if given is not None:
            check_store(given.uri, "tracking.mlflow.uri")
        return given
    if uri is None and given is None:
        raise InputError(
            f"{flags[1]}: no tracking URI; give {flags[0]} too, or set tracking.mlflow.uri in the spec"
        )
    settings = checked_settings(
        uri if uri is not None else given.uri if given else "",
        experiment if experiment is not None else given.experiment if given else None,
        flags=flags,
    )
    check_store(settings.uri, flags[0] if uri is not None else "tracking.mlflow.uri")
    return settings


def check_store(uri: str, where: str) -> None:
    """InputError (naming ``where``, the option or field) for a tracking URI that this MLflow refuses
    to open: its filesystem store (``file://``), which MLflow 3 keeps only behind
    ``MLFLOW_ALLOW_FILE_STORE``."""
    if not uri.lower().startswith("file:"):
        return
    try:
        from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
    except ImportError:  # an MLflow that still opens its file store
        return
    if MLFLOW_ALLOW_FILE_STORE.get():
        return
    path = uri.split(":", 1)[1].removeprefix("//").rstrip("/") or "mlruns"
    raise InputError(
        f"{where} {shown_uri(uri)}: this MLflow no longer opens a file store (a directory of runs); "
        f"use a database, e.g. sqlite:///{path}.db, or a "
        "tracking server (http://host:5000); to keep the old store, set MLFLOW_ALLOW_FILE_STORE=true"
    )


def checked_settings(uri: str, experiment: str | None, *, flags: tuple[str, str]) -> MlflowSpec:
    """:class:`MlflowSpec` from command-line values; InputError naming the option (``flags``:
    the URI's and the experiment's)."""
    try:
        return MlflowSpec(uri=uri, experiment=experiment)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        flag = flags[1] if err["loc"] and err["loc"][0] == "experiment" else flags[0]
        raise InputError(f"{flag}: {err['msg'].removeprefix('Value error, ')}") from None


# -- logging ----------------------------------------------------------------------------------


@dataclass
class LoggedStudy:
    """What :func:`log_study` did."""

    uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    trial_runs: dict[int, str] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        return (
            f"MLflow {shown_uri(self.uri)}, experiment '{self.experiment}': parent run {self.parent_run_id}, "
            f"{len(self.trial_runs)} trial runs ({self.created} new, {self.updated} updated, "
            f"{self.unchanged} unchanged)"
        )


def track_study(directory: str | Path, settings: MlflowSpec, *, state: str) -> LoggedStudy | None:
    """:func:`log_study` for ``boengine run``: a failure is one warning, never an exception."""
    try:
        logged = _log(directory, settings, state)
    except Exception as exc:
        what = str(exc) if isinstance(exc, BoengineError) else _failure(exc, settings.uri)
        logger.warning(
            "%s; the study is not affected: log it later with boengine export-mlflow %s --uri %s",
            what,
            directory,
            shown_uri(settings.uri),
        )
        return None
    logger.info("%s", logged.summary())
    return logged


def log_study(directory: str | Path, settings: MlflowSpec, *, state: str | None = None) -> LoggedStudy:
    """Log the study in ``directory`` to MLflow: a parent run and one child run per trial.

    ``state`` is the study's (``finished``, ``interrupted``, ``running``);
    default: read from the directory. Idempotent (see the module docstring).
    Raises InputError for a directory that is not a study or a missing
    extra, StudyError when MLflow fails.
    """
    try:
        return _log(directory, settings, state)
    except BoengineError:
        raise
    except Exception as exc:
        raise StudyError(
            f"{_failure(exc, settings.uri)}; check the tracking server (or database) and rerun: "
            "what is logged already is not logged twice"
        ) from exc


def _log(directory: str | Path, settings: MlflowSpec, state: str | None) -> LoggedStudy:
    from engine.analysis.results import StudyResults

    require_mlflow("MLflow tracking")
    res = StudyResults.load(directory)
    for rec in res.records:  # a linked artifact is refused before MLflow is touched
        res.store.artifact_paths(rec.index)
    res.store.artifact_paths()
    from mlflow.tracking import MlflowClient

    _quiet_mlflow()
    name = settings.experiment or res.spec.name
    with _bounded_http():
        client = MlflowClient(tracking_uri=settings.uri)
        experiment_id = _experiment(client, name)
        return _Logger(client, res, settings.uri, name, experiment_id).log(state or _state(res))


def _failure(exc: BaseException, uri: str) -> str:
    """One line: which MLflow, what failed."""
    first = shown_uri((str(exc).strip().splitlines() or [""])[0])
    return f"MLflow {shown_uri(uri)}: {type(exc).__name__}: {first[:300]}{' ...' if len(first) > 300 else ''}"


def _experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(client.create_experiment(name))
        except Exception:  # created meanwhile by another process
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise StudyError(
            f"MLflow experiment '{name}' is deleted; restore it (mlflow experiments restore) or give "
            "another name (--mlflow-experiment / --experiment / tracking.mlflow.experiment)"
        )
    return str(found.experiment_id)


def _state(res: StudyResults) -> str:
    if res.store.is_running():
        return "running"
    runs = res.store.read_runs()
    return "interrupted" if runs and runs[-1].get("interrupted") else "finished"


def study_key(res: StudyResults) -> str:
    """The tag that names one study: its resolved directory and the time it was created."""
    ident = f"{res.store.dir.resolve()}|{res.meta.created}"
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


class _Logger:
    """One logging pass of one study."""

    def __init__(
        self, client: MlflowClient, res: StudyResults, uri: str, experiment: str, experiment_id: str
    ) -> None:
        self.client = client
        self.res = res
        self.key = study_key(res)
        self.out = LoggedStudy(uri, experiment, experiment_id, parent_run_id="")
        self.now = int(time.time() * 1000)

    def log(self, state: str) -> LoggedStudy:
        existing = self._existing()
        parent, parent_content = self._study_content(state)
        parent_run = existing.get("study")
        parent_id = self._upsert(parent_run, parent, parent_content)
        self.out.parent_run_id = parent_id
        curves = _curves(self.res)
        front = {r.index for r in self.res.front}
        for rec in self.res.records:
            content = self._trial_content(rec, parent_id, curves.get(rec.index, {}), rec.index in front)
            status = _RUN_STATUS.get(rec.status, "RUNNING" if state == "running" else "KILLED")
            run = existing.get(f"trial:{rec.index}")
            self.out.trial_runs[rec.index] = self._upsert(run, f"trial {rec.index}", content, status=status)
            fresh, same = run is None, run is not None and _fingerprint(run) == content.fingerprint()
            self.out.created += fresh
            self.out.unchanged += same
            self.out.updated += not (fresh or same)
        self._finish(parent_id, parent_run, parent_content, _STUDY_STATUS[state])
        return self.out

    # -- what is logged ---------------------------------------------------------------------
    def _study_content(self, state: str) -> tuple[str, _Content]:
        res, spec = self.res, self.res.spec
        counts = res.counts()
        metrics: dict[str, float] = {f"trials/{k}": float(v) for k, v in counts.items()}
        metrics["trials/budget"] = float(spec.budget.trials)  # a metric: a resume may raise it
        metrics["front_size"] = float(len(res.front))
        tags = {**self._ident("study"), f"{TAG}state": state, f"{TAG}strategy": spec.strategy}
        verdict = res.verdict
        if verdict is not None:
            tags[f"{TAG}verdict"] = verdict.sentence
            metrics["verdict/edge"] = float(verdict.edge)
            for k in ("deflated_sharpe", "pbo", "spa_p_buy_and_hold", "spa_p_flat"):
                metrics[f"verdict/{k}"] = float(getattr(verdict, k))
        trace = res.objectives.hypervolume_trace(res.records)
        histories = {"hypervolume": [(r.index, v) for r, v in zip(res.records, trace)]}
        params: dict[str, Any] = {
            "strategy": spec.strategy,
            "budget.max_epochs": spec.budget.max_epochs,
            "seed": spec.seed,
            "objectives": ", ".join(f"{n} {o.goal}" for n, o in spec.objectives.items()),
        }
        if res.evaluator.scores_test:  # a model family on market data
            params.update({"data.source": spec.data.source, "validation": spec.data.validation.scheme})
        files = [(p, "") for p in res.store.artifact_paths()]
        content = _Content(params, metrics, histories, tags, files)
        return spec.name, content

    def _trial_content(
        self, rec: TrialRecord, parent_id: str, curve: dict[str, list[tuple[int, float]]], on_front: bool
    ) -> _Content:
        metrics = {f"validation/{k}": float(v) for k, v in rec.metrics.items()}
        metrics.update({f"validation/{k}_se": float(v) for k, v in rec.sems.items()})
        metrics.update({f"test/{k}": float(v) for k, v in (self.res.test.get(rec.index) or {}).items()})
        metrics["epochs"] = float(rec.epochs)
        if "total" in rec.seconds:
            metrics["seconds"] = float(rec.seconds["total"])
        tags = {
            **self._ident("trial"),
            f"{TAG}trial": str(rec.index),
            f"{TAG}status": rec.status,
            f"{TAG}source": rec.source,
            f"{TAG}pareto": "true" if on_front else "false",
            "mlflow.parentRunId": parent_id,
        }
        if rec.reason:
            tags[f"{TAG}reason"] = rec.reason
        files = [(p, "model") for p in self.res.store.artifact_paths(rec.index)]
        histories = {f"curve/{k}": v for k, v in curve.items()}
        return _Content(dict(rec.params), metrics, histories, tags, files)

    def _ident(self, kind: str) -> dict[str, str]:
        return {
            f"{TAG}kind": kind,
            f"{TAG}study_key": self.key,
            f"{TAG}study_dir": str(self.res.store.dir.resolve()),
            f"{TAG}study": self.res.spec.name,
        }

    # -- MLflow ------------------------------------------------------------------------------
    def _existing(self) -> dict[str, Run]:
        """This study's runs by ``study`` and ``trial:<i>`` (the earliest where there are two)."""
        from mlflow.entities import ViewType

        found: dict[str, Run] = {}
        token: str | None = None
        while True:
            page = self.client.search_runs(
                [self.out.experiment_id],
                filter_string=f"tags.`{TAG}study_key` = '{self.key}'",
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            for run in page:
                tags = run.data.tags
                kind = tags.get(f"{TAG}kind")
                name = "study" if kind == "study" else f"trial:{tags.get(f'{TAG}trial')}"
                found.setdefault(name, run)
            token = page.token
            if not token:
                return found

    def _upsert(self, run: Run | None, name: str, content: _Content, *, status: str | None = None) -> str:
        """Create or complete one run, then set its status and fingerprint (with ``status`` None,
        later, by :meth:`_finish`: the parent's come after its children)."""
        if run is not None and _fingerprint(run) == content.fingerprint():
            return str(run.info.run_id)
        if run is None:
            run = self.client.create_run(self.out.experiment_id, tags=content.tags, run_name=name)
        run_id = str(run.info.run_id)
        self._write(run, content)
        if status is not None:
            self._finish(run_id, None, content, status)
        return run_id

    def _finish(self, run_id: str, run: Run | None, content: _Content, status: str) -> None:
        """Status and fingerprint last: a pass cut short leaves the run to be completed next time."""
        if run is not None and _fingerprint(run) == content.fingerprint():
            return
        self._set_status(run_id, status)
        self.client.set_tag(run_id, f"{TAG}fingerprint", content.fingerprint())

    def _set_status(self, run_id: str, status: str) -> None:
        if status == "RUNNING":
            self.client.update_run(run_id, status=status)
        else:
            self.client.set_terminated(run_id, status=status)

    def _write(self, run: Run, content: _Content) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run_id = str(run.info.run_id)
        have_params, have_metrics = run.data.params, run.data.metrics
        params = [Param(k, v) for k, v in content.param_values().items() if k not in have_params]
        tags = [RunTag(k, v[:_MAX_TAG]) for k, v in content.tag_values().items() if run.data.tags.get(k) != v]
        metrics = [
            Metric(k, v, self.now, 0)
            for k, v in content.metrics.items()
            if math.isfinite(v) and have_metrics.get(k) != v
        ]
        for key, points in content.histories.items():
            logged = (
                {m.step for m in self.client.get_metric_history(run_id, key)}
                if key in have_metrics
                else set()
            )
            metrics.extend(
                Metric(key, v, self.now, step)
                for step, v in points
                if step not in logged and math.isfinite(v)
            )
        _log_batches(self.client, run_id, metrics, params, tags)
        for path, where in content.files:
            self.client.log_artifact(run_id, str(path), artifact_path=where or None)


@dataclass
class _Content:
    """Everything one run gets."""

    params: dict[str, Any]
    metrics: dict[str, float]
    histories: dict[str, list[tuple[int, float]]]
    tags: dict[str, str]
    files: list[tuple[Path, str]]  # (file, artifact directory; "" for the run's root)

    def param_values(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.params.items()}

    def tag_values(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.tags.items()}

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        payload = {
            "params": self.param_values(),
            "metrics": {k: v for k, v in self.metrics.items() if math.isfinite(v)},
            "histories": self.histories,
            "tags": self.tag_values(),
            "files": [(str(p.name), where, _file_hash(p)) for p, where in self.files],
        }
        digest.update(json.dumps(payload, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:32]


def _fingerprint(run: Run) -> str | None:
    return run.data.tags.get(f"{TAG}fingerprint")


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _log_batches(
    client: MlflowClient,
    run_id: str,
    metrics: Sequence[Metric],
    params: Sequence[Param],
    tags: Sequence[RunTag],
) -> None:
    """``log_batch`` within MLflow's limits (1,000 metrics, 100 parameters and 100 tags a call)."""
    for i in range(0, max(len(params), len(tags)), _BATCH_OTHER):
        client.log_batch(run_id, params=params[i : i + _BATCH_OTHER], tags=tags[i : i + _BATCH_OTHER])
    for i in range(0, len(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i : i + _BATCH_METRICS])


def _curves(res: StudyResults) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """Per trial, per curve metric: (step, value) in report order; the rows of ``Study.curves()``
    (step: the report's ``step``, else its epoch)."""
    out: dict[int, dict[str, list[tuple[int, float]]]] = {}
    for rec in res.records:
        for report in res.store.read_curve(rec.index):
            epoch = report.get("epoch")
            step = report.get("step", epoch)
            if not isinstance(step, (int, float)) or isinstance(step, bool):
                continue
            for key, value in report.items():
                if key in ("epoch", "fold", "step") or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    out.setdefault(rec.index, {}).setdefault(key, []).append((int(step), float(value)))
    return out


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (database migrations, run links) only with ``-v``."""
    if not logging.getLogger("engine").isEnabledFor(logging.DEBUG):
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)


@contextlib.contextmanager
def _bounded_http() -> Iterator[None]:
    """:data:`HTTP_LIMITS` in the environment for the duration, where it does not set them."""
    added = {k: v for k, v in HTTP_LIMITS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def shown_uri(uri: str) -> str:
    """A URI (or a message holding one) without its passwords (see :func:`engine.store.redact_text`)."""
    from engine.store import redact_text

    return redact_text(uri)
