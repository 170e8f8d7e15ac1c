"""Trial functions that misbehave on purpose (importable by spawned workers).

:func:`dispatch` picks the behaviour from the job's ``behaviour`` parameter so
that one executor (one worker start-up) can serve every case.
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine.trial import Channel, TrialJob, TrialOutcome, _check_finite, execute


def dispatch(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    behaviour = job.params.get("behaviour", "ok")
    if behaviour == "raise":  # the objective raises: execute() records it as a failure
        job = TrialJob(**{**job.__dict__, "strategy": "synthetic:nonexistent"})
    elif behaviour == "nan":
        out = execute(job, channel, data)
        out.metrics["sharpe"] = float("nan")
        return _check_finite(out)
    elif behaviour == "hang":
        time.sleep(3600)
    elif behaviour == "crash":  # the worker dies, as on a segfault or the OOM killer
        os._exit(3)
    elif behaviour == "slow":
        job = TrialJob(**{**job.__dict__, "epoch_seconds": 0.3})
    return execute(job, channel, data)


def raise_when_x0_high(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    """Fail every configuration with x0 > 0.5 (a study must carry on)."""
    if float(job.params["x0"]) > 0.5:
        return dispatch(
            TrialJob(**{**job.__dict__, "params": {**job.params, "behaviour": "raise"}}), channel, data
        )
    return execute(job, channel, data)


def nan_always(job: TrialJob, channel: Channel, data: Any = None) -> TrialOutcome:
    return dispatch(TrialJob(**{**job.__dict__, "params": {**job.params, "behaviour": "nan"}}), channel, data)
