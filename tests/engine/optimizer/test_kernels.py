"""The fused-kernel pre-build: where it lives (one directory per environment), and a lock left by an
interrupted build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.optimizer import kernels, prebuild_kernels
from engine.optimizer.kernels import STALE_LOCK_S


def test_prebuild_kernels_loads_the_kernel_where_a_compiler_is() -> None:
    """With a C++ compiler and ninja (as on the machines boengine is tested on) the kernel is built
    or found and loaded; without them it is not, and the Python code stays."""
    from botorch.acquisition.multi_objective import logei

    status = prebuild_kernels()
    assert os.path.basename(status.build_dir).startswith("logei_fused_ext-torch")
    assert status.build_dir == kernels.kernel_build_dir() and status.seconds >= 0
    tools = shutil.which("ninja") is not None and shutil.which("c++") is not None
    assert status.loaded is tools
    assert (logei._C is not None) is tools


def test_each_environment_has_its_own_build_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two environments sharing one cache (two virtual environments, or two torch versions) build
    into two directories; one environment always finds its own."""
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    a, b = tmp_path / "venv-a", tmp_path / "venv-b"
    a.mkdir()
    b.mkdir()
    here = kernels.kernel_build_dir(prefix=str(a))
    assert here == kernels.kernel_build_dir(prefix=str(a))
    assert here != kernels.kernel_build_dir(prefix=str(b))
    assert here != kernels.kernel_build_dir(prefix=str(a), torch_version="2.99.0")
    assert os.path.dirname(here) == os.path.dirname(kernels.kernel_build_dir(prefix=str(b)))  # one cache
    link = tmp_path / "link-to-a"
    link.symlink_to(a)
    assert kernels.kernel_build_dir(prefix=str(link)) == here  # the same environment by another path
    assert kernels.kernel_build_dir() == kernels.kernel_build_dir(prefix=sys.prefix)
    assert "torch2.99.0-" in kernels.environment_key(str(a), "2.99.0")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    assert os.path.dirname(kernels.kernel_build_dir(prefix=str(a))) == str(tmp_path / "ext")
    assert os.path.basename(kernels.kernel_build_dir(prefix=str(a))) == os.path.basename(here)


def test_prebuild_kernels_builds_in_the_environments_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build goes to this environment's directory, with BoTorch's own loader marked done first
    (an acquisition built meanwhile must not start a second build in the shared default directory)."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.setattr(logei, "_load_attempted", False)
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(kernels, "_load_kernel", lambda d: seen.append((d, logei._load_attempted)))
    status = prebuild_kernels()
    assert seen == [(kernels.kernel_build_dir(), True)]
    assert status.build_dir == kernels.kernel_build_dir() and not status.loaded
    prebuild_kernels()  # once per process
    assert len(seen) == 1


def test_prebuild_kernels_removes_a_lock_left_by_an_interrupted_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch waits forever on a build directory's ``lock`` file; one left by a killed build is removed."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.setattr(logei, "_load_attempted", False)
    baton = Path(kernels.kernel_build_dir()) / "lock"
    baton.parent.mkdir()
    baton.touch()
    old = time.time() - STALE_LOCK_S - 60
    os.utime(baton, (old, old))
    seen: list[bool] = []
    monkeypatch.setattr(kernels, "_load_kernel", lambda d: seen.append(baton.exists()))
    status = prebuild_kernels()
    assert seen == [False]  # the stale lock was gone before the loader ran
    assert status.build_dir == str(baton.parent) and not status.loaded


def test_prebuild_kernels_waits_for_a_build_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``lock`` held by a live build (another process working in the build directory, as
    torch's ``ninja`` does; BoTorch builds on first use outside boengine's lock too) is waited
    for, not removed; one that no process holds goes once it is past the grace period."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.setattr(logei, "_load_attempted", False)
    build = Path(kernels.kernel_build_dir())
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
    monkeypatch.setattr(kernels, "_load_kernel", lambda d: seen.append(baton.exists()))
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


def test_prebuild_kernels_keeps_the_lock_of_a_loaded_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once this process has loaded (or tried to load) the kernel, the build directory is not touched."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_load_attempted", True)
    baton = Path(kernels.kernel_build_dir()) / "lock"
    baton.parent.mkdir()
    baton.touch()
    prebuild_kernels()
    assert baton.exists()
