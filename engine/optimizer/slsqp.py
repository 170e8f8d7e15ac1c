"""SLSQP on many restarts at once: one batched acquisition evaluation per step.

Under linear parameter constraints BoTorch optimises the acquisition with
scipy's SLSQP, and as SLSQP has no batched form it stacks all restarts into
one joint problem (``b*q*d`` variables). The joint problem's quasi-Newton
model and line search couple restarts that have nothing to do with each
other, so the number of acquisition evaluations grows with the number of
restarts: at 100 trials of the ``mixed_hpo`` benchmark, 46 evaluations per
candidate at 4 restarts and 166 at 16 (each evaluation costs the same
~5 ms: it is overhead, not arithmetic).

:func:`gen_candidates_batched_slsqp` runs one independent SLSQP per restart,
the same algorithm and settings as ``scipy.optimize.minimize(method="SLSQP")``,
through scipy's reverse-communication routine, and evaluates the acquisition
function once per step for all restarts that need a value. The cost is then
set by the slowest restart, as in BoTorch's batched L-BFGS-B for the
unconstrained case. Its signature is BoTorch's ``gen_candidates`` contract,
so ``optimize_acqf(..., gen_candidates=gen_candidates_batched_slsqp)`` uses
it. Cases it does not cover (fixed features, equality or non-linear
constraints, options other than ``maxiter``/``ftol``, or a scipy without the
routine) go to BoTorch's ``gen_candidates_scipy``.

scipy's routine is private (``scipy.optimize._slsqplib.slsqp``, the state
dictionary of scipy >= 1.16); the driver below mirrors
``scipy.optimize._slsqp_py._minimize_slsqp`` of scipy 1.16-1.17.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.generation.gen import gen_candidates_scipy
from botorch.optim.optimize import INIT_OPTION_KEYS
from botorch.optim.parameter_constraints import make_scipy_linear_constraints
from botorch.optim.utils import columnwise_clamp
from torch import Tensor

try:  # scipy >= 1.16
    from scipy.optimize._slsqplib import slsqp as _slsqp
except ImportError:  # pragma: no cover - other scipy versions use BoTorch's path
    _slsqp = None

__all__ = ["gen_candidates_batched_slsqp"]

_SUPPORTED_OPTIONS = {"maxiter", "ftol"}


@dataclass
class _State:
    """One restart's SLSQP state, as ``_minimize_slsqp`` keeps it."""

    x: np.ndarray
    vars: dict[str, Any]
    buffer: np.ndarray
    indices: np.ndarray
    mult: np.ndarray
    C: np.ndarray
    d: np.ndarray
    fx: float = 0.0
    g: np.ndarray = field(default_factory=lambda: np.zeros(0))
    evaluated_x: np.ndarray | None = None  # the last point evaluated ...
    evaluated_g: np.ndarray | None = None  # ... and its gradient, computed with its value
    best: float = np.inf  # lowest f evaluated so far
    done: bool = False


