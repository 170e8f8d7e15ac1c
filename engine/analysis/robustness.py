"""How robust the pick and the front are: cost stress, Monte Carlo, parameter stability.

Three views of the configuration ``boengine best`` writes (the *pick*: the
knee by default) and of the Pareto front, all from what the study stored;
nothing is trained again.

- **Cost stress** (:func:`stressed_figures`, :func:`cost_stress`): each
  trial's stored out-of-sample positions (``trials/<i>/positions.npy``: the
  stitched walk-forward positions, or the holdout's) backtested again on the same closes at
  :data:`COST_MULTIPLES` times the study's fee and slippage, with the
  backtest's own cost model (:func:`objectives.backtest.net_returns`): total
  return %, Sharpe ratio and maximum drawdown % of each. At 1x the figures are
  the trial's own. Buy-and-hold (and short-and-hold where the study allows
  shorts) are stressed the same way. A trial without ``positions.npy``
  (CPCV trials, whose returns are a mean over paths; studies made before
  positions were stored) is listed as
  having no positions stored, never guessed.
- **Monte Carlo** (:func:`monte_carlo`): the pick's per-bar out-of-sample
  net returns and buy-and-hold's over the same bars, resampled *jointly*
  (the same indices for both, so the comparison is paired) with
  ``arch``'s stationary bootstrap; the mean block length is
  :func:`objectives.noise.block_length` (``arch.bootstrap.optimal_block_length``,
  stationary column, of the returns and their squares, the larger). The 5th,
  50th and 95th percentiles over the resamples of the total return %, the
  annualised Sharpe ratio and the maximum drawdown %, computed by
  :func:`objectives.backtest.equity_stats`, the function behind every figure
  of the report.
- **Parameter stability** (:func:`fit_gp`, :func:`plateau_score`,
  :func:`stability`): one GP per objective (the optimizer's own
  :class:`engine.optimizer.gp.WarmStartSingleTaskGP`, cold fit, with the
  trials' standard errors as known noise when every trial has one) fitted to
  the completed trials of this study in the optimizer's normalized
  coordinates (Ax's ``Cont_X_trans`` transforms, which the generation
  strategy applies to the same search space: log scale, integers relaxed,
  unit cube, unordered choices one-hot). Along each searched parameter through
  the pick (the others held at the pick): the posterior mean and SD on a grid
  of :data:`GRID_POINTS` values over its range (each value of a choice).

The **plateau score** of an objective (higher is better; a minimised
objective is negated first), with ``m`` the GP's posterior mean::

    score = (m(pick) - min over N of m) / (max over S of m - min over S of m)

``N``, the neighbourhood of the pick: the pick, :data:`AXIS_POINTS` points
along each numeric coordinate (floats, integers, ordered choices) within
±:data:`PLATEAU_RADIUS` of its normalized range (clipped to the range, one
at a time), and :data:`NEIGHBOURHOOD_SAMPLES` scrambled Sobol points of the
box of that half-width around the pick (all numeric coordinates at once);
unordered choices stay at the pick's value. ``S``, the whole space:
:data:`SPACE_SAMPLES` seeded random configurations of the search space, every
point of the stability grid and ``N``. The score lies in [0, 1]: 0 when no
neighbour is predicted worse than the pick, 1 when the worst neighbour is as
bad as the worst configuration anywhere. The pick is a **spike** on an
objective when its score exceeds :data:`SPIKE_THRESHOLD`: a change of at
most a tenth of the parameters' ranges loses more than half of what the
whole space spans. A posterior without spread (every trial alike) scores 0.
The pick is **flat** on an objective (neither plateau nor spike) when the
posterior mean's spread over ``S`` is below :data:`FLAT_SDS` times its SD at
the pick: the GP sees
no difference between configurations beyond its own uncertainty (few or
noisy trials), so the score cannot tell a plateau from a spike.
With fewer than :data:`MIN_TRIALS_FOR_STABILITY` completed trials there is
no GP: "too few trials".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.metric_rules import MARKET_METRICS
from engine.objective.pipeline import FIGURES, block_length, equity_stats, net_returns

if TYPE_CHECKING:
    from engine.analysis.results import StudyResults
    from engine.records import TrialRecord
    from strategies.space import SearchSpace

__all__ = [
    "AXIS_POINTS",
    "COST_MULTIPLES",
    "FLAT_SDS",
    "GRID_POINTS",
    "MC_PERCENTILES",
    "MC_RESAMPLES",
    "MIN_TRIALS_FOR_STABILITY",
    "NEIGHBOURHOOD_SAMPLES",
    "PLATEAU_RADIUS",
    "SPACE_SAMPLES",
    "SPIKE_THRESHOLD",
    "CostStress",
    "MonteCarlo",
    "Plateau",
    "Robustness",
    "Stability",
    "cost_stress",
    "encode_configurations",
    "fit_gp",
    "gp_predictor",
    "monte_carlo",
    "neighbourhood",
    "plateau_score",
    "stability",
    "stressed_figures",
    "study_robustness",
]

#: Cost multiples of the stress test (1x: the study's own fee and slippage).
COST_MULTIPLES = (1.0, 2.0, 5.0)
#: Stationary-bootstrap resamples of the Monte Carlo, and the percentiles shown.
MC_RESAMPLES = 1000
MC_PERCENTILES = (5.0, 50.0, 95.0)
#: Completed trials needed to fit the stability GP.
MIN_TRIALS_FOR_STABILITY = 5
#: Values of a numeric parameter on its stability curve.
GRID_POINTS = 21
#: Half-width of the pick's neighbourhood, as a share of each numeric parameter's normalized range.
PLATEAU_RADIUS = 0.1
#: Points along each numeric coordinate, and Sobol points of the box, in the neighbourhood.
AXIS_POINTS = 11
NEIGHBOURHOOD_SAMPLES = 128
#: Random configurations that stand for the whole space in the plateau score's spread.
SPACE_SAMPLES = 256
#: A plateau score above this flags the pick as a spike.
SPIKE_THRESHOLD = 0.5
#: Flat: the posterior mean's spread over the space is below this many SDs of the posterior at the pick.
FLAT_SDS = 2.0

logger = logging.getLogger(__name__)

#: The figures' labels: the backtest's own (:data:`~engine.metric_rules.MARKET_METRICS`).
FIGURE_LABELS = {m.name: m.label for m in MARKET_METRICS if m.name in FIGURES}


# ----------------------------------------------------------------- cost stress


def stressed_figures(
    close: np.ndarray,
    positions: np.ndarray,
    *,
    fee_bps: float,
    slippage_bps: float,
    periods_per_year: float,
    multiples: Sequence[float] = COST_MULTIPLES,
) -> dict[float, tuple[float, float, float]]:
    """(return_pct, sharpe, max_drawdown_pct) of ``positions`` on ``close`` at each cost multiple.

    The per-bar net returns are :func:`objectives.backtest.net_returns` with
    fee and slippage both scaled by the multiple (no retraining: the same
    positions), so at 1x the figures are exactly :func:`objectives.backtest.run_backtest`'s.
    """
    out = {}
    for k in multiples:
        net = net_returns(close, positions, fee_bps=k * fee_bps, slippage_bps=k * slippage_bps)
        out[float(k)] = equity_stats(net, periods_per_year)
    return out


@dataclass(frozen=True)
class CostStress:
    """The stress test's figures and what could not be stressed.

    Attributes:
        frame: one row per series and cost multiple: ``order`` (the series' place), ``row`` (a
            label), ``trial`` (-1 for buy-and-hold / short-and-hold), ``multiple``,
            ``return_pct``, ``sharpe``, ``max_drawdown_pct``.
        missing: trials of the front without stored positions.
        fee_bps, slippage_bps: the study's costs (the 1x level).
    """

    frame: pd.DataFrame
    missing: list[int]
    fee_bps: float
    slippage_bps: float
    multiples: tuple[float, ...] = COST_MULTIPLES

    def wide(self) -> pd.DataFrame:
        """One row per series, one column per figure and multiple (``return_pct@2``)."""
        rows = []
        for _, group in self.frame.groupby("order", sort=True):
            first = group.iloc[0]
            row: dict[str, Any] = {"row": first["row"], "trial": first["trial"]}
            for fig in FIGURES:
                row |= {f"{fig}@{k:g}": v for k, v in zip(group["multiple"], group[fig])}
            rows.append(row)
        return pd.DataFrame(rows)


def cost_stress(
    close: np.ndarray,
    series: Sequence[tuple[str, int | None, np.ndarray | None]],
    *,
    fee_bps: float,
    slippage_bps: float,
    periods_per_year: float,
    allow_short: bool,
    multiples: Sequence[float] = COST_MULTIPLES,
) -> CostStress:
    """Stress ``series`` (label, trial, positions or None) and the market baselines on ``close``.

    Buy-and-hold (long 1.0 on every bar) follows the trials, and
    short-and-hold (-1.0) where ``allow_short``. A series without positions is
    listed in :attr:`CostStress.missing`; one whose length is not the number
    of closes raises ValueError.
    """
    rows: list[dict[str, Any]] = []
    missing: list[int] = []
    market = [("buy and hold", None, np.ones(len(close)))]
    if allow_short:
        market.append(("short and hold", None, -np.ones(len(close))))
    for order, (label, trial, positions) in enumerate([*series, *market]):
        if positions is None:
            if trial is not None:
                missing.append(trial)
            continue
        if len(positions) != len(close):
            raise ValueError(f"{label}: {len(positions)} positions for {len(close)} out-of-sample bars")
        figures = stressed_figures(
            close,
            np.asarray(positions, dtype=np.float64),
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            periods_per_year=periods_per_year,
            multiples=multiples,
        )
        for k, values in figures.items():
            rows.append(
                {"order": order, "row": label, "trial": -1 if trial is None else trial, "multiple": k}
                | dict(zip(FIGURES, values))
            )
    frame = pd.DataFrame(rows, columns=["order", "row", "trial", "multiple", *FIGURES])
    return CostStress(frame, missing, float(fee_bps), float(slippage_bps), tuple(float(k) for k in multiples))


# ----------------------------------------------------------------- Monte Carlo


@dataclass(frozen=True)
class MonteCarlo:
    """Percentiles of the pick's and buy-and-hold's figures over paired stationary-bootstrap resamples.

    Attributes:
        observed: ``{"pick" | "buy_and_hold": {figure: value on the bars as they were}}``.
        percentiles: ``{"pick" | "buy_and_hold": {figure: (p5, p50, p95)}}`` (:data:`MC_PERCENTILES`).
        sharpe_beats: share of the resamples in which the pick's Sharpe ratio beat buy-and-hold's.
        block: the mean block length used; resamples, seed, n_bars: the set-up.
    """

    observed: dict[str, dict[str, float]]
    percentiles: dict[str, dict[str, tuple[float, float, float]]]
    sharpe_beats: float
    block: float
    resamples: int
    seed: int
    n_bars: int

    def frame(self) -> pd.DataFrame:
        """One row per series and figure: observed, then the percentiles."""
        rows = []
        for series, label in (("pick", "pick"), ("buy_and_hold", "buy and hold")):
            for fig in FIGURES:
                p = self.percentiles[series][fig]
                rows.append(
                    {"series": label, "figure": FIGURE_LABELS[fig], "observed": self.observed[series][fig]}
                    | {f"p{q:g}": v for q, v in zip(MC_PERCENTILES, p)}
                )
        return pd.DataFrame(rows)


def monte_carlo(
    returns: np.ndarray,
    benchmark: np.ndarray,
    periods_per_year: float,
    *,
    resamples: int = MC_RESAMPLES,
    seed: int = 0,
) -> MonteCarlo:
    """Resample the bars of ``returns`` and ``benchmark`` (same length, same bars) jointly.

    The block length is the larger of :func:`objectives.noise.block_length` of
    the two series; the resamples are drawn with ``arch.bootstrap.StationaryBootstrap``
    seeded with ``seed`` (the same inputs and seed give the same figures).
    """
    from arch.bootstrap import StationaryBootstrap

    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    if r.ndim != 1 or r.shape != b.shape or len(r) < 2:
        raise ValueError(f"need two 1-D return series of one length >= 2, got {r.shape} and {b.shape}")
    if resamples < 2:
        raise ValueError(f"resamples must be >= 2, got {resamples}")
    block = max(block_length(r), block_length(b))
    bs = StationaryBootstrap(max(1, round(block)), r, b, seed=np.random.default_rng(seed))
    draws = np.array(
        [
            [equity_stats(data[0], periods_per_year), equity_stats(data[1], periods_per_year)]
            for data, _ in bs.bootstrap(resamples)
        ]
    )  # `resamples x 2 x 3`
    pct = np.percentile(draws, MC_PERCENTILES, axis=0)  # `3 x 2 x 3`
    names = ("pick", "buy_and_hold")
    observed = {n: dict(zip(FIGURES, equity_stats(x, periods_per_year))) for n, x in zip(names, (r, b))}
    percentiles = {
        n: {fig: tuple(float(v) for v in pct[:, s, j]) for j, fig in enumerate(FIGURES)}
        for s, n in enumerate(names)
    }
    beats = float(np.mean(draws[:, 0, 1] > draws[:, 1, 1]))
    return MonteCarlo(observed, percentiles, beats, float(block), resamples, seed, len(r))  # type: ignore[arg-type]


# ----------------------------------------------------------------- the GP and the plateau score

Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def fit_gp(
    x: np.ndarray,
    y: np.ndarray,
    yvar: np.ndarray | None = None,
    *,
    maxiter: int | None = None,
    seed: int = 0,
) -> Any:
    """The optimizer's GP (:class:`~engine.optimizer.gp.WarmStartSingleTaskGP`, cold fit) on `n x d`
    normalized points ``x`` and `n` values ``y``; ``yvar``: known noise variances (None: learned).

    ``maxiter``: L-BFGS-B iterations of the fit (the spec's ``optimizer.gp_fit_maxiter``).
    Seeded with ``seed``; returns the fitted model in eval mode.
    """
    import torch
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from engine.optimizer.gp import WarmStartSingleTaskGP

    tx = torch.as_tensor(np.asarray(x, dtype=np.float64))
    ty = torch.as_tensor(np.asarray(y, dtype=np.float64)).reshape(-1, 1)
    tv = None if yvar is None else torch.as_tensor(np.asarray(yvar, dtype=np.float64)).reshape(-1, 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = WarmStartSingleTaskGP(tx, ty, tv, warm_start=False, cold_maxiter=maxiter)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    model.eval()
    return model


def gp_predictor(model: Any) -> Predictor:
    """``x`` (`m x d`) -> (posterior mean `m`, posterior SD `m`) of a fitted GP (noise excluded)."""
    import torch

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            post = model.posterior(torch.as_tensor(np.asarray(x, dtype=np.float64)))
            mean = post.mean.reshape(-1).numpy()
            sd = post.variance.clamp_min(0.0).sqrt().reshape(-1).numpy()
        return mean.astype(np.float64), sd.astype(np.float64)

    return predict


def neighbourhood(
    pick: np.ndarray,
    numeric: Sequence[int],
    *,
    radius: float = PLATEAU_RADIUS,
    axis_points: int = AXIS_POINTS,
    samples: int = NEIGHBOURHOOD_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """The pick's neighbourhood ``N`` in normalized coordinates (see the module docstring): the
    pick, ``axis_points`` along each ``numeric`` column within ±``radius`` (one at a time), and
    ``samples`` scrambled Sobol points of the box (all numeric columns at once), clipped to [0, 1]."""
    from scipy.stats import qmc

    p = np.asarray(pick, dtype=np.float64).reshape(-1)
    cols = list(numeric)
    points = [p[None, :]]
    offsets = np.linspace(-radius, radius, axis_points)
    for j in cols:
        line = np.repeat(p[None, :], axis_points, axis=0)
        line[:, j] = p[j] + offsets
        points.append(line)
    if cols and samples > 0:
        u = qmc.Sobol(len(cols), scramble=True, seed=seed).random(samples)
        box = np.repeat(p[None, :], samples, axis=0)
        box[:, cols] = p[cols] + (2.0 * u - 1.0) * radius
        points.append(box)
    out = np.vstack(points)
    if cols:
        out[:, cols] = np.clip(out[:, cols], 0.0, 1.0)
    return out


@dataclass(frozen=True)
class Plateau:
    """The plateau score of one objective (definition in the module docstring)."""

    objective: str
    pick_mean: float
    pick_sd: float
    worst: float  # the worst posterior mean in the neighbourhood
    spread: float  # max - min of the posterior mean over the whole space
    score: float
    spike: bool
    flat: bool = False  # the posterior's spread over the space is below FLAT_SDS SDs at the pick


def plateau_score(
    predict: Predictor,
    pick: np.ndarray,
    numeric: Sequence[int],
    space: np.ndarray,
    *,
    maximize: bool,
    objective: str = "",
    radius: float = PLATEAU_RADIUS,
    samples: int = NEIGHBOURHOOD_SAMPLES,
    threshold: float = SPIKE_THRESHOLD,
    seed: int = 0,
) -> Plateau:
    """How much of the posterior's spread over ``space`` (`m x d` normalized points standing for
    the whole space) the pick loses within its neighbourhood (:func:`neighbourhood`).

    ``score = (m(pick) - min_N m) / (max_S m - min_S m)`` for a maximised
    objective (signs flipped for a minimised one), ``S`` = ``space`` and ``N``;
    a spike when ``score > threshold``; 0 when the spread is nil. *Flat* when the
    spread is below :data:`FLAT_SDS` posterior SDs at the pick: the GP sees no difference
    between configurations beyond its own uncertainty, so the score says
    nothing either way (never a spike, and not called a plateau).
    """
    near = neighbourhood(pick, numeric, radius=radius, samples=samples, seed=seed)
    m_near, sd_near = predict(near)
    m_space, _ = predict(np.asarray(space, dtype=np.float64))
    sign = 1.0 if maximize else -1.0
    centre = float(m_near[0])
    worst_signed = float(np.min(sign * m_near))
    both = np.concatenate([m_space, m_near])
    spread = float(both.max() - both.min())
    scale = max(1.0, abs(centre))
    score = (sign * centre - worst_signed) / spread if spread > 1e-9 * scale else 0.0
    score = float(min(max(score, 0.0), 1.0))
    flat = spread < FLAT_SDS * float(sd_near[0])
    return Plateau(
        objective,
        centre,
        float(sd_near[0]),
        sign * worst_signed,
        spread,
        score,
        score > threshold and not flat,
        flat,
    )


# ----------------------------------------------------------------- the study's coordinates


def encode_configurations(
    space: SearchSpace, configurations: Sequence[Mapping[str, Any]]
) -> tuple[np.ndarray, list[str], list[int]]:
    """Configurations in the optimizer's normalized coordinates.

    The study's Ax parameters (:func:`engine.study.experiment.ax_parameters`) go
    through Ax's ``Cont_X_trans`` transforms, the ones
    :mod:`engine.optimizer.strategy` gives its GP: the same points the GP of
    the search sees. Returns (`n x d` coordinates, their column names, the
    indices of the numeric columns: every column but the one-hot ones).
    """
    from ax.adapter.registry import Cont_X_trans
    from ax.api.utils.instantiation.from_config import parameter_from_config
    from ax.core.observation import ObservationFeatures
    from ax.core.search_space import SearchSpace as AxSearchSpace

    from engine.study.experiment import ax_parameters

    ax_space = AxSearchSpace(parameters=[parameter_from_config(c) for c in ax_parameters(space)])
    names = [p.name for p in space.tunable]
    feats = [ObservationFeatures(parameters={n: c[n] for n in names}) for c in configurations]
    for transform in Cont_X_trans:
        t = transform(search_space=ax_space)
        feats = t.transform_observation_features(feats)
        ax_space = t.transform_search_space(ax_space)
    columns = list(ax_space.parameters)
    x = np.array([[f.parameters[c] for c in columns] for f in feats], dtype=np.float64)
    numeric = [j for j, c in enumerate(columns) if "_OH_PARAM_" not in c]
    return x.reshape(len(feats), len(columns)), columns, numeric


def _grid(param: Any, at: Any) -> list[Any]:
    """The values of a parameter's stability curve: each choice, or :data:`GRID_POINTS` over its
    range (log-spaced on a log scale) and the pick's value ``at``."""
    from strategies.space import ChoiceParam, FloatParam, IntParam

    if isinstance(param, ChoiceParam):
        return list(param.values)
    if not isinstance(param, (FloatParam, IntParam)):
        return []
    lo, hi = param.low, param.high
    raw = np.geomspace(lo, hi, GRID_POINTS) if param.log else np.linspace(lo, hi, GRID_POINTS)
    if isinstance(param, IntParam):
        return sorted({int(v) for v in np.rint(raw)} | {int(at)})
    return sorted({float(v) for v in raw} | {float(at)})


