"""DataDrivenOptimizer: market-regime statistics -> first configurations to try.

The original system's rule-based optimizer (reference §5) reads three regime
statistics of the price series and applies three rules in order (a later rule
overwrites an earlier one; comparisons are strict):

| rule | condition | model parameters | thresholds |
|---|---|---|---|
| high_volatility | volatility > 0.03 | LSTM hidden 128, d_model 512, 6 layers, lr 5e-4 | min_confidence 0.7, min_price_change 0.008 |
| trending | trend_strength > 0.05 | lr 1.5e-3, dropout 0.1 | min_confidence 0.55, max_risk_ratio 0.03 |
| mean_reverting | mean_reversion > 0.5 | dropout 0.3 | min_confidence 0.65, min_price_change 0.007 |

Differences from the original, all deliberate:

- Statistics come from the training split only and are causal: the per-bar
  series at bar t uses bars <= t. They are computed from market data by
  :mod:`objectives.regime` (``data_driven_optimizer(bars)``); this module
  holds the rules.
  The original ``mean_reversion`` looked at the *next* bar's return; here the
  setup [RSI14 < 30 or > 70, and P > MA20] is taken at t-1 and the reversal
  (a negative return) at t.
- An exact 0.0 statistic stays 0.0 (the original's ``value or default``
  turned it into the default). Too few bars is an error, not a silent fallback.
- The 0.03 volatility and 0.05 trend thresholds were set for 1-minute bars.
  Both statistics grow like the square root of the bar length for a random
  walk (the std of returns directly; the distance from a 20-bar mean as the
  std of a sum of returns), so both thresholds are multiplied by
  ``sqrt(bar_seconds / 60)``. ``mean_reversion`` is a frequency, unscaled.

:meth:`DataDrivenOptimizer.suggest` maps the rule-based point onto a family's
parameters and snaps it into a search space, for warm-starting a study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

import numpy as np

from strategies.exceptions import ConfigError
from strategies.registry import get_family
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, Param, Scalar, SearchSpace

__all__ = [
    "DEFAULT_MODEL_PARAMS",
    "DEFAULT_THRESHOLDS",
    "RULES",
    "DataDrivenOptimizer",
    "RegimeStats",
    "Rule",
    "family_defaults",
    "fit_point",
    "perturb",
    "scale_into",
]


@dataclass(frozen=True)
class RegimeStats:
    """Means over the bars of the causal per-bar regime series (:mod:`objectives.regime`)."""

    trend_strength: float
    volatility: float
    mean_reversion: float
    n_bars: int


@dataclass(frozen=True)
class Rule:
    """``stat > threshold`` (the threshold scaled to the bar length when ``scaled``) sets the updates."""

    name: str
    stat: str
    threshold: float
    scaled: bool
    model_params: Mapping[str, float]
    thresholds: Mapping[str, float]


RULES: tuple[Rule, ...] = (
    Rule(
        "high_volatility", "volatility", 0.03, True,
        {"lstm_hidden_size": 128, "transformer_d_model": 512, "transformer_num_layers": 6, "learning_rate": 5e-4},
        {"min_confidence": 0.7, "min_price_change": 0.008},
    ),
    Rule(
        "trending", "trend_strength", 0.05, True,
        {"learning_rate": 1.5e-3, "dropout_rate": 0.1},
        {"min_confidence": 0.55, "max_risk_ratio": 0.03},
    ),
    Rule(
        "mean_reverting", "mean_reversion", 0.5, False,
        {"dropout_rate": 0.3},
        {"min_confidence": 0.65, "min_price_change": 0.007},
    ),
)  # fmt: skip
"""The original rules, in order (later rules overwrite earlier ones)."""

DEFAULT_MODEL_PARAMS: Mapping[str, float] = {
    "lstm_hidden_size": 64,
    "lstm_num_layers": 2,
    "transformer_d_model": 256,
    "transformer_nhead": 8,
    "transformer_num_layers": 4,
    "learning_rate": 1e-3,
    "dropout_rate": 0.2,
}
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "min_confidence": 0.6,
    "min_price_change": 0.005,
    "max_risk_ratio": 0.02,
}


class DataDrivenOptimizer:
    """Rule-based model parameters and trading thresholds from :class:`RegimeStats`.

    Args:
        stats: regime statistics of the training split.
        bar_seconds: bar length in seconds; the volatility and trend thresholds
            are multiplied by ``sqrt(bar_seconds / 60)``.
    """

    def __init__(self, stats: RegimeStats, bar_seconds: float = 60.0) -> None:
        if not (isinstance(bar_seconds, (int, float)) and math.isfinite(bar_seconds) and bar_seconds > 0):
            raise ConfigError(f"bar_seconds must be a positive number, got {bar_seconds!r}")
        self.stats = stats
        self.bar_seconds = float(bar_seconds)
        self.scale = math.sqrt(self.bar_seconds / 60.0)
        self.model_params: dict[str, float] = dict(DEFAULT_MODEL_PARAMS)
        self.thresholds: dict[str, float] = dict(DEFAULT_THRESHOLDS)
        self.fired: tuple[str, ...] = ()
        for rule in RULES:
            if getattr(stats, rule.stat) > self.rule_threshold(rule):
                self.model_params.update(rule.model_params)
                self.thresholds.update(rule.thresholds)
                self.fired += (rule.name,)

    def rule_threshold(self, rule: Rule) -> float:
        return rule.threshold * self.scale if rule.scaled else rule.threshold

    def family_point(self, family: str) -> dict[str, float]:
        """The rule-based values under ``family``'s parameter names (before fitting a space)."""
        names = get_family(family).model_param_names
        mp = self.model_params
        point = {"learning_rate": mp["learning_rate"], "confidence_gate": self.thresholds["min_confidence"]}
        if "dropout" in names:
            point["dropout"] = mp["dropout_rate"]
        if "hidden_size" in names:
            point |= {"hidden_size": mp["lstm_hidden_size"], "num_layers": mp["lstm_num_layers"]}
        elif "d_model" in names:
            point |= {
                "d_model": mp["transformer_d_model"],
                "n_heads": mp["transformer_nhead"],
                "num_layers": mp["transformer_num_layers"],
            }
        return point

    def suggest(self, family: str, space: SearchSpace, n: int = 3, seed: int = 0) -> list[dict[str, Scalar]]:
        """``n`` points of ``space``: the rule-based point snapped into it, then seeded perturbations.

        Parameters the rules do not set start from the family's defaults
        (training recipe, then model config), snapped into the space. Every
        point satisfies ``space.contains``.
        """
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        target = {**family_defaults(family), **self.family_point(family)}
        base = fit_point(space, scale_into(space, get_family(family).gpu_space(), target))
        points = [base]
        rng = np.random.default_rng(seed)
        for _ in range(n - 1):
            points.append(perturb(space, base, rng, avoid=points))
        return points

    def to_dict(self) -> dict[str, Any]:
        return {
            "stats": asdict(self.stats),
            "bar_seconds": self.bar_seconds,
            "rule_thresholds": {r.name: self.rule_threshold(r) for r in RULES},
            "fired_rules": list(self.fired),
            "model_params": dict(self.model_params),
            "thresholds": dict(self.thresholds),
        }

    def describe(self) -> str:
        """A short multi-line text of the statistics, the rules and the suggestions."""
        s = self.stats
        lines = [
            f"regime over {s.n_bars} bars of {self.bar_seconds:g} s:",
            f"  trend_strength {s.trend_strength:.5f}  volatility {s.volatility:.5f}  "
            f"mean_reversion {s.mean_reversion:.4f}",
        ]
        for rule in RULES:
            fired = "fired" if rule.name in self.fired else "-"
            value = getattr(s, rule.stat)
            lines.append(
                f"  rule {rule.name:<16} {rule.stat} {value:.5f} > {self.rule_threshold(rule):.5f}: {fired}"
            )
        lines.append("  model_params: " + ", ".join(f"{k}={v:g}" for k, v in self.model_params.items()))
        lines.append("  thresholds:   " + ", ".join(f"{k}={v:g}" for k, v in self.thresholds.items()))
        return "\n".join(lines)


