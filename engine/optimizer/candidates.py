"""Acquisition optimisation that never returns an observed or pending point.

Ax asks for a batch of ``q`` trials as ``q`` single-candidate generations and
de-duplicates only against trials already on the experiment. So the same
point can come back twice within one batch (two workers train the same
configuration), and when the optimum sits on an observed point (common at
the corners of the space, where rounding of integer parameters also lands)
Ax re-generates up to 5 times and then falls back to a uniform Sobol point.
Both were seen here on BraninCurrin: 1 repeated pair and 4 Sobol fallbacks
in 22 model batches.

:class:`DistinctAcquisition` (an Ax ``Acquisition``) runs BoTorch's
``optimize_acqf`` as Ax does on the continuous path, keeps all restart end
points, and returns the best one that does not repeat an observed or pending
point (within 1e-4 in the unit cube). If every end point repeats one it
takes the best new point of ``raw_samples`` random ones instead. Restarts
are optimised side by side: by BoTorch's batched L-BFGS-B without linear
parameter constraints, by :mod:`engine.optimizer.slsqp` with them (optionally
stopping the worse half of the restarts after given iterations). Mixed or
discrete search spaces use Ax's optimizers unchanged. Registered with Ax's
storage registry on import.

Under linear parameter constraints the random points that the starting
points are chosen from are the feasible points of a scrambled Sobol
sequence (:func:`feasible_sobol`), not BoTorch's hit-and-run chain: when a
fair share of the box is feasible (``top_k <= num_experts`` keeps about
half), rejection is exact, spreads the points as evenly as Sobol does, and
costs a fraction of the chain's burn-in (the chain was ~10 % of a batch).
Where too little of the box is feasible, or constraints link the points of
a q-batch, it falls back to BoTorch's chain.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from ax.core.search_space import SearchSpaceDigest
from ax.generators.torch.botorch_modular.acquisition import Acquisition, determine_optimizer
from ax.generators.torch.botorch_modular.optimizer_argparse import optimizer_argparse
from ax.generators.utils import mk_discrete_choices
from ax.storage.botorch_modular_registry import register_acquisition
from botorch.optim.initializers import sample_q_batches_from_polytope
from botorch.optim.optimize import optimize_acqf
from botorch.optim.parameter_constraints import evaluate_feasibility
from botorch.optim.utils.acquisition_utils import fix_features
from botorch.utils.sampling import draw_sobol_samples
from torch import Tensor

from engine.optimizer.slsqp import gen_candidates_batched_slsqp

__all__ = ["DistinctAcquisition", "feasible_sobol"]

MIN_DISTANCE = 1e-4  # in the transformed (unit cube) space
_POLYTOPE_KEYS = ("n_burnin", "n_thinning")
# Sobol draws per wanted point, doubled up to the maximum before falling back to hit-and-run:
# a feasible share down to 1/64 of the box is served by rejection.
_FIRST_DRAWS, _MAX_DRAWS = 2, 64


class DistinctAcquisition(Acquisition):
    """Ax ``Acquisition`` whose continuous candidate is never an observed or pending point."""

    def optimize(  # type: ignore[override]
        self,
        n: int,
        search_space_digest: SearchSpaceDigest,
        inequality_constraints: list[tuple[Tensor, Tensor, float]] | None = None,
        equality_constraints: list[tuple[Tensor, Tensor, float]] | None = None,
        fixed_features: dict[int, float] | None = None,
        rounding_func: Any = None,
        optimizer_options: dict[str, Any] | None = None,
        candidate_set: Tensor | None = None,
        sampling_strategy: Any = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Ax's ``Acquisition.optimize`` (``n x d`` candidates, values, weights)."""
        ssd = search_space_digest
        # boengine's own option, for the batched SLSQP below; no other optimizer may see it
        optimizer_options = dict(optimizer_options or {})
        inner = dict(optimizer_options.get("options", {}))
        halve_after = tuple(inner.pop("halve_restarts_after", ()))
        slsqp_ftol = inner.pop("slsqp_ftol", None)
        optimizer_options["options"] = inner
        continuous = (
            n == 1
            and candidate_set is None
            and sampling_strategy is None
            and not equality_constraints
            and not self.options.get("prune_irrelevant_parameters", False)
            and determine_optimizer(
                search_space_digest=ssd,
                acqf=self.acqf,
                discrete_choices=mk_discrete_choices(ssd=ssd, fixed_features=fixed_features),
            )
            == "optimize_acqf"
        )
        if not continuous:
            return super().optimize(
                n=n,
                search_space_digest=ssd,
                inequality_constraints=inequality_constraints,
                equality_constraints=equality_constraints,
                fixed_features=fixed_features,
                rounding_func=rounding_func,
                optimizer_options=optimizer_options,
                candidate_set=candidate_set,
                sampling_strategy=sampling_strategy,
            )
        options = optimizer_argparse(
            self.acqf, optimizer="optimize_acqf", optimizer_options=optimizer_options
        )
        bounds = torch.tensor(ssd.bounds, dtype=self.dtype, device=self.device).t()
        options.pop("sequential", None)  # one candidate
        if not inequality_constraints:
            # Hit-and-run settings matter only under linear constraints. BoTorch 0.18 does not
            # strip "n_thinning" before calling scipy (its INIT_OPTION_KEYS lists "thinning"),
            # and any unknown option turns off its batched L-BFGS-B, which then optimises all
            # restarts as one joint problem: 3-4x the acquisition evaluations at 16 restarts.
            inner = {k: v for k, v in options.get("options", {}).items() if k not in _POLYTOPE_KEYS}
            options = {**options, "options": inner}
        else:
            # SLSQP restarts stepped side by side (engine/optimizer/slsqp.py), not as one joint problem.
            options["gen_candidates"] = partial(_batched_slsqp, halve_after=halve_after)
            if slsqp_ftol is not None:  # SLSQP's tolerance, for ours and for scipy's alike
                options["options"] = {**options.get("options", {}), "ftol": float(slsqp_ftol)}
            if not equality_constraints:
                # BoTorch passes ``generator`` on to gen_batch_initial_conditions (its ic_gen_kwargs)
                options["generator"] = partial(
                    _feasible_sobol_batches,
                    bounds=bounds,
                    inequality_constraints=inequality_constraints,
                    fixed_features=fixed_features,
                    fallback=options.get("options", {}),
                )
        ends, values = optimize_acqf(
            acq_function=self.acqf,
            bounds=bounds,
            q=1,
            inequality_constraints=inequality_constraints,
            fixed_features=fixed_features,
            post_processing_func=rounding_func,
            return_best_only=False,
            **options,
        )  # restarts x 1 x d (rounded), restarts
        if values is None:  # only when return_acq_values=False
            raise RuntimeError("optimize_acqf returned no acquisition values")
        best = self._best_new(ends, values)
        if best is None:
            ends, values = self._random_points(
                options, bounds, inequality_constraints, fixed_features, rounding_func
            )
            best = self._best_new(ends, values)
        if best is None:  # nothing new found: leave it to Ax's de-duplication
            best = int(values.argmax())
        return ends[best], values[best].reshape(1), torch.ones(1, dtype=self.dtype)

    def _best_new(self, candidates: Tensor, values: Tensor) -> int | None:
        """Index of the best of ``candidates`` (``k x 1 x d``) not at an observed or pending point."""
        known = [x for x in (self.X_observed, self.X_pending) if x is not None and x.shape[0]]
        if not known:
            return int(values.argmax())
        distance = torch.cdist(candidates.squeeze(-2), torch.cat(known)).min(dim=-1).values
        for i in torch.argsort(values, descending=True).tolist():
            if distance[i] > MIN_DISTANCE:
                return int(i)
        return None

    def _random_points(
        self,
        options: dict[str, Any],
        bounds: Tensor,
        inequality_constraints: list[tuple[Tensor, Tensor, float]] | None,
        fixed_features: dict[int, float] | None,
        rounding_func: Any,
    ) -> tuple[Tensor, Tensor]:
        """``raw_samples`` random feasible points (``n x 1 x d``, rounded) and their values."""
        n = int(options["raw_samples"])
        inner = options.get("options", {})
        if inequality_constraints:
            X = _feasible_sobol_batches(
                n, 1, None, bounds, inequality_constraints, fixed_features, fallback=inner
            )
        else:
            X = draw_sobol_samples(bounds=bounds, n=n, q=1)
        X = fix_features(X.to(bounds), fixed_features=fixed_features)
        if rounding_func is not None:
            X = rounding_func(X)
        with torch.no_grad():
            return X, self.acqf(X)


