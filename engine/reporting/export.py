"""``boengine pareto``: the Pareto set as CSV, JSON, HTML (plotly) or PNG (matplotlib).

The tables come from :mod:`engine.reporting.tables`, the plots from :mod:`engine.reporting.plots`.
"""

from __future__ import annotations

import html
import json
import logging
import math
from pathlib import Path

import pandas as pd

from engine.analysis.results import StudyResults
from engine.reporting.plots import pareto_figures, write_png
from engine.reporting.tables import FLAG, front_table, html_page, html_table, sharpe_yardstick
from engine.store import StudyStore, check_target, replacing, write_bytes
from strategies.exceptions import InputError

__all__ = ["FORMATS", "pareto_csv_frame", "write_pareto"]

logger = logging.getLogger(__name__)

FORMATS = ("csv", "json", "html", "png")


def write_pareto(store_or_dir: StudyStore | str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Write the study's Pareto set in ``fmt``; default path ``<study>/pareto.<fmt>``; return the
    path written (``out`` itself: a name without an extension gets none added).

    Written through :func:`engine.store.replacing`: never through a link, never over anything but
    a regular file, never half (InputError naming the path before anything is computed).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    directory = store_or_dir.dir if isinstance(store_or_dir, StudyStore) else Path(store_or_dir)
    res = StudyResults.load(directory)
    root = None if out else res.store.dir
    path = Path(out) if out else res.store.pareto_path(fmt)
    if out:
        _check_extension(path, fmt)
    check_target(path, root=root, example=res.store.pareto_path(fmt).name)
    if fmt == "csv":
        write_bytes(path, pareto_csv_frame(res).to_csv(index=False).encode(), root=root)
    elif fmt == "json":
        payload = {
            "study": res.spec.name,
            "objectives": {
                n: {"goal": "max" if mx else "min", "threshold": t}
                for n, mx, t in zip(res.objectives.names, res.objectives.maximize, res.objectives.thresholds)
            },
            "hypervolume": res.hypervolume,
            "front": res.pareto_records(),
        }
        write_bytes(path, (json.dumps(payload, indent=2, default=float) + "\n").encode(), root=root)
    elif fmt == "html":
        write_bytes(path, _html(res).encode(), root=root)
    else:  # png: matplotlib takes the format from the temporary file's extension
        with replacing(path, root=root, suffix=".png") as tmp:
            write_png(res, tmp)
    logger.info("wrote %s (%d Pareto trials)", path, len(res.front))
    return path


#: Extensions that name a format: ``--out`` with one of them must match ``--format``.
_EXTENSIONS = {
    ".csv": "csv",
    ".json": "json",
    ".html": "html",
    ".htm": "html",
    ".png": "png",
    ".jpg": "jpg",
    ".jpeg": "jpg",
    ".svg": "svg",
    ".pdf": "pdf",
}


def _check_extension(path: Path, fmt: str) -> None:
    """InputError when ``--out``'s extension names another format than ``--format``."""
    named = _EXTENSIONS.get(path.suffix.lower())
    if named is not None and named != fmt:
        other = f", or pass --format {named}" if named in FORMATS else ""
        raise InputError(
            f"--out {path}: the extension says {named} but --format is {fmt}; name the file "
            f"{path.with_suffix('.' + fmt)}{other}"
        )


def pareto_csv_frame(res: StudyResults) -> pd.DataFrame:
    """The front only (one row a member): :meth:`StudyResults.pareto_frame` plus the standard error
    of the validation Sharpe ratio (``val_sharpe_se``) and the test trade count (``test_num_trades``)."""
    df = res.pareto_frame()
    if not len(df):
        return df
    se = [r.sems.get("sharpe", math.nan) for r in res.front]
    at = df.columns.get_loc("val_sharpe") + 1 if "val_sharpe" in df.columns else len(df.columns)
    df.insert(int(at), "val_sharpe_se", se)
    df["test_num_trades"] = [res.test.get(r.index, {}).get("num_trades", math.nan) for r in res.front]
    return df


# ----------------------------------------------------------------- the front beside its baselines


def _html(res: StudyResults) -> str:
    """The page of ``report.html``'s front section: the same style, order and wording."""
    verdict = res.verdict
    parts = [f"<h1>{html.escape(res.spec.name)}: Pareto front ({len(res.front)} trials)</h1>"]
    if verdict is not None:
        parts.append(
            f"<p class='verdict{' edge' if verdict.edge else ''}'>{html.escape(verdict.sentence)}</p>"
        )
    parts.append("<h2>Pareto set (validation vs held-out test, beside the baselines)</h2>")
    if (yardstick := sharpe_yardstick(res)) is not None:
        parts.append(f"<p>Noise yardstick: {html.escape(yardstick)}.</p>")
    table, notes = front_table(res)
    parts.append(
        html_table(table) if len(table) else "<p>Empty: no completed trial meets the constraints.</p>"
    )
    for note in notes:
        flag = " class='flag'" if note.startswith(FLAG) else ""
        parts.append(f"<p{flag}>{html.escape(note)}</p>")
    if len(res.feasible_frame()):
        parts += [
            f"<div class='plot'>{fig.to_html(full_html=False, include_plotlyjs=i == 0)}</div>"
            for i, fig in enumerate(pareto_figures(res))
        ]
    front = pareto_csv_frame(res)
    if len(front):
        parts += ["<h2>Pareto set: parameters and figures (as in pareto.csv)</h2>", html_table(front)]
    return html_page(f"{res.spec.name} Pareto front", "".join(parts))


# ----------------------------------------------------------------- PNG
