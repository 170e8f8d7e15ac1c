"""Torch threads of the process that proposes candidates."""

from __future__ import annotations

import torch

from engine.optimizer.spec import OptimizerSpec

__all__ = ["set_torch_threads"]


def set_torch_threads(spec: OptimizerSpec) -> int:
    """Set torch's intra-op threads for this process to ``spec.torch_threads``; returns the old value.

    Call once at study start in the process that runs the Ax loop. Workers
    that train models set their own threads.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(spec.torch_threads)
    return old
