"""The front beside its baselines, as tables, and the page style shared by every HTML view.

:func:`comparison_frame` and :func:`front_table` put the Pareto front's
validation and held-out test figures beside the baselines (the family's
default configuration, a trial like any other; flat and buy-and-hold);
:func:`sharpe_yardstick` is the noise yardstick of the best validation Sharpe;
:func:`html_page` / :func:`html_table` are the report's page style.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from engine.analysis.results import StudyResults

__all__ = [
    "BASELINE_NAMES",
    "FLAG",
    "PAGE_STYLE",
    "TRADING_METRICS",
    "compared_metrics",
    "comparison_frame",
    "fmt_number",
    "fmt_prob",
    "front_table",
    "html_page",
    "html_table",
    "sharpe_yardstick",
]


FLAG = "⚠"
TRADING_METRICS = ("sharpe", "return_pct", "max_drawdown_pct", "num_trades")
BASELINE_NAMES = {
    "default": "family default",
    "flat": "flat",
    "buy_and_hold": "buy and hold",
    "short_and_hold": "short and hold",
}

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


def compared_metrics(res: StudyResults) -> list[str]:
    """Metrics shown for validation and test: Sharpe, return, drawdown, trades, then other objectives."""
    first = list(TRADING_METRICS) if res.evaluator.scores_test else []
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
        row["test_sharpe_se"] = test.get("sharpe_se", math.nan)
        row["dsr"] = members.get(rec.index, {}).get("dsr", math.nan)
        row["blocks"] = _blocks_won(rec)
        rows.append(row)
    for name, splits in (verdict.baselines if verdict else {}).items():
        row = {"row": f"baseline: {BASELINE_NAMES.get(name, name)}", "kind": name, "trial": None}
        for m in metrics:
            row[f"val_{m}"] = splits.get("validation", {}).get(m, math.nan)
            row[f"test_{m}"] = splits.get("test", {}).get(m, math.nan)
        test_se = splits.get("test", {}).get("sharpe_se", math.nan)
        rows.append(
            {**row, "val_sharpe_se": math.nan, "test_sharpe_se": test_se, "dsr": math.nan, "blocks": ""}
        )
    columns = ["row", "kind", "trial", *(f"{s}_{m}" for s in ("val", "test") for m in metrics)]
    df = pd.DataFrame(rows, columns=[*columns, "val_sharpe_se", "test_sharpe_se", "dsr", "blocks"])
    df["trial"] = df["trial"].astype("Int64")
    return df


def _blocks_won(rec: Any) -> str:
    """'3/4': out-of-sample blocks (walk-forward folds) with a positive Sharpe ratio ('' without folds)."""
    folds = rec.info.get("folds") or []
    sharpes = [f.get("sharpe") for f in folds if isinstance(f, dict)]
    values = [float(x) for x in sharpes if isinstance(x, (int, float))]
    if not values or len(values) != len(sharpes):
        return ""
    return f"{sum(x > 0 for x in values)}/{len(values)}"


def fmt_number(value: Any, digits: int = 3) -> str:
    """A figure for a table: '-' for missing, thousands separators from 1,000, else ``digits`` significant."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "-"
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 1000 or (v.is_integer() and abs(v) >= 10) else f"{v:.{digits}g}"


def fmt_prob(value: Any) -> str:
    """A probability or p-value with three decimals ('-' when missing)."""
    return f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _metric_header(res: StudyResults, split: str, name: str) -> str:
    """'test max drawdown %': the split and the metric's label from the objective's catalogue."""
    return f"{split} {res.evaluator.catalogue.label(name)}"


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
            if m == "sharpe":
                cells = [
                    c if c == "-" or pd.isna(se) else f"{c} ± {fmt_number(se)}"
                    for c, se in zip(cells, df[f"{split}_sharpe_se"])
                ]
            if m == "num_trades" and split == "test" and bound is not None:
                low = [k in ("front", "default") and v < bound for k, v in zip(df["kind"], col)]
                cells = [f"{FLAG} {c}" if flag else c for c, flag in zip(cells, low)]
                flagged += [str(t) for t, flag in zip(df["trial"], low) if flag]
            header = _metric_header(res, "validation" if split == "val" else "test", m)
            out[header + (" ± SE" if m == "sharpe" else "")] = cells
    out["DSR"] = [fmt_prob(v) for v in df["dsr"]]
    out["blocks won"] = [b or "-" for b in df["blocks"]]
    out = out[[c for c in out.columns if c == "" or (out[c] != "-").any()]]
    notes = []
    if flagged:
        notes.append(
            f"{FLAG} test trades below the study's constraint num_trades >= {bound:g} "
            f"(trial {', '.join(flagged)}): the test figure rests on too few trades to say much."
        )
    return out, notes


def sharpe_yardstick(res: StudyResults) -> str | None:
    """'best validation Sharpe 3.9 (± 1.4 standard error over 3,146 bars; the best of 12 independent
    skill-less tries is expected near 3.4)'; None without a verdict or a Sharpe ratio."""
    verdict = res.verdict
    pool = [r for r in res.records if res.objectives.feasible(r)] or [
        r for r in res.records if r.status == "completed"
    ]
    values = [r.metrics["sharpe"] for r in pool if math.isfinite(r.metrics.get("sharpe", math.nan))]
    if verdict is None or not values:
        return None
    return (
        f"best validation Sharpe {max(values):.2f} (± {verdict.sharpe_se:.2f} standard error over "
        f"{verdict.n_obs:,} bars; the best of {verdict.n_trials} independent skill-less tries, the trial "
        f"ledger's effective count, is expected near {verdict.noise_best_sharpe:.2f})"
    )


# ----------------------------------------------------------------- plots
