"""Shared test settings: one torch thread (the suite runs on 2 cores), quiet libraries."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import warnings
from types import ModuleType

import pytest
import torch


def require_extra(module: str, extra: str) -> ModuleType:
    """``module`` of an optional extra: the test is skipped when the extra is not installed, and
    fails (never skips) when it is installed but does not import (``pytest.importorskip`` would
    skip a broken install silently)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(
            f'needs the optional extra {extra!r} (pip install -e ".[{extra}]")', allow_module_level=True
        )
    return importlib.import_module(module)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)
    logging.getLogger("ax").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"(botorch|gpytorch|linear_operator|ax)(\.|$)")
