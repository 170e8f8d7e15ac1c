"""``boengine pareto``: the Pareto set as CSV, JSON, HTML (plotly) or PNG (matplotlib).

Also the views the report shares with ``pareto.html``: the front beside its
baselines (:func:`comparison_frame`, :func:`front_table`), the noise
yardstick of the best validation Sharpe (:func:`sharpe_yardstick`), the plots
(:func:`pareto_figures`) and the page style (:func:`html_page`).

Every plot shows the front's validation figures (what the search selected
on), the same members on the held-out test split (another symbol, joined to
their validation point by a dotted line), and the baselines: the family's
default configuration (a trial like any other), flat and buy-and-hold.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.results import StudyResults
from engine.store import StudyStore, write_bytes

__all__ = [
    "FLAG",
    "FORMATS",
    "PAGE_STYLE",
    "PointSet",
    "axis_title",
    "compared_metrics",
    "comparison_frame",
    "fmt_number",
    "fmt_prob",
    "front_table",
    "html_page",
    "html_table",
    "pareto_csv_frame",
    "pareto_figures",
    "point_sets",
    "sharpe_yardstick",
    "write_pareto",
]

logger = logging.getLogger(__name__)

FORMATS = ("csv", "json", "html", "png")
FLAG = "⚠"
TRADING_METRICS = ("sharpe", "return_pct", "max_drawdown_pct", "num_trades")
_LABELS = {
    "sharpe": ("Sharpe ratio", "annualised"),
    "return_pct": ("Return", "%"),
    "max_drawdown_pct": ("Max drawdown", "%"),
    "win_rate_pct": ("Win rate", "%"),
    "exposure_pct": ("Exposure", "%"),
    "profit_factor": ("Profit factor", ""),
    "num_trades": ("Trades", ""),
}
_BASELINES = {"default": "family default", "flat": "flat", "buy_and_hold": "buy and hold"}

PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222;line-height:1.45}"
    "h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}"
    ".wrap{overflow-x:auto;max-width:100%;margin:.5em 0}"
    "table{border-collapse:collapse;font-size:13px}"
    "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right;vertical-align:top}"
    "th{background:#f3f3f3}"
    "table.num td,table.num th{white-space:nowrap}"
    "table.kv td,table.kv th{text-align:left}"
    "td:first-child,th:first-child{text-align:left}"
    ".verdict{font-size:1.1em;padding:.7em 1em;border-left:5px solid #b3403a;background:#fbf3f2}"
    ".verdict.edge{border-color:#2a8a4a;background:#f1faf4}"
    ".plot{max-width:100%;overflow-x:auto}.flag{color:#b3403a;font-weight:600}"
)


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page in the style of ``report.html``."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{PAGE_STYLE}</style></head><body>{body}</body></html>"
    )


def html_table(df: pd.DataFrame, kind: str = "num") -> str:
    """``df`` as an HTML table that scrolls horizontally inside its container (``kind``: num | kv)."""
    table = df.to_html(index=False, border=0, classes=kind, float_format=lambda v: f"{v:.4g}", na_rep="-")
    return f"<div class='wrap'>{table}</div>"


def write_pareto(store_or_dir: StudyStore | str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Write the study's Pareto set in ``fmt``; default path ``<study>/pareto.<fmt>``."""
    directory = store_or_dir.dir if isinstance(store_or_dir, StudyStore) else Path(store_or_dir)
    res = StudyResults.load(directory)
    path = Path(out) if out else res.store.dir / f"pareto.{fmt}"
    if fmt == "csv":
        write_bytes(path, pareto_csv_frame(res).to_csv(index=False).encode())
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


def compared_metrics(res: StudyResults) -> list[str]:
    """Metrics shown for validation and test: Sharpe, return, drawdown, trades, then other objectives."""
    first = list(TRADING_METRICS) if res.objective.scores_test else []
    return first + [n for n in res.objectives.names if n not in first]


def comparison_frame(res: StudyResults) -> pd.DataFrame:
    """Front members, then the baselines, with validation and test figures side by side.

    Columns: ``row`` (a label), ``kind`` (front | default | flat | buy_and_hold),
    ``trial`` (none for the rule baselines), ``val_<m>`` and ``test_<m>`` for
    each of :func:`compared_metrics`, ``val_sharpe_se`` and ``dsr`` (front members).
    """
    metrics = compared_metrics(res)
    verdict = res.verdict
    members = verdict.members if verdict else {}
    on_front = {r.index for r in res.front}
    rows: list[dict[str, Any]] = []
    trials = [*res.front, *(r for r in res.baseline_records if r.index not in on_front)]
    for rec in trials:
        front = rec.index in on_front
        label = "front" if front else "baseline: family default"
        if front and rec.source == "baseline":
            label = "front (family default)"
        row: dict[str, Any] = {"row": label, "kind": "front" if front else "default", "trial": rec.index}
        test = res.test.get(rec.index, {})
        for m in metrics:
            row[f"val_{m}"] = rec.metrics.get(m, math.nan)
            row[f"test_{m}"] = test.get(m, math.nan)
        row["val_sharpe_se"] = rec.sems.get("sharpe", math.nan)
        row["dsr"] = members.get(rec.index, {}).get("dsr", math.nan)
        rows.append(row)
    for name, splits in (verdict.baselines if verdict else {}).items():
        row = {"row": f"baseline: {_BASELINES.get(name, name)}", "kind": name, "trial": None}
        for m in metrics:
            row[f"val_{m}"] = splits.get("validation", {}).get(m, math.nan)
            row[f"test_{m}"] = splits.get("test", {}).get(m, math.nan)
        rows.append({**row, "val_sharpe_se": math.nan, "dsr": math.nan})
    columns = ["row", "kind", "trial", *(f"{s}_{m}" for s in ("val", "test") for m in metrics)]
    df = pd.DataFrame(rows, columns=[*columns, "val_sharpe_se", "dsr"])
    df["trial"] = df["trial"].astype("Int64")
    return df


