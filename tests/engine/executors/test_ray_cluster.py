"""A study on a multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head and two worker nodes of
one CPU each, on this machine): more workers than CPUs queue, a node lost mid-trial costs nothing but
time, the channel lives on the driver's node, and what no node can run is refused.

The trials (tests/engine/cluster_trials.py) leave marks in a shared directory, so that what ran where
and at once is read from them, not from timings.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.executors import ExecutorPlan, check_executor
from engine.executors.ray import RayExecutor
from engine.store import StudyStore
from engine.study.run import run_study
from engine.study.trial import execute
from strategies.exceptions import InputError
from tests.engine import cluster_trials
from tests.engine.conftest import synthetic_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow]

NODE: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    c = Cluster(initialize_head=True, connect=False, head_node_args=NODE)
    try:
        for _ in range(2):
            c.add_node(**NODE)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


@pytest.fixture
def connected(cluster: Any) -> Iterator[str]:
    """This process as the cluster's driver; yields the driver's node."""
    import ray

    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().get_node_id())
    finally:
        ray.shutdown()


def _spec(name: str, workers: int, trials: int, epochs: int = 3, **executor: Any) -> Any:
    return synthetic_spec(
        name,
        budget={"trials": trials, "sobol_trials": trials, "max_epochs": epochs, "trial_timeout_s": 120},
        synthetic={"epoch_seconds": 0.3 if epochs <= 3 else 1.0},
        executor={"kind": "ray", "workers": workers, "threads_per_worker": 1, **executor},
    )


def test_what_no_node_can_run_is_refused(cluster: Any) -> None:
    with pytest.raises(InputError, match=r"executor.gpus_per_trial: a trial asks for 1 GPU"):
        check_executor(ExecutorPlan("ray", 1, 1, cluster.address, gpus_per_trial=1))
    with pytest.raises(InputError, match=r"executor.threads_per_worker: a trial asks for 2 CPUs"):
        check_executor(ExecutorPlan("ray", 1, 2, cluster.address))
    check_executor(ExecutorPlan("ray", 3, 1, cluster.address))


def test_the_channel_lives_on_the_drivers_node(connected: str) -> None:
    """Wherever Ray would put a zero-CPU actor (any of the three nodes), the channel goes with the driver:
    losing any other node never loses it."""
    for _ in range(4):
        ex = RayExecutor(workers=3, threads=1, trial_timeout_s=60, fn=execute)
        ex.start()
        try:
            assert ex.channel_node() == connected
            assert ex.capacity == 3
        finally:
            ex.shutdown()


def test_more_workers_than_cpus_queue(cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """6 workers on 3 one-CPU nodes: at most 3 trials at once, never 2 on one node (Ray lends a task's
    CPU to others while it blocks in ``ray.get``; the per-epoch stop check must not let it).

    A trial runs for seconds (6 epochs of 1 s) so that one started on a lent CPU would overlap the
    trial that lent it (a new worker process takes a second or two). The spec has no address:
    RAY_ADDRESS names the cluster (as for ``ray.init()``)."""
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    marks = tmp_path / "marks"
    marks.mkdir()
    outcome = run_study(
        _spec("queued", workers=6, trials=6, epochs=6),
        tmp_path / "s",
        trial_fn=functools.partial(cluster_trials.counted, str(marks)),
    )
    assert [r.status for r in outcome.records] == ["completed"] * 6
    seen = [json.loads(p.read_text()) for p in marks.glob("seen-*.json")]
    assert sorted({s["trial"] for s in seen}) == [r.index for r in outcome.records]
    assert max(s["on_node"] for s in seen) == 1, seen
    assert max(s["total"] for s in seen) <= 3, seen


def test_a_node_lost_mid_trial_reruns_that_trial_and_keeps_the_others(
    cluster: Any, connected: str, tmp_path: Path
) -> None:
    """The first trial to start on a worker node stays there; that node is removed. The study ends with
    every trial completed, the lost one run again under its index (counted once, the loss recorded), and
    every trial completed before the loss unchanged. (Last in this module: it removes a node.)"""
    marks = tmp_path / "marks"
    marks.mkdir()
    directory = tmp_path / "s"
    before: dict[int, dict[str, Any]] = {}
    removed: list[str] = []

    def remove_the_victims_node() -> None:
        victim = marks / "victim.json"
        deadline = time.monotonic() + 300
        node = None
        while node is None:  # the trial writes the file as it starts: wait until it is whole
            if time.monotonic() > deadline:
                return
            try:
                node = json.loads(victim.read_text())["node"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        for index, rec in _completed(directory).items():
            before[index] = rec
        worker = next(n for n in cluster.worker_nodes if n.node_id == node)
        cluster.remove_node(worker)
        removed.append(node)

    remover = threading.Thread(target=remove_the_victims_node, daemon=True)
    remover.start()
    outcome = run_study(
        _spec("lost", workers=3, trials=6, address=cluster.address),
        directory,
        trial_fn=functools.partial(cluster_trials.lost_once, str(marks), connected),
    )
    remover.join(timeout=60)
    victim = json.loads((marks / "victim.json").read_text())
    assert removed == [victim["node"]] and victim["node"] != connected
    assert [r.status for r in outcome.records] == ["completed"] * 6  # nothing failed, nothing extra
    lost = {r.index: r for r in outcome.records}[victim["trial"]]
    assert len(lost.info["lost"]) == 1 and "lost" in lost.info["lost"][0]
    runs = [p for p in marks.glob(f"started-{victim['trial']}-*")]
    assert len(runs) == 2 and {p.read_text() for p in runs} - {victim["node"]}  # run again elsewhere
    after = _completed(directory)
    for index, rec in before.items():
        assert after[index]["metrics"] == rec["metrics"]
    assert StudyStore(directory).read_runs()[-1]["interrupted"] is False


def _completed(directory: Path) -> dict[int, dict[str, Any]]:
    out = {}
    for path in (directory / "trials").glob("*/result.json"):
        rec = json.loads(path.read_text())
        if rec["status"] == "completed":
            out[rec["index"]] = rec
    return out
