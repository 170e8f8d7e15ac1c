"""engine/optimizer/mll.py: the analytic marginal likelihood equals BoTorch's, and fits land where BoTorch's do.

Both noise models of BoTorch's default ``SingleTaskGP``: learned (homoskedastic)
noise, and fixed noise from known observation variances (``train_Yvar``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Normalize, Standardize
from botorch.optim.closures import NdarrayOptimizationClosure, get_loss_closure_with_grads
from botorch.optim.utils import get_parameters_and_bounds
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood

from engine.optimizer.mll import exact_rbf_closure


def _data(n: int, d: int, m: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = 3.0 * torch.rand(n, d, generator=g, dtype=torch.float64)
    y = torch.sin(2.0 * X[:, :1]) + (X[:, 1:] - 1.5).pow(2).sum(-1, keepdim=True)
    y = y + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return X, y.repeat(1, m)


def _yvar(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Known observation variances, different at every point: (0.02..0.5 x the spread of y)^2."""
    g = torch.Generator().manual_seed(seed + 100)
    sem = y.std(0) * (0.02 + 0.48 * torch.rand(y.shape, generator=g, dtype=torch.float64))
    return sem**2


def _model(X: torch.Tensor, y: torch.Tensor, standardize: bool = True, **kwargs: object) -> SingleTaskGP:
    d = X.shape[-1]
    bounds = torch.stack([torch.zeros(d), 3.0 * torch.ones(d)]).double()
    return SingleTaskGP(
        X,
        y,
        input_transform=Normalize(d, bounds=bounds),
        outcome_transform=Standardize(y.shape[-1]) if standardize else None,
        **kwargs,
    )


def _reference(mll: ExactMarginalLogLikelihood) -> NdarrayOptimizationClosure:
    """BoTorch's own closure over the parameters its scipy fit optimises."""
    parameters, _ = get_parameters_and_bounds(mll)
    parameters = {k: p for k, p in parameters.items() if p.requires_grad}
    return NdarrayOptimizationClosure(get_loss_closure_with_grads(mll, parameters=parameters), parameters)


def _assert_equal_to_botorch(model: SingleTaskGP, seed: int, rtol: float = 1e-12) -> None:
    """Loss (to ``rtol``) and gradient (to 1e-10) of our closure equal BoTorch's at random hyperparameters."""
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    ours = exact_rbf_closure(mll)
    assert ours is not None
    reference = _reference(mll)
    assert list(ours.parameters) == list(reference.parameters)
    assert np.array_equal(ours.state, reference.state)  # same layout: constant, lengthscales[, noise]
    g = np.random.default_rng(seed)
    for _ in range(4):  # hyperparameters across their range, incl. very short and long lengthscales
        state = reference.state.copy()
        state[:] = np.exp(g.uniform(-3.0, 1.0, state.size))  # lengthscales 0.05..2.7, noise
        state[list(reference.parameters).index("model.mean_module.raw_constant")] = g.normal()
        before = ours.state.copy()
        value, grad = ours(state)
        assert np.array_equal(ours.state, before)  # evaluating leaves the model alone
        ref_value, ref_grad = reference(state)
        assert float(value) == pytest.approx(float(ref_value), rel=rtol, abs=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("n", "d"), [(6, 1), (40, 3), (150, 8)])
def test_loss_and_gradient_equal_botorch(n: int, d: int) -> None:
    _assert_equal_to_botorch(_model(*_data(n, d)), seed=n)


@pytest.mark.parametrize("standardize", [True, False], ids=["standardize", "no-outcome-transform"])
@pytest.mark.parametrize(("n", "d"), [(6, 1), (40, 3), (100, 8), (150, 8)])
def test_fixed_noise_loss_and_gradient_equal_botorch(n: int, d: int, standardize: bool) -> None:
    X, y = _data(n, d, seed=n)
    model = _model(X, y, standardize=standardize, train_Yvar=_yvar(y, seed=n))
    assert type(model.likelihood) is FixedNoiseGaussianLikelihood
    if standardize:  # the variances the likelihood adds are the transformed ones, not train_Yvar
        assert not torch.allclose(model.likelihood.noise_covar.noise, _yvar(y, seed=n).squeeze(-1))
    closure = exact_rbf_closure(ExactMarginalLogLikelihood(model.likelihood, model))
    assert closure is not None and not any("noise" in name for name in closure.parameters)
    _assert_equal_to_botorch(model, seed=n)


