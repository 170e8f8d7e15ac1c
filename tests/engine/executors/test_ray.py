"""The Ray executor on one machine: what it refuses before writing, root causes, the timeout's start, SIGTERM.

The multi-node cases (a lost node, more workers than CPUs) are in test_ray_cluster.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.executors import ExecutorPlan, plan_executor
from engine.executors.ray import RayExecutor, _is_node_loss
from engine.executors.ray_cluster import probe_cluster, root_cause
from engine.objective import make_objective
from engine.store import StudyStore
from engine.study.trial import TrialJob, TrialOutcome
from strategies.exceptions import InputError
from tests.conftest import require_extra
from tests.engine import cluster_trials, faulty
from tests.engine.conftest import DTLZ2_OBJECTIVES, synthetic_spec

ROOT = Path(__file__).resolve().parents[3]

#: What a worker without boengine sent back (Ray 2.60, colour codes and all).
NO_ENGINE = (
    "\x1b[36mray::_run_trial()\x1b[39m (pid=5532, ip=192.0.2.2)\n"
    "  At least one of the input arguments for this task could not be computed:\n"
    "ray.exceptions.RaySystemError: System error: No module named 'engine'\n"
    "traceback: Traceback (most recent call last):\n"
    '  File "/usr/lib/python3/site-packages/ray/_private/serialization.py", line 460, in deserialize\n'
    "ModuleNotFoundError: No module named 'engine'"
)


# -- without a Ray runtime ----------------------------------------------------------------------


def test_a_task_failure_keeps_its_root_cause() -> None:
    reason = root_cause(NO_ENGINE)
    assert reason.startswith("ModuleNotFoundError: No module named 'engine'")
    assert "install boengine" in reason and "\x1b" not in reason and "\n" not in reason

    class NodeDiedError(Exception):  # Ray's message has no "Type: message" line
        pass

    died = NodeDiedError("Task failed because the node it was running on is dead or unavailable.\nmore")
    assert root_cause(died) == (
        "NodeDiedError: Task failed because the node it was running on is dead or unavailable."
    )
    assert root_cause("x\nValueError: outer\nKeyError: 'inner'") == "KeyError: 'inner'"  # the last raised


def test_only_a_lost_node_is_a_node_loss() -> None:
    class NodeDiedError(Exception):
        pass

    class ObjectLostError(Exception):
        pass

    class ObjectFetchTimedOutError(ObjectLostError):
        pass

    class WorkerCrashedError(Exception):
        pass

    assert _is_node_loss(NodeDiedError(), None, set())
    assert _is_node_loss(ObjectFetchTimedOutError(), "n1", {"n1"})  # the result went with its node
    assert _is_node_loss(WorkerCrashedError(), "n1", {"n2"})  # its node is gone
    assert not _is_node_loss(WorkerCrashedError(), "n1", {"n1"})  # the trial crashed its worker
    assert not _is_node_loss(ValueError(), "n1", set())


def _ray_spec(tmp_path: Path, name: str, **executor: Any) -> Path:
    raw = {
        "name": name,
        "strategy": "synthetic:dtlz2",
        "objectives": DTLZ2_OBJECTIVES,
        "budget": {"trials": 4, "sobol_trials": 4, "max_epochs": 4, "trial_timeout_s": 120},
        "early_stopping": {"enabled": False},
        "synthetic": {"epoch_seconds": 0.5},
        "executor": {"kind": "ray", "workers": 1, **executor},
        "seed": 5,
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(raw))
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.interfaces.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _one_line_exit_2(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.ray
@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_unreachable_address_is_refused_before_anything_is_written(tmp_path: Path, command: str) -> None:
    require_extra("ray", "ray")
    spec = _ray_spec(tmp_path, "unreachable", address=f"127.0.0.1:{_free_port()}")
    study = tmp_path / "studies" / "unreachable"
    args = [command, str(spec)] + (["--study-dir", str(study)] if command == "run" else [])
    _one_line_exit_2(_cli(*args), "executor.address", "cannot reach a Ray cluster", "ray start --head")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unreachable.json"]  # no study directory


@pytest.mark.ray
def test_an_address_that_is_no_ray_cluster_fails_within_the_bound(tmp_path: Path) -> None:
    """A port that accepts connections but never speaks Ray (``ray.init`` would retry for minutes)."""
    require_extra("ray", "ray")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(InputError, match=r"executor.address: no Ray cluster answered .* within 3 s"):
            probe_cluster(address, timeout_s=3)


@pytest.mark.ray
def test_auto_without_a_cluster_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    require_extra("ray", "ray")
    if subprocess.run(["pgrep", "-f", "gcs_server"], capture_output=True).returncode == 0:
        pytest.skip("a Ray cluster runs on this machine: 'auto' would find it")
    spec = _ray_spec(tmp_path, "auto", address="auto")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", "engine.interfaces.cli", "run", str(spec), "--study-dir", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    _one_line_exit_2(proc, "executor.address", "Could not find any running Ray instance")
    assert not (tmp_path / "s").exists()


@pytest.mark.ray
def test_ray_address_in_the_environment_is_the_cluster_of_a_spec_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``ray.init()`` does; never the ValueError about num_cpus of a local Ray started inside a cluster."""
    require_extra("ray", "ray")
    address = f"127.0.0.1:{_free_port()}"
    spec = _ray_spec(tmp_path, "from_env")
    proc = _cli("validate", str(spec), env={"RAY_ADDRESS": address})
    _one_line_exit_2(proc, f"RAY_ADDRESS: cannot reach a Ray cluster at {address}")
    executor = synthetic_spec("p", executor={"kind": "ray", "workers": 1}).executor
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert plan_executor(executor).address == address
    monkeypatch.delenv("RAY_ADDRESS")
    assert plan_executor(executor).address is None


