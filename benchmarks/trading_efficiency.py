"""Sample efficiency on a noisy trading objective: the held-out test figures of what each method picks.

The closed-form problems of ``sample_efficiency.py`` are noiseless; here the objective is a small
walk-forward study of a tiny LSTM on a generated daily series where the hyperparameters matter:

* **The series** (:func:`simulate_log_returns`, seeded): daily log returns
  ``r_t = -EDGE * SIGMA * sign(r_{t-LAG} + ... + r_{t-SKIP-1}) + e_t`` with
  ``e_t ~ N(0, SIGMA^2)``: the move of the bars 5 to 12 bars ago reverts. A model whose window
  (``seq_len``, searched over 2-24) is shorter than 5 bars sees none of that move (only what
  leaks through the later bars), one shorter than 12 part of it; too high a learning rate or too
  much width fits the noise. The oracle (:func:`oracle_positions`) has an annual Sharpe ratio of
  about 5-6 on the test split before costs; the trained models reach about 2 on validation.
* **The evaluation** (the same for every method): the engine's own walk-forward objective
  (:func:`engine.objective.make_objective`: 4 folds, the study's fees and slippage), each trial
  seeded with the study's per-trial seed rule (:func:`engine.study.loop.trial_seed` of the trial's
  index); three objectives (return %, Sharpe, max drawdown %) and ``num_trades >= 10``.
  Per-epoch early stopping is off, so that no method stops trials another cannot.
* **The methods**, same budget, same seed of the series and the study:

  ==============  ======================================================================
  ``boengine``    the real study (:func:`engine.study.run.run_study`): centre, Sobol, then
                  the engine's qLogNEHVI with the walk-forward standard errors as known noise
  ``sobol``       the same study with ``budget.sobol_trials = trials`` (centre + Sobol only)
  ``optuna_tpe``  Optuna's ``TPESampler(multivariate=True)``, multi-objective, the constraint
                  through ``constraints_func``; ask one, evaluate, tell
  ``optuna_gp``   Optuna's ``GPSampler`` (multi-objective, ``constraints_func``)
  ==============  ======================================================================

  Every method's first trial is the family's default configuration (the engine queues it as a
  baseline in every study; Optuna gets it with ``enqueue_trial``). Two more runs of the engine,
  not in the main table: ``boengine_pf`` (Pareto-aware stopping across folds on: the spec's
  default, ``"auto"``, where ``boengine`` turns it off), ``boengine_pf_sobol4`` (the same
  with 4 quasi-random trials instead of 8) and ``boengine_pf_mc128`` (the same with 128
  quasi-MC samples in the acquisition function instead of 16).
* **The figures**, at 20 trials (the first 20 of the run) and at 40: the Pareto front of the
  method's observations (:meth:`engine.records.ObjectiveSet.front`) and its knee
  (:meth:`~engine.records.ObjectiveSet.knee`), the configuration ``boengine best`` writes; the
  knee's **test Sharpe** and the **test hypervolume** of the front (the front's configurations
  scored on the held-out test split by the objective's own final fit, hypervolume above the
  study's reference point: return -50 %, Sharpe -3, drawdown 80 %). For ``boengine`` also the
  front and knee chosen from the GP's posterior mean at the evaluated configurations
  (:func:`engine.analysis.model_selection.posterior_selection`): the same studies, only the extra
  test scoring. The test split chooses nothing.

Usage (from the repository root; one process, one torch thread)::

    python benchmarks/trading_efficiency.py --seeds 1 --trials 12 --methods boengine,optuna_tpe  # a pilot
    python benchmarks/trading_efficiency.py --seeds 5 --trials 40     # every (method, seed) not yet done
    python benchmarks/trading_efficiency.py --summarize                # the tables from the JSON lines
    python benchmarks/trading_efficiency.py --summarize --with benchmarks/results/trading_efficiency_pending.jsonl
                                   # the same, with the runs of another file replacing their namesakes

Each (method, seed, trials) is one JSON line in ``benchmarks/results/trading_efficiency.jsonl``;
lines already there are skipped (``--redo`` runs them again, the summary uses the last one).
``--rescore`` recomputes the figures of finished runs from their study directories (no training
but the test scoring of picks not scored yet); ``--posterior-all`` adds the posterior-mean front
and knee for every method, not only boengine::

    python benchmarks/trading_efficiency.py --rescore --posterior-all --seeds 6 \\
        --out benchmarks/results/trading_efficiency_posterior.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the calibration benchmark's helpers: JSON lines, the code's fingerprint and the daily bars of a
# series of log returns (a sibling module: run as `python benchmarks/...`)
from verdict_calibration import _f, append_line, code_fingerprint, read_lines, write_bars  # noqa: E402

RESULTS_FILE = ROOT / "benchmarks" / "results" / "trading_efficiency.jsonl"
SCRATCH = Path("/tmp/trading_efficiency")
METHODS = ("boengine", "sobol", "optuna_tpe", "optuna_gp")
#: boengine with Pareto-aware stopping across folds (``early_stopping.pareto_folds``): item 1's
#: measurement, compared with ``boengine`` only (not a method of the main table)
FOLD_STOPPING = "boengine_pf"
#: boengine_pf with 4 quasi-random trials (the centre and 3 Sobol points) instead of 8: the
#: initialisation budget that closed the gap to Ax's default on the closed-form suite (item 5)
FOLD_STOPPING_SOBOL4 = "boengine_pf_sobol4"
# boengine_pf with 128 quasi-MC samples in qLogNEHVI instead of the default 16
FOLD_STOPPING_MC128 = "boengine_pf_mc128"
RUNNABLE = (*METHODS, FOLD_STOPPING, FOLD_STOPPING_SOBOL4, FOLD_STOPPING_MC128)
CHECKPOINTS = (20, 40)

N_BARS = 3000
SIGMA = 0.01  # daily volatility of the noise (~16 % a year)
LAG = 12  # the move of the bars SKIP + 1 .. LAG bars ago reverts: a window under SKIP + 1 sees none of it
SKIP = 4
EDGE = 0.3  # |E[r_t | the reverting move]| / SIGMA
FEE_BPS = 0.5
SLIPPAGE_BPS = 0.5
TEST_SHARE = 0.25  # ~750 test bars: a test Sharpe's standard error ~0.6
EPOCHS = 10  # budget.max_epochs (later walk-forward folds: half)
FOLDS = 4  # walk-forward folds
BATCH = 32


# ----------------------------------------------------------------------------- the series


def simulate_log_returns(
    n: int, *, seed: int, lag: int = LAG, skip: int = SKIP, edge: float = EDGE
) -> np.ndarray:
    """`n` log returns r_t = -edge * SIGMA * sign(r_{t-lag} + ... + r_{t-skip-1}) + e_t with
    e_t ~ N(0, SIGMA^2) (seeded): the move of the bars ``skip + 1`` to ``lag`` bars ago reverts."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, SIGMA, n)
    for t in range(lag, n):
        r[t] -= edge * SIGMA * np.sign(r[t - lag : t - skip].sum())
    return r


