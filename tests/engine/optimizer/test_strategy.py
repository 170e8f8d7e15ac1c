"""The generation strategy: valid batches of q in a mixed constrained space, seeding, storage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ax.api.client import Client
from ax.api.configs import RangeParameterConfig

from engine.optimizer import MODEL_NODE, OptimizerSpec, build_generation_strategy
from engine.optimizer.acquisition import FastqLogNEHVI
from engine.optimizer.gp import warm_start_stats
from tests.engine.optimizer.helpers import (
    FAST,
    PARAMS,
    assert_valid,
    complete,
    evaluate,
    make_client,
    node,
    random_params,
)


def test_batches_of_q_are_valid_and_model_based_after_sobol() -> None:
    client = make_client(sobol_trials=4)
    first = client.get_next_trials(max_trials=3)
    second = client.get_next_trials(max_trials=3)  # 3 still running: Sobol goes on, no idle worker
    assert len(first) == len(second) == 3
    complete(client, first | second)
    for _ in range(2):  # model phase, with the previous batch still running
        batch = client.get_next_trials(max_trials=3)
        assert len(batch) == 3
        for index, params in batch.items():
            assert_valid(params)
            assert node(client, index) == MODEL_NODE
    for params in (first | second).values():
        assert_valid(params)


def test_restarts_are_optimised_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear constraints: boengine's batched SLSQP; none: BoTorch's batched L-BFGS-B (not one joint problem)."""
    import botorch.generation.gen as botorch_gen

    from engine.optimizer import candidates as _optimizer
    from engine.optimizer import slsqp as _slsqp

    def joint_problem(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("restarts were optimised as one joint scipy problem")

    slsqp, lbfgsb = [], []
    real_slsqp, real_lbfgsb = _optimizer.gen_candidates_batched_slsqp, botorch_gen.fmin_l_bfgs_b_batched
    monkeypatch.setattr(_slsqp, "gen_candidates_scipy", joint_problem)
    monkeypatch.setattr(
        _optimizer,
        "gen_candidates_batched_slsqp",
        lambda *a, **k: slsqp.append(a[0].shape) or real_slsqp(*a, **k),
    )
    monkeypatch.setattr(
        botorch_gen, "fmin_l_bfgs_b_batched", lambda *a, **k: lbfgsb.append(1) or real_lbfgsb(*a, **k)
    )
    spec = OptimizerSpec(num_restarts=6, raw_samples=32, maxiter=10, mc_samples=16)
    client = make_client(sobol_trials=4, spec=spec)  # top_k <= num_experts
    complete(client, client.get_next_trials(max_trials=4))
    assert len(client.get_next_trials(max_trials=2)) == 2
    assert slsqp == [torch.Size([6, 1, 5])] * 2 and not lbfgsb

    free = Client(random_seed=0)
    free.configure_experiment(parameters=PARAMS)
    free.configure_optimization(objective="f, g", outcome_constraints=["f >= -10", "g >= -10"])
    free.set_generation_strategy(build_generation_strategy(spec, sobol_trials=4, seed=0))
    for index, p in free.get_next_trials(max_trials=4).items():
        free.complete_trial(index, {"f": -p["dropout"] - p["top_k"], "g": p["dropout"] - p["num_experts"]})
    slsqp.clear()
    assert len(free.get_next_trials(max_trials=2)) == 2
    assert len(lbfgsb) == 2 and not slsqp


def test_model_batches_do_not_repeat_points_in_a_small_grid() -> None:
    """On a 4 x 4 integer grid rounding makes repeats likely; a batch must not repeat a known point."""
    client = Client(random_seed=0)
    client.configure_experiment(
        parameters=[RangeParameterConfig(name=n, bounds=(0, 3), parameter_type="int") for n in ("a", "b")]
    )
    client.configure_optimization(objective="f, g", outcome_constraints=["f >= -10", "g >= -10"])
    client.set_generation_strategy(build_generation_strategy(FAST, sobol_trials=4, seed=0))
    seen: list[tuple[int, int]] = []
    for _ in range(4):
        batch = client.get_next_trials(max_trials=3)
        for index, p in batch.items():
            seen.append((p["a"], p["b"]))
            client.complete_trial(
                index, {"f": -((p["a"] - 2) ** 2) - p["b"], "g": -((p["b"] - 2) ** 2) - p["a"]}
            )
    assert len(seen) == 12 and len(set(seen)) == 12
    # Sobol ends with the call that reaches sobol_trials (a batch is not split); no fallback after.
    assert [node(client, i) for i in range(6, 12)] == [MODEL_NODE] * 6


def test_sobol_continues_until_trials_have_data() -> None:
    client = make_client(sobol_trials=2)
    trials = client.get_next_trials(max_trials=2)
    more = client.get_next_trials(max_trials=2)  # budget used up, nothing completed yet
    assert len(more) == 2 and {node(client, i) for i in more} == {"Sobol"}
    complete(client, trials | more)
    assert {node(client, i) for i in client.get_next_trials(max_trials=2)} == {MODEL_NODE}


def test_first_trial_is_the_centre_and_the_batch_is_full() -> None:
    client = make_client(sobol_trials=4)
    batch = client.get_next_trials(max_trials=3)
    assert len(batch) == 3
    assert [node(client, i) for i in sorted(batch)] == ["CenterOfSearchSpace", "Sobol", "Sobol"]
    centre = batch[min(batch)]
    # Ax's centre: the middle of each range (log scale for lr), the middle choice
    assert centre["lr"] == pytest.approx(10**-2.5) and centre["dropout"] == pytest.approx(0.25)
    plain = make_client(sobol_trials=4, spec=OptimizerSpec(center_first=False))
    assert {node(plain, i) for i in plain.get_next_trials(max_trials=3)} == {"Sobol"}


def test_attached_trials_count_towards_sobol() -> None:
    client = make_client(sobol_trials=4, attaches_trials=True)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = random_params(rng)
        client.complete_trial(client.attach_trial(p), evaluate(p))
    batch = client.get_next_trials(max_trials=2)
    assert {node(client, i) for i in batch} == {MODEL_NODE}


@pytest.mark.parametrize("warm_start_gp", [False, True])
def test_same_seed_same_proposals(warm_start_gp: bool) -> None:
    """Sobol and model phase repeat exactly, also when the GP fit is warm-started from a cached anchor."""
    spec = FAST.model_copy(update={"warm_start_gp": warm_start_gp})

    def run(seed: int) -> list[dict[str, Any]]:
        client = make_client(seed=seed, sobol_trials=4, spec=spec)
        first = client.get_next_trials(max_trials=4)
        complete(client, first)
        rng = np.random.default_rng(seed)
        for _ in range(8):  # 12 points: warm fits start from the anchor fit on the first 8
            p = random_params(rng)
            client.complete_trial(client.attach_trial(p), evaluate(p))
        return list(first.values()) + list(client.get_next_trials(max_trials=2).values())

    before = warm_start_stats()
    a = run(7)
    b = run(7)  # the anchor fits are cached by now
    after = warm_start_stats()
    if warm_start_gp:
        assert after["warm"] >= before["warm"] + 8
    else:
        assert after["warm"] == before["warm"] and after["cold"] >= before["cold"] + 8
    assert a == b
    assert a[:4] != run(8)[:4]


def test_strategy_survives_json_storage(tmp_path: Any) -> None:
    client = make_client(sobol_trials=3)
    complete(client, client.get_next_trials(max_trials=3))
    client.get_next_trials(max_trials=1)
    path = tmp_path / "client.json"
    client.save_to_json_file(str(path))
    loaded = Client.load_from_json_file(str(path))
    gs = loaded._generation_strategy
    assert gs.current_node_name == MODEL_NODE
    spec = gs.nodes_by_name[MODEL_NODE].generator_specs[0]
    assert spec.generator_kwargs["botorch_acqf_class"] is FastqLogNEHVI
    assert len(loaded.get_next_trials(max_trials=1)) == 1


def test_ax_default_strategy_builds() -> None:
    gs = build_generation_strategy(OptimizerSpec(strategy="ax_default"), sobol_trials=5, seed=0)
    assert [n.name for n in gs._nodes][-1] == "MBM"
