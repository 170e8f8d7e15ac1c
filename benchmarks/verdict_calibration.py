"""Calibration of the verdict and of the champion rule on generated series with a known answer.

Three parts, each resumable, each writing JSON lines under ``benchmarks/results/``:

1. **Real studies** (``verdict_calibration.jsonl``): seeded daily OHLCV series
   (business days, ~252 bars a year, 3,900 bars: ~2,000 walk-forward
   out-of-sample bars with the default splits) with nothing to learn (i.i.d.
   Gaussian, GARCH(1,1) with Student-t shocks, drifting up or down 20 % a
   year) or with an edge (AR(1) log returns: momentum phi > 0 or mean
   reversion phi < 0, weak or medium, with and without drift; and series
   whose edge ends before the test split). On each, a small walk-forward
   study of a tiny LSTM (``study_spec``) runs to its end; the line keeps the
   verdict on the knee, the knee's held-out test figures, buy-and-hold's, and
   the *oracle* Sharpe ratio: trading sign(E[r_t+1 | bars <= t]) with the true
   parameters on the same out-of-sample bars, with the study's costs.
2. **Statistical layer** (``verdict_calibration_sim.jsonl``, simulation):
   :func:`engine.analysis.verdict.verdict_from_returns` on generated `T x N` return
   matrices of trial families (no model is trained): null families on i.i.d.,
   GARCH-t and drifting markets (including rules on past returns, which pick
   up beta in a drifting market, and a short-biased family in a falling one)
   and edge families at several strengths. The pick is the trial with the
   highest Sharpe ratio (the most selected choice; the engine's knee is
   less extreme).
3. **Champion rule** (``verdict_calibration_champion.jsonl``, simulation):
   :func:`engine.weekly.champion.compare` and :func:`engine.weekly.champion.apply_rules`
   over seeded decisions: the challenger is the best-looking of N trials,
   the champion either another draw of the same process (equal) or a
   configuration with a smaller alpha (better by a stated margin).

Usage (from the repository root)::

    python benchmarks/verdict_calibration.py --list                  # the cases and their generators
    python benchmarks/verdict_calibration.py --cases null-iid-0,edge-mom-med-0   # a pilot
    python benchmarks/verdict_calibration.py                         # every real-study case not yet done
    python benchmarks/verdict_calibration.py --only null             # a kind (null, edge, edge_ends) or a prefix
    python benchmarks/verdict_calibration.py --sim --champion        # the two simulations (no studies)
    python benchmarks/verdict_calibration.py --summarize             # tables from the JSON lines only

Every figure is reproducible from the case's seed and generator parameters
(both stored with it); rerunning a case that is in the file is skipped,
``--redo`` runs it again (its old line is kept; the summary uses the last).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
STUDIES_FILE = RESULTS / "verdict_calibration.jsonl"
SIM_FILE = RESULTS / "verdict_calibration_sim.jsonl"
CHAMPION_FILE = RESULTS / "verdict_calibration_champion.jsonl"
SCRATCH = Path("/tmp/verdict_calibration")

N_BARS = 3900  # with test 15 % and initial_train 40 %: ~1,990 out-of-sample bars
SIGMA = 0.01  # daily volatility of log returns (~16 % a year)
DRIFT = 0.20 / 252  # +-20 % a year
PPY = 252.0
FEE_BPS = 0.5
SLIPPAGE_BPS = 0.5
TEST_SHARE = 0.15
MEDIUM_ORACLE = 3.0  # "medium" edge: oracle Sharpe >= 3 over the out-of-sample bars


# ----------------------------------------------------------------------------- generators


@dataclass(frozen=True)
class Case:
    """One generated series and the study run on it.

    Attributes:
        id: unique name (``null-iid-0``, ``edge-mom-med-up-1``, ...).
        kind: ``null`` (nothing to learn), ``edge``, or ``edge_ends`` (the edge stops before the test split).
        gen: ``gauss`` or ``garch_t`` shocks.
        phi: AR(1) coefficient of the log returns' deviation from the drift (0: none).
        drift: per-bar drift of the log returns.
        strength: ``weak`` / ``medium`` by design (nulls: ``none``); the tables also use the realised oracle.
        seed: seeds the series and the study.
        edge_until: share of the bars after which phi is 0 (``edge_ends`` only; 1.0 otherwise).
    """

    id: str
    kind: str
    gen: str
    phi: float
    drift: float
    strength: str
    seed: int
    edge_until: float = 1.0

    def params(self) -> dict[str, Any]:
        return {
            "gen": self.gen,
            "phi": self.phi,
            "drift_per_bar": self.drift,
            "drift_annual": self.drift * PPY,
            "sigma": SIGMA,
            "n_bars": N_BARS,
            "edge_until": self.edge_until,
            **({"garch": GARCH} if self.gen == "garch_t" else {}),
        }


GARCH = {"alpha": 0.08, "beta": 0.90, "nu": 5.0}  # unconditional variance SIGMA**2


def make_cases(rounds: int = 2) -> list[Case]:
    """The real-study cases, ``rounds`` times the same layout (round r: seeds from 1000 * (r + 1),
    case numbers continuing): per round 64 nulls, 24 medium and 8 weak edges, 4 edges that end
    before the test split. Two rounds: 128 nulls (no false positive in 128 bounds the rate at
    2.3 %, one-sided 95 %), 48 medium and 16 weak edges, 8 that end early."""
    cases: list[Case] = []
    for rnd in range(rounds):
        cases += _round(rnd)
    return cases


def _round(rnd: int) -> list[Case]:
    cases: list[Case] = []
    seed = 1000 * (rnd + 1)
    for gen, drift, name, count in (
        ("gauss", 0.0, "iid", 16),
        ("garch_t", 0.0, "garch", 16),
        ("gauss", DRIFT, "up", 8),
        ("garch_t", DRIFT, "up-garch", 8),
        ("gauss", -DRIFT, "down", 8),
        ("garch_t", -DRIFT, "down-garch", 8),
    ):
        for i in range(count):
            cases.append(Case(f"null-{name}-{i + rnd * count}", "null", gen, 0.0, drift, "none", seed))
            seed += 1
    # medium: |phi| 0.3 (oracle Sharpe ~3.5-4.5); weak: |phi| 0.15 (~1.5-2.5)
    for strength, phi, drifts, reps in (
        ("med", 0.3, ((0.0, ""), (DRIFT, "-up"), (-DRIFT, "-down")), 4),
        ("weak", 0.15, ((0.0, ""), (DRIFT, "-up")), 2),
    ):
        for sign, label in ((1.0, "mom"), (-1.0, "rev")):
            for drift, dname in drifts:
                for i in range(reps):
                    cases.append(
                        Case(
                            f"edge-{label}-{strength}{dname}-{i + rnd * reps}",
                            "edge",
                            "gauss",
                            sign * phi,
                            drift,
                            "medium" if strength == "med" else "weak",
                            seed,
                        )
                    )
                    seed += 1
    # the edge stops 5 % of the bars before the test split: the walk-forward blocks see it, the test does not
    for i in range(2):
        for label, phi in (("mom", 0.3), ("rev", -0.3)):
            cases.append(
                Case(
                    f"ends-{label}-{i + 2 * rnd}",
                    "edge_ends",
                    "gauss",
                    phi,
                    0.0,
                    "medium",
                    seed,
                    edge_until=0.80,
                )
            )
            seed += 1
    return cases


def simulate_log_returns(
    n: int,
    *,
    seed: int,
    gen: str = "gauss",
    phi: float = 0.0,
    drift: float = 0.0,
    sigma: float = SIGMA,
    edge_until: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(r, expected): `n` log returns r_t = drift + x_t with x_t = phi_t x_{t-1} + e_t, and
    expected[t] = E[r_{t+1} | r_0..r_t] = drift + phi_{t+1} x_t (phi_t = 0 from ``edge_until`` on).

    ``gen``: ``gauss`` (e_t ~ N(0, sigma^2)) or ``garch_t`` (GARCH(1,1), Student-t shocks of unit
    variance, unconditional variance sigma^2)."""
    rng = np.random.default_rng(seed)
    if gen == "gauss":
        e = rng.normal(0.0, sigma, n)
    elif gen == "garch_t":
        a, b, nu = GARCH["alpha"], GARCH["beta"], GARCH["nu"]
        omega = sigma**2 * (1.0 - a - b)
        z = rng.standard_t(nu, n) / math.sqrt(nu / (nu - 2.0))
        e = np.empty(n)
        h = sigma**2
        for t in range(n):
            e[t] = math.sqrt(h) * z[t]
            h = omega + a * e[t] ** 2 + b * h
    else:
        raise ValueError(f"unknown generator {gen!r}")
    phis = np.where(np.arange(n) < int(edge_until * n), phi, 0.0)
    x = np.empty(n)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = phis[t] * x[t - 1] + e[t]
    expected = drift + np.append(phis[1:], 0.0) * x
    return drift + x, expected