def feasible_sobol(
    n: int,
    bounds: Tensor,
    inequality_constraints: list[tuple[Tensor, Tensor, float]],
    fixed_features: dict[int, float] | None = None,
    seed: int | None = None,
) -> Tensor | None:
    """``n x d`` points of a scrambled Sobol sequence in ``bounds`` that satisfy the constraints.

    Constraints are BoTorch's intra-point ones (1-d ``indices``); fixed
    features are set before the check. Draws ``2n`` points, then twice as
    many, up to ``64n``, and keeps the first ``n`` feasible ones in sequence
    order. Returns None when fewer than ``n`` of ``64n`` draws are feasible,
    so that the caller falls back to a Markov chain on the polytope.
    """
    if any(indices.dim() != 1 for indices, _, _ in inequality_constraints):
        return None
    if fixed_features and any(torch.is_tensor(v) and v.numel() > 1 for v in fixed_features.values()):
        return None
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # from torch's seeded global generator
    draws = _FIRST_DRAWS
    while draws <= _MAX_DRAWS:
        X = draw_sobol_samples(bounds=bounds, n=n * draws, q=1, seed=seed).squeeze(-2)
        for index, value in (fixed_features or {}).items():
            X[:, index] = float(value)
        # BoTorch's check, without its tolerance: a starting point must not break a constraint
        feasible = X[evaluate_feasibility(X.unsqueeze(-2), inequality_constraints, tolerance=0.0)]
        if feasible.shape[0] >= n:
            return feasible[:n]
        draws *= 2
    return None


