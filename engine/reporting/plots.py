"""The plots of a study, shared by the report, ``pareto.html`` / ``pareto.png``, the dashboard
and the Python API.

Every Pareto plot shows the front's validation figures (what the search
selected on), the same members on the held-out test split (another symbol,
joined to their validation point by a dotted line), and the baselines: the
family's default configuration (a trial like any other), flat and
buy-and-hold. One panel per pair of objectives (no diagonal), and a 3-D view
with three or more. Beside them: hypervolume over trials, parallel
coordinates of the searched parameters coloured by an objective, per-epoch
learning curves, proposal times, and the comparison of several studies
(fronts overlaid, hypervolume curves side by side). Axis titles carry units
and direction. Plotly for HTML, matplotlib (Agg) for PNG.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from engine.analysis.results import StudyResults
from engine.records import TrialRecord
from engine.reporting.tables import BASELINE_NAMES, comparison_frame

__all__ = [
    "FONT",
    "PointSet",
    "axis_title",
    "compare_fronts_figure",
    "compare_hypervolume_figure",
    "curves_figure",
    "hypervolume_figure",
    "parallel_coordinates_figure",
    "pareto_figures",
    "point_sets",
    "proposal_times_figure",
    "study_figures",
    "write_png",
]

FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"}  # the pages' font


def axis_title(res: StudyResults, name: str) -> str:
    """'Sharpe ratio (annualised, higher is better)', from the objective's metric catalogue."""
    return res.evaluator.catalogue.info(name).axis_title(_goal(res, name))


def _goal(res: StudyResults, name: str) -> Literal["max", "min"] | None:
    """The study's goal for an objective; None for another metric (the catalogue's own then)."""
    names = res.objectives.names
    if name not in names:
        return None
    return "max" if res.objectives.maximize[names.index(name)] else "min"


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
    "short_and_hold": ("#8c564b", "triangle-down", "v"),
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
    _hide_empty_cells(fig, len(pairs), nrows, cols)
    fig.update_layout(
        title=f"{res.spec.name}: validation (filled) and held-out test (open) figures",
        height=430 * nrows + 80,
        margin={"l": 60, "r": 20, "t": 70, "b": 60},
        legend={"font": {"size": 11}, "tracegroupgap": 2},
        template="plotly_white",
        font=FONT,
    )
    return fig