@dataclass(frozen=True)
class Stability:
    """The stability GP's curves and plateau scores.

    Attributes:
        curves: one row per parameter, grid value and objective: ``parameter``,
            ``value``, ``categorical``, ``objective``, ``mean``, ``sd``, ``at_pick``.
        plateaus: one :class:`Plateau` per objective.
        n_trials: trials the GP was fitted to; noise: per objective, ``known`` or ``learned``.
    """

    curves: pd.DataFrame
    plateaus: list[Plateau]
    n_trials: int
    noise: dict[str, str] = field(default_factory=dict)


def stability(
    space: SearchSpace,
    trials: Sequence[TrialRecord],
    pick: Mapping[str, Any],
    objectives: Sequence[tuple[str, bool]],
    *,
    maxiter: int | None = None,
    seed: int = 0,
) -> Stability:
    """Fit one GP per objective (name, maximize) to ``trials`` and trace it through ``pick``."""
    names = [p.name for p in space.tunable]
    base = {n: pick[n] for n in names}
    x, _, numeric = encode_configurations(space, [t.params for t in trials])
    pick_x = encode_configurations(space, [base])[0][0]
    grid_rows: list[tuple[str, Any, bool]] = []
    configs = []
    from strategies.space import ChoiceParam

    for p in space.tunable:
        for v in _grid(p, base[p.name]):
            grid_rows.append((p.name, v, isinstance(p, ChoiceParam)))
            configs.append({**base, p.name: v})
    grid_x = encode_configurations(space, configs)[0] if configs else np.zeros((0, len(pick_x)))
    rng = np.random.default_rng(seed)
    samples = [space.sample(rng) for _ in range(SPACE_SAMPLES)]
    space_x = np.vstack([encode_configurations(space, samples)[0], grid_x])
    rows: list[dict[str, Any]] = []
    plateaus: list[Plateau] = []
    noise: dict[str, str] = {}
    for name, maximize in objectives:
        y = np.array([t.metrics[name] for t in trials], dtype=np.float64)
        sems = [t.sems.get(name) for t in trials]
        known = all(isinstance(s, (int, float)) and math.isfinite(s) for s in sems)
        yvar = np.square(np.asarray(sems, dtype=np.float64)) if known else None
        noise[name] = "known" if known else "learned"
        predict = gp_predictor(fit_gp(x, y, yvar, maxiter=maxiter, seed=seed))
        plateaus.append(
            plateau_score(predict, pick_x, numeric, space_x, maximize=maximize, objective=name, seed=seed)
        )
        if len(grid_x):
            mean, sd = predict(grid_x)
            for (param, value, categorical), m, s in zip(grid_rows, mean, sd):
                rows.append(
                    {
                        "parameter": param,
                        "value": value,
                        "categorical": categorical,
                        "objective": name,
                        "mean": float(m),
                        "sd": float(s),
                        "at_pick": value == base[param],
                    }
                )
    columns = ["parameter", "value", "categorical", "objective", "mean", "sd", "at_pick"]
    return Stability(pd.DataFrame(rows, columns=columns), plateaus, len(trials), noise)


