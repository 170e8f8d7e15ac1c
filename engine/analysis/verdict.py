"""The verdict on one named configuration: did the search find an edge, or the luck of the best of N?

The verdict is about the configuration ``boengine best`` writes: the pick
(the knee of the Pareto front by default; ``best --pick`` names another, and
gets its own verdict). Its inputs are out of sample for the search's own
trials (the stitched walk-forward blocks, or the holdout validation split),
never the test split:

- the per-bar net returns of every trial the study evaluated that completed
  (``trials/<i>/returns.npy``): the search's universe, `T x N`;
- the instrument's per-bar return on the same bars (buy-and-hold's);
- the trial ledger's counts (:mod:`engine.analysis.ledger`): every configuration
  tried on overlapping bars of the same data, and how many independent
  tries that is.

It says **evidence of an edge** only when all three hold:

1. **Skill in the family** (:func:`engine.analysis.skill.skill_test`): Hansen's SPA of
   all N trials' returns net of their beta to the instrument against zero has
   p < :data:`ALPHA`. Data snooping over every trial is accounted for, and
   neither a constant long or short position nor the benchmark's own
   volatility decides it (a test of mean-return differences against
   buy-and-hold would carry that volatility and reward a short bias in a
   falling market).
2. **Skill of the pick**: the same test of the pick alone, p < :data:`ALPHA`.
3. **The pick's deflated Sharpe ratio** is at least :data:`DSR_BAR`: a
   one-sided test, at 5 %, of "its true Sharpe ratio is at most what the best
   of the ledger's effective number of skill-less tries would show".

PBO (CSCV) judges the choice *among* the trials, not the edge: when every
configuration captures the same signal it is near 0.5 although the edge is
real, so it is a caveat here and a condition of the champion rule
(:mod:`engine.weekly.champion`). SPA p-values of raw returns against buy-and-hold
and against flat are shown for reference; they do not decide.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engine.analysis.ledger import TrialCounts

__all__ = [
    "ALPHA",
    "DSR_BAR",
    "Verdict",
    "VerdictInputs",
    "compute_verdict",
    "fold_consistency",
    "verdict_from_returns",
]

ALPHA = 0.05
DSR_BAR = 0.95
PBO_BLOCKS = 16
SPA_REPS = 1000
#: Version of the verdict's inputs and figures: a cached ``verdict.json`` of another format is
#: computed again.
VERDICT_FORMAT = 3


@dataclass(frozen=True)
class Verdict:
    """One sentence about the pick and the statistics behind it (``summary`` is what
    ``status --json`` shows; ``to_dict`` what ``verdict.json`` keeps)."""

    edge: bool
    sentence: str
    pick: int | None
    pick_name: str
    deflated_sharpe: float
    skill_p_family: float
    skill_p_pick: float
    alpha_annual: float
    alpha_sharpe: float
    beta: float
    sharpe_annual: float
    pbo: float
    spa_p_buy_and_hold: float
    spa_p_flat: float
    n_trials: int  # the N the deflated Sharpe ratio used: the ledger's effective N
    n_study: int
    n_bars: int
    n_effective: int
    n_returns: int
    n_obs: int
    periods_per_year: float
    sharpe_se: float
    noise_best_sharpe: float
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    folds: dict[str, Any] = field(default_factory=dict)
    skill_details: dict[str, Any] = field(default_factory=dict)
    pbo_details: dict[str, Any] = field(default_factory=dict)
    spa_details: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["members"] = {str(k): v for k, v in self.members.items()}
        return _finite(out)

    def summary(self) -> dict[str, Any]:
        """The verdict object of ``status --json`` and of a written config entry."""
        keys = (
            "edge",
            "sentence",
            "pick",
            "pick_name",
            "deflated_sharpe",
            "skill_p_family",
            "skill_p_pick",
            "alpha_annual",
            "beta",
            "pbo",
            "spa_p_buy_and_hold",
            "spa_p_flat",
            "n_trials",
            "n_study",
            "n_bars",
            "n_effective",
            "n_obs",
        )
        return _finite({k: getattr(self, k) for k in keys})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        values: dict[str, Any] = {k: (math.nan if v is None and k in _FLOATS else v) for k, v in data.items()}
        values["members"] = {int(k): v for k, v in data.get("members", {}).items()}
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


_FLOATS = {
    "deflated_sharpe",
    "skill_p_family",
    "skill_p_pick",
    "alpha_annual",
    "alpha_sharpe",
    "beta",
    "sharpe_annual",
    "pbo",
    "spa_p_buy_and_hold",
    "spa_p_flat",
    "sharpe_se",
    "noise_best_sharpe",
}


def _finite(obj: Any) -> Any:
    """NaN and infinities as None, so that the JSON is standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


