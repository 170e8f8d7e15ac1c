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
from gpytorch.mlls import ExactMarginalLogLikelihood

from engine.optimizer.acquisition import FastqLogNEHVI


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
