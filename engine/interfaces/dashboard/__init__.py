"""``boengine dashboard``: a local, read-only web view of studies, live while they run.

It lists the studies under a directory (status, trials, hypervolume,
verdict), shows one study as it runs (trial table, Pareto front with
validation and test markers, hypervolume over trials, parallel coordinates,
per-epoch curves, proposal times, the report's figures), and compares two or
more (fronts overlaid, hypervolume curves side by side).

Why Dash (by Plotly): every figure of boengine is already a plotly figure
(:mod:`engine.reporting.plots`, shared with ``report.html`` and ``pareto.html``), and
Dash renders plotly figures as they are, so the dashboard draws exactly what
the report draws; its callbacks are plain Python over the same read-only
study API (:mod:`engine.interfaces.api`); ``dcc.Interval`` gives the live refresh; and it
runs on a local Flask/Werkzeug server with no JavaScript build step. Dash is
an optional extra (``pip install -e ".[dashboard]"``): nothing else in
boengine imports it.

Read-only: studies are read through :class:`engine.analysis.results.StudyResults`
(never the Ax database), the verdict is computed in memory
(:attr:`engine.analysis.results.StudyResults.verdict`, never ``save_verdict``), and no path
of the app opens a study file for writing. ``boengine run`` writes its files
atomically (by rename), so a page never sees half a file; a study that has
no spec or no trial yet renders as starting.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strategies.exceptions import InputError

if TYPE_CHECKING:
    import dash

__all__ = ["INSTALL_HINT", "create_app", "require_dash", "serve"]

INSTALL_HINT = 'pip install -e ".[dashboard]"'


def require_dash() -> None:
    """InputError (one line: what is missing, how to install it) when Dash is not installed."""
    missing = [name for name in ("dash", "flask", "werkzeug") if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"the dashboard needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed; install the extra with {INSTALL_HINT}"
        )


def create_app(path: str | Path, *, refresh_s: float = 5.0) -> dash.Dash:
    """The Dash app of the studies under ``path`` (a studies directory, or one study)."""
    require_dash()
    from engine.interfaces.dashboard.app import create_app as make

    return make(path, refresh_s=refresh_s)


def serve(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    refresh_s: float = 5.0,
    echo: Callable[[str], Any] = print,
) -> None:
    """Serve the dashboard of ``path`` on ``host:port`` until Ctrl-C (127.0.0.1: this machine only)."""
    require_dash()
    from engine.interfaces.dashboard.app import serve as run

    run(path, host=host, port=port, refresh_s=refresh_s, echo=echo)