def fmt_number(value: Any, digits: int = 3) -> str:
    """A figure for a table: '-' for missing, thousands separators from 1,000, else ``digits`` significant."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "-"
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 1000 or (v.is_integer() and abs(v) >= 10) else f"{v:.{digits}g}"


def fmt_prob(value: Any) -> str:
    """A probability or p-value with three decimals ('-' when missing)."""
    return f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


_HEADERS = {
    "sharpe": "Sharpe",
    "return_pct": "return %",
    "max_drawdown_pct": "max drawdown %",
    "num_trades": "trades",
}


def _metric_header(split: str, name: str) -> str:
    return f"{split} {_HEADERS.get(name, name)}"


def front_table(res: StudyResults) -> tuple[pd.DataFrame, list[str]]:
    """The comparison as display strings, and the notes under it (test trade counts that are too few).

    A test trade count of a trial below the study's ``num_trades >=`` constraint
    is marked with :data:`FLAG`; the rule baselines are not flagged.
    """
    df = comparison_frame(res)
    bound = res.constraint_bound("num_trades")
    out = pd.DataFrame({"": df["row"], "trial": [fmt_number(t) for t in df["trial"]]})
    flagged: list[str] = []
    for split in ("val", "test"):
        for m in compared_metrics(res):
            col = df[f"{split}_{m}"]
            cells = [fmt_number(v) for v in col]
            if m == "sharpe" and split == "val":
                cells = [
                    c if c == "-" or pd.isna(se) else f"{c} ± {fmt_number(se)}"
                    for c, se in zip(cells, df["val_sharpe_se"])
                ]
            if m == "num_trades" and split == "test" and bound is not None:
                low = [k in ("front", "default") and v < bound for k, v in zip(df["kind"], col)]
                cells = [f"{FLAG} {c}" if flag else c for c, flag in zip(cells, low)]
                flagged += [str(t) for t, flag in zip(df["trial"], low) if flag]
            header = _metric_header("validation" if split == "val" else "test", m)
            out[header + (" ± SE" if m == "sharpe" and split == "val" else "")] = cells
    out["DSR"] = [fmt_prob(v) for v in df["dsr"]]
    out = out[[c for c in out.columns if c == "" or (out[c] != "-").any()]]
    notes = []
    if flagged:
        notes.append(
            f"{FLAG} test trades below the study's constraint num_trades >= {bound:g} "
            f"(trial {', '.join(flagged)}): the test figure rests on too few trades to say much."
        )
    return out, notes


def sharpe_yardstick(res: StudyResults) -> str | None:
    """'best validation Sharpe 3.9 (± 1.4 standard error over 3,146 bars; the best of 40 noise trials
    is expected near 3.4)'; None without a verdict or a Sharpe ratio."""
    verdict = res.verdict
    pool = [r for r in res.records if res.objectives.feasible(r)] or [
        r for r in res.records if r.status == "completed"
    ]
    values = [r.metrics["sharpe"] for r in pool if math.isfinite(r.metrics.get("sharpe", math.nan))]
    if verdict is None or not values:
        return None
    return (
        f"best validation Sharpe {max(values):.2f} (± {verdict.sharpe_se:.2f} standard error over "
        f"{verdict.n_obs:,} bars; the best of {verdict.n_trials} noise trials is expected near "
        f"{verdict.noise_best_sharpe:.2f})"
    )


# ----------------------------------------------------------------- plots


def axis_title(res: StudyResults, name: str) -> str:
    """'Sharpe ratio (annualised, higher is better)'; raw names for a synthetic problem."""
    direction = "higher is better"
    if name in res.objectives.names and not res.objectives.maximize[res.objectives.names.index(name)]:
        direction = "lower is better"
    if not res.objective.scores_test or name not in _LABELS:
        return f"{name} ({direction})"
    label, unit = _LABELS[name]
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
                text = f"{_BASELINES[kind]} ({'val' if split == 'val' else 'test'})"
                sets.append(
                    PointSet(
                        f"{_BASELINES[kind]} ({word})",
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


def _html(res: StudyResults) -> str:
    verdict = res.verdict
    parts = [f"<h1>{html.escape(res.spec.name)}: Pareto front ({len(res.front)} trials)</h1>"]
    if verdict is not None:
        parts.append(
            f"<p class='verdict{' edge' if verdict.edge else ''}'>{html.escape(verdict.sentence)}</p>"
        )
    if (yardstick := sharpe_yardstick(res)) is not None:
        parts.append(f"<p>{html.escape(yardstick[0].upper() + yardstick[1:])}.</p>")
    if len(res.feasible_frame()):
        parts += [
            f"<div class='plot'>{fig.to_html(full_html=False, include_plotlyjs=i == 0)}</div>"
            for i, fig in enumerate(pareto_figures(res))
        ]
    table, notes = front_table(res)
    parts.append("<h2>Pareto set beside the baselines (validation and held-out test)</h2>")
    parts.append(
        html_table(table) if len(table) else "<p>Empty: no completed trial meets the constraints.</p>"
    )
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    front = pareto_csv_frame(res)
    if len(front):
        parts += ["<h2>Pareto set: parameters and figures (as in pareto.csv)</h2>", html_table(front)]
    return html_page(f"{res.spec.name} Pareto front", "".join(parts))


# ----------------------------------------------------------------- PNG


def _png(res: StudyResults, path: Path) -> None:
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