def family_defaults(family: str) -> dict[str, Any]:
    """The family's training recipe and config defaults (``head_dim`` derived)."""
    fam = get_family(family)
    defaults: dict[str, Any] = dict(fam.train_defaults)
    for name in fam.model_param_names:
        value = getattr(fam.config_cls, name, None)
        if value is not None:
            defaults[name] = value
    if "head_dim" in fam.model_param_names:
        defaults["head_dim"] = defaults["d_model"] // defaults["n_heads"]
    return defaults


# --- fitting points into a search space ------------------------------------------------------

#: Parameters that size a model: outside a (scaled-down) space they keep their relative place.
SIZE_PARAMS = ("d_model", "hidden_size", "num_layers", "seq_len", "num_experts")
#: The range of the original ``min_confidence`` anchors (reference §5.3 and §10).
MIN_CONFIDENCE_RANGE = (0.55, 0.7)


def scale_into(space: SearchSpace, original: SearchSpace, target: Mapping[str, Any]) -> dict[str, Any]:
    """Map rule and default values onto ``space`` by their relative place, where absolute values can't hold.

    - A size (d_model, hidden size, layers, sequence length, experts) outside
      ``space``'s range keeps its relative position (log scale) in the
      family's ``original`` (GPU-sized) range: with the CPU spaces the rules'
      d_model 256 is the middle of 64..512 and becomes the middle of 16..64,
      instead of every suggestion being clipped to the largest (slowest) model.
    - ``confidence_gate`` comes from the rules' ``min_confidence``, a gate on
      the original's blended confidence (action probability and predicted
      profit) with anchors 0.55..0.7; its relative position there is kept in
      the space's range of the softmax-probability gate.
    """
    out = dict(target)
    for name in SIZE_PARAMS:
        value, have, orig = out.get(name), _numeric_range(space, name), _numeric_range(original, name)
        if _is_num(value) and have and orig and not have[0] <= float(value) <= have[1]:
            out[name] = _relative(float(value), orig, have, log=True)
    gate = space.get("confidence_gate")
    gate_value = out.get("confidence_gate")
    if isinstance(gate, FloatParam) and _is_num(gate_value):
        out["confidence_gate"] = _relative(float(gate_value), MIN_CONFIDENCE_RANGE, (gate.low, gate.high))
    return out


