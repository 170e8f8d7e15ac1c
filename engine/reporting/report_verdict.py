"""The report's first part: the verdict on the pick, the statistics behind it, and how to read them.

Every figure is shown with its inputs: the trials counted (in this study, on
these bars, effective), the bars and bar frequency, the bootstrap settings,
and the noise yardstick (the best Sharpe ratio the effective number of
skill-less tries would show over these bars).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from engine.analysis.results import StudyResults
from engine.analysis.verdict import ALPHA, DSR_BAR, Verdict
from engine.reporting.tables import fmt_number, fmt_prob

__all__ = ["verdict_sections"]

Section = tuple[str, Any]


def verdict_sections(res: StudyResults) -> list[Section]:
    """The verdict, its statistics, the rule, the caveats and how to read them."""
    verdict = res.verdict
    if verdict is None:
        return [
            (
                "p",
                f"No verdict: selection statistics (deflated Sharpe ratio, PBO, SPA) need the per-bar "
                f"returns of a trading objective, and {res.spec.strategy} has none.",
            )
        ]
    who = f"trial {verdict.pick}, the {verdict.pick_name}" if verdict.pick is not None else "no pick"
    return [
        ("verdict", verdict),
        ("h2", f"How much of this is luck: the verdict on {who}"),
        ("kv", _statistics(res, verdict)),
        (
            "p",
            f"Rule: evidence of an edge when the SPA p-value of all trials' returns net of their beta to the "
            f"market is below {ALPHA:g} (skill somewhere in the family, every trial accounted for), the same "
            f"test of the pick alone is below {ALPHA:g} (its own skill), and the pick's deflated Sharpe ratio "
            f"at the ledger's effective N is at least {DSR_BAR:g}. boengine best --pick names another pick "
            "and gets that pick's verdict.",
        ),
        ("p", "Caveats:"),
        ("list", verdict.caveats or ["none"]),
        ("h2", "How to read this"),
        ("list", _how_to_read(verdict)),
    ]


def _statistics(res: StudyResults, v: Verdict) -> pd.DataFrame:
    """The statistics of the verdict, each with the figures it came from."""
    rows = [
        *_skill_rows(v),
        *_member_rows(v),
        ("trials counted", f"{v.n_trials} (effective)", _counts(v)),
        *_fold_and_pbo_rows(res, v),
        *_spa_rows(v),
        *_scale_rows(res, v),
    ]
    return pd.DataFrame(rows, columns=["statistic", "value", "inputs"])


Row = tuple[str, str, str]


def _skill_rows(v: Verdict) -> list[Row]:
    rows: list[Row] = []
    s = v.skill_details
    if s:
        rows += [
            (
                "skill: all trials (SPA, returns net of beta)",
                fmt_prob(v.skill_p_family),
                f"p-value of 'no trial earns beyond a fixed long, short or flat position', over {s['n_trials']} "
                f"trials and {s['n_obs']:,} bars; stationary bootstrap, block size {s['block_size']}, "
                f"{s['reps']:,} reps",
            ),
            (
                f"skill: trial {v.pick} alone",
                fmt_prob(v.skill_p_pick),
                f"alpha {fmt_number(100 * v.alpha_annual)} % a year beyond beta {fmt_number(v.beta)} to the "
                f"market; information ratio {fmt_number(v.alpha_sharpe)} (annualised Sharpe of the hedged returns)",
            ),
        ]
    return rows


def _member_rows(v: Verdict) -> list[Row]:
    rows: list[Row] = []
    for i, m in sorted(v.members.items(), key=lambda kv: (kv[0] != v.pick, kv[0])):
        rows.append(
            (
                f"deflated Sharpe ratio, trial {i}" + (" (the pick)" if i == v.pick else ""),
                fmt_prob(m.get("dsr")),
                f"one-sided test of 'true Sharpe <= SR0': Sharpe {fmt_number(m.get('sharpe_annual'))} annualised "
                f"against SR0 {fmt_number(m.get('benchmark_annual'))}, the best of {m.get('n_trials')} "
                f"independent skill-less tries; skew {fmt_number(m.get('skew'))}, kurtosis "
                f"{fmt_number(m.get('kurtosis'))}, {m.get('n_obs', 0):,} bars",
            )
        )
    if not v.members:
        rows.append(("deflated Sharpe ratio", "-", "the Pareto front is empty"))
    return rows


def _fold_and_pbo_rows(res: StudyResults, v: Verdict) -> list[Row]:
    rows: list[Row] = []
    if v.folds:
        f = v.folds
        sharpes = " / ".join(fmt_number(x) for x in f["sharpes"])
        rows.append(
            (
                f"per-block Sharpe, trial {v.pick}",
                f"{f['positive']} of {f['folds']} blocks positive",
                f"{sharpes} (annualised, block by block)"
                + ("; one block carries the gain" if f.get("carried_by_one") else ""),
            )
        )
    p = v.pbo_details
    rows.append(
        (
            "PBO (probability of backtest overfitting)",
            fmt_prob(v.pbo),
            f"CSCV over {p.get('n_blocks', '-')} blocks, {p.get('n_combinations', 0):,} combinations of "
            f"{p.get('n_trials', v.n_returns)} trials; degradation slope {fmt_number(p.get('degradation_slope'))} "
            "(out-of-sample Sharpe per unit of in-sample Sharpe); probability of an out-of-sample loss "
            f"{fmt_prob(p.get('prob_oos_loss'))}"
            if p
            else "needs at least 2 completed trials",
        )
    )
    if res.evaluator.name == "cpcv":
        rows.append(_path_pbo_row(res))
    return rows


def _spa_rows(v: Verdict) -> list[Row]:
    rows: list[Row] = []
    for name, word in (("buy_and_hold", "buy-and-hold"), ("flat", "flat")):
        d = v.spa_details.get(name, {})
        pvalue = v.spa_p_buy_and_hold if name == "buy_and_hold" else v.spa_p_flat
        rows.append(
            (
                f"SPA of raw returns against {word} (reference)",
                fmt_prob(pvalue),
                f"mean-return differences, {d.get('n_models')} trials, {d.get('n_obs', 0):,} bars; does not decide: "
                "it carries the benchmark's volatility, and a fixed position can pass it"
                if d
                else "needs at least 20 out-of-sample bars",
            )
        )
    return rows


def _scale_rows(res: StudyResults, v: Verdict) -> list[Row]:
    rows: list[Row] = []
    bar_s = res.meta.facts.get("bar_seconds")
    rows += [
        ("out-of-sample bars", f"{v.n_obs:,}", _oos_source(res)),
        (
            "bar frequency",
            f"{v.periods_per_year:,.0f} periods a year",
            f"{bar_s:g} s bars" if isinstance(bar_s, (int, float)) else "-",
        ),
        (
            "Sharpe standard error",
            f"± {v.sharpe_se:.2f}",
            f"annualised, of a Sharpe ratio estimated over {v.n_obs:,} bars (at a true Sharpe of 0)",
        ),
        (
            f"noise yardstick: best of {v.n_trials} tries",
            f"{v.noise_best_sharpe:.2f}",
            f"the expected best annualised Sharpe of {v.n_trials} independent skill-less tries over {v.n_obs:,} bars",
        ),
    ]
    return rows


def _counts(v: Verdict) -> str:
    c = v.counts
    others = c.get("studies") or {}
    where = "; ".join(f"{n} from {d}" for d, n in others.items())
    return (
        f"{v.n_study} evaluated in this study; {v.n_bars} configurations tried on these bars"
        + (f" (with other studies on the same data: {where})" if where else "")
        + f"; {v.n_effective} effective ({c.get('n_clusters', '-')} clusters of correlated returns among "
        f"{c.get('n_with_returns', '-')} series with returns). The deflated Sharpe ratio used the effective N."
    )


def _path_pbo_row(res: StudyResults) -> tuple[str, str, str]:
    from engine.objective.cpcv_objective import path_pbo

    done = [r.index for r in res.records if r.status == "completed" and r.tried_here]
    p = path_pbo(res.store, done)
    if p is None:
        return ("PBO over CPCV's paths", "-", "needs at least 2 completed trials with paths")
    spread = f"{min(p['per_path']):.2f}–{max(p['per_path']):.2f}"
    return (
        "PBO over CPCV's paths",
        fmt_prob(p["pbo"]),
        f"the mean of CSCV's PBO on each of {len(p['per_path'])} backtest paths (range {spread}), "
        f"{p['n_blocks']} blocks, {p['n_trials']} trials",
    )


def _oos_source(res: StudyResults) -> str:
    if res.evaluator.name == "walk_forward":
        return "the walk-forward validation blocks, stitched (never the test split)"
    if res.evaluator.name == "cpcv":
        return "every pre-test bar, the mean over CPCV's backtest paths (never the test split)"
    return "the validation split (never the test split)"


def _how_to_read(v: Verdict) -> list[str]:
    return [
        "Skill test: each trial's per-bar returns are regressed on the market's; what is left (the alpha) is "
        "what no fixed long, short or flat position would have earned. Flat, buy-and-hold and short-and-hold "
        "all have no skill by this measure, so a short bias in a falling market is not an edge, and a volatile "
        "benchmark does not hide a real one. The family test accounts for every trial tried (data snooping).",
        f"Deflated Sharpe ratio (DSR): 1 minus the p-value of a one-sided test of 'the pick's true Sharpe ratio "
        f"is at most what the best of {v.n_trials} independent skill-less tries shows'; DSR >= {DSR_BAR:g} "
        "rejects that at 5 %. It is not the probability that the true Sharpe ratio is higher.",
        "Trials counted: every configuration tried on overlapping bars of the same data counts (this study, "
        "earlier windows of a weekly line, warm-start studies, other studies under the same studies root); "
        "correlated ones count as one independent try.",
        "PBO near 0.5 or above: the choice among configurations is luck; the one that looked best in sample "
        "does no better out of sample than a random pick (an edge shared by the whole family can still be real).",
        "'No evidence': do not expect the validation figures to hold live; the best of many noisy trials "
        "always looks good.",
        f"± is one standard error: any Sharpe ratio over {v.n_obs:,} bars is uncertain by about "
        f"± {v.sharpe_se:.2f} (annualised).",
    ]