def oracle_positions(r: np.ndarray, lag: int = LAG, skip: int = SKIP) -> np.ndarray:
    """The oracle's position for bar t + 1 decided at bar t: -sign(r_{t+1-lag} + ... + r_{t-skip})."""
    c = np.concatenate([[0.0], np.cumsum(r)])
    pos = np.zeros(len(r))
    t = np.arange(lag - 1, len(r))
    pos[t] = -np.sign(c[t + 1 - skip] - c[t + 1 - lag])
    return pos


def oracle_sharpe(r: np.ndarray, start: int, stop: int) -> float:
    """Annual Sharpe ratio of the oracle (:func:`oracle_positions`) over decision bars
    ``start..stop-1`` (costs left out: an upper bound)."""
    t = np.arange(max(start, LAG), min(stop, len(r) - 1))
    pnl = oracle_positions(r)[t] * r[t + 1]
    sd = float(pnl.std())
    return float(pnl.mean()) / sd * math.sqrt(252.0) if sd > 0 else 0.0


def study_spec(
    name: str,
    source: Path,
    seed: int,
    *,
    trials: int,
    sobol_trials: int,
    pareto_folds: bool = False,
    optimizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The study every method runs (boengine's and Sobol's literally; Optuna's through its objective);
    ``pareto_folds``: with Pareto-aware stopping across folds (its default settings); ``optimizer``:
    the spec's optimizer section, if any."""
    spec: dict[str, Any] = {
        "name": name,
        "strategy": "lstm",
        "data": {
            "source": str(source),
            "feature_set": "ohlcv",
            "label": {"scheme": "A", "horizon": 1, "profit_threshold": 0.002, "min_diff": 0.001},
            "splits": {"train": 0.6, "val": 1.0 - 0.6 - TEST_SHARE, "test": TEST_SHARE},
            "validation": {"scheme": "walk_forward", "folds": FOLDS},
        },
        "search_space": {
            "hidden_size": {"values": [8, 16, 32]},
            "num_layers": 1,
            "seq_len": {"low": 2, "high": 24},
            "batch_size": BATCH,
            "learning_rate": {"low": 0.0001, "high": 0.03, "log": True},
            "dropout": {"low": 0.0, "high": 0.4},
            "predict_profit": False,
        },
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -50.0},
            "sharpe": {"goal": "max", "threshold": -3.0},
            "max_drawdown_pct": {"goal": "min", "threshold": 80.0},
        },
        "constraints": ["num_trades >= 10"],
        "budget": {
            "trials": trials,
            "sobol_trials": sobol_trials,
            "max_epochs": EPOCHS,
            "trial_timeout_s": 600,
        },
        "early_stopping": {"enabled": False, "pareto_folds": {"enabled": pareto_folds}},
        "backtest": {"fee_bps": FEE_BPS, "slippage_bps": SLIPPAGE_BPS},
        "executor": {"kind": "local", "workers": 1, "threads_per_worker": 1, "synchronous": True},
        "seed": seed,
    }
    if optimizer:
        spec["optimizer"] = optimizer
    return spec


