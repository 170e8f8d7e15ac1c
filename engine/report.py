"""``boengine report``: a Markdown and a self-contained HTML account of a study.

The report says how much of every number is luck. It opens with the verdict
on the pick (:mod:`engine.verdict`) and the selection statistics with their
inputs (:mod:`engine.report_verdict`: the skill test, deflated Sharpe ratios
with the trial ledger's counts, per-block consistency, PBO, trials, bars, bar
frequency) and how to read them; then what ran
(data, splits and fold dates, costs, labels, purge and embargo); the Pareto
set with validation beside held-out test figures, next to the baselines (the
family's default configuration, flat, buy-and-hold), with the noise yardstick
of the best validation Sharpe; hypervolume over trials; parameter importance
(only from :data:`MIN_TRIALS_FOR_IMPORTANCE` feasible trials, with a
bootstrap standard deviation); failures and early stops; and the priors.
"""

from __future__ import annotations

import html
import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.report_verdict import verdict_sections
from engine.results import StudyResults
from engine.store import StudyStore, write_bytes
from engine.tables import FLAG, fmt_number, front_table, html_page, html_table, sharpe_yardstick

__all__ = [
    "IMPORTANCE_RESAMPLES",
    "MIN_TRIALS_FOR_IMPORTANCE",
    "parameter_importance",
    "report_figures",
    "write_report",
]

logger = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 20
IMPORTANCE_RESAMPLES = 20
_TREES = 30
_PERMUTATIONS = 5

Section = tuple[str, Any]  # (h1 | h2 | p | verdict | list | table | kv | figure, content)


# ----------------------------------------------------------------- parameter importance


def parameter_importance(
    res: StudyResults, seed: int = 0, resamples: int = IMPORTANCE_RESAMPLES
) -> pd.DataFrame:
    """Permutation importance of each searched parameter for each objective, with its bootstrap std.

    A random forest is fitted per objective on the feasible trials
    (parameters -> validation value) and each parameter's columns are
    shuffled in turn; the drop in R^2 is its importance, normalised to sum to
    one per objective. ``sd`` is the standard deviation of that share over
    ``resamples`` bootstrap resamples of the trials (seeded with ``seed``).
    Columns: parameter, objective, importance, sd; empty below
    :data:`MIN_TRIALS_FOR_IMPORTANCE` feasible trials.
    """
    done = [r for r in res.records if res.objectives.feasible(r)]
    names = list(res.searched)
    empty = pd.DataFrame(columns=["parameter", "objective", "importance", "sd"])
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE or not names:
        return empty
    frame = pd.get_dummies(pd.DataFrame([{k: r.params[k] for k in names} for r in done]), dtype=float)
    x = frame.to_numpy(dtype=float)
    groups = [[j for j, c in enumerate(frame.columns) if c == n or c.startswith(f"{n}_")] for n in names]
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(done), len(done)) for _ in range(resamples)]
    rows = []
    for obj in res.objectives.names:
        y = np.array([r.metrics[obj] for r in done])
        if np.std(y) == 0:
            continue
        point = _shares(x, y, groups, seed)
        boot = np.array([_shares(x[i], y[i], groups, seed) for i in draws if np.std(y[i]) > 0])
        sd = boot.std(axis=0, ddof=1) if len(boot) >= 2 else np.full(len(names), math.nan)
        rows += [
            {"parameter": n, "objective": obj, "importance": float(v), "sd": float(e)}
            for n, v, e in zip(names, point, sd)
        ]
    return pd.DataFrame(rows) if rows else empty


def _shares(x: np.ndarray, y: np.ndarray, groups: list[list[int]], seed: int) -> np.ndarray:
    """Each parameter's share of a forest's permutation importance: `n x c`, `n` -> `p`.

    The columns of a parameter (its one-hot dummies) are permuted together,
    :data:`_PERMUTATIONS` times; the mean drop in R^2 is its importance. All
    permuted copies are scored in one ``predict`` call (cheap for the small
    forests used here).
    """
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=_TREES, min_samples_leaf=2, random_state=seed).fit(x, y)
    rng = np.random.default_rng(seed)
    copies = []
    for cols in groups:
        for _ in range(_PERMUTATIONS):
            xp = x.copy()
            xp[:, cols] = x[rng.permutation(len(x))][:, cols]
            copies.append(xp)
    pred = forest.predict(np.vstack([x, *copies])).reshape(1 + len(copies), len(x))
    total_ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ((pred - y) ** 2).sum(axis=1) / total_ss  # `1 + p * k`
    drop = np.maximum(0.0, r2[0] - r2[1:].reshape(len(groups), _PERMUTATIONS).mean(axis=1))
    return drop / drop.sum() if drop.sum() > 0 else drop


