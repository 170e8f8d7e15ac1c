"""Where a real study's wall time goes: optimizer, training, backtest, idle workers.

Runs a spec end to end through the CLI (default ``experiments/moe.json``) in
a fresh study directory, then splits the run's wall time:

- optimizer: seconds spent in proposal batches (``batches.jsonl``), during
  which the driver proposes while the workers keep training;
- training / backtest: the workers' own seconds per trial (``result.json``);
  ``train_s`` covers completed and early-stopped trials (studies made before
  stopped trials recorded their training time have it for completed ones
  only), ``stopped_s`` is the total of the stopped ones;
- worker utilisation: busy worker-seconds / (wall seconds x workers);
- finish: held-out test evaluation of the Pareto set and the exports.

    python benchmarks/study_throughput.py [--spec experiments/moe.json] [--analyze studies/moe]

Targets (issue: performance): optimizer < 10% of the wall time and workers
busy > 90% of it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.analysis.results import StudyResults  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def analyze(directory: Path, cli_wall: float | None = None) -> dict[str, Any]:
    """Split one study's wall time (all its runs together)."""
    res = StudyResults.load(directory)
    runs = res.store.read_runs()
    wall = sum(r["end"] - r["start"] for r in runs)
    workers = max(r["workers"] for r in runs)
    busy = sum(r.seconds.get("total", 0.0) for r in res.records)
    train = sum(r.seconds.get("train", 0.0) for r in res.records)
    stopped = sum(r.seconds.get("total", 0.0) for r in res.records if r.status == "early_stopped")
    backtest = sum(r.seconds.get("backtest", 0.0) for r in res.records)
    optimizer = sum(b["seconds"] for b in res.batches)
    out = {
        "study": res.spec.name,
        "trials": len(res.records),
        "counts": res.counts(),
        "workers": workers,
        "wall_s": wall,
        "optimizer_s": optimizer,
        "optimizer_share": optimizer / wall if wall else float("nan"),
        "median_batch_s": sorted(b["seconds"] for b in res.batches)[len(res.batches) // 2]
        if res.batches
        else None,
        "worker_busy_s": busy,
        "train_s": train,
        "stopped_s": stopped,
        "backtest_s": backtest,
        "utilisation": busy / (wall * workers) if wall else float("nan"),
        "idle_worker_s": wall * workers - busy,
        "front": len(res.front),
        "hypervolume": res.hypervolume,
    }
    if cli_wall is not None:
        out["cli_wall_s"] = cli_wall
        out["finish_and_startup_s"] = cli_wall - wall
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="experiments/moe.json")
    parser.add_argument("--study-dir", default=str(RESULTS / "throughput-study"))
    parser.add_argument("--analyze", help="only analyse an existing study directory")
    args = parser.parse_args()
    cli_wall = None
    directory = Path(args.analyze or args.study_dir)
    if not args.analyze:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "engine.interfaces.cli",
                "run",
                args.spec,
                "--study-dir",
                str(directory),
                "--fresh",
                "--progress",
                "plain",
            ],
            cwd=ROOT,
            check=True,
        )
        cli_wall = time.perf_counter() - start
    out = analyze(directory, cli_wall)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "study_throughput.json").write_text(json.dumps(out, indent=2) + "\n")
    for key, value in out.items():
        print(f"{key:>22}: {value:.3f}" if isinstance(value, float) else f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