def _numeric_range(space: SearchSpace, name: str) -> tuple[float, float] | None:
    """(low, high) of a numeric parameter, or of ``n_heads * head_dim`` for ``d_model``."""
    if name == "d_model" and name not in space and {"n_heads", "head_dim"} <= set(space.names):
        products = [float(h) * float(d) for h in _candidates(space["n_heads"]) for d in _candidates(space["head_dim"])
                    if _is_num(h) and _is_num(d)]  # fmt: skip
        return (min(products), max(products)) if products else None
    p = space.get(name)
    if isinstance(p, (IntParam, FloatParam)):
        return float(p.low), float(p.high)
    if isinstance(p, ChoiceParam) and all(_is_num(v) for v in p.values):
        return float(min(p.values)), float(max(p.values))  # type: ignore[type-var, arg-type]
    return None


def _relative(value: float, src: tuple[float, float], dst: tuple[float, float], log: bool = False) -> float:
    if log and min(*src, *dst) > 0:
        value, src, dst = (
            math.log(value),
            (math.log(src[0]), math.log(src[1])),
            (math.log(dst[0]), math.log(dst[1])),
        )
        t = (value - src[0]) / (src[1] - src[0]) if src[1] > src[0] else 0.5
        return math.exp(dst[0] + min(max(t, 0.0), 1.0) * (dst[1] - dst[0]))
    t = (value - src[0]) / (src[1] - src[0]) if src[1] > src[0] else 0.5
    return dst[0] + min(max(t, 0.0), 1.0) * (dst[1] - dst[0])


def fit_point(space: SearchSpace, target: Mapping[str, Any]) -> dict[str, Scalar]:
    """The point of ``space`` nearest to ``target``, parameter by parameter.

    Numbers are clipped (and rounded for ints), choices snapped to the nearest
    value (log distance for positive numbers); a ``d_model`` target picks the
    ``(n_heads, head_dim)`` pair of the space whose product is nearest. Missing
    targets take the middle of the range. Linear constraints are then repaired
    by moving their searched parameters; as a last resort a seeded random point
    of the space is returned.
    """
    point = {p.name: _snap(p, target.get(p.name)) for p in space.params}
    if "d_model" in target and "d_model" not in space and {"n_heads", "head_dim"} <= set(space.names):
        point |= _snap_heads(space, float(target["d_model"]), target.get("n_heads"))
    repaired = _repair(space, point)
    return repaired if repaired is not None else space.sample(np.random.default_rng(0))


