"""The exact marginal log likelihood of BoTorch's default GP, with analytic gradients.

Fitting a GP is L-BFGS-B on its negative marginal log likelihood (MLL). BoTorch
evaluates that objective through GPyTorch's module machinery and autograd:
about 3.6 ms per evaluation at 92 points here, of which the linear algebra is
a small part, and a cold fit takes a few hundred evaluations per outcome. For
BoTorch's default ``SingleTaskGP`` (ARD RBF kernel with a log-normal prior on
the lengthscales, constant mean, no parameter transforms) the MLL and its
gradient have a closed form that needs one Cholesky factorisation and its
inverse. The observation noise is either learned (one homoskedastic variance
``s2`` with a log-normal prior, the default without ``train_Yvar``) or fixed
(known variances ``s2_i`` per point, from ``train_Yvar``: Ax's SEMs squared,
after the outcome transform; no noise parameter, no noise prior; see
:mod:`engine.optimizer.noise`):

    -n * loss = -1/2 r' K^-1 r - 1/2 log|K| - n/2 log(2 pi) + log p(l) [+ log p(s2)]
    d/d theta (-n * loss) = 1/2 tr((a a' - K^-1) dK/d theta) + d log p / d theta

with ``r = y - c``, ``a = K^-1 r``, ``K = exp(-1/2 sum_k (x_ik - x_jk)^2 / l_k^2) + diag(s2_i)``
(``s2_i = s2`` for learned noise).

:func:`exact_rbf_closure` returns such a closure for BoTorch's fitting loop
(``fit_gpytorch_mll(mll, closure=...)``): the optimizer (scipy's L-BFGS-B),
its bounds, options, retries and the parameters it writes back are BoTorch's;
only the objective's evaluation is replaced, and its values equal BoTorch's
to ~1e-14, so the fit is BoTorch's fit, 3-4x cheaper. For any other model
(another kernel, mean or likelihood, learned noise on top of fixed noise,
batched or multi-output models) it returns None and BoTorch's own closure is
used. Where a factorisation fails or a value is not finite, that evaluation
is BoTorch's (which adds jitter as GPyTorch does).
"""

from __future__ import annotations

import math
from typing import Any

import numpy.typing as npt
import torch
from botorch.models.gp_regression import SingleTaskGP
from botorch.optim.closures import NdarrayOptimizationClosure, get_loss_closure_with_grads
from botorch.optim.utils import get_parameters_and_bounds
from gpytorch.kernels import RBFKernel
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from torch import Tensor

from engine.optimizer.noise import noise_kind

__all__ = ["exact_rbf_closure"]

# The priors of BoTorch's default SingleTaskGP, by noise kind: a fixed-noise model has no noise prior.
_PRIORS = {
    "learned": ["covar_module.lengthscale_prior", "likelihood.noise_covar.noise_prior"],
    "fixed": ["covar_module.lengthscale_prior"],
}


def exact_rbf_closure(mll: Any) -> NdarrayOptimizationClosure | None:
    """A loss-and-gradient closure equal to BoTorch's for ``mll``, or None where it does not apply.

    Applies to an ``ExactMarginalLogLikelihood`` of a single-output,
    non-batched ``SingleTaskGP`` with exactly BoTorch's default structure
    (see the module docstring), with learned or fixed observation noise;
    input transforms without learnable parameters are applied once, as the
    model applies them in training.
    """
    model: Any = getattr(mll, "model", None)
    if type(mll) is not ExactMarginalLogLikelihood or not issubclass(type(model), SingleTaskGP):
        return None
    if model.num_outputs != 1 or model.train_targets.dim() != 1 or len(model._input_batch_shape) != 0:
        return None
    covar, likelihood, mean = model.covar_module, model.likelihood, model.mean_module
    kind = noise_kind(likelihood, model.train_targets.shape[-1])
    if (
        kind is None
        or type(covar) is not RBFKernel
        or covar.active_dims is not None
        or covar.raw_lengthscale.shape != (1, model.train_inputs[0].shape[-1])
        or covar.raw_lengthscale_constraint.enforced
        or type(getattr(covar, "lengthscale_prior", None)) is not LogNormalPrior
        or (
            kind == "learned"  # the raw value must be the variance, with a log-normal prior
            and (
                likelihood.noise_covar.raw_noise_constraint.enforced
                or type(getattr(likelihood.noise_covar, "noise_prior", None)) is not LogNormalPrior
            )
        )
        or type(mean) is not ConstantMean
        or getattr(mean, "raw_constant", torch.zeros(1)).shape != ()
        or len(list(model.added_loss_terms())) != 0
        or sorted(name for name, *_ in model.named_priors()) != _PRIORS[kind]
    ):
        return None
    # The parameters BoTorch's scipy fit will optimise, in its order (the one its
    # closure's gradients follow); each must be one this closure differentiates.
    parameters, _ = get_parameters_and_bounds(mll)
    parameters = {name: p for name, p in parameters.items() if p.requires_grad}
    known = [mean.raw_constant, covar.raw_lengthscale]
    if kind == "learned":
        known.append(likelihood.noise_covar.raw_noise)
    if not all(any(p is k for k in known) for p in parameters.values()):
        return None
    return _ExactRBFClosure(mll, parameters)


class _LogNormal:
    """Log density of a ``LogNormalPrior`` (summed over ``x``) and its derivative in ``x``.

    Written as torch's ``Normal.log_prob`` of ``log x`` minus ``log x``, with the
    prior's variance and log scale computed in its own dtype as torch does, so
    that values agree with GPyTorch's to the last bits.
    """

    def __init__(self, prior: LogNormalPrior) -> None:
        loc, scale = prior.base_dist.loc, prior.base_dist.scale
        self.loc = float(loc)
        self.two_var = 2.0 * float(scale**2)
        self.const = -float(scale.log()) - math.log(math.sqrt(2 * math.pi))

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_x = x.log()
        z = log_x - self.loc
        value = (self.const - z**2 / self.two_var - log_x).sum()
        return value, -(2.0 * z / self.two_var + 1.0) / x


