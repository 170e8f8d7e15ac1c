"""User packages written into a temporary working directory, and a registry left as it was found.

Use the fixture with ``@pytest.mark.usefixtures("workdir")``: it is ``tmp_path``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import strategies
from strategies import registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FAMILY = (ROOT / "experiments" / "my_family.py").read_text()
EXAMPLE_METRICS = (ROOT / "experiments" / "my_metrics.py").read_text()


def write_package(root: Path, files: dict[str, str]) -> str:
    """A new package (a fresh name: module caches never mix tests) under ``root`` holding ``files``."""
    name = f"userpkg_{uuid.uuid4().hex[:10]}"
    (root / name).mkdir()
    for module, text in files.items():
        (root / name / f"{module}.py").write_text(text)
    return name


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path`` as the working directory; ``sys.path``, ``sys.modules`` and the family
    registry are restored afterwards (the loader appends the working directory to ``sys.path``)."""
    assert strategies.FAMILIES  # the built-in families register first: they stay registered
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = [(table, dict(table)) for table in (registry._REGISTRY, registry._BY_CLASS, registry._LOADED)]
    modules = set(sys.modules)
    yield tmp_path
    for table, content in saved:
        table.clear()
        table.update(content)  # type: ignore[attr-defined]
    for name in set(sys.modules) - modules:
        if name.startswith("userpkg_"):
            del sys.modules[name]
