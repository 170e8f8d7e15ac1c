"""Wall time of the commands people type most: ``boengine --help`` and ``boengine status``.

Each command runs as a fresh subprocess (``python -m engine.interfaces.cli ...``, what
the ``boengine`` script runs), ``--runs`` times, the commands interleaved
round by round so that a change in the machine's load hits all of them;
the figure is the median. ``python -c pass`` in the same rounds is the
interpreter's own start, so each figure is also a ratio to it. ``status``
reads a finished two-trial synthetic study made first in a temporary
directory (or ``--study DIR``). ``validate`` of the synthetic and of the
smoke spec, and ``python -c "import torch"``, are shown for reference.
Run from the repository root:

    python benchmarks/cli_latency.py [--runs 5] [--study DIR]

Targets on an idle 2-core machine: ``--help`` <= 1 s, ``status`` <= 3 s.
Writes ``benchmarks/results/cli_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"--help": 1.0, "status": 3.0}
SYNTHETIC = {
    "name": "latency",
    "strategy": "synthetic:dtlz2",
    "objectives": {
        "return_pct": {"goal": "max", "threshold": -1.1},
        "sharpe": {"goal": "max", "threshold": -1.1},
        "max_drawdown_pct": {"goal": "min", "threshold": 1.1},
    },
    "budget": {"trials": 2, "sobol_trials": 2, "max_epochs": 3, "trial_timeout_s": 60},
    "early_stopping": {"enabled": False},
    "executor": {"workers": 1},
    "seed": 3,
}


def make_study(directory: Path) -> Path:
    from engine.spec import parse_spec
    from engine.study.run import run_study

    run_study(parse_spec(SYNTHETIC), directory)
    return directory


def commands(study: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "engine.interfaces.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "--help": [*cli, "--help"],
        "status": [*cli, "status", str(study)],
        "validate synthetic.json": [*cli, "validate", str(ROOT / "experiments" / "synthetic.json")],
        "validate smoke.json": [*cli, "validate", str(ROOT / "experiments" / "smoke.json")],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=300)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-1000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--study", type=Path, default=None, help="a finished study [default: made here]")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli_latency.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = args.study or make_study(Path(tmp) / "latency")
        todo = commands(study)
        load_before = os.getloadavg()
        times: dict[str, list[float]] = {name: [] for name in todo}
        for _ in range(args.runs):
            for name, command in todo.items():
                times[name].append(timed(command))
        load_after = os.getloadavg()
    base = statistics.median(times["python -c pass"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(
            {
                "command": name,
                "median_s": round(median, 3),
                "min_s": round(min(values), 3),
                "max_s": round(max(values), 3),
                "ratio_to_python": round(median / base, 1),
                "target_s": TARGETS.get(name),
                "runs": values,
            }
        )
    result = {
        "runs": args.runs,
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; {args.runs} runs each")
    print("| command | median s | min–max s | x python -c pass | target |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        target = r["target_s"]
        verdict = (
            "" if target is None else f"<= {target:g} s: {'met' if r['median_s'] <= target else 'missed'}"
        )
        print(
            f"| `{r['command']}` | {r['median_s']:.2f} | {r['min_s']:.2f}–{r['max_s']:.2f} | "
            f"{r['ratio_to_python']:.1f} | {verdict} |"
        )


if __name__ == "__main__":
    main()
