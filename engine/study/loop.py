"""The study loop: ask Ax for configurations, run them, tell Ax the results.

Split as Optuna splits its own: :meth:`StudyLoop.run` orchestrates,
:meth:`StudyLoop._ask` proposes for free worker slots, and the
:class:`~engine.study.tell.TrialBook` records each outcome. Every worker is kept
busy: when a trial finishes, its slot is filled at once (running trials are
pending points for Ax). Failures are data: a failed trial is recorded with its
reason and the study goes on, until too many fail in a row. Trials report per
epoch (learning curves, early stopping) and, with Pareto-aware stopping
across folds, per fold (:mod:`engine.study.fold_stopping`) on the same channel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ax.api.client import Client
from ax.exceptions.core import DataRequiredError
from ax.exceptions.generation_strategy import MaxParallelismReachedException

from engine.executors import Executor, ExecutorPlan, TrialFn, make_executor
from engine.objective import Objective
from engine.optimizer import prebuild_kernels, seeded_rounding, set_torch_threads, stopped_trials_pending
from engine.records import REEVALUATED_SOURCES, TrialRecord
from engine.spec import ExperimentSpec
from engine.store import StudyStore
from engine.study.fold_stopping import PartialTrial, is_fold_report, judge
from engine.study.progress import Progress, Snapshot, take_snapshot
from engine.study.tell import INTERRUPTED, TrialBook, study_log
from engine.study.trial import TrialJob, TrialOutcome
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
        objective: Objective,
        plan: ExecutorPlan,
        progress: Progress,
        trial_fn: TrialFn,
    ) -> None:
        self.spec = spec
        self.store = store
        self.client = client
        self.objective = objective
        self.plan = plan
        self.progress = progress
        self.trial_fn = trial_fn
        self.book = TrialBook(spec, store, client)
        self._queued: deque[tuple[dict[str, Any], str]] = deque()
        self._consecutive_failures = 0
        self._stop_requested: set[int] = set()
        self._fold_stops: dict[int, dict[str, Any]] = {}  # Pareto fold stops asked, by trial
        self._ask_blocked = False
        self._started = time.monotonic()
        self.stop: threading.Event | None = None  # set from a signal handler: interrupt between polls

    @property
    def counted(self) -> int:
        """Trials that count towards the budget, queued ones included."""
        return len(self._queued) + self.book.counted()

    def queue_configurations(self, configs: Sequence[Mapping[str, Any]], *, source: str) -> int:
        """Configurations to evaluate before asking the optimizer (baselines, priors); returns how many."""
        room = max(0, self.spec.budget.trials - self.counted)
        taken = list(configs)[:room]
        for c in taken:
            self._queued.append(({p.name: c[p.name] for p in self.spec.space.tunable}, source))
        return len(taken)

    # -- the loop --------------------------------------------------------------------
    def run(self) -> bool:
        """Run until the budget is spent; return True when interrupted (Ctrl-C)."""
        executor = make_executor(
            self.plan, trial_timeout_s=self.spec.budget.trial_timeout_s, fn=self.trial_fn
        )
        logger.info(
            "executor %s: %d workers x %d torch threads", self.plan.kind, self.plan.workers, self.plan.threads
        )
        interrupted = False
        started = time.time()
        run = {
            "start": started,
            "workers": self.plan.workers,
            "threads": self.plan.threads,
            "executor": self.plan.kind,
        }
        self.store.begin_run(run)
        set_torch_threads(self.spec.optimizer)  # the driver's GP fits: one thread, no oversubscription
        # BoTorch compiles its fused qLogNEHVI kernel on first use (tens of seconds, once per
        # environment): build it while the first (Sobol) trials train, not at the first model batch.
        kernel_build = threading.Thread(target=prebuild_kernels, name="prebuild-kernels", daemon=True)
        kernel_build.start()
        self.progress.start(self.spec, self.snapshot())
        try:
            executor.start(self.objective.shared_data(self.store))
            self._drive(executor)
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("interrupted: abandoning running trials; rerun the same command to continue")
        finally:
            for index in executor.shutdown():
                self.book.abandon(index, INTERRUPTED)
            self.progress.stop(self.snapshot())
            self.store.end_run({**run, "end": time.time(), "interrupted": interrupted})
        if kernel_build.is_alive() and not interrupted:
            # a build cut short by the process exiting would be paid again by the next study
            logger.info(
                "finishing the one-time build of BoTorch's fused qLogNEHVI kernel (cached afterwards)"
            )
            kernel_build.join()
        return interrupted

    def _drive(self, executor: Executor) -> None:
        while True:
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt  # asked before, and the first exception was swallowed
            outcomes = executor.wait(POLL_SECONDS)
            self._handle_reports(executor)  # before telling: a trial's last epochs belong to its curve
            for outcome in outcomes:
                rec = self.book.tell(self._with_fold_stop(outcome))
                self._ask_blocked = False
                if rec is not None:
                    self._finished(rec)
            self._check_failures()
            free = executor.capacity - len(executor.running)
            remaining = self.spec.budget.trials - self.counted  # new proposals still allowed
            if remaining <= 0 and not self._queued and not executor.running:
                return
            if self.spec.executor.synchronous and executor.running:
                continue  # reproducible batches: wait for the whole batch
            if free > 0 and (self._queued or remaining > 0):
                self._ask(executor, min(free, self.spec.budget.batch_size or executor.capacity), remaining)

    def _finished(self, rec: TrialRecord) -> None:
        shown = rec.reason if rec.status in ("failed", "abandoned") else _figures(rec)
        study_log.info(
            "trial %d %s (%s): %s [%d epochs]", rec.index, rec.status, rec.source, shown, rec.epochs
        )
        if rec.status == "failed":
            self._consecutive_failures += 1
            logger.warning("trial %d failed: %s", rec.index, rec.reason)
        else:
            self._consecutive_failures = 0
        self.progress.trial_finished(rec, self.snapshot())

    # -- ask -------------------------------------------------------------------------
    def _ask(self, executor: Executor, slots: int, remaining: int) -> None:
        while self._queued and slots > 0:
            params, source = self._queued.popleft()
            self._submit(executor, self.client.attach_trial(params), params, source)
            slots -= 1
        n = min(slots, remaining)
        if n <= 0 or self._ask_blocked:
            return
        start = time.perf_counter()
        stopped_trials_pending()  # a stopped trial's configuration is not proposed again (idempotent)
        try:
            with seeded_rounding(f"{self.spec.seed}:{len(self.client._experiment.trials)}"):
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
                "completed_before": sum(r.status == "completed" for r in self.book.records.values()),
                "node": node,
                "time": time.time(),
            }
        )
        self.progress.batch(sorted(proposals), seconds, node)
        study_log.info("proposed trials %s with %s in %.2f s", sorted(proposals), node, seconds)
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
        record = self.book.started(index, params, source)
        study_log.info("trial %d started (%s): %s", index, source, record.params)
        executor.submit(
            TrialJob(
                trial_index=index,
                params=record.params,
                seed=trial_seed(self.spec.seed, index),
                objective=self.objective,
                threads=self.plan.threads,
                data_dir=str(self.store.data_dir.resolve()),
            )
        )
        self.progress.trial_started(record, self.snapshot())

    # -- reports and early stopping ----------------------------------------------------------
    def _handle_reports(self, executor: Executor) -> None:
        es = self.spec.early_stopping
        touched: set[int] = set()
        for index, report in executor.drain_reports():
            rec = self.book.records.get(index)
            if rec is None or rec.status != "running":
                continue
            if is_fold_report(report):
                self._judge_fold(executor, index, report)
                continue
            self.store.append_curve(index, report)
            progression = int(report.get("step", report.get("epoch", 0)))
            value = report.get(es.metric)
            if value is not None and self.book.curve_point(index, es.metric, value, progression):
                touched.add(index)
            rec.epochs = max(rec.epochs, progression)
        if not es.enabled:
            return
        for index in sorted(touched - self._stop_requested):
            if self.book.records[index].source in REEVALUATED_SOURCES:
                continue
            if self.client.should_stop_trial_early(index):
                logger.info(
                    "trial %d: early stop requested (%s in the worst %g%%)", index, es.metric, es.percentile
                )
                executor.request_stop(index)
                self._stop_requested.add(index)

    def _judge_fold(self, executor: Executor, index: int, report: Mapping[str, float]) -> None:
        """Pareto-aware stopping across folds: stop the trial when its optimistic corner after this
        fold cannot reach the front (:func:`engine.study.fold_stopping.judge`)."""
        partial = PartialTrial.from_report(report)
        judged = (
            self.spec.pareto_folds_on
            and index not in self._stop_requested
            and self.book.records[index].source not in REEVALUATED_SOURCES
        )
        try:
            if judged:
                self._stop_if_hopeless(executor, index, partial)
        finally:
            executor.answer_fold(index, partial.folds_done)  # the trial waits for it

    def _stop_if_hopeless(self, executor: Executor, index: int, partial: PartialTrial) -> None:
        pf = self.spec.early_stopping.pareto_folds
        decision = judge(
            partial,
            self.book.records.values(),
            self.book.objectives,
            z=pf.z,
            min_folds=pf.min_folds,
            min_completed=pf.min_completed,
        )
        if decision is None:
            return
        study_log.info("trial %d: %s", index, decision.reason)
        if decision.stop:
            logger.info("trial %d: %s", index, decision.reason)
            executor.request_stop(index)
            self._stop_requested.add(index)
            self._fold_stops[index] = decision.to_info()

    def _with_fold_stop(self, outcome: TrialOutcome) -> TrialOutcome:
        """A trial stopped by a Pareto fold stop carries the decision (``info["pareto_stop"]``)
        and its reason; one that finished before the request reached it is left as it is."""
        decision = self._fold_stops.pop(outcome.trial_index, None)
        if decision is not None and outcome.status == "early_stopped":
            outcome.info = {**outcome.info, "pareto_stop": decision}
            outcome.reason = str(decision["reason"])
        return outcome

    def _check_failures(self) -> None:
        limit = self.spec.budget.max_consecutive_failures
        if self._consecutive_failures >= limit:
            last = max((r for r in self.book.records.values() if r.status == "failed"), key=lambda r: r.index)
            raise StudyError(
                f"{limit} trials failed in a row; last (trial {last.index}): {last.reason}. "
                "Fix the cause and rerun the same command to continue"
            )

    # -- progress -----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return take_snapshot(
            list(self.book.records.values()),
            self.book.objectives,
            budget=self.spec.budget.trials,
            remaining=max(0, self.spec.budget.trials - self.counted) + len(self._queued),
            elapsed_s=time.monotonic() - self._started,
            workers=self.plan.workers,
        )


def _figures(rec: TrialRecord) -> str:
    return ", ".join(
        f"{k} {v:.4g}" + (f" ± {rec.sems[k]:.2g}" if k in rec.sems else "")
        for k, v in rec.metrics.items()
        if k in ("return_pct", "sharpe", "max_drawdown_pct", "num_trades")
    )


def _source(node: str) -> str:
    """A trial record's ``source`` from the name of the node that proposed it."""
    name = node.lower()
    if name.startswith("sobol"):
        return "sobol"
    if name.startswith("center"):
        return "center"
    return "model"
