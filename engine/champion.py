"""Champion against challenger: replace the live configuration only on evidence.

``boengine best DIR --write-config FILE --replace-if-better`` compares the
study's choice (the challenger, ``--pick``) with the configuration that is
live in ``FILE`` (the champion), re-evaluated in the same study (``run
--live-config FILE``, source ``champion``). The challenger replaces the
champion only when

1. the study's verdict is "evidence of an edge", and
2. on the study's out-of-fold objectives it beats the champion by more than
   one standard error on at least one objective and is not worse by more
   than one on any. The standard error is that of the *difference*: both
   trials' per-bar returns over the same bars are resampled together
   (:func:`objectives.noise.paired_difference_standard_errors`), so the
   market path both traded cancels.

When the file has no entry for the strategy yet, the first configuration
is written on evidence alone. A champion that was not re-evaluated, failed
or stopped early is kept (the rule cannot compare); writing without
``--replace-if-better`` replaces it unconditionally.

Every decision is appended to ``<config stem>.history.jsonl`` beside the
config, before the config is written. A rerun of the same command (same
study, strategy and challenger) finds its line, applies the decision it
records again (writing the same entry is idempotent) and appends nothing,
so a job interrupted anywhere and rerun ends with one line and the same file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from engine.best import strategy_entry, write_config
from engine.records import TrialRecord
from engine.results import StudyResults
from engine.verdict import Verdict, study_verdict
from engine.windows import live_entry

__all__ = ["Decision", "decide", "history_path", "read_history", "replace_if_better"]

logger = logging.getLogger(__name__)


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


def history_path(config: str | Path) -> Path:
    """``config/strategy_config.json`` -> ``config/strategy_config.history.jsonl``."""
    p = Path(config)
    return p.with_name(f"{p.stem}.history.jsonl")


def read_history(config: str | Path) -> list[dict[str, Any]]:
    """The decisions recorded beside ``config``, oldest first (a line cut short by a crash is
    skipped)."""
    path = history_path(config)
    if not path.is_file():
        return []
    lines = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s line %d: not JSON (a write cut short?); skipped", path, n)
    return lines


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
    same = [r for r in res.records if r.params == params and not r.source.startswith("warm_start")]
    same.sort(key=lambda r: (r.source != "champion", r.status != "completed", r.index))
    return same[0] if same else None


def _comparison(
    res: StudyResults, challenger: TrialRecord, champion: TrialRecord
) -> dict[str, dict[str, float | bool]]:
    """Per objective: challenger minus champion (signed so that > 0 is better), its paired
    standard error, and whether it is better / worse by more than that."""
    from objectives.noise import paired_difference_standard_errors

    a = res.store.read_array(challenger.index, "returns")
    b = res.store.read_array(champion.index, "returns")
    ppy = float(res.meta.facts.get("periods_per_year") or 252.0)
    if a is not None and b is not None and a.shape == b.shape and len(a) >= 2:
        ses = paired_difference_standard_errors(a, b, ppy, seed=res.spec.seed)
    else:  # no per-bar returns: the two trials' own errors, as if independent
        ses = {
            n: math.hypot(challenger.sems.get(n, math.nan), champion.sems.get(n, math.nan))
            for n in res.objectives.names
        }
    out: dict[str, dict[str, float | bool]] = {}
    for name, maximize in zip(res.objectives.names, res.objectives.maximize):
        sign = 1.0 if maximize else -1.0
        diff = sign * (challenger.metrics[name] - champion.metrics[name])
        se = float(ses.get(name, math.nan))
        out[name] = {
            "difference": diff,
            "se": se,
            "better": bool(diff > se),
            "worse": bool(diff < -se),
        }
    return out


def decide(
    res: StudyResults,
    challenger: TrialRecord,
    pick: str,
    live: dict[str, Any] | None,
    verdict: Verdict | None = None,
) -> Decision:
    """Apply the rule of the module docstring (nothing is written); ``verdict``: the study's,
    when the caller has it already (computed here otherwise)."""
    if verdict is None:
        verdict = study_verdict(res)
    evidence = bool(verdict is not None and verdict.edge)
    facts: dict[str, Any] = {
        "study": str(res.store.dir.resolve()),
        "window": res.store.dir.name,
        "last_bar": res.meta.facts.get("last_timestamp"),
        "strategy": res.spec.strategy,
        "pick": pick,
        "challenger": _figures(res, challenger),
        "verdict": verdict.summary() if verdict is not None else None,
    }
    no_edge = "no evidence of an edge in this study (see its report.md)"
    if live is None:
        if evidence:
            return Decision(
                "replace",
                "no live configuration yet; the study has evidence of an edge",
                champion=None,
                comparison={},
                **facts,
            )
        return Decision(
            "keep",
            f"no live configuration yet, and {no_edge}: nothing written",
            champion=None,
            comparison={},
            **facts,
        )
    params = dict(live["hyperparameters"])
    rec = _champion_record(res, params)
    champion = {"params": params, "from": (live.get("boengine") or {}).get("study")}
    if rec is None:
        return Decision(
            "keep",
            "the live configuration was not run in this study (run it with --live-config FILE); "
            "left unchanged",
            champion=champion,
            comparison={},
            **facts,
        )
    champion.update(_figures(res, rec))
    if rec.params == challenger.params:
        return Decision(
            "keep",
            "the live configuration is this study's choice again",
            champion=champion,
            comparison={},
            **facts,
        )
    if rec.status != "completed" or not all(n in rec.metrics for n in res.objectives.names):
        return Decision(
            "keep",
            f"the live configuration {rec.status} in this study ({rec.reason or 'no figures'}); "
            "the rule cannot compare, so it is left unchanged (write without --replace-if-better "
            "to replace it anyway)",
            champion=champion,
            comparison={},
            **facts,
        )
    comparison = _comparison(res, challenger, rec)
    shown = ", ".join(f"{n} {c['difference']:+.3g} ± {c['se']:.3g}" for n, c in comparison.items())
    if not evidence:
        return Decision(
            "keep",
            f"{no_edge}; challenger - live: {shown}",
            champion=champion,
            comparison=comparison,
            **facts,
        )
    worse = [n for n, c in comparison.items() if c["worse"]]
    if worse:
        return Decision(
            "keep",
            f"the challenger is worse than the live configuration by more than one standard error "
            f"on {', '.join(worse)} ({shown})",
            champion=champion,
            comparison=comparison,
            **facts,
        )
    if not any(c["better"] for c in comparison.values()):
        return Decision(
            "keep",
            f"the challenger does not beat the live configuration by more than one standard error "
            f"on any objective ({shown})",
            champion=champion,
            comparison=comparison,
            **facts,
        )
    better = [n for n, c in comparison.items() if c["better"]]
    return Decision(
        "replace",
        f"evidence of an edge, and the challenger beats the live configuration on {', '.join(better)} "
        f"by more than one standard error ({shown})",
        champion=champion,
        comparison=comparison,
        **facts,
    )


def replace_if_better(
    res: StudyResults, challenger: TrialRecord, pick: str, config: str | Path
) -> tuple[Decision, bool]:
    """Decide, record the decision in the history, and write the challenger into ``config`` when
    it replaces the champion; return the decision and whether it was recorded by an earlier run
    (which is applied again, appending nothing)."""
    key = res.spec.strategy
    live = live_entry(config, key)
    verdict = study_verdict(res)  # a bootstrap: computed once for the decision and the entry
    decision = decide(res, challenger, pick, live, verdict)
    recorded = next((d for d in reversed(read_history(config)) if decision.same_question(d)), None)
    if recorded is not None:
        logger.info(
            "%s: decided at %s already; applying that decision", history_path(config), recorded["time"]
        )
        decision = Decision(**{k: recorded[k] for k in Decision.__dataclass_fields__})
    else:
        decision = Decision(
            **{**decision.to_dict(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        )
        _append(history_path(config), decision.to_dict())
    if decision.replaces:
        write_config(config, key, strategy_entry(res, challenger, pick, verdict))
    return decision, recorded is not None


def _append(path: Path, line: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before the config is touched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
