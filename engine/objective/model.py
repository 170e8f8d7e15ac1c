"""Model-family objectives: train a configuration, backtest its own predictions.

:class:`ModelObjective` holds what every validation scheme of a model family
shares: the family's search space, the metric names (from
:class:`~objectives.backtest.BacktestResult` and
:class:`~objectives.training.EpochReport`), the spec checks, the data
prepared once per study, the family's default configuration as a baseline,
and the entry written back by ``boengine best``.
:class:`HoldoutObjective` (``"validation": {"scheme": "holdout"}``) trains on
the training split less its inner selection slice, keeps the epoch with the
lowest loss on that slice, and backtests on the validation split (which
chooses nothing); the walk-forward scheme is :mod:`engine.objective.walk_forward_objective`.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.metric_rules import MARKET_METRICS, Metric, MetricCatalogue
from engine.objective.base import EpochFn, HeldOutScore, Objective, Prepared
from engine.objective.registry import register_objective
from objectives.backtest import RULE_BASELINES, BacktestResult, rule_baselines
from objectives.noise import figure_standard_errors
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, SearchSpace

if TYPE_CHECKING:
    import pandas as pd

    from engine.records import TrialRecord
    from engine.spec_model import ExperimentSpec
    from engine.store import StudyStore
    from engine.study.trial import TrialJob, TrialOutcome
    from objectives import EvalSettings, PreparedData
    from strategies import Family

__all__ = [
    "METRICS",
    "HoldoutObjective",
    "ModelObjective",
    "feature_set_for",
    "max_seq_len",
]

logger = logging.getLogger(__name__)


@functools.cache
def _curve_metrics() -> dict[str, bool]:
    """Per-epoch learning-curve metrics (the ``val_*`` fields of an EpochReport), name -> lower is
    better; computed on first use, since :mod:`objectives.training` imports torch."""
    from objectives.training import EpochReport

    return {
        f.name: f.name.endswith("loss") for f in dataclasses.fields(EpochReport) if f.name.startswith("val_")
    }


def get_family(strategy: str) -> Family:
    """The model family ``strategy``; the families (and torch) are imported on first use, so that
    reading a study of another objective does not import them."""
    from strategies import get_family as lookup

    return lookup(strategy)


#: Final metrics of a model trial: the backtest's fields, plus validation accuracy and loss.
METRICS: tuple[str, ...] = (*(f.name for f in dataclasses.fields(BacktestResult)), "val_accuracy", "val_loss")


def feature_set_for(spec: ExperimentSpec) -> str:
    """The spec's feature set, or the family's own (e.g. ``llm`` by its fixed ``mode``)."""
    if spec.data.feature_set:
        return spec.data.feature_set
    fixed = {p.name: p.value for p in spec.space.params if isinstance(p, FixedParam)}
    return get_family(spec.strategy).default_feature_set(fixed)


def max_seq_len(space: SearchSpace) -> int:
    """The longest window any proposal may ask for (1 if the space has no ``seq_len``)."""
    if "seq_len" not in space:
        return 1
    p = space["seq_len"]
    if isinstance(p, (IntParam, FloatParam)):
        return int(p.high)
    if isinstance(p, ChoiceParam):
        return int(max(float(v) for v in p.values))  # type: ignore[arg-type]
    return int(p.value)  # type: ignore[arg-type]


class ModelObjective(Objective):
    """What every validation scheme of a model family shares (not registered itself)."""

    scores_test = True
    reports_sems = True

    @classmethod
    def default_space(cls, strategy: str, preset: str) -> SearchSpace:
        family = get_family(strategy)
        return family.gpu_space() if preset == "gpu" else family.default_space()

    @classmethod
    def metric_names(cls, strategy: str) -> tuple[str, ...]:
        return METRICS

    @classmethod
    def metric_catalogue(cls, strategy: str) -> MetricCatalogue:
        """The backtest's metrics and the fit's (validation accuracy and loss): :data:`MARKET_METRICS`."""
        entries = {m.name: m for m in MARKET_METRICS}
        return MetricCatalogue(entries.get(n) or Metric(n, label=n) for n in METRICS)

    @classmethod
    def curve_metrics(cls) -> Mapping[str, bool]:
        return _curve_metrics()

    @classmethod
    def check_space(cls, strategy: str, space: SearchSpace, base: SearchSpace) -> None:
        """The family builds its config at every corner of the space; training values are accepted."""
        from strategies.registry import check_space

        check_space(strategy, space)
        check_training_values(space)

    @classmethod
    def check_spec(cls, spec: ExperimentSpec) -> None:
        from objectives.features import FEATURE_SETS

        if spec.synthetic != type(spec.synthetic)():
            raise ValueError("synthetic: settings for synthetic problems only; remove the section")
        if spec.data.feature_set is None:
            _check_feature_set_fixed(spec.strategy, spec.space)
        name = feature_set_for(spec)
        if name not in FEATURE_SETS:
            raise ValueError(
                f"data.feature_set: unknown feature set '{name}'; known: {', '.join(sorted(FEATURE_SETS))}"
            )
        _check_max_bars(spec)

    def user_metrics(self, returns: Any, positions: Any) -> dict[str, float]:
        """The spec's user metrics (``"metrics"``) of per-bar net returns and positions `n`.

        Raises:
            TrialError: a function that does not return a finite number (the trial fails with it).
        """
        from strategies.exceptions import TrialError
        from strategies.plugins import load_reference

        out: dict[str, float] = {}
        if not self.spec.metrics:
            return out
        r, p = np.asarray(returns, dtype=np.float64), np.asarray(positions, dtype=np.float64)
        for name, ref in self.spec.metrics.items():
            value = load_reference(ref, what=f"metrics.{name}")(r.copy(), p.copy())
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TrialError(f"metrics.{name}: {ref} returned {value!r}; return a float")
            if not np.isfinite(value):
                raise TrialError(f"metrics.{name}: {ref} returned {value}; return a finite float")
            out[name] = float(value)
        return out

    # -- driver ---------------------------------------------------------------------
    @property
    def max_seq_len(self) -> int:
        return max_seq_len(self.spec.space)

    def check_data(self) -> None:
        from objectives.data import check_data_header

        check_data_header(self.spec.data)

    def data_hash(self) -> str:
        from objectives.data import file_sha256, source_path

        path = source_path(self.spec.data.source)
        return file_sha256(path) if path.is_file() else ""

    def prepare(self) -> Prepared:
        from objectives import prepare_data

        data = prepare_data(
            self.spec.data, feature_set=feature_set_for(self.spec), max_seq_len=self.max_seq_len
        )
        return Prepared(facts=data.facts(), data_hash=self.data_hash(), payload=data)

    def shared_data(self, store: StudyStore) -> Any:
        if self.spec.executor.kind != "ray":
            return None  # local workers memory-map the study's data directory
        from objectives import PreparedData

        return PreparedData.load(store.data_dir, mmap=False)

    def last_bar(self) -> pd.Timestamp | None:
        import pandas as pd

        from objectives import load_spec_bars

        return pd.Timestamp(load_spec_bars(self.spec.data).index[-1])

    def training_bars(self) -> pd.DataFrame:
        from objectives import train_bars

        return train_bars(self.spec.data, max_seq_len=self.max_seq_len)

    def baseline_configurations(self) -> list[dict[str, Any]]:
        """The family's default configuration (its original recipe and sizes) fitted into the space."""
        from strategies.priors import family_defaults, fit_point, scale_into

        family = get_family(self.spec.strategy)
        space = self.spec.space
        point = fit_point(space, scale_into(space, family.gpu_space(), family_defaults(self.spec.strategy)))
        return [dict(point)]

    def baseline_returns(self, store: StudyStore) -> dict[str, dict[str, tuple[dict[str, float], Any]]]:
        """The rule baselines (:func:`objectives.backtest.rule_baselines`) on the out-of-sample
        validation bars (the stitched blocks of a walk-forward study, the validation split of a
        holdout one) and on the test split, with the study's costs."""
        from objectives import PreparedData

        data = PreparedData.load(store.data_dir, mmap=True)
        bt = self.spec.backtest
        out: dict[str, dict[str, tuple[dict[str, float], Any]]] = {
            name: {} for name, level in RULE_BASELINES.items() if level >= 0 or bt.allow_short
        }
        for split, name in (("val", "validation"), ("test", "test")):
            bars = data.splits.bars(split)
            if len(bars) < 2:
                continue
            rules = rule_baselines(
                np.asarray(data.close[bars]),
                fee_bps=bt.fee_bps,
                slippage_bps=bt.slippage_bps,
                allow_short=bt.allow_short,
                periods_per_year=data.periods_per_year,
            )
            for baseline, (result, returns) in rules.items():
                metrics = result.to_dict()
                if name == "test":
                    metrics.update(figure_standard_errors(returns, data.periods_per_year, self.spec.seed))
                out[baseline][name] = (metrics, returns)
        return out

    def eval_settings(self, seed: int, device: str | None = None) -> EvalSettings:
        from objectives import EvalSettings

        return EvalSettings(
            max_epochs=self.spec.budget.max_epochs,
            time_budget_s=self.spec.budget.trial_time_budget_s,
            backtest=self.spec.backtest,
            seed=seed,
            device=device or self.spec.executor.device,
        )

    # -- the end --------------------------------------------------------------------------
    def describe(self, meta: Mapping[str, Any]) -> dict[str, str]:
        spec = self.spec
        label = spec.data.label
        bt = spec.backtest
        return {
            "data": spec.data.source,
            "feature set": str(meta.get("feature_set", "-")),
            "bars": f"{meta.get('first_timestamp', '?')} .. {meta.get('last_timestamp', '?')}",
            "bar frequency": f"{meta.get('bar_seconds', 0):g} s ({meta.get('periods_per_year', 0):.0f} bars a year)",
            "labels": f"scheme {label.scheme}, horizon {label.horizon} bars, threshold {label.profit_threshold:g}",
            "costs": f"{bt.fee_bps:g} bp fee + {bt.slippage_bps:g} bp slippage per unit of turnover",
            "gate": f"{bt.gate}, confidence_gate {bt.confidence_gate:g}, shorts {'on' if bt.allow_short else 'off'}",
        }

    def gate_bars(self, store: StudyStore, record: TrialRecord, data: PreparedData) -> Any:
        """The training bars of the model a live system would load (its gate is calibrated on them)."""
        return None  # the training split

    def config_entry(self, store: StudyStore, record: TrialRecord) -> dict[str, Any]:
        """The family's model config and the backtest settings (with the gate the chosen model trades with)."""
        from strategies import model_config

        meta = store.read_meta()
        cfg = model_config(self.spec.strategy, record.params, int(meta.facts["input_size"]))
        backtest: dict[str, Any] = self.spec.backtest.model_dump()
        backtest["confidence_gate"] = record.params.get("confidence_gate", self.spec.backtest.confidence_gate)
        ckpt = store.model_path(record.index)
        if ckpt is not None and store.has_prepared_data() and self.spec.backtest.gate == "probability":
            backtest["min_confidence"] = float(
                backtest["confidence_gate"]
            )  # the gate itself: no model to load
        elif ckpt is not None and store.has_prepared_data():
            from objectives import PreparedData
            from objectives.evaluate import TrialModel

            data = PreparedData.load(store.data_dir, mmap=True)
            settings = self.eval_settings(self.spec.seed, device="cpu")
            backtest["min_confidence"] = TrialModel.load(
                self.spec.strategy, record.params, data, settings, ckpt
            ).gate()
        return {"model_config": dataclasses.asdict(cfg), "backtest": backtest}  # type: ignore[call-overload]


