"""Search-space primitives, independent of any optimizer.

A family declares its default :class:`SearchSpace`; an experiment spec may
override single parameters; the engine translates the result to Ax. Nothing
here imports Ax, so strategies stay usable (and testable) on their own.

Structural rules between parameters (``top_k <= num_experts``) are
:class:`LinearConstraint` objects, which Ax receives as parameter constraints,
so the optimizer never proposes a configuration that cannot be built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from strategies.exceptions import ConfigError

__all__ = [
    "ChoiceParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "LinearConstraint",
    "Param",
    "SearchSpace",
]

Scalar = bool | int | float | str


@dataclass(frozen=True)
class FloatParam:
    """A float in ``[low, high]``, searched on a log scale when ``log``."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self.name, self.low, self.high, self.log)

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= float(value) <= self.high

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class IntParam:
    """An integer in ``[low, high]`` (both inclusive)."""

    name: str
    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.low, bool) or isinstance(self.high, bool):
            raise ConfigError(f"parameter '{self.name}': int bounds must be integers")
        if int(self.low) != self.low or int(self.high) != self.high:
            raise ConfigError(
                f"parameter '{self.name}': int bounds must be whole numbers, "
                f"got low={self.low}, high={self.high}"
            )
        _check_range(self.name, self.low, self.high, self.log)

    def contains(self, value: Any) -> bool:
        return _is_number(value) and float(value) == int(value) and self.low <= int(value) <= self.high

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return int(min(self.high, max(self.low, math.floor(x))))
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class ChoiceParam:
    """One of ``values``; ``ordered`` when neighbouring values are similar."""

    name: str
    values: tuple[Scalar, ...]
    ordered: bool = True

    def __post_init__(self) -> None:
        if len(self.values) < 2:
            raise ConfigError(
                f"parameter '{self.name}': a choice needs at least 2 values, got "
                f"{list(self.values)}; use a fixed value instead"
            )
        if len(set(self.values)) != len(self.values):
            raise ConfigError(f"parameter '{self.name}': choice values repeat: {list(self.values)}")
        kinds = {type(v) for v in self.values}
        if len(kinds) > 1 and not kinds <= {int, float}:
            raise ConfigError(
                f"parameter '{self.name}': choice values must share one type, got {list(self.values)}"
            )

    def contains(self, value: Any) -> bool:
        return any((value == v and type(value) is type(v)) or _num_eq(value, v) for v in self.values)

    def sample(self, rng: np.random.Generator) -> Scalar:
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class FixedParam:
    """A parameter held at one value (not searched)."""

    name: str
    value: Scalar

    def contains(self, value: Any) -> bool:
        return bool(value == self.value)

    def sample(self, rng: np.random.Generator) -> Scalar:
        return self.value


Param = FloatParam | IntParam | ChoiceParam | FixedParam


@dataclass(frozen=True)
class LinearConstraint:
    """``sum(coef * param) <= bound`` over numeric (float/int) parameters."""

    coefficients: tuple[tuple[str, float], ...]
    bound: float = 0.0

    @classmethod
    def less_equal(cls, lhs: str, rhs: str, offset: float = 0.0) -> LinearConstraint:
        """``lhs <= rhs + offset``."""
        return cls(((lhs, 1.0), (rhs, -1.0)), offset)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.coefficients)

    def satisfied(self, params: Mapping[str, Any]) -> bool:
        total = sum(c * float(params[n]) for n, c in self.coefficients)
        return total <= self.bound + 1e-9

    def __str__(self) -> str:
        """Ax's constraint syntax, e.g. ``top_k - num_experts <= 0``."""
        terms = []
        for name, coef in self.coefficients:
            sign = "-" if coef < 0 else "+"
            mag = abs(coef)
            term = name if mag == 1 else f"{mag:g}*{name}"
            terms.append((sign, term))
        text = ("-" if terms[0][0] == "-" else "") + terms[0][1]
        for sign, term in terms[1:]:
            text += f" {sign} {term}"
        return f"{text} <= {self.bound:g}"


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of parameters plus linear constraints between them."""

    params: tuple[Param, ...]
    constraints: tuple[LinearConstraint, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"search space: parameter names repeat: {dup}")
        for con in self.constraints:
            for n in con.names:
                if n not in names:
                    raise ConfigError(f"search space: constraint '{con}' names unknown parameter '{n}'")
                if not isinstance(self[n], (FloatParam, IntParam, FixedParam)):
                    raise ConfigError(
                        f"search space: constraint '{con}' needs numeric ranges, '{n}' is a choice"
                    )

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def get(self, name: str, default: Param | None = None) -> Param | None:
        return next((p for p in self.params if p.name == name), default)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def tunable(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not isinstance(p, FixedParam))

    def with_overrides(self, overrides: Iterable[Param]) -> SearchSpace:
        """Replace (or add) parameters by name, keeping the original order."""
        by_name = {p.name: p for p in overrides}
        params = [by_name.pop(p.name, p) for p in self.params]
        params.extend(by_name.values())
        space = replace(self, params=tuple(params))
        space.active_constraints()  # validates that constraints still make sense
        return space

    def active_constraints(self) -> tuple[LinearConstraint, ...]:
        """Constraints with at least one searched parameter.

        A constraint among fixed values only is checked here, once, instead of
        being sent to the optimizer.
        """
        fixed = {p.name: p.value for p in self.params if isinstance(p, FixedParam)}
        active = []
        for con in self.constraints:
            if all(n in fixed for n in con.names):
                if not con.satisfied(fixed):
                    raise ConfigError(f"search space: fixed values violate constraint '{con}'")
            else:
                active.append(con)
        return tuple(active)

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` names every parameter with a value inside its domain."""
        if set(params) != set(self.names):
            return False
        if not all(p.contains(params[p.name]) for p in self.params):
            return False
        return all(c.satisfied(params) for c in self.constraints)

    def sample(self, rng: np.random.Generator, max_tries: int = 1000) -> dict[str, Scalar]:
        """A uniform random point satisfying the constraints (rejection sampling)."""
        for _ in range(max_tries):
            point = {p.name: p.sample(rng) for p in self.params}
            if all(c.satisfied(point) for c in self.constraints):
                return point
        raise ConfigError("search space: no point satisfying the constraints found; check the bounds")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num_eq(a: Any, b: Any) -> bool:
    return _is_number(a) and _is_number(b) and float(a) == float(b)


def _check_range(name: str, low: float, high: float, log: bool) -> None:
    if not (_is_number(low) and _is_number(high)):
        raise ConfigError(f"parameter '{name}': bounds must be finite numbers, got low={low}, high={high}")
    if low >= high:
        raise ConfigError(
            f"parameter '{name}': low must be below high, got low={low}, high={high}; "
            "swap them or use a fixed value"
        )
    if log and low <= 0:
        raise ConfigError(f"parameter '{name}': a log-scale range needs low > 0, got low={low}")
