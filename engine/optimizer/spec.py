"""The ``"optimizer"`` section of an experiment spec: how candidates are proposed.

Importing this module loads neither torch nor Ax, so parsing a spec stays
light; :func:`engine.optimizer.build_generation_strategy` turns an
:class:`OptimizerSpec` into Ax's generation strategy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["OptimizerSpec"]


class OptimizerSpec(BaseModel):
    """How candidates are proposed: the ``"optimizer"`` section of an experiment spec.

    The defaults are the fast settings measured in ``benchmarks/``; every
    field can be changed in the spec. Fields other than ``strategy``,
    ``torch_threads`` and ``min_observed_trials`` apply to ``strategy="fast"``
    only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["fast", "ax_default"] = Field(
        "fast",
        description="'fast': Sobol then qLogNEHVI with the settings below; "
        "'ax_default': Ax's Center+Sobol+MBM strategy with Ax's own settings (slow, for comparison).",
    )
    torch_threads: int = Field(
        1,
        ge=1,
        description="torch threads in the process that proposes candidates; set by set_torch_threads(). "
        "One is fastest for these problem sizes and never oversubscribes a shared machine.",
    )
    center_first: bool = Field(
        True,
        description="make the first trial the centre of the search space, as Ax's default strategy "
        "does, unless the study starts from attached trials (warm start, priors); it counts towards "
        "sobol_trials.",
    )
    min_observed_trials: int = Field(
        2,
        ge=1,
        description="completed trials with data needed before the model phase starts; until then "
        "Sobol continues past sobol_trials instead of leaving workers idle.",
    )
    mc_samples: int = Field(
        16,
        ge=8,
        description="quasi-MC samples of the posterior in qLogNEHVI (BoTorch default 128).",
    )
    num_restarts: int = Field(
        16,
        ge=1,
        description="starting points optimised per candidate, side by side in one batched optimizer "
        "(Ax default 20).",
    )
    raw_samples: int = Field(
        64,
        ge=8,
        description="random points scored to choose the starting points (Ax default 1024).",
    )
    maxiter: int = Field(20, ge=5, description="optimizer iterations per candidate (BoTorch default 200).")
    halve_restarts_after: tuple[int, ...] = Field(
        (5, 10),
        description="under linear parameter constraints: optimizer iterations after which the worse half "
        "of the restarts still running stops (ranked by their best acquisition value); () runs all to "
        "maxiter.",
    )
    slsqp_ftol: float = Field(
        1e-2,
        gt=0,
        description="under linear parameter constraints: SLSQP stops a restart once a step changes the "
        "log acquisition value by less than this (scipy's ftol, default 1e-6): 1 % of the acquisition "
        "value, where 1e-6 ran most restarts to maxiter.",
    )
    polytope_burnin: int = Field(
        200,
        ge=0,
        description="hit-and-run burn-in steps when sampling starting points under linear parameter "
        "constraints (BoTorch default 10000).",
    )
    polytope_thinning: int = Field(
        2,
        ge=1,
        description="hit-and-run steps between kept starting points under linear constraints "
        "(BoTorch default 32).",
    )
    mc_samples_sparse_feasible: int | None = Field(
        128,
        ge=8,
        description="quasi-MC samples in qLogNEHVI while the outcome constraints hold at fewer than "
        "sparse_feasible_fraction of the evaluated points (by the model's mean): there the "
        "feasibility-weighted improvement needs more samples than mc_samples (measured on C2DTLZ2, "
        "benchmarks/RESULTS.md; with vectorized_boxes, the default). None: mc_samples always.",
    )
    sparse_feasible_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="the feasible share of the evaluated points below which mc_samples_sparse_feasible applies.",
    )
    prune_samples: int = Field(
        256,
        ge=16,
        description="posterior samples used to drop baseline points unlikely to be Pareto optimal "
        "(BoTorch default 2048).",
    )
    vectorized_boxes: bool = Field(
        True,
        description="compute the box decompositions of all MC samples at once (3 objectives); "
        "False uses BoTorch's per-sample loop.",
    )
    lean_sampling: bool = Field(
        True,
        description="sample f at candidates from quantities cached once per batch (exact; independent RBF "
        "GPs only, other models fall back) instead of GPyTorch's joint posterior on every evaluation.",
    )
    continuous_relaxation: bool = Field(
        True,
        description="optimise int and ordered-choice parameters as continuous and round them, so the "
        "continuous optimizer runs; False keeps them discrete (Ax's mixed-integer optimizers).",
    )
    warm_start_gp: bool = Field(
        False,
        description="start each GP fit from an anchor fit on a prefix of the data and run warm_fit_maxiter "
        "iterations (engine/optimizer/gp.py); cheaper at hundreds of trials, but fits can stay in a worse optimum "
        "of the marginal likelihood than a fit from BoTorch's initial values (measured: worse hypervolume "
        "on DTLZ2). False fits from BoTorch's initial values every batch, as Ax does.",
    )
    warm_fit_maxiter: int = Field(10, ge=1, description="L-BFGS-B iterations of a warm-started GP fit.")
    gp_fit_maxiter: int | None = Field(
        50,
        ge=1,
        description="L-BFGS-B iterations of a GP fit from BoTorch's initial values; None runs it to "
        "convergence (BoTorch's default: 90-700 evaluations an outcome here, most of them refining "
        "an optimum already found).",
    )
    batched_model: bool = Field(
        False,
        description="fit all outcomes as one batched GP; False fits one GP per outcome, which was "
        "several times faster to fit here.",
    )
    incremental_nehvi: bool = Field(
        True,
        description="score each candidate by its own hypervolume improvement given the pending points "
        "(BoTorch default); False scores the joint improvement.",
    )

    @field_validator("halve_restarts_after")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value) or list(value) != sorted(set(value)):
            raise ValueError(f"must be increasing positive iteration counts, got {list(value)}")
        return value