@register_objective("holdout")
class HoldoutObjective(ModelObjective):
    """Train on the training split, keep the epoch with the lowest loss on its inner selection slice,
    backtest on the validation split."""

    @classmethod
    def check_spec(cls, spec: ExperimentSpec) -> None:
        super().check_spec(spec)
        if spec.metrics:
            raise ValueError(
                f"metrics: user metrics ({', '.join(spec.metrics)}) are computed on the stitched "
                'walk-forward positions; set "validation": {"scheme": "walk_forward"} or remove metrics'
            )

    def run_trial(self, job: TrialJob, on_epoch: EpochFn, data: Any = None) -> TrialOutcome:
        from engine.objective.pipeline import load_prepared
        from engine.study.trial import TrialOutcome, report_dict
        from objectives.evaluate import evaluate
        from objectives.noise import bootstrap_standard_errors

        prepared = data if data is not None else load_prepared(str(job.data_dir))
        with tempfile.TemporaryDirectory(prefix="boengine-trial-") as tmp:
            ckpt = Path(tmp) / "weights.pt"  # a scratch file: the driver writes the trial's model.pt
            result = evaluate(
                self.spec.strategy,
                job.params,
                prepared,
                self.eval_settings(job.seed),
                on_epoch=lambda r: on_epoch(report_dict(r)),
                checkpoint_path=ckpt,
            )
            payload = ckpt.read_bytes() if ckpt.is_file() else None
        # a stop request after the last epoch leaves a fully trained model
        stopped = result.stopped_by_callback and result.epochs_run < self.spec.budget.max_epochs
        returns = result.returns if result.returns is not None else np.zeros(0)
        return TrialOutcome(
            job.trial_index,
            "early_stopped" if stopped else "completed",
            metrics={k: float(v) for k, v in result.metrics.items()},
            epochs=result.epochs_run,
            seconds={k: float(v) for k, v in result.seconds.items()},
            checkpoint=payload,
            sems=bootstrap_standard_errors(returns, prepared.periods_per_year, seed=job.seed),
            arrays={"returns": returns}
            if result.positions is None
            else {"returns": returns, "positions": result.positions},
            info={"best_epoch": result.best_epoch, "stop_reason": result.stop_reason},
        )

    def score_test(
        self, store: StudyStore, records: Sequence[TrialRecord], *, threads: int
    ) -> dict[int, HeldOutScore]:
        """The saved weights of each record scored on the test split (no retraining)."""
        from engine.study.trial import set_worker_threads
        from objectives import PreparedData
        from objectives.evaluate import TrialModel

        todo = [r for r in records if store.checkpoint_path(r.index).is_file()]
        if not todo:
            return {}
        set_worker_threads(threads)
        data = PreparedData.load(store.data_dir, mmap=True)
        out: dict[int, HeldOutScore] = {}
        for rec in todo:
            settings = self.eval_settings(self.spec.seed, device="cpu")
            model = TrialModel.load(
                self.spec.strategy, rec.params, data, settings, store.checkpoint_path(rec.index)
            )
            metrics, returns = model.score("test")
            metrics.update(figure_standard_errors(returns, data.periods_per_year, self.spec.seed))
            out[rec.index] = HeldOutScore(metrics, returns)
        return out

    def describe(self, meta: Mapping[str, Any]) -> dict[str, str]:
        splits = meta.get("splits", {})
        h = self.spec.data.label.horizon
        return {
            **super().describe(meta),
            "validation": f"holdout: train / validation / test {splits.get('train', '?')} / "
            f"{splits.get('val', '?')} / {splits.get('test', '?')} decision bars, purge gaps of {h} bars; "
            f"the epoch is chosen on the last {self.spec.data.validation.select_fraction:.0%} of the training "
            "split (not trained on), never on the validation split",
        }


