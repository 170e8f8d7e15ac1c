"""The GP fit: the exact closure (learned and fixed noise), the iteration cap, anchor sizes."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from ax.api.client import Client
from botorch.fit import fit_gpytorch_mll
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood

from engine.optimizer.gp import WarmStartSingleTaskGP, anchor_size, clear_warm_start_cache
from tests.engine.optimizer.helpers import FAST, complete, evaluate, make_client


def _spy_fits(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any], list[Any]]:
    """Record every GP fit's closure from engine/optimizer/mll.py, its mll and its scipy options."""
    import botorch.optim.fit as botorch_fit

    import engine.optimizer.gp as gp

    closures: list[Any] = []
    mlls: list[Any] = []
    options: list[Any] = []
    real_closure, real_scipy = gp.exact_rbf_closure, botorch_fit.fit_gpytorch_mll_scipy

    def closure(mll: Any) -> Any:
        closures.append(real_closure(mll))
        mlls.append(mll)
        return closures[-1]

    def scipy_fit(mll: Any, **kwargs: Any) -> Any:
        options.append(kwargs.get("options"))
        return real_scipy(mll, **kwargs)

    monkeypatch.setattr(gp, "exact_rbf_closure", closure)
    monkeypatch.setattr(gp, "_fit_fallback", partial(gp._fit_fallback, optimizer=scipy_fit))
    return closures, mlls, options


def test_gp_fits_use_the_exact_closure_and_the_iteration_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ax's GP fits in a proposal go through engine/optimizer/mll.py's closure, capped at gp_fit_maxiter."""
    closures, _, options = _spy_fits(monkeypatch)
    client = make_client(sobol_trials=4, spec=FAST.model_copy(update={"gp_fit_maxiter": 7}))
    complete(client, client.get_next_trials(max_trials=4))
    client.get_next_trials(max_trials=1)
    assert len(closures) == 4  # three objectives and one constraint metric, one GP each
    assert all(c is not None for c in closures)
    assert options == [{"maxiter": 7}] * 4


def _complete_with_sems(client: Client, trials: dict[int, Any]) -> None:
    """Objectives as (mean, SEM), as a study's trials report them; num_trades without one."""
    for i, (index, params) in enumerate(trials.items()):
        metrics = evaluate(params)
        raw: dict[str, Any] = {k: (v, 0.1 + 0.05 * i) for k, v in metrics.items() if k != "num_trades"}
        raw["num_trades"] = metrics["num_trades"]
        client.complete_trial(index, raw)


def test_fixed_noise_gp_fits_use_the_exact_closure(monkeypatch: pytest.MonkeyPatch) -> None:
    """With SEMs Ax fits fixed-noise GPs; they too go through the closed-form closure."""
    closures, mlls, _ = _spy_fits(monkeypatch)
    client = make_client(sobol_trials=4)
    _complete_with_sems(client, client.get_next_trials(max_trials=4))
    client.get_next_trials(max_trials=1)
    likelihoods = sorted(type(mll.model.likelihood).__name__ for mll in mlls)
    assert likelihoods == ["FixedNoiseGaussianLikelihood"] * 3 + ["GaussianLikelihood"]
    assert all(c is not None for c in closures)


def test_warm_start_anchor_of_a_fixed_noise_gp_has_the_prefix_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The anchor fit on the first 16 of 20 points keeps their variances, on the prefix's scale."""
    clear_warm_start_cache()
    _, mlls, _ = _spy_fits(monkeypatch)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(20, 3, generator=g, dtype=torch.float64)
    Y = (X.sum(-1, keepdim=True) + 0.1 * torch.randn(20, 1, generator=g, dtype=torch.float64)) * 3.0
    Yvar = (0.05 + 0.2 * torch.rand(20, 1, generator=g, dtype=torch.float64)) ** 2
    model = WarmStartSingleTaskGP(X, Y, Yvar, outcome_transform=None, warm_start=True)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    anchor, fit = (m.model for m in mlls)
    assert fit is model and anchor.train_targets.shape == (16,)
    assert isinstance(anchor.likelihood, FixedNoiseGaussianLikelihood)
    expected = Yvar[:16, 0] / Y[:16, 0].std() ** 2
    torch.testing.assert_close(anchor.likelihood.noise_covar.noise, expected, rtol=0, atol=1e-9)
    # the model's own noise is untouched by the anchor's
    torch.testing.assert_close(model.likelihood.noise_covar.noise, Yvar[:, 0])
    clear_warm_start_cache()


def test_anchor_sizes_double_then_grow_by_half() -> None:
    assert [anchor_size(n) for n in (5, 8, 9, 16, 17, 33, 100, 300)] == [None, None, 8, 8, 16, 32, 72, 243]
