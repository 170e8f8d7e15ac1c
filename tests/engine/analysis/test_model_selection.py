"""Selection from the model: the GP's posterior mean re-ranks noisy observations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.analysis.model_selection import encode_configurations, posterior_means, select_from_model
from engine.records import ObjectiveSet, TrialRecord
from strategies.space import ChoiceParam, FixedParam, FloatParam, IntParam, SearchSpace

SPACE = SearchSpace((FloatParam("x", 0.0, 1.0),))
ONE = ObjectiveSet(names=("sharpe",), maximize=(True,), thresholds=(-10.0,))


def truth(x: float) -> float:
    """A smooth objective with its best at x = 0.6."""
    return 1.0 - 4.0 * (x - 0.6) ** 2


def noisy_records(
    lucky_at: float = 0.0, lucky_value: float = 1.5, lucky_se: float = 1.0
) -> list[TrialRecord]:
    """15 evaluated configurations with small standard errors, and one lucky one: a bad configuration
    (true value ``truth(lucky_at)``) observed far above everything else, with a large standard error."""
    rng = np.random.default_rng(0)
    xs = np.linspace(0.0, 1.0, 15)
    out = []
    for i, x in enumerate(xs):
        value, se = truth(float(x)) + rng.normal(0.0, 0.05), 0.1
        out.append(
            TrialRecord(
                index=i,
                status="completed",
                params={"x": float(x)},
                metrics={"sharpe": value},
                sems={"sharpe": se},
            )
        )
    out.append(
        TrialRecord(
            index=len(xs),
            status="completed",
            params={"x": lucky_at},
            metrics={"sharpe": lucky_value},
            sems={"sharpe": lucky_se},
        )
    )
    return out


def test_lucky_observation_is_picked_from_observations_but_not_from_the_model() -> None:
    records = noisy_records()
    sel = select_from_model(SPACE, ONE, records)
    lucky = records[-1]
    assert sel.observed_knee is lucky  # the observations select luck
    assert sel.knee is not None and sel.knee is not lucky
    assert sel.changed
    # the model's pick is near the true optimum, and truly better than the lucky one
    assert abs(sel.knee.params["x"] - 0.6) <= 0.15
    assert truth(sel.knee.params["x"]) > truth(lucky.params["x"]) + 1.0
    # the lucky observation is shrunk towards its neighbours (true value -0.44)
    assert sel.means[-1, 0] < 0.5


def test_without_an_outlier_the_pick_is_among_the_best_measured() -> None:
    """No lucky outlier: the model's pick is one of the best observations (within two standard
    errors of the best), next to the observed pick."""
    records = noisy_records()[:-1]
    sel = select_from_model(SPACE, ONE, records)
    assert sel.knee is not None and sel.observed_knee is not None
    assert sel.knee.metrics["sharpe"] >= sel.observed_knee.metrics["sharpe"] - 2 * 0.1
    assert abs(sel.knee.params["x"] - sel.observed_knee.params["x"]) <= 0.1


def test_means_follow_the_records_order_and_skip_unfinished() -> None:
    records = noisy_records()
    records[3] = TrialRecord(index=3, status="failed", params={"x": records[3].params["x"]})
    records[5].metrics["sharpe"] = math.nan
    means = posterior_means(SPACE, ONE.names, records)
    assert means.shape == (len(records), 1)
    assert np.isnan(means[3]).all() and np.isnan(means[5]).all()
    assert np.isfinite(np.delete(means, [3, 5], axis=0)).all()
    # the same records in another order give the same means, in that order
    order = np.random.default_rng(1).permutation(len(records))
    shuffled = posterior_means(SPACE, ONE.names, [records[i] for i in order])
    np.testing.assert_allclose(shuffled, means[order], rtol=1e-5, atol=1e-6)
    sel = select_from_model(SPACE, ONE, records)
    assert sel.knee is not None and sel.knee.index not in (3, 5)


def test_well_measured_points_stay_close_to_their_observations() -> None:
    records = noisy_records()[:-1]
    means = posterior_means(SPACE, ONE.names, records)[:, 0]
    observed = np.array([r.metrics["sharpe"] for r in records])
    assert np.abs(means - observed).max() < 0.2


def test_without_standard_errors_the_noise_is_learned() -> None:
    records = noisy_records()[:-1]
    for r in records:
        r.sems.clear()
    means = posterior_means(SPACE, ONE.names, records)
    assert np.isfinite(means).all()
    assert abs(records[int(np.argmax(means[:, 0]))].params["x"] - 0.6) <= 0.15


def test_too_few_points_return_the_observations() -> None:
    records = noisy_records()[:2]
    means = posterior_means(SPACE, ONE.names, records)
    np.testing.assert_array_equal(means[:, 0], [r.metrics["sharpe"] for r in records])


def test_feasibility_is_judged_on_the_observations() -> None:
    """A configuration that breaks an outcome constraint is never chosen, whatever its mean."""
    objs = ObjectiveSet(
        names=("sharpe",), maximize=(True,), thresholds=(-10.0,), constraints=(("num_trades", ">=", 10.0),)
    )
    records = noisy_records()[:-1]
    for r in records:
        r.metrics["num_trades"] = 50.0
    best = max(records, key=lambda r: r.metrics["sharpe"])
    best.metrics["num_trades"] = 3.0
    sel = select_from_model(SPACE, objs, records)
    assert sel.knee is not None and sel.knee is not best
    assert best not in sel.front


def test_two_objectives_front_members_are_original_records() -> None:
    objs = ObjectiveSet(names=("a", "b"), maximize=(True, False), thresholds=(-10.0, 10.0))
    rng = np.random.default_rng(3)
    records = []
    for i, x in enumerate(np.linspace(0.0, 1.0, 12)):
        records.append(
            TrialRecord(
                index=i,
                status="completed",
                params={"x": float(x)},
                metrics={"a": float(x) + rng.normal(0, 0.02), "b": float(x) ** 2 + rng.normal(0, 0.02)},
                sems={"a": 0.02, "b": 0.02},
            )
        )
    sel = select_from_model(SPACE, objs, records)
    assert sel.front and all(any(m is r for r in records) for m in sel.front)
    assert sel.knee in sel.front
    assert sel.means.shape == (12, 2)


def test_encoding_is_the_unit_cube_in_the_space_order() -> None:
    space = SearchSpace(
        (
            FloatParam("lr", 1e-4, 1e-2, log=True),
            IntParam("seq_len", 2, 12),
            FixedParam("layers", 1),
            ChoiceParam("hidden", (8, 16, 32)),
            ChoiceParam("kind", ("a", "b", "c"), ordered=False),
        )
    )
    x = encode_configurations(
        space,
        [
            {"lr": 1e-4, "seq_len": 2, "layers": 1, "hidden": 8, "kind": "b"},
            {"lr": 1e-3, "seq_len": 7, "layers": 1, "hidden": 16, "kind": "c"},
            {"lr": 1e-2, "seq_len": 12, "layers": 1, "hidden": 32, "kind": "a"},
        ],
    )
    assert x.shape == (3, 1 + 1 + 1 + 3)  # the fixed parameter is not encoded; the unordered one is one-hot
    np.testing.assert_allclose(x[:, 0], [0.0, 0.5, 1.0])  # log scale
    np.testing.assert_allclose(x[:, 1], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(x[:, 2], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(x[:, 3:], [[0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_the_noisier_the_lucky_point_the_more_it_is_shrunk() -> None:
    shrunk = [posterior_means(SPACE, ONE.names, noisy_records(lucky_se=se))[-1, 0] for se in (0.3, 2.0)]
    assert shrunk[1] < shrunk[0] < 1.5


def lucky_study_records() -> list[TrialRecord]:
    """30 configurations of the synthetic DTLZ2 space measured with small standard errors (return
    against Sharpe along x0, drawdown along x1), and one lucky one: a middling configuration observed
    to dominate every other, with a large standard error."""
    rng = np.random.default_rng(4)
    out = []
    for i in range(30):
        x = {f"x{k}": float(v) for k, v in enumerate(rng.uniform(0.0, 1.0, 6))}
        truth3 = (x["x0"], 1.0 - x["x0"], 0.5 * x["x1"])
        metrics = dict(
            zip(("return_pct", "sharpe", "max_drawdown_pct"), (v + rng.normal(0, 0.02) for v in truth3))
        )
        out.append(
            TrialRecord(
                index=i, status="completed", params=x, metrics=metrics, sems=dict.fromkeys(metrics, 0.02)
            )
        )
    lucky = {**{f"x{k}": 0.5 for k in range(6)}, "x1": 0.9}
    metrics = {"return_pct": 1.5, "sharpe": 1.5, "max_drawdown_pct": 0.0}
    out.append(
        TrialRecord(
            index=30, status="completed", params=lucky, metrics=metrics, sems=dict.fromkeys(metrics, 1.0)
        )
    )
    return out


def test_choose_front_follows_the_spec_selection() -> None:
    from engine.analysis.model_selection import choose_front
    from tests.engine.conftest import synthetic_spec

    records = lucky_study_records()
    lucky = records[-1]
    observed = choose_front(synthetic_spec(), records)
    assert observed.by == "observed" and observed.front == [lucky]  # it dominates every observation
    assert observed.knee(ObjectiveSet.from_spec(synthetic_spec())) is lucky
    assert observed.figures[30] == lucky.metrics

    spec = synthetic_spec(selection={"front": "posterior_mean"})
    objectives = ObjectiveSet.from_spec(spec)
    chosen = choose_front(spec, records)
    expected = select_from_model(spec.space, objectives, records)
    assert chosen.by == "posterior_mean"
    assert [r.index for r in chosen.front] == [r.index for r in expected.front]
    assert len(chosen.front) > 1 and all(any(m is r for r in records) for m in chosen.front)  # as measured
    knee = chosen.knee(objectives)
    assert knee is not None and knee is expected.knee and knee is not lucky
    assert chosen.figures[knee.index] != knee.metrics  # chosen by the posterior means, not the observations
    best_sharpe = chosen.best(objectives, "sharpe")
    assert best_sharpe is not None and best_sharpe in chosen.front
    assert chosen.figures[best_sharpe.index]["sharpe"] == max(
        chosen.figures[r.index]["sharpe"] for r in chosen.front
    )


def test_a_study_with_selection_from_the_model_scores_and_reports_that_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.study.finish as finish
    from engine.analysis.model_selection import choose_front
    from engine.analysis.results import StudyResults
    from engine.reporting.report import POSTERIOR_NOTE
    from engine.study.run import run_study
    from tests.engine.conftest import synthetic_spec

    scored: list[int] = []
    evaluate_on_test = finish.evaluate_on_test

    def spy(objective: Any, store: Any, records: Any, **kw: Any) -> Any:
        scored.extend(r.index for r in records)
        return evaluate_on_test(objective, store, records, **kw)

    monkeypatch.setattr(finish, "evaluate_on_test", spy)
    spec = synthetic_spec(selection={"front": "posterior_mean"}, budget={"trials": 8, "sobol_trials": 8})
    outcome = run_study(spec, tmp_path / "study")
    res = StudyResults.load(tmp_path / "study")
    expected = select_from_model(spec.space, ObjectiveSet.from_spec(spec), res.records)
    assert res.choice.by == "posterior_mean"
    assert [r.index for r in res.front] == [r.index for r in expected.front]
    assert [r.index for r in outcome.front] == [r.index for r in expected.front]
    assert expected.knee is not None and res.pick("knee").index == expected.knee.index
    assert scored == [r.index for r in expected.front]  # the finish test-scores this front
    assert POSTERIOR_NOTE in (tmp_path / "study" / "report.md").read_text()
    default = synthetic_spec()
    assert choose_front(default, res.records).front == ObjectiveSet.from_spec(default).front(res.records)


def test_means_are_remembered_by_the_records_content(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard and the output commands read a study many times: equal records are not fitted
    again; a changed observation is."""
    import copy

    import engine.analysis.model_selection as ms

    records = noisy_records()
    first = posterior_means(SPACE, ONE.names, records)

    def no_fit(*args: Any) -> np.ndarray:
        raise AssertionError("fitted again")

    monkeypatch.setattr(ms, "_fit_means", no_fit)
    again = posterior_means(SPACE, ONE.names, copy.deepcopy(records))  # the same content, new objects
    np.testing.assert_array_equal(again, first)
    records[2].metrics["sharpe"] += 0.5
    with pytest.raises(AssertionError, match="fitted again"):
        posterior_means(SPACE, ONE.names, records)


def test_the_fit_is_seeded_and_a_failed_fit_keeps_the_observations(monkeypatch: pytest.MonkeyPatch) -> None:
    """BoTorch retries a failed fit from random values: the fit draws from a fixed seed, so the same
    records give the same means whatever the caller's torch state (a fit that draws stands in)."""
    import botorch.fit
    import torch
    from botorch.exceptions.errors import ModelFittingError

    import engine.analysis.model_selection as ms

    def drawing(mll: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            for param in mll.model.parameters():
                param.add_(0.3 * torch.rand_like(param))
        return mll

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", drawing)
    records = noisy_records()
    means = []
    for seed in (1, 2):
        ms._MEANS.clear()
        torch.manual_seed(seed)
        means.append(posterior_means(SPACE, ONE.names, records))
    np.testing.assert_array_equal(means[0], means[1])

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise ModelFittingError("all attempts failed")

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", failing)
    ms._MEANS.clear()
    kept = posterior_means(SPACE, ONE.names, records)
    np.testing.assert_array_equal(kept[:, 0], [r.metrics["sharpe"] for r in records])
