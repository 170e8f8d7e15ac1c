"""What carrying the previous window over buys a new study window.

Two windows of one spec's data (default ``experiments/smoke.json`` on the
built-in EUR/USD hourly bars): the first cut at ``--first`` (a date), the
second at ``--second`` (default: the last bar). The first window runs
``--trials`` trials once per seed; the second runs the same budget three
ways, each in its own study line holding a copy of the first window:

- ``fresh``: ``"previous_window": "none"`` (baseline, Sobol, then qLogNEHVI);
- ``reevaluate``: the first window's Pareto set runs again first (the default);
- ``attach``: the first window's trials enter as measured there (stale values).

Reported per way and seed: the hypervolume of the second window's *own*
measured trials after n of them (attached trials are not measurements of
this window and do not count; with ``attach`` they still steer the GP), and
the best validation Sharpe ratio of those trials. Seeds change the spec's
root seed (trial seeds, Sobol points, the optimizer).

    python benchmarks/weekly_carry_over.py [--spec experiments/smoke.json] [--trials 10] [--seeds 3]
    python benchmarks/weekly_carry_over.py --data planted.csv --first 2022-03-27 --out results/weekly_carry_over_planted.csv

``--data`` swaps the spec's data source (and drops ``max_bars``), e.g. for a
series with a learnable pattern (AR(1) returns, written by
``tests/engine/test_honest.py``'s ``write_series``).

Writes ``benchmarks/results/weekly_carry_over.csv`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.analysis.results import StudyResults  # noqa: E402
from engine.spec import load_spec, parse_spec  # noqa: E402
from engine.study.run import run_study  # noqa: E402
from engine.weekly.carry_over import WindowStart  # noqa: E402
from engine.weekly.windows import open_window  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WAYS = ("fresh", "reevaluate", "attach")
MODES = {"fresh": "none", "reevaluate": "reevaluate", "attach": "attach"}


def _spec(base: dict[str, Any], seed: int, trials: int, mode: str) -> Any:
    raw = json.loads(json.dumps(base))
    raw["seed"] = seed
    raw["budget"] = {**raw.get("budget", {}), "trials": trials}
    raw.setdefault("warm_start", {})["previous_window"] = mode
    return parse_spec(raw, source="benchmark")


def _own(res: StudyResults) -> list[Any]:
    return [r for r in res.records if not r.source.startswith("warm_start")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="experiments/smoke.json")
    parser.add_argument("--first", default="2017-12-08", help="the first window's last day")
    parser.add_argument("--second", default="latest", help="the second window: 'latest' or a date")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", help="another data source for the spec (e.g. a planted series)")
    parser.add_argument("--out", default=str(RESULTS / "weekly_carry_over.csv"))
    args = parser.parse_args()
    base = load_spec(args.spec).given()
    if args.data:
        base["data"] = {**base.get("data", {}), "source": str(Path(args.data).resolve())}
        base["data"].pop("max_bars", None)
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="weekly_"))
    for seed in range(args.seeds):
        first_line = work / f"seed{seed}" / "first"
        spec = _spec(base, seed, args.trials, "none")
        w1 = open_window(spec, first_line, args.first)
        t = time.perf_counter()
        run_study(w1.spec, w1.directory, start=WindowStart(w1))
        print(f"seed {seed}: first window {w1.directory.name} in {time.perf_counter() - t:.0f} s", flush=True)
        for way in WAYS:
            line = work / f"seed{seed}" / way
            shutil.copytree(w1.directory, line / w1.directory.name)
            w2 = open_window(_spec(base, seed, args.trials, MODES[way]), line, args.second)
            t = time.perf_counter()
            run_study(w2.spec, w2.directory, start=WindowStart(w2))
            seconds = time.perf_counter() - t
            res = StudyResults.load(w2.directory)
            own = _own(res)
            trace = res.objectives.hypervolume_trace(own)
            sharpes = [r.metrics["sharpe"] for r in own if r.status == "completed" and "sharpe" in r.metrics]
            row = {
                "seed": seed,
                "way": way,
                "first_window": w1.directory.name,
                "second_window": w2.directory.name,
                "trials": len(own),
                "carried": sum(r.source in ("champion", "previous_front") for r in own),
                "attached": len(res.records) - len(own),
                **{f"hv@{n}": trace[n - 1] for n in (2, 4, 6, 8, 10) if n <= len(trace)},
                "best_sharpe": max(sharpes) if sharpes else float("nan"),
                "seconds": round(seconds, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nmedian over {args.seeds} seeds ({args.trials} trials a window; {out}):")
    cols = [c for c in fields if c.startswith("hv@")] + ["best_sharpe"]
    print("way".ljust(12) + "".join(c.rjust(12) for c in cols))
    for way in WAYS:
        mine = [r for r in rows if r["way"] == way]
        print(
            way.ljust(12) + "".join(f"{statistics.median(r[c] for r in mine if c in r):12.4g}" for c in cols)
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
