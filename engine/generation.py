"""The generation strategy: seeded Sobol, then GP-based qLogNEHVI.

The ``"optimizer"`` section of an experiment spec is an :class:`OptimizerSpec`.
:func:`build_generation_strategy` turns it into an Ax ``GenerationStrategy``
for ``Client.set_generation_strategy``. Two strategies:

- ``"fast"`` (default): the centre of the search space (for a study that
  starts with no trials, as Ax's default does), Sobol up to ``sobol_trials``
  trials, then qLogNEHVI on independent GPs, with integer and ordered-choice
  parameters relaxed to continuous ones and rounded (so BoTorch's continuous
  optimizer runs, not the mixed-integer one), box decompositions vectorised
  over MC samples (:class:`engine._acquisition.FastqLogNEHVI`), restarts
  optimised side by side (batched L-BFGS-B, or :mod:`engine._slsqp` under
  linear parameter constraints), and an optimizer budget sized to a
  hyperparameter search. See ``benchmarks/RESULTS.md`` for what each setting
  buys.
- ``"ax_default"``: Ax's own ``Center+Sobol+MBM`` strategy, for comparison.

Batches: ``client.get_next_trials(max_trials=q)`` returns ``q`` trials per
call in both phases (no pausing criteria; running trials are passed to the
acquisition function as pending points) and never repeats an observed or
pending point (see :mod:`engine._optimizer`). The Sobol phase lasts until a
call starts with ``sobol_trials`` trials on the experiment (attached
warm-start trials count) **and** ``min_observed_trials`` of them completed
with data. Until both hold it keeps proposing Sobol points, so workers never
wait for data; as Ax does not split a batch between nodes, the last Sobol
batch may take the count up to ``sobol_trials + q - 1``. A caller that
still gets ``ax.exceptions.core.DataRequiredError`` (possible only if
completed trials carry no data for some modelled metric) should wait for a
running trial to finish, attach its data, and ask again.

Determinism: the Sobol sequence is seeded with ``seed``; the model phase draws
from the global RNG, which ``Client(random_seed=...)`` seeds around every
``get_next_trials`` call. Create the ``Client`` with a random seed for
reproducible proposals.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from ax.adapter.registry import Cont_X_trans, Generators, Y_trans
from ax.adapter.transforms.map_key_to_float import MapKeyToFloat
from ax.api.utils.generation_strategy_dispatch import choose_generation_strategy
from ax.api.utils.structs import GenerationStrategyDispatchStruct
from ax.core.trial_status import TrialStatus
from ax.generation_strategy.center_generation_node import CenterGenerationNode
from ax.generation_strategy.generation_node import GenerationNode
from ax.generation_strategy.generation_strategy import GenerationStrategy
from ax.generation_strategy.generator_spec import GeneratorSpec
from ax.generation_strategy.transition_criterion import MinTrials
from ax.generators.torch.botorch_modular.surrogate import ModelConfig, SurrogateSpec
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine._acquisition import FastqLogNEHVI
from engine._gp import WarmStartSingleTaskGP
from engine._optimizer import DistinctAcquisition

__all__ = [
    "KernelStatus",
    "OptimizerSpec",
    "build_generation_strategy",
    "prebuild_kernels",
    "set_torch_threads",
]

logger = logging.getLogger(__name__)

SOBOL_NODE = "Sobol"
MODEL_NODE = "qLogNEHVI"


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
        "iterations (engine/_gp.py); cheaper at hundreds of trials, but fits can stay in a worse optimum "
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


def set_torch_threads(spec: OptimizerSpec) -> int:
    """Set torch's intra-op threads for this process to ``spec.torch_threads``; returns the old value.

    Call once at study start in the process that runs the Ax loop. Workers
    that train models set their own threads.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(spec.torch_threads)
    return old