def perturb(
    space: SearchSpace, base: Mapping[str, Scalar], rng: np.random.Generator, avoid: list[dict[str, Scalar]]
) -> dict[str, Scalar]:
    """A small random step from ``base`` inside ``space``, different from the points in ``avoid``."""
    for _ in range(50):
        candidate = _repair(space, {p.name: _jitter(p, base[p.name], rng) for p in space.params})
        if candidate is not None and candidate not in avoid:
            return candidate
    return space.sample(rng)


def _middle(p: Param) -> Scalar:
    if isinstance(p, FixedParam):
        return p.value
    if isinstance(p, ChoiceParam):
        return p.values[len(p.values) // 2] if p.ordered else p.values[0]
    mid = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
    return round(mid) if isinstance(p, IntParam) else float(mid)


def _is_num(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _snap(p: Param, value: Any) -> Scalar:
    if isinstance(p, FixedParam):
        return p.value
    if isinstance(p, ChoiceParam):
        for v in p.values:
            if (value == v and type(value) is type(v)) or (_is_num(value) and _is_num(v) and value == v):
                return v
        numbers = [v for v in p.values if _is_num(v)]
        if _is_num(value) and len(numbers) == len(p.values):
            return min(p.values, key=lambda v: _distance(float(value), float(v)))
        return _middle(p)
    if not _is_num(value):
        return _middle(p)
    clipped = min(max(float(value), p.low), p.high)
    return int(min(max(round(clipped), p.low), p.high)) if isinstance(p, IntParam) else clipped


def _distance(a: float, b: float) -> float:
    return abs(math.log(a) - math.log(b)) if a > 0 and b > 0 else abs(a - b)


def _candidates(p: Param) -> list[Scalar]:
    if isinstance(p, FixedParam):
        return [p.value]
    if isinstance(p, ChoiceParam):
        return list(p.values)
    if isinstance(p, IntParam) and p.high - p.low <= 256:
        return list(range(p.low, p.high + 1))
    return [_middle(p)]


def _snap_heads(space: SearchSpace, d_model: float, n_heads: Any) -> dict[str, Scalar]:
    heads_target = float(n_heads) if _is_num(n_heads) else 8.0
    pairs = [
        (h, hd) for h in _candidates(space["n_heads"]) for hd in _candidates(space["head_dim"])
        if _is_num(h) and _is_num(hd) and float(h) * float(hd) > 0
    ]  # fmt: skip
    if not pairs:
        return {}
    h, hd = min(
        pairs,
        key=lambda q: (_distance(float(q[0]) * float(q[1]), d_model), _distance(float(q[0]), heads_target)),
    )
    return {"n_heads": h, "head_dim": hd}


def _repair(space: SearchSpace, point: dict[str, Scalar]) -> dict[str, Scalar] | None:
    """Move searched numeric parameters until every linear constraint holds; None if impossible."""
    point = dict(point)
    for con in space.constraints:
        for name, coef in con.coefficients:
            excess = sum(c * float(point[n]) for n, c in con.coefficients) - con.bound
            p = space[name]
            if excess <= 1e-9:
                break
            if not isinstance(p, (IntParam, FloatParam)) or coef == 0:
                continue
            moved = float(point[name]) - excess / coef
            if isinstance(p, IntParam):
                moved = math.floor(moved + 1e-9) if coef > 0 else math.ceil(moved - 1e-9)
            point[name] = _snap(p, moved)
    return point if space.contains(point) else None


def _jitter(p: Param, value: Scalar, rng: np.random.Generator) -> Scalar:
    if isinstance(p, FixedParam):
        return p.value
    if isinstance(p, ChoiceParam):
        if not p.ordered:
            return p.values[int(rng.integers(len(p.values)))] if rng.random() < 0.25 else value
        i = p.values.index(value) + int(rng.integers(-1, 2))
        return p.values[min(max(i, 0), len(p.values) - 1)]
    if isinstance(p, IntParam):
        return _snap(p, int(value) + int(rng.integers(-1, 2)))
    x = float(value)
    if p.log:
        return _snap(p, math.exp(math.log(x) + rng.normal(0.0, 0.1 * math.log(p.high / p.low))))
    return _snap(p, x + rng.normal(0.0, 0.1 * (p.high - p.low)))
