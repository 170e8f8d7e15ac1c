"""The driver's book of trials: records on disk and their state in Ax, kept in step.

Every change reaches disk first (``trials/<i>/result.json`` and the trial's
files), then Ax: a crash between the two is repaired by :meth:`TrialBook.recover`
on resume, so a completed trial is never lost nor counted twice.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from ax.api.client import Client
from ax.core.base_trial import TrialStatus as AxStatus
from ax.core.trial import Trial

from engine.records import ObjectiveSet, TrialRecord
from engine.spec import ExperimentSpec
from engine.store import StudyStore
from engine.study.experiment import full_parameters
from engine.study.trial import TrialOutcome
from strategies.exceptions import InputError

__all__ = ["TrialBook", "study_log"]

logger = logging.getLogger(__name__)

INTERRUPTED = "the study was interrupted while it ran"

#: Events for the study's own log file only (a failed trial's traceback): this logger
#: does not propagate, and :func:`engine.study.run.run_study` attaches study.log to it.
study_log = logging.getLogger("engine.study_log")
study_log.propagate = False
study_log.setLevel(logging.INFO)


class TrialBook:
    """Trial records of one study and the Ax client that models them."""

    def __init__(self, spec: ExperimentSpec, store: StudyStore, client: Client) -> None:
        self.spec = spec
        self.store = store
        self.client = client
        self.objectives = ObjectiveSet.from_spec(spec)
        self._ax_metrics = (*self.objectives.names, *(c.metric for c in spec.constraints))
        self.records: dict[int, TrialRecord] = {r.index: r for r in store.trial_records()}

    def ordered(self) -> list[TrialRecord]:
        return [self.records[i] for i in sorted(self.records)]

    def save(self, record: TrialRecord) -> None:
        self.records[record.index] = record
        self.store.write_result(record.index, record.to_dict())

    def counted(self) -> int:
        """Trials that use the budget: evaluated here (priors, baselines included), not abandoned.

        Trials attached from earlier studies cost nothing here; abandoned ones
        are proposed again.
        """
        return sum(r.counts_against_budget for r in self.records.values())

    # -- starting and finishing ---------------------------------------------------------
    def started(self, index: int, params: Mapping[str, Any], source: str) -> TrialRecord:
        record = TrialRecord(
            index=index, status="running", params=full_parameters(self.spec.space, params), source=source
        )
        self.save(record)
        return record

    def tell(self, outcome: TrialOutcome) -> TrialRecord | None:
        """Record a finished trial (files, then result.json, then Ax); None for an unknown trial."""
        rec = self.records.get(outcome.trial_index)
        if rec is None:
            logger.warning("outcome for unknown trial %d ignored", outcome.trial_index)
            return None
        if outcome.status == "abandoned":  # not the configuration's fault: proposed again
            logger.warning("trial %d abandoned: %s", rec.index, outcome.reason)
            self.abandon(rec.index, outcome.reason or "abandoned")
            return rec
        rec.status = outcome.status
        rec.metrics = dict(outcome.metrics)
        rec.sems = dict(outcome.sems)
        rec.info = dict(outcome.info)
        rec.reason = outcome.reason
        rec.epochs = outcome.epochs or rec.epochs
        rec.seconds = dict(outcome.seconds)
        if rec.status == "early_stopped" and not self.has_curve_data(rec.index):
            rec.status, rec.reason = "failed", "stopped before reporting any epoch"
        if rec.status != "failed":
            if outcome.checkpoint is not None:
                self.store.write_checkpoint(rec.index, outcome.checkpoint)
            for name, array in outcome.arrays.items():
                self.store.write_array(rec.index, name, array)
        if outcome.traceback:
            self.store.write_error(rec.index, outcome.traceback)
            study_log.info("trial %d traceback:\n%s", rec.index, outcome.traceback.rstrip())
        self.save(rec)  # disk first: a crash after this line is recovered on resume
        self.tell_ax(rec)
        return rec

    def tell_ax(self, rec: TrialRecord) -> None:
        if rec.status == "completed":
            # Only what the optimizer models: every other metric would be fitted as a
            # tracking metric (more GP time for nothing); result.json keeps them all.
            raw: dict[str, Any] = {}
            for k in self._ax_metrics:
                if k in rec.metrics:
                    sem = rec.sems.get(k)
                    raw[k] = (float(rec.metrics[k]), float(sem)) if sem is not None else float(rec.metrics[k])
            self.client.complete_trial(rec.index, raw_data=raw)
        elif rec.status == "early_stopped":
            # Only the learning curve is attached: partial objective values must never
            # reach the GP as if they were final.
            self.client.mark_trial_early_stopped(rec.index)
        elif rec.status == "failed":
            self.client.mark_trial_failed(rec.index, failed_reason=rec.reason)

    def curve_point(self, index: int, metric: str, value: float, progression: int) -> bool:
        """Attach one learning-curve value to a running trial; False if there is nothing to attach."""
        if not (math.isfinite(value) and progression > 0):
            return False
        # Not Client.attach_data: it saves the trial with all its data to the SQL store on every
        # call (0.15 s and growing with the study, once per epoch of every trial, on the driver:
        # 35 s of a 60 s, 8-trial study loop), which delays proposals and the answers to fold
        # reports that trials wait for. The point goes into the experiment in memory (where
        # Ax's early-stopping strategy reads it); the trial's end (complete, early-stopped,
        # failed) saves it with its data, trials/<i>/curve.jsonl has it on disk already, and a
        # trial still running when the driver dies is abandoned on resume.
        experiment = self.client._experiment
        if metric not in experiment.metrics:
            self.client.configure_tracking_metrics(metric_names=[metric])
        trial = experiment.trials[index]
        assert isinstance(trial, Trial), "boengine's trials are single-arm"
        trial.update_trial_data(raw_data=[(progression, {metric: float(value)})])
        return True

    def has_curve_data(self, index: int) -> bool:
        return bool(self.client._experiment.lookup_data(trial_indices=[index]).df.shape[0])

    def abandon(self, index: int, reason: str) -> None:
        self.client.mark_trial_abandoned(index)
        rec = self.records.get(index)
        if rec is not None:
            rec.status, rec.reason = "abandoned", reason
            self.save(rec)

    # -- resume and warm start -------------------------------------------------------------
    def recover(self) -> None:
        """After a crash: tell Ax about trials whose results reached disk, abandon the rest."""
        for index, trial in self.client._experiment.trials.items():
            rec = self.records.get(index)
            if rec is None and trial.status in (AxStatus.COMPLETED, AxStatus.EARLY_STOPPED):
                raise InputError(
                    f"{self.store.result_path(index)}: missing, though the Ax experiment has "
                    f"trial {index} as {trial.status.name.lower()}; restore the file, or start over with --fresh"
                )
            if trial.status not in (AxStatus.RUNNING, AxStatus.CANDIDATE, AxStatus.STAGED):
                continue
            if rec is not None and rec.status in ("completed", "early_stopped", "failed"):
                logger.info("trial %d finished before the interruption; recording it in Ax", index)
                self.tell_ax(rec)
            else:
                self.abandon(index, INTERRUPTED)

    def interrupted_configurations(self) -> list[tuple[dict[str, Any], str]]:
        """(parameters, source) of trials an interruption abandoned and nothing has evaluated since.

        A resumed study runs them first, so that an interruption loses no
        configuration (a study's centre point, a prior, a baseline).
        """
        tunable = [p.name for p in self.spec.space.tunable]

        def key(rec: TrialRecord) -> str:
            return json.dumps({k: rec.params.get(k) for k in tunable}, sort_keys=True, default=str)

        done = {key(r) for r in self.records.values() if r.status != "abandoned"}
        out, seen = [], set()
        for rec in self.ordered():
            k = key(rec)
            if rec.status == "abandoned" and rec.reason == INTERRUPTED and k not in done and k not in seen:
                seen.add(k)
                out.append(({n: rec.params[n] for n in tunable}, rec.source))
        return out

    def attach_completed(
        self,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        source: str,
        sems: Mapping[str, float] | None = None,
    ) -> int:
        """Attach an already evaluated configuration (warm start from another study)."""
        tunable = {p.name: params[p.name] for p in self.spec.space.tunable}
        index = self.client.attach_trial(tunable)
        record = TrialRecord(
            index=index,
            status="completed",
            params=full_parameters(self.spec.space, tunable),
            source=source,
            metrics={k: float(v) for k, v in metrics.items()},
            sems={k: float(v) for k, v in (sems or {}).items()},
        )
        self.save(record)
        self.tell_ax(record)
        return index
