"""The study loop: ask Ax for configurations, run them, tell Ax the results.

Split as Optuna splits its own: :meth:`StudyLoop.run` orchestrates,
:meth:`StudyLoop._ask` proposes for free worker slots, :meth:`StudyLoop._tell`
records one outcome. Every worker is kept busy: when a trial finishes, its
slot is filled at once (running trials are pending points for Ax). Failures
are data: a failed trial is recorded with its reason and the study goes on,
until too many fail in a row.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from ax.api.client import Client
from ax.core.base_trial import TrialStatus as AxStatus
from ax.exceptions.core import DataRequiredError
from ax.exceptions.generation_strategy import MaxParallelismReachedException

from engine.executors import Executor, TrialFn, available_cores, make_executor, thread_plan
from engine.experiment import full_parameters
from engine.generation import prebuild_kernels, set_torch_threads
from engine.progress import Progress, Snapshot
from engine.records import ObjectiveSet, TrialRecord
from engine.spec import ExperimentSpec
from engine.store import StudyStore
from engine.trial import TrialJob, TrialOutcome
from strategies.exceptions import StudyError

__all__ = ["StudyLoop", "trial_seed"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25


def trial_seed(root: int, trial_index: int) -> int:
    """A per-trial seed derived from the study's root seed."""
    return int(np.random.SeedSequence([root, trial_index]).generate_state(1)[0])