def business_days(n: int, start: str = "2000-01-03") -> Any:
    """`n` US business days (federal holidays off): ~251 bars a year."""
    import pandas as pd
    from pandas.tseries.holiday import USFederalHolidayCalendar
    from pandas.tseries.offsets import CustomBusinessDay

    return pd.date_range(start, periods=n, freq=CustomBusinessDay(calendar=USFederalHolidayCalendar()))


def write_bars(path: Path, r: np.ndarray, seed: int) -> Path:
    """Daily OHLCV bars whose closes follow the log returns ``r`` (open = previous close)."""
    import pandas as pd

    rng = np.random.default_rng(seed + 7_919)
    n = len(r)
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, SIGMA / 4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, SIGMA / 4, n)))
    frame = pd.DataFrame(
        {
            "timestamp": business_days(n).strftime("%Y-%m-%d"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(1_000, 10_000, n),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def oracle_sharpe(close: np.ndarray, expected: np.ndarray, bars: np.ndarray, ppy: float) -> float:
    """Annualised Sharpe ratio of trading sign(E[r_t+1 | past]) on decision bars ``bars`` (the
    backtest's conventions and the study's costs)."""
    from objectives.backtest import equity_stats, net_returns

    pos = np.sign(expected[bars])
    net = net_returns(close[bars], pos, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS)
    return float(equity_stats(net, ppy)[1])


# ----------------------------------------------------------------------------- the real studies


#: ``--scheme cpcv``: combinatorial purged CV with 4 groups, 2 tested a split (6 splits, 3 paths).
CPCV = {"scheme": "cpcv", "groups": 4, "test_groups": 2}


def study_spec(
    name: str,
    source: Path,
    seed: int,
    *,
    workers: int,
    trials: int,
    epochs: int,
    scheme: str = "walk_forward",
    pareto_folds: bool = False,
) -> dict[str, Any]:
    """A small walk-forward (or CPCV) study of a tiny LSTM on the ``ohlcv`` features (past returns
    included); ``pareto_folds``: with Pareto-aware stopping across folds (its default settings)."""
    return {
        "name": name,
        "strategy": "lstm",
        "data": {
            "source": str(source),
            "feature_set": "ohlcv",
            # next bar's move: an AR(1) edge is about the next return
            "label": {"scheme": "A", "horizon": 1, "profit_threshold": 0.002, "min_diff": 0.001},
            "splits": {"train": 0.7, "val": 0.15, "test": TEST_SHARE},
            "validation": dict(CPCV) if scheme == "cpcv" else {"scheme": "walk_forward", "folds": 4},
        },
        "search_space": {
            "hidden_size": {"values": [8, 16]},
            "num_layers": 1,
            "seq_len": {"low": 4, "high": 12},
            "batch_size": 64,
            "learning_rate": {"low": 0.001, "high": 0.01, "log": True},
            "predict_profit": False,
        },
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -50.0},
            "sharpe": {"goal": "max", "threshold": -3.0},
            "max_drawdown_pct": {"goal": "min", "threshold": 80.0},
        },
        "constraints": ["num_trades >= 10"],
        "budget": {"trials": trials, "sobol_trials": 6, "max_epochs": epochs, "trial_timeout_s": 600},
        "early_stopping": {"enabled": False, "pareto_folds": {"enabled": pareto_folds}},
        "backtest": {"fee_bps": FEE_BPS, "slippage_bps": SLIPPAGE_BPS},
        # synchronous: each batch proposed after the previous one finished, so that a case's seed
        # gives the same proposals every time (asynchronous workers finish in a different order)
        "executor": {
            "kind": "local",
            "workers": workers,
            "threads_per_worker": max(1, 2 // workers),
            "synchronous": True,
        },
        "seed": seed,
    }


def code_fingerprint() -> str:
    """sha256 (16 hex digits) of the engine's source as this process sees it (engine/, objectives/,
    strategies/ under the repository root): the tree is edited by others while a batch runs, so
    every line says which code produced it."""
    import hashlib

    h = hashlib.sha256()
    for pkg in ("engine", "objectives", "strategies"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


_FINGERPRINT = code_fingerprint()


def _f(x: Any) -> float | None:
    """A finite float or None (JSON)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def run_case(
    case: Case,
    scratch: Path,
    *,
    workers: int,
    trials: int,
    epochs: int,
    scheme: str = "walk_forward",
    pareto_folds: bool = False,
) -> dict[str, Any]:
    """Generate the series, run (or resume) its study, and return the JSON line of the case."""
    from engine.analysis.results import StudyResults
    from engine.analysis.skill import beta_hedge
    from engine.spec import parse_spec
    from engine.study.run import run_study
    from objectives import PreparedData
    from objectives.backtest import equity_stats

    root = scratch / case.id
    r, expected = simulate_log_returns(
        N_BARS, seed=case.seed, gen=case.gen, phi=case.phi, drift=case.drift, edge_until=case.edge_until
    )
    source = write_bars(root / "bars.csv", r, case.seed)
    spec = study_spec(
        case.id,
        source,
        case.seed,
        workers=workers,
        trials=trials,
        epochs=epochs,
        scheme=scheme,
        pareto_folds=pareto_folds,
    )
    load0 = os.getloadavg()[0]
    t0 = time.time()
    outcome = run_study(parse_spec(spec), root / "study")
    seconds = time.time() - t0
    if outcome.interrupted:  # a partial study is no case: the same command resumes it
        raise SystemExit(f"{case.id}: the study was interrupted; rerun the same command to resume it")
    res = StudyResults.load(root / "study")
    v = res.verdict
    data = PreparedData.load(res.store.data_dir, mmap=True)
    close = np.asarray(data.close, dtype=np.float64)
    if len(close) != N_BARS or not np.allclose(close, 100.0 * np.exp(np.cumsum(r)), rtol=1e-6):
        raise RuntimeError(f"{case.id}: prepared closes do not match the generated bars")
    val_bars, test_bars = data.splits.bars("val"), data.splits.bars("test")
    ppy = float(data.periods_per_year)
    has_edge = case.kind != "null"
    baselines = res.evaluator.baseline_returns(res.store)
    bh_val, bh_test = baselines["buy_and_hold"]["validation"], baselines["buy_and_hold"]["test"]
    pick = v.pick if v is not None else None
    test = res.test.get(pick, {}) if pick is not None else {}
    test_alpha = None
    if pick is not None and (tr := res.store.read_array(pick, "test_returns")) is not None:
        h = beta_hedge(np.asarray(tr, dtype=np.float64)[:, None], np.asarray(bh_test[1], dtype=np.float64))
        sd = float(h.returns[:, 0].std())
        test_alpha = float(h.returns[:, 0].mean()) / sd * math.sqrt(ppy) if sd > 1e-15 else 0.0
    completed = [x for x in res.records if x.status == "completed"]
    return {
        "case": case.id,
        "kind": case.kind,
        "strength": case.strength,
        "seed": case.seed,
        "params": case.params(),
        "oracle_sharpe": _f(oracle_sharpe(close, expected, val_bars, ppy)) if has_edge else None,
        "oracle_test_sharpe": _f(oracle_sharpe(close, expected, test_bars, ppy)) if has_edge else None,
        "seconds": round(seconds, 1),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "n_oos": len(val_bars),
        "n_test": len(test_bars),
        "periods_per_year": ppy,
        "trials": len(res.records),
        "completed": len(completed),
        "front": [x.index for x in res.front],
        "verdict": None
        if v is None
        else {
            "edge": bool(v.edge),
            "pick": v.pick,
            "skill_p_family": _f(v.skill_p_family),
            "skill_p_pick": _f(v.skill_p_pick),
            "deflated_sharpe": _f(v.deflated_sharpe),
            "n_effective": v.n_effective,
            "n_study": v.n_study,
            "n_bars": v.n_bars,
            "pbo": _f(v.pbo),
            "sharpe_annual": _f(v.sharpe_annual),
            "alpha_sharpe": _f(v.alpha_sharpe),
            "beta": _f(v.beta),
            "spa_p_buy_and_hold": _f(v.spa_p_buy_and_hold),
            "spa_p_flat": _f(v.spa_p_flat),
            "noise_best_sharpe": _f(v.noise_best_sharpe),
            "sharpe_variance": _f(v.counts.get("sharpe_variance")),
            "null_variance": _f(v.counts.get("null_variance")),
            "reasons": v.reasons,
        },
        "best_val_sharpe": _f(max((x.metrics.get("sharpe", -math.inf) for x in completed), default=math.nan)),
        "pick_test": {k: _f(test.get(k)) for k in ("sharpe", "sharpe_se", "return_pct", "max_drawdown_pct")},
        "pick_test_alpha_sharpe": _f(test_alpha),
        "bh_val_sharpe": _f(equity_stats(np.asarray(bh_val[1]), ppy)[1]),
        "bh_test_sharpe": _f(bh_test[0].get("sharpe")),
        "spec": {"trials": trials, "max_epochs": epochs, "workers": workers},
        "code": _FINGERPRINT,
        "root": str(ROOT),
    }


# ----------------------------------------------------------------------------- JSON lines


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"warning: {path}: a line that is not JSON (a cut write?) skipped", file=sys.stderr)
    return out


def append_line(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def latest(records: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The last record of each ``key`` value, in first-seen order."""
    out: dict[Any, dict[str, Any]] = {}
    for r in records:
        out[r[key]] = r
    return list(out.values())


def select_cases(cases: Sequence[Case], spec: str | None) -> list[Case]:
    """``spec``: comma-separated case ids, kinds (``null``, ``edge``, ``edge_ends``) or id prefixes
    (a part that is a case's id names that case only: ``null-iid-1`` is not ``null-iid-10``)."""
    if not spec:
        return list(cases)
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    ids = {c.id for c in cases}

    def matches(c: Case, p: str) -> bool:
        return c.id == p or c.kind == p or (p not in ids and c.id.startswith(p))

    chosen = [c for c in cases if any(matches(c, p) for p in parts)]
    unknown = [p for p in parts if not any(matches(c, p) for c in cases)]
    if unknown:
        raise SystemExit(f"--cases/--only: no case matches {', '.join(unknown)} (see --list)")
    return chosen


# ----------------------------------------------------------------------------- statistical layer (simulation)

SIM_T = 2000
SIM_N = 12


def _ar_noise(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along axis 0 (persistent latent signals: positions that hold for days)."""
    e = rng.normal(0.0, 1.0, shape)
    out = np.empty(shape)
    out[0] = e[0]
    s = math.sqrt(1.0 - rho**2)
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + s * e[t]
    return out


def _positions(z: np.ndarray, in_market: float = 0.5) -> np.ndarray:
    """sign(z) where |z| is in its top ``in_market`` share (per column), flat elsewhere (the engine's
    quantile gate, but on the whole sample: only the scale differs)."""
    cut = np.quantile(np.abs(z), 1.0 - in_market, axis=0)
    return np.where(np.abs(z) >= cut, np.sign(z), 0.0)


def _trade(market: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per-bar net returns of positions ``pos`` (`T x N`, decided at t) on the market's log returns
    (`T`, market[t] from t-1 to t): bar t earns p_t * (exp(m_{t+1}) - 1) minus costs of |p_t - p_{t-1}|."""
    simple = np.expm1(market)
    nxt = np.append(simple[1:], 0.0)
    cost = (FEE_BPS + SLIPPAGE_BPS) / 1e4
    change = np.abs(np.diff(pos, axis=0, prepend=0.0))
    return pos * nxt[:, None] - cost * change


def sim_family(kind: str, seed: int, strength: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(`T x N` trial returns, `T` market per-bar returns (buy-and-hold's), facts) of one family.

    Null kinds (``strength`` unused):

    - ``iid_latent``: i.i.d. Gaussian market; trials trade persistent noise with a common factor
      (pairwise correlation of the latents 0.3-0.7): correlated trials with nothing to learn;
    - ``garch_rules``: GARCH(1,1)-t market; trials are momentum / reversal rules on the past k
      returns (k 1..12, sign chosen per trial): rules on real features, nothing to find;
    - ``up_rules`` / ``down_rules``: the same rules on a market drifting +-20 % a year (trend rules
      then hold a net long / short: beta, not skill);
    - ``down_short_biased``: a falling market (-20 % a year) and trials that are short 70-90 % of the
      time without any timing (a learned short bias);
    - ``up_long_biased``: its mirror in a rising market.

    Edge kind ``edge``: an AR(1) market with coefficient ``strength`` (sign: momentum or reversion),
    drift 0 or +-20 % a year by seed; each trial trades the true conditional mean mixed with its own
    persistent noise (weight 0.7-0.95 on the signal)."""
    rng = np.random.default_rng(seed)
    t, n = SIM_T, SIM_N
    facts: dict[str, Any] = {"kind": kind, "seed": seed, "T": t, "N": n}
    gen = "garch_t" if kind == "garch_rules" else "gauss"
    drift = {
        "up_rules": DRIFT,
        "up_long_biased": DRIFT,
        "down_rules": -DRIFT,
        "down_short_biased": -DRIFT,
    }.get(kind, 0.0)
    phi = 0.0
    if kind == "edge":
        drift = float(rng.choice([0.0, DRIFT, -DRIFT]))
        phi = strength
    market, expected = simulate_log_returns(t + 1, seed=seed + 1, gen=gen, phi=phi, drift=drift)
    market, expected = market[1:], expected[1:]
    facts.update({"drift_annual": drift * PPY, "phi": phi, "gen": gen})
    if kind == "iid_latent":
        rho = rng.uniform(0.3, 0.7)
        common = _ar_noise(rng, (t, 1), 0.9)
        z = math.sqrt(rho) * common + math.sqrt(1 - rho) * _ar_noise(rng, (t, n), 0.9)
        pos = _positions(z)
        facts["latent_corr"] = rho
    elif kind in ("garch_rules", "up_rules", "down_rules"):
        ks = rng.integers(1, 13, n)
        signs = rng.choice([-1.0, 1.0], n)
        csum = np.concatenate([[0.0], np.cumsum(market)])
        idx = np.arange(t)
        # the rule at bar t looks at the returns of bars t-k+1..t: csum[t+1] - csum[t+1-k]
        z = np.column_stack(
            [s * (csum[idx + 1] - csum[np.maximum(idx + 1 - k, 0)]) for k, s in zip(ks, signs)]
        )
        pos = _positions(z, in_market=rng.uniform(0.4, 1.0))
        facts["lookbacks"] = ks.tolist()
    elif kind in ("down_short_biased", "up_long_biased"):
        share = rng.uniform(0.7, 0.9, n)
        u = _ar_noise(rng, (t, n), 0.9)
        from scipy.stats import norm

        direction = -1.0 if kind == "down_short_biased" else 1.0
        pos = np.where(u < norm.ppf(share), direction, -direction)  # biased, no timing
        facts["bias_share"] = share.round(3).tolist()
    elif kind == "edge":
        w = rng.uniform(0.7, 0.95, n)
        sig = (expected - drift) / max(float((expected - drift).std()), 1e-12)
        z = w * sig[:, None] + np.sqrt(1 - w**2) * _ar_noise(rng, (t, n), 0.5)
        pos = _positions(z, in_market=rng.uniform(0.5, 1.0))
        close = 100.0 * np.exp(np.cumsum(market))
        facts["oracle_sharpe"] = oracle_sharpe(close, expected, np.arange(t), PPY)
    else:
        raise ValueError(f"unknown family kind {kind!r}")
    trials = _trade(market, pos)
    bh = _trade(market, np.ones((t, 1)))[:, 0]
    return trials, bh, facts


SIM_NULLS = ("iid_latent", "garch_rules", "up_rules", "down_rules", "down_short_biased", "up_long_biased")
SIM_EDGES = (0.05, 0.1, 0.15, 0.2, 0.3)  # |phi|; the sign alternates (momentum / reversion)


def sim_jobs(nulls_per_kind: int, edges_per_strength: int) -> list[dict[str, Any]]:
    jobs = []
    for i, kind in enumerate(SIM_NULLS):
        for j in range(nulls_per_kind):
            jobs.append({"id": f"{kind}-{j}", "kind": kind, "seed": 50_000 + 1000 * i + j, "strength": 0.0})
    for i, phi in enumerate(SIM_EDGES):
        for j in range(edges_per_strength):
            jobs.append(
                {
                    "id": f"edge-{phi:g}-{j}",
                    "kind": "edge",
                    "seed": 90_000 + 1000 * i + j,
                    "strength": phi if j % 2 == 0 else -phi,
                }
            )
    return jobs


def run_sim(job: dict[str, Any]) -> dict[str, Any]:
    from engine.analysis.selection import sharpe_ratio
    from engine.analysis.verdict import verdict_from_returns

    t0 = time.time()
    trials, bh, facts = sim_family(job["kind"], job["seed"], job["strength"])
    sharpes = np.array([sharpe_ratio(trials[:, j]) for j in range(trials.shape[1])]) * math.sqrt(PPY)
    pick = int(np.argmax(sharpes))
    v = verdict_from_returns(trials, bh, pick, periods_per_year=PPY, seed=job["seed"])
    return {
        **job,
        "null": job["kind"] != "edge",
        "facts": facts,
        "edge": bool(v.edge),
        "skill_p_family": _f(v.skill_p_family),
        "skill_p_pick": _f(v.skill_p_pick),
        "deflated_sharpe": _f(v.deflated_sharpe),
        "n_effective": v.n_effective,
        "pbo": _f(v.pbo),
        "pick_sharpe": _f(sharpes[pick]),
        "mean_sharpe": _f(sharpes.mean()),
        "pick_beta": _f(v.beta),
        "pick_alpha_sharpe": _f(v.alpha_sharpe),
        "bh_sharpe": _f(sharpe_ratio(bh) * math.sqrt(PPY)),
        "seconds": round(time.time() - t0, 2),
        "code": _FINGERPRINT,
    }


# ----------------------------------------------------------------------------- champion rule (simulation)

CHAMP_T = 2000
CHAMP_N = 10
OBJECTIVES = (("return_pct", True), ("sharpe", True), ("max_drawdown_pct", False))
CHALLENGER_ALPHA = 0.0008  # per bar, noise sd 0.006: alpha Sharpe 0.0008 / 0.006 * sqrt(252) = 2.1


def _metrics(r: np.ndarray) -> dict[str, float]:
    from objectives.backtest import equity_stats

    ret, sharpe, dd = equity_stats(r, PPY)
    return {"return_pct": ret, "sharpe": sharpe, "max_drawdown_pct": dd}


def champion_decision(seed: int, scenario: str) -> dict[str, Any]:
    """One decision. The family: N + 1 draws of 0.3 * market + alpha + N(0, 0.006) per bar (an
    alpha Sharpe of 2.1 each); the challenger is the one of the first N with the highest mean
    return (selected on the returns it is compared on). The champion is the (N+1)-th draw
    (``equal``), or the same process with alpha 0 (``better``: margin 2.1 in alpha Sharpe) or
    half the alpha (``better_half``: margin 1.05).

    The decision is taken twice: with the facts the engine would have (the pick's verdict and PBO
    from :func:`verdict_from_returns` on all N + 1 trials, the champion included, as in a study
    that re-evaluated it), and with evidence and PBO 0.3 forced (the comparison layers alone:
    one-standard-error rules and StepM)."""
    from engine.analysis.verdict import verdict_from_returns
    from engine.weekly.champion import Facts, apply_rules, compare

    rng = np.random.default_rng(seed)
    market = rng.normal(0.0002, 0.01, CHAMP_T)
    trials = 0.3 * market[:, None] + CHALLENGER_ALPHA + rng.normal(0.0, 0.006, (CHAMP_T, CHAMP_N + 1))
    alpha = {"equal": CHALLENGER_ALPHA, "better": 0.0, "better_half": CHALLENGER_ALPHA / 2}[scenario]
    champion = trials[:, CHAMP_N] - CHALLENGER_ALPHA + alpha
    trials = trials[:, :CHAMP_N]
    pick = int(np.argmax(trials.mean(axis=0)))
    comparison, stepm, superior = compare(
        trials,
        pick,
        champion,
        market,
        metrics=(_metrics(trials[:, pick]), _metrics(champion)),
        objectives=list(OBJECTIVES),
        periods_per_year=PPY,
        seed=seed,
    )
    every = np.column_stack([trials, champion])
    v = verdict_from_returns(every, market, pick, periods_per_year=PPY, seed=seed)
    base = {
        "live": True,
        "reevaluated": True,
        "champion_status": "completed",
        "comparison": comparison,
        "superior": superior,
        "stepm": stepm,
    }
    full = apply_rules(Facts(evidence=bool(v.edge), pbo=float(v.pbo), **base))
    layers = apply_rules(Facts(evidence=True, pbo=0.3, **base))
    return {
        "id": f"{scenario}-{seed}",
        "scenario": scenario,
        "seed": seed,
        "decision": full[0],
        "rule": full[2],
        "decision_layers": layers[0],
        "rule_layers": layers[2],
        "evidence": bool(v.edge),
        "pbo": _f(v.pbo),
        "deflated_sharpe": _f(v.deflated_sharpe),
        "better": {k: bool(c["better"]) for k, c in comparison.items()},
        "worse": {k: bool(c["worse"]) for k, c in comparison.items()},
        "superior": bool(superior),
        "code": _FINGERPRINT,
    }


CHAMP_SCENARIOS = ("equal", "better", "better_half")


# ----------------------------------------------------------------------------- summaries


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Two-sided 95 % Clopper–Pearson interval of k successes in n."""
    from scipy.stats import binomtest

    if n == 0:
        return math.nan, math.nan
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def one_sided_upper(k: int, n: int) -> float:
    """One-sided 95 % Clopper–Pearson upper bound (the bound to quote for "at most")."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(0.95, k + 1, n - k))


def rate(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{k}/{n} = {100 * k / n:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]" if n else "0/0"


def _fmt(x: Any, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _group(
    records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return out


def _null_group(case_id: str) -> str:
    name = case_id.split("-", 1)[1].rsplit("-", 1)[0]
    return {
        "iid": "i.i.d. Gaussian",
        "garch": "GARCH-t",
        "up": "drift up, Gaussian",
        "up-garch": "drift up, GARCH-t",
        "down": "drift down, Gaussian",
        "down-garch": "drift down, GARCH-t",
    }.get(name, name)


def summarize_studies(records: list[dict[str, Any]]) -> str:
    out: list[str] = []
    done = [r for r in records if r.get("verdict") is not None]
    if not done:
        return "no real-study cases yet"

    def ev(r: dict[str, Any]) -> bool:
        return bool(r["verdict"]["edge"])

    nulls = [r for r in done if r["kind"] == "null"]
    k = sum(ev(r) for r in nulls)
    out.append("### Real studies: false evidence on nulls")
    rows = [
        [
            g,
            rate(sum(ev(r) for r in rs), len(rs)),
            f"{100 * one_sided_upper(sum(ev(r) for r in rs), len(rs)):.0f} %",
        ]
        for g, rs in _group(nulls, lambda r: _null_group(r["case"])).items()
    ]
    rows.append(["**all nulls**", rate(k, len(nulls)), f"**{100 * one_sided_upper(k, len(nulls)):.1f} %**"])
    out.append(_table(["null kind", "evidence (95 % CI)", "one-sided 95 % upper bound"], rows))
    edges = [r for r in done if r["kind"] == "edge"]
    out.append("\n### Real studies: power (evidence on series with an edge)")
    rows = []

    def bucket(r: dict[str, Any]) -> str:
        s = "medium" if (r.get("oracle_sharpe") or 0) >= MEDIUM_ORACLE else "weak"
        d = r["params"]["drift_annual"]
        return f"{s}, {'no drift' if d == 0 else ('drift up' if d > 0 else 'drift down')}"

    for g, rs in sorted(_group(edges, bucket).items()):
        orc = [r["oracle_sharpe"] for r in rs]
        rows.append([g, rate(sum(ev(r) for r in rs), len(rs)), f"{min(orc):.1f}–{max(orc):.1f}"])
    for s in ("medium", "weak"):
        rs = [r for r in edges if bucket(r).startswith(s)]
        if rs:
            orc = [r["oracle_sharpe"] for r in rs]
            rows.append(
                [f"**{s}, all**", rate(sum(ev(r) for r in rs), len(rs)), f"{min(orc):.1f}–{max(orc):.1f}"]
            )
    out.append(
        _table(["edge (by realised oracle Sharpe; medium >= 3)", "evidence (95 % CI)", "oracle Sharpe"], rows)
    )
    out.append("\n### Real studies: verdict against the held-out test (the knee's test Sharpe)")

    def pos(r: dict[str, Any]) -> bool:
        return (r["pick_test"].get("sharpe") or 0.0) > 0

    def sig(r: dict[str, Any]) -> bool:
        """The knee's test Sharpe is significantly above 0 (one-sided 5 %)."""
        t = r["pick_test"]
        return (t.get("sharpe") or 0.0) > 1.645 * (t.get("sharpe_se") or math.inf)

    rows = []
    for name, rs in (
        ("nulls", nulls),
        ("edges", edges),
        ("edge ends before test", [r for r in done if r["kind"] == "edge_ends"]),
    ):
        e = [r for r in rs if ev(r)]
        ne = [r for r in rs if not ev(r)]
        rows.append(
            [
                name,
                len(rs),
                f"{sum(pos(r) for r in e)}/{len(e)}",
                f"{sum(not sig(r) for r in ne)}/{len(ne)}",
                f"{sum(pos(r) for r in ne)}/{len(ne)}",
                _fmt(
                    float(
                        np.mean(
                            [r["pick_test"]["sharpe"] for r in rs if r["pick_test"].get("sharpe") is not None]
                        )
                    )
                    if rs
                    else None
                ),
                _fmt(float(np.mean([r["bh_test_sharpe"] for r in rs])) if rs else None),
            ]
        )
    out.append(
        _table(
            [
                "cases",
                "n",
                "evidence & test Sharpe > 0",
                "no evidence & test not significant (< 1.645 SE)",
                "no evidence & test Sharpe > 0",
                "mean knee test Sharpe",
                "mean buy-and-hold test Sharpe",
            ],
            rows,
        )
    )
    out.append("\n### Real studies: every case")
    rows = []
    for r in done:
        v = r["verdict"]
        t = r["pick_test"]
        rows.append(
            [
                r["case"],
                _fmt(r.get("oracle_sharpe"), 1),
                "**yes**" if v["edge"] else "no",
                _fmt(v["skill_p_family"], 3),
                _fmt(v["skill_p_pick"], 3),
                _fmt(v["deflated_sharpe"], 3),
                f"{v['n_effective']}/{v['n_study']}",
                _fmt(v["pbo"]),
                _fmt(v["sharpe_annual"]),
                _fmt(v["beta"]),
                f"{_fmt(t.get('sharpe'))} ± {_fmt(t.get('sharpe_se'))}",
                _fmt(t.get("return_pct"), 1),
                _fmt(r.get("pick_test_alpha_sharpe")),
                _fmt(r["bh_test_sharpe"]),
                _fmt(r.get("oracle_test_sharpe"), 1),
                f"{r['seconds'] / 60:.1f}",
            ]
        )
    out.append(
        _table(
            [
                "case",
                "oracle SR (oos)",
                "evidence",
                "skill p family",
                "skill p pick",
                "DSR",
                "N eff/study",
                "PBO",
                "knee SR (oos)",
                "knee beta",
                "knee test SR ± SE",
                "test return %",
                "test alpha SR",
                "B&H test SR",
                "oracle test SR",
                "min",
            ],
            rows,
        )
    )
    secs = [r["seconds"] for r in done]
    out.append(
        f"\n{len(done)} cases, {sum(secs) / 3600:.2f} h of studies (median {np.median(secs) / 60:.1f} min a case), "
        f"load average before the cases {min(r['load_before'] for r in done):.1f}–{max(r['load_before'] for r in done):.1f}"
    )
    return "\n".join(out)


def summarize_sim(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no simulated families yet"
    out = [
        "### Simulation (statistical layer only, no model trained): verdict_from_returns on generated families"
    ]
    nulls = [r for r in records if r["null"]]
    rows = []
    for kind, rs in _group(nulls, lambda r: r["kind"]).items():
        k = sum(r["edge"] for r in rs)
        rows.append(
            [
                kind,
                rate(k, len(rs)),
                f"{100 * one_sided_upper(k, len(rs)):.1f} %",
                f"{100 * np.mean([r['skill_p_family'] < 0.05 for r in rs]):.0f} %",
                f"{100 * np.mean([r['deflated_sharpe'] >= 0.95 for r in rs]):.0f} %",
                _fmt(float(np.mean([r["pick_sharpe"] for r in rs]))),
                _fmt(float(np.mean([r["bh_sharpe"] for r in rs]))),
                _fmt(float(np.mean([abs(r["pick_beta"]) for r in rs]))),
                _fmt(float(np.mean([r["n_effective"] for r in rs])), 1),
            ]
        )
    k = sum(r["edge"] for r in nulls)
    rows.append(
        ["**all nulls**", rate(k, len(nulls)), f"**{100 * one_sided_upper(k, len(nulls)):.1f} %**", *[""] * 6]
    )
    out.append(
        _table(
            [
                "null family",
                "evidence (95 % CI)",
                "one-sided upper",
                "family skill p < 0.05",
                "pick DSR >= 0.95",
                "mean pick Sharpe",
                "mean B&H Sharpe",
                "mean abs pick beta",
                "mean N eff",
            ],
            rows,
        )
    )
    edges = [r for r in records if not r["null"]]
    rows = []
    for phi, rs in sorted(_group(edges, lambda r: f"{abs(r['strength']):.2f}").items()):
        orc = [r["facts"]["oracle_sharpe"] for r in rs]
        rows.append(
            [
                phi,
                f"{np.median(orc):.1f}",
                _fmt(float(np.mean([r["mean_sharpe"] for r in rs]))),
                _fmt(float(np.mean([r["pick_sharpe"] for r in rs]))),
                rate(sum(r["edge"] for r in rs), len(rs)),
                f"{100 * np.mean([r['skill_p_family'] < 0.05 for r in rs]):.0f} %",
                f"{100 * np.mean([r['skill_p_pick'] < 0.05 for r in rs]):.0f} %",
                f"{100 * np.mean([r['deflated_sharpe'] >= 0.95 for r in rs]):.0f} %",
            ]
        )
    out.append("")
    out.append(
        _table(
            [
                "edge family abs(phi)",
                "median oracle Sharpe",
                "mean trial Sharpe",
                "mean pick Sharpe",
                "evidence (95 % CI)",
                "family p < 0.05",
                "pick p < 0.05",
                "DSR >= 0.95",
            ],
            rows,
        )
    )
    out.append(
        f"\n{len(records)} families of N = {SIM_N} trials over T = {SIM_T} bars, "
        f"{sum(r['seconds'] for r in records) / 60:.1f} min"
    )
    return "\n".join(out)


def summarize_champion(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no champion decisions yet"
    rows = []
    for sc, rs in _group(records, lambda r: r["scenario"]).items():
        rules: dict[str, int] = {}
        for r in rs:
            rules[r["rule"]] = rules.get(r["rule"], 0) + 1
        rules_l: dict[str, int] = {}
        for r in rs:
            rules_l[r["rule_layers"]] = rules_l.get(r["rule_layers"], 0) + 1
        rows.append(
            [
                sc,
                rate(sum(r["decision"] == "replace" for r in rs), len(rs)),
                rate(sum(r["decision_layers"] == "replace" for r in rs), len(rs)),
                f"{100 * np.mean([r['evidence'] for r in rs]):.0f} %",
                f"{np.median([r['pbo'] for r in rs]):.2f}",
                f"{100 * np.mean([r['superior'] for r in rs]):.0f} %",
                "; ".join(f"{k} {v}" for k, v in sorted(rules.items(), key=lambda x: -x[1])),
                "; ".join(f"{k} {v}" for k, v in sorted(rules_l.items(), key=lambda x: -x[1])),
            ]
        )
    return "### Champion rule (simulation)\n" + _table(
        [
            "scenario",
            "replaced, full rule (95 % CI)",
            "replaced, evidence & PBO 0.3 forced",
            "pick has evidence",
            "median PBO",
            "StepM: challenger superior",
            "deciding rule (full)",
            "deciding rule (forced)",
        ],
        rows,
    )


# ----------------------------------------------------------------------------- main


def _pool_map(
    fn: Callable[[dict[str, Any]], dict[str, Any]], jobs: list[dict[str, Any]], path: Path, procs: int
) -> None:
    done = {r["id"] for r in read_lines(path)}
    todo = [j for j in jobs if j["id"] not in done]
    print(f"{path.name}: {len(done)} done, {len(todo)} to run with {procs} process(es)", flush=True)
    if not todo:
        return
    if procs <= 1:
        for i, j in enumerate(todo, 1):
            append_line(path, fn(j))
            if i % 25 == 0:
                print(f"  {i}/{len(todo)}", flush=True)
        return
    from multiprocessing import get_context

    with get_context("spawn").Pool(procs, initializer=_one_thread) as pool:
        for i, rec in enumerate(pool.imap_unordered(fn, todo), 1):
            append_line(path, rec)
            if i % 25 == 0:
                print(f"  {i}/{len(todo)}", flush=True)


def _one_thread() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--cases",
        "--only",
        dest="cases",
        default=None,
        help="case ids, kinds or id prefixes, comma-separated",
    )
    p.add_argument("--list", action="store_true", help="list the real-study cases and exit")
    p.add_argument(
        "--summarize", action="store_true", help="print the tables from the JSON lines; run nothing"
    )
    p.add_argument("--sim", action="store_true", help="run the statistical-layer simulation (no studies)")
    p.add_argument("--champion", action="store_true", help="run the champion-rule simulation (no studies)")
    p.add_argument("--sim-nulls", type=int, default=50, help="null families per kind (6 kinds)")
    p.add_argument("--sim-edges", type=int, default=40, help="edge families per strength (5 strengths)")
    p.add_argument("--decisions", type=int, default=200, help="champion decisions per scenario")
    p.add_argument("--procs", type=int, default=1, help="processes for the simulations")
    p.add_argument(
        "--workers", type=int, default=2, help="a study's local workers (torch threads each: 2 // workers)"
    )
    p.add_argument(
        "--scheme",
        choices=("walk_forward", "cpcv"),
        default="walk_forward",
        help="the studies' validation (cpcv: 4 groups, 2 tested a split; default file "
        "verdict_calibration_cpcv.jsonl)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of real-study cases (100 each: seeds 1000-1099, 2000-2099, ...)",
    )
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=4, help="budget.max_epochs (later folds: half)")
    p.add_argument("--scratch", type=Path, default=SCRATCH, help="study directories (not committed)")
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="folder of the three JSON-lines files (default benchmarks/results)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the real studies' file (default RESULTS/verdict_calibration.jsonl)",
    )
    p.add_argument("--redo", action="store_true", help="run the chosen cases again (a fresh study each)")
    p.add_argument(
        "--pareto-folds",
        action="store_true",
        help="walk-forward studies with Pareto-aware stopping across folds (early_stopping.pareto_folds)",
    )
    args = p.parse_args(argv)
    default_out = STUDIES_FILE.name if args.scheme == "walk_forward" else "verdict_calibration_cpcv.jsonl"
    if args.pareto_folds:
        if args.scheme != "walk_forward":
            p.error("--pareto-folds judges walk-forward folds: use it with --scheme walk_forward")
        default_out = "verdict_calibration_pf.jsonl"
    out = args.out or args.results / default_out
    if args.scheme == "cpcv" and args.scratch == SCRATCH:  # never resume a walk-forward study as CPCV
        args.scratch = SCRATCH.parent / f"{SCRATCH.name}_cpcv"
    if args.pareto_folds and args.scratch == SCRATCH:  # nor one without fold stopping as one with it
        args.scratch = SCRATCH.parent / f"{SCRATCH.name}_pf"
    sim_file, champion_file = args.results / SIM_FILE.name, args.results / CHAMPION_FILE.name

    cases = make_cases(args.rounds)
    if args.list:
        for c in cases:
            print(
                f"{c.id:28s} {c.kind:9s} {c.gen:8s} phi {c.phi:+.2f} drift {c.drift * PPY:+.0%}/yr seed {c.seed}"
            )
        return 0
    if args.summarize:
        print(summarize_studies(latest(read_lines(out), "case")))
        print()
        print(summarize_sim(latest(read_lines(sim_file), "id")))
        print()
        print(summarize_champion(latest(read_lines(champion_file), "id")))
        return 0
    t0 = time.time()
    print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
    if args.sim or args.champion:
        if args.sim:
            _pool_map(run_sim, sim_jobs(args.sim_nulls, args.sim_edges), sim_file, args.procs)
            print(summarize_sim(latest(read_lines(sim_file), "id")))
        if args.champion:
            jobs = [
                {"id": f"{s}-{i}", "scenario": s, "seed": i}
                for s in CHAMP_SCENARIOS
                for i in range(args.decisions)
            ]
            _pool_map(_champion_job, jobs, champion_file, args.procs)
            print(summarize_champion(latest(read_lines(champion_file), "id")))
        print(f"wall {time.time() - t0:.0f} s; uptime: {os.popen('uptime').read().strip()}")
        return 0
    chosen = select_cases(cases, args.cases)
    done = {r["case"] for r in read_lines(out)}
    todo = [c for c in chosen if args.redo or c.id not in done]
    print(f"{len(chosen)} case(s) chosen, {len(todo)} to run; studies under {args.scratch}", flush=True)
    for i, case in enumerate(todo, 1):
        if args.redo and (args.scratch / case.id).exists():
            shutil.rmtree(args.scratch / case.id)
        print(f"[{i}/{len(todo)}] {case.id} (seed {case.seed}) ...", flush=True)
        rec = run_case(
            case,
            args.scratch,
            workers=args.workers,
            trials=args.trials,
            epochs=args.epochs,
            scheme=args.scheme,
            pareto_folds=args.pareto_folds,
        )
        rec["scheme"] = args.scheme
        rec["pareto_folds"] = args.pareto_folds
        append_line(out, rec)
        v = rec["verdict"] or {}
        print(
            f"  {rec['seconds'] / 60:.1f} min; evidence {v.get('edge')}; skill p {_fmt(v.get('skill_p_family'), 3)} / "
            f"{_fmt(v.get('skill_p_pick'), 3)}; DSR {_fmt(v.get('deflated_sharpe'), 3)} at N {v.get('n_effective')}; "
            f"knee SR {_fmt(v.get('sharpe_annual'))}; oracle {_fmt(rec['oracle_sharpe'], 1)}; "
            f"knee test SR {_fmt(rec['pick_test'].get('sharpe'))} (B&H {_fmt(rec['bh_test_sharpe'])})",
            flush=True,
        )
    print(summarize_studies(latest(read_lines(out), "case")))
    print(f"wall {time.time() - t0:.0f} s; uptime: {os.popen('uptime').read().strip()}")
    return 0


def _champion_job(job: dict[str, Any]) -> dict[str, Any]:
    return champion_decision(job["seed"], job["scenario"])


if __name__ == "__main__":
    raise SystemExit(main())
