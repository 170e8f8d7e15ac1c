"""FastqLogNEHVI (vectorised cells, lean sampling) gives BoTorch's qLogNEHVI values and gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.datasets import SupervisedDataset
from gpytorch.mlls import ExactMarginalLogLikelihood

from engine.optimizer.acquisition import FastqLogNEHVI, construct_inputs_fast_qlognehvi, feasible_share


def _acqf_inputs(standardize: bool, fixed_noise: bool = False) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(40, 4, generator=g, dtype=torch.double)
    Y = torch.stack([X[:, 0] - X[:, 1], X[:, 1] * X[:, 2], 1 - X[:, 0] * X[:, 3], X.sum(-1)], -1)
    # known observation variances (SEMs squared), different at every point, for the objectives
    Yvar = (0.01 + 0.1 * torch.rand(40, 4, generator=g, dtype=torch.double)) ** 2
    models = [
        SingleTaskGP(
            X,
            Y[:, i : i + 1],
            train_Yvar=Yvar[:, i : i + 1] if fixed_noise and i < 3 else None,
            outcome_transform=Standardize(m=1) if standardize else None,
        )
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


@pytest.mark.parametrize("fixed_noise", [False, True], ids=["learned-noise", "fixed-noise"])
@pytest.mark.parametrize("standardize", [False, True])
def test_fast_qlognehvi_matches_botorch(standardize: bool, fixed_noise: bool) -> None:
    inputs = _acqf_inputs(standardize, fixed_noise)
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


def test_feasible_share_is_the_share_of_points_feasible_at_the_posterior_mean() -> None:
    inputs = _acqf_inputs(standardize=True)
    model, X = inputs["model"], inputs["X_baseline"]
    with torch.no_grad():
        mean = model.posterior(X).mean
    expected = float((mean[:, 3] >= 1.5).double().mean())  # the constraint: 1.5 - Y3 <= 0
    assert 0.2 < expected < 0.9
    assert feasible_share(model, X, inputs["constraints"]) == pytest.approx(expected)
    strict = [lambda Z: 2.5 - Z[..., 3]]  # a fresh model object has no cached share
    assert feasible_share(_acqf_inputs(standardize=True)["model"], X, strict) < expected


@pytest.mark.parametrize(
    ("threshold", "sparse", "with_constraints", "expected"),
    [
        (0.99, 128, True, 128),  # fewer than 99 % feasible: more samples
        (0.01, 128, True, 16),  # at least 1 % feasible: mc_samples
        (0.99, None, True, 16),  # switched off
        (0.99, 128, False, 16),  # no outcome constraints
    ],
)
def test_more_mc_samples_while_few_points_are_feasible(
    threshold: float, sparse: int | None, with_constraints: bool, expected: int
) -> None:
    inputs = _acqf_inputs(standardize=True)
    built = construct_inputs_fast_qlognehvi(
        model=inputs["model"],
        training_data=SupervisedDataset(
            inputs["X_baseline"],
            torch.zeros(40, 1, dtype=torch.double),
            feature_names=[f"x{i}" for i in range(4)],
            outcome_names=["y"],
        ),
        ref_point=inputs["ref_point"],
        objective=inputs["objective"],
        constraints=inputs["constraints"] if with_constraints else None,
        mc_samples=16,
        mc_samples_sparse_feasible=sparse,
        sparse_feasible_fraction=threshold,
    )
    assert torch.equal(built["X_baseline"], inputs["X_baseline"])  # taken from the training data
    assert built["sampler"].sample_shape == torch.Size([expected])
