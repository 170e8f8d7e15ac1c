"""The patches of Ax: cached constraint parsing, seeded integer rounding in a fixed order, stopped
trials pending."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.optimizer import (
    MODEL_NODE,
    memoize_constraint_parsing,
    ordered_rounding,
    seeded_rounding,
    stopped_trials_pending,
)
from tests.engine.conftest import output_under_hash_seeds
from tests.engine.optimizer.helpers import complete, evaluate, make_client, node


def test_constraint_parsing_is_cached_and_unchanged() -> None:
    import ax.core.outcome_constraint as outcome_constraint
    from ax.utils.common.sympy import extract_coefficient_dict_from_inequality as sympy_parse

    memoize_constraint_parsing()
    memoize_constraint_parsing()  # idempotent
    cached = outcome_constraint.extract_coefficient_dict_from_inequality
    assert getattr(cached, "boengine_memoized", False)
    text = "2 * sharpe + return_pct >= 1.5"
    first = cached(inequality_str=text)
    first.clear()  # a caller changing its copy does not change the cache
    assert cached(inequality_str=text) == sympy_parse(inequality_str=text)


def test_proposal_rounding_is_seeded_and_leaves_random_alone() -> None:
    """Ax rounds constrained integers with the global ``random``; each proposal call gets its own seed."""
    import random

    random.seed(123)
    before = random.getstate()
    with seeded_rounding("7:3"):
        first = [random.random() for _ in range(3)]
    assert random.getstate() == before  # the process's own stream is untouched
    random.random()  # other code draws in between
    with seeded_rounding("7:3"):
        again = [random.random() for _ in range(3)]
    with seeded_rounding("7:4"):
        other = [random.random() for _ in range(3)]
    assert first == again and first != other


class _Backwards(set[str]):
    """A set that iterates its names in reverse order, as another hash seed might."""

    def __iter__(self) -> Any:
        return iter(sorted(super().__iter__(), reverse=True))


def test_integers_are_rounded_in_name_order_whatever_the_sets_order() -> None:
    import random

    import ax.adapter.transforms.int_to_float as int_to_float
    from ax.adapter.transforms.rounding import randomized_round_parameters as unpatched

    ordered_rounding()
    ordered_rounding()  # idempotent
    patched = int_to_float.randomized_round_parameters
    assert getattr(patched, "boengine_ordered", False)
    values = {"num_experts": 5.5, "top_k": 2.5, "num_layers": 3.5, "lr": 0.01}
    names = _Backwards({"num_experts", "top_k", "num_layers"})

    def rounded(fn: Any, order: Any) -> dict[str, Any]:
        random.seed(11)
        return fn(dict(values), order)

    in_name_order = rounded(unpatched, sorted(names))
    backwards = rounded(unpatched, names)
    assert backwards != in_name_order  # the order decides which draw goes to which parameter
    assert rounded(patched, names) == in_name_order
    assert rounded(patched, names)["lr"] == 0.01


_SOBOL_TRIALS = """
import json
from tests.engine.optimizer.helpers import make_client
client = make_client(seed=3, sobol_trials=8)
print(json.dumps([client.get_next_trials(max_trials=4) for _ in range(2)], sort_keys=True))
"""


def test_the_same_seed_gives_the_same_trials_under_any_hash_seed() -> None:
    """Two processes whose string hashes differ propose the same integers (top_k <= num_experts)."""
    outputs = output_under_hash_seeds(_SOBOL_TRIALS)
    assert outputs[0] == outputs[1]
    assert len({json.dumps(trial, sort_keys=True) for batch in outputs[0] for trial in batch.values()}) == 8


def _stopped_study() -> tuple[Any, int, int]:
    """A client with 4 completed Sobol trials, one early-stopped trial without objective data (only
    a learning-curve point) and one early-stopped trial that has all of it."""
    from ax.core.map_metric import MapMetric

    client = make_client(sobol_trials=4)
    client.configure_metrics([MapMetric(name="val_sharpe")])
    trials = client.get_next_trials(max_trials=6)
    complete(client, {i: trials[i] for i in sorted(trials)[:4]})
    bare, full = sorted(trials)[4:]
    client.attach_data(bare, {"val_sharpe": 0.3}, progression=1)
    client.mark_trial_early_stopped(bare)
    client.attach_data(full, evaluate(trials[full]))
    client.mark_trial_early_stopped(full)
    return client, bare, full


def _pending_trials(pending: Any, metric: str) -> set[int]:
    return {f.trial_index for f in (pending or {}).get(metric, [])}


def test_a_stopped_trial_without_objective_data_is_pending_for_those_outcomes() -> None:
    import ax.generation_strategy.generation_strategy as strategy_module
    from ax.core.utils import extract_pending_observations as unpatched

    client, bare, full = _stopped_study()
    experiment = client._experiment
    assert bare not in _pending_trials(unpatched(experiment=experiment), "sharpe")  # Ax alone forgets it
    stopped_trials_pending()
    stopped_trials_pending()  # idempotent
    patched = strategy_module.extract_pending_observations
    assert getattr(patched, "boengine_stopped_pending", False)
    pending = patched(experiment=experiment)
    for metric in ("return_pct", "sharpe", "max_drawdown_pct", "num_trades"):
        assert bare in _pending_trials(pending, metric)
        assert full not in _pending_trials(pending, metric)  # its outcomes are data, not pending
    assert bare not in _pending_trials(pending, "val_sharpe")  # it has its curve point
    assert not _pending_trials(pending, "sharpe") & set(range(4))  # completed trials are not pending


def test_the_model_step_is_given_the_stopped_trial_as_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through Ax's own call path: the generation node that proposes gets the stopped trial among its
    pending points, and proposes a new configuration."""
    from ax.generation_strategy.generation_node import GenerationNode

    stopped_trials_pending()
    client, bare, _ = _stopped_study()
    seen: list[Any] = []
    gen = GenerationNode.gen

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("pending_observations"))
        return gen(self, *args, **kwargs)

    monkeypatch.setattr(GenerationNode, "gen", spy)
    proposals = client.get_next_trials(max_trials=1)
    assert seen and bare in _pending_trials(seen[0], "sharpe")
    index = next(iter(proposals))
    assert node(client, index) == MODEL_NODE
    bare_params = client._experiment.trials[bare].arms[0].parameters
    assert proposals[index] != bare_params
