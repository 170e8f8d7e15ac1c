"""What Pareto-aware fold stopping saves on the moe job, with the search's picks held fixed.

A moe study's wall time is set mostly by the configurations its search
happens to pick (a trial takes 5-50 s on 2 cores, by its size), so two
whole studies, one with fold stopping and one without, differ by more than
the stopping does (``study_throughput.py``). This replays the trials of one
finished study, in their order, through new studies of the same spec: each
arm queues the same configurations (the reference's baseline first, as
baseline), so no proposal is made and what differs between the arms is the
stopping alone. Arms:

- ``default``: the spec as given (fold stopping ``auto``: on for walk-forward);
- ``no_pareto_folds``: the same with ``early_stopping.pareto_folds.enabled`` false;
- ``z<value>`` (e.g. ``z1.0``): fold stopping on with that ``z`` (the default 1.645).

Per-epoch early stopping is as the spec says in both. With two or more
workers the trials finish in an order that depends on timing, so a fold
decision can differ from run to run; the configurations cannot.

    python benchmarks/stopping_replay.py --configs-from studies/moe --study-dir /tmp/replay
    python benchmarks/stopping_replay.py --configs-from studies/moe --study-dir /tmp/replay --arms default,no_pareto_folds,default

Writes one JSON line per arm to ``benchmarks/results/stopping_replay.jsonl``
(``study_throughput.analyze``'s figures, the verdict, the knee's test
Sharpe) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from study_throughput import analyze  # noqa: E402  # sibling module

from engine.analysis.results import StudyResults  # noqa: E402
from engine.spec import parse_spec  # noqa: E402
from engine.study.run import run_study  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = ("default", "no_pareto_folds")


class Replay:
    """A ``StudyStart`` that queues given configurations and attaches nothing."""

    def __init__(self, groups: list[tuple[str, list[dict[str, Any]]]]) -> None:
        self.groups = groups

    def plan(self, spec: Any) -> list[str]:
        return []

    def before_create(self, store: Any) -> None:
        return None

    def first(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return self.groups

    def created(self, store: Any, objective: Any) -> None:
        return None

    def resumed(self) -> None:
        return None


def reference_configurations(directory: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """The reference study's trials in index order: its baselines, then the rest as 'replay'."""
    res = StudyResults.load(directory)
    records = sorted((r for r in res.records if not r.attached), key=lambda r: r.index)
    baseline = [dict(r.params) for r in records if r.source == "baseline"]
    rest = [dict(r.params) for r in records if r.source != "baseline"]
    return [("baseline", baseline), ("replay", rest)]


def arm_spec(raw: dict[str, Any], arm: str, trials: int) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    budget = raw.setdefault("budget", {})
    budget["trials"] = trials
    budget["sobol_trials"] = min(int(budget.get("sobol_trials", 8)), trials)  # no proposal is made
    if arm == "no_pareto_folds":
        stopping = raw.setdefault("early_stopping", {})
        stopping["pareto_folds"] = {**stopping.get("pareto_folds", {}), "enabled": False}
    elif arm.startswith("z") and _is_number(arm[1:]):
        stopping = raw.setdefault("early_stopping", {})
        stopping["pareto_folds"] = {**stopping.get("pareto_folds", {}), "enabled": True, "z": float(arm[1:])}
    elif arm != "default":
        raise SystemExit(f"--arms: unknown arm {arm!r}; use {', '.join(ARMS)} or z<value>")
    return raw


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def knee_test_sharpe(directory: Path, pick: int | None) -> float | None:
    path = directory / "test.json"
    row = json.loads(path.read_text()).get(str(pick)) if pick is not None and path.is_file() else None
    return float(row["sharpe"]) if row else None


def run_arm(
    raw: dict[str, Any], arm: str, groups: list[tuple[str, list[dict[str, Any]]]], directory: Path
) -> dict[str, Any]:
    trials = sum(len(c) for _, c in groups)
    spec = parse_spec(arm_spec(raw, arm, trials))
    started = time.perf_counter()
    run_study(spec, directory, fresh=True, start=Replay(groups))  # an earlier arm's study is moved aside
    out = analyze(directory, time.perf_counter() - started)
    verdict = json.loads((directory / "verdict.json").read_text())
    records = StudyResults.load(directory).records
    stopped = [r for r in records if r.status == "early_stopped"]
    out.update(
        arm=arm,
        by_fold_stopping=sum(1 for r in stopped if "pareto_stop" in (r.info or {})),
        folds_trained=sum(len((r.info or {}).get("folds", [])) for r in records),
        verdict="evidence" if verdict.get("edge") else "no evidence",
        knee=verdict.get("pick"),
        knee_test_sharpe=knee_test_sharpe(directory, verdict.get("pick")),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs-from", required=True, help="a finished study whose trials are replayed")
    parser.add_argument("--spec", default="experiments/moe.json")
    parser.add_argument("--study-dir", required=True, help="parent folder of the arms' studies")
    parser.add_argument(
        "--arms", default="no_pareto_folds,default", help=f"comma-separated, of {', '.join(ARMS)}, z<value>"
    )
    parser.add_argument("--limit", type=int, help="replay only the first N trials (a quick check)")
    parser.add_argument("--out", default=str(RESULTS / "stopping_replay.jsonl"))
    args = parser.parse_args()
    logging.getLogger("ax").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")  # Ax's storage warnings on every trial
    raw = json.loads(
        (ROOT / args.spec).read_text() if not Path(args.spec).is_absolute() else Path(args.spec).read_text()
    )
    groups = reference_configurations(Path(args.configs_from))
    if args.limit is not None:
        baseline, rest = groups[0][1][: args.limit], groups[1][1]
        groups = [("baseline", baseline), ("replay", rest[: max(0, args.limit - len(baseline))])]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    rows = []
    for i, arm in enumerate(args.arms.split(",")):
        row = run_arm(raw, arm, groups, Path(args.study_dir) / f"{i}_{arm}")
        row.update(
            commit=commit,
            configs_from=str(args.configs_from),
            date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        )
        rows.append(row)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{arm:16s} wall {row['wall_s']:.0f} s, worker-s {row['worker_busy_s']:.0f}, "
            f"{row['counts']}, {row['by_fold_stopping']} by fold stopping, folds {row['folds_trained']}, "
            f"{row['verdict']}, knee {row['knee']} test Sharpe {row['knee_test_sharpe']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
