"""Ray executor: trials as Ray tasks, on this machine or a cluster.

``"executor": {"kind": "ray", "address": "auto"}`` joins a running cluster
(so does ``RAY_ADDRESS`` when the spec gives no address, as in ``ray.init``);
without an address a local Ray is started with ``workers * threads`` CPUs.
The Ax loop stays in the driver. Prepared data go to Ray's object store once
(workers on other machines can't read the study directory). Ray is an
optional extra: ``pip install boengine[ray]``.

What a cluster may do to a study, and what happens then:

- **A node is lost.** The per-epoch channel is a small actor pinned to the
  driver's node (it goes only with the driver) and restarted by Ray if its
  process dies; a trial sees a broken channel as "no stop request", never as
  a failure. A trial lost with its node (:data:`LOST_WITH_NODE`) runs again,
  under the same trial index (counted once), at most :data:`NODE_LOSS_RETRIES`
  more times; the losses are kept in its ``info["lost"]``.
- **More workers than the cluster runs at once.** Trials are handed to Ray
  only while a node has room for one (:attr:`RayExecutor.capacity` counts the
  alive nodes' CPUs and GPUs), and the per-epoch stop check waits for its
  answer off the task's main thread, so Ray does not lend the trial's CPU
  to another task meanwhile (it does so during a ``ray.get`` on the main thread).
- **Timeouts** count from the trial's start (its first message on the
  channel), not from its submission.
- **A failed task** keeps its root cause: the innermost exception's type and
  message, without Ray's colour codes.
- **The address** is checked before a study writes anything
  (:mod:`engine.executors.ray_cluster`): unreachable, not a Ray cluster, no
  cluster for ``auto``, or no node with the GPUs a trial asks for is one
  line, within 30 s.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.executors.base import Executor, TrialFn, register_executor
from engine.executors.ray_cluster import (
    ANSI,
    check_ray_plan,
    import_ray,
    root_cause,
    sigterm_kept,
    trials_per_node,
)
from engine.study.trial import TrialJob, TrialOutcome

if TYPE_CHECKING:
    from engine.executors.plan import ExecutorPlan

__all__ = ["NODE_LOSS_RETRIES", "RayExecutor"]

logger = logging.getLogger(__name__)

#: A trial lost with its node runs again at most this many times (so at most 3 runs in all).
NODE_LOSS_RETRIES = 2
#: Seconds a trial waits for the channel's answer to "should I stop?" (then: no).
STOP_CHECK_TIMEOUT_S = 30.0
#: Seconds between two looks at the cluster's nodes (for :attr:`RayExecutor.capacity`).
SLOTS_REFRESH_S = 1.0
#: Ray's failures that mean the task's node is gone (an object lost with its node included).
LOST_WITH_NODE = (
    "NodeDiedError",
    "ObjectLostError",
    "ObjectFetchTimedOutError",
    "ObjectReconstructionFailedError",
)

# --- the per-epoch channel -------------------------------------------------------------------


class _ChannelState:
    """Actor state behind :class:`ActorChannel`: reports and start messages for the driver,
    stop requests and answers to fold reports for the trials."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []
        self.starts: list[tuple[int, int, str]] = []
        self.stops: set[int] = set()
        self.answers: set[tuple[int, int]] = set()

    def report(self, trial_index: int, report: dict[str, float]) -> None:
        self.reports.append((trial_index, report))

    def started(self, trial_index: int, attempt: int, node_id: str) -> None:
        self.starts.append((trial_index, attempt, node_id))

    def should_stop(self, trial_index: int) -> bool:
        return trial_index in self.stops

    def stop(self, trial_index: int) -> None:
        self.stops.add(trial_index)

    def fold_answered(self, trial_index: int, fold: int) -> bool:
        return (trial_index, fold) in self.answers

    def answer(self, trial_index: int, fold: int) -> None:
        self.answers.add((trial_index, fold))

    def drain(self) -> tuple[list[tuple[int, dict[str, float]]], list[tuple[int, int, str]]]:
        out = (self.reports, self.starts)
        self.reports, self.starts = [], []
        return out

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


