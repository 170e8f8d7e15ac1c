"""The observation noise of a single-output ``SingleTaskGP``, one variance per training point.

BoTorch's ``SingleTaskGP`` has one of two likelihoods: without observation
variances a ``GaussianLikelihood`` with one learned (homoskedastic) noise
variance; with them (``train_Yvar``, Ax's SEMs squared) a
``FixedNoiseGaussianLikelihood`` that adds the given variances, after the
model's outcome transform (``Standardize`` divides them by the outcome
variance) and rounded up to GPyTorch's ``min_fixed_noise``, to the
diagonal. Either way the training covariance is ``K_f + diag(noise)``, and
the closed-form paths (:mod:`engine.optimizer.mll`, the lean posterior of
qLogNEHVI) need only that ``noise`` vector. :func:`noise_kind` says which
of the two a likelihood is (None for any other), :func:`training_noise`
gives the vector.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood, GaussianLikelihood
from gpytorch.likelihoods.noise_models import FixedGaussianNoise, HomoskedasticNoise
from torch import Tensor

__all__ = ["NoiseKind", "noise_kind", "training_noise"]

NoiseKind = Literal["learned", "fixed"]


def noise_kind(likelihood: Any, n: int) -> NoiseKind | None:
    """``"learned"`` (one homoskedastic variance), ``"fixed"`` (``n`` known variances) or None.

    Only the plain forms qualify: one ``HomoskedasticNoise`` variance, or
    fixed variances with no additional learned noise. Args: ``n`` the
    number of training points.
    """
    if type(likelihood) is GaussianLikelihood:
        covar = likelihood.noise_covar
        if type(covar) is HomoskedasticNoise and covar.raw_noise.shape == (1,):
            return "learned"
        return None
    if type(likelihood) is FixedNoiseGaussianLikelihood:
        covar = likelihood.noise_covar
        if (
            likelihood.second_noise_covar is None
            and type(covar) is FixedGaussianNoise
            and covar.noise.shape == (n,)
        ):
            return "fixed"
    return None


def training_noise(likelihood: Any, n: int) -> Tensor | None:
    """The noise variance at each of ``n`` training points (``n``), or None for another likelihood.

    The same values GPyTorch adds to the training covariance (for fixed
    noise: the stored, transformed and clamped variances), detached.
    """
    kind = noise_kind(likelihood, n)
    if kind is None:
        return None
    with torch.no_grad():
        noise = likelihood.noise_covar.noise
        return noise.detach().reshape(-1).expand(n) if kind == "learned" else noise.detach().reshape(n)
