"""BoTorch's fused qLogEHVI kernel: built once per environment, before the first model batch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass

import torch

__all__ = ["KernelStatus", "environment_key", "kernel_build_dir", "prebuild_kernels"]

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
    (30-110 s on a busy 2-core machine) into one directory per Python version,
    ``~/.cache/torch_extensions/py<ver>_cpu/logei_fused_ext``, shared by every
    environment of that Python: two environments (another torch, another
    BoTorch) using it in turn each find the other's build and rebuild. Here it
    is built into :func:`kernel_build_dir`, a directory of its own per
    environment (``logei_fused_ext-torch<version>-<hash of the environment>``,
    under ``$TORCH_EXTENSIONS_DIR`` when set), so each environment builds once.
    Loading a built kernel takes well under a second. Call at study start so
    the first model batch does not pay for the build; BoTorch's own loader is
    marked as done first, so an acquisition built meanwhile neither starts a
    second build nor waits (it uses the Python code until the kernel is
    there). Without a compiler the (slower) Python code stays, with a warning.

    torch marks a build in progress with a ``lock`` file in the build
    directory and waits, without a time limit, for it to go away; a process
    killed mid-build leaves it behind and every later load (in any process)
    hangs. boengine's builds run under an OS lock (``<build dir>.boengine-lock``,
    released when its holder dies), but another process may build without it
    (a script calling torch's loader on this directory), so a ``lock`` file
    seen here may belong to a live build. It is waited for while a build runs
    in that directory (torch runs ``ninja`` there) and removed when none does
    (after :data:`GRACE_S`, so that a build that just took the lock can start
    ``ninja``) or when it is older than :data:`STALE_LOCK_S` (a build takes
    minutes at most).
    """
    from botorch.acquisition.multi_objective import logei
    from filelock import FileLock

    start = time.perf_counter()
    build_dir = kernel_build_dir()
    if logei._C is None and not logei._load_attempted:
        logei._load_attempted = True  # BoTorch's loader: nothing more to do in this process
        os.makedirs(os.path.dirname(build_dir), exist_ok=True)
        with FileLock(build_dir + ".boengine-lock"):
            _clear_stale(os.path.join(build_dir, "lock"), build_dir)
            _load_kernel(build_dir)
    status = KernelStatus(
        loaded=logei._C is not None, build_dir=build_dir, seconds=time.perf_counter() - start
    )
    logger.info(
        "fused qLogEHVI kernel loaded=%s from %s in %.1f s", status.loaded, status.build_dir, status.seconds
    )
    return status


def _load_kernel(build_dir: str) -> None:
    """BoTorch's loader (``logei._try_load_fused_kernel``) with ``build_dir`` as torch's build directory.

    A prebuilt ``logei_fused_ext`` module wins, as in BoTorch; the sources and
    compiler flags are BoTorch's.
    """
    from botorch.acquisition.multi_objective import logei

    try:  # pragma: no cover - a prebuilt extension (BoTorch's Buck build)
        import logei_fused_ext  # type: ignore[import-not-found]

        logei._C = logei_fused_ext
        return
    except ImportError:
        pass
    from torch.utils.cpp_extension import load

    source = os.path.join(os.path.dirname(logei.__file__), os.pardir, os.pardir, "csrc", "logei_fused.cpp")
    os.makedirs(build_dir, exist_ok=True)
    try:
        logei._C = load(
            name="logei_fused_ext",
            sources=[os.path.abspath(source)],
            extra_cflags=["-O3", "-march=native"],
            build_directory=build_dir,
            verbose=False,
        )
    except Exception as exc:  # no compiler or ninja: BoTorch's Python code does the same, slower
        logger.warning(
            "BoTorch's fused qLogEHVI kernel did not build in %s (%s); using the slower Python code. "
            "Install a C++ compiler and ninja for the kernel",
            build_dir,
            exc,
        )


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


def environment_key(prefix: str | None = None, torch_version: str | None = None) -> str:
    """``torch<version>-<12 hex digits>``: what a kernel build depends on, as a directory name.

    The digest covers the environment's prefix (``sys.prefix``, resolved: a
    virtual environment or conda environment is one directory), the torch
    version and its CUDA/ROCm build, and the Python version and ABI. Two
    environments differ in at least one of them; one environment always gives
    the same key.
    """
    torch_version = torch_version or str(torch.__version__)
    facts = {
        "prefix": os.path.realpath(prefix or sys.prefix),
        "torch": torch_version,
        "accelerator": f"cuda={torch.version.cuda} hip={getattr(torch.version, 'hip', None)}",
        "python": f"{sys.version_info.major}.{sys.version_info.minor}{getattr(sys, 'abiflags', '')}",
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
    return f"torch{re.sub(r'[^A-Za-z0-9.]+', '_', torch_version)}-{digest}"


def kernel_build_dir(prefix: str | None = None, torch_version: str | None = None) -> str:
    """The build directory of the fused kernel for this environment (see :func:`environment_key`).

    Under ``$TORCH_EXTENSIONS_DIR`` when set, else under torch's default root
    and folder for this Python and accelerator (``~/.cache/torch_extensions/py311_cpu``).
    """
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        from torch.utils.cpp_extension import get_default_build_root

        hip = getattr(torch.version, "hip", None)
        if hip is not None:
            accel = f"rocm{str(hip).replace('.', '')}"
        elif torch.version.cuda is not None:
            accel = f"cu{torch.version.cuda.replace('.', '')}"
        else:
            accel = "cpu"
        python = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
        root = os.path.join(get_default_build_root(), f"{python}_{accel}")
    return os.path.join(root, f"logei_fused_ext-{environment_key(prefix, torch_version)}")
