"""The fused-kernel pre-build: where it lives, and a lock left by an interrupted build."""

from __future__ import annotations

from engine.optimizer import prebuild_kernels


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
    seen: list[bool] = []
    monkeypatch.setattr(logei, "_try_load_fused_kernel", lambda: seen.append(baton.exists()))
    status = prebuild_kernels()
    assert seen == [False]  # the stale lock was gone before BoTorch's loader ran
    assert status.build_dir == str(tmp_path / "logei_fused_ext") and not status.loaded


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