# ----------------------------------------------------------------- the study


@dataclass
class Robustness:
    """The three views for one study's pick; a view that cannot be computed has a note instead."""

    pick: int | None
    pick_name: str
    costs: CostStress | None = None
    costs_note: str = ""
    monte_carlo: MonteCarlo | None = None
    monte_carlo_note: str = ""
    stability: Stability | None = None
    stability_note: str = ""


def _periods_per_year(res: StudyResults) -> float:
    value = res.meta.facts.get("periods_per_year")
    return float(value) if isinstance(value, (int, float)) and value > 0 else 252.0


def study_robustness(res: StudyResults, pick: str = "knee") -> Robustness:
    """Cost stress, Monte Carlo and parameter stability of ``res``'s pick (``knee`` or an objective)."""
    if not res.front:
        note = "no Pareto front: no completed trial meets the constraints"
        return Robustness(None, pick, costs_note=note, monte_carlo_note=note, stability_note=note)
    chosen = res.pick(pick)
    name = "the knee" if pick == "knee" else f"the best {pick}"
    out = Robustness(chosen.index, name)
    _market_views(res, chosen, out)
    _stability_view(res, chosen, out)
    return out


def _market_views(res: StudyResults, chosen: TrialRecord, out: Robustness) -> None:
    """Cost stress and Monte Carlo, from the stored positions, returns and closes."""
    close = res.store.oos_close() if res.evaluator.scores_test else None
    if close is None or len(close) < 2:
        note = "not applicable: the study's objective has no out-of-sample bars to backtest"
        out.costs_note = out.monte_carlo_note = note
        return
    bt = res.spec.backtest
    ppy = _periods_per_year(res)
    series = []
    for r in res.front:
        label = f"front, {out.pick_name} (pick)" if r.index == chosen.index else "front"
        series.append((label, r.index, res.store.read_array(r.index, "positions")))
    try:
        out.costs = cost_stress(
            close,
            series,
            fee_bps=bt.fee_bps,
            slippage_bps=bt.slippage_bps,
            periods_per_year=ppy,
            allow_short=bt.allow_short,
        )
    except ValueError as exc:
        out.costs_note = f"not shown: {exc}"
    returns = res.store.read_array(chosen.index, "returns")
    if returns is None or len(returns) != len(close):
        out.monte_carlo_note = (
            f"not shown: trial {chosen.index} has no per-bar returns over the out-of-sample bars"
        )
        return
    benchmark = net_returns(close, np.ones(len(close)), fee_bps=bt.fee_bps, slippage_bps=bt.slippage_bps)
    out.monte_carlo = monte_carlo(returns, benchmark, ppy, seed=res.spec.seed)


def _stability_view(res: StudyResults, chosen: TrialRecord, out: Robustness) -> None:
    names = res.objectives.names
    trials = [
        r
        for r in res.records
        if r.status == "completed"
        and not r.attached
        and all(math.isfinite(r.metrics.get(n, math.nan)) for n in names)
    ]
    if not res.searched:
        out.stability_note = "not shown: no parameter is searched"
    elif len(trials) < MIN_TRIALS_FOR_STABILITY:
        out.stability_note = (
            f"too few trials: {len(trials)} completed; the GP needs at least {MIN_TRIALS_FOR_STABILITY}"
        )
    else:
        try:
            out.stability = stability(
                res.spec.space,
                trials,
                chosen.params,
                list(zip(names, res.objectives.maximize)),
                maxiter=res.spec.optimizer.gp_fit_maxiter,
                seed=res.spec.seed,
            )
        except Exception as exc:  # a GP that cannot be fitted is said, never fails the report
            logger.warning("parameter stability of %s: %s", res.store.dir, exc, exc_info=True)
            out.stability_note = f"not shown: the GP could not be fitted ({type(exc).__name__}: {exc})"
