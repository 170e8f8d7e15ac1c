"""The verdict of a study: did the search find an edge, or the luck of the best of N?

Inputs, all out of sample for the search's own trials (the stitched
walk-forward blocks, or the holdout validation split), never the test split:

- the per-bar net returns of every trial evaluated here that completed
  (``trials/<i>/returns.npy``): the search's universe, `T x N`;
- the same bars for the rule baselines, flat and buy-and-hold;
- the Pareto front.

Statistics (:mod:`engine.selection`):

- **SPA** (Hansen 2005): the p-value of "no trial beats buy-and-hold" and of
  "no trial beats flat", over all N trials at once (a data-snooping-robust
  test of the whole search).
- **Deflated Sharpe ratio** of each front member: the probability that its
  true Sharpe is above what the best of N skill-less trials would show, with
  N the trials tried (completed and early-stopped) and the variance of the
  completed trials' Sharpe ratios.
- **PBO** by CSCV: how often the in-sample best trial lands in the lower half
  out of sample. It judges the *choice among* the trials, not the edge: when
  every configuration captures the same signal, PBO is near 0.5 although the
  edge is real, so it qualifies the verdict instead of deciding it.

Rule: **evidence of an edge** when both SPA p-values are below
:data:`ALPHA` and the best front member's deflated Sharpe ratio is at least
:data:`DSR_BAR`; otherwise **no evidence**.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engine.results import StudyResults

__all__ = ["ALPHA", "DSR_BAR", "Verdict", "study_verdict", "write_verdict"]

ALPHA = 0.05
DSR_BAR = 0.95
PBO_BLOCKS = 16
SPA_REPS = 1000
_FORMAT = 1


@dataclass(frozen=True)
class Verdict:
    """One sentence and the statistics behind it (``to_dict`` is what ``status --json`` shows)."""

    edge: bool
    sentence: str
    deflated_sharpe: float
    pbo: float
    spa_p_buy_and_hold: float
    spa_p_flat: float
    n_trials: int
    n_returns: int
    n_obs: int
    periods_per_year: float
    sharpe_se: float
    noise_best_sharpe: float
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    pbo_details: dict[str, Any] = field(default_factory=dict)
    spa_details: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["members"] = {str(k): v for k, v in self.members.items()}
        return _finite(out)

    def summary(self) -> dict[str, Any]:
        """The verdict object of ``status --json``."""
        return _finite(
            {
                "edge": self.edge,
                "sentence": self.sentence,
                "deflated_sharpe": self.deflated_sharpe,
                "pbo": self.pbo,
                "spa_p_buy_and_hold": self.spa_p_buy_and_hold,
                "spa_p_flat": self.spa_p_flat,
                "n_trials": self.n_trials,
                "n_obs": self.n_obs,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        values: dict[str, Any] = {k: (math.nan if v is None and k in _FLOATS else v) for k, v in data.items()}
        values["members"] = {int(k): v for k, v in data.get("members", {}).items()}
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


_FLOATS = {"deflated_sharpe", "pbo", "spa_p_buy_and_hold", "spa_p_flat", "sharpe_se", "noise_best_sharpe"}


def _finite(obj: Any) -> Any:
    """NaN and infinities as None, so that the JSON is standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _key(res: StudyResults, indices: list[int]) -> str:
    """Identifies the inputs: which trials, in which state (the cache is stale when it changes)."""
    state = [(r.index, r.status, r.epochs) for r in res.records]
    text = json.dumps({"format": _FORMAT, "state": state, "returns": indices, "seed": res.spec.seed})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def study_verdict(res: StudyResults, *, use_cache: bool = True) -> Verdict | None:
    """The study's verdict, or None when its objective has no per-bar returns (synthetic problems).

    A ``verdict.json`` written for the same trials is reused (``use_cache``).
    """
    returns = {
        r.index: a
        for r in res.records
        if r.status == "completed" and (a := res.store.read_array(r.index, "returns")) is not None
    }
    baselines = res.objective.baseline_returns(res.store) if res.objective.scores_test else {}
    if not returns or "validation" not in baselines.get("buy_and_hold", {}):
        return None
    indices = sorted(returns)
    key = _key(res, indices)
    path = res.store.dir / "verdict.json"
    if use_cache and path.is_file():
        try:
            cached = Verdict.from_dict(json.loads(path.read_text(encoding="utf-8")))
            if cached.key == key:
                return cached
        except (ValueError, TypeError, KeyError):
            pass  # recomputed below
    return _compute(res, indices, returns, baselines, key)


