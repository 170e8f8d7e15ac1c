"""GPU readiness: does boengine's CUDA path work on this machine, and how fast is it?

Runs, in this order, each step timed and its figures written at once to
``OUT/gpu_check.json`` (a step that fails is recorded and the next one runs):

1. ``environment``: torch, CUDA, cuDNN, the GPU's name and memory, library versions.
2. ``families``: every model family at its ``gpu`` preset, one forward and
   backward pass on the GPU (finite outputs and gradients), and the largest
   difference between its logits on the GPU and on the CPU (same weights).
3. ``moe_study``: a study of 3 ``moe_transformer`` trials with ``"device": "cuda"``
   (the shipped ``experiments/moe.json``, walk-forward, 3 epochs, 1 worker),
   through the held-out test, the verdict and the report: trial seconds and the finish.
4. ``ray_trial``: one trial as a Ray task with ``"gpus_per_trial": 1``
   (a local Ray; ``validate``'s GPU check passes first).
5. ``moe_epoch``: the family's default configuration at the ``gpu`` preset
   (the original sizes) trained in this process: seconds per epoch and peak GPU memory.
6. ``repeatable``: one small configuration trained twice with one seed on the
   GPU: identical metrics or not (cuDNN and atomics may differ run to run).
7. ``tests``: the device tests (family contract, training, walk-forward) with CUDA visible.

    python benchmarks/gpu_check.py OUT_DIR          # or: OUT=/some/dir python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py OUT_DIR --cpu    # the same steps on the CPU: checks this script only

Meant to take under 5 minutes on one GPU (not measured yet): ``--budget-s``
(default 280) skips the steps left once it is spent. Without CUDA it stops at once (exit 2) and
writes nothing. Exit 0: every step ran ("ok" or "warn"); 1: a step failed.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

DEVICE_TESTS = (
    "tests/strategies/test_family_contract.py",
    "tests/objectives/test_training.py",
    "tests/objectives/test_walk_forward.py",
)
#: Largest |logits(GPU) - logits(CPU)| that counts as agreement (float32, TF32 off).
AGREEMENT = 1e-3

Figures = dict[str, Any]


class Check:
    """What the steps share: the device, where studies go, the output folder."""

    def __init__(self, out: Path, device: str, work: Path) -> None:
        self.out = out
        self.device = device
        self.work = work
        self.results: dict[str, Any] = {"device": device, "started": time.time(), "steps": {}}

    def save(self) -> None:
        path = self.out / "gpu_check.json"
        path.write_text(json.dumps(self.results, indent=2, default=str) + "\n", encoding="utf-8")

    def moe_spec(self, name: str, **changes: Any) -> Any:
        """experiments/moe.json, small: 3 trials of 3 epochs, no priors, no early stopping."""
        from engine.spec import parse_spec

        raw = json.loads((ROOT / "experiments" / "moe.json").read_text(encoding="utf-8"))
        raw.update(name=name, warm_start={}, early_stopping={"enabled": False})
        raw["budget"] = {"trials": 3, "sobol_trials": 3, "max_epochs": 3, "trial_timeout_s": 600}
        raw["executor"] = {"kind": "local", "workers": 1, "device": self.device}
        for key, value in changes.items():
            raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
        return parse_spec(raw, source=f"gpu_check:{name}")

    def keep_log(self, study: Path, name: str) -> None:
        log = study / "study.log"
        if log.is_file():
            (self.out / "logs").mkdir(exist_ok=True)
            shutil.copyfile(log, self.out / "logs" / f"{name}.log")


# --- the steps -----------------------------------------------------------------------------------


def environment(check: Check) -> Figures:
    from engine.meta import library_versions

    out: Figures = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "libraries": library_versions(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }
    if check.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        out.update(
            gpu=props.name,
            gpus=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 1024**3, 1),
            capability=f"{props.major}.{props.minor}",
        )
    return out


def families(check: Check) -> Figures:
    import numpy as np

    from strategies import FAMILIES, build_model, get_family
    from strategies.base import ModelOutput

    out: Figures = {}
    worst = 0.0
    for family in FAMILIES:
        point = get_family(family).gpu_space().sample(np.random.default_rng(0)) | {"predict_profit": True}
        model = build_model(family, point, 7, seed=0).eval()
        x = torch.randn(4, 32, 7, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            on_cpu = model(x).logits
        gpu_model = copy.deepcopy(model).to(check.device).train()
        start = time.perf_counter()
        res: ModelOutput = gpu_model(x.to(check.device))
        loss = res.logits.logsumexp(-1).mean() + (res.aux_loss if res.aux_loss is not None else 0.0)
        loss.backward()
        if check.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        grads = [p.grad for p in gpu_model.parameters() if p.grad is not None]
        finite = bool(torch.isfinite(res.logits).all()) and all(bool(torch.isfinite(g).all()) for g in grads)
        with torch.no_grad():
            diff = float((gpu_model.eval()(x.to(check.device)).logits.cpu() - on_cpu).abs().max())
        worst = max(worst, diff)
        out[family] = {"finite": finite, "grads": len(grads), "max_abs_diff_vs_cpu": diff, "step_s": seconds}
        if not finite or not grads:
            raise RuntimeError(f"{family}: non-finite outputs or gradients on {check.device}")
    out["status"] = "ok" if worst <= AGREEMENT else "warn"
    out["note"] = f"largest GPU/CPU logit difference {worst:.2e} (agreement: <= {AGREEMENT:g})"
    return out


def _run_study(check: Check, spec: Any, name: str) -> Figures:
    from engine.study.run import run_study

    directory = check.work / name
    start = time.perf_counter()
    outcome = run_study(spec, directory)
    wall = time.perf_counter() - start
    check.keep_log(directory, name)
    runs = json.loads((directory / "runs.jsonl").read_text().splitlines()[-1])
    statuses = [r.status for r in outcome.records]
    loop = float(runs["end"] - runs["start"])
    out: Figures = {
        "statuses": statuses,
        "trial_seconds": [round(r.seconds.get("total", float("nan")), 2) for r in outcome.records],
        "train_seconds": [round(r.seconds.get("train", float("nan")), 2) for r in outcome.records],
        "loop_s": round(loop, 2),
        "finish_s": round(outcome.seconds - loop, 2),
        "wall_s": round(wall, 2),
        "front": len(outcome.front),
        "reasons": [r.reason for r in outcome.records if r.reason],
    }
    if statuses.count("completed") != len(statuses):
        raise RuntimeError(f"{name}: trials {statuses}; reasons: {out['reasons']}")
    return out


def moe_study(check: Check) -> Figures:
    return _run_study(check, check.moe_spec("gpu_moe"), "moe_study")


def ray_trial(check: Check) -> Figures:
    gpus = 1 if check.device == "cuda" else 0
    executor = {"kind": "ray", "workers": 1, "gpus_per_trial": gpus, "device": check.device}
    spec = check.moe_spec("gpu_ray", budget={"trials": 1, "sobol_trials": 1}, executor=executor)
    return {"gpus_per_trial": gpus, **_run_study(check, spec, "ray_trial")}


def _one_trial(check: Check, spec: Any, seed: int = 0) -> tuple[Any, list[float], dict[str, Any]]:
    """The family's default configuration of ``spec`` trained and scored in this process."""
    from engine.objective import make_objective
    from engine.study.experiment import full_parameters
    from engine.study.trial import TrialJob, execute

    objective = make_objective(spec)
    data = objective.prepare().payload
    params = full_parameters(spec.space, objective.baseline_configurations()[0])
    stamps: list[float] = []

    class Clock:
        def report(self, trial_index: int, report: Any) -> None:
            stamps.append(time.perf_counter())

        def should_stop(self, trial_index: int) -> bool:
            return False

    job = TrialJob(trial_index=0, params=params, seed=seed, objective=objective, threads=4)
    stamps.append(time.perf_counter())
    return execute(job, Clock(), data), stamps, params


