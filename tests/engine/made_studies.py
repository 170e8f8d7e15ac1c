"""Studies made for tests without running a search: a trading study whose trials trade random
positions on real prepared bars, written with the study store's own writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis.results import StudyResults

__all__ = ["bars", "trading_study"]


def bars(path: Path, n: int = 900, seed: int = 2) -> Path:
    """``n`` hourly OHLCV bars of a random walk, as a CSV file at ``path``."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2023-01-02", periods=n, freq="1h").strftime("%Y-%m-%d %H:%M:%S"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": rng.integers(100, 1000, n),
        }
    )
    frame.to_csv(path, index=False)
    return path


def trading_study(
    directory: Path, scratch: Path, n_trials: int = 6, validation: dict[str, object] | None = None
) -> None:
    """A walk-forward LSTM study whose trials trade random positions on the real validation and
    test bars (per-bar returns and metrics from the backtest), written with the store's writers;
    no verdict.json, no report: the dashboard computes the verdict itself."""
    from engine.meta import StudyMeta
    from engine.objective import make_objective
    from engine.spec import parse_spec
    from engine.store import StudyStore
    from objectives import PreparedData
    from objectives.backtest import net_returns, run_backtest

    raw = {
        "name": "trading",
        "strategy": "lstm",
        "data": {
            "source": str(bars(scratch / "bars.csv")),
            "feature_set": "ohlcv",
            "label": {"scheme": "A", "horizon": 3, "profit_threshold": 0.002, "min_diff": 0.001},
            "validation": validation or {"scheme": "walk_forward", "folds": 2},
        },
        "search_space": {
            "hidden_size": {"values": [8, 16]},
            "num_layers": 1,
            "seq_len": {"low": 4, "high": 8},
        },
        "objectives": {
            "return_pct": {"goal": "max", "threshold": -30.0},
            "sharpe": {"goal": "max", "threshold": -20.0},
            "max_drawdown_pct": {"goal": "min", "threshold": 60.0},
        },
        "constraints": ["num_trades >= 1"],
        "budget": {"trials": n_trials, "sobol_trials": n_trials, "max_epochs": 2},
        "early_stopping": {"enabled": False},
        "seed": 0,
    }
    spec = parse_spec(raw)
    objective = make_objective(spec)
    prepared = objective.prepare()
    store = StudyStore(directory)
    meta = StudyMeta.new(objective.name, facts=prepared.facts, data_hash=prepared.data_hash, storage=None)
    prepared.save(store.data_dir)
    store.create(spec.canonical(), spec.given(), meta)
    data = PreparedData.load(store.data_dir)
    costs = {"fee_bps": spec.backtest.fee_bps, "slippage_bps": spec.backtest.slippage_bps}
    rng = np.random.default_rng(5)
    test_metrics: dict[int, dict[str, float]] = {}
    for i in range(n_trials):
        scored = {}
        for split in ("val", "test"):
            close = np.asarray(data.close[data.splits.bars(split)])
            pos = rng.choice([-1.0, 0.0, 1.0], size=len(close), p=[0.3, 0.4, 0.3])
            result = run_backtest(close, pos, periods_per_year=data.periods_per_year, **costs).to_dict()
            scored[split] = (result, net_returns(close, pos, **costs))
        metrics, returns = scored["val"]
        store.write_array(i, "returns", returns)
        for epoch in (1, 2):
            store.append_curve(
                i, {"epoch": float(epoch), "fold": 0.0, "step": float(epoch), "val_loss": 1.1 - 0.05 * epoch}
            )
        store.append_curve(i, {"epoch": 1.0, "fold": 1.0, "step": 3.0, "val_loss": 1.02})
        store.write_result(
            i,
            {
                "index": i,
                "status": "completed",
                "params": spec.space.sample(rng),
                "source": "baseline" if i == 0 else "sobol",
                "metrics": metrics,
                "epochs": 3,
                "seconds": {"total": 1.0 + i},
                "sems": {"sharpe": 1.5},
            },
        )
        store.append_batch({"trials": [i], "seconds": 0.1 * (i + 1), "node": "Sobol", "completed_before": i})
        test_metrics[i] = scored["test"][0]
    res = StudyResults.load(directory)
    store.write_test_metrics({r.index: test_metrics[r.index] for r in res.front})
