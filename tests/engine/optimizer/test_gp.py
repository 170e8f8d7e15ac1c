"""The GP fit: the exact closure, the iteration cap, anchor sizes."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from engine.optimizer.gp import anchor_size
from tests.engine.optimizer.helpers import FAST, complete, make_client


def test_gp_fits_use_the_exact_closure_and_the_iteration_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ax's GP fits in a proposal go through engine/optimizer/mll.py's closure, capped at gp_fit_maxiter."""
    import botorch.optim.fit as botorch_fit

    import engine.optimizer.gp as gp

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


def test_anchor_sizes_double_then_grow_by_half() -> None:
    assert [anchor_size(n) for n in (5, 8, 9, 16, 17, 33, 100, 300)] == [None, None, 8, 8, 16, 32, 72, 243]
