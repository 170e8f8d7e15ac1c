"""The plots of a study, shared by the report, ``pareto.html`` / ``pareto.png`` and other views.

Every plot shows the front's validation figures (what the search selected
on), the same members on the held-out test split (another symbol, joined to
their validation point by a dotted line), and the baselines: the family's
default configuration (a trial like any other), flat and buy-and-hold. Axis
titles carry units and direction. Plotly for HTML, matplotlib (Agg) for PNG.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.results import StudyResults
from engine.tables import BASELINE_NAMES, METRIC_LABELS, comparison_frame

__all__ = ["PointSet", "axis_title", "pareto_figures", "point_sets", "write_png"]


def axis_title(res: StudyResults, name: str) -> str:
    """'Sharpe ratio (annualised, higher is better)'; raw names for a synthetic problem."""
    direction = "higher is better"
    if name in res.objectives.names and not res.objectives.maximize[res.objectives.names.index(name)]:
        direction = "lower is better"
    if not res.objective.scores_test or name not in METRIC_LABELS:
        return f"{name} ({direction})"
    label, unit = METRIC_LABELS[name]
    return f"{label} ({unit}, {direction})" if unit else f"{label} ({direction})"


@dataclass(frozen=True)
class PointSet:
    """One marker set of the Pareto plots: points in objective space, with hover labels."""

    name: str
    points: pd.DataFrame  # one row a point, a column per objective
    labels: list[str]
    color: str
    symbol: str  # plotly symbol name
    mpl_marker: str
    filled: bool = True
    text: str = ""  # a label written beside the markers (baselines)


_BASELINE_STYLE = {
    "default": ("#2ca02c", "square", "s"),
    "flat": ("#444444", "triangle-up", "^"),
    "buy_and_hold": ("#9467bd", "star", "*"),
}


def point_sets(res: StudyResults, comp: pd.DataFrame) -> list[PointSet]:
    """Other feasible trials, the front on validation and on test, and each baseline on both
    (``comp``: the :func:`comparison_frame`)."""
    names = list(res.objectives.names)
    feasible = res.feasible_frame()
    other = feasible[~feasible["on_front"].astype(bool)]
    front = comp[comp["kind"] == "front"]
    sets = [
        PointSet(
            "other feasible (validation)",
            other[names],
            [f"trial {t}" for t in other["trial"]],
            "#9a9a9a",
            "circle",
            "o",
        ),
        PointSet(
            "Pareto front (validation)",
            _points(front, "val", names),
            [f"trial {t}" for t in front["trial"]],
            "#d62728",
            "circle",
            "o",
        ),
    ]
    test = _points(front, "test", names)
    if test.notna().all(axis=1).any():
        labels = [f"trial {t} (test)" for t in front["trial"]]
        sets.append(
            PointSet(
                "Pareto front (held-out test)", test, labels, "#1f77b4", "diamond-open", "D", filled=False
            )
        )
    for kind, (color, symbol, marker) in _BASELINE_STYLE.items():
        rows = comp[
            (comp["kind"] == kind) | ((kind == "default") & (comp["row"] == "front (family default)"))
        ]
        for split, word in (("val", "validation"), ("test", "test")):
            pts = _points(rows, split, names)
            if len(pts) and pts.notna().all(axis=1).any():
                text = f"{BASELINE_NAMES[kind]} ({'val' if split == 'val' else 'test'})"
                sets.append(
                    PointSet(
                        f"{BASELINE_NAMES[kind]} ({word})",
                        pts,
                        [text] * len(pts),
                        color,
                        symbol if split == "val" else f"{symbol}-open",
                        marker,
                        filled=split == "val",
                        text=text,
                    )
                )
    return [s for s in sets if len(s.points)]


def _points(df: pd.DataFrame, split: str, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({n: df[f"{split}_{n}"].astype(float).to_numpy() for n in names})


def _val_test_segments(comp: pd.DataFrame, a: str, b: str) -> tuple[list[float | None], list[float | None]]:
    """Dotted lines from each front member's validation point to its test point (None-separated)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for _, row in comp[comp["kind"] == "front"].iterrows():
        seg = [row[f"val_{a}"], row[f"val_{b}"], row[f"test_{a}"], row[f"test_{b}"]]
        if all(math.isfinite(float(v)) for v in seg):
            xs += [float(seg[0]), float(seg[2]), None]
            ys += [float(seg[1]), float(seg[3]), None]
    return xs, ys


def pareto_figures(res: StudyResults) -> list[Any]:
    """Plotly figures: one scatter panel per pair of objectives, and a 3-D view with three or more."""
    comp = comparison_frame(res)
    sets = point_sets(res, comp)
    figs = [_pairs_figure(res, sets, comp)]
    if len(res.objectives.names) >= 3:
        figs.append(_figure_3d(res, sets))
    return figs