class RefitObjective(ModelObjective):
    """A model objective whose test figures come from a final fit on every bar before the test
    split (walk-forward, CPCV): each subclass says how long a record's final fit trains, from
    which weights, and which bars its last validation fit trained on."""

    def final_fit(self, store: StudyStore, record: TrialRecord) -> tuple[int, Path | None] | None:
        """Epochs of ``record``'s final fit and the weights it starts from (None: from scratch);
        None when the record was not evaluated on every split here (e.g. attached)."""
        raise NotImplementedError

    def last_fit_bars(self, data: PreparedData) -> Any:
        """Training bars of the last validation fit (the gate's bars without a final fit)."""
        raise NotImplementedError

    def score_test(
        self, store: StudyStore, records: Sequence[TrialRecord], *, threads: int
    ) -> dict[int, HeldOutScore]:
        """The final fit of each record, scored on the test split (its weights become ``final.pt``)."""
        import torch

        from engine.study.trial import set_worker_threads
        from objectives import PreparedData
        from objectives.walk_forward import refit_and_score

        set_worker_threads(threads)
        data = PreparedData.load(store.data_dir, mmap=True)
        out: dict[int, HeldOutScore] = {}
        for rec in records:
            plan = self.final_fit(store, rec)
            if plan is None or not store.checkpoint_path(rec.index).is_file():
                continue
            epochs, init_state = plan
            metrics, returns, state = refit_and_score(
                self.spec.strategy,
                rec.params,
                data,
                self.eval_settings(self.spec.seed, device="cpu"),
                epochs=epochs,
                init_state=init_state,
            )
            buffer = io.BytesIO()
            torch.save(state, buffer)
            metrics.update(figure_standard_errors(returns, data.periods_per_year, self.spec.seed))
            out[rec.index] = HeldOutScore(metrics, returns, buffer.getvalue())
        return out

    def gate_bars(self, store: StudyStore, record: TrialRecord, data: PreparedData) -> Any:
        if store.final_model_path(record.index).is_file() and data.final is not None:
            return data.final.train_bars()
        return self.last_fit_bars(data)


