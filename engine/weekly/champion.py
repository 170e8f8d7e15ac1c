"""Champion against challenger: replace the live configuration only when the new choice has earned it.

``boengine best DIR --write-config FILE --replace-if-better`` compares the
study's choice (the challenger, ``--pick``) with the configuration that is
live in ``FILE`` (the champion), re-evaluated in the same study (``run
--live-config FILE``, source ``champion``) on the same bars. The decision is
the first rule of :data:`RULES` whose condition holds; in order:

1. no live configuration yet: written when the pick has evidence of an edge
   (its own verdict, :mod:`engine.analysis.verdict`), else nothing is written;
2. the champion was not re-evaluated here, is the challenger itself, or
   failed or stopped early: kept (the rule cannot compare);
3. the pick has no evidence of an edge: kept;
4. the challenger is worse than the champion by more than one standard error
   on some objective (the error of the *difference*: both trials' per-bar
   returns resampled together, so the market path both traded cancels): kept;
5. the challenger beats the champion by more than one such standard error on
   no objective: kept;
6. the challenger does not beat the champion once its selection is accounted
   for: kept. The test is Romano–Wolf StepM (:func:`engine.analysis.skill.beats_benchmark`)
   of every completed trial of the study, each net of its beta to the
   instrument, against the champion's hedged returns, family-wise error 5 %:
   the challenger was chosen among those trials on these very returns, so it
   must be among those that beat the champion by more than choosing the best
   of them explains;
7. otherwise: replaced.

PBO is recorded with each decision but decides nothing: it measures whether
the ranking *within* the study holds out of sample, and that ranking is a
coin toss (PBO near 0.5) whenever many configurations share one real edge. As
a veto it kept 95 of 200 simulated challengers that were better by an alpha
Sharpe of 2.1 (benchmarks/RESULTS.md, "The champion rule"); rule 6 asks the
question that matters for a switch, the challenger against the champion
beyond its selection.

Writing without ``--replace-if-better`` replaces unconditionally.

Every decision is appended to ``<config stem>.history.jsonl`` beside the
config, before the config is written. A rerun of the same command (same
study, strategy, pick and challenger) finds its line, applies the decision
it records again (writing the same entry is idempotent) and appends nothing,
so a job interrupted anywhere and rerun ends with one line and the same file.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engine.analysis.results import StudyResults
from engine.analysis.verdict import Verdict
from engine.records import TrialRecord
from engine.reporting.best import strategy_entry
from engine.store import append_line, read_jsonl
from engine.weekly.live_config import history_path, live_entry, write_config

__all__ = [
    "RULES",
    "Decision",
    "Facts",
    "Rule",
    "apply_rules",
    "compare",
    "decide",
    "history_path",
    "read_history",
    "replace_if_better",
]

logger = logging.getLogger(__name__)

STEPM_SIZE = 0.05  # family-wise error of "the challenger beats the champion"
STEPM_REPS = 1000


@dataclass(frozen=True)
class Facts:
    """What the rules look at.

    Attributes:
        live: the config has an entry for the strategy.
        evidence: the pick's verdict says "evidence of an edge".
        reevaluated: the live configuration was run in this study.
        same: it is the challenger's configuration.
        champion_status: its status here ('' when not re-evaluated).
        champion_reason: why it failed or stopped, when it did.
        pbo: the study's PBO (NaN when unknown).
        comparison: per objective, challenger minus champion (signed so that > 0 is better), the
            paired standard error, and whether that is better / worse by more than one error.
        superior: the challenger is among the trials StepM finds beat the champion.
        stepm: the StepM test's figures.
    """

    live: bool
    evidence: bool
    reevaluated: bool = False
    same: bool = False
    champion_status: str = ""
    champion_reason: str | None = None
    pbo: float = math.nan
    comparison: dict[str, dict[str, float | bool]] = field(default_factory=dict)
    superior: bool = False
    stepm: dict[str, Any] = field(default_factory=dict)

    def shown(self) -> str:
        return ", ".join(f"{n} {c['difference']:+.3g} ± {c['se']:.3g}" for n, c in self.comparison.items())

    def worse(self) -> list[str]:
        return [n for n, c in self.comparison.items() if c["worse"]]


@dataclass(frozen=True)
class Rule:
    """One row of the decision table: when ``applies``, decide ``decision`` for ``reason``."""

    name: str
    applies: Callable[[Facts], bool]
    decision: Literal["replace", "keep"]
    reason: Callable[[Facts], str]


_NO_EDGE = "no evidence of an edge for the pick (see the study's report.md)"

#: The rules, first match decides (see the module docstring).
RULES: tuple[Rule, ...] = (
    Rule(
        "first deployment",
        lambda f: not f.live and f.evidence,
        "replace",
        lambda f: "no live configuration yet; the pick has evidence of an edge",
    ),
    Rule(
        "nothing to deploy",
        lambda f: not f.live,
        "keep",
        lambda f: f"no live configuration yet, and {_NO_EDGE}: nothing written",
    ),
    Rule(
        "champion not re-evaluated",
        lambda f: not f.reevaluated,
        "keep",
        lambda f: (
            "the live configuration was not run in this study (run it with --live-config FILE); "
            "left unchanged"
        ),
    ),
    Rule(
        "same configuration",
        lambda f: f.same,
        "keep",
        lambda f: "the live configuration is this study's choice again",
    ),
    Rule(
        "champion incomplete",
        lambda f: f.champion_status != "completed" or not f.comparison,
        "keep",
        lambda f: (
            f"the live configuration {f.champion_status} in this study ({f.champion_reason or 'no figures'}); "
            "the rule cannot compare, so it is left unchanged (write without --replace-if-better to replace it anyway)"
        ),
    ),
    Rule(
        "no evidence",
        lambda f: not f.evidence,
        "keep",
        lambda f: f"{_NO_EDGE}; challenger - live: {f.shown()}",
    ),
    Rule(
        "worse somewhere",
        lambda f: bool(f.worse()),
        "keep",
        lambda f: (
            f"the challenger is worse than the live configuration by more than one standard error on "
            f"{', '.join(f.worse())} ({f.shown()})"
        ),
    ),
    Rule(
        "better nowhere",
        lambda f: not any(c["better"] for c in f.comparison.values()),
        "keep",
        lambda f: (
            f"the challenger does not beat the live configuration by more than one standard error on any "
            f"objective ({f.shown()})"
        ),
    ),
    Rule(
        "not better beyond selection",
        lambda f: not f.superior,
        "keep",
        lambda f: (
            "the challenger does not beat the live configuration by more than choosing the best of "
            f"{f.stepm.get('n_models', '?')} trials explains (StepM, family-wise error {STEPM_SIZE:g}, returns net "
            f"of their beta to the market; {f.shown()})"
        ),
    ),
    Rule(
        "better",
        lambda f: True,
        "replace",
        lambda f: (
            "evidence of an edge, and the challenger beats the live configuration beyond "
            f"its selection among {f.stepm.get('n_models', '?')} trials (StepM) and is worse on no objective ({f.shown()})"
        ),
    ),
)


def apply_rules(facts: Facts, rules: Sequence[Rule] = RULES) -> tuple[Literal["replace", "keep"], str, str]:
    """(decision, reason, the rule's name) of the first rule that applies."""
    for rule in rules:
        if rule.applies(facts):
            return rule.decision, rule.reason(facts), rule.name
    raise AssertionError("the last rule applies always")


def compare(
    trials: np.ndarray,
    challenger: int,
    champion: np.ndarray,
    market: np.ndarray,
    *,
    metrics: tuple[Mapping[str, float], Mapping[str, float]],
    objectives: Sequence[tuple[str, bool]],
    periods_per_year: float,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float | bool]], dict[str, Any], bool]:
    """The comparison and the StepM test of the rules.

    Args:
        trials: `T x N` per-bar returns of the trials the challenger was chosen among.
        challenger: its column in ``trials``.
        champion: `T` per-bar returns of the champion re-measured on the same bars.
        market: `T` per-bar returns of the instrument.
        metrics: (challenger's, champion's) figures by objective name.
        objectives: (name, maximise) of each objective.

    Returns:
        (per-objective comparison, StepM figures, whether the challenger is superior).
    """
    from engine.analysis.skill import beats_benchmark, beta_hedge
    from engine.objective.pipeline import paired_difference_standard_errors

    trials = np.asarray(trials, dtype=np.float64)
    a, b = trials[:, challenger], np.asarray(champion, dtype=np.float64)
    ses = paired_difference_standard_errors(a, b, periods_per_year, seed=seed)
    comparison: dict[str, dict[str, float | bool]] = {}
    for name, maximize in objectives:
        diff = (1.0 if maximize else -1.0) * (metrics[0][name] - metrics[1][name])
        se = float(ses.get(name, math.nan))
        comparison[name] = {
            "difference": diff,
            "se": se,
            "better": bool(diff > se),
            "worse": bool(diff < -se),
        }
    hedged = beta_hedge(np.column_stack([trials, b]), market).returns
    stepm = beats_benchmark(hedged[:, -1], hedged[:, :-1], size=STEPM_SIZE, reps=STEPM_REPS, seed=seed)
    return comparison, stepm.to_dict(), challenger in stepm.superior


