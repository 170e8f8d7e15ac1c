"""``boengine report``: a Markdown and a self-contained HTML account of a study.

The report says how much of every number is luck. It opens with the verdict
on the pick (:mod:`engine.analysis.verdict`) and the selection statistics with their
inputs (:mod:`engine.reporting.report_verdict`: the skill test, deflated Sharpe ratios
with the trial ledger's counts, per-block consistency, PBO, trials, bars, bar
frequency) and how to read them; then what ran
(data, splits and fold dates, costs, labels, purge and embargo); the Pareto
set with validation beside held-out test figures, next to the baselines (the
family's default configuration, flat, buy-and-hold), with the noise yardstick
of the best validation Sharpe; hypervolume over trials; parameter importance
(only from :data:`MIN_TRIALS_FOR_IMPORTANCE` feasible trials, with a
bootstrap standard deviation); the pick's robustness (:mod:`engine.analysis.robustness`:
cost stress of the front, a Monte Carlo of the pick beside buy-and-hold,
parameter stability from the GP, with a stability figure); failures and early
stops; and the priors.
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

from engine.analysis.results import StudyResults
from engine.analysis.robustness import (
    AXIS_POINTS,
    MC_PERCENTILES,
    NEIGHBOURHOOD_SAMPLES,
    PLATEAU_RADIUS,
    SPACE_SAMPLES,
    SPIKE_THRESHOLD,
    Robustness,
    Stability,
    study_robustness,
)
from engine.reporting.report_verdict import verdict_sections
from engine.reporting.tables import FLAG, fmt_number, front_table, html_page, html_table, sharpe_yardstick
from engine.store import REPORT_FILES, StudyStore, write_bytes
from engine.study.fold_stopping import describe_stop
from engine.weekly.report import window_sections

__all__ = [
    "IMPORTANCE_RESAMPLES",
    "MIN_TRIALS_FOR_IMPORTANCE",
    "parameter_importance",
    "report_figures",
    "robustness_tables",
    "stability_figure",
    "write_report",
]

logger = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 20
IMPORTANCE_RESAMPLES = 20
_TREES = 30
_PERMUTATIONS = 5

Section = tuple[str, Any]  # (h1 | h2 | h3 | p | verdict | list | table | kv | figure, content)


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
    described = res.evaluator.describe(facts)
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


#: The report's note on a front chosen from the model (``selection.front: posterior_mean``).
POSTERIOR_NOTE = (
    "Chosen from the GP's posterior mean (selection.front: posterior_mean): the front and the pick "
    "are the evaluated configurations that are best by the model's estimate at them, not by their "
    "observed figures; the table shows what was observed."
)


def _front_sections(res: StudyResults) -> list[Section]:
    out: list[Section] = [("h2", "Pareto set (validation vs held-out test, beside the baselines)")]
    if (yardstick := sharpe_yardstick(res)) is not None:
        out.append(("p", f"Noise yardstick: {yardstick}."))
    table, notes = front_table(res)
    if not res.front:
        out.append(("p", "Empty: no completed trial meets the constraints."))
    elif res.choice.by == "posterior_mean":
        out.append(("p", POSTERIOR_NOTE))
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
    elif res.evaluator.scores_test:
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
    for directory, info in (res.store.read_warm_start() or {}).items():
        skipped = "; ".join(f"{n} {why}" for why, n in info.get("skipped", {}).items())
        lines.append(
            f"warm start from {directory}: {info.get('attached', 0)} trial(s) attached"
            + (f", skipped: {skipped}" if skipped else "")
        )
    info = res.store.read_priors()  # DataDrivenOptimizer.to_dict() and the suggestions
    if info is not None:
        stats = ", ".join(
            f"{k} {v:.4g}" for k, v in info.get("stats", {}).items() if isinstance(v, float) and k != "n_bars"
        )
        n_bars = info.get("stats", {}).get("n_bars")
        lines.append(f"DataDrivenOptimizer statistics ({n_bars} training bars): {stats}")
        fired = info.get("fired_rules")
        if fired is not None:
            lines.append(f"rules fired: {', '.join(fired) or 'none'}")
    return lines or ["none: the study started from quasi-random (Sobol) trials"]


def _sections(
    res: StudyResults, importance: pd.DataFrame, trace: list[float], robustness: Robustness | None = None
) -> list[Section]:
    """The report as a list of blocks, rendered to Markdown and to HTML."""
    out: list[Section] = [("h1", f"Study report: {res.spec.name}"), *verdict_sections(res)]
    out += _what_was_run(res)
    out += [("h2", "Summary"), ("kv", pd.DataFrame(list(_summary(res).items()), columns=["", "value"]))]
    out += _front_sections(res)
    if robustness is not None:
        out += _robustness_sections(res, robustness)
    out.append(("h2", "Hypervolume over trials"))
    if trace:
        step = max(1, len(trace) // 12)
        rows = sorted({*range(0, len(trace), step), len(trace) - 1})
        frame = pd.DataFrame({"trials": [i + 1 for i in rows], "hypervolume": [trace[i] for i in rows]})
        out += [("figure", "hypervolume"), ("table", frame)]
    out += [("h2", "Parameter importance"), *_importance_sections(res, importance)]
    out += [("h2", "Priors and warm start"), ("list", _priors(res))]
    out += window_sections(res)
    bad = [r for r in res.records if r.status in ("failed", "early_stopped", "abandoned")]
    lines = [
        f"trial {r.index}: {r.status}"
        + (f" — {r.reason}" if r.reason else f" after {r.epochs} epochs")
        + (f"; {describe_stop(r.info['pareto_stop'])}" if isinstance(r.info.get("pareto_stop"), dict) else "")
        for r in bad
    ]
    out += [("h2", "Failed, early-stopped and abandoned trials"), ("list", lines or ["none"])]
    return out


# ----------------------------------------------------------------- robustness

ROBUSTNESS_HOW_TO_READ = (
    "How to read this: the cost stress backtests the stored out-of-sample positions again at 1x, 2x "
    "and 5x the study's fee and slippage, without retraining (1x is the trial's own validation "
    "figure); a pick whose edge disappears at 2x lives on the cost assumption. The Monte Carlo "
    "resamples the pick's out-of-sample bars in blocks (stationary bootstrap), buy-and-hold's with the "
    "same indices, and shows the 5th, 50th and 95th percentiles: a 5th percentile below buy-and-hold's "
    "median, or a wide band straddling zero, says the validation figure is one lucky path among many "
    "plausible ones. The stability curves are the GP's posterior mean ± SD of each objective along one "
    "parameter at a time through the pick; the plateau score is how much of the posterior's whole "
    f"spread the pick loses within ±{PLATEAU_RADIUS:.0%} of each numeric parameter's range (0: a "
    f"plateau, 1: as bad as anywhere); above {SPIKE_THRESHOLD:g} the pick is flagged a spike, a "
    "configuration whose neighbours do much worse and which a small change of data or seed may not "
    "reproduce; *flat* when the posterior varies less over the whole space than twice its own SD at "
    "the pick: the GP sees no difference between configurations beyond noise, and the score says nothing. "
    "None of these is a test: they say how fragile the figures above are."
)


def robustness_tables(res: StudyResults, rob: Robustness) -> dict[str, pd.DataFrame]:
    """The robustness views as display tables: ``costs``, ``monte_carlo``, ``plateau`` and
    ``curves`` (each present only when it could be computed)."""
    out: dict[str, pd.DataFrame] = {}
    if rob.costs is not None and len(rob.costs.frame):
        wide = rob.costs.wide()
        table = pd.DataFrame(
            {"": wide["row"], "trial": [fmt_number(t) if t >= 0 else "-" for t in wide["trial"]]}
        )
        catalogue = res.evaluator.catalogue
        for fig in ("return_pct", "sharpe", "max_drawdown_pct"):
            label = catalogue.label(fig)
            for k in rob.costs.multiples:
                table[f"{label} {k:g}x"] = [fmt_number(v) for v in wide[f"{fig}@{k:g}"]]
        out["costs"] = table
    if rob.monte_carlo is not None:
        frame = rob.monte_carlo.frame()
        names = {f"p{q:g}": f"{q:g}th percentile" if q != 50 else "median" for q in MC_PERCENTILES}
        out["monte_carlo"] = pd.DataFrame(
            {
                "series": frame["series"],
                "figure": frame["figure"],
                "observed": [fmt_number(v) for v in frame["observed"]],
                **{names[c]: [fmt_number(v) for v in frame[c]] for c in names},
            }
        )
    if rob.stability is not None:
        stab = rob.stability
        out["plateau"] = pd.DataFrame(
            [
                {
                    "objective": res.evaluator.catalogue.label(p.objective),
                    "posterior mean at the pick ± SD": f"{fmt_number(p.pick_mean)} ± {fmt_number(p.pick_sd)}",
                    "worst in the neighbourhood": fmt_number(p.worst),
                    "spread over the space": fmt_number(p.spread),
                    "plateau score": f"{p.score:.2f}",
                    "": f"{FLAG} spike" if p.spike else ("flat: spread < 2 SD" if p.flat else "plateau"),
                }
                for p in stab.plateaus
            ]
        )
        out["curves"] = _curve_summary(res, stab)
    return out


def _curve_summary(res: StudyResults, stab: Stability) -> pd.DataFrame:
    """Per parameter and objective: the posterior mean at the pick and the lowest and highest
    along the parameter's curve, with where they are."""
    rows = []
    for (param, obj), curve in stab.curves.groupby(["parameter", "objective"], sort=False):
        at = curve[curve["at_pick"]]
        low, high = curve.loc[curve["mean"].idxmin()], curve.loc[curve["mean"].idxmax()]
        rows.append(
            {
                "parameter": param,
                "objective": res.evaluator.catalogue.label(str(obj)),
                "at the pick": fmt_number(at["mean"].iloc[0]) if len(at) else "-",
                "lowest (at)": f"{fmt_number(low['mean'])} ({_value(low['value'])})",
                "highest (at)": f"{fmt_number(high['mean'])} ({_value(high['value'])})",
            }
        )
    return pd.DataFrame(rows)