def _compute(
    res: StudyResults,
    indices: list[int],
    returns: dict[int, np.ndarray],
    baselines: dict[str, dict[str, tuple[dict[str, float], Any]]],
    key: str,
) -> Verdict:
    # imported here: scipy.stats takes a second, and a verdict read from verdict.json needs none of it
    from engine.selection import (
        deflated_sharpe,
        expected_max_normal,
        sharpe_ratio,
        sharpe_standard_error,
        spa_test,
    )

    matrix = np.column_stack([returns[i].astype(np.float64) for i in indices])  # T x N
    n_obs, n_with = matrix.shape
    ppy = float(res.meta.facts.get("periods_per_year") or 252.0)
    tried = sum(
        r.status in ("completed", "early_stopped") and not r.source.startswith("warm_start")
        for r in res.records
    )
    n_trials = max(tried, n_with)
    sharpes = np.array([sharpe_ratio(matrix[:, j]) for j in range(n_with)])
    members = {}
    for rec in res.front:
        if rec.index in returns:
            d = deflated_sharpe(
                returns[rec.index].astype(np.float64), sharpes, periods_per_year=ppy, n_trials=n_trials
            )
            members[rec.index] = d.to_dict()
    best_dsr = max((m["dsr"] for m in members.values()), default=math.nan)
    bh = baselines["buy_and_hold"]["validation"][1].astype(np.float64)
    seed = res.spec.seed
    spa_bh = spa_test(bh, matrix, reps=SPA_REPS, seed=seed) if n_obs >= 20 else None
    spa_flat = spa_test(np.zeros(n_obs), matrix, reps=SPA_REPS, seed=seed) if n_obs >= 20 else None
    pbo = _pbo(matrix)
    p_bh = spa_bh.pvalue if spa_bh else math.nan
    p_flat = spa_flat.pvalue if spa_flat else math.nan
    edge = bool(p_bh < ALPHA and p_flat < ALPHA and best_dsr >= DSR_BAR)
    se = sharpe_standard_error(n_obs, ppy)
    noise_best = se * expected_max_normal(n_trials)
    caveats = _caveats(pbo.pbo if pbo else math.nan, n_with, edge)
    return Verdict(
        edge=edge,
        sentence=_sentence(edge, p_bh, p_flat, best_dsr, n_trials),
        deflated_sharpe=best_dsr,
        pbo=pbo.pbo if pbo else math.nan,
        spa_p_buy_and_hold=p_bh,
        spa_p_flat=p_flat,
        n_trials=n_trials,
        n_returns=n_with,
        n_obs=n_obs,
        periods_per_year=ppy,
        sharpe_se=se,
        noise_best_sharpe=noise_best,
        members=members,
        pbo_details=pbo.to_dict() if pbo else {},
        spa_details={
            "buy_and_hold": spa_bh.to_dict() if spa_bh else {},
            "flat": spa_flat.to_dict() if spa_flat else {},
        },
        baselines={name: {split: m for split, (m, _) in parts.items()} for name, parts in baselines.items()},
        caveats=caveats,
        key=key,
    )


def _pbo(matrix: np.ndarray) -> Any:
    """PBO with 16 blocks, fewer when the sample is short; None with fewer than 2 trials."""
    from engine.selection import pbo_cscv

    n_obs, n = matrix.shape
    if n < 2:
        return None
    blocks = PBO_BLOCKS
    while blocks > 2 and n_obs // blocks < 2:
        blocks -= 2
    return pbo_cscv(matrix, n_blocks=blocks) if n_obs // blocks >= 2 else None


def _sentence(edge: bool, p_bh: float, p_flat: float, dsr: float, n: int) -> str:
    figures = f"SPA p-value {p_bh:.3g} against buy-and-hold and {p_flat:.3g} against flat, deflated Sharpe ratio {dsr:.3g}, {n} trials"
    if edge:
        return f"Evidence of an edge over buy-and-hold and flat: the best configurations beat both by more than luck across {n} trials explains ({figures})."
    return f"No evidence: the best configurations are indistinguishable from luck ({figures})."


def _caveats(pbo: float, n: int, edge: bool) -> list[str]:
    out = []
    if n < 2:
        out.append("PBO needs at least 2 completed trials")
    elif math.isfinite(pbo) and pbo >= 0.5:
        out.append(
            f"PBO {pbo:.2f}: the in-sample best trial lands in the lower half out of sample at least half of the time, "
            "so picking one configuration over another is itself mostly luck"
            + ("; the edge is in the family as a whole, not in the pick" if edge else "")
        )
    return out


def write_verdict(res: StudyResults) -> Verdict | None:
    """Compute the verdict (or reuse a current ``verdict.json``) and write it to ``verdict.json``."""
    from engine.store import write_json

    verdict = study_verdict(res)
    if verdict is not None:
        write_json(res.store.dir / "verdict.json", verdict.to_dict())
    return verdict