class ActorChannel:
    """The :class:`~engine.study.trial.Channel` of one run (``attempt``) of a trial, inside its Ray task.

    A channel that does not answer (its actor restarting) is "no stop
    request": the trial trains on, and only its curve misses the epochs.
    """

    def __init__(self, actor: Any, attempt: int = 1) -> None:
        self._actor = actor
        self._attempt = attempt

    def report(self, trial_index: int, report: Mapping[str, float]) -> None:
        try:
            self._actor.report.remote(trial_index, dict(report))
        except Exception:  # the actor is gone: the trial is not at fault
            logger.debug("trial %d: the report channel is gone", trial_index)

    def started(self, trial_index: int) -> None:
        import ray

        try:
            node = str(ray.get_runtime_context().get_node_id())
            self._actor.started.remote(trial_index, self._attempt, node)
        except Exception:
            logger.debug("trial %d: the report channel is gone", trial_index)

    def should_stop(self, trial_index: int) -> bool:
        """Ask the driver, waiting in a helper thread: Ray lends a task's CPU to other tasks while
        the task's main thread blocks in ``ray.get``, not while another thread of it does."""
        return self._ask("should_stop", trial_index, default=False)

    def fold_answered(self, trial_index: int, fold: int) -> bool:
        """The driver has judged fold report ``fold`` (a channel that does not answer: yes)."""
        return self._ask("fold_answered", trial_index, fold, default=True)

    def _ask(self, method: str, trial_index: int, *args: Any, default: bool) -> bool:
        import ray

        answer: list[bool] = []

        def ask() -> None:
            try:
                ref = getattr(self._actor, method).remote(trial_index, *args)
                answer.append(bool(ray.get(ref, timeout=STOP_CHECK_TIMEOUT_S)))
            except Exception:
                logger.debug("trial %d: no answer from the channel", trial_index)

        helper = threading.Thread(target=ask, name="boengine-stop-check", daemon=True)
        helper.start()
        helper.join(STOP_CHECK_TIMEOUT_S + 5)
        return bool(answer[0]) if answer else default


def _run_trial(fn: TrialFn, job: TrialJob, channel: ActorChannel, data: Any) -> TrialOutcome:
    """The Ray task: say it started (its timeout counts from here), then run the trial."""
    channel.started(job.trial_index)
    return fn(job, channel, data)


# --- failures --------------------------------------------------------------------------------