def moe_epoch(check: Check) -> Figures:
    preset = "gpu" if check.device == "cuda" else "cpu"  # the original sizes take hours an epoch on 2 cores
    spec = check.moe_spec(
        "gpu_epoch",
        search_space_preset=preset,
        budget={"max_epochs": 2},
        data={"validation": {"scheme": "walk_forward", "folds": 2}},
    )
    if check.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    outcome, stamps, params = _one_trial(check, spec)
    epochs = [b - a for a, b in itertools.pairwise(stamps)]
    out: Figures = {
        "preset": preset,
        "status_of_trial": outcome.status,
        "params": params,
        "epoch_seconds": [round(e, 2) for e in epochs],
        "trial_s": round(outcome.seconds.get("total", float("nan")), 2),
    }
    if check.device == "cuda":
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    if outcome.status != "completed":
        raise RuntimeError(f"the gpu-preset trial {outcome.status}: {outcome.reason}")
    return out


def repeatable(check: Check) -> Figures:
    spec = check.moe_spec("gpu_repeat", budget={"max_epochs": 2})
    first, _, _ = _one_trial(check, spec, seed=3)
    second, _, _ = _one_trial(check, spec, seed=3)
    diffs = {k: abs(first.metrics[k] - second.metrics.get(k, float("nan"))) for k in first.metrics}
    same = all(d == 0 for d in diffs.values())
    return {
        "status": "ok" if same else "warn",
        "identical": same,
        "largest_difference": max(diffs.values(), default=0.0),
        "metrics": first.metrics,
        "note": "the same seed gives the same metrics" if same else "GPU kernels are not deterministic here",
    }