# ----------------------------------------------------------------------------- the methods


class _NoChannel:
    """A channel for a trial run in this process: reports are dropped, nothing asks it to stop."""

    def report(self, trial_index: int, report: Mapping[str, float]) -> None:
        return None

    def should_stop(self, trial_index: int) -> bool:
        return False

    def fold_answered(self, trial_index: int, fold: int) -> bool:
        return True


def run_engine_study(spec_dict: dict[str, Any], root: Path) -> list[Any]:
    """boengine's (or the Sobol) study, run or resumed to its end; its records by trial index."""
    from engine.spec import parse_spec
    from engine.study.run import run_study

    outcome = run_study(parse_spec(spec_dict), root)
    return sorted(outcome.records, key=lambda r: r.index)


def run_optuna(spec_dict: dict[str, Any], root: Path, method: str, trials: int, seed: int) -> list[Any]:
    """Optuna's ask/tell loop over the engine's objective (a fresh run each time: not resumable)."""
    import optuna

    from engine.objective import make_objective
    from engine.records import ObjectiveSet, TrialRecord
    from engine.spec import parse_spec
    from engine.store import StudyStore
    from engine.study.experiment import full_parameters
    from engine.study.loop import trial_seed
    from engine.study.trial import TrialJob, execute
    from strategies.space import ChoiceParam, FloatParam, IntParam

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = parse_spec(spec_dict)
    if root.exists():
        shutil.rmtree(root)
    store = StudyStore(root)
    objective = make_objective(spec)
    objective.prepare().save(store.data_dir)
    objectives = ObjectiveSet.from_spec(spec)

    def constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
        return [float(v) for v in trial.user_attrs.get("constraints", [1.0])]

    sampler: optuna.samplers.BaseSampler
    if method == "optuna_tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constraints_func=constraints)
    elif method == "optuna_gp":
        sampler = optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)
    else:
        raise ValueError(f"unknown method {method!r}")
    study = optuna.create_study(
        directions=["maximize" if mx else "minimize" for mx in objectives.maximize], sampler=sampler
    )
    baseline = objective.baseline_configurations()[0]
    tunable = spec.space.tunable
    study.enqueue_trial({p.name: baseline[p.name] for p in tunable})
    records: list[TrialRecord] = []
    for index in range(trials):
        trial = study.ask()
        chosen: dict[str, Any] = {}
        for p in tunable:
            if isinstance(p, FloatParam):
                chosen[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            elif isinstance(p, IntParam):
                chosen[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log)
            elif isinstance(p, ChoiceParam):
                chosen[p.name] = trial.suggest_categorical(p.name, list(p.values))
        params = full_parameters(spec.space, chosen)
        job = TrialJob(
            index,
            params,
            trial_seed(spec.seed, index),
            objective,
            threads=1,
            data_dir=str(store.data_dir),
        )
        out = execute(job, _NoChannel())
        rec = TrialRecord(
            index=index,
            status=out.status,
            params=params,
            source="baseline" if index == 0 else method,
            metrics=dict(out.metrics),
            reason=out.reason,
            epochs=out.epochs,
            seconds=dict(out.seconds),
            sems=dict(out.sems),
            info=dict(out.info),
        )
        if out.checkpoint is not None:
            store.write_checkpoint(index, out.checkpoint)
        store.write_result(index, rec.to_dict())
        records.append(rec)
        if out.status == "completed" and all(n in out.metrics for n in objectives.names):
            trial.set_user_attr(
                "constraints",
                [
                    b - out.metrics.get(m, -math.inf) if op == ">=" else out.metrics.get(m, math.inf) - b
                    for m, op, b in objectives.constraints
                ],
            )
            study.tell(trial, [float(out.metrics[n]) for n in objectives.names])
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return records


def load_records(root: Path) -> list[Any]:
    """A finished run's records from its study directory (``trials/<i>/result.json``)."""
    from engine.records import TrialRecord

    out = []
    for path in (root / "trials").glob("*/result.json"):
        out.append(TrialRecord.from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path)))
    return sorted(out, key=lambda r: r.index)


