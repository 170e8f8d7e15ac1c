"""The champion rule on known returns: every rule of the table walked, equal challengers kept over many
seeded decisions, clearly better ones taken, and a history that survives a cut last line."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from engine.records import ObjectiveSet, TrialRecord
from engine.weekly.champion import RULES, Facts, _append, apply_rules, compare, decide, read_history
from objectives.backtest import equity_stats

T = 2000
OBJECTIVES = (("return_pct", True), ("sharpe", True), ("max_drawdown_pct", False))


def _metrics(r: np.ndarray) -> dict[str, float]:
    ret, sharpe, dd = equity_stats(r, 252.0)
    return {"return_pct": ret, "sharpe": sharpe, "max_drawdown_pct": dd}


def _family(seed: int, n: int, alpha: float, *, noise: float = 0.006) -> tuple[np.ndarray, np.ndarray]:
    """(market `T`, `T x n` trials): each trial times the market with a per-bar edge ``alpha``."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0002, 0.01, T)
    trials = 0.3 * market[:, None] + alpha + rng.normal(0.0, noise, (T, n))
    return market, trials


def _fake_study(
    tmp_path: Path,
    returns: dict[int, np.ndarray],
    market: np.ndarray,
    *,
    edge: bool,
    pbo: float = 0.2,
    statuses: dict[int, str] | None = None,
) -> Any:
    """A stand-in for StudyResults: trial 0 is the re-evaluated champion, the others the study's trials."""
    statuses = statuses or {}
    records = [
        TrialRecord(
            index=i,
            params={"x": i},
            status=statuses.get(i, "completed"),
            metrics=_metrics(r) if statuses.get(i, "completed") == "completed" else {},
            source="champion" if i == 0 else "model",
            reason="a planted failure" if statuses.get(i) == "failed" else None,
        )
        for i, r in returns.items()
    ]
    verdict = SimpleNamespace(edge=edge, pick=1, pbo=pbo, summary=lambda: {"edge": edge})
    evaluator = SimpleNamespace(baseline_returns=lambda store: {"buy_and_hold": {"validation": ({}, market)}})
    return SimpleNamespace(
        store=SimpleNamespace(dir=tmp_path, read_array=lambda i, name: returns.get(i)),
        meta=SimpleNamespace(facts={"periods_per_year": 252.0}),
        spec=SimpleNamespace(strategy="lstm", seed=0),
        objectives=ObjectiveSet(
            names=tuple(n for n, _ in OBJECTIVES),
            maximize=tuple(m for _, m in OBJECTIVES),
            thresholds=(-50.0, -10.0, 90.0),
        ),
        evaluator=evaluator,
        records=records,
        verdict_for=lambda pick: verdict,
    )


LIVE = {"hyperparameters": {"x": 0}}


@pytest.mark.parametrize(
    ("case", "expected", "rule"),
    [
        ("first, evidence", "replace", "first deployment"),
        ("first, no evidence", "keep", "nothing to deploy"),
        ("not re-evaluated", "keep", "champion not re-evaluated"),
        ("same", "keep", "same configuration"),
        ("champion failed", "keep", "champion incomplete"),
        ("no evidence", "keep", "no evidence"),
        ("luck", "replace", "better"),
        ("tradeoff", "keep", "worse somewhere"),
        ("equal", "keep", "not better beyond selection"),
        ("better", "replace", "better"),
    ],
)
def test_every_rule_of_the_table(case: str, expected: str, rule: str, tmp_path: Path) -> None:
    market, trials = _family(0, 6, 0.0008)
    champion = trials[:, 0]
    challengers = {
        "better": champion + 0.003 + np.random.default_rng(9).normal(0.0, 0.003, T),  # 30 bp a bar better
        "tradeoff": 3.0 * champion,  # leveraged: more return, much deeper drawdowns
    }
    challengers["luck"] = challengers["better"]  # PBO 0.7 is recorded but decides nothing
    chall = challengers.get(case, trials[:, 1])  # else an equally good configuration (not a copy)
    returns = {0: champion, 1: chall, **{i: trials[:, i] for i in range(2, 6)}}
    res = _fake_study(
        tmp_path,
        returns,
        market,
        edge=case not in ("no evidence", "first, no evidence"),
        pbo=0.7 if case == "luck" else 0.2,
        statuses={0: "failed"} if case == "champion failed" else None,
    )
    live: dict[str, Any] | None = None if case.startswith("first") else LIVE
    if case == "not re-evaluated":
        live = {"hyperparameters": {"x": 99}}
    challenger = res.records[1]
    if case == "same":
        challenger = TrialRecord(index=1, params={"x": 0}, status="completed", metrics=challenger.metrics)
    d = decide(res, challenger, "knee", live)
    assert (d.decision, d.rule) == (expected, rule), d.reason
    if case == "tradeoff":
        assert d.comparison["max_drawdown_pct"]["worse"] and d.comparison["return_pct"]["difference"] > 0
    if case in ("better", "equal"):
        assert d.stepm["n_models"] == 5 and (1 in d.stepm["superior"]) is (case == "better")


