"""The fused-kernel pre-build: where it lives, and a lock left by an interrupted build."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from engine.optimizer import kernels, prebuild_kernels
from engine.optimizer.kernels import STALE_LOCK_S


def test_prebuild_kernels_reports_where_the_kernel_lives() -> None:
    status = prebuild_kernels()
    assert status.build_dir.endswith("logei_fused_ext")
    assert isinstance(status.loaded, bool) and status.seconds >= 0


def test_prebuild_kernels_removes_a_lock_left_by_an_interrupted_build(tmp_path, monkeypatch) -> None:
    """torch waits forever on a build directory's ``lock`` file; one left by a killed build is removed."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.setattr(logei, "_load_attempted", False)
    baton = tmp_path / "logei_fused_ext" / "lock"
    baton.parent.mkdir()
    baton.touch()
    old = time.time() - STALE_LOCK_S - 60
    os.utime(baton, (old, old))
    seen: list[bool] = []
    monkeypatch.setattr(logei, "_try_load_fused_kernel", lambda: seen.append(baton.exists()))
    status = prebuild_kernels()
    assert seen == [False]  # the stale lock was gone before BoTorch's loader ran
    assert status.build_dir == str(tmp_path / "logei_fused_ext") and not status.loaded


def test_prebuild_kernels_waits_for_a_build_in_progress(tmp_path, monkeypatch) -> None:
    """A ``lock`` held by a live build (another process working in the build directory, as
    torch's ``ninja`` does; BoTorch builds on first use outside boengine's lock too) is waited
    for, not removed; one that no process holds goes once it is past the grace period."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.setattr(logei, "_load_attempted", False)
    build = tmp_path / "logei_fused_ext"
    baton = build / "lock"
    build.mkdir()
    baton.touch()
    old = time.time() - kernels.GRACE_S - 5
    os.utime(baton, (old, old))
    # a stand-in for ninja: works in the build directory, then finishes and releases the lock
    builder = subprocess.Popen(
        [sys.executable, "-c", "import os, time; time.sleep(2); os.remove('lock')"], cwd=build
    )
    seen: list[bool] = []
    monkeypatch.setattr(logei, "_try_load_fused_kernel", lambda: seen.append(baton.exists()))
    try:
        prebuild_kernels()
    finally:
        builder.wait(timeout=30)
    assert seen == [False] and builder.returncode == 0  # waited for the builder, which removed it
    # no process works there: a lock past the grace period is an interrupted build's
    baton.touch()
    os.utime(baton, (old, old))
    monkeypatch.setattr(logei, "_load_attempted", False)
    prebuild_kernels()
    assert seen == [False, False]


def test_prebuild_kernels_keeps_the_lock_of_a_loaded_kernel(tmp_path, monkeypatch) -> None:
    """Once this process has loaded (or tried to load) the kernel, the build directory is not touched."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_load_attempted", True)
    baton = tmp_path / "logei_fused_ext" / "lock"
    baton.parent.mkdir()
    baton.touch()
    prebuild_kernels()
    assert baton.exists()