def _value(value: Any) -> str:
    return fmt_number(value) if isinstance(value, float) else str(value)


def _robustness_sections(res: StudyResults, rob: Robustness) -> list[Section]:
    title = "Robustness"
    if rob.pick is not None:
        title += f": trial {rob.pick} ({rob.pick_name}, the configuration best writes) and the front"
    tables = robustness_tables(res, rob)
    return [
        ("h2", title),
        ("p", ROBUSTNESS_HOW_TO_READ),
        *_costs_section(rob, tables),
        *_monte_carlo_section(rob, tables),
        *_stability_section(rob, tables),
    ]


def _costs_section(rob: Robustness, tables: dict[str, pd.DataFrame]) -> list[Section]:
    out: list[Section] = [("h3", "Cost stress (the same positions, no retraining)")]
    if "costs" in tables:
        c = rob.costs
        assert c is not None
        out.append(
            (
                "p",
                f"Total return %, annualised Sharpe ratio and max drawdown % at "
                f"{', '.join(f'{k:g}x' for k in c.multiples)} the study's costs (1x: fee "
                f"{c.fee_bps:g} + slippage {c.slippage_bps:g} bps per unit of position change), by the "
                "backtest's own cost model on the stored out-of-sample positions.",
            )
        )
        out.append(("table", tables["costs"]))
        if c.missing:
            out.append(
                (
                    "p",
                    f"No positions stored for trial {', '.join(map(str, c.missing))} (a holdout or CPCV "
                    "trial, or a study made before positions.npy was written): not stressed.",
                )
            )
    else:
        out.append(("p", rob.costs_note or "Not shown."))
    return out


