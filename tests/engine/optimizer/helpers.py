"""A small mixed, constrained problem and an Ax client with boengine's generation strategy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

from engine.optimizer import OptimizerSpec, build_generation_strategy

PARAMS = [
    RangeParameterConfig(name="lr", bounds=(1e-4, 1e-1), parameter_type="float", scaling="log"),
    RangeParameterConfig(name="dropout", bounds=(0.0, 0.5), parameter_type="float"),
    RangeParameterConfig(name="num_experts", bounds=(2, 8), parameter_type="int"),
    RangeParameterConfig(name="top_k", bounds=(1, 4), parameter_type="int"),
    ChoiceParameterConfig(name="d_model", values=[16, 32, 64, 128], parameter_type="int", is_ordered=True),
]
FAST = OptimizerSpec(num_restarts=2, raw_samples=32, maxiter=10, mc_samples=16)


def evaluate(p: dict[str, Any]) -> dict[str, float]:
    """Smooth synthetic metrics of the parameters (3 objectives + num_trades)."""
    u = math.log10(p["lr"]) + 2.5
    k = p["top_k"] / p["num_experts"]
    size = math.log2(p["d_model"]) / 7
    return {
        "return_pct": 10 - 8 * u**2 + 4 * size - 2 * p["dropout"],
        "sharpe": 1 - (k - 0.4) ** 2 * 4 + p["dropout"],
        "max_drawdown_pct": 10 + 5 * size + 3 * k,
        "num_trades": 5 + 40 * p["dropout"] + 10 * k,
    }


def make_client(
    seed: int = 0, sobol_trials: int = 4, spec: OptimizerSpec = FAST, attaches_trials: bool = False
) -> Client:
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=PARAMS, parameter_constraints=["top_k <= num_experts"])
    client.configure_optimization(
        objective="return_pct, sharpe, -max_drawdown_pct",
        outcome_constraints=[
            "return_pct >= -5",
            "sharpe >= -1",
            "max_drawdown_pct <= 30",
            "num_trades >= 10",
        ],
    )
    client.set_generation_strategy(
        build_generation_strategy(spec, sobol_trials=sobol_trials, seed=seed, attaches_trials=attaches_trials)
    )
    return client


def complete(client: Client, trials: dict[int, Any]) -> None:
    for index, params in trials.items():
        client.complete_trial(index, evaluate(params))


def assert_valid(params: dict[str, Any]) -> None:
    assert set(params) == {"lr", "dropout", "num_experts", "top_k", "d_model"}
    assert 1e-4 <= params["lr"] <= 1e-1 and 0.0 <= params["dropout"] <= 0.5
    for name, lo, hi in (("num_experts", 2, 8), ("top_k", 1, 4)):
        assert isinstance(params[name], int) and lo <= params[name] <= hi
    assert params["d_model"] in (16, 32, 64, 128)
    assert params["top_k"] <= params["num_experts"]


def node(client: Client, index: int) -> str:
    return str(client._experiment.trials[index].generator_runs[0]._generation_node_name)


def random_params(rng: np.random.Generator) -> dict[str, Any]:
    experts = int(rng.integers(2, 9))
    return {
        "lr": float(10 ** rng.uniform(-4, -1)),
        "dropout": float(rng.uniform(0, 0.5)),
        "num_experts": experts,
        "top_k": int(rng.integers(1, min(4, experts) + 1)),
        "d_model": int(rng.choice([16, 32, 64, 128])),
    }