def _importance_sections(res: StudyResults, importance: pd.DataFrame) -> list[Section]:
    n = sum(res.objectives.feasible(r) for r in res.records)
    if not len(importance):
        return [
            (
                "p",
                f"Not shown: {n} feasible trials; ranking parameters needs at least "
                f"{MIN_TRIALS_FOR_IMPORTANCE}. With fewer, a model fitted to so few noisy validation "
                "figures ranks the noise, not the parameters.",
            )
        ]
    table = importance.assign(
        cell=[
            f"{fmt_number(v, 2)} ± {fmt_number(s, 2)}"
            for v, s in zip(importance["importance"], importance["sd"])
        ]
    ).pivot(index="parameter", columns="objective", values="cell")
    return [
        (
            "p",
            f"Fitted on {n} noisy validation figures: a random forest per objective (parameters -> "
            "validation value), permutation importance as a share of the total; ± is the standard "
            f"deviation over {IMPORTANCE_RESAMPLES} bootstrap resamples of the trials (seed {res.spec.seed}). "
            "Parameters whose ranges overlap are not ranked by this study.",
        ),
        ("figure", "importance"),
        ("table", table.reset_index()),
    ]


# ----------------------------------------------------------------- what was run, and the rest


def _what_was_run(res: StudyResults) -> list[Section]:
    facts = res.meta.facts
    described = res.objective.describe(facts)
    folds = facts.get("folds") or []
    lines = {
        "strategy": res.spec.strategy,
        **{k: v for k, v in described.items() if not (k == "folds" and folds)},
    }
    out: list[Section] = [("h2", "What was run")]
    if res.spec.description:
        out.append(("p", res.spec.description))
    out.append(("kv", pd.DataFrame(list(lines.items()), columns=["", "value"])))
    dates = facts.get("split_dates") or {}
    splits = facts.get("splits") or {}
    if dates:
        rows = [(k, d[0], d[1], splits.get(k, "-")) for k, d in dates.items()]
        out.append(("table", pd.DataFrame(rows, columns=["split", "first bar", "last bar", "decision bars"])))
    if folds:
        blocks = [
            (i, f["train"][0], f["train"][1], *(f.get("select") or ["-", "-"]), f["val"][0], f["val"][1])
            for i, f in enumerate(folds)
        ]
        cols = ["fold", "train from", "train to", "choose from", "choose to", "trade from", "trade to"]
        out.append(("table", pd.DataFrame(blocks, columns=cols)))
    return out