@dataclass(frozen=True)
class Decision:
    """One champion-vs-challenger decision, as recorded in the history."""

    decision: Literal["replace", "keep"]
    reason: str
    study: str
    window: str
    last_bar: str | None
    strategy: str
    pick: str
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    comparison: dict[str, dict[str, float | bool]]
    verdict: dict[str, Any] | None
    rule: str = ""
    stepm: dict[str, Any] = field(default_factory=dict)
    time: str = ""

    @property
    def replaces(self) -> bool:
        return self.decision == "replace"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def same_question(self, other: dict[str, Any]) -> bool:
        """Whether a history line answers the same question (study, strategy, pick, challenger)."""
        return (
            other.get("study") == self.study
            and other.get("strategy") == self.strategy
            and other.get("pick") == self.pick
            and (other.get("challenger") or {}).get("trial") == self.challenger["trial"]
        )


def read_history(config: str | Path) -> list[dict[str, Any]]:
    """The decisions recorded beside ``config``, oldest first. A line that is not a decision (cut
    short by a crash, not UTF-8, not a JSON object, without ``decision``) is skipped with a
    warning and left in the file; a history that is a link or not a regular file is refused."""
    path = history_path(config)
    return [row for row in read_jsonl(path) if _decision_line(path, row)]


def _decision_line(path: Path, row: dict[str, Any]) -> bool:
    if row.get("decision") in ("replace", "keep"):
        return True
    logger.warning("%s: a line without a decision (replace or keep); skipped", path)
    return False


