"""What walk-forward validation costs against holdout, and what each lever buys.

For a few configurations of a spec's family (default ``experiments/moe.json``:
the family's default configuration fitted into the space, then seeded
perturbations of it), in one process with one torch thread (a worker's
setting), interleaved configuration by configuration:

- ``holdout``: one fit on the training split, ``max_epochs`` epochs, validated
  every epoch (the previous objective);
- ``wf_fresh``: K folds, each trained afresh for ``max_epochs``;
- ``wf_warm``: K folds, each later fold from the previous fold's weights for
  ``fold_epochs`` epochs (default ``max_epochs // 2``, the shipped setting);
- ``wf_warm_quarter``: the same with ``max_epochs // 4``.

Reported per variant: the wall time of a trial and its ratio to the holdout
trial of the same configuration (median over configurations), the
out-of-sample Sharpe ratio (holdout: the validation split; walk-forward: the
stitched blocks) with its bootstrap standard error, and the held-out test
Sharpe of the model that would be scored there (holdout: the trial's weights;
walk-forward: the final fit on every bar before the test split).

    python benchmarks/walk_forward_cost.py [--spec experiments/moe.json] [--configs 3]
    python benchmarks/walk_forward_cost.py --data planted.csv --out results/walk_forward_cost_planted.csv

``--data`` swaps the spec's data source, e.g. for a series with a learnable
pattern (AR(1) returns, written by ``tests/engine/test_honest.py``'s
``write_series``), where the levers' effect on quality can show.

Writes ``benchmarks/results/walk_forward_cost.csv`` and prints a table.
Target (issue: honest selection): a K = 4 walk-forward trial <= 1.5x a
holdout trial with the same ``max_epochs``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.objective import make_objective  # noqa: E402
from engine.spec import load_spec, parse_spec  # noqa: E402
from objectives import EvalSettings, prepare_data  # noqa: E402
from objectives.evaluate import TrialModel, evaluate  # noqa: E402
from objectives.noise import bootstrap_standard_errors  # noqa: E402
from objectives.walk_forward import evaluate_walk_forward, fold_epochs, refit_and_score  # noqa: E402
from strategies.priors import perturb  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def configurations(spec: Any, n: int) -> list[dict[str, Any]]:
    """The family's default configuration, then seeded perturbations of it."""
    from engine.study.experiment import full_parameters

    base = make_objective(spec).baseline_configurations()[0]
    rng = np.random.default_rng(spec.seed)
    points = [base]
    while len(points) < n:
        points.append(perturb(spec.space, base, rng, avoid=points))
    return [full_parameters(spec.space, {p.name: c[p.name] for p in spec.space.tunable}) for c in points]


def holdout_trial(spec: Any, data: Any, params: dict[str, Any], settings: EvalSettings) -> dict[str, float]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        start = time.perf_counter()
        result = evaluate(spec.strategy, params, data, settings, checkpoint_path=path)
        seconds = time.perf_counter() - start
        model = TrialModel.load(spec.strategy, params, data, settings, path)
    test, _ = model.score("test")
    assert result.returns is not None
    se = bootstrap_standard_errors(result.returns, data.periods_per_year, seed=settings.seed)["sharpe"]
    return {
        "seconds": seconds,
        "sharpe": result.metrics["sharpe"],
        "sharpe_se": se,
        "test_sharpe": test["sharpe"],
    }


def walk_forward_trial(
    spec: Any, data: Any, params: dict[str, Any], settings: EvalSettings, *, warm: bool, later: int | None
) -> dict[str, float]:
    k = spec.data.validation.folds
    epochs = fold_epochs(settings.max_epochs, k, warm_start=warm, fold_epochs=later)
    start = time.perf_counter()
    r = evaluate_walk_forward(
        spec.strategy, params, data, settings, warm_start_folds=warm, epochs_per_fold=epochs
    )
    seconds = time.perf_counter() - start
    init = None
    if warm and r.state is not None:
        import tempfile

        tmp = Path(tempfile.mkdtemp()) / "last_fold.pt"
        torch.save(r.state, tmp)
        init = tmp
    test, _, _ = refit_and_score(
        spec.strategy, params, data, settings, epochs=r.folds[-1].best_epoch, init_state=init
    )
    return {
        "seconds": seconds,
        "sharpe": r.metrics["sharpe"],
        "sharpe_se": r.sems["sharpe"],
        "test_sharpe": test["sharpe"],
        "epochs": float(r.epochs_run),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="experiments/moe.json")
    ap.add_argument("--configs", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "walk_forward_cost.csv"))
    ap.add_argument(
        "--data", default=None, help="another data source for the spec (e.g. a series with a planted signal)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = load_spec(ROOT / args.spec)
    raw = spec.given()
    if args.data:  # re-parsed, so that the changed spec is checked as a whole
        raw = {**raw, "data": {**raw.get("data", {}), "source": args.data, "max_bars": None}}
        spec = parse_spec(raw, source="--data")
    holdout = parse_spec(
        {**raw, "data": {**raw.get("data", {}), "validation": {"scheme": "holdout"}}}, source="holdout"
    )
    seq = make_objective(spec).max_seq_len
    from engine.objective.model import feature_set_for

    fs = feature_set_for(spec)
    data_h = prepare_data(holdout.data, feature_set=fs, max_seq_len=seq)
    data_w = prepare_data(spec.data, feature_set=fs, max_seq_len=seq)
    settings = EvalSettings(
        max_epochs=spec.budget.max_epochs, backtest=spec.backtest, seed=spec.seed, device="cpu"
    )
    m = spec.budget.max_epochs
    variants = {
        "wf_fresh": {"warm": False, "later": None},
        "wf_warm": {"warm": True, "later": max(1, m // 2)},
        "wf_warm_quarter": {"warm": True, "later": max(1, m // 4)},
    }
    rows = []
    load = os.getloadavg()[0]
    for i, params in enumerate(configurations(spec, args.configs)):
        base = holdout_trial(spec, data_h, params, settings)
        rows.append({"config": i, "variant": "holdout", **base, "ratio": 1.0})
        print(f"config {i} holdout: {base}", flush=True)
        for name, kw in variants.items():
            out = walk_forward_trial(spec, data_w, params, settings, **kw)
            rows.append({"config": i, "variant": name, **out, "ratio": out["seconds"] / base["seconds"]})
            print(f"config {i} {name}: {out} ratio {out['seconds'] / base['seconds']:.2f}", flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["config", "variant", "seconds", "ratio", "sharpe", "sharpe_se", "test_sharpe", "epochs"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(
        f"\n{spec.name}: {args.configs} configurations, max_epochs {m}, folds {spec.data.validation.folds}, load {load:.2f}"
    )
    print("| variant | median s | median ratio to holdout | mean OOS Sharpe (SE) | mean test Sharpe |")
    print("|---|---|---|---|---|")
    for name in ["holdout", *variants]:
        sel = [r for r in rows if r["variant"] == name]
        print(
            f"| {name} | {statistics.median(r['seconds'] for r in sel):.1f} | "
            f"{statistics.median(r['ratio'] for r in sel):.2f} | "
            f"{statistics.mean(r['sharpe'] for r in sel):.2f} ({statistics.mean(r['sharpe_se'] for r in sel):.2f}) | "
            f"{statistics.mean(r['test_sharpe'] for r in sel):.2f} |"
        )


if __name__ == "__main__":
    main()