def _hide_empty_cells(fig: Any, used: int, nrows: int, cols: int) -> None:
    """The grid cells after the last pair carry no panel: no axes, no frame."""
    for i in range(used, nrows * cols):
        fig.update_xaxes(visible=False, row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(visible=False, row=i // cols + 1, col=i % cols + 1)


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
    # The legend goes below the scene, so that the scene keeps the full width; the camera stands
    # far enough back, and the margins are wide enough, for every axis title to stay inside the
    # figure at any width of the page (the scene is a cube fitted into the smaller side).
    fig.update_layout(
        title="Pareto front in 3-D (validation and held-out test)",
        height=700,
        margin={"l": 40, "r": 40, "t": 60, "b": 20},
        scene={
            "xaxis_title": axis_title(res, x),
            "yaxis_title": axis_title(res, y),
            "zaxis_title": axis_title(res, z),
            "domain": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
            "camera": {"eye": {"x": 1.85, "y": 1.85, "z": 1.2}},
            "aspectmode": "cube",
        },
        legend={"font": {"size": 11}, "orientation": "h", "yanchor": "top", "y": -0.01, "x": 0.0},
        template="plotly_white",
        font=FONT,
    )
    return fig


def _symbol_3d(s: PointSet) -> str:
    """Scatter3d knows only circle, square, diamond (each also open), cross and x."""
    if s.symbol.startswith("triangle"):
        return "cross" if s.filled else "x"
    base = s.symbol.removesuffix("-open").replace("star", "diamond")
    return base if s.filled else f"{base}-open"


# ----------------------------------------------------------------- beside the front


def study_figures(res: StudyResults, curves: pd.DataFrame | None = None) -> dict[str, list[Any]]:
    """Every plotly figure of a study that has data yet, by kind: ``pareto`` (the pairs and the
    3-D view), ``hypervolume``, ``parallel`` (parameters coloured by the first objective),
    ``curves`` (from ``curves``, the long frame of ``Study.curves()``) and ``proposals``."""
    out: dict[str, list[Any]] = {}
    if len(res.feasible_frame()):
        out["pareto"] = pareto_figures(res)
    optional = {
        "hypervolume": hypervolume_figure(res),
        "parallel": parallel_coordinates_figure(res),
        "curves": curves_figure(res, curves) if curves is not None else None,
        "proposals": proposal_times_figure(res),
    }
    out.update({k: [fig] for k, fig in optional.items() if fig is not None})
    return out


def hypervolume_figure(res: StudyResults, trace: list[float] | None = None) -> Any | None:
    """Hypervolume of the feasible trials above the reference point after each trial (None
    before the first trial)."""
    import plotly.graph_objects as go

    trace = res.objectives.hypervolume_trace(res.records) if trace is None else trace
    if not trace:
        return None
    ordered = sorted(res.records, key=lambda r: r.index)
    fig = go.Figure(
        go.Scatter(
            x=list(range(1, len(trace) + 1)),
            y=trace,
            mode="lines+markers",
            line={"color": "#1f77b4"},
            hovertext=[f"trial {r.index} ({r.status}, {r.source})" for r in ordered],
            hoverinfo="text+x+y",
            name="hypervolume",
        )
    )
    fig.update_xaxes(tick0=1, dtick=max(1, math.ceil(len(trace) / 12)))  # whole trials
    fig.update_layout(
        title="Hypervolume of the feasible trials above the reference point",
        xaxis_title="trials",
        yaxis_title="hypervolume (higher is better)",
        template="plotly_white",
        font=FONT,
        height=420,
    )
    return fig


def _short_title(res: StudyResults, name: str) -> str:
    """'Sharpe ↑', 'max drawdown % ↓': a short axis label with its direction (↑ higher is better)."""
    return res.evaluator.catalogue.info(name).arrow_label(_goal(res, name))


def _parameter_dimension(param: Any, values: list[Any]) -> dict[str, Any] | None:
    """One parallel-coordinates axis for a searched parameter (log10 for a log range, the
    choices as ticks); None when no trial has a value."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    name = param.name
    choices = getattr(param, "values", None)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if choices is not None and not (numeric and all(isinstance(c, (int, float)) for c in choices)):
        labels = [str(c) for c in choices]
        index = {str(c): i for i, c in enumerate(choices)}
        coded = [index.get(str(v), math.nan) for v in values]
        return {"label": name, "values": coded, "tickvals": list(range(len(labels))), "ticktext": labels}
    if not numeric:
        return None
    floats = [float(v) if v is not None else math.nan for v in values]
    if getattr(param, "log", False) and all(v > 0 for v in floats if math.isfinite(v)):
        return {"label": f"log10 {name}", "values": [math.log10(v) if v > 0 else math.nan for v in floats]}
    dim: dict[str, Any] = {"label": name, "values": floats}
    if choices is not None:
        dim["tickvals"] = [float(c) for c in choices]
    return dim


def parallel_coordinates_figure(res: StudyResults, color: str | None = None) -> Any | None:
    """One line per trial with finite objectives: its searched parameters, then its objectives,
    coloured by ``color`` (an objective; default the first), the better end yellow. None
    without such trials."""
    import plotly.graph_objects as go

    names = list(res.objectives.names)
    color = color or names[0]
    if color not in names:
        raise ValueError(f"color={color!r}: not an objective of the study ({', '.join(names)})")
    rows = [
        r
        for r in res.records
        if r.status in ("completed", "early_stopped")
        and all(math.isfinite(r.metrics.get(n, math.nan)) for n in names)
    ]
    if not rows:
        return None
    dims = []
    for param in res.spec.space.tunable:
        dim = _parameter_dimension(param, [r.params.get(param.name) for r in rows])
        if dim is not None:
            dims.append(dim)
    dims += [{"label": _short_title(res, n), "values": [r.metrics[n] for r in rows]} for n in names]
    maximize = res.objectives.maximize[names.index(color)]
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={
                "color": [r.metrics[color] for r in rows],
                "colorscale": "Viridis",
                "reversescale": not maximize,
                "showscale": True,
                "colorbar": {"title": {"text": _short_title(res, color), "side": "right"}},
            },
            labelfont={"size": 12},
            tickfont={"size": 10},
            rangefont={"size": 9, "color": "#777"},
        )
    )
    fig.update_layout(
        title=f"Searched parameters and objectives of {len(rows)} trials, coloured by "
        f"{_short_title(res, color)} (yellow is better; ↑ higher is better, ↓ lower)",
        height=480,
        margin={"l": 70, "r": 40, "t": 120, "b": 40},
        template="plotly_white",
        font=FONT,
    )
    return fig


_CURVE_ORDER = ("train_loss", "val_loss", "val_sharpe", "val_return_pct", "val_accuracy")
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)


def curves_figure(res: StudyResults, curves: pd.DataFrame, max_panels: int = 6) -> Any | None:
    """Per-epoch learning curves: a panel per reported metric (at most ``max_panels``), a line per
    trial over its training steps (folds one after another, broken between folds); front members
    drawn thicker. ``curves``: long, with trial, fold, epoch, step, metric, value. None when empty."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if curves is None or not len(curves):
        return None
    frame = curves[curves["metric"] != "seconds"].copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame = frame[np.isfinite(frame["value"].astype(float))]
    if not len(frame):
        return None
    present = list(dict.fromkeys(frame["metric"]))
    metrics = [m for m in _CURVE_ORDER if m in present] + [m for m in present if m not in _CURVE_ORDER]
    metrics = metrics[:max_panels]
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig = make_subplots(
        rows=nrows, cols=cols, subplot_titles=metrics, horizontal_spacing=0.07, vertical_spacing=0.16
    )
    front = {r.index for r in res.front}
    x_col = "step" if frame["step"].notna().all() else "epoch"
    for t, trial in enumerate(sorted(frame["trial"].unique())):
        rows_t = frame[frame["trial"] == trial]
        color = _PALETTE[t % len(_PALETTE)]
        label = f"trial {trial}" + (" (front)" if trial in front else "")
        for i, metric in enumerate(metrics):
            part = rows_t[rows_t["metric"] == metric].sort_values([x_col])
            if not len(part):
                continue
            xs, ys, folds = _broken_at_folds(part, x_col)
            hover = [
                "" if f is None else (f"{label}" + ("" if pd.isna(f) else f", fold {int(f)}")) for f in folds
            ]
            thick, faint = trial in front, bool(front) and trial not in front
            trace = go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=label,
                legendgroup=label,
                showlegend=i == 0,
                line={"color": color, "width": 3 if thick else 1.2},
                marker={"size": 5 if thick else 3},
                opacity=0.55 if faint else 1.0,
                hovertext=hover,
                hoverinfo="text+x+y",
            )
            fig.add_trace(trace, row=i // cols + 1, col=i % cols + 1)
    _curves_layout(fig, len(metrics), nrows, cols, x_col)
    return fig


def _curves_layout(fig: Any, panels: int, nrows: int, cols: int, x_col: str) -> None:
    for i in range(panels):
        fig.update_xaxes(
            title_text="training step (epochs, folds one after another)" if x_col == "step" else "epoch",
            row=i // cols + 1,
            col=i % cols + 1,
        )
    _hide_empty_cells(fig, panels, nrows, cols)
    fig.update_layout(
        title="Per-epoch curves (thick: Pareto front)",
        height=360 * nrows + 90,
        margin={"l": 60, "r": 20, "t": 80, "b": 60},
        template="plotly_white",
        font=FONT,
        legend={"font": {"size": 11}},
    )


def _broken_at_folds(
    part: pd.DataFrame, x_col: str
) -> tuple[list[float | None], list[float | None], list[Any]]:
    """One trial's curve of one metric as x, y and fold lists, with a gap (None) between folds."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    folds: list[Any] = []
    last_fold: Any = object()
    for x, y, fold in zip(part[x_col], part["value"], part["fold"]):
        if xs and fold != last_fold and not (pd.isna(fold) and pd.isna(last_fold)):
            xs.append(None)
            ys.append(None)
            folds.append(None)
        xs.append(float(x))
        ys.append(float(y))
        folds.append(fold)
        last_fold = fold
    return xs, ys, folds


def proposal_times_figure(res: StudyResults) -> Any | None:
    """Seconds the optimizer took for each proposal batch, by generation node (None before the
    first batch)."""
    import plotly.graph_objects as go

    batches = res.batches
    if not batches:
        return None
    fig = go.Figure()
    nodes = list(dict.fromkeys(str(b.get("node", "-")) for b in batches))
    for k, node in enumerate(nodes):
        rows = [(i + 1, b) for i, b in enumerate(batches) if str(b.get("node", "-")) == node]
        fig.add_trace(
            go.Bar(
                x=[i for i, _ in rows],
                y=[float(b.get("seconds", math.nan)) for _, b in rows],
                name=node,
                marker={"color": _PALETTE[k % len(_PALETTE)]},
                hovertext=[
                    f"trials {', '.join(map(str, b.get('trials', [])))}; "
                    f"{b.get('completed_before', '-')} completed before"
                    for _, b in rows
                ],
                hoverinfo="text+y+name",
            )
        )
    total = sum(float(b.get("seconds", 0.0)) for b in batches)
    fig.update_layout(
        title=f"Proposal time per batch ({len(batches)} batches, {total:.1f} s in all)",
        xaxis_title="proposal batch",
        yaxis_title="seconds",
        template="plotly_white",
        font=FONT,
        height=380,
        legend={"title": {"text": "generation node"}},
    )
    return fig


# ----------------------------------------------------------------- several studies


def _common_objectives(studies: list[StudyResults]) -> list[str]:
    first = list(studies[0].objectives.names)
    return [n for n in first if all(n in s.objectives.names for s in studies[1:])]


def _labels(studies: list[StudyResults]) -> list[str]:
    """Study names, made unique by their directory when two studies share a name."""
    names = [s.spec.name for s in studies]
    return [n if names.count(n) == 1 else f"{n} ({s.store.dir.name})" for n, s in zip(names, studies)]


def compare_fronts_figure(studies: list[StudyResults]) -> Any:
    """The fronts of several studies overlaid, one panel per pair of the objectives they share:
    each study's front (validation, filled; held-out test, open) and its other feasible trials
    (small, faint), in the study's colour."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not studies:
        raise ValueError("compare_fronts_figure needs at least one study")
    names = _common_objectives(studies)
    pairs = list(combinations(names, 2))
    labels = _labels(studies)
    if not pairs:
        fig = go.Figure()
        fig.update_layout(
            title="No two objectives in common: the fronts cannot be drawn together",
            template="plotly_white",
            font=FONT,
        )
        return fig
    cols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / cols)
    fig = make_subplots(rows=nrows, cols=cols, horizontal_spacing=0.09, vertical_spacing=0.18)
    for k, (res, label) in enumerate(zip(studies, labels)):
        color = _PALETTE[k % len(_PALETTE)]
        feasible = res.feasible_frame()
        other = feasible[~feasible["on_front"].astype(bool)]
        front = res.front
        test = [res.test.get(r.index, {}) for r in front]
        for i, (a, b) in enumerate(pairs):
            where = {"row": i // cols + 1, "col": i % cols + 1}
            for trace in _front_traces(label, color, other, front, test, (a, b), legend=i == 0):
                fig.add_trace(trace, **where)
            fig.update_xaxes(title_text=axis_title(studies[0], a), **where)
            fig.update_yaxes(title_text=axis_title(studies[0], b), **where)
    _hide_empty_cells(fig, len(pairs), nrows, cols)
    fig.update_layout(
        title=f"Pareto fronts of {', '.join(labels)}",
        height=430 * nrows + 100,
        margin={"l": 60, "r": 20, "t": 70, "b": 60},
        legend={"font": {"size": 11}, "tracegroupgap": 2},
        template="plotly_white",
        font=FONT,
    )
    return fig


def _front_traces(
    label: str,
    color: str,
    other: pd.DataFrame,
    front: list[TrialRecord],
    test: list[dict[str, float]],
    pair: tuple[str, str],
    *,
    legend: bool,
) -> list[Any]:
    """One study's traces in one panel of :func:`compare_fronts_figure`: its other feasible trials,
    its front on validation and on the held-out test split."""
    import plotly.graph_objects as go

    a, b = pair
    held = [(r, t) for r, t in zip(front, test) if a in t and b in t]
    return [
        go.Scatter(
            x=other[a],
            y=other[b],
            mode="markers",
            name=f"{label}: other feasible",
            legendgroup=f"{label} other",
            showlegend=legend and len(other) > 0,
            marker={"color": color, "size": 5, "opacity": 0.3},
            hovertext=[f"{label}, trial {t}" for t in other["trial"]],
            hoverinfo="text+x+y",
        ),
        go.Scatter(
            x=[r.metrics[a] for r in front],
            y=[r.metrics[b] for r in front],
            mode="markers",
            name=f"{label}: front (validation)",
            legendgroup=f"{label} front",
            showlegend=legend and len(front) > 0,
            marker={"color": color, "size": 10, "line": {"width": 1, "color": "#222"}},
            hovertext=[f"{label}, trial {r.index}" for r in front],
            hoverinfo="text+x+y",
        ),
        go.Scatter(
            x=[t[a] for _, t in held],
            y=[t[b] for _, t in held],
            mode="markers",
            name=f"{label}: front (held-out test)",
            legendgroup=f"{label} test",
            showlegend=legend and len(held) > 0,
            marker={"color": color, "size": 10, "symbol": "diamond-open", "line": {"width": 2}},
            hovertext=[f"{label}, trial {r.index} (test)" for r, _ in held],
            hoverinfo="text+x+y",
        ),
    ]


def compare_hypervolume_figure(studies: list[StudyResults]) -> Any:
    """Hypervolume over trials, one panel per study side by side (one y scale when the studies
    share objectives, goals and thresholds, so that the values are comparable)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not studies:
        raise ValueError("compare_hypervolume_figure needs at least one study")
    labels = _labels(studies)
    comparable = all(s.objectives == studies[0].objectives for s in studies[1:])
    cols = min(4, len(studies))
    nrows = math.ceil(len(studies) / cols)
    fig = make_subplots(
        rows=nrows,
        cols=cols,
        subplot_titles=labels,
        shared_yaxes="all" if comparable else False,
        horizontal_spacing=0.05 if comparable else 0.08,
        vertical_spacing=0.2,
    )
    for k, (res, label) in enumerate(zip(studies, labels)):
        trace = res.objectives.hypervolume_trace(res.records)
        where = {"row": k // cols + 1, "col": k % cols + 1}
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(trace) + 1)),
                y=trace,
                mode="lines+markers",
                name=label,
                line={"color": _PALETTE[k % len(_PALETTE)]},
                hoverinfo="name+x+y",
            ),
            **where,
        )
        fig.update_xaxes(title_text="trials", tick0=1, dtick=max(1, math.ceil(len(trace) / 8)), **where)
        if where["col"] == 1 or not comparable:
            fig.update_yaxes(title_text="hypervolume (higher is better)", **where)
    _hide_empty_cells(fig, len(studies), nrows, cols)
    note = (
        "same objectives and reference point" if comparable else "different reference points: not comparable"
    )
    fig.update_layout(
        title=f"Hypervolume over trials ({note})",
        height=380 * nrows + 80,
        showlegend=False,
        template="plotly_white",
        font=FONT,
    )
    return fig


# ----------------------------------------------------------------- PNG


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
