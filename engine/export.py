"""``boengine pareto``: the Pareto set as CSV, JSON, HTML (plotly) or PNG (matplotlib)."""

from __future__ import annotations

import json
import logging
from itertools import combinations
from pathlib import Path
from typing import Any

from engine.results import StudyResults
from engine.store import StudyStore, write_bytes

__all__ = ["FORMATS", "pareto_figures", "write_pareto"]

logger = logging.getLogger(__name__)

FORMATS = ("csv", "json", "html", "png")


def write_pareto(store_or_dir: StudyStore | str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Write the study's Pareto set in ``fmt``; default path ``<study>/pareto.<fmt>``."""
    directory = store_or_dir.dir if isinstance(store_or_dir, StudyStore) else Path(store_or_dir)
    res = StudyResults.load(directory)
    path = Path(out) if out else res.store.dir / f"pareto.{fmt}"
    if fmt == "csv":
        write_bytes(path, res.pareto_frame().to_csv(index=False).encode())
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
        write_bytes(path, (json.dumps(payload, indent=2, default=float) + "\n").encode())
    elif fmt == "html":
        write_bytes(path, _html(res).encode())
    elif fmt == "png":
        _png(res, path)
    else:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    logger.info("wrote %s (%d Pareto trials)", path, len(res.front))
    return path


def pareto_figures(res: StudyResults) -> list[Any]:
    """Plotly figures: pairwise objective scatter, and a 3-D view with three objectives."""
    import plotly.express as px

    df = res.feasible_frame()
    df["set"] = df["on_front"].map({True: "Pareto front", False: "other feasible"})
    names = list(res.objectives.names)
    figs = [
        px.scatter_matrix(
            df,
            dimensions=names,
            color="set",
            hover_data=["trial"],
            title=f"{res.spec.name}: validation objectives of feasible trials",
            color_discrete_map={"Pareto front": "#d62728", "other feasible": "#7f7f7f"},
        )
    ]
    if len(names) >= 3:
        figs.append(
            px.scatter_3d(
                df,
                x=names[0],
                y=names[1],
                z=names[2],
                color="set",
                hover_data=["trial"],
                title="Pareto front in 3-D",
                color_discrete_map={"Pareto front": "#d62728", "other feasible": "#7f7f7f"},
            )
        )
    return figs


def _html(res: StudyResults) -> str:
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(pareto_figures(res))
    ]
    table = res.pareto_frame().to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{res.spec.name} Pareto front</title></head><body>"
        f"<h1>{res.spec.name}: Pareto front ({len(res.front)} trials)</h1>"
        + "".join(parts)
        + f"<h2>Pareto set</h2>{table}</body></html>"
    )


def _png(res: StudyResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = res.feasible_frame()
    pairs = list(combinations(res.objectives.names, 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.5), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs):
        other = df[~df["on_front"]]
        front = df[df["on_front"]]
        ax.scatter(other[a], other[b], c="#999999", s=18, label="other feasible")
        ax.scatter(front[a], front[b], c="#d62728", s=30, label="Pareto front")
        for _, row in front.iterrows():
            ax.annotate(
                str(int(row["trial"])),
                (row[a], row[b]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(f"{a} ({_direction(res, a)})")
        ax.set_ylabel(f"{b} ({_direction(res, b)})")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{res.spec.name}: validation objectives ({len(res.front)} on the front)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _direction(res: StudyResults, name: str) -> str:
    return (
        "higher is better" if res.objectives.maximize[res.objectives.names.index(name)] else "lower is better"
    )
