"""Shared test settings: one torch thread (the suite runs on 2 cores), quiet libraries."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)
    logging.getLogger("ax").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"(botorch|gpytorch|linear_operator|ax)(\.|$)")