@pytest.mark.ray
def test_gpus_no_node_has_are_refused(tmp_path: Path) -> None:
    require_extra("ray", "ray")
    spec = _ray_spec(tmp_path, "gpus", gpus_per_trial=64)
    _one_line_exit_2(_cli("validate", str(spec)), "executor.gpus_per_trial", "64 GPU(s)", "no node")
    _one_line_exit_2(_cli("run", str(spec), "--study-dir", str(tmp_path / "s")), "executor.gpus_per_trial")
    assert not (tmp_path / "s").exists()


# -- a local Ray in this process ------------------------------------------------------------------


@pytest.fixture
def one_cpu_ray() -> Iterator[Any]:
    ray = require_extra("ray", "ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _job(index: int, behaviour: str = "ok", max_epochs: int = 2) -> TrialJob:
    spec = synthetic_spec("timeout", budget={"max_epochs": max_epochs})
    params = {**{f"x{i}": 0.3 for i in range(6)}, "behaviour": behaviour}
    return TrialJob(trial_index=index, params=params, seed=0, objective=make_objective(spec))


@pytest.mark.ray
def test_a_task_ray_cannot_run_fails_with_its_root_cause(one_cpu_ray: Any) -> None:
    """A task whose arguments do not load on the worker (as on a node without boengine): the reason is
    the innermost exception, one line without colour codes; Ray's whole text goes to the traceback."""
    ex = RayExecutor(workers=1, threads=1, trial_timeout_s=60.0, fn=faulty.dispatch)
    ex.start()
    try:
        broken = dataclasses.replace(_job(0), params={**_job(0).params, "x0": cluster_trials.Unloadable()})
        ex.submit(broken)
        deadline = time.monotonic() + 120
        out: list[TrialOutcome] = []
        while not out and time.monotonic() < deadline:
            out = ex.wait(0.2)
        assert out and out[0].status == "failed"
        assert (out[0].reason or "").startswith(
            "ModuleNotFoundError: No module named 'engine'; install boengine"
        )
        assert "\x1b" not in (out[0].reason or "") and "\n" not in (out[0].reason or "")
        assert "RaySystemError" in (out[0].traceback or "")
    finally:
        ex.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_the_timeout_counts_from_the_trials_start_not_its_submission(one_cpu_ray: Any) -> None:
    """Two trials on one CPU: the second waits its turn for (a simulated) 1000 s, past its 100 s
    timeout, and still completes: its time counts from its start. (It trains for 2 s of 6 epochs,
    so the driver looks at its time several times while it runs.)"""
    now = [0.0]
    ex = RayExecutor(workers=2, threads=1, trial_timeout_s=100.0, fn=faulty.dispatch, clock=lambda: now[0])
    ex.start()
    try:
        assert ex.capacity == 1  # the cluster (one CPU) runs one trial at a time
        ex.submit(_job(0))
        ex.submit(_job(1, "slow", max_epochs=6))
        assert ex.running == {0, 1}
        out: dict[int, TrialOutcome] = {}
        deadline = time.monotonic() + 240
        while len(out) < 2 and time.monotonic() < deadline:
            for outcome in ex.wait(0.2):
                out[outcome.trial_index] = outcome
                now[0] += 1000.0  # trial 1 has been waiting (queued) for 1000 s
            ex.drain_reports()
        assert out[0].status == out[1].status == "completed", out
    finally:
        ex.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_sigterm_under_ray_saves_the_study_and_exits_130(tmp_path: Path) -> None:
    """``ray.init`` installs its own SIGTERM handler (exit 1 or 15); the study's must stay."""
    require_extra("ray", "ray")
    spec = _ray_spec(tmp_path, "sigterm")
    study = tmp_path / "study"
    cmd = [
        sys.executable,
        "-m",
        "engine.interfaces.cli",
        "--quiet",
        "run",
        str(spec),
        "--study-dir",
        str(study),
    ]
    proc = subprocess.Popen([*cmd, "--progress", "quiet"], cwd=ROOT)
    store = StudyStore(study)
    deadline = time.monotonic() + 180
    while not (store.dir / "trials" / "0" / "curve.jsonl").is_file():  # Ray runs trial 0
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    runs = store.read_runs()
    assert len(runs) == 1 and runs[0]["interrupted"] and runs[0]["executor"] == "ray"
    again = subprocess.run(
        [*cmd, "--progress", "quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    runs = store.read_runs()
    assert len(runs) == 2 and not runs[1]["interrupted"]


@pytest.mark.ray
def test_a_trial_needs_one_node_with_its_cpus_and_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPUs on one node and the CPUs on another run no trial; the cluster's size caps the workers."""
    require_extra("ray", "ray")
    from engine.executors import ray_cluster

    nodes = [{"CPU": 1.0, "GPU": 1.0}, {"CPU": 8.0}]
    monkeypatch.setattr(ray_cluster, "probe_cluster", lambda address, timeout_s: nodes)
    with pytest.raises(InputError, match=r"^executor: no node of .* has both the 4 CPUs and the 1 GPU"):
        ray_cluster.check_ray_plan(ExecutorPlan("ray", 1, 4, "10.0.0.5:6379", gpus_per_trial=1))
    ray_cluster.check_ray_plan(ExecutorPlan("ray", 1, 1, "10.0.0.5:6379", gpus_per_trial=1))
    assert ray_cluster.trials_per_node({"CPU": 8.0, "GPU": 1.0}, 2, 0.5) == 2
    assert ray_cluster.trials_per_node({"CPU": 8.0}, 3, 0.0) == 2
    assert ray_cluster.trials_per_node({"CPU": 1.0, "GPU": 1.0}, 1, 0.1) == 1  # 10 GPU slices, 1 CPU
