"""engine/optimizer/noise.py: the noise vector of BoTorch's two SingleTaskGP likelihoods."""

from __future__ import annotations

import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood

from engine.optimizer.noise import noise_kind, training_noise


def _data(n: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, 2, generator=g, dtype=torch.float64)
    Y = 4.0 * X.sum(-1, keepdim=True) + torch.randn(n, 1, generator=g, dtype=torch.float64)
    Yvar = (0.1 + torch.rand(n, 1, generator=g, dtype=torch.float64)) ** 2
    return X, Y, Yvar


def test_learned_noise_is_one_variance_at_every_point() -> None:
    X, Y, _ = _data()
    model = SingleTaskGP(X, Y)
    model.likelihood.noise = torch.tensor([0.3], dtype=torch.float64)
    assert noise_kind(model.likelihood, 12) == "learned"
    torch.testing.assert_close(
        training_noise(model.likelihood, 12), torch.full((12,), 0.3, dtype=torch.float64)
    )


def test_fixed_noise_is_the_transformed_variances() -> None:
    X, Y, Yvar = _data()
    model = SingleTaskGP(X, Y, Yvar, outcome_transform=Standardize(m=1))
    assert noise_kind(model.likelihood, 12) == "fixed"
    torch.testing.assert_close(training_noise(model.likelihood, 12), Yvar[:, 0] / Y.std() ** 2)


def test_other_likelihoods_have_none() -> None:
    X, Y, Yvar = _data()
    extra = FixedNoiseGaussianLikelihood(noise=Yvar[:, 0], learn_additional_noise=True)
    assert training_noise(SingleTaskGP(X, Y, likelihood=extra).likelihood, 12) is None
    fixed = SingleTaskGP(X, Y, Yvar).likelihood
    assert training_noise(fixed, 11) is None  # variances for other points than the training points