def gen_candidates_batched_slsqp(
    initial_conditions: Tensor,
    acquisition_function: AcquisitionFunction,
    lower_bounds: float | Tensor | None = None,
    upper_bounds: float | Tensor | None = None,
    inequality_constraints: list[tuple[Tensor, Tensor, float]] | None = None,
    equality_constraints: list[tuple[Tensor, Tensor, float]] | None = None,
    nonlinear_inequality_constraints: list[Any] | None = None,
    options: dict[str, Any] | None = None,
    fixed_features: Mapping[int, float | Tensor] | None = None,
    timeout_sec: float | None = None,
    halve_after: tuple[int, ...] = (),
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """Maximise ``acquisition_function`` from each of ``b x q x d`` starting points by SLSQP.

    ``halve_after``: SLSQP iterations (increasing) after which the worse half
    of the restarts still running stops, ranked by the best value each has
    reached; e.g. ``(5, 10)``: 16 restarts run 5 iterations, the best 8 go on
    to 10, the best 4 to the end. Restarts that stop keep their last point.

    Returns the candidates (``b x q x d``) and their acquisition values
    (``b``), like ``botorch.generation.gen.gen_candidates_scipy``.
    """
    # BoTorch passes its starting-point options on ("n_thinning" is not in its INIT_OPTION_KEYS)
    ignored = {"max_optimization_problem_aggregation_size", "n_thinning", *INIT_OPTION_KEYS}
    options = {k: v for k, v in (options or {}).items() if k not in ignored}
    covered = (
        _slsqp is not None
        and not fixed_features
        and not equality_constraints
        and not nonlinear_inequality_constraints
        and timeout_sec is None
        and not kwargs
        and initial_conditions.dim() == 3
        and options.get("method", "SLSQP") == "SLSQP"
        and set(options) - {"method"} <= _SUPPORTED_OPTIONS
    )
    if not covered:
        return gen_candidates_scipy(
            initial_conditions,
            acquisition_function,
            lower_bounds=lower_bounds,
            upper_bounds=upper_bounds,
            inequality_constraints=inequality_constraints,
            equality_constraints=equality_constraints,
            nonlinear_inequality_constraints=nonlinear_inequality_constraints,
            options=options,
            fixed_features=fixed_features,
            timeout_sec=timeout_sec,
            **kwargs,
        )
    X0 = columnwise_clamp(initial_conditions, lower_bounds, upper_bounds).detach()
    b, q, d = X0.shape
    n = q * d
    lower = _bound_vector(lower_bounds, q, d, -np.inf)
    upper = _bound_vector(upper_bounds, q, d, np.inf)
    constraints = make_scipy_linear_constraints(
        shapeX=torch.Size([1, q, d]), inequality_constraints=inequality_constraints
    )
    maxiter = int(options.get("maxiter", 100))
    acc = float(options.get("ftol", 1e-6))
    states = [
        _new_state(x0, constraints, lower, upper, maxiter, acc)
        for x0 in X0.reshape(b, n).cpu().double().numpy()
    ]

    # scipy's routine marks an absent bound with nan
    lower_nan = np.where(np.isfinite(lower), lower, np.nan)
    upper_nan = np.where(np.isfinite(upper), upper, np.nan)

    def evaluate(todo: list[_State]) -> None:
        """f = -acquisition and its gradient at each state's x, in one batched call."""
        x = np.stack([np.clip(s.x, lower, upper) for s in todo])  # SLSQP may step an ULP outside
        X = torch.from_numpy(x).to(X0).view(len(todo), q, d).requires_grad_(True)
        loss = -acquisition_function(X)
        (grad,) = torch.autograd.grad(loss.sum(), X)
        values = loss.detach().cpu().double().numpy()
        grads = grad.detach().cpu().double().numpy().reshape(len(todo), n)
        for s, fx, g in zip(todo, values, grads, strict=True):
            s.evaluated_x, s.evaluated_g = s.x.copy(), g
            mode = s.vars["mode"]
            s.best = min(s.best, float(fx))
            if mode in (0, 1):  # as scipy: a value request updates f and the constraint values
                s.fx = float(fx)
                _constraint_values(s, constraints)
            if mode in (0, -1):  # a gradient request updates g and the constraint normals
                s.g = g
                _constraint_normals(s, constraints)

    evaluate(states)  # on entry (mode 0) SLSQP expects f, g and the constraints at x0
    active = list(states)
    stages = list(halve_after)
    while active:
        if stages and all(s.vars["iter"] >= stages[0] for s in active):
            stages.pop(0)
            ranked = sorted(active, key=lambda s: s.best)
            for s in ranked[math.ceil(len(ranked) / 2) :]:
                s.done = True
            active = ranked[: math.ceil(len(ranked) / 2)]
        todo = []
        for s in active:
            while True:
                _slsqp(s.vars, s.fx, s.g, s.C, s.d, s.x, s.mult, lower_nan, upper_nan, s.buffer, s.indices)
                mode = s.vars["mode"]
                known = s.evaluated_g is not None and s.evaluated_x is not None
                if mode == -1 and known and np.array_equal(s.x, s.evaluated_x):  # type: ignore[arg-type]
                    s.g = s.evaluated_g  # type: ignore[assignment]  # computed with the value here
                    _constraint_normals(s, constraints)
                    continue
                if abs(mode) == 1:
                    todo.append(s)
                else:
                    s.done = True
                break
        if todo:
            evaluate(todo)
        active = [s for s in active if not s.done]
    x = np.stack([np.clip(s.x, lower, upper) for s in states])
    candidates = torch.from_numpy(x).to(X0).view(b, q, d)
    candidates = columnwise_clamp(candidates, lower_bounds, upper_bounds, raise_on_violation=True)
    with torch.no_grad():
        values = acquisition_function(candidates)
    return candidates, values


def _bound_vector(bound: float | Tensor | None, q: int, d: int, default: float) -> np.ndarray:
    if bound is None:
        return np.full(q * d, default)
    values = torch.as_tensor(bound, dtype=torch.double).cpu().expand(q, d)
    return values.reshape(-1).numpy().copy()


def _new_state(
    x0: np.ndarray, constraints: list[Any], lower: np.ndarray, upper: np.ndarray, maxiter: int, acc: float
) -> _State:
    """Allocate as ``scipy.optimize._slsqp_py._minimize_slsqp`` does (inequality constraints only)."""
    n, m = x0.shape[0], len(constraints)
    meq = 0
    buffer_size = (
        n * (n + 1) // 2 + 3 * m * n - (m + 5 * n + 7) * meq + 9 * m + 8 * n * n + 35 * n + meq * meq + 28
    )
    if m == 0:
        buffer_size += 2 * n * (n + 1)
    variables: dict[str, Any] = {
        "acc": acc,
        "alpha": 0.0,
        "f0": 0.0,
        "gs": 0.0,
        "h1": 0.0,
        "h2": 0.0,
        "h3": 0.0,
        "h4": 0.0,
        "t": 0.0,
        "t0": 0.0,
        "tol": 10.0 * acc,
        "exact": 0,
        "inconsistent": 0,
        "reset": 0,
        "iter": 0,
        "itermax": maxiter,
        "line": 0,
        "m": m,
        "meq": meq,
        "mode": 0,
        "n": n,
    }
    return _State(
        x=np.clip(x0, lower, upper).astype(np.float64),
        vars=variables,
        buffer=np.zeros(max(buffer_size, 1), dtype=np.float64),
        indices=np.zeros(max(m + 2 * n + 2, 1), dtype=np.int32),
        mult=np.zeros(max(1, m + 2 * n + 2), dtype=np.float64),
        C=np.zeros((max(1, m), n), dtype=np.float64, order="F"),
        d=np.zeros(max(1, m), dtype=np.float64),
    )


def _constraint_values(s: _State, constraints: list[Any]) -> None:
    for row, con in enumerate(constraints):
        s.d[row] = float(np.atleast_1d(con["fun"](s.x))[0])


def _constraint_normals(s: _State, constraints: list[Any]) -> None:
    for row, con in enumerate(constraints):
        s.C[row, :] = np.asarray(con["jac"](s.x)).reshape(-1)