def _summary(res: StudyResults) -> dict[str, Any]:
    counts = res.counts()
    secs = [r.seconds.get("total", 0.0) for r in res.records if r.seconds]
    opt = [b["seconds"] for b in res.batches]
    out = {
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
    if (yardstick := sharpe_yardstick(res)) is not None:
        out["best validation Sharpe"] = yardstick.removeprefix("best validation Sharpe ")
    return out


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


def _front_sections(res: StudyResults) -> list[Section]:
    out: list[Section] = [("h2", "Pareto set (validation vs held-out test, beside the baselines)")]
    if (yardstick := sharpe_yardstick(res)) is not None:
        out.append(("p", f"Noise yardstick: {yardstick}."))
    table, notes = front_table(res)
    if not res.front:
        out.append(("p", "Empty: no completed trial meets the constraints."))
    if len(table):
        out.append(("table", table))
    out += [("p", n) for n in notes]
    if len(res.feasible_frame()):
        out.append(("figure", "pareto"))
    gap = _gap(res)
    if gap:
        text = ", ".join(f"{k} {v:+.3g}" for k, v in gap.items())
        out.append(
            (
                "p",
                "How much better the front looked on validation than on the held-out test split "
                f"(mean over the front; positive = validation flattered it): {text}",
            )
        )
    elif res.objective.scores_test:
        out.append(("p", "No test figures yet: they are computed when the study finishes its budget."))
    trials = {r.index: r for r in [*res.front, *res.baseline_records]}
    if trials and res.searched:
        rows = [
            {"trial": i, "source": r.source, **{k: r.params[k] for k in res.searched}}
            for i, r in trials.items()
        ]
        out += [("p", "Parameters of the front and the baseline trial:"), ("table", pd.DataFrame(rows))]
    return out


def _priors(res: StudyResults) -> list[str]:
    lines = []
    sources: dict[str, int] = {}
    for r in res.records:
        if r.source.startswith(("warm_start", "prior")):
            sources[r.source] = sources.get(r.source, 0) + 1
    for src, n in sorted(sources.items()):
        lines.append(f"{n} trial(s) from {src}")
    warm = res.store.dir / "warm_start.json"
    if warm.is_file():
        for directory, info in res.store.read(warm).items():
            skipped = "; ".join(f"{n} {why}" for why, n in info.get("skipped", {}).items())
            lines.append(
                f"warm start from {directory}: {info.get('attached', 0)} trial(s) attached"
                + (f", skipped: {skipped}" if skipped else "")
            )
    path = res.store.dir / "priors.json"
    if path.is_file():
        info = res.store.read(path)  # DataDrivenOptimizer.to_dict() and the suggestions
        stats = ", ".join(
            f"{k} {v:.4g}" for k, v in info.get("stats", {}).items() if isinstance(v, float) and k != "n_bars"
        )
        n_bars = info.get("stats", {}).get("n_bars")
        lines.append(f"DataDrivenOptimizer statistics ({n_bars} training bars): {stats}")
        fired = info.get("fired_rules")
        if fired is not None:
            lines.append(f"rules fired: {', '.join(fired) or 'none'}")
    return lines or ["none: the study started from quasi-random (Sobol) trials"]


def _window_sections(res: StudyResults) -> list[Section]:
    """A study window (``run --window``): what was carried over and how the regime moved."""
    from engine.records import REEVALUATED_SOURCES, TrialRecord

    carry_path, regime_path = res.store.dir / "carry_over.json", res.store.dir / "regime.json"
    if not carry_path.is_file() and not regime_path.is_file():
        return []
    carry = res.store.read(carry_path) if carry_path.is_file() else {}
    prev_dir = carry.get("previous_window")
    prev = StudyStore(prev_dir) if prev_dir and StudyStore(prev_dir).exists() else None
    lines = [
        f"data up to {res.spec.data.end}; previous window: "
        + (str(prev_dir) if prev_dir else "none (the first window of its line)")
        + f"; carry-over: {carry.get('mode', res.spec.warm_start.previous_window)}"
    ]
    lines += [f"{n} not carried over: {why}" for why, n in carry.get("skipped", {}).items()]
    out: list[Section] = [("h2", "Study window"), ("list", lines)]
    then: dict[str, TrialRecord] = {}
    if prev is not None:
        for path in sorted((prev.dir / "trials").glob("*/result.json")):
            rec = TrialRecord.from_dict(prev.read(path), source=str(path))
            then.setdefault(json.dumps(rec.params, sort_keys=True, default=str), rec)
    rows = []
    for r in res.records:
        if r.source not in REEVALUATED_SOURCES:
            continue
        old = then.get(json.dumps(r.params, sort_keys=True, default=str))
        row: dict[str, Any] = {"trial": r.index, "source": r.source, "status": r.status}
        for name in res.objectives.names:
            row[f"{name} now"] = r.metrics.get(name)
            row[f"{name} then"] = old.metrics.get(name) if old is not None else None
        rows.append(row)
    if rows:
        out += [
            ("p", "Configurations run again on this window's data (now) and their figures in the previous "
             "window (then, on other bars):"),
            ("table", pd.DataFrame(rows)),
        ]  # fmt: skip
    if regime_path.is_file():
        now = res.store.read(regime_path)
        before_path = prev.dir / "regime.json" if prev is not None else None
        before = prev.read(before_path) if prev is not None and before_path and before_path.is_file() else {}
        stats = [k for k, v in now.items() if isinstance(v, float)]
        frame = pd.DataFrame(
            {
                "statistic": stats,
                "previous window": [before.get(k) for k in stats],
                "this window": [now[k] for k in stats],
                "change": [now[k] - before[k] if isinstance(before.get(k), float) else None for k in stats],
            }
        )
        out += [
            ("p", f"Regime statistics of the training bars ({now.get('n_bars')} bars):"),
            ("table", frame),
        ]
    return out


def _sections(res: StudyResults, importance: pd.DataFrame, trace: list[float]) -> list[Section]:
    """The report as a list of blocks, rendered to Markdown and to HTML."""
    out: list[Section] = [("h1", f"Study report: {res.spec.name}"), *verdict_sections(res)]
    out += _what_was_run(res)
    out += [("h2", "Summary"), ("kv", pd.DataFrame(list(_summary(res).items()), columns=["", "value"]))]
    out += _front_sections(res)
    out.append(("h2", "Hypervolume over trials"))
    if trace:
        step = max(1, len(trace) // 12)
        rows = sorted({*range(0, len(trace), step), len(trace) - 1})
        frame = pd.DataFrame({"trials": [i + 1 for i in rows], "hypervolume": [trace[i] for i in rows]})
        out += [("figure", "hypervolume"), ("table", frame)]
    out += [("h2", "Parameter importance"), *_importance_sections(res, importance)]
    out += [("h2", "Priors and warm start"), ("list", _priors(res))]
    out += _window_sections(res)
    bad = [r for r in res.records if r.status in ("failed", "early_stopped", "abandoned")]
    lines = [
        f"trial {r.index}: {r.status}" + (f" — {r.reason}" if r.reason else f" after {r.epochs} epochs")
        for r in bad
    ]
    out += [("h2", "Failed, early-stopped and abandoned trials"), ("list", lines or ["none"])]
    return out


# ----------------------------------------------------------------- rendering


def _markdown(sections: list[Section]) -> str:
    md: list[str] = []
    for kind, content in sections:
        if kind == "h1":
            md += [f"# {content}", ""]
        elif kind == "h2":
            md += [f"## {content}", ""]
        elif kind == "p":
            md += [content, ""]
        elif kind == "verdict":
            md += [content.sentence, ""]
        elif kind == "list":
            md += [f"- {line}" for line in content] + [""]
        elif kind in ("table", "kv"):
            md += [content.to_markdown(index=False, floatfmt=".4g"), ""]
    return "\n".join(md)


def _figures(res: StudyResults, importance: pd.DataFrame, trace: list[float]) -> dict[str, list[Any]]:
    import plotly.express as px

    from engine.plots import hypervolume_figure, pareto_figures

    figs: dict[str, list[Any]] = {}
    if len(res.feasible_frame()):
        figs["pareto"] = pareto_figures(res)
    if trace:
        figs["hypervolume"] = [hypervolume_figure(res, trace)]
    if len(importance):
        figs["importance"] = [
            px.bar(
                importance,
                x="parameter",
                y="importance",
                error_y="sd",
                color="objective",
                barmode="group",
                labels={"importance": "share of permutation importance (± bootstrap std)"},
                title=f"Permutation importance (random forest per objective, {IMPORTANCE_RESAMPLES} bootstrap resamples)",
                template="plotly_white",
            )
        ]
    return figs


def report_figures(res: StudyResults) -> dict[str, list[Any]]:
    """The plotly figures of ``report.html`` by kind (pareto, hypervolume, importance), computed
    from ``res`` without writing anything."""
    importance = parameter_importance(res, seed=res.spec.seed)
    return _figures(res, importance, res.objectives.hypervolume_trace(res.records))


def _html(res: StudyResults, sections: list[Section], figs: dict[str, list[Any]]) -> str:
    body: list[str] = []
    first_plot = True
    for kind, content in sections:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            flag = " class='flag'" if content.startswith(FLAG) else ""
            body.append(f"<p{flag}>{html.escape(content)}</p>")
        elif kind == "verdict":
            body.append(
                f"<p class='verdict{' edge' if content.edge else ''}'>{html.escape(content.sentence)}</p>"
            )
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in content) + "</ul>")
        elif kind in ("table", "kv"):
            body.append(html_table(content, kind="num" if kind == "table" else "kv"))
        elif kind == "figure":
            for fig in figs.get(content, []):
                plot = fig.to_html(full_html=False, include_plotlyjs=first_plot)
                body.append(f"<div class='plot'>{plot}</div>")
                first_plot = False
    return html_page(f"{res.spec.name} report", "".join(body))


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