def build_generation_strategy(
    spec: OptimizerSpec, *, sobol_trials: int, seed: int, attaches_trials: bool = False
) -> GenerationStrategy:
    """The centre point, Sobol (seeded with ``seed``) up to ``sobol_trials`` trials, then qLogNEHVI.

    Trials attached before the first proposal (warm start, priors) count
    towards ``sobol_trials``; with enough of them the first batch is
    model-based. A caller that will attach trials before the first proposal
    passes ``attaches_trials=True``: such a study needs no centre point, and
    Ax, on skipping its centre node, takes one trial from the Sobol node
    even when attached trials have used up the Sobol budget.
    """
    if sobol_trials < 0:
        raise ValueError(f"sobol_trials must be >= 0, got {sobol_trials}")
    if spec.strategy == "ax_default":
        return _ax_default(spec, sobol_trials=sobol_trials, seed=seed)
    memoize_constraint_parsing()
    sobol = GenerationNode(
        name=SOBOL_NODE,
        generator_specs=[GeneratorSpec(generator_enum=Generators.SOBOL, generator_kwargs={"seed": seed})],
        transition_criteria=_sobol_exit(spec, sobol_trials),
        should_deduplicate=True,
    )
    model = GenerationNode(
        name=MODEL_NODE,
        generator_specs=[
            GeneratorSpec(
                generator_enum=Generators.BOTORCH_MODULAR,
                generator_kwargs=_generator_kwargs(spec),
                generator_gen_kwargs={"model_gen_options": {"optimizer_kwargs": _optimizer_kwargs(spec)}},
            )
        ],
        should_deduplicate=True,
    )
    nodes = [sobol, model]
    center = spec.center_first and not attaches_trials
    if center:
        # Ax skips the node if trials exist when it is reached anyway.
        nodes.insert(
            0, CenterGenerationNode(next_node_name=SOBOL_NODE, use_existing_trials_for_initialization=True)
        )
    name = f"{'Center+' if center else ''}Sobol+{MODEL_NODE}:fast"
    return GenerationStrategy(name=name, nodes=nodes)


def _sobol_exit(spec: OptimizerSpec, sobol_trials: int) -> list[MinTrials]:
    """Both must hold to leave Sobol: enough trials, and enough of them with data."""
    return [
        MinTrials(
            threshold=sobol_trials,
            transition_to=MODEL_NODE,
            use_all_trials_in_exp=True,
            not_in_statuses=[TrialStatus.FAILED, TrialStatus.ABANDONED],
        ),
        MinTrials(
            threshold=spec.min_observed_trials,
            transition_to=MODEL_NODE,
            use_all_trials_in_exp=True,
            only_in_statuses=[TrialStatus.COMPLETED],
            count_only_trials_with_data=True,
        ),
    ]


def _generator_kwargs(spec: OptimizerSpec) -> dict[str, Any]:
    acqf_class = FastqLogNEHVI if spec.vectorized_boxes else qLogNoisyExpectedHypervolumeImprovement
    acqf_options: dict[str, Any] = {
        "mc_samples": spec.mc_samples,
        "prune_baseline": True,
        "incremental_nehvi": spec.incremental_nehvi,
    }
    if spec.vectorized_boxes:
        acqf_options["prune_samples"] = spec.prune_samples
        acqf_options["lean_sampling"] = spec.lean_sampling
    kwargs: dict[str, Any] = {
        "surrogate_spec": SurrogateSpec(
            model_configs=[
                ModelConfig(
                    botorch_model_class=WarmStartSingleTaskGP,
                    model_options={
                        "warm_start": spec.warm_start_gp,
                        "warm_maxiter": spec.warm_fit_maxiter,
                        "cold_maxiter": spec.gp_fit_maxiter,
                    },
                    name="GP",
                )
            ],
            allow_batched_models=spec.batched_model,
        ),
        "botorch_acqf_class": acqf_class,
        "botorch_acqf_options": acqf_options,
        # Only the objectives and outcome constraints are modelled, not tracking
        # metrics such as learning curves.
        "fit_tracking_metrics": False,
    }
    if spec.continuous_relaxation:
        kwargs["transforms"] = [MapKeyToFloat, *Cont_X_trans, *Y_trans]
    kwargs["acquisition_class"] = DistinctAcquisition  # keeps repeated points out of a batch
    return kwargs


def _optimizer_kwargs(spec: OptimizerSpec) -> dict[str, Any]:
    options: dict[str, Any] = {
        "batch_limit": spec.num_restarts,
        "init_batch_limit": spec.raw_samples,
        "n_burnin": spec.polytope_burnin,
        "n_thinning": spec.polytope_thinning,
    }
    if spec.continuous_relaxation:
        options["maxiter"] = spec.maxiter
        options["halve_restarts_after"] = spec.halve_restarts_after
        options["max_optimization_problem_aggregation_size"] = spec.num_restarts
    return {"num_restarts": spec.num_restarts, "raw_samples": spec.raw_samples, "options": options}