# ----------------------------------------------------------------------------- the figures


def score(
    spec_dict: dict[str, Any], root: Path, records: Sequence[Any], method: str, *, with_model: bool
) -> dict[str, Any]:
    """Fronts and knees at each checkpoint, their held-out test figures (scored once, cached in
    the study's test.json)."""
    from engine.objective import make_objective
    from engine.records import ObjectiveSet, dominated_hypervolume
    from engine.spec import parse_spec
    from engine.store import StudyStore
    from engine.study.finish import evaluate_on_test

    spec = parse_spec(spec_dict)
    objective = make_objective(spec)
    store = StudyStore(root)
    objs = ObjectiveSet.from_spec(spec)
    ref = objs.ref_point
    out: dict[str, Any] = {}
    last = max((r.index for r in records), default=-1) + 1
    for n in sorted({*(c for c in CHECKPOINTS if c < last), last}):
        first = [r for r in records if r.index < n]
        picks: dict[str, tuple[list[Any], Any]] = {}
        front = objs.front(first)
        picks["observed"] = (front, objs.knee(front))
        if with_model:
            try:
                from engine.analysis.model_selection import posterior_selection

                sel = posterior_selection(spec, first)
                picks["posterior"] = (sel.front, sel.knee)
            except Exception as exc:  # the observed figures stand without it
                print(f"  posterior selection at {n} failed: {type(exc).__name__}: {exc}", flush=True)
        for kind, (fr, knee) in picks.items():
            t0 = time.perf_counter()
            test = evaluate_on_test(objective, store, fr, threads=1)
            y = []
            for r in fr:
                m = test.get(r.index)
                if m is not None and all(k in m for k in objs.names):
                    y.append([m[k] * (1.0 if mx else -1.0) for k, mx in zip(objs.names, objs.maximize)])
            ya = np.asarray(y, dtype=np.float64).reshape(-1, len(objs.names))
            keep = ya[(ya > ref).all(axis=1)] if len(ya) else ya
            hv = float(dominated_hypervolume(keep, ref)) if len(keep) else 0.0
            kt = test.get(knee.index, {}) if knee is not None else {}
            out[f"{kind}@{n}"] = {
                "front": [r.index for r in fr],
                "knee": None if knee is None else knee.index,
                "knee_params": None if knee is None else knee.params,
                "knee_val": None if knee is None else {k: _f(knee.metrics.get(k)) for k in objs.names},
                "knee_test": {
                    k: _f(kt.get(k)) for k in ("sharpe", "sharpe_se", "return_pct", "max_drawdown_pct")
                },
                "test_hv": hv,
                "test_scored": len(ya),
                "test_seconds": round(time.perf_counter() - t0, 1),
            }
    return out


# ----------------------------------------------------------------------------- one run


