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
        "data": res.spec.data.source,
        "feature set": res.meta.get("feature_set", "-"),
        "split sizes (bars)": res.meta.get("splits", "-"),
        "trials": f"{len(res.records)} of {res.spec.budget.trials}",
        "completed": counts["completed"],
        "early-stopped": f"{counts['early_stopped']} ({res.epochs_saved()} epochs saved)",
        "failed": counts["failed"],
        "abandoned": counts["abandoned"],
        "trial seconds (sum)": f"{sum(secs):.0f}",
        "optimizer seconds (sum / median per batch)": f"{sum(opt):.1f} / {statistics.median(opt):.2f}" if opt else "-",
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
        stats = ", ".join(f"{k} {v:.4g}" for k, v in info.get("statistics", {}).items() if isinstance(v, float))
        lines.append(f"DataDrivenOptimizer statistics (training split): {stats}")
        fired = info.get("rules_fired")
        if fired is not None:
            lines.append(f"rules fired: {', '.join(fired) or 'none'}")
    return lines or ["none: the study started from quasi-random (Sobol) trials"]


def _markdown(res: StudyResults, importance: pd.DataFrame, trace: list[float]) -> str:
    md = [f"# Study report: {res.spec.name}", ""]
    if res.spec.description:
        md += [res.spec.description, ""]
    md += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _summary(res).items()] + [""]
    md += ["## Pareto set (validation vs held-out test)", ""]
    front = res.pareto_frame()
    md += [front.to_markdown(index=False, floatfmt=".4g") if len(front) else "_empty: no feasible trial_", ""]
    gap = _gap(res)
    if gap:
        md += ["How much better the front looked on validation than on the held-out test split "
               "(mean over the front; positive = validation flattered it): "
               + ", ".join(f"{k} {v:+.3g}" for k, v in gap.items()), ""]
    elif not res.spec.is_synthetic:
        md += ["_No test figures yet: they are computed when the study finishes its budget._", ""]
    bh = next((r.metrics for r in res.records if "bh_return_pct" in r.metrics), None)
    if bh:
        md += [f"Buy and hold on the validation split: return {bh['bh_return_pct']:.3g}%, "
               f"Sharpe {bh.get('bh_sharpe', math.nan):.3g}, max drawdown {bh.get('bh_max_drawdown_pct', math.nan):.3g}%", ""]
    md += ["## Hypervolume over trials", ""]
    step = max(1, len(trace) // 12)
    md += ["| trials | hypervolume |", "|---|---|"]
    md += [f"| {i + 1} | {trace[i]:.4g} |" for i in range(0, len(trace), step)]
    if trace and (len(trace) - 1) % step:
        md += [f"| {len(trace)} | {trace[-1]:.4g} |"]
    md += ["", "## Parameter importance", ""]
    md += [importance.to_markdown(floatfmt=".2f") if len(importance)
           else f"_needs at least {MIN_TRIALS_FOR_IMPORTANCE} feasible trials_", ""]
    md += ["## Priors and warm start", ""] + [f"- {line}" for line in _priors(res)] + [""]
    bad = [r for r in res.records if r.status in ("failed", "early_stopped", "abandoned")]
    md += ["## Failed, early-stopped and abandoned trials", ""]
    md += [f"- trial {r.index}: {r.status}" + (f" — {r.reason}" if r.reason else f" after {r.epochs} epochs")
           for r in bad] or ["none"]
    return "\n".join(md) + "\n"


def _html(res: StudyResults, markdown: str, importance: pd.DataFrame, trace: list[float]) -> str:
    import plotly.express as px

    from engine.export import pareto_figures

    figs = []
    if len(res.feasible_frame()):
        figs.extend(pareto_figures(res))
    if trace:
        figs.append(px.line(x=list(range(1, len(trace) + 1)), y=trace, markers=True,
                            labels={"x": "trials", "y": "hypervolume"}, title="Hypervolume over trials"))
    if len(importance):
        long = importance.reset_index(names="parameter").melt(id_vars="parameter", var_name="objective",
                                                               value_name="importance")
        figs.append(px.bar(long, x="parameter", y="importance", color="objective", barmode="group",
                           title="Parameter importance (permutation, random forest)"))
    plots = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(res.spec.name)} report</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}</style></head><body>"
        f"{plots}<pre>{html.escape(markdown)}</pre></body></html>"
    )


def write_report(store_or_dir: StudyStore | str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and ``report.html``; return the Markdown path."""
    directory = store_or_dir.dir if isinstance(store_or_dir, StudyStore) else Path(store_or_dir)
    res = StudyResults.load(directory)
    target = Path(out_dir) if out_dir else res.store.dir
    importance = parameter_importance(res, seed=res.spec.seed)
    trace = res.objectives.hypervolume_trace(res.records)
    markdown = _markdown(res, importance, trace)
    write_bytes(target / "report.md", markdown.encode())
    write_bytes(target / "report.html", _html(res, markdown, importance, trace).encode())
    logger.info("wrote %s and report.html", target / "report.md")
    return target / "report.md"
