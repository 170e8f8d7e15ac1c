"""Proposal time of one batch vs. completed trials: boengine's strategy and Ax's default.

For each level (completed trials) and method, in one process and side by
side: attach that many synthetic completed trials (the same uniform random
configurations of the ``mixed_hpo`` problem for every method) plus
``--pending`` running ones, then ``--reps`` times: complete the oldest
``q`` running trials (so every batch sees new data and refits its GP, as in
a study) and time ``client.get_next_trials(max_trials=q)``. The proposals
are evaluated to report the hypervolume a batch adds. The medians are over
the batches of a level; the first batch at each level is also reported
(with ``--spec warm_start_gp=true`` it includes the anchor GP fits of
``engine/optimizer/gp.py`` that later batches reuse, as the first batch after a
study starts or resumes does).

Ax's default is measured up to the first level where one of its batches
exceeds ``--cap`` seconds; higher levels are skipped and marked so.

With ``--sem S`` every trial reports its three objectives as (value, SEM),
as a study's walk-forward trials do: the SEM of an objective is ``S`` times
its scale in ``mixed_hpo`` (return and drawdown 25, Sharpe 2) times a
per-trial factor drawn uniformly from 0.5..1.5 (standard errors differ
between trials), and the value reported is the true one plus Gaussian noise
of that SEM. Ax then fits GPs with fixed, known noise for the objectives
(the constraint metric ``num_trades`` stays noiseless, its noise inferred).
Hypervolumes are of the true values.

    python benchmarks/bo_overhead.py            # levels 12..300, 3 reps
    python benchmarks/bo_overhead.py --quick    # levels 12, 24, 48; 2 reps
    python benchmarks/bo_overhead.py --levels 100 --sem 0.05   # objectives with SEMs

Writes ``benchmarks/results/bo_overhead.csv`` (one row per batch) and
``bo_overhead.json`` (medians, ratios, machine) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import numpy as np
from ax.api.client import Client
from common import (  # sibling module; run as `python benchmarks/bo_overhead.py`
    RESULTS,
    Metrics,
    Params,
    Problem,
    ResultsFile,
    machine_info,
    make_client,
    mixed_hpo,
    parse_spec,
    quiet,
    table,
    timed,
)

from engine.optimizer import prebuild_kernels

COLUMNS = [
    "method",
    "level",
    "rep",
    "completed",
    "pending",
    "q",
    "returned",
    "node",
    "wall_s",
    "cpu_s",
    "hv_before",
    "hv_after",
    "sem",
    "load_1min",
]

# Scale of each objective of ``mixed_hpo`` (common.py maps DTLZ2's f to 25 (1.1 - f) - 5,
# 2 (1.1 - f) - 1 and 25 f + 2.5): ``--sem S`` gives an objective a SEM of S times its scale.
SEM_SCALES = {"return_pct": 25.0, "sharpe": 2.0, "max_drawdown_pct": 25.0}


def observe(metrics: Metrics, sem: float, rng: np.random.Generator) -> dict[str, Any]:
    """Ax's raw data for ``metrics``: objectives as (noisy value, SEM) where ``sem`` > 0."""
    raw: dict[str, Any] = {}
    for name, value in metrics.items():
        scale = SEM_SCALES.get(name)
        if sem > 0 and scale is not None:
            s = sem * scale * float(rng.uniform(0.5, 1.5))
            raw[name] = (float(value) + s * float(rng.standard_normal()), s)
        else:
            raw[name] = float(value)
    return raw


def complete(
    client: Client, problem: Problem, index: int, params: Params, sem: float, rng: np.random.Generator
) -> Metrics:
    """Evaluate ``params``, complete trial ``index`` with (noisy) data; returns the true metrics."""
    metrics = problem.evaluate(params)
    client.complete_trial(index, observe(metrics, sem, rng))
    return metrics