def _figures(res: StudyResults, rec: TrialRecord) -> dict[str, Any]:
    return {
        "trial": rec.index,
        "source": rec.source,
        "status": rec.status,
        "params": rec.params,
        "metrics": {k: rec.metrics[k] for k in (*res.objectives.names, "num_trades") if k in rec.metrics},
        "sems": {k: rec.sems[k] for k in res.objectives.names if k in rec.sems},
    }


def _champion_record(res: StudyResults, params: dict[str, Any]) -> TrialRecord | None:
    """The re-evaluation of ``params`` in this study: the ``champion`` trial, else any trial of it."""
    same = [r for r in res.records if r.params == params and not r.attached]
    same.sort(key=lambda r: (r.source != "champion", r.status != "completed", r.index))
    return same[0] if same else None


def _compared(res: StudyResults, challenger: TrialRecord, champion: TrialRecord) -> Facts | None:
    """The comparison part of the facts, from the study's stored returns (None without them)."""
    trials = {
        r.index: a
        for r in res.records
        if r.status == "completed"
        and not r.attached
        and r.index != champion.index
        and (a := res.store.read_array(r.index, "returns")) is not None
    }
    mine = res.store.read_array(champion.index, "returns")
    baselines = res.evaluator.baseline_returns(res.store)
    market = (baselines.get("buy_and_hold") or {}).get("validation")
    if mine is None or challenger.index not in trials or market is None:
        return None
    order = sorted(trials)
    comparison, stepm, superior = compare(
        np.column_stack([trials[i] for i in order]),
        order.index(challenger.index),
        mine,
        market[1],
        metrics=(challenger.metrics, champion.metrics),
        objectives=list(zip(res.objectives.names, res.objectives.maximize)),
        periods_per_year=float(res.meta.facts.get("periods_per_year") or 252.0),
        seed=res.spec.seed,
    )
    stepm["superior"] = [order[j] for j in stepm["superior"]]  # trial indices, not columns
    return Facts(live=True, evidence=False, comparison=comparison, superior=superior, stepm=stepm)


