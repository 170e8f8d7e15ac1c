"""Optional extras in tests: skipped when not installed, a failure when installed but broken."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import require_extra


def test_an_extra_that_is_not_installed_skips() -> None:
    with pytest.raises(pytest.skip.Exception, match="needs the optional extra 'nothing'"):
        require_extra("boengine_no_such_module", "nothing")


def test_an_installed_extra_that_does_not_import_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "boengine_broken_extra.py").write_text("import boengine_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "boengine_broken_extra", raising=False)
    with pytest.raises(ModuleNotFoundError, match="boengine_missing_dependency"):
        require_extra("boengine_broken_extra", "broken")


def test_an_installed_extra_is_returned() -> None:
    assert require_extra("json", "stdlib").dumps([1]) == "[1]"