def _ax_default(spec: OptimizerSpec, *, sobol_trials: int, seed: int) -> GenerationStrategy:
    """Ax's default strategy for the Client (Center+Sobol+MBM:fast), seeded."""
    return choose_generation_strategy(
        GenerationStrategyDispatchStruct(
            method="fast",
            initialization_budget=sobol_trials,
            initialization_random_seed=seed,
            min_observed_initialization_trials=spec.min_observed_trials,
        )
    )


def memoize_constraint_parsing() -> None:
    """Parse each outcome and parameter constraint string with SymPy once per process.

    Ax 1.3 re-parses a constraint's string with SymPy (~3 ms) whenever the
    constraint is created or cloned, and the transforms of every candidate
    clone them: ~90 parses, 0.26 s of a 2.7 s batch at 100 trials of the
    ``mixed_hpo`` benchmark (3 objective thresholds, 1 outcome and 1
    parameter constraint). The parse is a pure function of the string, so
    its result is cached; Ax offers no option for this, hence the patch of
    the name in the two modules that call it. Idempotent.
    """
    import ax.core.outcome_constraint as outcome_constraint
    import ax.core.parameter_constraint as parameter_constraint
    from ax.utils.common import sympy as ax_sympy

    name = "extract_coefficient_dict_from_inequality"
    current = [getattr(module, name, None) for module in (outcome_constraint, parameter_constraint)]
    if any(f is None or getattr(f, "boengine_memoized", False) for f in current):
        return  # already patched, or an Ax without this function: nothing to do
    parse = ax_sympy.extract_coefficient_dict_from_inequality

    @functools.lru_cache(maxsize=4096)
    def parsed(inequality_str: str) -> tuple[tuple[Any, float], ...]:
        return tuple(parse(inequality_str=inequality_str).items())

    def extract_coefficient_dict_from_inequality(inequality_str: str) -> dict[Any, float]:
        return dict(parsed(inequality_str))

    extract_coefficient_dict_from_inequality.boengine_memoized = True  # type: ignore[attr-defined]
    for module in (outcome_constraint, parameter_constraint):
        module.extract_coefficient_dict_from_inequality = extract_coefficient_dict_from_inequality  # type: ignore[attr-defined]


@dataclass(frozen=True)
class KernelStatus:
    """Where BoTorch's fused qLogEHVI kernel is cached and whether it loaded."""

    loaded: bool
    build_dir: str
    seconds: float


def prebuild_kernels() -> KernelStatus:
    """Load (compiling once if needed) BoTorch's fused qLogEHVI C++ kernel.

    BoTorch compiles it on first use with ``ninja`` and ``-march=native``
    (30-110 s on a busy 2-core machine) and caches it under
    ``$TORCH_EXTENSIONS_DIR/logei_fused_ext`` or, if unset,
    ``~/.cache/torch_extensions/py<ver>_cpu/logei_fused_ext``. Loading a built
    kernel takes well under a second. Call at study start so the first model
    batch does not pay for the build; without a compiler BoTorch falls back
    to its (slower) Python code with a warning.

    torch marks a build in progress with a ``lock`` file in the build
    directory and waits, without a time limit, for it to go away; a process
    killed mid-build leaves it behind and every later load (in any process)
    hangs. boengine's builds run under an OS lock (``<build dir>.boengine-lock``,
    released when its holder dies), so a ``lock`` file found while holding it
    was left by an interrupted build and is removed.
    """
    from botorch.acquisition.multi_objective import logei
    from filelock import FileLock

    start = time.perf_counter()
    build_dir = _kernel_build_dir()
    os.makedirs(os.path.dirname(build_dir), exist_ok=True)
    with FileLock(build_dir + ".boengine-lock"):
        baton = os.path.join(build_dir, "lock")
        if logei._C is None and not logei._load_attempted and os.path.exists(baton):
            logger.warning("removing %s, left by an interrupted build of BoTorch's fused kernel", baton)
            os.remove(baton)
        logei._try_load_fused_kernel()
    status = KernelStatus(
        loaded=logei._C is not None, build_dir=build_dir, seconds=time.perf_counter() - start
    )
    logger.info(
        "fused qLogEHVI kernel loaded=%s from %s in %.1f s", status.loaded, status.build_dir, status.seconds
    )
    return status


def _kernel_build_dir() -> str:
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        import sys

        accel = "cpu" if torch.version.cuda is None else f"cu{torch.version.cuda.replace('.', '')}"
        root = os.path.join(
            get_default_build_root(), f"py{sys.version_info.major}{sys.version_info.minor}_{accel}"
        )
    return os.path.join(root, "logei_fused_ext")
