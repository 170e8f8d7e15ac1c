"""The generation strategy: seeded Sobol, then GP-based qLogNEHVI.

The ``"optimizer"`` section of an experiment spec is an :class:`~engine.optimizer.spec.OptimizerSpec`.
:func:`build_generation_strategy` turns it into an Ax ``GenerationStrategy``
for ``Client.set_generation_strategy``. Two strategies:

- ``"fast"`` (default): the centre of the search space (for a study that
  starts with no trials, as Ax's default does), Sobol up to ``sobol_trials``
  trials, then qLogNEHVI on independent GPs, with integer and ordered-choice
  parameters relaxed to continuous ones and rounded (so BoTorch's continuous
  optimizer runs, not the mixed-integer one), box decompositions vectorised
  over MC samples (:class:`engine.optimizer.acquisition.FastqLogNEHVI`), restarts
  optimised side by side (batched L-BFGS-B, or :mod:`engine.optimizer.slsqp` under
  linear parameter constraints), and an optimizer budget sized to a
  hyperparameter search. See ``benchmarks/RESULTS.md`` for what each setting
  buys.
- ``"ax_default"``: Ax's own ``Center+Sobol+MBM`` strategy, for comparison.

Batches: ``client.get_next_trials(max_trials=q)`` returns ``q`` trials per
call in both phases (no pausing criteria; running trials are passed to the
acquisition function as pending points) and never repeats an observed or
pending point (see :mod:`engine.optimizer.candidates`). The Sobol phase lasts until a
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

from typing import Any

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

from engine.optimizer.acquisition import FastqLogNEHVI
from engine.optimizer.candidates import DistinctAcquisition
from engine.optimizer.gp import WarmStartSingleTaskGP
from engine.optimizer.patches import memoize_constraint_parsing, ordered_rounding
from engine.optimizer.spec import OptimizerSpec

__all__ = ["MODEL_NODE", "SOBOL_NODE", "build_generation_strategy"]

SOBOL_NODE = "Sobol"
MODEL_NODE = "qLogNEHVI"


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
    ordered_rounding()  # the same seed gives the same integers in every process
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
        acqf_options["mc_samples_sparse_feasible"] = spec.mc_samples_sparse_feasible
        acqf_options["sparse_feasible_fraction"] = spec.sparse_feasible_fraction
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
        options["slsqp_ftol"] = spec.slsqp_ftol
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