@dataclass(frozen=True)
class VerdictInputs:
    """Everything the verdict is computed from (no file is read after this).

    Attributes:
        returns: `T x N` per-bar net out-of-sample returns of the trials with returns.
        trials: the trial index of each column.
        pick: the trial index of the named pick (None: nothing to judge, e.g. an empty front).
        pick_name: how it was picked (``knee``, an objective name).
        market: `T` per-bar returns of the instrument on the same bars (buy-and-hold's).
        counts: the trial ledger's counts (N in the study, on these bars, effective; V).
        periods_per_year: bars a year (annualisation).
        front: trial indices of the Pareto front (each gets its deflated Sharpe ratio).
        fold_sizes: bars of each out-of-sample block, in order (one for a holdout split).
        benchmarks: `T` per-bar returns of reference benchmarks (``flat``, ``buy_and_hold``) for
            the raw-return SPA shown beside the verdict.
        baselines: baseline metrics by name and split, for the tables.
        seed: seeds every bootstrap.
        key: identifies the inputs (a cached verdict is reused while it is unchanged).
    """

    returns: np.ndarray
    trials: tuple[int, ...]
    pick: int | None
    pick_name: str
    market: np.ndarray
    counts: TrialCounts
    periods_per_year: float
    front: tuple[int, ...] = ()
    fold_sizes: tuple[int, ...] = ()
    benchmarks: Mapping[str, np.ndarray] = field(default_factory=dict)
    baselines: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seed: int = 0
    key: str = ""


def compute_verdict(inputs: VerdictInputs) -> Verdict:
    """The rule of the module docstring on ``inputs``."""
    # imported here: scipy.stats and arch take seconds, and a cached verdict needs neither
    from engine.analysis.selection import expected_max_normal, sharpe_ratio, sharpe_standard_error

    matrix = np.asarray(inputs.returns, dtype=np.float64)
    n_obs, n_with = matrix.shape
    ppy = inputs.periods_per_year
    counts = inputs.counts
    n_eff = max(counts.n_effective, 1)
    pick = inputs.pick if inputs.pick in inputs.trials else None
    col = inputs.trials.index(pick) if pick is not None else None
    members = _members(inputs, matrix, pick, n_eff)
    skill, spa = _tests(inputs, matrix, col)
    pbo = _pbo(matrix)
    dsr = float(members[pick]["dsr"]) if pick is not None else math.nan
    p_family = skill.pvalue_family if skill else math.nan
    p_pick = skill.pvalue_pick if skill else math.nan
    edge = bool(p_family < ALPHA and p_pick < ALPHA and dsr >= DSR_BAR)
    folds = fold_consistency(matrix[:, col], inputs.fold_sizes, ppy) if col is not None else {}
    se = sharpe_standard_error(max(n_obs, 1), ppy)
    reasons = _reasons(p_family, p_pick, dsr, counts, pick)
    return Verdict(
        edge=edge,
        sentence=_sentence(edge, pick, inputs.pick_name, p_family, p_pick, dsr, counts, reasons),
        pick=pick,
        pick_name=inputs.pick_name,
        deflated_sharpe=dsr,
        skill_p_family=p_family,
        skill_p_pick=p_pick,
        alpha_annual=skill.alpha_annual if skill else math.nan,
        alpha_sharpe=skill.alpha_sharpe if skill else math.nan,
        beta=skill.beta if skill else math.nan,
        sharpe_annual=sharpe_ratio(matrix[:, col]) * math.sqrt(ppy) if col is not None else math.nan,
        pbo=pbo.pbo if pbo else math.nan,
        spa_p_buy_and_hold=spa["buy_and_hold"].pvalue if "buy_and_hold" in spa else math.nan,
        spa_p_flat=spa["flat"].pvalue if "flat" in spa else math.nan,
        n_trials=n_eff,
        n_study=counts.n_study,
        n_bars=counts.n_bars,
        n_effective=n_eff,
        n_returns=n_with,
        n_obs=n_obs,
        periods_per_year=ppy,
        sharpe_se=se,
        noise_best_sharpe=se * expected_max_normal(n_eff),
        members=members,
        counts=counts.to_dict(),
        folds=folds,
        skill_details=skill.to_dict() if skill else {},
        pbo_details=pbo.to_dict() if pbo else {},
        spa_details={name: s.to_dict() for name, s in spa.items()},
        baselines=inputs.baselines,
        reasons=reasons,
        caveats=_caveats(
            pbo.pbo if pbo else math.nan, n_with, edge, folds, skill.beta if skill else math.nan
        ),
        key=inputs.key,
    )