class StudyLoop:
    """Runs one study's trials until the budget is spent or the user interrupts."""

    def __init__(
        self,
        spec: ExperimentSpec,
        store: StudyStore,
        client: Client,
        *,
        progress: Progress,
        trial_fn: TrialFn,
        meta: Mapping[str, Any],
    ) -> None:
        self.spec = spec
        self.store = store
        self.client = client
        self.progress = progress
        self.trial_fn = trial_fn
        self.meta = dict(meta)
        self.objectives = ObjectiveSet.from_spec(spec)
        self._ax_metrics = (*self.objectives.names, *(c.metric for c in spec.constraints))
        self.records: dict[int, TrialRecord] = {}
        self._queued: deque[tuple[dict[str, Any], str]] = deque()
        self._consecutive_failures = 0
        self._stop_requested: set[int] = set()
        self._ask_blocked = False
        self._threads = 1
        self._started = time.monotonic()
        self._load_records()

    # -- records ---------------------------------------------------------------
    def _load_records(self) -> None:
        for trial_dir in sorted((self.store.dir / "trials").glob("*")):
            data = self.store.read_result(int(trial_dir.name)) if trial_dir.name.isdigit() else None
            if data is not None:
                rec = TrialRecord.from_dict(data)
                self.records[rec.index] = rec

    def _save(self, record: TrialRecord) -> None:
        self.records[record.index] = record
        self.store.write_result(record.index, record.to_dict())

    def records_list(self) -> list[TrialRecord]:
        return [self.records[i] for i in sorted(self.records)]

    def front(self) -> list[TrialRecord]:
        return self.objectives.front(self.records.values())

    def hypervolume(self) -> float:
        return self.objectives.hypervolume(self.records.values())

    @property
    def counted(self) -> int:
        """Trials that count towards the budget: evaluated here (priors included), not abandoned.

        Trials attached from earlier studies cost nothing here and don't count;
        abandoned ones are proposed again.
        """
        return len(self._queued) + sum(
            r.status != "abandoned" and not r.source.startswith("warm_start") for r in self.records.values()
        )

    # -- resume ------------------------------------------------------------------
    def recover(self) -> None:
        """After a crash: complete trials whose results reached disk, abandon the rest."""
        for index, trial in self.client._experiment.trials.items():
            if trial.status not in (AxStatus.RUNNING, AxStatus.CANDIDATE, AxStatus.STAGED):
                continue
            rec = self.records.get(index)
            if rec is not None and rec.status in ("completed", "early_stopped", "failed"):
                logger.info("trial %d finished before the interruption; recording it in Ax", index)
                self._tell_ax(rec)
            else:
                self.client.mark_trial_abandoned(index)
                if rec is not None:
                    rec.status, rec.reason = "abandoned", "the study was interrupted while it ran"
                    self._save(rec)

    # -- warm start ---------------------------------------------------------------
    def queue_configurations(self, configs: Sequence[Mapping[str, Any]], *, source: str) -> None:
        """Configurations to evaluate before asking the optimizer (priors)."""
        room = self.spec.budget.trials - self.counted
        for c in list(configs)[: max(0, room)]:
            self._queued.append(({p.name: c[p.name] for p in self.spec.space.tunable}, source))

    def attach_completed(self, params: Mapping[str, Any], metrics: Mapping[str, float], source: str) -> int:
        """Attach an already evaluated configuration (warm start from another study)."""
        tunable = {p.name: params[p.name] for p in self.spec.space.tunable}
        index = self.client.attach_trial(tunable)
        record = TrialRecord(
            index=index,
            status="completed",
            params=full_parameters(self.spec.space, tunable),
            source=source,
            metrics={k: float(v) for k, v in metrics.items()},
        )
        self._save(record)
        self._tell_ax(record)
        return index

    def data_bars(self) -> Any:
        from engine.data import training_bars

        return training_bars(self.spec)

    # -- the loop --------------------------------------------------------------------
    def run(self) -> bool:
        """Run until the budget is spent; return True when interrupted (Ctrl-C)."""
        executor = self._make_executor()
        interrupted = False
        started = time.time()
        set_torch_threads(self.spec.optimizer)  # the driver's GP fits: one thread, no oversubscription
        # BoTorch compiles its fused qLogNEHVI kernel on first use (tens of seconds, once per
        # environment): build it while the first (Sobol) trials train, not at the first model batch.
        kernel_build = threading.Thread(target=prebuild_kernels, name="prebuild-kernels", daemon=True)
        kernel_build.start()
        self.progress.start(self.spec, self.snapshot())
        try:
            executor.start(self._shared_data())
            while True:
                outcomes = executor.wait(POLL_SECONDS)
                self._handle_reports(executor)  # before telling: a trial's last epochs belong to its curve
                for outcome in outcomes:
                    self._tell(outcome)
                    self._ask_blocked = False
                self._check_failures()
                free = executor.capacity - len(executor.running)
                remaining = self.spec.budget.trials - self.counted  # new proposals still allowed
                if remaining <= 0 and not self._queued and not executor.running:
                    break
                if self.spec.executor.synchronous and executor.running:
                    continue  # reproducible batches: wait for the whole batch
                if free > 0 and (self._queued or remaining > 0):
                    self._ask(executor, min(free, self._batch_size(executor)), remaining)
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("interrupted: abandoning running trials; rerun the same command to continue")
        finally:
            for index in executor.shutdown():
                self._abandon(index, "the study was interrupted while it ran")
            self.progress.stop(self.snapshot())
            self.store.append_run(
                {
                    "start": started,
                    "end": time.time(),
                    "workers": executor.capacity,
                    "threads": self._threads,
                    "executor": self.spec.executor.kind,
                    "interrupted": interrupted,
                }
            )
        if kernel_build.is_alive() and not interrupted:
            # a build cut short by the process exiting would be paid again by the next study
            logger.info(
                "finishing the one-time build of BoTorch's fused qLogNEHVI kernel (cached afterwards)"
            )
            kernel_build.join()
        return interrupted

    def _make_executor(self) -> Executor:
        ex = self.spec.executor
        cores = available_cores()
        if ex.kind == "ray" and ex.address is not None:
            cores = max(cores, (ex.workers or 1) * (ex.threads_per_worker or 1))
        workers, threads = thread_plan(ex.workers, ex.threads_per_worker, cores)
        kwargs: dict[str, Any] = {
            "workers": workers,
            "threads": threads,
            "trial_timeout_s": self.spec.budget.trial_timeout_s,
            "fn": self.trial_fn,
        }
        if ex.kind == "ray":
            kwargs.update(address=ex.address, gpus_per_trial=ex.gpus_per_trial)
        self._threads = threads
        logger.info("executor %s: %d workers x %d torch threads", ex.kind, workers, threads)
        return make_executor(ex.kind, **kwargs)

    def _batch_size(self, executor: Executor) -> int:
        return self.spec.budget.batch_size or executor.capacity

    def _shared_data(self) -> Any:
        if self.spec.is_synthetic or self.spec.executor.kind != "ray":
            return None
        from objectives import PreparedData

        return PreparedData.load(self.store.data_dir, mmap=False)

    # -- ask -------------------------------------------------------------------------
    def _ask(self, executor: Executor, slots: int, remaining: int) -> None:
        while self._queued and slots > 0:
            params, source = self._queued.popleft()
            index = self.client.attach_trial(params)
            self._submit(executor, index, params, source)
            slots -= 1
        n = min(slots, remaining)
        if n <= 0 or self._ask_blocked:
            return
        start = time.perf_counter()
        try:
            with _seeded_rounding(f"{self.spec.seed}:{len(self.client._experiment.trials)}"):
                proposals = self.client.get_next_trials(max_trials=n)
        except (DataRequiredError, MaxParallelismReachedException) as exc:
            if not executor.running:
                raise StudyError(f"the optimizer cannot propose and no trial is running: {exc}") from exc
            logger.debug("optimizer waits for running trials: %s", exc)
            self._ask_blocked = True
            return
        seconds = time.perf_counter() - start
        if not proposals:
            if not executor.running:
                raise StudyError(
                    "the optimizer proposed no trial and none is running; check the search space"
                )
            self._ask_blocked = True
            return
        node = self._node_name(next(iter(proposals)))
        self.store.append_batch(
            {
                "trials": sorted(proposals),
                "seconds": round(seconds, 4),
                "requested": n,
                "completed_before": sum(r.status == "completed" for r in self.records.values()),
                "node": node,
                "time": time.time(),
            }
        )
        self.progress.batch(sorted(proposals), seconds, node)
        if len(proposals) < n:
            self._ask_blocked = True  # ask again once a trial finishes
        for index, proposed in sorted(proposals.items()):
            self._submit(executor, index, dict(proposed), _source(self._node_name(index)))

    def _node_name(self, index: int) -> str:
        """The generation node that proposed trial ``index`` (a batch can span two)."""
        trial = self.client._experiment.trials[index]
        runs = getattr(trial, "generator_runs", [])
        name = getattr(runs[0], "_generation_node_name", None) if runs else None
        return str(name or "unknown")

    def _submit(self, executor: Executor, index: int, params: Mapping[str, Any], source: str) -> None:
        full = full_parameters(self.spec.space, params)
        record = TrialRecord(index=index, status="running", params=full, source=source)
        self._save(record)
        job = TrialJob(
            trial_index=index,
            strategy=self.spec.strategy,
            params=full,
            seed=trial_seed(self.spec.seed, index),
            max_epochs=self.spec.budget.max_epochs,
            backtest=self.spec.backtest,
            time_budget_s=self.spec.budget.trial_time_budget_s,
            device=self.spec.executor.device,
            threads=self._threads,
            data_dir=None if self.spec.is_synthetic else str(self.store.data_dir.resolve()),
            epoch_seconds=self.spec.synthetic.epoch_seconds,
        )
        executor.submit(job)
        self.progress.trial_started(record, self.snapshot())

    # -- reports and early stopping ----------------------------------------------------------
    def _handle_reports(self, executor: Executor) -> None:
        es = self.spec.early_stopping
        touched: set[int] = set()
        for index, report in executor.drain_reports():
            rec = self.records.get(index)
            if rec is None or rec.status != "running":
                continue
            self.store.append_curve(index, report)
            value = report.get(es.metric)
            epoch = int(report.get("epoch", 0))
            if value is not None and math.isfinite(value) and epoch > 0:
                self.client.attach_data(index, {es.metric: float(value)}, progression=epoch)
                touched.add(index)
            rec.epochs = max(rec.epochs, epoch)
        if not es.enabled:
            return
        for index in sorted(touched - self._stop_requested):
            if self.client.should_stop_trial_early(index):
                logger.info(
                    "trial %d: early stop requested (%s in the worst %g%%)", index, es.metric, es.percentile
                )
                executor.request_stop(index)
                self._stop_requested.add(index)

    # -- tell --------------------------------------------------------------------------------
    def _tell(self, outcome: TrialOutcome) -> None:
        rec = self.records.get(outcome.trial_index)
        if rec is None:
            logger.warning("outcome for unknown trial %d ignored", outcome.trial_index)
            return
        rec.status = outcome.status
        rec.metrics = dict(outcome.metrics)
        rec.reason = outcome.reason
        rec.epochs = outcome.epochs or rec.epochs
        rec.seconds = dict(outcome.seconds)
        if rec.status == "early_stopped" and rec.epochs >= self.spec.budget.max_epochs and rec.metrics:
            rec.status = "completed"  # the stop request came after the last epoch: fully trained
        if rec.status == "completed" and outcome.checkpoint is not None:
            self.store.write_checkpoint(rec.index, outcome.checkpoint)
        if rec.status == "early_stopped" and not self._has_curve_data(rec.index):
            rec.status = "failed"
            rec.reason = "stopped before reporting any epoch"
        self._save(rec)  # disk first: a crash after this line is recovered on resume
        self._tell_ax(rec)
        if rec.status == "failed":
            self._consecutive_failures += 1
            logger.warning("trial %d failed: %s", rec.index, rec.reason)
        else:
            self._consecutive_failures = 0
        self.progress.trial_finished(rec, self.snapshot())

    def _tell_ax(self, rec: TrialRecord) -> None:
        if rec.status == "completed":
            # Only what the optimizer models: every other metric would be fitted as a
            # tracking metric (more GP time for nothing); result.json keeps them all.
            raw = {k: float(rec.metrics[k]) for k in self._ax_metrics if k in rec.metrics}
            self.client.complete_trial(rec.index, raw_data=raw)
        elif rec.status == "early_stopped":
            # Only the learning curve is attached: partial objective values must never
            # reach the GP as if they were final.
            self.client.mark_trial_early_stopped(rec.index)
        elif rec.status == "failed":
            self.client.mark_trial_failed(rec.index, failed_reason=rec.reason)

    def _has_curve_data(self, index: int) -> bool:
        return bool(self.client._experiment.lookup_data(trial_indices=[index]).df.shape[0])

    def _abandon(self, index: int, reason: str) -> None:
        self.client.mark_trial_abandoned(index)
        rec = self.records.get(index)
        if rec is not None:
            rec.status, rec.reason = "abandoned", reason
            self._save(rec)

    def _check_failures(self) -> None:
        limit = self.spec.budget.max_consecutive_failures
        if self._consecutive_failures >= limit:
            last = max((r for r in self.records.values() if r.status == "failed"), key=lambda r: r.index)
            raise StudyError(
                f"{limit} trials failed in a row; last (trial {last.index}): {last.reason}. "
                "Fix the cause and rerun the same command to continue"
            )

    # -- progress -----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        recs = list(self.records.values())
        here = [r for r in recs if not r.source.startswith("warm_start")]  # what the budget counts
        counts = {
            s: sum(r.status == s for r in here) for s in ("completed", "early_stopped", "failed", "running")
        }
        best: dict[str, float] = {}
        for name in self.objectives.names:
            rec = self.objectives.best(recs, name)
            if rec is not None:
                best[name] = rec.metrics[name]
        done = counts["completed"] + counts["early_stopped"] + counts["failed"]
        elapsed = time.monotonic() - self._started
        remaining = max(0, self.spec.budget.trials - self.counted) + counts["running"]
        finished_here = max(1, done)
        eta = elapsed / finished_here * remaining if done else math.nan
        return Snapshot(
            budget=self.spec.budget.trials,
            counts=counts,
            best=best,
            hypervolume=self.objectives.hypervolume(recs),
            elapsed_s=elapsed,
            eta_s=eta,
        )

    # -- end ------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Held-out test figures for the Pareto set, then the exports."""
        from engine.finish import finish_study

        finish_study(self.spec, self.store, self.records_list(), threads=available_cores())


@contextlib.contextmanager
def _seeded_rounding(key: str) -> Iterator[None]:
    """Seed Python's ``random`` for one proposal call, then restore its state.

    With a parameter constraint on integers (``top_k <= num_experts``), Ax
    rounds relaxed integer values at random (``randomized_round``) with the
    global ``random`` module, which other code in the process also draws
    from: the same study proposed ``num_layers`` 2 in one run and 1 in the
    next for the same Sobol point. Seeding from the study seed and the trial
    count makes proposals a function of the spec and the data again.
    """
    state = random.getstate()
    random.seed(key)
    try:
        yield
    finally:
        random.setstate(state)


def _source(node: str) -> str:
    """A trial record's ``source`` from the name of the node that proposed it."""
    name = node.lower()
    if name.startswith("sobol"):
        return "sobol"
    if name.startswith("center"):
        return "center"
    return "model"
