"""The Python API: a study as pandas frames and plotly figures, from a notebook or a script.

    from engine import load_study, run_study

    study = load_study("studies/moe")
    study.trials()      # one row per trial: status, source, parameters, validation and test figures
    study.pareto()      # the front, as in pareto.csv
    study.curves()      # per-epoch learning curves, long format
    study.verdict       # evidence of an edge, or none, with its statistics
    study.figures()     # plotly: Pareto plots, hypervolume, parallel coordinates, curves, proposal times

    study = run_study("experiments/smoke.json", study_dir="studies/smoke")  # runs or resumes

Reading never touches the Ax database, so it is safe while ``boengine run``
writes the study. To open a study's ``ax.db`` with plain Ax, call
:func:`register_with_ax` first: it registers boengine's GP, acquisition and
optimizer classes with Ax's storage registry.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from engine.analysis.results import StudyResults
from engine.analysis.verdict import Verdict

__all__ = ["Study", "load_study", "register_with_ax", "run_study"]


class Study:
    """A study directory, read once (:meth:`refresh` reads it again)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.results = StudyResults.load(self.directory)

    @classmethod
    def from_results(cls, results: StudyResults) -> Study:
        """The study of records already read (no second read of the directory)."""
        study = cls.__new__(cls)
        study.directory = results.store.dir
        study.results = results
        return study

    def refresh(self) -> Study:
        self.results = StudyResults.load(self.directory)
        return self

    def __repr__(self) -> str:
        res = self.results
        return f"Study({str(self.directory)!r}: {len(res.records)} trials, {len(res.front)} on the front)"

    def trials(self) -> pd.DataFrame:
        """One row per trial: index, status, reason, source, epochs, seconds, then ``param_*``,
        validation metrics ``val_*`` (with ``val_*_se`` where a standard error exists) and
        held-out test metrics ``test_*`` (front and baselines only)."""
        rows = []
        for r in self.results.records:
            row: dict[str, Any] = {
                "index": r.index,
                "status": r.status,
                "reason": r.reason,
                "source": r.source,
                "epochs": r.epochs,
                "seconds": r.seconds.get("total", math.nan),
            }
            row.update({f"param_{k}": v for k, v in r.params.items()})
            row.update({f"val_{k}": v for k, v in r.metrics.items()})
            row.update({f"val_{k}_se": v for k, v in r.sems.items()})
            row.update({f"test_{k}": v for k, v in (self.results.test.get(r.index) or {}).items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("index") if rows else pd.DataFrame()

    def pareto(self) -> pd.DataFrame:
        """The Pareto front as ``pareto.csv`` has it."""
        from engine.reporting.export import pareto_csv_frame

        return pareto_csv_frame(self.results)

    def curves(self) -> pd.DataFrame:
        """Per-epoch learning curves, long: trial, fold (NaN for holdout), epoch, step, metric, value."""
        rows = []
        for r in self.results.records:
            for report in self.results.store.read_curve(r.index):
                epoch = report.get("epoch")
                base = {
                    "trial": r.index,
                    "fold": report.get("fold", math.nan),
                    "epoch": epoch,
                    "step": report.get("step", epoch),
                }
                for key, value in report.items():
                    if key not in ("epoch", "fold", "step"):
                        rows.append({**base, "metric": key, "value": value})
        columns = ["trial", "fold", "epoch", "step", "metric", "value"]
        return pd.DataFrame(rows, columns=columns)

    def batches(self) -> pd.DataFrame:
        """One row per proposal batch: trials proposed, seconds, node, completed trials before it."""
        return pd.DataFrame(self.results.batches)

    @property
    def verdict(self) -> Verdict | None:
        """The study's verdict (None for closed-form problems, which have no returns)."""
        return self.results.verdict

    def figures(self) -> list[Any]:
        """Plotly figures of what the study has so far: the Pareto plots of the report (a panel per
        pair of objectives, the 3-D view), hypervolume over trials, parallel coordinates of the
        parameters coloured by the first objective, per-epoch curves and proposal times."""
        from engine.reporting.plots import study_figures

        return [fig for figs in study_figures(self.results, self.curves()).values() for fig in figs]


def load_study(directory: str | Path) -> Study:
    """The study in ``directory`` (InputError if it is not one)."""
    return Study(directory)


def run_study(
    spec: str | Path | dict[str, Any],
    study_dir: str | Path | None = None,
    *,
    progress: str = "quiet",
    fresh: bool = False,
) -> Study:
    """Run ``spec`` (a path to a spec file, or the spec as a dict), or resume its study; return it.

    ``study_dir`` defaults to ``studies/<name>``; ``progress`` is a display
    mode of ``boengine run`` (``quiet``, ``plain``, ``rich``, ``jsonl``).
    """
    from engine.spec import load_spec, parse_spec
    from engine.study.progress import make_progress
    from engine.study.run import run_study as run

    parsed = (
        parse_spec(json.loads(json.dumps(spec)), source="<dict>")
        if isinstance(spec, dict)
        else load_spec(spec)
    )
    directory = Path(study_dir) if study_dir is not None else Path("studies") / parsed.name
    run(parsed, directory, fresh=fresh, progress=make_progress(progress))
    return Study(directory)


def register_with_ax() -> None:
    """Register boengine's model, acquisition and optimizer classes with Ax's storage registry,
    so that ``ax.api.client.Client.load_from_database`` can restore a study's ``ax.db``."""
    import engine.optimizer.strategy  # noqa: F401  (the modules register their classes on import)