def test_the_rules_are_walked_in_order() -> None:
    """The table's conditions, not the order of checks in code, decide; the last rule always applies."""
    names = [r.name for r in RULES]
    assert names[0] == "first deployment" and names[-1] == "better" and len(set(names)) == len(names)
    assert RULES[-1].applies(Facts(live=True, evidence=False))
    # no evidence wins over a challenger that would otherwise replace
    facts = Facts(
        live=True,
        evidence=False,
        reevaluated=True,
        champion_status="completed",
        pbo=0.1,
        comparison={"sharpe": {"difference": 1.0, "se": 0.1, "better": True, "worse": False}},
        superior=True,
    )
    assert apply_rules(facts)[2] == "no evidence"
    assert apply_rules(Facts(**{**facts.__dict__, "evidence": True}))[0] == "replace"


def _decision(seed: int, *, better: bool) -> str:
    """One decision: the challenger is the best-looking of 10 trials; the champion another draw of
    the same process (equal), or of one with no edge beyond its beta (the challengers better)."""
    market, trials = _family(seed, 11, 0.0008)
    if better:
        rng = np.random.default_rng(seed + 1000)
        champion = 0.3 * market + rng.normal(0.0, 0.006, T)  # no alpha: Sharpe ~0.3 from its beta
    else:
        champion = trials[:, 10]
    trials = trials[:, :10]
    pick = int(np.argmax(trials.mean(axis=0)))  # chosen on the same returns: a selected winner
    comparison, stepm, superior = compare(
        trials,
        pick,
        champion,
        market,
        metrics=(_metrics(trials[:, pick]), _metrics(champion)),
        objectives=OBJECTIVES,
        periods_per_year=252.0,
        seed=seed,
    )
    facts = Facts(
        live=True,
        evidence=True,
        reevaluated=True,
        champion_status="completed",
        pbo=0.3,
        comparison=comparison,
        superior=superior,
        stepm=stepm,
    )
    return apply_rules(facts)[0]


def test_equal_challengers_rarely_replace_and_better_ones_do() -> None:
    """Over 20 seeded decisions each: equally good challengers chosen among 10 (selection included)
    replace the champion at most once; challengers with an alpha Sharpe of ~2 against a champion
    with none replace it at least 16 times."""
    equal = [_decision(s, better=False) for s in range(20)]
    better = [_decision(s, better=True) for s in range(20)]
    assert equal.count("replace") <= 1, equal
    assert better.count("replace") >= 16, better


def test_a_cut_last_line_does_not_swallow_the_next_decision(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    path = tmp_path / "c.history.jsonl"
    _append(path, {"decision": "keep", "n": 1})
    with open(path, "a") as f:
        f.write('{"decision": "repl')  # a kill mid-write
    _append(path, {"decision": "replace", "n": 2})
    _append(path, {"decision": "keep", "n": 3})
    assert [h["n"] for h in read_history(config)] == [1, 2, 3]
    assert path.read_text().splitlines()[1] == '{"decision": "repl'  # the damaged line is kept, not lost
    assert json.loads(path.read_text().splitlines()[2])["n"] == 2
