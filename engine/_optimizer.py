"""Acquisition optimisation that carries its restarts across the candidates of a batch.

Ax asks for a batch of ``q`` trials as ``q`` single-candidate generations with
the same fitted model; each adds the previous candidate as a pending point
and re-optimises the acquisition function from fresh random starting points.
Adding one pending point changes the acquisition function only near that
point, so the optimizer's other local optima from the previous candidate are
still good places to start.

:class:`CarryOverAcquisition` (an Ax ``Acquisition``) does exactly that on the
continuous path (``optimize_acqf``): the first candidate starts from the best
of ``raw_samples`` random points as usual; each following candidate of the
same model starts from the previous candidate's restart end points, except
those at a pending point, topped up (by BoTorch) from the best of
``raw_samples // 2`` fresh random points.

Of the restart end points it returns the best one that does not repeat an
observed or pending point (within 1e-4 in the unit cube). Ax only
de-duplicates against trials already on the experiment: within a batch the
same point could come back twice, and a repeat of an observed point makes Ax
re-generate up to 5 times and then fall back to a Sobol point. Mixed or
discrete search spaces use Ax's optimizers unchanged. Acquisition option
``carry_over_restarts=False`` keeps the de-duplication but starts every
candidate afresh.
Registered with Ax's storage registry on import.
"""

from __future__ import annotations

from typing import Any

import torch
from ax.core.search_space import SearchSpaceDigest
from ax.generators.torch.botorch_modular.acquisition import Acquisition, determine_optimizer
from ax.generators.torch.botorch_modular.optimizer_argparse import optimizer_argparse
from ax.generators.utils import mk_discrete_choices
from ax.storage.botorch_modular_registry import register_acquisition
from botorch.optim.optimize import optimize_acqf
from torch import Tensor

__all__ = ["CarryOverAcquisition"]

_STATE = "_boengine_restart_ends"  # attribute on the fitted model: (pending rows, restart end points)


class CarryOverAcquisition(Acquisition):
    """Ax ``Acquisition`` whose continuous optimiser reuses restarts across a batch."""

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
        """Ax's ``Acquisition.optimize``; one continuous candidate starts from carried-over restarts."""
        ssd = search_space_digest
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
        options = optimizer_argparse(self.acqf, optimizer="optimize_acqf", optimizer_options=optimizer_options)
        options.pop("sequential", None)
        kwargs = {
            "bounds": torch.tensor(ssd.bounds, dtype=self.dtype, device=self.device).t(),
            "inequality_constraints": inequality_constraints,
            "fixed_features": fixed_features,
            "rounding_func": rounding_func,
        }
        carried = self._carried_over(int(options["num_restarts"]))
        if not self.options.get("carry_over_restarts", True):
            carried = carried[:0]
        ends, values = self._restarts(carried, options, **kwargs)
        best = self._best_new(ends, values)
        if best is None and carried.shape[0]:  # every end point repeats a known point: start afresh
            ends, values = self._restarts(carried[:0], options, **kwargs)
            best = self._best_new(ends, values)
        if best is None:  # leave it to Ax's de-duplication (and its Sobol fallback)
            best = int(values.argmax())
        pending = self.X_pending if self.X_pending is not None else ends.new_zeros(0, ends.shape[-1])
        object.__setattr__(self.surrogate.model, _STATE, (pending.detach().clone(), ends.detach()))
        return ends[best], values[best].reshape(1), torch.ones(1, dtype=self.dtype)

    def _restarts(
        self, carried: Tensor, options: dict[str, Any], bounds: Tensor, rounding_func: Any, **kwargs: Any
    ) -> tuple[Tensor, Tensor]:
        """All restart end points (``restarts x 1 x d``, rounded) and their values (``restarts``)."""
        options = dict(options)
        if carried.shape[0]:  # BoTorch tops the carried points up from fresh random ones
            options["raw_samples"] = max(int(options["raw_samples"]) // 2, 4)
        ends, values = optimize_acqf(
            acq_function=self.acqf,
            bounds=bounds,
            q=1,
            post_processing_func=rounding_func,
            batch_initial_conditions=carried if carried.shape[0] else None,
            return_best_only=False,
            **kwargs,
            **options,
        )
        if values is None:  # only when return_acq_values=False
            raise RuntimeError("optimize_acqf returned no acquisition values")
        return ends, values

    def _best_new(self, ends: Tensor, values: Tensor) -> int | None:
        """Index of the best end point that is not (within 1e-4) an observed or pending point."""
        known = [x for x in (self.X_observed, self.X_pending) if x is not None and x.shape[0]]
        if not known:
            return int(values.argmax())
        dist = torch.cdist(ends.squeeze(-2), torch.cat(known)).min(dim=-1).values
        for i in torch.argsort(values, descending=True).tolist():
            if dist[i] > 1e-4:
                return int(i)
        return None

    def _carried_over(self, restarts: int) -> Tensor:
        """End points of the previous candidate's restarts, if it had the same model and one pending point less."""
        d = len(self.search_space_digest.bounds)
        none = torch.zeros(0, 1, d, dtype=self.dtype, device=self.device)
        state = getattr(self.surrogate.model, _STATE, None)
        pending = self.X_pending
        if state is None or pending is None:
            return none
        before, ends = state
        if pending.shape[0] != before.shape[0] + 1 or ends.shape[-1] != d:
            return none
        if before.shape[0] and not bool((torch.cdist(before, pending).min(dim=-1).values < 1e-9).all()):
            return none
        near_pending = torch.cdist(ends.squeeze(-2), pending).min(dim=-1).values < 1e-6
        return ends[~near_pending][:restarts]


register_acquisition(CarryOverAcquisition)
