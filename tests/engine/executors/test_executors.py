"""One contract, every executor: results, failures, timeouts, crashes, reports, stop requests.

Each executor is started once and serves every case (worker start-up is the
slow part), through :func:`tests.engine.faulty.dispatch`.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine.executors import EXECUTORS, Executor, ExecutorPlan, make_executor, thread_plan
from engine.objective import make_objective
from engine.study.trial import TrialJob, TrialOutcome, execute
from strategies.exceptions import ConfigError
from tests.conftest import require_extra
from tests.engine import faulty
from tests.engine.conftest import synthetic_spec

TIMEOUT_S = 40.0  # includes a cold worker's start-up (a fresh process imports torch; slow on a busy machine)
#: Ray's workers start slower still: under a load of 4-6 on 2 cores a cold Ray worker took over 40 s
#: to finish a 3-epoch synthetic trial, and a crashed or killed worker is replaced by a cold one.
TIMEOUT_S_BY_EXECUTOR = {"local": TIMEOUT_S, "ray": 90.0}


def job(index: int, behaviour: str, max_epochs: int = 3) -> TrialJob:
    params = {**{f"x{i}": 0.3 for i in range(6)}, "behaviour": behaviour}
    spec = synthetic_spec("executors", budget={"max_epochs": max_epochs})
    return TrialJob(trial_index=index, params=params, seed=0, objective=make_objective(spec))


JOBS = [
    job(0, "ok"),
    job(1, "raise"),
    job(2, "nan"),
    job(3, "hang"),
    job(4, "crash"),
    job(5, "slow", max_epochs=15),
    job(6, "ok"),
]


@pytest.fixture(
    scope="module",
    params=[pytest.param("local"), pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])],
)
def results(
    request: pytest.FixtureRequest,
) -> tuple[dict[int, TrialOutcome], list[tuple[int, dict[str, float]]], float, float]:
    """Run every job once on one executor; stop the slow one after its 2nd epoch. Returns the
    outcomes, the epoch reports, the seconds it took and the trial timeout it ran with."""
    if request.param == "ray":
        require_extra("ray", "ray")
    timeout_s = TIMEOUT_S_BY_EXECUTOR[request.param]
    ex: Executor = make_executor(
        ExecutorPlan(request.param, workers=2, threads=1), trial_timeout_s=timeout_s, fn=faulty.dispatch
    )
    reports: list[tuple[int, dict[str, float]]] = []
    out: dict[int, TrialOutcome] = {}
    queue = list(JOBS)
    start = time.monotonic()
    try:
        ex.start()
        while len(out) < len(JOBS) and time.monotonic() - start < 6 * timeout_s + 60:
            while queue and len(ex.running) < ex.capacity:
                ex.submit(queue.pop(0))
            for o in ex.wait(0.2):
                out[o.trial_index] = o
            for index, report in ex.drain_reports():
                reports.append((index, report))
                if index == 5 and report["epoch"] >= 2:
                    ex.request_stop(index)
        assert not ex.running
    finally:
        ex.shutdown()
    return out, reports, time.monotonic() - start, timeout_s


def test_registry_has_both() -> None:
    assert {"local", "ray"} <= set(EXECUTORS)
    with pytest.raises(ConfigError, match="unknown kind 'slurm'"):
        make_executor(ExecutorPlan("slurm", workers=1, threads=1), trial_timeout_s=1, fn=execute)


def test_thread_plan_never_oversubscribes() -> None:
    assert thread_plan(None, None, 2) == (2, 1)
    assert thread_plan(1, None, 2) == (1, 2)
    assert thread_plan(None, 2, 4) == (2, 2)
    with pytest.raises(ConfigError, match="exceeds the 2 cores"):
        thread_plan(2, 2, 2)


def test_every_job_comes_back(results: Any) -> None:
    out, _, _, _ = results
    assert sorted(out) == [j.trial_index for j in JOBS]


def test_completes_and_reports_epochs(results: Any) -> None:
    out, reports, _, _ = results
    assert out[0].status == out[6].status == "completed"
    assert set(out[0].metrics) == {"return_pct", "sharpe", "max_drawdown_pct"}
    assert sorted(int(r["epoch"]) for i, r in reports if i == 0) == [1, 2, 3]


def test_raising_objective_is_a_failure_with_reason(results: Any) -> None:
    out, _, _, _ = results
    assert out[1].status == "failed" and "unknown synthetic problem" in (out[1].reason or "")
    assert "Traceback (most recent call last)" in (out[1].traceback or "")  # travels back to the driver


def test_nan_metric_is_a_failure(results: Any) -> None:
    out, _, _, _ = results
    assert out[2].status == "failed" and "non-finite metrics: sharpe" in (out[2].reason or "")


def test_hanging_trial_times_out(results: Any) -> None:
    out, _, elapsed, timeout_s = results
    assert out[3].status == "failed" and "timeout" in (out[3].reason or "")
    assert out[3].seconds["total"] < timeout_s + 10
    assert elapsed < 4 * timeout_s + 40  # the hung trial does not hold up the others


def test_crashed_worker_is_a_failure(results: Any) -> None:
    out, _, _, _ = results
    assert out[4].status == "failed" and "died" in (out[4].reason or "")  # not a timeout, not an error
    assert not out[4].metrics


def test_stop_request_stops_after_the_epoch(results: Any) -> None:
    out, _, _, _ = results
    assert out[5].status == "early_stopped"
    assert 2 <= out[5].epochs < 15


def _wait_outcome(ex: Executor, limit: float = 120) -> TrialOutcome:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done = ex.wait(0.2)
        ex.drain_reports()
        if done:
            return done[0]
    raise AssertionError("no outcome in time")


def test_a_dead_idle_worker_or_channel_does_not_break_the_study() -> None:
    """A worker killed outside a trial, or the report channel's process killed: the next trials still run."""
    import multiprocessing
    import os
    import signal

    ex = make_executor(
        ExecutorPlan("local", workers=1, threads=1), trial_timeout_s=TIMEOUT_S, fn=faulty.dispatch
    )
    try:
        ex.start()
        assert _wait_outcome_after(ex, job(10, "ok")).status == "completed"  # the worker is up
        manager_pid = ex._manager._process.pid  # type: ignore[attr-defined]
        workers = [p.pid for p in multiprocessing.active_children() if p.pid != manager_pid]
        assert workers
        for pid in workers:  # die while idle: the pool breaks
            os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)  # let the pool notice (its state, not ours, is what this waits for)
        assert _wait_outcome_after(ex, job(11, "ok")).status == "completed"
        os.kill(manager_pid, signal.SIGKILL)
        time.sleep(0.5)
        outcome = _wait_outcome_after(ex, job(12, "ok"))
        assert outcome.status == "completed" and set(outcome.metrics) >= {"sharpe"}
    finally:
        ex.shutdown()


def _wait_outcome_after(ex: Executor, j: TrialJob) -> TrialOutcome:
    ex.submit(j)
    return _wait_outcome(ex)