def _is_node_loss(exc: BaseException, node: str | None, alive: set[str]) -> bool:
    """Whether ``exc`` means the task's node was lost (not the configuration's fault)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & set(LOST_WITH_NODE):
        return True
    # a worker killed with its node can come back as a crashed worker before the node is marked dead
    return "WorkerCrashedError" in names and node is not None and node not in alive


# --- the executor ----------------------------------------------------------------------------


@register_executor("ray")
class RayExecutor(Executor):
    """Trials as Ray tasks with ``threads`` CPUs (and optional GPUs) each; see the module docstring."""

    def __init__(
        self,
        *,
        address: str | None = None,
        gpus_per_trial: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.address = address
        self.gpus_per_trial = gpus_per_trial
        self._clock = clock  # trial times (the timeout): a test may run its own
        self._queue: deque[TrialJob] = deque()  # submitted, not handed to Ray yet
        self._refs: dict[Any, int] = {}  # handed to Ray
        self._jobs: dict[int, TrialJob] = {}
        self._attempts: dict[int, int] = {}
        self._started: dict[int, float] = {}  # when the current run of a trial started
        self._nodes: dict[int, str] = {}  # where it runs
        self._lost: dict[int, list[str]] = {}
        self._progress: dict[int, float] = {}  # the last step reported, per trial
        self._replayed: dict[int, float] = {}  # steps a lost run already reported
        self._reports: list[tuple[int, dict[str, float]]] = []
        self._slots = self.workers
        self._slots_at = -math.inf
        self._actor: Any = None
        self._data_ref: Any = None
        self._remote: Any = None
        self._owns_ray = False
        self._channel_down = False

    @classmethod
    def from_plan(cls, plan: ExecutorPlan, *, trial_timeout_s: float, fn: TrialFn) -> RayExecutor:
        return cls(
            address=plan.address,
            gpus_per_trial=plan.gpus_per_trial,
            workers=plan.workers,
            threads=plan.threads,
            trial_timeout_s=trial_timeout_s,
            fn=fn,
        )

    @classmethod
    def check(cls, plan: ExecutorPlan) -> None:
        check_ray_plan(plan)

    @property
    def capacity(self) -> int:
        """``workers``, or fewer when the cluster's alive nodes have room for fewer trials at once."""
        return min(self.workers, self._cluster_slots())

    @property
    def running(self) -> set[int]:
        return set(self._refs.values()) | {job.trial_index for job in self._queue}

    def start(self, data: Any = None) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:  # "local": a new Ray here, even where RAY_ADDRESS is set
                kwargs.update(
                    address="local", num_cpus=self.workers * self.threads, object_store_memory=256 * 1024**2
                )
            else:
                kwargs["address"] = self.address
            with sigterm_kept():
                ray.init(**kwargs)
            self._owns_ray = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        self._actor = (
            ray.remote(_ChannelState)
            .options(
                num_cpus=0,
                max_restarts=-1,
                max_task_retries=-1,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
            )
            .remote()
        )
        self._data_ref = ray.put(data) if data is not None else None
        self._remote = ray.remote(_run_trial).options(
            num_cpus=self.threads, num_gpus=self.gpus_per_trial, max_retries=0
        )
        self._slots_at = -math.inf

    # -- submitting ---------------------------------------------------------------------------
    def submit(self, job: TrialJob) -> None:
        self._jobs[job.trial_index] = job
        self._attempts.setdefault(job.trial_index, 0)
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand queued trials to Ray while a node has room for one."""
        while self._queue and len(self._refs) < self._cluster_slots():
            job = self._queue.popleft()
            index = job.trial_index
            self._attempts[index] += 1
            channel = ActorChannel(self._actor, self._attempts[index])
            ref = self._remote.remote(self.fn, job, channel, self._data_ref)
            self._refs[ref] = index

    def _cluster_slots(self) -> int:
        """Trials the alive nodes run at once (looked up at most every :data:`SLOTS_REFRESH_S`)."""
        if self._remote is None:
            return self.workers
        now = time.monotonic()
        if now - self._slots_at < SLOTS_REFRESH_S:
            return self._slots
        import ray

        self._slots_at = now
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        slots = sum(trials_per_node(n, self.threads, self.gpus_per_trial) for n in nodes)
        if slots != self._slots:
            logger.log(
                logging.WARNING if slots < self.workers else logging.INFO,
                "the Ray cluster runs %d trial(s) at once now (%d alive node(s), %d CPUs%s a trial)",
                slots,
                len(nodes),
                self.threads,
                f", {self.gpus_per_trial:g} GPUs" if self.gpus_per_trial else "",
            )
        self._slots = slots
        return slots

    # -- waiting ------------------------------------------------------------------------------
    def wait(self, timeout: float) -> list[TrialOutcome]:
        import ray

        self._dispatch()
        if not self._refs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        self._poll_channel()
        out = [o for o in (self._collect(ref) for ref in ready) if o is not None]
        out.extend(self._timeouts())
        self._dispatch()
        return out

    def _timeouts(self) -> list[TrialOutcome]:
        import ray

        out = []
        now = self._clock()
        for ref, index in list(self._refs.items()):
            began = self._started.get(index)
            if began is None or now - began <= self.trial_timeout_s:
                continue  # not started yet (queued in Ray), or within its time
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            del self._refs[ref]
            reason = f"timeout: ran longer than {self.trial_timeout_s:g} s"
            out.append(self._finish(TrialOutcome.failed(index, reason, now - began)))
        return out

    def _collect(self, ref: Any) -> TrialOutcome | None:
        """The outcome of a finished task; None when its trial was lost with its node and runs again."""
        import ray

        index = self._refs.pop(ref)
        began = self._started.get(index)
        elapsed = self._clock() - began if began is not None else 0.0
        try:
            outcome: TrialOutcome = ray.get(ref)
        except Exception as exc:  # a task Ray could not run or finish: no outcome came back
            if _is_node_loss(exc, self._nodes.get(index), self._alive_nodes()):
                if self._run_again(index, exc):
                    return None
                reason = (
                    f"lost with its node in each of its {self._attempts[index]} runs; last: {root_cause(exc)}"
                )
            else:
                reason = root_cause(exc)
            outcome = TrialOutcome.failed(index, reason, elapsed, traceback=ANSI.sub("", str(exc)))
        return self._finish(outcome)

    def _run_again(self, index: int, exc: BaseException) -> bool:
        """Queue a trial lost with its node again, unless it has used its retries."""
        node = self._nodes.get(index, "unknown")
        loss = f"run {self._attempts[index]}: node {node[:12]} lost ({root_cause(exc)})"
        self._lost.setdefault(index, []).append(loss)
        if self._attempts[index] > NODE_LOSS_RETRIES:
            return False
        logger.warning(
            "trial %d was lost with its node (%s); running it again (run %d of at most %d)",
            index,
            loss,
            self._attempts[index] + 1,
            NODE_LOSS_RETRIES + 1,
        )
        self._started.pop(index, None)
        self._nodes.pop(index, None)
        self._replayed[index] = self._progress.get(index, 0.0)
        self._queue.appendleft(self._jobs[index])
        self._slots_at = -math.inf  # the cluster changed
        return True

    def _finish(self, outcome: TrialOutcome) -> TrialOutcome:
        index = outcome.trial_index
        if self._lost.get(index):
            outcome.info["lost"] = list(self._lost[index])
        for book in (self._jobs, self._attempts, self._started, self._nodes, self._lost):
            book.pop(index, None)
        self._progress.pop(index, None)
        self._replayed.pop(index, None)
        return outcome

    def _alive_nodes(self) -> set[str]:
        import ray

        return {str(n["NodeID"]) for n in ray.nodes() if n.get("Alive")}

    # -- the channel --------------------------------------------------------------------------
    def _poll_channel(self) -> None:
        """Take the channel's reports and start messages (a channel that is restarting: later)."""
        import ray

        if self._actor is None:
            return
        try:
            reports, starts = ray.get(self._actor.drain.remote(), timeout=STOP_CHECK_TIMEOUT_S)
        except Exception as exc:  # the actor restarting (its process died): Ray brings it back
            if not self._channel_down:
                logger.warning("the per-epoch channel does not answer (%s); retrying", root_cause(exc))
            self._channel_down = True
            return
        if self._channel_down:
            logger.info("the per-epoch channel answers again")
            self._channel_down = False
        now = self._clock()
        running = set(self._refs.values())
        for index, attempt, node in starts:
            if index in running and attempt == self._attempts.get(index):
                self._started[index] = now
                self._nodes[index] = node
        for index, report in reports:
            step = report.get("step", report.get("epoch"))
            if step is not None:
                if step <= self._replayed.get(index, -math.inf):
                    continue  # a lost run reported this step already
                self._progress[index] = max(self._progress.get(index, 0.0), float(step))
            self._reports.append((index, report))

    def drain_reports(self) -> list[tuple[int, dict[str, float]]]:
        self._poll_channel()
        out, self._reports = self._reports, []
        return out

    def request_stop(self, trial_index: int) -> None:
        if self._actor is not None:
            self._actor.stop.remote(trial_index)

    def answer_fold(self, trial_index: int, fold: int) -> None:
        if self._actor is not None:
            self._actor.answer.remote(trial_index, fold)

    def channel_node(self) -> str | None:
        """The node the per-epoch channel lives on (the driver's)."""
        import ray

        if self._actor is None:
            return None
        return str(ray.get(self._actor.node_id.remote(), timeout=STOP_CHECK_TIMEOUT_S))

    def shutdown(self) -> list[int]:
        cancelled = sorted(self.running)
        self._queue.clear()
        try:
            import ray
        except ImportError:
            return cancelled
        if ray.is_initialized():
            for ref in self._refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if self._actor is not None and not self._owns_ray:
                with contextlib.suppress(Exception):
                    ray.kill(self._actor)
            if self._owns_ray:
                ray.shutdown()
        self._refs.clear()
        self._actor = None
        self._remote = None
        return cancelled