def decide(
    res: StudyResults,
    challenger: TrialRecord,
    pick: str,
    live: dict[str, Any] | None,
    verdict: Verdict | None = None,
) -> Decision:
    """Apply :data:`RULES` (nothing is written); ``verdict``: the pick's, when the caller has it
    already (computed here otherwise)."""
    if verdict is None:
        verdict = res.verdict_for(pick)
    evidence = bool(verdict is not None and verdict.edge and verdict.pick == challenger.index)
    facts = Facts(live=live is not None, evidence=evidence, pbo=verdict.pbo if verdict else math.nan)
    champion: dict[str, Any] | None = None
    if live is not None:
        params = dict(live["hyperparameters"])
        champion = {"params": params, "from": (live.get("boengine") or {}).get("study")}
        rec = _champion_record(res, params)
        if rec is not None:
            champion.update(_figures(res, rec))
            compared = None
            if rec.status == "completed" and rec.params != challenger.params:
                compared = _compared(res, challenger, rec)
            facts = Facts(
                live=True,
                evidence=evidence,
                reevaluated=True,
                same=rec.params == challenger.params,
                champion_status=rec.status,
                champion_reason=rec.reason,
                pbo=facts.pbo,
                comparison=compared.comparison if compared else {},
                superior=compared.superior if compared else False,
                stepm=compared.stepm if compared else {},
            )
    decision, reason, rule = apply_rules(facts)
    return Decision(
        decision,
        reason,
        study=str(res.store.dir.resolve()),
        window=res.store.dir.name,
        last_bar=res.meta.facts.get("last_timestamp"),
        strategy=res.spec.strategy,
        pick=pick,
        challenger=_figures(res, challenger),
        champion=champion,
        comparison=facts.comparison,
        verdict=verdict.summary() if verdict is not None else None,
        rule=rule,
        stepm=facts.stepm,
    )


def replace_if_better(
    res: StudyResults, challenger: TrialRecord, pick: str, config: str | Path
) -> tuple[Decision, bool]:
    """Decide, record the decision in the history, and write the challenger into ``config`` when
    it replaces the champion; return the decision and whether it was recorded by an earlier run
    (which is applied again, appending nothing)."""
    key = res.spec.strategy
    live = live_entry(config, key)
    verdict = res.verdict_for(pick)  # bootstraps: computed once for the decision and the entry
    decision = decide(res, challenger, pick, live, verdict)
    recorded = next((d for d in reversed(read_history(config)) if decision.same_question(d)), None)
    if recorded is not None:
        logger.info(
            "%s: decided at %s already; applying that decision", history_path(config), recorded.get("time")
        )
        decision = Decision(**{k: recorded[k] for k in Decision.__dataclass_fields__ if k in recorded})
    else:
        decision = Decision(
            **{**decision.to_dict(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        )
        _append(history_path(config), decision.to_dict())
    if decision.replaces:
        write_config(config, key, strategy_entry(res, challenger, pick, verdict))
    return decision, recorded is not None


def _append(path: Path, line: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before the config is touched. A last line cut
    short (a kill, a full disk) is left as it is, and the new decision starts on a line of its own;
    never through a link, never into anything but a regular file."""
    append_line(path, json.dumps(line, default=str), durable=True)
