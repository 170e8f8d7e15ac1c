"""``boengine report``: a Markdown and a self-contained HTML account of a study.

Sections: what ran, the Pareto set with validation beside held-out test
figures (and the validation-to-test gap, i.e. how much selecting the best of
many trials flattered validation), hypervolume over trials, parameter
importance, failures and early stops, and the priors the study started from.
"""

from __future__ import annotations

import html
import logging
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.results import StudyResults
from engine.store import StudyStore, read_json, write_bytes

__all__ = ["parameter_importance", "write_report"]

logger = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 8


def parameter_importance(res: StudyResults, seed: int = 0) -> pd.DataFrame:
    """Permutation importance of each searched parameter for each objective.

    A random forest is fitted per objective on the completed trials
    (parameters -> validation value) and each parameter's columns are
    shuffled in turn; the drop in R^2 is its importance, normalised to sum to
    one per objective. Needs at least :data:`MIN_TRIALS_FOR_IMPORTANCE` trials.
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    done = [r for r in res.records if res.objectives.feasible(r)]
    names = list(res.searched)
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE or not names:
        return pd.DataFrame()
    x = pd.get_dummies(pd.DataFrame([{k: r.params[k] for k in names} for r in done]), dtype=float)
    groups = {n: [c for c in x.columns if c == n or c.startswith(f"{n}_")] for n in names}
    out: dict[str, dict[str, float]] = {}
    for obj in res.objectives.names:
        y = np.array([r.metrics[obj] for r in done])
        if np.std(y) == 0:
            continue
        forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed).fit(x, y)
        imp = permutation_importance(forest, x, y, n_repeats=10, random_state=seed).importances_mean
        by_col = dict(zip(x.columns, imp))
        raw = {n: max(0.0, sum(by_col[c] for c in cols)) for n, cols in groups.items()}
        total = sum(raw.values()) or 1.0
        out[obj] = {n: v / total for n, v in raw.items()}
    return pd.DataFrame(out)


def _summary(res: StudyResults) -> dict[str, Any]:
    counts = res.counts()
    secs = [r.seconds.get("total", 0.0) for r in res.records if r.seconds]
    opt = [b["seconds"] for b in res.batches]
    return {
        "strategy": res.spec.strategy,
        **res.objective.describe(res.meta.facts),
        "trials": f"{len(res.records)} of {res.spec.budget.trials}",
        "completed": counts["completed"],
        "early-stopped": f"{counts['early_stopped']} ({res.epochs_saved()} epochs saved)",
        "failed": counts["failed"],
        "abandoned": counts["abandoned"],
        "trial seconds (sum)": f"{sum(secs):.0f}",
        "optimizer seconds (sum / median per batch)": f"{sum(opt):.1f} / {statistics.median(opt):.2f}"
        if opt
        else "-",
        "hypervolume": f"{res.hypervolume:.4g}",
    }


def _gap(res: StudyResults) -> dict[str, float]:
    """How much better the front looked on validation than on test, per objective (mean).

    Positive means validation flattered the front (higher return or Sharpe,
    or lower drawdown, than on the held-out test split).
    """
    out = {}
    members = [r for r in res.front if r.index in res.test]
    for name, maximize in zip(res.objectives.names, res.objectives.maximize):
        pairs = [(r.metrics[name], res.test[r.index].get(name, math.nan)) for r in members]
        pairs = [(v, t) for v, t in pairs if math.isfinite(t)]
        if pairs:
            diff = float(np.mean([v for v, _ in pairs]) - np.mean([t for _, t in pairs]))
            out[name] = diff if maximize else -diff
    return out


def _priors(res: StudyResults) -> list[str]:
    lines = []
    sources: dict[str, int] = {}
    for r in res.records:
        if r.source.startswith(("warm_start", "prior")):
            sources[r.source] = sources.get(r.source, 0) + 1
    for src, n in sorted(sources.items()):
        lines.append(f"{n} trial(s) from {src}")
    path = res.store.dir / "priors.json"
    if path.is_file():
        info = read_json(path)
        stats = ", ".join(
            f"{k} {v:.4g}" for k, v in info.get("statistics", {}).items() if isinstance(v, float)
        )
        lines.append(f"DataDrivenOptimizer statistics (training split): {stats}")
        fired = info.get("rules_fired")
        if fired is not None:
            lines.append(f"rules fired: {', '.join(fired) or 'none'}")
    return lines or ["none: the study started from quasi-random (Sobol) trials"]


Section = tuple[str, Any]  # ("h1" | "h2" | "p" | "list" | "table" | "figure", content)


def _sections(res: StudyResults, importance: pd.DataFrame, trace: list[float]) -> list[Section]:
    """The report as a list of blocks, rendered to Markdown and to HTML."""
    out: list[Section] = [("h1", f"Study report: {res.spec.name}")]
    if res.spec.description:
        out.append(("p", res.spec.description))
    summary = pd.DataFrame(list(_summary(res).items()), columns=["", "value"])
    out += [("table", summary), ("h2", "Pareto set (validation vs held-out test)")]
    front = res.pareto_frame()
    out.append(("table", front) if len(front) else ("p", "Empty: no completed trial meets the constraints."))
    if len(res.feasible_frame()):
        out.append(("figure", "pareto"))
    gap = _gap(res)
    if gap:
        out.append(
            (
                "p",
                "How much better the front looked on validation than on the held-out test split "
                "(mean over the front; positive = validation flattered it): "
                + ", ".join(f"{k} {v:+.3g}" for k, v in gap.items()),
            )
        )
    elif res.objective.scores_test:
        out.append(("p", "No test figures yet: they are computed when the study finishes its budget."))
    bh = next((r.metrics for r in res.records if "bh_return_pct" in r.metrics), None)
    if bh:
        out.append(
            (
                "p",
                f"Buy and hold on the validation split: return {bh['bh_return_pct']:.3g}%, "
                f"Sharpe {bh.get('bh_sharpe', math.nan):.3g}, "
                f"max drawdown {bh.get('bh_max_drawdown_pct', math.nan):.3g}%",
            )
        )
    out.append(("h2", "Hypervolume over trials"))
    if trace:
        step = max(1, len(trace) // 12)
        rows = sorted({*range(0, len(trace), step), len(trace) - 1})
        out += [
            ("figure", "hypervolume"),
            (
                "table",
                pd.DataFrame({"trials": [i + 1 for i in rows], "hypervolume": [trace[i] for i in rows]}),
            ),
        ]
    out.append(("h2", "Parameter importance"))
    if len(importance):
        out += [("figure", "importance"), ("table", importance.reset_index(names="parameter"))]
    else:
        out.append(("p", f"Needs at least {MIN_TRIALS_FOR_IMPORTANCE} feasible trials."))
    out += [("h2", "Priors and warm start"), ("list", _priors(res))]
    bad = [r for r in res.records if r.status in ("failed", "early_stopped", "abandoned")]
    out += [
        ("h2", "Failed, early-stopped and abandoned trials"),
        (
            "list",
            [
                f"trial {r.index}: {r.status}"
                + (f" — {r.reason}" if r.reason else f" after {r.epochs} epochs")
                for r in bad
            ]
            or ["none"],
        ),
    ]
    return out


def _markdown(sections: list[Section]) -> str:
    md: list[str] = []
    for kind, content in sections:
        if kind == "h1":
            md += [f"# {content}", ""]
        elif kind == "h2":
            md += [f"## {content}", ""]
        elif kind == "p":
            md += [content, ""]
        elif kind == "list":
            md += [f"- {line}" for line in content] + [""]
        elif kind == "table":
            md += [content.to_markdown(index=False, floatfmt=".4g"), ""]
    return "\n".join(md)


def _figures(res: StudyResults, importance: pd.DataFrame, trace: list[float]) -> dict[str, list[Any]]:
    import plotly.express as px

    from engine.export import pareto_figures

    figs: dict[str, list[Any]] = {}
    if len(res.feasible_frame()):
        figs["pareto"] = pareto_figures(res)
    if trace:
        figs["hypervolume"] = [
            px.line(
                x=list(range(1, len(trace) + 1)),
                y=trace,
                markers=True,
                labels={"x": "trials", "y": "hypervolume"},
            )
        ]
    if len(importance):
        long = importance.reset_index(names="parameter").melt(
            id_vars="parameter", var_name="objective", value_name="importance"
        )
        figs["importance"] = [
            px.bar(
                long,
                x="parameter",
                y="importance",
                color="objective",
                barmode="group",
                title="Permutation importance (random forest per objective)",
            )
        ]
    return figs


def _html(res: StudyResults, sections: list[Section], figs: dict[str, list[Any]]) -> str:
    body: list[str] = []
    first_plot = True
    for kind, content in sections:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(content)}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in content) + "</ul>")
        elif kind == "table":
            table = content.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}")
            body.append(f"<div style='overflow-x:auto'>{table}</div>")
        elif kind == "figure":
            for fig in figs.get(content, []):
                body.append(fig.to_html(full_html=False, include_plotlyjs=first_plot))
                first_plot = False
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
        "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
        "th{background:#f3f3f3}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(res.spec.name)} report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def write_report(store_or_dir: StudyStore | str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and ``report.html``; return the Markdown path."""
    directory = store_or_dir.dir if isinstance(store_or_dir, StudyStore) else Path(store_or_dir)
    res = StudyResults.load(directory)
    target = Path(out_dir) if out_dir else res.store.dir
    importance = parameter_importance(res, seed=res.spec.seed)
    trace = res.objectives.hypervolume_trace(res.records)
    sections = _sections(res, importance, trace)
    write_bytes(target / "report.md", _markdown(sections).encode())
    write_bytes(target / "report.html", _html(res, sections, _figures(res, importance, trace)).encode())
    logger.info("wrote %s and report.html", target / "report.md")
    return target / "report.md"