def _check_feature_set_fixed(strategy: str, space: SearchSpace) -> None:
    """A parameter that changes the family's feature set cannot be searched.

    Features are prepared once per study, so e.g. the ``llm`` strategy's
    ``mode`` (hybrid or pure_ml features) must be a fixed value.
    """
    family = get_family(strategy)
    fixed = {p.name: p.value for p in space.params if isinstance(p, FixedParam)}
    base = family.default_feature_set(fixed)
    for p in space.tunable:
        if isinstance(p, ChoiceParam) and any(
            family.default_feature_set({**fixed, p.name: v}) != base for v in p.values
        ):
            raise ValueError(
                f"search_space.{p.name}: it selects the feature set, which is prepared once per study; "
                f'fix it to one value (e.g. "{p.name}": {json.dumps(p.values[0])})'
            )


def _check_max_bars(spec: ExperimentSpec) -> None:
    """``data.max_bars`` caps the bars: too few of them for the splits or folds is known now."""
    from objectives.dataset import check_length, check_walk_forward
    from strategies.exceptions import DataError

    data = spec.data
    if data.max_bars is None:
        return
    seq_len, horizon = max_seq_len(spec.space), data.label.horizon
    try:
        if data.validation.scheme == "walk_forward":
            check_walk_forward(
                data.max_bars, seq_len, horizon, data.splits, data.validation, source="data.max_bars"
            )
        elif data.validation.scheme == "cpcv":
            from objectives.cpcv import check_cpcv

            check_cpcv(data.max_bars, seq_len, horizon, data.splits, data.validation, source="data.max_bars")
        else:
            check_length(
                data.max_bars,
                seq_len,
                horizon,
                data.splits,
                source="data.max_bars",
                select_fraction=data.validation.select_fraction,
            )
    except DataError as exc:
        raise ValueError(f"{exc} (raise data.max_bars)") from None


def check_training_values(space: SearchSpace) -> None:
    """Every value a training parameter can take is one the training loop accepts."""
    from objectives import TrainConfig
    from strategies import TRAINING_PARAMS
    from strategies.exceptions import ConfigError
    from strategies.registry import param_corners

    for p in space.params:
        if p.name not in TRAINING_PARAMS:
            continue
        for value, fix in param_corners(p):
            try:
                TrainConfig.from_params({p.name: value})
            except ConfigError as exc:
                shown = json.dumps(value, default=str)
                raise ConfigError(
                    f"search_space.{p.name}: {p.name} = {shown} is refused: {exc}; {fix}"
                ) from None