def _monte_carlo_section(rob: Robustness, tables: dict[str, pd.DataFrame]) -> list[Section]:
    out: list[Section] = [("h3", "Monte Carlo of the pick's out-of-sample returns")]
    mc = rob.monte_carlo
    if mc is not None:
        out.append(
            (
                "p",
                f"{mc.resamples:,} stationary-bootstrap resamples of the {mc.n_bars:,} out-of-sample bars "
                f"(mean block length {mc.block:.1f} bars, seed {mc.seed}), the pick's and buy-and-hold's "
                f"returns resampled with the same indices; the pick's Sharpe ratio beat buy-and-hold's in "
                f"{mc.sharpe_beats:.0%} of them.",
            )
        )
        out.append(("table", tables["monte_carlo"]))
    else:
        out.append(("p", rob.monte_carlo_note or "Not shown."))
    return out


def _stability_section(rob: Robustness, tables: dict[str, pd.DataFrame]) -> list[Section]:
    out: list[Section] = [("h3", "Parameter stability (the GP's view around the pick)")]
    stab = rob.stability
    if stab is not None:
        noise = ", ".join(f"{k}: {v}" for k, v in stab.noise.items())
        out.append(
            (
                "p",
                f"One GP per objective (the optimizer's, cold fit) on the {stab.n_trials} completed trials, "
                f"in the optimizer's normalized coordinates (noise {noise}). Plateau score = (posterior "
                "mean at the pick - the worst in its neighbourhood) / (max - min of the posterior mean over "
                f"the space), the neighbourhood being ±{PLATEAU_RADIUS:.0%} of each numeric parameter's "
                f"normalized range ({AXIS_POINTS} points along each, one at a time, and "
                f"{NEIGHBOURHOOD_SAMPLES} Sobol points of the box; choices held at the pick's), the space "
                f"{SPACE_SAMPLES} random configurations and the curves' points. Above {SPIKE_THRESHOLD:g}: "
                "a spike; flat: the spread over the space is below twice the SD at the pick (no structure the "
                "GP can see).",
            )
        )
        out.append(("table", tables["plateau"]))
        out.append(("figure", "stability"))
        if len(tables["curves"]):
            out += [
                ("p", "Along each parameter through the pick (the others held at the pick), posterior mean:"),
                ("table", tables["curves"]),
            ]
    else:
        out.append(("p", rob.stability_note or "Not shown."))
    return out