def fold_consistency(returns: np.ndarray, sizes: Sequence[int], periods_per_year: float) -> dict[str, Any]:
    """Per-block annualised Sharpe ratios of one trial's stitched returns, how many are positive,
    and whether one block carries the edge (the rest sum to a loss while the whole is a gain)."""
    from engine.analysis.selection import sharpe_ratio

    r = np.asarray(returns, dtype=np.float64)
    if not sizes or sum(sizes) != len(r):
        return {}
    bounds = np.cumsum([0, *sizes])
    blocks = [r[a:b] for a, b in itertools.pairwise(bounds)]
    sharpes = [sharpe_ratio(b) * math.sqrt(periods_per_year) if len(b) >= 2 else math.nan for b in blocks]
    gains = [float(b.sum()) for b in blocks]
    best = int(np.argmax(gains))
    rest = sum(g for i, g in enumerate(gains) if i != best)
    return {
        "sharpes": sharpes,
        "positive": sum(g > 0 for g in gains),
        "folds": len(blocks),
        "carried_by_one": bool(len(blocks) > 1 and sum(gains) > 0 and rest <= 0),
        "best_fold": best,
    }


def _members(
    inputs: VerdictInputs, matrix: np.ndarray, pick: int | None, n_eff: int
) -> dict[int, dict[str, float]]:
    """The deflated Sharpe ratio of each front member with returns, and of the pick."""
    from engine.analysis.selection import deflated_sharpe

    out = {}
    for i in (*inputs.front, *([pick] if pick is not None else [])):
        if i in inputs.trials and i not in out:
            out[i] = deflated_sharpe(
                matrix[:, inputs.trials.index(i)],
                np.zeros(1),
                periods_per_year=inputs.periods_per_year,
                n_trials=n_eff,
                sharpe_variance=inputs.counts.sharpe_variance,
            ).to_dict()
    return out


def _tests(inputs: VerdictInputs, matrix: np.ndarray, col: int | None) -> tuple[Any, dict[str, Any]]:
    """The skill test of the pick (None without a pick or with fewer than 20 bars) and the
    raw-return SPA against each benchmark."""
    from engine.analysis.selection import spa_test
    from engine.analysis.skill import skill_test

    enough = matrix.shape[0] >= 20
    ppy = inputs.periods_per_year
    skill = (
        skill_test(matrix, inputs.market, col, periods_per_year=ppy, reps=SPA_REPS, seed=inputs.seed)
        if col is not None and enough
        else None
    )
    spa = {
        name: spa_test(np.asarray(bench, dtype=np.float64), matrix, reps=SPA_REPS, seed=inputs.seed)
        for name, bench in inputs.benchmarks.items()
        if enough
    }
    return skill, spa


def _pbo(matrix: np.ndarray) -> Any:
    """PBO with 16 blocks, fewer when the sample is short; None with fewer than 2 trials."""
    from engine.analysis.selection import pbo_cscv

    n_obs, n = matrix.shape
    if n < 2:
        return None
    blocks = PBO_BLOCKS
    while blocks > 2 and n_obs // blocks < 2:
        blocks -= 2
    return pbo_cscv(matrix, n_blocks=blocks) if n_obs // blocks >= 2 else None


def _p(value: float) -> str:
    """A p-value or probability for a sentence: three significant digits, '< 0.001' below that."""
    return "< 0.001" if 0 <= value < 0.001 else f"{value:.3g}"


