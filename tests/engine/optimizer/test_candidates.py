"""Starting points under linear parameter constraints: feasible points of a Sobol sequence."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from scipy import stats

from engine.optimizer import OptimizerSpec
from engine.optimizer import candidates as _candidates
from engine.optimizer.candidates import _feasible_sobol_batches, feasible_sobol
from tests.engine.optimizer.helpers import assert_valid, complete, make_client

UNIT_2D = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.double)


def below(total: float) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """x0 + x1 <= total, in BoTorch's form -x0 - x1 >= -total."""
    return [(torch.tensor([0, 1]), torch.tensor([-1.0, -1.0], dtype=torch.double), -total)]


def test_points_are_feasible_uniform_on_the_polytope_and_seeded() -> None:
    X = feasible_sobol(1024, UNIT_2D, below(1.0), seed=3)
    assert X is not None and X.shape == (1024, 2)
    assert bool((X.sum(-1) <= 1.0).all()) and bool((X >= 0).all())
    # Uniform on the triangle x0 + x1 <= 1: x0 has the CDF 1 - (1 - x)^2, mean 1/3.
    ks = stats.kstest(X[:, 0].numpy(), lambda x: 1 - (1 - x) ** 2)
    assert ks.statistic < 0.03  # iid draws would give ~0.04 at the 95 % level; Sobol is more even
    assert abs(float(X[:, 0].mean()) - 1 / 3) < 0.01
    assert torch.equal(X, feasible_sobol(1024, UNIT_2D, below(1.0), seed=3))
    assert not torch.equal(X, feasible_sobol(1024, UNIT_2D, below(1.0), seed=4))


def test_fixed_features_are_set_before_the_check() -> None:
    X = feasible_sobol(64, UNIT_2D, below(1.0), fixed_features={0: 0.9}, seed=0)
    assert X is not None
    assert bool((X[:, 0] == 0.9).all()) and bool((X[:, 1] <= 0.1 + 1e-12).all())


def test_a_small_feasible_share_falls_back_to_hit_and_run() -> None:
    # x0 + x1 <= 0.05 keeps 1/800 of the box: rejection gives up, the chain serves
    assert feasible_sobol(32, UNIT_2D, below(0.05), seed=0) is None
    X = _feasible_sobol_batches(
        8, 2, 0, UNIT_2D, below(0.05), None, fallback={"n_burnin": 50, "n_thinning": 2}
    )
    assert X.shape == (8, 2, 2) and bool((X.sum(-1) <= 0.05 + 1e-9).all())


def test_constraints_between_the_points_of_a_batch_are_left_to_the_chain() -> None:
    inter = [(torch.tensor([[0, 0], [1, 0]]), torch.tensor([1.0, -1.0], dtype=torch.double), 0.0)]
    assert feasible_sobol(16, UNIT_2D, inter, seed=0) is None


def test_a_study_under_a_linear_constraint_starts_from_sobol_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """top_k <= num_experts: the starting points come from feasible_sobol, not BoTorch's chain."""
    used: list[int] = []
    real = _candidates.feasible_sobol

    def counted(n: int, *args: Any, **kwargs: Any) -> Any:
        used.append(n)
        return real(n, *args, **kwargs)

    def no_chain(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("hit-and-run was used although Sobol rejection had enough points")

    monkeypatch.setattr(_candidates, "feasible_sobol", counted)
    monkeypatch.setattr(_candidates, "sample_q_batches_from_polytope", no_chain)
    spec = OptimizerSpec(num_restarts=4, raw_samples=32, maxiter=5, mc_samples=16)
    client = make_client(sobol_trials=4, spec=spec)
    complete(client, client.get_next_trials(max_trials=4))
    batch = client.get_next_trials(max_trials=2)
    assert len(batch) == 2 and used == [32, 32]
    for params in batch.values():
        assert_valid(params)


def test_the_specs_slsqp_tolerance_reaches_the_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """slsqp_ftol is SLSQP's ftol under linear constraints; boengine's own options stay out of it."""
    seen: list[dict[str, Any]] = []
    real = _candidates.gen_candidates_batched_slsqp

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.append(dict(kwargs.get("options") or {}))
        return real(*args, **kwargs)

    monkeypatch.setattr(_candidates, "gen_candidates_batched_slsqp", recorded)
    spec = OptimizerSpec(num_restarts=4, raw_samples=32, maxiter=5, mc_samples=16, slsqp_ftol=1e-2)
    client = make_client(sobol_trials=4, spec=spec)
    complete(client, client.get_next_trials(max_trials=4))
    batch = client.get_next_trials(max_trials=2)
    assert len(batch) == 2 and len(seen) == 2
    for options in seen:
        assert options.get("ftol") == 1e-2 and options.get("maxiter") == 5
        assert "slsqp_ftol" not in options and "halve_restarts_after" not in options