def _feasible_sobol_batches(
    n: int,
    q: int,
    seed: int | None,
    bounds: Tensor,
    inequality_constraints: list[tuple[Tensor, Tensor, float]],
    fixed_features: dict[int, float] | None,
    fallback: dict[str, Any],
) -> Tensor:
    """``n x q x d`` feasible random points: :func:`feasible_sobol`, else BoTorch's hit-and-run.

    The signature of BoTorch's ``generator`` for ``gen_batch_initial_conditions``
    (``n``, ``q``, ``seed``), the rest bound with ``functools.partial``;
    ``fallback`` holds the chain's ``n_burnin`` and ``n_thinning``.
    """
    X = feasible_sobol(n * q, bounds, inequality_constraints, fixed_features, seed)
    if X is not None:
        return X.view(n, q, -1)
    return sample_q_batches_from_polytope(
        n=n,
        q=q,
        bounds=bounds,
        n_burnin=int(fallback.get("n_burnin", 10_000)),
        n_thinning=int(fallback.get("n_thinning", 32)),
        seed=seed,
        inequality_constraints=inequality_constraints,
    ).to(bounds)


def _batched_slsqp(*args: Any, **kwargs: Any) -> Any:
    # looked up at call time, so that tests can wrap the driver
    return gen_candidates_batched_slsqp(*args, **kwargs)


register_acquisition(DistinctAcquisition)
