"""The batched SLSQP driver against scipy's SLSQP run restart by restart."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from engine.optimizer import slsqp as _slsqp
from engine.optimizer.slsqp import gen_candidates_batched_slsqp


class Bumpy:
    """A multimodal smooth 'acquisition' on [0, 1]^3 that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.rows = 0

    def __call__(self, X: torch.Tensor) -> torch.Tensor:  # b x 1 x 3 -> b
        self.calls += 1
        self.rows += X.shape[0]
        x = X.squeeze(-2)
        return torch.sin(5 * x).sum(-1) - 2 * (x - 0.6).square().sum(-1) + x[..., 0] * x[..., 1]


# x0 + x1 <= 1.2 in BoTorch's form: -x0 - x1 >= -1.2
CONSTRAINT = [(torch.tensor([0, 1]), torch.tensor([-1.0, -1.0], dtype=torch.double), -1.2)]


def scipy_one(x0: np.ndarray, maxiter: int, ftol: float = 1e-6) -> np.ndarray:
    f = Bumpy()

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        X = torch.tensor(x, dtype=torch.double).view(1, 1, 3).requires_grad_(True)
        value = -f(X).sum()
        (g,) = torch.autograd.grad(value, X)
        return float(value.detach()), g.view(-1).numpy()

    res = minimize(
        fun,
        x0,
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * 3,
        constraints=[
            {"type": "ineq", "fun": lambda x: 1.2 - x[0] - x[1], "jac": lambda x: np.array([-1.0, -1.0, 0.0])}
        ],
        options={"maxiter": maxiter, "ftol": ftol},
    )
    return res.x


@pytest.mark.parametrize(("maxiter", "ftol"), [(3, 1e-6), (20, 1e-6), (20, 1e-2)])
def test_each_restart_follows_scipys_slsqp(maxiter: int, ftol: float) -> None:
    starts = torch.rand(12, 1, 3, dtype=torch.double, generator=torch.Generator().manual_seed(0)) * 0.6
    f = Bumpy()
    X, values = gen_candidates_batched_slsqp(
        starts,
        f,
        lower_bounds=torch.zeros(3, dtype=torch.double),
        upper_bounds=torch.ones(3, dtype=torch.double),
        inequality_constraints=CONSTRAINT,
        options={"maxiter": maxiter, "ftol": ftol},
    )
    expected = np.stack([scipy_one(x0, maxiter, ftol) for x0 in starts.view(12, 3).numpy()])
    np.testing.assert_allclose(X.view(12, 3).numpy(), expected, atol=1e-10)
    assert (X[..., 0] + X[..., 1] <= 1.2 + 1e-8).all()
    torch.testing.assert_close(values, Bumpy()(X))
    # one batched call per step, not one per restart and step
    assert f.calls < 6 * maxiter


def test_halving_stops_the_worse_restarts() -> None:
    starts = torch.rand(12, 1, 3, dtype=torch.double, generator=torch.Generator().manual_seed(1)) * 0.6
    kwargs = {
        "lower_bounds": torch.zeros(3, dtype=torch.double),
        "upper_bounds": torch.ones(3, dtype=torch.double),
        "inequality_constraints": CONSTRAINT,
        "options": {"maxiter": 20},
    }
    full, halved = Bumpy(), Bumpy()
    _, v_full = gen_candidates_batched_slsqp(starts, full, **kwargs)
    X_half, v_half = gen_candidates_batched_slsqp(starts, halved, halve_after=(2, 4), **kwargs)
    assert halved.rows < 0.75 * full.rows
    # the 3 restarts that ran to the end are those scipy would have run, and the best is kept
    finished = torch.isclose(v_half, v_full, rtol=0, atol=1e-12)
    assert finished.sum() >= 3 and v_half.max() == pytest.approx(float(v_full.max()), abs=1e-9)
    assert (X_half[..., 0] + X_half[..., 1] <= 1.2 + 1e-8).all()


def test_uncovered_cases_use_botorchs_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    used = []
    monkeypatch.setattr(_slsqp, "gen_candidates_scipy", lambda *a, **k: used.append(k) or ("X", "v"))
    starts = torch.full((2, 1, 3), 0.3, dtype=torch.double)
    out = gen_candidates_batched_slsqp(
        starts, Bumpy(), inequality_constraints=CONSTRAINT, fixed_features={0: 0.5}, options={"maxiter": 5}
    )
    assert out == ("X", "v") and used[0]["fixed_features"] == {0: 0.5}
