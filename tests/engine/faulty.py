"""Trial functions that misbehave on purpose (importable by spawned workers).

:func:`dispatch` picks the behaviour from the job's ``behaviour`` parameter so
that one executor (one worker start-up) can serve every case.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from typing import Any

from engine.study.trial import Channel, TrialJob, TrialOutcome, check_finite, execute


def _with(job: TrialJob, **changes: Any) -> TrialJob:
    return dataclasses.replace(job, **changes)


def dispatch(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    behaviour = job.params.get("behaviour", "ok")
    if behaviour == "raise":  # the objective raises: execute() records it as a failure
        broken = copy.copy(job.objective)
        broken.problem = "nonexistent"  # type: ignore[attr-defined]
        job = _with(job, objective=broken)
    elif behaviour == "nan":
        out = execute(job, channel, data)
        out.metrics["sharpe"] = float("nan")
        return check_finite(out)
    elif behaviour == "hang":
        time.sleep(3600)
    elif behaviour == "crash":  # the worker dies, as on a segfault or the OOM killer
        os._exit(3)
    elif behaviour == "slow":
        spec = job.objective.spec
        slow = spec.model_copy(update={"synthetic": spec.synthetic.model_copy(update={"epoch_seconds": 0.3})})
        objective = copy.copy(job.objective)
        objective.spec = slow
        job = _with(job, objective=objective)
    return execute(job, channel, data)


def raise_when_x0_high(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    """Fail every configuration with x0 > 0.5 (a study must carry on)."""
    if float(job.params["x0"]) > 0.5:
        return dispatch(_with(job, params={**job.params, "behaviour": "raise"}), channel, data)
    return execute(job, channel, data)


def nan_always(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    return dispatch(_with(job, params={**job.params, "behaviour": "nan"}), channel, data)
