"""The generation strategy: valid batches of q in a mixed constrained space, seeding, storage.

Also the custom BoTorch pieces behind it: the vectorised box decomposition is
exact, and FastqLogNEHVI (vectorised cells, lean sampling) gives BoTorch's
qLogNEHVI values and gradients.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import pydantic
import pytest
import torch
from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
from gpytorch.mlls import ExactMarginalLogLikelihood

from engine._acquisition import FastqLogNEHVI
from engine._boxes import hypervolume_from_cells, nondominated_cells_3d
from engine._gp import anchor_size, warm_start_stats
from engine.generation import MODEL_NODE, OptimizerSpec, build_generation_strategy, prebuild_kernels

PARAMS = [
    RangeParameterConfig(name="lr", bounds=(1e-4, 1e-1), parameter_type="float", scaling="log"),
    RangeParameterConfig(name="dropout", bounds=(0.0, 0.5), parameter_type="float"),
    RangeParameterConfig(name="num_experts", bounds=(2, 8), parameter_type="int"),
    RangeParameterConfig(name="top_k", bounds=(1, 4), parameter_type="int"),
    ChoiceParameterConfig(name="d_model", values=[16, 32, 64, 128], parameter_type="int", is_ordered=True),
]
FAST = OptimizerSpec(num_restarts=2, raw_samples=32, maxiter=10, mc_samples=16)


def evaluate(p: dict[str, Any]) -> dict[str, float]:
    """Smooth synthetic metrics of the parameters (3 objectives + num_trades)."""
    u = math.log10(p["lr"]) + 2.5
    k = p["top_k"] / p["num_experts"]
    size = math.log2(p["d_model"]) / 7
    return {
        "return_pct": 10 - 8 * u**2 + 4 * size - 2 * p["dropout"],
        "sharpe": 1 - (k - 0.4) ** 2 * 4 + p["dropout"],
        "max_drawdown_pct": 10 + 5 * size + 3 * k,
        "num_trades": 5 + 40 * p["dropout"] + 10 * k,
    }


def make_client(
    seed: int = 0, sobol_trials: int = 4, spec: OptimizerSpec = FAST, attaches_trials: bool = False
) -> Client:
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=PARAMS, parameter_constraints=["top_k <= num_experts"])
    client.configure_optimization(
        objective="return_pct, sharpe, -max_drawdown_pct",
        outcome_constraints=[
            "return_pct >= -5",
            "sharpe >= -1",
            "max_drawdown_pct <= 30",
            "num_trades >= 10",
        ],
    )
    client.set_generation_strategy(
        build_generation_strategy(spec, sobol_trials=sobol_trials, seed=seed, attaches_trials=attaches_trials)
    )
    return client


def complete(client: Client, trials: dict[int, Any]) -> None:
    for index, params in trials.items():
        client.complete_trial(index, evaluate(params))


def assert_valid(params: dict[str, Any]) -> None:
    assert set(params) == {"lr", "dropout", "num_experts", "top_k", "d_model"}
    assert 1e-4 <= params["lr"] <= 1e-1 and 0.0 <= params["dropout"] <= 0.5
    for name, lo, hi in (("num_experts", 2, 8), ("top_k", 1, 4)):
        assert isinstance(params[name], int) and lo <= params[name] <= hi
    assert params["d_model"] in (16, 32, 64, 128)
    assert params["top_k"] <= params["num_experts"]


def node(client: Client, index: int) -> str:
    return str(client._experiment.trials[index].generator_runs[0]._generation_node_name)


def test_spec_rejects_unknown_keys_and_is_frozen() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        OptimizerSpec.model_validate({"mc_sample": 32})
    with pytest.raises(pydantic.ValidationError):
        OptimizerSpec(num_restarts=0)
    spec = OptimizerSpec()
    with pytest.raises(pydantic.ValidationError):
        spec.mc_samples = 8  # type: ignore[misc]
    assert OptimizerSpec.model_validate({"strategy": "ax_default"}).strategy == "ax_default"


def test_batches_of_q_are_valid_and_model_based_after_sobol() -> None:
    client = make_client(sobol_trials=4)
    first = client.get_next_trials(max_trials=3)
    second = client.get_next_trials(max_trials=3)  # 3 still running: Sobol goes on, no idle worker
    assert len(first) == len(second) == 3
    complete(client, first | second)
    for _ in range(2):  # model phase, with the previous batch still running
        batch = client.get_next_trials(max_trials=3)
        assert len(batch) == 3
        for index, params in batch.items():
            assert_valid(params)
            assert node(client, index) == MODEL_NODE
    for params in (first | second).values():
        assert_valid(params)


def test_restarts_are_optimised_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear constraints: boengine's batched SLSQP; none: BoTorch's batched L-BFGS-B (not one joint problem)."""
    import botorch.generation.gen as botorch_gen

    from engine import _optimizer, _slsqp

    def joint_problem(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("restarts were optimised as one joint scipy problem")

    slsqp, lbfgsb = [], []
    real_slsqp, real_lbfgsb = _optimizer.gen_candidates_batched_slsqp, botorch_gen.fmin_l_bfgs_b_batched
    monkeypatch.setattr(_slsqp, "gen_candidates_scipy", joint_problem)
    monkeypatch.setattr(
        _optimizer,
        "gen_candidates_batched_slsqp",
        lambda *a, **k: slsqp.append(a[0].shape) or real_slsqp(*a, **k),
    )
    monkeypatch.setattr(
        botorch_gen, "fmin_l_bfgs_b_batched", lambda *a, **k: lbfgsb.append(1) or real_lbfgsb(*a, **k)
    )
    spec = OptimizerSpec(num_restarts=6, raw_samples=32, maxiter=10, mc_samples=16)
    client = make_client(sobol_trials=4, spec=spec)  # top_k <= num_experts
    complete(client, client.get_next_trials(max_trials=4))
    assert len(client.get_next_trials(max_trials=2)) == 2
    assert slsqp == [torch.Size([6, 1, 5])] * 2 and not lbfgsb

    free = Client(random_seed=0)
    free.configure_experiment(parameters=PARAMS)
    free.configure_optimization(objective="f, g", outcome_constraints=["f >= -10", "g >= -10"])
    free.set_generation_strategy(build_generation_strategy(spec, sobol_trials=4, seed=0))
    for index, p in free.get_next_trials(max_trials=4).items():
        free.complete_trial(index, {"f": -p["dropout"] - p["top_k"], "g": p["dropout"] - p["num_experts"]})
    slsqp.clear()
    assert len(free.get_next_trials(max_trials=2)) == 2
    assert len(lbfgsb) == 2 and not slsqp


def test_model_batches_do_not_repeat_points_in_a_small_grid() -> None:
    """On a 4 x 4 integer grid rounding makes repeats likely; a batch must not repeat a known point."""
    client = Client(random_seed=0)
    client.configure_experiment(
        parameters=[RangeParameterConfig(name=n, bounds=(0, 3), parameter_type="int") for n in ("a", "b")]
    )
    client.configure_optimization(objective="f, g", outcome_constraints=["f >= -10", "g >= -10"])
    client.set_generation_strategy(build_generation_strategy(FAST, sobol_trials=4, seed=0))
    seen: list[tuple[int, int]] = []
    for _ in range(4):
        batch = client.get_next_trials(max_trials=3)
        for index, p in batch.items():
            seen.append((p["a"], p["b"]))
            client.complete_trial(
                index, {"f": -((p["a"] - 2) ** 2) - p["b"], "g": -((p["b"] - 2) ** 2) - p["a"]}
            )
    assert len(seen) == 12 and len(set(seen)) == 12
    # Sobol ends with the call that reaches sobol_trials (a batch is not split); no fallback after.
    assert [node(client, i) for i in range(6, 12)] == [MODEL_NODE] * 6


def test_sobol_continues_until_trials_have_data() -> None:
    client = make_client(sobol_trials=2)
    trials = client.get_next_trials(max_trials=2)
    more = client.get_next_trials(max_trials=2)  # budget used up, nothing completed yet
    assert len(more) == 2 and {node(client, i) for i in more} == {"Sobol"}
    complete(client, trials | more)
    assert {node(client, i) for i in client.get_next_trials(max_trials=2)} == {MODEL_NODE}


def test_first_trial_is_the_centre_and_the_batch_is_full() -> None:
    client = make_client(sobol_trials=4)
    batch = client.get_next_trials(max_trials=3)
    assert len(batch) == 3
    assert [node(client, i) for i in sorted(batch)] == ["CenterOfSearchSpace", "Sobol", "Sobol"]
    centre = batch[min(batch)]
    # Ax's centre: the middle of each range (log scale for lr), the middle choice
    assert centre["lr"] == pytest.approx(10**-2.5) and centre["dropout"] == pytest.approx(0.25)
    plain = make_client(sobol_trials=4, spec=OptimizerSpec(center_first=False))
    assert {node(plain, i) for i in plain.get_next_trials(max_trials=3)} == {"Sobol"}


def test_attached_trials_count_towards_sobol() -> None:
    client = make_client(sobol_trials=4, attaches_trials=True)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = random_params(rng)
        client.complete_trial(client.attach_trial(p), evaluate(p))
    batch = client.get_next_trials(max_trials=2)
    assert {node(client, i) for i in batch} == {MODEL_NODE}


def random_params(rng: np.random.Generator) -> dict[str, Any]:
    experts = int(rng.integers(2, 9))
    return {
        "lr": float(10 ** rng.uniform(-4, -1)),
        "dropout": float(rng.uniform(0, 0.5)),
        "num_experts": experts,
        "top_k": int(rng.integers(1, min(4, experts) + 1)),
        "d_model": int(rng.choice([16, 32, 64, 128])),
    }


@pytest.mark.parametrize("warm_start_gp", [False, True])
def test_same_seed_same_proposals(warm_start_gp: bool) -> None:
    """Sobol and model phase repeat exactly, also when the GP fit is warm-started from a cached anchor."""
    spec = FAST.model_copy(update={"warm_start_gp": warm_start_gp})

    def run(seed: int) -> list[dict[str, Any]]:
        client = make_client(seed=seed, sobol_trials=4, spec=spec)
        first = client.get_next_trials(max_trials=4)
        complete(client, first)
        rng = np.random.default_rng(seed)
        for _ in range(8):  # 12 points: warm fits start from the anchor fit on the first 8
            p = random_params(rng)
            client.complete_trial(client.attach_trial(p), evaluate(p))
        return list(first.values()) + list(client.get_next_trials(max_trials=2).values())

    before = warm_start_stats()
    a = run(7)
    b = run(7)  # the anchor fits are cached by now
    after = warm_start_stats()
    if warm_start_gp:
        assert after["warm"] >= before["warm"] + 8
    else:
        assert after["warm"] == before["warm"] and after["cold"] >= before["cold"] + 8
    assert a == b
    assert a[:4] != run(8)[:4]


def test_gp_fits_use_the_exact_closure_and_the_iteration_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ax's GP fits in a proposal go through engine/_mll.py's closure, capped at gp_fit_maxiter."""
    import botorch.optim.fit as botorch_fit

    import engine._gp as gp

    closures: list[Any] = []
    options: list[Any] = []
    real_closure, real_scipy = gp.exact_rbf_closure, botorch_fit.fit_gpytorch_mll_scipy

    def closure(mll: Any) -> Any:
        closures.append(real_closure(mll))
        return closures[-1]

    def scipy_fit(mll: Any, **kwargs: Any) -> Any:
        options.append(kwargs.get("options"))
        return real_scipy(mll, **kwargs)

    monkeypatch.setattr(gp, "exact_rbf_closure", closure)
    monkeypatch.setattr(gp, "_fit_fallback", partial(gp._fit_fallback, optimizer=scipy_fit))
    client = make_client(sobol_trials=4, spec=FAST.model_copy(update={"gp_fit_maxiter": 7}))
    complete(client, client.get_next_trials(max_trials=4))
    client.get_next_trials(max_trials=1)
    assert len(closures) == 4  # three objectives and one constraint metric, one GP each
    assert all(c is not None for c in closures)
    assert options == [{"maxiter": 7}] * 4


def test_strategy_survives_json_storage(tmp_path: Any) -> None:
    client = make_client(sobol_trials=3)
    complete(client, client.get_next_trials(max_trials=3))
    client.get_next_trials(max_trials=1)
    path = tmp_path / "client.json"
    client.save_to_json_file(str(path))
    loaded = Client.load_from_json_file(str(path))
    gs = loaded._generation_strategy
    assert gs.current_node_name == MODEL_NODE
    spec = gs.nodes_by_name[MODEL_NODE].generator_specs[0]
    assert spec.generator_kwargs["botorch_acqf_class"] is FastqLogNEHVI
    assert len(loaded.get_next_trials(max_trials=1)) == 1


def test_ax_default_strategy_builds() -> None:
    gs = build_generation_strategy(OptimizerSpec(strategy="ax_default"), sobol_trials=5, seed=0)
    assert [n.name for n in gs._nodes][-1] == "MBM"


def test_prebuild_kernels_reports_where_the_kernel_lives() -> None:
    status = prebuild_kernels()
    assert status.build_dir.endswith("logei_fused_ext")
    assert isinstance(status.loaded, bool) and status.seconds >= 0


# -- custom BoTorch pieces ------------------------------------------------------------------


def test_anchor_sizes_double_then_grow_by_half() -> None:
    assert [anchor_size(n) for n in (5, 8, 9, 16, 17, 33, 100, 300)] == [None, None, 8, 8, 16, 32, 72, 243]


def _front(seed: int, batch: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    Y = torch.rand(batch, n, 3, generator=g, dtype=torch.double)
    Y = (
        Y
        / Y.norm(dim=-1, keepdim=True)
        * (0.8 + 0.4 * torch.rand(batch, n, 1, generator=g, dtype=torch.double))
    )
    return Y - 0.1, torch.rand(batch, n, generator=g) > 0.2


def test_cells_cover_exactly_the_non_dominated_region() -> None:
    Y, feas = _front(0, 6, 25)
    ref = torch.zeros(3, dtype=torch.double)
    cells = nondominated_cells_3d(Y, ref, feas)
    points = torch.rand(4000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.double) * 1.5
    for b in range(Y.shape[0]):
        inside = ((points[:, None] >= cells[0, b]) & (points[:, None] < cells[1, b])).all(-1).sum(-1)
        dominated = (Y[b][feas[b]][None] >= points[:, None]).all(-1).any(-1)
        assert (inside <= 1).all()  # disjoint
        assert torch.equal(inside == 1, ~dominated)  # exactly the non-dominated region
        botorch_cells = FastNondominatedPartitioning(ref, Y[b][feas[b]]).get_hypercell_bounds()
        hv = hypervolume_from_cells(Y[b : b + 1], ref, cells[:, b : b + 1], feas[b : b + 1])
        botorch_hv = FastNondominatedPartitioning(ref, Y[b][feas[b]]).compute_hypervolume()
        assert torch.allclose(hv, botorch_hv.reshape(1))
        assert botorch_cells.shape[-2] > 0


def _acqf_inputs(standardize: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(40, 4, generator=g, dtype=torch.double)
    Y = torch.stack([X[:, 0] - X[:, 1], X[:, 1] * X[:, 2], 1 - X[:, 0] * X[:, 3], X.sum(-1)], -1)
    models = [
        SingleTaskGP(X, Y[:, i : i + 1], outcome_transform=Standardize(m=1) if standardize else None)
        for i in range(4)
    ]
    for m in models:
        fit_gpytorch_mll(ExactMarginalLogLikelihood(m.likelihood, m))
    return {
        "model": ModelListGP(*models).eval(),
        "ref_point": torch.tensor([-0.5, 0.0, 0.0], dtype=torch.double),
        "X_baseline": X,
        "objective": IdentityMCMultiOutputObjective(outcomes=[0, 1, 2]),
        "constraints": [lambda Z: 1.5 - Z[..., 3]],
        "X_pending": torch.rand(2, 4, generator=g, dtype=torch.double),
        "sampler": SobolQMCNormalSampler(torch.Size([16]), seed=3),
        "prune_baseline": False,
    }


@pytest.mark.parametrize("standardize", [False, True])
def test_fast_qlognehvi_matches_botorch(standardize: bool) -> None:
    inputs = _acqf_inputs(standardize)
    reference = qLogNoisyExpectedHypervolumeImprovement(**inputs)
    plain = FastqLogNEHVI(
        **{**inputs, "sampler": SobolQMCNormalSampler(torch.Size([16]), seed=3)}, lean_sampling=False
    )
    lean = FastqLogNEHVI(
        **{**inputs, "sampler": SobolQMCNormalSampler(torch.Size([16]), seed=3)}, lean_sampling=True
    )
    X = torch.rand(8, 1, 4, generator=torch.Generator().manual_seed(2), dtype=torch.double)
    expected = reference(X)
    top = expected > expected.max() - 10  # far below the best only the log-smoothing differs
    assert top.sum() >= 3
    assert torch.allclose(plain(X)[top], expected[top], atol=1e-4)  # other cells, same improvement
    X1, X2 = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    v1, v2 = plain(X1), lean(X2)
    assert lean._lean is not None  # the lean path ran
    assert torch.allclose(v1, v2, rtol=1e-7, atol=1e-7)  # same samples from the same base samples
    assert torch.allclose(plain(X[:3, :, :]), lean(X[:3, :, :]), rtol=1e-7, atol=1e-7)  # another batch size
    g1 = torch.autograd.grad(v1.sum(), X1)[0]
    g2 = torch.autograd.grad(v2.sum(), X2)[0]
    assert torch.allclose(g1, g2, rtol=1e-6, atol=1e-6)
    Xq = torch.rand(5, 2, 4, generator=torch.Generator().manual_seed(4), dtype=torch.double)
    assert torch.allclose(plain(Xq), lean(Xq), rtol=1e-7, atol=1e-7)  # two points per candidate
    assert lean._lean_q == 2
    # the one-point log-EHVI shortcut equals BoTorch's general inclusion-exclusion code
    samples, _ = lean._compute_posterior_samples_and_concat_pending(X)
    general = qLogNoisyExpectedHypervolumeImprovement._compute_log_qehvi(lean, samples=samples, X=X)
    assert torch.allclose(lean._compute_log_qehvi(samples=samples, X=X), general, rtol=1e-9, atol=1e-9)


def test_prebuild_kernels_removes_a_lock_left_by_an_interrupted_build(tmp_path, monkeypatch) -> None:
    """torch waits forever on a build directory's ``lock`` file; one left by a killed build is removed."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.setattr(logei, "_load_attempted", False)
    baton = tmp_path / "logei_fused_ext" / "lock"
    baton.parent.mkdir()
    baton.touch()
    seen: list[bool] = []
    monkeypatch.setattr(logei, "_try_load_fused_kernel", lambda: seen.append(baton.exists()))
    status = prebuild_kernels()
    assert seen == [False]  # the stale lock was gone before BoTorch's loader ran
    assert status.build_dir == str(tmp_path / "logei_fused_ext") and not status.loaded


def test_prebuild_kernels_keeps_the_lock_of_a_loaded_kernel(tmp_path, monkeypatch) -> None:
    """Once this process has loaded (or tried to load) the kernel, the build directory is not touched."""
    from botorch.acquisition.multi_objective import logei

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(logei, "_load_attempted", True)
    baton = tmp_path / "logei_fused_ext" / "lock"
    baton.parent.mkdir()
    baton.touch()
    prebuild_kernels()
    assert baton.exists()


def test_constraint_parsing_is_cached_and_unchanged() -> None:
    import ax.core.outcome_constraint as outcome_constraint
    from ax.utils.common.sympy import extract_coefficient_dict_from_inequality as sympy_parse

    from engine.generation import memoize_constraint_parsing

    memoize_constraint_parsing()
    memoize_constraint_parsing()  # idempotent
    cached = outcome_constraint.extract_coefficient_dict_from_inequality
    assert getattr(cached, "boengine_memoized", False)
    text = "2 * sharpe + return_pct >= 1.5"
    first = cached(inequality_str=text)
    first.clear()  # a caller changing its copy does not change the cache
    assert cached(inequality_str=text) == sympy_parse(inequality_str=text)
