"""A study driver that dies (or fills the disk) at a chosen point; run as a script by test_faults.

    python -m tests.engine.fault_driver SPEC STUDY_DIR POINT N

POINT is where the process is killed with ``os._exit`` (no cleanup, as a
SIGKILL): ``create`` (halfway through saving the Ax experiment: the
experiment is in ax.db, its optimization config and strategy are not),
``propose`` (inside the N-th proposal call), ``write`` (while writing the N-th
result.json: the temporary file is written, the rename never happens), or
``disk_full`` (the N-th result.json write fails with ENOSPC: the CLI's error
path runs).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any


def _arm(point: str, n: int) -> None:
    import engine.store as store
    import engine.study.run as study

    calls = {"n": 0}

    def count() -> bool:
        calls["n"] += 1
        return calls["n"] == n

    if point == "create":
        from ax.api.client import Client

        def configure_optimization(self: Any, *args: Any, **kwargs: Any) -> None:
            os._exit(9)  # Ax has saved the experiment, not yet its optimization config or strategy

        Client.configure_optimization = configure_optimization  # type: ignore[method-assign]
    elif point == "propose":
        from ax.api.client import Client

        real = Client.get_next_trials

        def get_next_trials(self: Any, *args: Any, **kwargs: Any) -> Any:
            if count():
                os._exit(9)
            return real(self, *args, **kwargs)

        Client.get_next_trials = get_next_trials  # type: ignore[method-assign]
    elif point in ("write", "disk_full"):
        real_write = store.write_bytes

        def write_bytes(path: Path, payload: bytes) -> None:
            if path.name == "result.json" and b'"running"' not in payload and count():
                if point == "disk_full":
                    raise OSError(errno.ENOSPC, "No space left on device", str(path))
                (path.parent / f".{path.name}.partial").write_bytes(payload[: len(payload) // 2])
                os._exit(9)
            real_write(path, payload)

        store.write_bytes = write_bytes
        study.write_json = lambda path, obj: store.write_json(path, obj)  # type: ignore[attr-defined]
    else:
        raise SystemExit(f"unknown point {point}")


if __name__ == "__main__":
    spec, directory, point, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    _arm(point, n)
    from engine.interfaces.cli import main

    sys.argv = ["boengine", "-q", "run", spec, "--study-dir", directory, "--progress", "quiet"]
    main()