def run_one(
    method: str, seed: int, trials: int, scratch: Path, *, rescore: bool = False, model_all: bool = False
) -> dict[str, Any]:
    """Generate the seed's series, run the method (or reload it with ``rescore``), score it."""
    series_seed = 5000 + seed
    r = simulate_log_returns(N_BARS, seed=series_seed)
    base = scratch / f"seed{seed}"
    source = write_bars(base / "bars.csv", r, series_seed)
    root = base / f"{method}-{trials}"
    sobol = trials if method == "sobol" else min(4 if method == FOLD_STOPPING_SOBOL4 else 8, trials)
    spec = study_spec(
        f"te-{method}-{seed}",
        source,
        series_seed,
        trials=trials,
        sobol_trials=sobol,
        pareto_folds=method in (FOLD_STOPPING, FOLD_STOPPING_SOBOL4, FOLD_STOPPING_MC128),
        optimizer={"mc_samples": 128} if method == FOLD_STOPPING_MC128 else None,
    )
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if rescore:
        records = load_records(root)
    elif method in ("boengine", "sobol", FOLD_STOPPING, FOLD_STOPPING_SOBOL4, FOLD_STOPPING_MC128):
        records = run_engine_study(spec, root)
    else:
        records = run_optuna(spec, root, method, trials, series_seed)
    run_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    figures = score(spec, root, records, method, with_model=model_all or method == "boengine")
    n_test = int(TEST_SHARE * N_BARS)
    return {
        "method": method,
        "seed": seed,
        "series_seed": series_seed,
        "trials": trials,
        "completed": sum(x.status == "completed" for x in records),
        "failed": sum(x.status == "failed" for x in records),
        "run_seconds": round(run_s, 1),
        "score_seconds": round(time.perf_counter() - t1, 1),
        "trial_seconds_median": _f(np.median([x.seconds.get("total", math.nan) for x in records])),
        "trial_seconds_sum": _f(sum(x.seconds.get("total", 0.0) for x in records)),
        "pareto_stops": [
            {
                "index": x.index,
                "fold": x.info["pareto_stop"].get("fold"),
                "folds": x.info["pareto_stop"].get("folds"),
            }
            for x in records
            if isinstance(x.info.get("pareto_stop"), dict)
        ],
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "oracle_test_sharpe": _f(oracle_sharpe(r, N_BARS - n_test, N_BARS)),
        "seq_len_of_trials": [x.params.get("seq_len") for x in records],
        "figures": figures,
        "rescored": rescore,
        "params": {
            "n_bars": N_BARS,
            "lag": LAG,
            "skip": SKIP,
            "edge": EDGE,
            "batch": BATCH,
            "sigma": SIGMA,
            "epochs": EPOCHS,
        },
        "code": code_fingerprint(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ----------------------------------------------------------------------------- summary


def _q(xs: Sequence[float], scale: float = 1.0) -> str:
    """Median [interquartile range] of the values divided by ``scale``."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    a = np.asarray(xs, dtype=np.float64) / scale
    digits = 0 if scale > 1 else 2
    return f"{np.median(a):.{digits}f} [{np.quantile(a, 0.25):.{digits}f}, {np.quantile(a, 0.75):.{digits}f}]"


def _ms(xs: Sequence[float]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    a = np.asarray(xs, dtype=np.float64)
    se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else math.nan
    return f"{a.mean():.2f} ± {se:.2f}"


def summarize(records: Sequence[dict[str, Any]], trials: int) -> str:
    rows = [r for r in records if r["trials"] == trials and r["method"] in METHODS]
    # only seeds every method finished: the comparison is paired by series
    present = {m for m in METHODS if any(r["method"] == m for r in rows)}
    full = {s for s in {r["seed"] for r in rows} if {r["method"] for r in rows if r["seed"] == s} >= present}
    rows = [r for r in rows if r["seed"] in full]
    if not rows:
        return f"no runs of {trials} trials yet"
    out = [
        f"### {trials}-trial runs: knee test Sharpe (median [IQR]; mean ± se), test hypervolume of the front",
        "",
        "| method | pick from | seeds | knee test SR @20 | mean @20 | knee test SR @40 | mean @40 "
        "| knee val SR @40 (mean) | test HV/1000 @20 | test HV/1000 @40 "
        "| knee seq_len >= 12 (the whole move) @20 / @40 | run min (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    for method in [m for m in METHODS if m in by_method]:
        rs = sorted(by_method[method], key=lambda r: r["seed"])
        for kind in ("observed", "posterior"):
            if not any(f"{kind}@20" in r["figures"] for r in rs):
                continue

            def col(n: int, key: str, kind: str = kind, rs: list[dict[str, Any]] = rs) -> list[Any]:
                vals = []
                for r in rs:
                    f = r["figures"].get(f"{kind}@{n}")
                    if f is None:
                        continue
                    if key in ("sharpe", "val_sharpe"):
                        block = f["knee_test"] if key == "sharpe" else (f.get("knee_val") or {})
                        vals.append(block.get("sharpe"))
                    else:
                        vals.append(f.get(key))
                return vals

            def sees(n: int, kind: str = kind, rs: list[dict[str, Any]] = rs) -> str:
                ks = [r["figures"].get(f"{kind}@{n}", {}).get("knee_params") for r in rs]
                ks = [k for k in ks if k]
                return f"{sum(k['seq_len'] >= LAG for k in ks)}/{len(ks)}"

            out.append(
                f"| {method} | {kind} | {len(rs)} | {_q(col(20, 'sharpe'))} | {_ms(col(20, 'sharpe'))} "
                f"| {_q(col(40, 'sharpe'))} | {_ms(col(40, 'sharpe'))} | {_ms(col(40, 'val_sharpe'))} "
                f"| {_q(col(20, 'test_hv'), 1e3)} "
                f"| {_q(col(40, 'test_hv'), 1e3)} | {sees(20)} / {sees(40)} "
                f"| {np.median([r['run_seconds'] for r in rs]) / 60:.1f} |"
            )
    orc = [r["oracle_test_sharpe"] for r in rows if r["method"] == rows[0]["method"]]
    out.append("")
    out.append(
        f"oracle test Sharpe (no costs) median {np.median(orc):.2f}; load average before runs "
        f"{min(r['load_before'] for r in rows):.1f}-{max(r['load_before'] for r in rows):.1f}; "
        f"{sum(r['run_seconds'] + r['score_seconds'] for r in rows) / 3600:.2f} h in all"
    )
    seeds = sorted({r["seed"] for r in rows})
    paired = []
    for n in CHECKPOINTS:
        for m in METHODS:
            if m == "boengine":
                continue
            diffs = []
            for s in seeds:
                a = next((r for r in rows if r["method"] == "boengine" and r["seed"] == s), None)
                b = next((r for r in rows if r["method"] == m and r["seed"] == s), None)
                if a is None or b is None:
                    continue
                x = a["figures"].get(f"observed@{n}", {}).get("knee_test", {}).get("sharpe")
                y = b["figures"].get(f"observed@{n}", {}).get("knee_test", {}).get("sharpe")
                if x is not None and y is not None:
                    diffs.append(x - y)
            if diffs:
                paired.append(_paired_line(f"@{n} boengine - {m}", "boengine", diffs))
        for m in METHODS:
            diffs = []
            for r in rows:
                if r["method"] != m:
                    continue
                x = r["figures"].get(f"posterior@{n}", {}).get("knee_test", {}).get("sharpe")
                y = r["figures"].get(f"observed@{n}", {}).get("knee_test", {}).get("sharpe")
                if x is not None and y is not None:
                    diffs.append(x - y)
            if diffs:
                paired.append(
                    _paired_line(f"@{n} {m} posterior - observed pick", "posterior", diffs, ties=True)
                )
    out.append("")
    out.append("Paired differences of the knee's test Sharpe (mean ± se over seeds):")
    out.extend(f"- {p}" for p in paired)
    out.append("")
    out.append("Per seed: the knee's test Sharpe @20 / @40 (observed means; boengine also posterior)")
    out.append("")
    cols = [m for m in METHODS if any(r["method"] == m for r in rows)]
    out.append("| seed | oracle test SR | " + " | ".join(cols) + " | boengine posterior |")
    out.append("|---|---|" + "---|" * (len(cols) + 1))
    for s in seeds:
        cells = []
        for m, kind in [*((m, "observed") for m in cols), ("boengine", "posterior")]:
            hit = next((x for x in rows if x["method"] == m and x["seed"] == s), None)
            vals = [
                (hit["figures"].get(f"{kind}@{n}") or {}).get("knee_test", {}).get("sharpe") if hit else None
                for n in CHECKPOINTS
            ]
            cells.append(" / ".join("-" if v is None else f"{v:.2f}" for v in vals))
        oracle = next(x["oracle_test_sharpe"] for x in rows if x["seed"] == s)
        out.append(f"| {s} | {oracle:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _paired_line(label: str, who: str, diffs: Sequence[float], *, ties: bool = False) -> str:
    """'label: mean ± se (who ahead on k[, equal on e]/n seeds)' of paired differences."""
    equal = f", equal on {sum(d == 0 for d in diffs)}" if ties else ""
    return f"{label}: {_ms(diffs)} ({who} ahead on {sum(d > 0 for d in diffs)}{equal}/{len(diffs)} seeds)"


def summarize_fold_stopping(records: Sequence[dict[str, Any]], trials: int) -> str:
    """boengine with Pareto fold stopping against boengine without, paired by seed: cost and picks."""
    pairs = []
    for r in records:
        if r["method"] == FOLD_STOPPING and r["trials"] == trials:
            b = next(
                (
                    x
                    for x in records
                    if x["method"] == "boengine" and x["seed"] == r["seed"] and x["trials"] == trials
                ),
                None,
            )
            if b is not None:
                pairs.append((b, r))
    if not pairs:
        return f"no {FOLD_STOPPING} runs of {trials} trials paired with boengine yet"
    pairs.sort(key=lambda p: p[0]["seed"])

    knee = _observed_knee_sharpe

    def hv(r: dict[str, Any], n: int) -> Any:
        return (r["figures"].get(f"observed@{n}") or {}).get("test_hv")

    out = [
        f"### Pareto fold stopping ({FOLD_STOPPING}) against boengine, {trials}-trial runs, paired by seed",
        "",
        "| seed | stopped trials (after fold) | run s: boengine / pf (ratio) | training s: boengine / pf (ratio) "
        "| knee test SR @20: boengine / pf | @40: boengine / pf | test HV/1000 @40: boengine / pf |",
        "|---|---|---|---|---|---|---|",
    ]
    run_ratio, train_ratio = [], []
    for b, f in pairs:
        stops = f.get("pareto_stops", [])
        by_fold = {k: sum(s["fold"] == k for s in stops) for k in sorted({s["fold"] for s in stops})}
        at = ", ".join(f"fold {k}: {n}" for k, n in by_fold.items()) or "-"
        rr = f["run_seconds"] / b["run_seconds"]
        run_ratio.append(rr)
        tb, tf = b.get("trial_seconds_sum"), f.get("trial_seconds_sum")
        tr = tf / tb if tb and tf else None
        if tr is not None:
            train_ratio.append(tr)
        out.append(
            f"| {b['seed']} | {len(stops)} ({at}) | {b['run_seconds']:.0f} / {f['run_seconds']:.0f} ({rr:.2f}) "
            f"| {'-' if tb is None else f'{tb:.0f}'} / {'-' if tf is None else f'{tf:.0f}'} "
            f"({'-' if tr is None else f'{tr:.2f}'}) "
            f"| {_f2(knee(b, 20))} / {_f2(knee(f, 20))} | {_f2(knee(b, trials))} / {_f2(knee(f, trials))} "
            f"| {_f2(hv(b, trials), 1e3)} / {_f2(hv(f, trials), 1e3)} |"
        )
    out.append("")
    gm = float(np.exp(np.mean(np.log(run_ratio))))
    out.append(f"- run time pf / boengine: geometric mean {gm:.2f} over {len(run_ratio)} seeds")
    if train_ratio:
        gt = float(np.exp(np.mean(np.log(train_ratio))))
        out.append(f"- training seconds pf / boengine: geometric mean {gt:.2f} over {len(train_ratio)} seeds")
    for n in sorted({20, trials}):
        d = [knee(f, n) - knee(b, n) for b, f in pairs if knee(b, n) is not None and knee(f, n) is not None]
        if d:
            out.append("- " + _paired_line(f"knee test Sharpe @{n}, pf - boengine", "pf", d, ties=True))
    stops = [s for _, f in pairs for s in f.get("pareto_stops", [])]
    out.append(f"- {len(stops)} of {sum(f['trials'] for _, f in pairs)} trials stopped in {len(pairs)} runs")
    # the cost that does not depend on the machine's load: folds trained (a fold of a later
    # walk-forward window trains half the epochs of the first, so this is a rough measure)
    folds_full = sum(FOLDS * f["trials"] for _, f in pairs)
    folds_pf = folds_full - sum(s["folds"] - s["fold"] for s in stops)
    out.append(
        f"- folds trained, pf / boengine: {folds_pf} / {folds_full} = {folds_pf / folds_full:.2f} "
        f"(a trial stopped after fold k trains k of its {FOLDS})"
    )
    return "\n".join(out)


def summarize_default(records: Sequence[dict[str, Any]], trials: int) -> str:
    """The product's default (fold stopping on: ``boengine_pf``) against the other methods, paired by seed."""
    by = {(r["method"], r["seed"]): r for r in records if r["trials"] == trials}
    others = [m for m in METHODS if m != "boengine"]
    seeds = sorted(
        s for (m, s) in by if m == FOLD_STOPPING and all((o, s) in by for o in (*others, "boengine"))
    )
    if not seeds:
        return f"no {FOLD_STOPPING} runs of {trials} trials with every other method on the same seeds yet"
    knee = _observed_knee_sharpe

    out = [
        f"### The default (fold stopping on, {FOLD_STOPPING}) against the other methods, {trials}-trial "
        f"runs, seeds {seeds[0]}-{seeds[-1]} ({len(seeds)})",
        "",
        "| method | knee test SR @20 (median; mean ± se) | knee test SR @40 (median; mean ± se) |",
        "|---|---|---|",
    ]
    for m in (FOLD_STOPPING, "boengine", *others):
        cells = []
        for n in sorted({20, trials}):
            xs = [knee(by[(m, s)], n) for s in seeds]
            xs = [x for x in xs if x is not None]
            cells.append(f"{np.median(xs):.2f}; {_ms(xs)}" if xs else "-")
        out.append(f"| {m} | {' | '.join(cells)} |")
    out.append("")
    for n in sorted({20, trials}):
        for o in ("boengine", *others):
            d = [
                knee(by[(FOLD_STOPPING, s)], n) - knee(by[(o, s)], n)
                for s in seeds
                if knee(by[(FOLD_STOPPING, s)], n) is not None and knee(by[(o, s)], n) is not None
            ]
            if d:
                out.append("- " + _paired_line(f"@{n} {FOLD_STOPPING} - {o}", FOLD_STOPPING, d, ties=True))
    return "\n".join(out)


def _observed_knee_sharpe(r: dict[str, Any], n: int) -> Any:
    """The test Sharpe of a run's knee at ``n`` trials, picked from the observed front (None if absent)."""
    return (r["figures"].get(f"observed@{n}") or {}).get("knee_test", {}).get("sharpe")


def _f2(x: Any, scale: float = 1.0) -> str:
    return "-" if x is None else f"{x / scale:.2f}"


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="5", help="a count (0..n-1) or a comma-separated list of seeds")
    p.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated, of {', '.join(RUNNABLE)} ({FOLD_STOPPING}: boengine with Pareto fold stopping)",
    )
    p.add_argument("--trials", type=int, default=40)
    p.add_argument(
        "--summarize", action="store_true", help="print the tables from the JSON lines; run nothing"
    )
    p.add_argument("--redo", action="store_true", help="run the chosen (method, seed) pairs again, fresh")
    p.add_argument("--rescore", action="store_true", help="recompute the figures of finished runs")
    p.add_argument(
        "--posterior-all",
        action="store_true",
        help="the posterior-mean front and knee for every method (default: boengine only)",
    )
    p.add_argument("--scratch", type=Path, default=SCRATCH, help="study directories (not committed)")
    p.add_argument("--out", type=Path, default=RESULTS_FILE)
    p.add_argument(
        "--with",
        dest="also",
        type=Path,
        nargs="*",
        default=[],
        help="with --summarize: more JSON-lines files, read after --out (a later line of the same "
        "method, seed and trials replaces an earlier one)",
    )
    args = p.parse_args(argv)
    if args.summarize:
        lines = [r for path in (args.out, *args.also) for r in read_lines(path)]
        latest: dict[tuple[str, int, int], dict[str, Any]] = {}
        for r in lines:
            latest[(r["method"], r["seed"], r["trials"])] = r
        for t in sorted({k[2] for k in latest}, reverse=True):
            print(summarize(list(latest.values()), t))
            print()
            print(summarize_fold_stopping(list(latest.values()), t))
            print()
            print(summarize_default(list(latest.values()), t))
            print()
        return 0
    import torch

    torch.set_num_threads(1)
    seeds = list(range(int(args.seeds))) if args.seeds.isdigit() else [int(s) for s in args.seeds.split(",")]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in RUNNABLE]
    if unknown:
        raise SystemExit(f"--methods: unknown {', '.join(unknown)} (choose from {', '.join(RUNNABLE)})")
    done = {(r["method"], r["seed"], r["trials"]) for r in read_lines(args.out)}
    t0 = time.time()
    print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
    # seed-major: a cut run leaves whole seeds, every method of a seed on the same machine state
    for seed in seeds:
        for method in methods:
            key = (method, seed, args.trials)
            if key in done and not (args.redo or args.rescore):
                continue
            root = args.scratch / f"seed{seed}" / f"{method}-{args.trials}"
            if args.rescore and not (root / "trials").is_dir():
                continue
            if args.redo and root.exists():
                shutil.rmtree(root)
            print(f"[{method} seed {seed}] {args.trials} trials ...", flush=True)
            rec = run_one(
                method, seed, args.trials, args.scratch, rescore=args.rescore, model_all=args.posterior_all
            )
            append_line(args.out, rec)
            f40 = rec["figures"].get(f"observed@{args.trials}") or rec["figures"].get("observed@20") or {}
            print(
                f"  {rec['run_seconds'] / 60:.1f} min run + {rec['score_seconds']:.0f} s scoring; "
                f"knee test SR {f40.get('knee_test', {}).get('sharpe')}; test HV {f40.get('test_hv')}; "
                f"load {rec['load_after']}",
                flush=True,
            )
    print(summarize(read_lines(args.out), args.trials))
    print(summarize_fold_stopping(read_lines(args.out), args.trials))
    print(f"wall {time.time() - t0:.0f} s; uptime: {os.popen('uptime').read().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