def test_fixed_noise_below_gpytorchs_floor_is_clamped_as_botorch_does() -> None:
    X, y = _data(30, 2, seed=5)
    yvar = _yvar(y, seed=5)
    yvar[::3] = 0.0  # exact observations: GPyTorch rounds them up to min_fixed_noise
    with pytest.warns(Warning):
        model = _model(X, y, train_Yvar=yvar)
    # K is nearly singular where the noise is 1e-6 and lengthscales are long: agreement to
    # ~1e-12 relative is rounding in two different Cholesky routines.
    _assert_equal_to_botorch(model, seed=5, rtol=1e-10)


@pytest.mark.parametrize("fixed_noise", [False, True], ids=["learned-noise", "fixed-noise"])
def test_fit_with_the_closure_lands_where_botorchs_does(fixed_noise: bool) -> None:
    X, y = _data(60, 4, seed=3)
    kwargs = {"train_Yvar": _yvar(y, seed=3)} if fixed_noise else {}
    reference = _model(X, y, **kwargs)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(reference.likelihood, reference))
    model = _model(X, y, **kwargs)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    fit_gpytorch_mll(mll, closure=exact_rbf_closure(mll))
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    assert not model.training  # left in eval mode, as BoTorch's fit leaves it


@pytest.mark.parametrize(
    "kwargs",
    [
        {"covar_module": MaternKernel(ard_num_dims=2)},
        {"covar_module": ScaleKernel(RBFKernel(ard_num_dims=2))},
        {"covar_module": RBFKernel()},  # one shared lengthscale
        {  # fixed noise with another kernel
            "train_Yvar": torch.full((10, 1), 0.01, dtype=torch.float64),
            "covar_module": MaternKernel(ard_num_dims=2),
        },
        {  # fixed noise plus a learned noise level on top
            "likelihood": FixedNoiseGaussianLikelihood(
                noise=torch.full((10,), 0.01, dtype=torch.float64), learn_additional_noise=True
            ),
        },
    ],
    ids=["matern", "scale-kernel", "isotropic", "fixed-noise-matern", "fixed-plus-learned-noise"],
)
def test_other_models_keep_botorchs_closure(kwargs: dict[str, object]) -> None:
    model = _model(*_data(10, 2), **kwargs)
    assert exact_rbf_closure(ExactMarginalLogLikelihood(model.likelihood, model)) is None


@pytest.mark.parametrize("fixed_noise", [False, True], ids=["learned-noise", "fixed-noise"])
def test_batched_multi_output_model_keeps_botorchs_closure(fixed_noise: bool) -> None:
    X, y = _data(10, 2, m=2)
    model = _model(X, y, **({"train_Yvar": _yvar(y)} if fixed_noise else {}))
    assert exact_rbf_closure(ExactMarginalLogLikelihood(model.likelihood, model)) is None


def test_failed_factorisation_falls_back_to_botorchs_closure(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(*_data(10, 2))
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    closure = exact_rbf_closure(mll)
    assert closure is not None
    calls = []
    monkeypatch.setattr(closure, "closure", lambda **kw: calls.append(kw) or (torch.tensor(7.0), (None,) * 3))
    state = closure.state.copy()
    state[
        list(closure.parameters).index("likelihood.noise_covar.raw_noise")
    ] = -10.0  # K is not positive definite
    value, _ = closure(state)
    assert float(value) == 7.0 and len(calls) == 1
    assert float(model.likelihood.noise_covar.raw_noise) == -10.0  # BoTorch's closure reads the model