def _reasons(p_family: float, p_pick: float, dsr: float, counts: TrialCounts, pick: int | None) -> list[str]:
    """Which conditions of the rule fail, in words (empty when all hold)."""
    if pick is None:
        return ["no configuration meets the constraints, so there is nothing to pick"]
    out = []
    if not p_family < ALPHA:
        out.append(
            f"no trial earns beyond a fixed long, short or flat position by more than luck over "
            f"{counts.n_study} trials explains (SPA p {_p(p_family)})"
        )
    if not p_pick < ALPHA:
        out.append(f"the pick's return beyond its market exposure is within noise (p {_p(p_pick)})")
    if not dsr >= DSR_BAR:
        out.append(
            f"its Sharpe ratio is within what the best of {max(counts.n_effective, 1)} independent tries shows "
            f"by luck (deflated Sharpe ratio {_p(dsr)} < {DSR_BAR:g})"
        )
    return out


def _sentence(
    edge: bool,
    pick: int | None,
    pick_name: str,
    p_family: float,
    p_pick: float,
    dsr: float,
    counts: TrialCounts,
    reasons: list[str],
) -> str:
    if pick is None:
        return "No evidence: " + reasons[0] + "."
    who = (
        f"the {pick_name} (trial {pick})"
        if pick_name == "knee"
        else f"the best on {pick_name} (trial {pick})"
    )
    figures = (
        f"skill p-value {_p(p_family)} over all trials and {_p(p_pick)} for the pick, deflated Sharpe ratio "
        f"{_p(dsr)} at {max(counts.n_effective, 1)} effective of {counts.n_bars} configurations tried on these bars"
    )
    if edge:
        return (
            f"Evidence of an edge: {who} earns beyond any fixed long, short or flat position, by more than luck "
            f"across the tries explains ({figures})."
        )
    tries = f"{max(counts.n_effective, 1)} effective of {counts.n_bars} configurations tried on these bars"
    return f"No evidence: {who} is indistinguishable from luck: {'; '.join(reasons)}; {tries}."


def _caveats(pbo: float, n: int, edge: bool, folds: Mapping[str, Any], beta: float) -> list[str]:
    out = []
    if n < 2:
        out.append("PBO needs at least 2 completed trials")
    elif math.isfinite(pbo) and pbo >= 0.5:
        out.append(
            f"PBO {pbo:.2f}: the in-sample best trial lands in the lower half out of sample at least half of the time, "
            "so picking one configuration over another is itself mostly luck"
            + ("; the edge is in the family as a whole, not in the pick" if edge else "")
        )
    if folds.get("carried_by_one"):
        out.append(
            f"one block carries the pick's gain: without block {folds['best_fold']} its out-of-sample return is a loss"
        )
    elif folds and folds.get("folds", 0) > 1 and folds["positive"] * 2 < folds["folds"]:
        out.append(f"the pick gained in {folds['positive']} of {folds['folds']} blocks only")
    if math.isfinite(beta) and abs(beta) >= 0.5:
        out.append(
            f"the pick holds a net {'long' if beta > 0 else 'short'} market exposure (beta {beta:.2f}): part of "
            "its return is the market's, which the skill test removes"
        )
    return out


def verdict_from_returns(
    returns: np.ndarray,
    market: np.ndarray,
    pick: int,
    *,
    periods_per_year: float,
    seed: int = 0,
    n_bars: int | None = None,
    fold_sizes: Sequence[int] = (),
) -> Verdict:
    """The verdict on column ``pick`` of a `T x N` return matrix alone (simulations, tests): the
    ledger is the matrix itself (``n_bars``: configurations tried, default N)."""
    from engine.analysis.ledger import Ledger, _Entry

    matrix = np.asarray(returns, dtype=np.float64)
    n = matrix.shape[1]
    entries = [_Entry("", j, str(j), True, matrix[:, j]) for j in range(n)]
    entries += [_Entry("elsewhere", n + j, f"x{j}", False) for j in range(max((n_bars or n) - n, 0))]
    counts = Ledger(tuple(entries), "", len(matrix)).counts()
    return compute_verdict(
        VerdictInputs(
            returns=matrix,
            trials=tuple(range(n)),
            pick=pick,
            pick_name="knee",
            market=np.asarray(market, dtype=np.float64),
            counts=counts,
            periods_per_year=periods_per_year,
            front=(pick,),
            fold_sizes=tuple(fold_sizes),
            seed=seed,
        )
    )