def measure_level(
    problem: Problem, method: str, level: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """``args.reps`` timed batches at ``level`` completed trials."""
    spec = parse_spec(args.spec) if method == "boengine" else None
    client = make_client(problem, method, seed=args.seed, sobol_trials=args.sobol_trials, spec=spec)
    rng = np.random.default_rng(args.seed)
    noise = np.random.default_rng([args.seed, 1])  # observation noise: the same draws for every method
    observed: list[Metrics] = []
    for _ in range(level):
        params = problem.sample(rng)
        observed.append(complete(client, problem, client.attach_trial(params), params, args.sem, noise))
    running: list[tuple[int, dict[str, Any]]] = []
    for _ in range(args.pending):
        params = problem.sample(rng)
        running.append((client.attach_trial(params), params))
    rows = []
    for rep in range(args.reps):
        if rep > 0:
            for index, params in running[: args.q]:
                observed.append(complete(client, problem, index, params, args.sem, noise))
            running = running[args.q :]
        hv_before = problem.hypervolume(observed)
        with timed() as t:
            proposals = client.get_next_trials(max_trials=args.q)
        new = [problem.evaluate(p) for p in proposals.values()]
        running.extend(proposals.items())
        node = client._generation_strategy.current_node_name
        rows.append(
            {
                "method": method,
                "level": level,
                "rep": rep,
                "completed": len(observed),
                "pending": len(running) - len(proposals),
                "q": args.q,
                "returned": len(proposals),
                "node": node,
                "wall_s": t["wall"],
                "cpu_s": t["cpu"],
                "hv_before": hv_before,
                "hv_after": problem.hypervolume(observed + new),
                "sem": args.sem,
                "load_1min": machine_info()["load_1min"],
            }
        )
        print(
            f"  {method:10s} level {level:4d} rep {rep}: {t['wall']:7.2f} s wall, {t['cpu']:7.2f} s cpu, "
            f"{len(proposals)} trials ({node})",
            flush=True,
        )
        if t["wall"] > args.cap:
            break
    return rows


def summarize(
    rows: list[dict[str, Any]], levels: list[int], methods: list[str], cap: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for level in levels:
        entry: dict[str, Any] = {}
        for m in methods:
            rs = [r for r in rows if r["method"] == m and r["level"] == level]
            if not rs:
                entry[m] = None
                continue
            entry[m] = {
                "first_wall_s": rs[0]["wall_s"],
                "median_wall_s": statistics.median(r["wall_s"] for r in rs),
                "median_cpu_s": statistics.median(r["cpu_s"] for r in rs),
                "batches": len(rs),
                "returned": [r["returned"] for r in rs],
                "median_hv_gain": statistics.median(r["hv_after"] - r["hv_before"] for r in rs),
                "over_cap": any(r["wall_s"] > cap for r in rs),
            }
        a, b = entry.get("ax_default"), entry.get("boengine")
        entry["ratio_wall"] = a["median_wall_s"] / b["median_wall_s"] if a and b else None
        entry["ratio_cpu"] = a["median_cpu_s"] / b["median_cpu_s"] if a and b else None
        out[str(level)] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="levels 12,24,48 and 2 reps")
    parser.add_argument("--levels", default="12,24,48,100,200,300")
    parser.add_argument("--methods", default="boengine,ax_default")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--q", type=int, default=4)
    parser.add_argument("--pending", type=int, default=4, help="running trials when a batch is asked")
    parser.add_argument(
        "--cap", type=float, default=150.0, help="stop Ax default above this many s per batch"
    )
    parser.add_argument(
        "--spec", nargs="*", default=[], help="OptimizerSpec overrides for boengine, key=value"
    )
    parser.add_argument(
        "--sem",
        type=float,
        default=0.0,
        help="objectives reported with SEMs of this share of their scale (0: noiseless)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sobol-trials", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS / "bo_overhead"))
    args = parser.parse_args()
    if args.quick:
        args.levels, args.reps = "12,24,48", 2
    quiet()
    kernel = prebuild_kernels()
    levels = [int(v) for v in args.levels.split(",")]
    methods = args.methods.split(",")
    problem = mixed_hpo()
    machine = machine_info()
    print(f"machine: {machine}\nkernel: {kernel}", flush=True)
    rows: list[dict[str, Any]] = []
    capped: set[str] = set()
    for level in levels:
        for method in methods:
            if method in capped:
                continue
            level_rows = measure_level(problem, method, level, args)
            rows.extend(level_rows)
            if any(r["wall_s"] > args.cap for r in level_rows):
                capped.add(method)
                print(f"  {method}: a batch exceeded {args.cap:g} s at level {level}; higher levels skipped")
    csv_file = ResultsFile(RESULTS / f"{args.out.rsplit('/', 1)[-1]}.csv", COLUMNS)
    if csv_file.path.exists():
        csv_file.path.unlink()
    csv_file.append(rows)
    summary = summarize(rows, levels, methods, args.cap)
    payload = {
        "command": "python " + " ".join(sys.argv),
        "args": vars(args),
        "machine": machine,
        "kernel_build_dir": kernel.build_dir,
        "capped_methods": sorted(capped),
        "levels": summary,
    }
    (RESULTS / f"{args.out.rsplit('/', 1)[-1]}.json").write_text(json.dumps(payload, indent=2))
    header = [
        "completed",
        *(f"{m} wall s" for m in methods),
        *(f"{m} cpu s" for m in methods),
        "ratio wall",
        "ratio cpu",
        *(f"{m} first batch s" for m in methods),
    ]
    body = []
    for level in levels:
        e = summary[str(level)]
        body.append(
            [
                level,
                *(f"{e[m]['median_wall_s']:.2f}" if e[m] else "-" for m in methods),
                *(f"{e[m]['median_cpu_s']:.2f}" if e[m] else "-" for m in methods),
                f"{e['ratio_wall']:.1f}x" if e["ratio_wall"] else "-",
                f"{e['ratio_cpu']:.1f}x" if e["ratio_cpu"] else "-",
                *(f"{e[m]['first_wall_s']:.2f}" if e[m] else "-" for m in methods),
            ]
        )
    print(table(body, header))


if __name__ == "__main__":
    main()
