"""The objective protocol: what every trial of a study evaluates.

A study has exactly one objective, chosen by the spec (a synthetic problem,
or a model family under a validation scheme) and found in
:data:`OBJECTIVES` by name. The loop, the store, the exports and the CLI
only talk to this interface:

========================  =====================================================
spec time (class level)   :meth:`Objective.default_space`,
                          :meth:`Objective.metric_names`,
                          :meth:`Objective.metric_catalogue`,
                          :meth:`Objective.curve_metrics`,
                          :meth:`Objective.check_spec`
driver, once per study    :meth:`Objective.prepare` (data in memory; nothing
                          written), :meth:`Objective.shared_data`,
                          :meth:`Objective.training_bars` (for priors),
                          :meth:`Objective.baseline_configurations`
worker, once per trial    :meth:`Objective.run_trial` (with its per-epoch
                          progress callback)
driver, at the end        :meth:`Objective.score_test`,
                          :meth:`Objective.describe`,
                          :meth:`Objective.config_entry`
========================  =====================================================

An objective instance holds the validated spec and is picklable: a trial job
carries it to the worker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.metric_rules import MetricCatalogue

if TYPE_CHECKING:
    import pandas as pd

    from engine.records import TrialRecord
    from engine.spec_model import ExperimentSpec
    from engine.store import StudyStore
    from engine.study.trial import TrialJob, TrialOutcome
    from strategies.space import SearchSpace

__all__ = ["EpochFn", "HeldOutScore", "Objective", "Prepared"]

EpochFn = Callable[[Mapping[str, float]], bool]
"""Per-epoch progress callback of a trial; returning True asks the trial to stop."""


@dataclass
class Prepared:
    """What :meth:`Objective.prepare` made in memory, before anything is written.

    Attributes:
        facts: JSON-ready facts about the data for ``meta.json`` (input size,
            feature set, splits, bar frequency, first and last timestamp).
        data_hash: SHA-256 of the data file the study reads ('' for none).
        payload: the prepared data, written by :meth:`save` (None: nothing to write).
    """

    facts: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    payload: Any = None

    def save(self, directory: Path) -> None:
        if self.payload is not None:
            self.payload.save(directory)


@dataclass(frozen=True)
class HeldOutScore:
    """A trial scored on the held-out test split: its metrics, per-bar net returns, and the
    weights of the model scored when it was trained for the test (walk-forward's final fit)."""

    metrics: dict[str, float]
    returns: Any = None  # `T_test` float array, or None
    checkpoint: bytes | None = None


class Objective(ABC):
    """Base class of every objective; see the module docstring for the contract."""

    name: ClassVar[str]
    #: Whether the final set gets held-out test figures (:meth:`score_test`).
    scores_test: ClassVar[bool] = False
    #: Whether trials report a standard error per objective: Ax then models known noise, and
    #: the study's quasi-random start is longer (:meth:`engine.spec_model.BudgetSpec.sobol_count`).
    reports_sems: ClassVar[bool] = False

    def __init__(self, spec: ExperimentSpec) -> None:
        self.spec = spec

    # -- spec time ------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def default_space(cls, strategy: str, preset: str) -> SearchSpace:
        """The search space of ``strategy`` before the spec's overrides."""

    @classmethod
    @abstractmethod
    def metric_names(cls, strategy: str) -> tuple[str, ...]:
        """Final metrics a trial reports (objectives and constraints are chosen from these)."""

    @classmethod
    def metric_catalogue(cls, strategy: str) -> MetricCatalogue:
        """Label, unit, goal and range of each of :meth:`metric_names` (plain entries by default)."""
        return MetricCatalogue.plain(cls.metric_names(strategy))

    @property
    def catalogue(self) -> MetricCatalogue:
        """The study's metrics: :meth:`metric_catalogue` plus the spec's user metrics."""
        return self.metric_catalogue(self.spec.strategy).with_user(self.spec.metrics)

    @classmethod
    def curve_metrics(cls) -> Mapping[str, bool]:
        """Per-epoch learning-curve metrics, name -> lower is better (early stopping uses one)."""
        return {}

    @classmethod
    def check_space(cls, strategy: str, space: SearchSpace, base: SearchSpace) -> None:
        """Check a spec's search space (``base``: the default one); raise ConfigError naming the entry."""
        return None

    @classmethod
    def check_spec(cls, spec: ExperimentSpec) -> None:
        """Objective-specific checks of a parsed spec; raise ValueError with one clear line."""
        return None

    def planned_epochs(self) -> int:
        """Epochs a trial trains when nothing stops it (its learning curve's last step)."""
        return self.spec.budget.max_epochs

    # -- driver, once per study -------------------------------------------------------
    def check_data(self) -> None:
        """Check what can be known of the data without loading it (file, header); raise InputError."""
        return None

    def data_hash(self) -> str:
        """SHA-256 of the data file the study reads ('' when there is none)."""
        return ""

    def prepare(self) -> Prepared:
        """Load and prepare the study's data in memory (validation errors raise here)."""
        return Prepared()

    def shared_data(self, store: StudyStore) -> Any:
        """What every worker receives with each job when it cannot read the study directory (Ray)."""
        return None

    def last_bar(self) -> pd.Timestamp | None:
        """Time of the last bar the study may use (after ``data.end``); None without market data.
        Names a study window (``boengine run --window``)."""
        return None

    def training_bars(self) -> pd.DataFrame:
        """Raw bars of the training part, all that data-driven priors may look at."""
        from strategies.exceptions import ConfigError

        raise ConfigError(f"{self.name}: data-driven priors need market data")

    def baseline_returns(self, store: StudyStore) -> dict[str, dict[str, tuple[dict[str, float], Any]]]:
        """Rule baselines (flat, buy-and-hold) on the validation bars and the test split:
        ``{name: {"validation" | "test": (metrics, per-bar net returns)}}``; none by default."""
        return {}

    def baseline_configurations(self) -> list[dict[str, Any]]:
        """Configurations evaluated first as baselines (e.g. the family's defaults); none by default."""
        return []

    # -- worker -----------------------------------------------------------------------
    @abstractmethod
    def run_trial(self, job: TrialJob, on_epoch: EpochFn, data: Any = None) -> TrialOutcome:
        """Evaluate one configuration; may raise (the caller records the failure)."""

    # -- driver, at the end ---------------------------------------------------------------
    def score_test(
        self, store: StudyStore, records: Sequence[TrialRecord], *, threads: int
    ) -> dict[int, HeldOutScore]:
        """Held-out test figures of ``records`` (the final set); none by default."""
        return {}

    def describe(self, meta: Mapping[str, Any]) -> dict[str, str]:
        """Lines for the report: what the data, splits, costs and labels were."""
        return {}

    def config_entry(self, store: StudyStore, record: TrialRecord) -> dict[str, Any]:
        """Extra fields of a ``best --write-config`` entry (model config, backtest gate)."""
        return {}
