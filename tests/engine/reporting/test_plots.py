"""The shared plots (report, pareto.html, dashboard, API): no diagonal panels, an unclipped 3-D
view, parallel coordinates, per-epoch curves, hypervolume, proposal times, comparisons."""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest

from engine.analysis.results import StudyResults
from engine.interfaces.api import Study
from engine.reporting.export import write_pareto
from engine.reporting.plots import (
    compare_fronts_figure,
    compare_hypervolume_figure,
    curves_figure,
    hypervolume_figure,
    parallel_coordinates_figure,
    pareto_figures,
    proposal_times_figure,
    study_figures,
)
from engine.reporting.tables import PAGE_STYLE
from tests.engine.made_studies import trading_study


@pytest.fixture(scope="module")
def res(tmp_path_factory: pytest.TempPathFactory) -> StudyResults:
    directory = tmp_path_factory.mktemp("plots") / "trading"
    trading_study(directory, tmp_path_factory.mktemp("bars"))
    return StudyResults.load(directory)


def _axis_titles(fig: object, axis: str) -> list[str]:
    layout = fig.layout  # type: ignore[attr-defined]
    return [
        layout[name].title.text
        for name in sorted(layout)
        if name.startswith(axis) and layout[name].visible is not False and layout[name].title.text
    ]


def test_one_panel_per_pair_of_objectives_and_no_diagonal(res: StudyResults) -> None:
    pairs_fig = pareto_figures(res)[0]
    names = res.objectives.names
    xs, ys = _axis_titles(pairs_fig, "xaxis"), _axis_titles(pairs_fig, "yaxis")
    assert len(xs) == len(ys) == len(list(combinations(names, 2))) == 3
    assert all(x != y for x, y in zip(xs, ys))  # never an objective against itself
    assert {trace.type for trace in pairs_fig.data} == {"scatter"}  # no splom with its diagonal
    used = {(t.xaxis, t.yaxis) for t in pairs_fig.data}
    assert len(used) == 3


def test_the_3d_view_keeps_room_for_its_axis_titles(res: StudyResults) -> None:
    fig = pareto_figures(res)[1]
    layout = fig.layout
    scene = layout.scene
    assert all(scene[f"{a}axis"].title.text for a in "xyz")
    assert layout.margin.l >= 30 and layout.margin.r >= 30
    assert layout.legend.orientation == "h" and layout.legend.y < 0  # below the scene, not beside it
    eye = scene.camera.eye
    assert math.dist((0, 0, 0), (eye.x, eye.y, eye.z)) >= 2.4  # far enough back for the cube's corners
    assert tuple(scene.domain.x) == (0.0, 1.0) and tuple(scene.domain.y) == (0.0, 1.0)


def test_parallel_coordinates_show_parameters_then_objectives(res: StudyResults) -> None:
    fig = parallel_coordinates_figure(res)
    assert fig is not None
    dims = fig.data[0].dimensions
    labels = [d.label for d in dims]
    tunable = [p.name for p in res.spec.space.tunable]
    assert labels[: len(tunable)] == [
        f"log10 {p.name}" if getattr(p, "log", False) else p.name for p in res.spec.space.tunable
    ]
    assert labels[len(tunable) :] == ["return % ↑", "Sharpe ↑", "max drawdown % ↓"]
    flag = dims[tunable.index("predict_profit")]
    choices = res.spec.space["predict_profit"].values  # type: ignore[union-attr]
    assert list(flag.ticktext) == [str(v) for v in choices]  # a choice of booleans: named ticks
    assert list(flag.values) == [choices.index(r.params["predict_profit"]) for r in res.records]
    lr = dims[tunable.index("learning_rate")]
    assert list(lr.values) == pytest.approx([math.log10(r.params["learning_rate"]) for r in res.records])
    line = fig.data[0].line
    assert list(line.color) == pytest.approx([r.metrics["return_pct"] for r in res.records])
    assert line.reversescale is False
    assert parallel_coordinates_figure(res, "max_drawdown_pct").data[0].line.reversescale is True
    with pytest.raises(ValueError, match="not an objective"):
        parallel_coordinates_figure(res, "val_loss")


def test_curves_a_line_per_trial_broken_between_folds(res: StudyResults) -> None:
    curves = Study.from_results(res).curves()
    fig = curves_figure(res, curves)
    assert fig is not None
    assert len(fig.data) == len(res.records)  # one metric (val_loss) here: one trace per trial
    front = {r.index for r in res.front}
    for trace, rec in zip(fig.data, res.records):
        assert trace.name.startswith(f"trial {rec.index}")
        assert list(trace.x) == [1.0, 2.0, None, 3.0]  # fold 0 (two epochs), a gap, fold 1
        assert trace.line.width == (3 if rec.index in front else 1.2)
    many = pd.DataFrame(
        [
            {"trial": 0, "fold": math.nan, "epoch": e, "step": e, "metric": m, "value": float(e)}
            for e in (1, 2)
            for m in ("train_loss", "val_loss", "val_sharpe", "val_accuracy", "seconds")
        ]
    )
    fig = curves_figure(res, many)
    assert [a.text for a in fig.layout.annotations] == [
        "train_loss",
        "val_loss",
        "val_sharpe",
        "val_accuracy",
    ]
    assert fig.layout.xaxis5.visible is False and fig.layout.xaxis6.visible is False  # empty cells hidden
    assert curves_figure(res, many.iloc[0:0]) is None


def test_hypervolume_and_proposal_times(res: StudyResults, tmp_path: Path) -> None:
    fig = hypervolume_figure(res)
    assert fig is not None
    assert list(fig.data[0].y) == pytest.approx(res.objectives.hypervolume_trace(res.records))
    bars = proposal_times_figure(res)
    assert bars is not None
    assert [t.name for t in bars.data] == ["Sobol"]
    assert list(bars.data[0].y) == pytest.approx([b["seconds"] for b in res.batches])
    kinds = study_figures(res, Study.from_results(res).curves())
    assert list(kinds) == ["pareto", "hypervolume", "parallel", "curves", "proposals"]
    assert len(Study.from_results(res).figures()) == sum(len(v) for v in kinds.values()) == 6


def test_comparison_overlays_fronts_and_puts_hypervolume_side_by_side(res: StudyResults) -> None:
    fronts = compare_fronts_figure([res, res])
    names = {t.name for t in fronts.data if t.showlegend}
    label = f"trading ({res.store.dir.name})"
    assert f"{label}: front (validation)" in names and f"{label}: front (held-out test)" in names
    assert len(fronts.data) == 2 * 3 * 3  # two studies x three pairs x (other, front, test)
    hv = compare_hypervolume_figure([res, res])
    assert len(hv.data) == 2 and hv.layout.xaxis.domain[1] <= hv.layout.xaxis2.domain[0]  # side by side
    assert "same objectives" in hv.layout.title.text


def test_pareto_html_has_the_report_style_and_order(res: StudyResults, tmp_path: Path) -> None:
    body = write_pareto(res.store.dir, "html", tmp_path / "front.html").read_text()
    assert f"<style>{PAGE_STYLE}</style>" in body  # the style of report.html
    assert body.index("class='verdict") < body.index("<h2>Pareto set (validation vs held-out test")
    assert body.index("Noise yardstick: best validation Sharpe") < body.index("class='plot'")
    assert "system-ui" in body  # the figures use the page's font