def stability_figure(res: StudyResults, stab: Stability) -> Any:
    """The stability curves: posterior mean ± SD of each objective (rows) along each parameter
    (columns) through the pick, the pick marked; a choice's values as points with error bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objectives = list(dict.fromkeys(stab.curves["objective"]))
    params = list(dict.fromkeys(stab.curves["parameter"]))
    fig = make_subplots(
        rows=len(objectives),
        cols=len(params),
        shared_yaxes="rows",
        column_titles=params,
        horizontal_spacing=0.02,
        vertical_spacing=0.06,
    )
    log = {p.name for p in res.spec.space.tunable if getattr(p, "log", False)}
    for i, obj in enumerate(objectives, 1):
        for j, param in enumerate(params, 1):
            curve = stab.curves[(stab.curves["objective"] == obj) & (stab.curves["parameter"] == param)]
            x = [str(v) for v in curve["value"]] if curve["categorical"].any() else list(curve["value"])
            mean = curve["mean"].to_numpy()
            for trace in _curve_traces(curve, x, obj):
                fig.add_trace(trace, row=i, col=j)
            if param in log and not curve["categorical"].any():
                fig.update_xaxes(type="log", row=i, col=j)
            at = curve["at_pick"].to_numpy()
            fig.add_trace(
                go.Scatter(
                    x=[v for v, a in zip(x, at) if a],
                    y=mean[at],
                    mode="markers",
                    showlegend=False,
                    marker={"color": "#b3403a", "size": 9, "symbol": "diamond"},
                    name="pick",
                ),
                row=i,
                col=j,
            )
        fig.update_yaxes(title_text=res.evaluator.catalogue.label(obj), row=i, col=1)
    fig.update_layout(
        title="Stability: GP posterior mean ± SD along each parameter through the pick (◆)",
        template="plotly_white",
        height=260 * len(objectives) + 80,
        width=max(700, 230 * len(params)),
    )
    return fig


def _curve_traces(curve: pd.DataFrame, x: list[Any], name: str) -> list[Any]:
    """One stability curve: a choice's values as points with error bars, a numeric parameter's
    as a line in its ± SD band."""
    import plotly.graph_objects as go

    mean, sd = curve["mean"].to_numpy(), curve["sd"].to_numpy()
    if curve["categorical"].any():
        marker = {"color": "#1f77b4"}
        return [
            go.Scatter(
                x=x, y=mean, error_y={"array": sd}, mode="markers", marker=marker, showlegend=False, name=name
            )
        ]
    band = go.Scatter(
        x=x + x[::-1],
        y=list(mean + sd) + list((mean - sd)[::-1]),
        fill="toself",
        fillcolor="rgba(31,119,180,0.18)",
        line={"width": 0},
        hoverinfo="skip",
        showlegend=False,
    )
    line = go.Scatter(x=x, y=mean, mode="lines", line={"color": "#1f77b4"}, showlegend=False, name=name)
    return [band, line]


# ----------------------------------------------------------------- rendering


def _markdown(sections: list[Section]) -> str:
    md: list[str] = []
    for kind, content in sections:
        if kind == "h1":
            md += [f"# {content}", ""]
        elif kind == "h2":
            md += [f"## {content}", ""]
        elif kind == "h3":
            md += [f"### {content}", ""]
        elif kind == "p":
            md += [content, ""]
        elif kind == "verdict":
            md += [content.sentence, ""]
        elif kind == "list":
            md += [f"- {line}" for line in content] + [""]
        elif kind in ("table", "kv"):
            md += [content.to_markdown(index=False, floatfmt=".4g"), ""]
    return "\n".join(md)


def _figures(
    res: StudyResults, importance: pd.DataFrame, trace: list[float], robustness: Robustness | None = None
) -> dict[str, list[Any]]:
    import plotly.express as px

    from engine.reporting.plots import hypervolume_figure, pareto_figures

    figs: dict[str, list[Any]] = {}
    if robustness is not None and robustness.stability is not None:
        figs["stability"] = [stability_figure(res, robustness.stability)]
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
        if kind in ("h1", "h2", "h3"):
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
    robustness = study_robustness(res)
    sections = _sections(res, importance, trace, robustness)
    markdown, page = (target / name for name in REPORT_FILES)
    write_bytes(markdown, _markdown(sections).encode())
    figs = _figures(res, importance, trace, robustness)
    write_bytes(page, _html(res, sections, figs).encode())
    logger.info("wrote %s and %s", markdown, page.name)
    return markdown
