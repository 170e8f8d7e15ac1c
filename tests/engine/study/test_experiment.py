"""The Ax client a study makes: its quasi-random start follows the objective's noise."""

from __future__ import annotations

from pathlib import Path

import pytest
from ax.generation_strategy.transition_criterion import MinTrials

from engine.objective.registry import objective_class
from engine.optimizer.strategy import SOBOL_NODE
from engine.spec import parse_spec
from engine.study.experiment import configure_client


def _sobol_threshold(spec_raw: dict[str, object], tmp_path: Path) -> int:
    client = configure_client(parse_spec(spec_raw), f"sqlite:///{tmp_path / 'ax.db'}")
    node = next(n for n in client._generation_strategy._nodes if n.name == SOBOL_NODE)
    (count,) = [
        c.threshold for c in node.transition_criteria if isinstance(c, MinTrials) and c.not_in_statuses
    ]
    return count


@pytest.mark.parametrize(
    ("strategy", "noisy", "expected"),
    [("synthetic:dtlz2", False, 4), ("lstm", True, 8)],
)
def test_the_sobol_phase_is_longer_when_trials_report_standard_errors(
    strategy: str, noisy: bool, expected: int, tmp_path: Path
) -> None:
    assert objective_class(strategy, "walk_forward").reports_sems is noisy
    assert _sobol_threshold({"name": "x", "strategy": strategy}, tmp_path) == expected


def test_a_given_sobol_budget_is_kept(tmp_path: Path) -> None:
    raw = {"name": "x", "strategy": "synthetic:dtlz2", "budget": {"sobol_trials": 7}}
    assert _sobol_threshold(raw, tmp_path) == 7
