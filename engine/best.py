"""``boengine best``: choose one configuration from the front and write it back.

The chosen trial goes into a JSON strategy config (the trading system's
``config/strategy_config.json`` schema: one entry per strategy with
``model_path`` and ``seq_length``), extended with the model family, its
hyperparameters, the feature set and the figures it was chosen on. An
existing file is merged: other strategies and other keys of the entry stay.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from engine.records import TrialRecord
from engine.results import StudyResults
from engine.store import write_bytes
from strategies.exceptions import InputError

__all__ = ["PICKS", "pick_trial", "strategy_entry", "write_config"]

logger = logging.getLogger(__name__)

PICKS = ("knee", "return_pct", "sharpe", "max_drawdown_pct")


def pick_trial(res: StudyResults, pick: str) -> TrialRecord:
    """The front member chosen by ``pick`` (the knee, or the best on one objective)."""
    front = res.front
    if not front:
        raise InputError(
            f"{res.store.dir}: the Pareto front is empty (no completed trial meets the constraints); "
            "run more trials or relax the constraints"
        )
    if pick == "knee":
        chosen = res.objectives.knee(front)
    elif pick in res.objectives.names:
        chosen = res.objectives.best(front, pick)
    else:
        raise InputError(f"--pick {pick}: choose one of knee, {', '.join(res.objectives.names)}")
    assert chosen is not None
    return chosen


def strategy_entry(res: StudyResults, rec: TrialRecord, pick: str) -> dict[str, Any]:
    """The config entry for one trial."""
    entry: dict[str, Any] = {
        "name": res.spec.strategy,
        "model_family": res.spec.strategy,
        "hyperparameters": rec.params,
        "seq_length": rec.params.get("seq_len"),
        "feature_set": res.meta.get("feature_set"),
        "data_source": res.spec.data.source,
    }
    ckpt = res.store.checkpoint_path(rec.index)
    if ckpt.is_file():
        entry["model_path"] = str(ckpt.resolve())
    if not res.spec.is_synthetic and "input_size" in res.meta:
        from strategies import model_config

        cfg = model_config(res.spec.strategy, rec.params, int(res.meta["input_size"]))
        entry["model_config"] = asdict(cfg) if is_dataclass(cfg) else dict(vars(cfg))  # type: ignore[arg-type]
        entry["backtest"] = _backtest_entry(res, rec)
    entry["boengine"] = {
        "study": str(res.store.dir),
        "trial": rec.index,
        "pick": pick,
        "validation": {k: rec.metrics[k] for k in (*res.objectives.names, "num_trades") if k in rec.metrics},
        "test": res.test.get(rec.index),
    }
    return entry


def _backtest_entry(res: StudyResults, rec: TrialRecord) -> dict[str, Any]:
    """How the chosen model's figures were obtained, with the probability gate it trades with."""
    spec = res.spec
    out: dict[str, Any] = spec.backtest.model_dump()
    out["confidence_gate"] = rec.params.get("confidence_gate", spec.backtest.confidence_gate)
    ckpt = res.store.checkpoint_path(rec.index)
    if ckpt.is_file() and (res.store.data_dir / "meta.json").is_file():
        from objectives import EvalSettings, PreparedData
        from objectives.evaluate import gate_probability

        settings = EvalSettings(backtest=spec.backtest, seed=spec.seed, device="cpu")
        data = PreparedData.load(res.store.data_dir, mmap=True)
        out["min_confidence"] = gate_probability(spec.strategy, rec.params, data, settings, ckpt)
    return out


def write_config(path: str | Path, key: str, entry: dict[str, Any]) -> None:
    """Merge ``entry`` under ``key`` into the JSON file at ``path`` (created if missing)."""
    p = Path(path)
    config: dict[str, Any] = {}
    if p.exists():
        try:
            config = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{p}: not valid JSON (line {exc.lineno}: {exc.msg}); fix or move it first"
            ) from None
        if not isinstance(config, dict):
            raise InputError(f"{p}: expected a JSON object at the top level")
    old = config.get(key)
    merged = {**old, **entry} if isinstance(old, dict) else entry
    config[key] = merged
    config.setdefault("default_strategy", key)
    write_bytes(p, (json.dumps(config, indent=2, default=str) + "\n").encode())
    logger.info("wrote %s[%s]", p, key)