def _pairs_figure(res: StudyResults, sets: list[PointSet], comp: pd.DataFrame) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = list(combinations(res.objectives.names, 2))
    cols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / cols)
    fig = make_subplots(rows=nrows, cols=cols, horizontal_spacing=0.09, vertical_spacing=0.18)
    for i, (a, b) in enumerate(pairs):
        r, c = i // cols + 1, i % cols + 1
        xs, ys = _val_test_segments(comp, a, b)
        if xs:
            line = {"color": "#1f77b4", "width": 1, "dash": "dot"}
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line=line,
                    name="validation → test",
                    legendgroup="gap",
                    showlegend=i == 0,
                    hoverinfo="skip",
                ),
                row=r,
                col=c,
            )
        for s in sets:
            fig.add_trace(_scatter(s, a, b, showlegend=i == 0), row=r, col=c)
        fig.update_xaxes(title_text=axis_title(res, a), row=r, col=c)
        fig.update_yaxes(title_text=axis_title(res, b), row=r, col=c)
    fig.update_layout(
        title=f"{res.spec.name}: validation (filled) and held-out test (open) figures",
        height=430 * nrows + 80,
        margin={"l": 60, "r": 20, "t": 70, "b": 60},
        legend={"font": {"size": 11}, "tracegroupgap": 2},
        template="plotly_white",
    )
    return fig


def _scatter(s: PointSet, a: str, b: str, *, showlegend: bool) -> Any:
    import plotly.graph_objects as go

    return go.Scatter(
        x=s.points[a],
        y=s.points[b],
        mode="markers+text" if s.text else "markers",
        name=s.name,
        legendgroup=s.name,
        showlegend=showlegend,
        text=[s.text] * len(s.points) if s.text else None,
        textposition="top center" if s.filled else "bottom center",
        textfont={"size": 10, "color": s.color},
        hovertext=s.labels,
        hoverinfo="text+x+y",
        marker={
            "color": s.color,
            "symbol": s.symbol,
            "size": 11 if s.text else 9,
            "line": {"width": 1.5, "color": s.color},
        },
    )


def _figure_3d(res: StudyResults, sets: list[PointSet]) -> Any:
    import plotly.graph_objects as go

    x, y, z = res.objectives.names[:3]
    fig = go.Figure()
    for s in sets:
        fig.add_trace(
            go.Scatter3d(
                x=s.points[x],
                y=s.points[y],
                z=s.points[z],
                mode="markers+text" if s.text else "markers",
                name=s.name,
                text=[s.text] * len(s.points) if s.text else None,
                textfont={"size": 10, "color": s.color},
                textposition="top center" if s.filled else "bottom center",
                hovertext=s.labels,
                hoverinfo="text+x+y+z",
                marker={"color": s.color, "symbol": _symbol_3d(s), "size": 5 if s.text else 4},
            )
        )
    fig.update_layout(
        title="Pareto front in 3-D (validation and held-out test)",
        height=720,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        scene={
            "xaxis_title": axis_title(res, x),
            "yaxis_title": axis_title(res, y),
            "zaxis_title": axis_title(res, z),
            "domain": {"x": [0.0, 1.0], "y": [0.04, 1.0]},
            "camera": {"eye": {"x": 1.7, "y": 1.7, "z": 1.1}},
            "aspectmode": "cube",
        },
        legend={"font": {"size": 11}},
        template="plotly_white",
    )
    return fig


def _symbol_3d(s: PointSet) -> str:
    """Scatter3d knows only circle, square, diamond (each also open), cross and x."""
    if s.symbol.startswith("triangle"):
        return "cross" if s.filled else "x"
    base = s.symbol.removesuffix("-open").replace("star", "diamond")
    return base if s.filled else f"{base}-open"


def write_png(res: StudyResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = comparison_frame(res)
    sets = point_sets(res, comp)
    pairs = list(combinations(res.objectives.names, 2))
    cols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.6 * nrows + 0.8), squeeze=False)
    for ax, (a, b) in zip(axes.flat, pairs):
        _png_panel(res, ax, sets, comp, a, b)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=max(1, min(4, len(labels))), fontsize=8, frameon=False
    )
    fig.suptitle(
        f"{res.spec.name}: validation (filled) and held-out test (open) — {len(res.front)} on the front"
    )
    fig.tight_layout(rect=(0, 0.1 if nrows == 1 else 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _png_panel(res: StudyResults, ax: Any, sets: list[PointSet], comp: pd.DataFrame, a: str, b: str) -> None:
    xs, ys = _val_test_segments(comp, a, b)
    if xs:
        ax.plot(
            [np.nan if v is None else v for v in xs],
            [np.nan if v is None else v for v in ys],
            ls=":",
            lw=1,
            c="#1f77b4",
            label="validation → test",
        )
    for s in sets:
        face = s.color if s.filled else "none"
        ax.scatter(
            s.points[a],
            s.points[b],
            marker=s.mpl_marker,
            s=60 if s.text else 26,
            facecolors=face,
            edgecolors=s.color,
            label=s.name,
            zorder=3,
        )
        for (_, p), label in zip(s.points.iterrows(), _short_labels(s)):
            ax.annotate(
                label,
                (p[a], p[b]),
                fontsize=7,
                xytext=(4, 3) if s.filled else (4, -10),
                textcoords="offset points",
                color=s.color,
            )
    ax.set_xlabel(axis_title(res, a), fontsize=9)
    ax.set_ylabel(axis_title(res, b), fontsize=9)
    ax.grid(alpha=0.3)


def _short_labels(s: PointSet) -> Iterator[str]:
    """Trial numbers beside front points, the baseline's name beside a baseline, nothing for the rest."""
    for label in s.labels:
        if s.text:
            yield s.text
        elif s.name.startswith("Pareto front"):
            yield label.removeprefix("trial ").removesuffix(" (test)")
        else:
            yield ""