def tests(check: Check) -> Figures:
    env = {**os.environ}
    if check.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DEVICE_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
    (check.out / "logs").mkdir(exist_ok=True)
    (check.out / "logs" / "tests.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        raise RuntimeError(f"pytest exit {proc.returncode}: {last}")
    return {"summary": last, "files": list(DEVICE_TESTS)}


STEPS: tuple[tuple[str, Callable[[Check], Figures]], ...] = (
    ("environment", environment),
    ("families", families),
    ("moe_study", moe_study),
    ("ray_trial", ray_trial),
    ("moe_epoch", moe_epoch),
    ("repeatable", repeatable),
    ("tests", tests),
)


# --- running -------------------------------------------------------------------------------------


def run(check: Check, budget_s: float, only: set[str] | None) -> bool:
    """Every step in turn, within ``budget_s``; True when none failed."""
    start = time.perf_counter()
    ok = True
    for name, step in STEPS:
        if only and name not in only:
            continue
        record: dict[str, Any]
        if time.perf_counter() - start > budget_s:
            record = {"status": "skipped", "reason": f"the {budget_s:g} s budget was spent"}
        else:
            began = time.perf_counter()
            try:
                figures = step(check)
                record = {"status": figures.pop("status", "ok"), **figures}
            except Exception as exc:  # a failed step is a result: record it, run the next
                record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                record["traceback"] = traceback.format_exc()
                ok = False
            record["seconds"] = round(time.perf_counter() - began, 2)
        check.results["steps"][name] = record
        check.results["seconds"] = round(time.perf_counter() - start, 2)
        check.save()
        print(f"{name:12s} {record['status']:8s} {record.get('seconds', 0):7.1f} s  {_gist(record)}")
    return ok


def _gist(record: dict[str, Any]) -> str:
    for key in ("error", "note", "reason", "summary"):
        if record.get(key):
            return str(record[key])[:120]
    if "trial_seconds" in record:
        return f"trials {record['trial_seconds']} s, finish {record['finish_s']} s"
    if "epoch_seconds" in record:
        return f"epochs {record['epoch_seconds']} s, peak {record.get('peak_gpu_memory_gib', '-')} GiB"
    return str(record.get("gpu", ""))


def _prebuild() -> None:
    from engine.optimizer import prebuild_kernels

    prebuild_kernels()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", nargs="?", default=os.environ.get("OUT"), help="output folder [default: $OUT]")
    parser.add_argument(
        "--cpu", action="store_true", help="run the steps on the CPU (checks the script only)"
    )
    parser.add_argument("--budget-s", type=float, default=280.0, help="skip the steps left after this")
    parser.add_argument("--only", nargs="*", choices=[name for name, _ in STEPS], help="run these steps only")
    args = parser.parse_args(argv)
    if not args.out:
        print("gpu_check: give an output folder (argument or $OUT)", file=sys.stderr)
        return 2
    if not args.cpu and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "run it on a machine with an NVIDIA GPU and a CUDA build of torch, or pass --cpu to check the script",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("ax", "engine.study.progress", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", module=r"(ax|botorch|gpytorch|linear_operator|pandas|torch)(\.|$)")
    # BoTorch's fused kernel builds once per environment (tens of seconds): meanwhile, not in a study
    kernel = threading.Thread(target=_prebuild, name="prebuild-kernels", daemon=True)
    kernel.start()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as work:
        check = Check(out, "cpu" if args.cpu else "cuda", Path(work))
        ok = run(check, args.budget_s, set(args.only) if args.only else None)
        kernel.join()
    print(f"figures: {out / 'gpu_check.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
