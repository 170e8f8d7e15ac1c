"""BoTorch's fused qLogEHVI kernel: built once per environment, before the first model batch."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

import torch

__all__ = ["KernelStatus", "prebuild_kernels"]

logger = logging.getLogger(__name__)

#: Age (seconds) after which torch's build ``lock`` file is taken as left by a killed build.
STALE_LOCK_S = 900.0
#: A ``lock`` this young may belong to a build that has not started ``ninja`` yet.
GRACE_S = 30.0


@dataclass(frozen=True)
class KernelStatus:
    """Where BoTorch's fused qLogEHVI kernel is cached and whether it loaded."""

    loaded: bool
    build_dir: str
    seconds: float


def prebuild_kernels() -> KernelStatus:
    """Load (compiling once if needed) BoTorch's fused qLogEHVI C++ kernel.

    BoTorch compiles it on first use with ``ninja`` and ``-march=native``
    (30-110 s on a busy 2-core machine) and caches it under
    ``$TORCH_EXTENSIONS_DIR/logei_fused_ext`` or, if unset,
    ``~/.cache/torch_extensions/py<ver>_cpu/logei_fused_ext``. Loading a built
    kernel takes well under a second. Call at study start so the first model
    batch does not pay for the build; without a compiler BoTorch falls back
    to its (slower) Python code with a warning.

    torch marks a build in progress with a ``lock`` file in the build
    directory and waits, without a time limit, for it to go away; a process
    killed mid-build leaves it behind and every later load (in any process)
    hangs. boengine's builds run under an OS lock (``<build dir>.boengine-lock``,
    released when its holder dies), but BoTorch also builds on first use in a
    process that never called this (a script, another environment sharing
    the cache), so a ``lock`` file seen here may belong to a live build. It
    is waited for while a build runs in that directory (torch runs ``ninja``
    there) and removed when none does (after :data:`GRACE_S`, so that a build
    that just took the lock can start ``ninja``) or when it is older than
    :data:`STALE_LOCK_S` (a build takes minutes at most).
    """
    from botorch.acquisition.multi_objective import logei
    from filelock import FileLock

    start = time.perf_counter()
    build_dir = _kernel_build_dir()
    os.makedirs(os.path.dirname(build_dir), exist_ok=True)
    with FileLock(build_dir + ".boengine-lock"):
        baton = os.path.join(build_dir, "lock")
        if logei._C is None and not logei._load_attempted:
            _clear_stale(baton, build_dir)
        logei._try_load_fused_kernel()
    status = KernelStatus(
        loaded=logei._C is not None, build_dir=build_dir, seconds=time.perf_counter() - start
    )
    logger.info(
        "fused qLogEHVI kernel loaded=%s from %s in %.1f s", status.loaded, status.build_dir, status.seconds
    )
    return status


def _clear_stale(baton: str, build_dir: str) -> None:
    """Wait while another process builds in ``build_dir``; remove a ``lock`` no build holds."""
    waited = False
    while True:
        try:
            age = time.time() - os.stat(baton).st_mtime
        except FileNotFoundError:
            return  # no lock, or another build finished
        if age > STALE_LOCK_S or (age > GRACE_S and not _building(build_dir)):
            logger.warning("removing %s, left by an interrupted build of BoTorch's fused kernel", baton)
            with contextlib.suppress(FileNotFoundError):
                os.remove(baton)
            return
        if not waited:
            logger.info("waiting for another process's build of BoTorch's fused kernel in %s", build_dir)
            waited = True
        time.sleep(1.0)


def _building(build_dir: str) -> bool:
    """Whether a process works in ``build_dir`` (torch runs ``ninja`` with it as the working
    directory). Without ``/proc`` (not Linux) every lock counts as live until it is stale."""
    proc = "/proc"
    if not os.path.isdir(proc):
        return True
    target = os.path.realpath(build_dir)
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            if os.path.realpath(os.readlink(os.path.join(proc, pid, "cwd"))) == target:
                return True
        except OSError:
            continue  # gone, or not ours to read
    return False


def _kernel_build_dir() -> str:
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        import sys

        accel = "cpu" if torch.version.cuda is None else f"cu{torch.version.cuda.replace('.', '')}"
        root = os.path.join(
            get_default_build_root(), f"py{sys.version_info.major}{sys.version_info.minor}_{accel}"
        )
    return os.path.join(root, "logei_fused_ext")
