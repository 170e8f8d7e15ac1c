"""A Ray cluster seen from the driver before a study writes anything, and Ray's errors read back.

:func:`check_ray_plan` refuses, with one line, a plan no node can run: an
address that is unreachable or no Ray cluster, ``auto`` with no cluster, a
trial's CPUs or GPUs more than any node has. Joining a cluster is tried in a
child process stopped after :data:`CONNECT_TIMEOUT_S` (Ray's own ``ray.init``
retries an unreachable address for minutes). :func:`root_cause` turns a Ray
task's error into the innermost exception's ``Type: message``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from strategies.exceptions import ConfigError, InputError

if TYPE_CHECKING:
    from engine.executors.plan import ExecutorPlan

__all__ = [
    "ANSI",
    "CONNECT_TIMEOUT_S",
    "check_ray_plan",
    "import_ray",
    "probe_cluster",
    "root_cause",
    "sigterm_kept",
    "trials_per_node",
]

logger = logging.getLogger(__name__)

#: The longest a check of ``executor.address`` takes (a TCP connection, then joining the cluster).
CONNECT_TIMEOUT_S = 30.0
#: Of which the TCP connection to the address at most.
TCP_TIMEOUT_S = 5.0
#: A reason longer than this is cut at a sentence's end.
REASON_CHARS = 240

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)): (.+)$")
_BOENGINE_MODULES = ("engine", "objectives", "strategies")


def root_cause(error: BaseException | str) -> str:
    """``Type: message`` of the innermost exception in a Ray error (or its text), without colour codes.

    A task that failed in Ray carries the worker's traceback as text
    (``RayTaskError(RaySystemError): ray::_run_trial() ... ModuleNotFoundError:
    No module named 'engine'``); its last ``Type: message`` line is the root
    cause. A missing boengine module on a node says so.
    """
    text = ANSI.sub("", error if isinstance(error, str) else str(error))
    found = None
    for line in text.splitlines():
        m = _EXCEPTION_LINE.match(line.strip())
        if m:
            found = f"{m.group(1)}: {m.group(2).strip()}"
    if found is None:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        name = "error" if isinstance(error, str) else type(error).__name__
        name = name.split("(")[0]
        found = f"{name}: {first}" if first else name
    if len(found) > REASON_CHARS:  # Ray's messages go on with advice on its dashboard and logs
        cut = found.rfind(". ", 0, REASON_CHARS)
        found = found[: cut + 1] if cut > 0 else found[: REASON_CHARS - 3] + "..."
    missing = re.search(r"No module named '([\w.]+)'", found)
    if missing and missing.group(1).split(".")[0] in _BOENGINE_MODULES:
        found += "; install boengine (the same version) on every node of the cluster"
    return found


_PROBE = """
import json, sys
import ray
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False, logging_level="ERROR")
nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
print(json.dumps({"nodes": nodes}))
"""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor 'ray' needs Ray: pip install 'boengine[ray]' (or set executor.kind to 'local')"
        ) from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    return ray


def _host_port(address: str, field: str) -> tuple[str, int]:
    bare = address.split("://", 1)[-1]
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(
            f"{field}: '{address}' is not host:port or 'auto'; give the address 'ray start --head' "
            "printed (e.g. 10.0.0.5:6379) or 'auto' on a node of the cluster"
        )
    return host.strip("[]"), int(port)


def probe_cluster(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> list[dict[str, float]]:
    """The resources of each alive node of the Ray cluster at ``address``, or one-line InputError.

    Ray's own ``ray.init`` retries an unreachable address for minutes, so the
    check is a TCP connection (at most :data:`TCP_TIMEOUT_S`) and then a
    ``ray.init`` in a child process killed after ``timeout_s`` seconds in all:
    nothing of Ray stays in this process.
    """
    deadline = time.monotonic() + timeout_s
    field = "RAY_ADDRESS" if os.environ.get("RAY_ADDRESS") == address else "executor.address"
    if address != "auto":
        host, port = _host_port(address, field)
        try:
            socket.create_connection((host, port), timeout=min(TCP_TIMEOUT_S, timeout_s)).close()
        except OSError as exc:
            raise InputError(
                f"{field}: cannot reach a Ray cluster at {address} ({exc.strerror or exc}); "
                "start one there with 'ray start --head', or fix host:port"
            ) from None
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, address],
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline - time.monotonic()),
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{field}: no Ray cluster answered at {address} within {timeout_s:g} s; give the address "
            "'ray start --head' printed (host:port, default port 6379)"
        ) from None
    if proc.returncode != 0:
        cause = root_cause(proc.stderr or proc.stdout or f"exit code {proc.returncode}").split(". ")[0]
        hint = (
            "start one with 'ray start --head'" if address == "auto" else "check the address and the cluster"
        )
        raise InputError(f"{field}: cannot join a Ray cluster at {address} ({cause}); {hint}")
    lines = proc.stdout.strip().splitlines()
    nodes: list[dict[str, float]] = json.loads(lines[-1])["nodes"]
    return nodes


def _local_gpus() -> int:
    import torch

    return int(torch.cuda.device_count())


def trials_per_node(resources: Mapping[str, float], threads: int, gpus: float) -> int:
    n = math.floor(resources.get("CPU", 0.0) / threads + 1e-9)
    if gpus > 0:
        n = min(n, math.floor(resources.get("GPU", 0.0) / gpus + 1e-9))
    return max(0, n)


def check_ray_plan(plan: ExecutorPlan, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, with one line, a Ray plan no node can run: an address that is no cluster, a trial's
    CPUs or GPUs more than any node has. Warn when fewer trials than ``workers`` fit at once."""
    ray = import_ray()
    where = f"the Ray cluster at {plan.address}" if plan.address else "this machine (a local Ray)"
    if ray.is_initialized():
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        where = "the connected Ray cluster"
    elif plan.address is not None:
        nodes = probe_cluster(plan.address, timeout_s)
    else:
        local: dict[str, float] = {"CPU": float(plan.workers * plan.threads)}
        if plan.gpus_per_trial > 0:
            local["GPU"] = float(_local_gpus())
        nodes = [local]
    if plan.gpus_per_trial > 0 and not any(n.get("GPU", 0.0) >= plan.gpus_per_trial for n in nodes):
        most = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
        raise InputError(
            f"executor.gpus_per_trial: a trial asks for {plan.gpus_per_trial:g} GPU(s) but no node of "
            f"{where} has that many (at most {most:g}); set gpus_per_trial to 0, or run on nodes with GPUs"
        )
    if not any(n.get("CPU", 0.0) >= plan.threads for n in nodes):
        most = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
        raise InputError(
            f"executor.threads_per_worker: a trial asks for {plan.threads} CPUs but no node of {where} has "
            f"that many (at most {most:g}); lower threads_per_worker"
        )
    fits = sum(trials_per_node(n, plan.threads, plan.gpus_per_trial) for n in nodes)
    if fits == 0:  # the GPUs on one node, the CPUs on another
        raise InputError(
            f"executor: no node of {where} has both the {plan.threads} CPUs and the {plan.gpus_per_trial:g} "
            "GPU(s) of a trial; lower threads_per_worker or gpus_per_trial"
        )
    if fits < plan.workers:
        logger.warning(
            "executor.workers: %d trials at once, but %s runs at most %d (%d CPUs%s each); the others wait",
            plan.workers,
            where,
            fits,
            plan.threads,
            f", {plan.gpus_per_trial:g} GPUs" if plan.gpus_per_trial else "",
        )


@contextlib.contextmanager
def sigterm_kept() -> Iterator[None]:
    """Keep this process's SIGTERM handler across ``ray.init`` (which installs its own, exiting 1 or 15:
    the CLI's handler saves the study and exits 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
