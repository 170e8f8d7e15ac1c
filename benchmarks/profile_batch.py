"""Where one late batch's proposal time goes, for boengine's strategy or Ax's default.

Attaches ``--level`` synthetic completed trials of the ``mixed_hpo`` problem
(and 4 running ones), asks one warm-up batch, completes it, then profiles
``client.get_next_trials(max_trials=4)`` with cProfile and splits the time
into the stages of a batch (cumulative CPU time of the stage's entry point;
the top-level stages do not overlap):

    python benchmarks/profile_batch.py --method ax_default --level 48
    python benchmarks/profile_batch.py --method boengine --level 100
    python benchmarks/profile_batch.py --method boengine --level 100 --sem 0.05   # objectives with SEMs

``--sem`` reports objectives with standard errors as ``bo_overhead.py --sem`` does.

Writes ``benchmarks/results/profile_<method>_<level>.prof`` (open with
``python -m pstats`` or snakeviz) and prints the table.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
from bo_overhead import complete  # sibling module
from common import (  # sibling module; run as `python benchmarks/profile_batch.py`
    RESULTS,
    machine_info,
    make_client,
    mixed_hpo,
    parse_spec,
    quiet,
    table,
    timed,
)

from engine.optimizer import prebuild_kernels

# stage -> (file suffix, function name) of its entry point
STAGES = {
    "GP fit": ("ax/adapter/base.py", "_fit_if_implemented"),
    "acquisition set-up (total)": ("botorch_modular/acquisition.py", "_instantiate_acquisition"),
    "  of which box decompositions": ("botorch/utils/multi_objective/hypervolume.py", "_set_cell_bounds"),
    "  of which box decompositions (boengine)": ("engine/optimizer/acquisition.py", "_set_cell_bounds"),
    "  of which baseline pruning": (
        "botorch/acquisition/multi_objective/utils.py",
        "prune_inferior_points_multi_objective",
    ),
    "acquisition optimisation (total)": ("botorch_modular/generator.py", "gen"),
    "  of which starting points": ("botorch/optim/initializers.py", "gen_batch_initial_conditions"),
    "  of which mixed-integer optimizer": (
        "botorch/optim/optimize_mixed.py",
        "optimize_acqf_mixed_alternating",
    ),
    "  of which scipy SLSQP / L-BFGS-B": ("botorch/generation/gen.py", "gen_candidates_scipy"),
    "  of which batched SLSQP (boengine)": ("engine/optimizer/slsqp.py", "gen_candidates_batched_slsqp"),
    "get_next_trials": ("ax/api/client.py", "get_next_trials"),
}


def stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    out = dict.fromkeys(STAGES, 0.0)
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for stage, (suffix, function) in STAGES.items():
            if name == function and filename.endswith(suffix):
                out[stage] += cumulative
    # the optimisation total includes the set-up; report them apart
    out["acquisition optimisation (total)"] -= out["acquisition set-up (total)"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", default="boengine", choices=["boengine", "ax_default"])
    parser.add_argument("--level", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sem", type=float, default=0.0, help="as bo_overhead.py --sem (0: noiseless)")
    parser.add_argument(
        "--spec", nargs="*", default=[], help="OptimizerSpec overrides for boengine, key=value"
    )
    args = parser.parse_args()
    quiet()
    prebuild_kernels()
    problem = mixed_hpo()
    spec = parse_spec(args.spec) if args.method == "boengine" else None
    client = make_client(problem, args.method, seed=args.seed, sobol_trials=8, spec=spec)
    rng = np.random.default_rng(args.seed)
    noise = np.random.default_rng([args.seed, 1])
    for _ in range(args.level):
        params = problem.sample(rng)
        complete(client, problem, client.attach_trial(params), params, args.sem, noise)
    running = [(client.attach_trial(p), p) for p in (problem.sample(rng) for _ in range(4))]
    # Warm-up batch (with warm_start_gp it also pays for the anchor fits).
    running.extend(client.get_next_trials(max_trials=4).items())
    for index, params in running[:4]:
        complete(client, problem, index, params, args.sem, noise)
    profiler = cProfile.Profile(time.process_time)  # CPU seconds: robust on a busy machine
    with timed() as t:
        profiler.enable()
        client.get_next_trials(max_trials=4)
        profiler.disable()
    sem = [f"sem{args.sem:g}"] if args.sem > 0 else []
    label = "_".join([args.method, str(args.level), *sem, *args.spec]).replace("=", "")
    path = RESULTS / f"profile_{label}.prof"
    RESULTS.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path))
    seconds = stage_seconds(pstats.Stats(str(path)))
    total = seconds["get_next_trials"]
    rows = [[stage, f"{s:.2f}", f"{100 * s / total:.0f} %"] for stage, s in seconds.items() if s > 0]
    rows.insert(
        -1,
        [
            "other (Ax transforms, data, de-duplication)",
            f"{total - sum(v for k, v in seconds.items() if not k.startswith(' ') and k != 'get_next_trials'):.2f}",
            "",
        ],
    )
    print(f"{args.method}, {args.level + 4} completed trials, 4 running; machine {machine_info()}")
    print(f"batch: {t['wall']:.2f} s wall, {t['cpu']:.2f} s cpu (under cProfile)\n")
    print(table(rows, ["stage", "CPU s", "share"]))


if __name__ == "__main__":
    main()
