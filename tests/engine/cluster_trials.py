"""Trial functions for the Ray cluster tests (importable by Ray's workers; bound with functools.partial).

Each leaves marks in a directory shared by every node of a one-machine
cluster: which node ran which trial, and how many trials ran at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from engine.study.trial import Channel, TrialJob, TrialOutcome, execute


def _node() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def counted(marks: str, job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    """Run the trial; record how many trials ran at that moment, in all and on this node.

    A trial's mark exists from its start to its end, so of trials that run at
    the same time the last to start sees every other: the largest count seen
    is the largest number that ever ran at once.
    """
    node = _node()
    active = Path(marks) / "active"
    active.mkdir(parents=True, exist_ok=True)
    mine = active / f"{job.trial_index}"
    mine.write_text(node, encoding="utf-8")
    try:
        others = [p.read_text(encoding="utf-8") for p in active.iterdir() if p.is_file()]
        seen = {"trial": job.trial_index, "node": node, "total": len(others), "on_node": others.count(node)}
        (Path(marks) / f"seen-{job.trial_index}-{os.getpid()}.json").write_text(json.dumps(seen))
        return execute(job, channel, data)
    finally:
        mine.unlink(missing_ok=True)


def lost_once(
    marks: str, driver_node: str, job: TrialJob, channel: Channel, data: Any = None
) -> TrialOutcome:
    """The first trial to start on a node other than the driver's stays there until the node is removed
    (the test removes it once ``victim.json`` names it); every other run, its second included, trains."""
    node = _node()
    (Path(marks) / f"started-{job.trial_index}-{os.getpid()}").write_text(node, encoding="utf-8")
    if node != driver_node:
        with contextlib.suppress(FileExistsError):
            fd = os.open(Path(marks) / "victim.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                json.dump({"trial": job.trial_index, "node": node}, f)
            time.sleep(600)  # killed with its node long before
    return execute(job, channel, data)


def _missing_boengine() -> None:
    raise ModuleNotFoundError("No module named 'engine'", name="engine")


class Unloadable:
    """Unpickles on a worker as a node without boengine would: ``No module named 'engine'``."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_missing_boengine, ())
