"""Hypervolume regret vs. evaluations for boengine's strategy and other optimizers.

Each run optimises one problem with one method in batches of ``q`` and
records, at every budget, the exact hypervolume of the feasible
observations (reference point = the problem's objective thresholds) and
``log10(max_hv - hv)``, lower is better. Problems (``--problems``, see
``benchmarks/common.py``): BoTorch's BraninCurrin (d=2, 2 objectives, max HV
59.36) and DTLZ2 (d=6, 3 objectives, max HV 0.8074), the two the defaults
were tuned on; BoTorch's VehicleSafety (``vehicle_safety``: d=5, 3
objectives), Penicillin (``penicillin``: d=7, 3 objectives), CarSideImpact
(``car_side_impact``: d=7, 4 objectives) and C2DTLZ2 (``c2dtlz2``: d=6, 2
objectives and an outcome constraint), which they were not; and
``mixed_hpo`` (8 mixed float/int/choice parameters, a linear constraint, 3
objectives and an outcome constraint). Methods:

==============  ==========================================================
boengine        ``engine.optimizer`` with the default ``OptimizerSpec``
                (``--spec key=value`` overrides fields, ``--label`` names
                the variant) and the quasi-random start boengine gives
                trials without standard errors (4 trials, the centre
                included; ``--sobol-trials 8`` is the start of model
                families, whose trials are noisy)
ax_default      ``Client.configure_generation_strategy()`` defaults
sobol           Ax Sobol only
optuna_tpe      ``TPESampler(multivariate=True)``
optuna_nsga2    ``NSGAIISampler()``
optuna_gp       ``GPSampler()``
==============  ==========================================================

Optuna asks ``q`` trials, all are evaluated, then told. All BO methods use
the same objective thresholds; Optuna gets the outcome constraint through
``constraints_func`` and ``top_k <= num_experts`` as a dynamic range.

A run is keyed by (method, problem, seed) and writes one row per budget to
``benchmarks/results/sample_efficiency.csv``; rows already there are
skipped, so the script resumes, and ``--shard i/n`` splits the runs between
processes (the file is appended under a lock). Expensive: Ax's default takes
minutes per batch late in a run.

    python benchmarks/sample_efficiency.py --quick
    python benchmarks/sample_efficiency.py --methods boengine,optuna_tpe --seeds 10
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from common import (  # sibling module; run as `python benchmarks/sample_efficiency.py`
    PROBLEMS,
    RESULTS,
    Metrics,
    Params,
    Problem,
    ResultsFile,
    machine_info,
    make_client,
    parse_spec,
    quiet,
    table,
)

from engine.optimizer import OptimizerSpec, prebuild_kernels
from engine.spec_model import SOBOL_TRIALS_NOISELESS

COLUMNS = [
    "method",
    "problem",
    "seed",
    "budget",
    "evaluations",
    "hv",
    "log10_regret",
    "propose_s_total",
    "propose_s_median_batch",
    "propose_s_max_batch",
    "spec",
    "date",
    "load_1min",
]
KEY = ["method", "problem", "seed", "budget"]
Ask = Callable[[int], list[tuple[Any, Params]]]  # (handle, parameters)
Tell = Callable[[list[tuple[Any, Metrics]]], None]


def ax_runner(
    problem: Problem,
    method: str,
    seed: int,
    spec: OptimizerSpec | None,
    sobol_trials: int = SOBOL_TRIALS_NOISELESS,
) -> tuple[Ask, Tell]:
    client = make_client(problem, method, seed=seed, sobol_trials=sobol_trials, spec=spec)

    def ask(q: int) -> list[tuple[Any, Params]]:
        return list(client.get_next_trials(max_trials=q).items())

    def tell(results: list[tuple[Any, Metrics]]) -> None:
        for index, metrics in results:
            client.complete_trial(index, {k: float(v) for k, v in metrics.items()})

    return ask, tell


def optuna_runner(problem: Problem, method: str, seed: int) -> tuple[Ask, Tell]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
        return [float(v) for v in trial.user_attrs.get("constraints", [0.0])]

    cfunc = constraints if problem.outcome_constraints else None
    sampler: optuna.samplers.BaseSampler
    if method == "optuna_tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constraints_func=cfunc)
    elif method == "optuna_nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cfunc)
    elif method == "optuna_gp":
        sampler = optuna.samplers.GPSampler(seed=seed, constraints_func=cfunc)
    else:
        raise ValueError(f"unknown method {method!r}")
    directions = ["minimize" if o.minimize else "maximize" for o in problem.objectives]
    study = optuna.create_study(directions=directions, sampler=sampler)

    def ask(q: int) -> list[tuple[Any, Params]]:
        out = []
        for _ in range(q):  # ask and suggest one by one: later trials see earlier ones as running
            trial = study.ask()
            out.append((trial, _suggest(trial, problem)))
        return out

    def tell(results: list[tuple[Any, Metrics]]) -> None:
        for trial, metrics in results:
            trial.set_user_attr("constraints", [b - metrics[m] for m, b in problem.outcome_constraints])
            study.tell(trial, [metrics[o.name] for o in problem.objectives])

    return ask, tell


def _suggest(trial: Any, problem: Problem) -> Params:
    out: Params = {}
    for p in problem.parameters:
        bounds = getattr(p, "bounds", None)
        if bounds is None:  # choice
            out[p.name] = trial.suggest_categorical(p.name, list(p.values))  # type: ignore[union-attr]
        elif p.parameter_type == "int":  # type: ignore[union-attr]
            high = int(bounds[1])
            if p.name == "top_k" and "num_experts" in out:  # top_k <= num_experts
                high = min(high, int(out["num_experts"]))
            out[p.name] = trial.suggest_int(p.name, int(bounds[0]), high)
        else:
            log = getattr(p, "scaling", None) == "log"
            out[p.name] = trial.suggest_float(p.name, float(bounds[0]), float(bounds[1]), log=log)
    return out


def run_one(
    problem: Problem,
    method: str,
    seed: int,
    budgets: list[int],
    q: int,
    spec: OptimizerSpec | None,
    label: str | None = None,
    sobol_trials: int = SOBOL_TRIALS_NOISELESS,
) -> list[dict[str, Any]]:
    """One run of ``method`` up to the largest budget; a row per budget, named ``label`` (or the method)."""
    ask, tell = (
        optuna_runner(problem, method, seed)
        if method.startswith("optuna")
        else ax_runner(problem, method, seed, spec, sobol_trials)
    )
    observed: list[Metrics] = []
    batch_seconds: list[float] = []
    rows = []
    for budget in sorted(budgets):
        while len(observed) < budget:
            start = time.perf_counter()
            asked = ask(min(q, budget - len(observed)))
            batch_seconds.append(time.perf_counter() - start)
            results = [(handle, problem.evaluate(p)) for handle, p in asked]
            tell(results)
            observed.extend(m for _, m in results)
        hv = problem.hypervolume(observed)
        rows.append(
            {
                "method": label or method,
                "problem": problem.name,
                "seed": seed,
                "budget": budget,
                "evaluations": len(observed),
                "hv": hv,
                "log10_regret": problem.log10_regret(hv),
                "propose_s_total": sum(batch_seconds),
                "propose_s_median_batch": statistics.median(batch_seconds),
                "propose_s_max_batch": max(batch_seconds),
                "spec": spec.model_dump_json(exclude_defaults=True) if spec and method == "boengine" else "",
                "date": time.strftime("%Y-%m-%d"),
                "load_1min": machine_info()["load_1min"],
            }
        )
    return rows


def summary(rows: list[dict[str, str]], budgets: list[int]) -> str:
    groups: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        if int(r["budget"]) in budgets:
            groups.setdefault((r["problem"], r["method"], int(r["budget"])), []).append(
                float(r["log10_regret"])
            )
    problems = sorted({k[0] for k in groups})
    methods = sorted({k[1] for k in groups})
    body = []
    for prob in problems:
        for m in methods:
            cells = []
            for b in budgets:
                v = groups.get((prob, m, b))
                cells.append(f"{statistics.median(v):.3f} (n={len(v)})" if v else "-")
            if any(c != "-" for c in cells):
                body.append([prob, m, *cells])
    return table(body, ["problem", "method", *(f"median log10 regret @{b}" for b in budgets)])


def against_ax_default(rows: list[dict[str, str]], budgets: list[int]) -> str:
    """Each method's log10 regret minus Ax's default's on the same seeds (mean ± standard error over
    the seeds both ran; negative: the method is ahead), with the median proposal seconds a batch."""
    regret: dict[tuple[str, str, int], dict[str, float]] = {}
    seconds: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        key = (r["problem"], r["method"], int(r["budget"]))
        regret.setdefault(key, {})[r["seed"]] = float(r["log10_regret"])
        seconds.setdefault(key, []).append(float(r["propose_s_median_batch"]))
    body = []
    for prob, method, budget in sorted(regret):
        base = regret.get((prob, "ax_default", budget), {})
        if method == "ax_default" or budget not in budgets or not base:
            continue
        diffs = [v - base[seed] for seed, v in regret[(prob, method, budget)].items() if seed in base]
        if len(diffs) < 2:
            continue
        se = statistics.stdev(diffs) / math.sqrt(len(diffs))
        body.append(
            [
                prob,
                method,
                budget,
                f"{statistics.mean(diffs):+.3f} ± {se:.3f}",
                f"{sum(d < 0 for d in diffs)}/{len(diffs)}",
                f"{statistics.median(seconds[(prob, method, budget)]):.2f}",
                f"{statistics.median(seconds[(prob, 'ax_default', budget)]):.2f}",
            ]
        )
    return table(
        body,
        [
            "problem",
            "method",
            "evaluations",
            "minus Ax default (mean ± SE)",
            "seeds ahead",
            "batch s (median)",
            "Ax default batch s",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 seeds, budgets 24,48, no ax_default")
    parser.add_argument("--problems", default="branin_currin,dtlz2")
    parser.add_argument("--methods", default="boengine,sobol,optuna_tpe,optuna_nsga2,optuna_gp,ax_default")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budgets", default="24,48,96")
    parser.add_argument("--q", type=int, default=4)
    parser.add_argument(
        "--spec", nargs="*", default=[], help="OptimizerSpec overrides for boengine, key=value"
    )
    parser.add_argument(
        "--sobol-trials",
        type=int,
        default=SOBOL_TRIALS_NOISELESS,
        help="boengine's quasi-random trials, the centre included (default: boengine's for trials "
        "without standard errors; a batch is generated by one node, "
        "so with --q 4 the model starts at the next multiple of 4)",
    )
    parser.add_argument("--label", default="boengine", help="method name recorded for a boengine variant")
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th run starting at i")
    parser.add_argument("--results", default=str(RESULTS / "sample_efficiency.csv"))
    parser.add_argument(
        "--summarize", action="store_true", help="print the tables of the results file and run nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budgets = 3, "24,48"
        args.methods = "boengine,sobol,optuna_tpe,optuna_nsga2,optuna_gp"
    budgets = [int(b) for b in args.budgets.split(",")]
    if args.summarize:
        rows = ResultsFile(_path(args.results), COLUMNS).rows()
        main_file = ResultsFile(RESULTS / "sample_efficiency.csv", COLUMNS)
        if (
            _path(args.results).resolve() != main_file.path.resolve()
        ):  # a variants file: Ax's rows from the main one
            rows += [r for r in main_file.rows() if r["method"] == "ax_default"]
        print(summary(rows, budgets), against_ax_default(rows, budgets), sep="\n\n")
        return
    quiet()
    prebuild_kernels()
    spec = parse_spec(args.spec)
    methods = args.methods.split(",")
    label = {m: (args.label if m == "boengine" else m) for m in methods}
    results = ResultsFile(_path(args.results), COLUMNS)
    done = results.done(KEY)
    shard, shards = (int(v) for v in args.shard.split("/"))
    runs = [
        (p, m, s)
        for p in args.problems.split(",")
        for s in range(args.first_seed, args.first_seed + args.seeds)
        for m in methods
    ]
    for i, (pname, method, seed) in enumerate(runs):
        if i % shards != shard or all((label[method], pname, str(seed), str(b)) in done for b in budgets):
            continue
        start = time.perf_counter()
        rows = run_one(
            PROBLEMS[pname](), method, seed, budgets, args.q, spec, label[method], args.sobol_trials
        )
        results.append(rows)
        print(
            f"{pname:14s} {label[method]:22s} seed {seed:2d}: "
            + ", ".join(f"@{r['budget']} {r['log10_regret']:.3f}" for r in rows)
            + f"  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    print(summary(results.rows(), budgets), against_ax_default(results.rows(), budgets), sep="\n\n")


def _path(p: str) -> Any:
    from pathlib import Path

    return Path(p)


if __name__ == "__main__":
    main()