class _ExactRBFClosure(NdarrayOptimizationClosure):
    """Negative MLL per data point and its gradient at a state vector, for BoTorch's scipy loop.

    A ``NdarrayOptimizationClosure`` (BoTorch's scipy loop takes it as is):
    states are read in BoTorch's parameter order and layout, but evaluated
    without writing them into the model, which BoTorch's closure does on
    every call; the loop writes the final state back through ``state``.
    Squared distances and the lengthscale gradient use the expansion
    ``|x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 x_i'x_j`` on centred inputs (as
    GPyTorch does), so nothing of size n x n x d is formed. With fixed noise
    the state has no noise entry and the known variances (``n``) are read
    once from the likelihood.
    """

    def __init__(self, mll: ExactMarginalLogLikelihood, parameters: dict[str, Tensor]) -> None:
        mll.train()  # as BoTorch's fit does: the model applies its input transform to its inputs
        super().__init__(get_loss_closure_with_grads(mll, parameters=parameters), parameters)
        model = mll.model
        self.y = model.train_targets.detach()
        self.n = self.y.shape[-1]
        noise_covar = model.likelihood.noise_covar
        self.fixed_noise: Tensor | None = None
        if noise_kind(model.likelihood, self.n) == "fixed":
            self.fixed_noise = noise_covar.noise.detach().reshape(self.n)  # n, known variances
        self.fixed = {
            "constant": model.mean_module.raw_constant.detach().view(()),
            "lengthscale": model.covar_module.raw_lengthscale.detach().view(-1),
        }
        kinds = {
            id(model.mean_module.raw_constant): "constant",
            id(model.covar_module.raw_lengthscale): "lengthscale",
        }
        self.prior_s: _LogNormal | None = None
        if self.fixed_noise is None:
            self.fixed["noise"] = noise_covar.raw_noise.detach().view(())
            kinds[id(noise_covar.raw_noise)] = "noise"
            self.prior_s = _LogNormal(noise_covar.noise_prior)
        self.slices: dict[str, slice] = {}
        start = 0
        for p in parameters.values():
            self.slices[kinds[id(p)]] = slice(start, start + p.numel())
            start += p.numel()
        self.size = start
        self.prior_l = _LogNormal(model.covar_module.lengthscale_prior)
        with torch.no_grad():
            X = model.transform_inputs(model.train_inputs[0])
            self.X = X - X.mean(-2, keepdim=True)
            self.X2 = self.X**2
        self.log_2pi_half_n = 0.5 * self.n * math.log(2 * math.pi)

    def _value(self, theta: Tensor, kind: str) -> Tensor:
        where = self.slices.get(kind)
        return self.fixed[kind] if where is None else theta[where].view_as(self.fixed[kind])

    def __call__(self, state: npt.NDArray | None = None, **kwargs: Any) -> tuple[npt.NDArray, npt.NDArray]:
        if state is None or kwargs:
            return super().__call__(state, **kwargs)
        theta = torch.as_tensor(state, dtype=self.X.dtype, device=self.X.device)
        constant, lengthscale = self._value(theta, "constant"), self._value(theta, "lengthscale")
        Z = self.X / lengthscale
        z2 = (Z**2).sum(-1)
        sq = (z2.unsqueeze(-1) + z2.unsqueeze(-2)).sub_(Z @ Z.T, alpha=2.0).clamp_min_(0.0)
        sq.fill_diagonal_(0.0)
        k_f = sq.mul_(-0.5).exp_()
        noise = (
            self.fixed_noise if self.fixed_noise is not None else self._value(theta, "noise").expand(self.n)
        )
        L, info = torch.linalg.cholesky_ex(k_f + torch.diag_embed(noise))
        if int(info) != 0:  # BoTorch's closure adds jitter (or fails) as GPyTorch does
            return super().__call__(state)
        r = (self.y - constant).unsqueeze(-1)
        a = torch.cholesky_solve(r, L).squeeze(-1)
        log_lik = -0.5 * (r.squeeze(-1) @ a) - L.diagonal().log().sum() - self.log_2pi_half_n
        prior_l, d_prior_l = self.prior_l(lengthscale)
        w = torch.cholesky_inverse(L).neg_().add_(torch.outer(a, a))  # a a' - K^-1
        grads = {"constant": a.sum()}
        log_post = log_lik + prior_l
        if self.prior_s is not None:  # learned noise: dK/ds2 = I
            prior_s, d_prior_s = self.prior_s(noise[0])
            log_post = log_post + prior_s
            grads["noise"] = 0.5 * w.diagonal().sum() + d_prior_s
        m = w.mul_(k_f)  # symmetric; sum_ij m_ij (x_ik - x_jk)^2 = 2 (sum_i m_i. x_ik^2 - x_k' m x_k)
        d_l = (m.sum(-1) @ self.X2 - ((m @ self.X) * self.X).sum(-2)) * lengthscale.pow(-3)
        grads["lengthscale"] = d_l + d_prior_l
        grad = torch.empty(self.size, dtype=self.X.dtype, device=self.X.device)
        for kind, where in self.slices.items():
            grad[where] = -grads[kind].view(-1) / self.n
        value = -log_post / self.n
        if not (torch.isfinite(value) and torch.isfinite(grad).all()):
            return super().__call__(state)
        return value.cpu().numpy(), grad.cpu().numpy()
