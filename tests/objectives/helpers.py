"""Synthetic bars, prepared data and a tiny model for the objectives tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from objectives.config import SplitSpec
from objectives.dataset import PreparedData, holdout_fit, split_ranges
from strategies.base import ModelOutput


def bar_index(n: int, freq: str = "1h", *, start: str = "2021-01-04", gaps: bool = True) -> pd.DatetimeIndex:
    """`n` increasing timestamps; with ``gaps``, weekends are skipped (FX / equity style)."""
    step = pd.Timedelta(freq)
    idx = pd.date_range(start, periods=n * 2 + 10, freq=step)
    if gaps:
        idx = idx[idx.day_of_week < 5]
    return pd.DatetimeIndex(idx[:n]).as_unit("ns").rename("timestamp")


def make_bars(
    n: int,
    *,
    freq: str = "1h",
    seed: int = 0,
    gaps: bool = True,
    start_price: float = 100.0,
    vol: float = 0.01,
) -> pd.DataFrame:
    """A valid OHLCV random walk of `n` bars."""
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate([[start_price], close[:-1]]) * np.exp(rng.normal(0, vol / 4, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol / 2, n)))
    volume = rng.integers(100, 10_000, n).astype(np.float64)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=bar_index(n, freq, gaps=gaps),
    )


def write_csv(bars: pd.DataFrame, path: object) -> None:
    """Write bars with a ``timestamp`` column in ISO format."""
    out = bars.copy()
    out.insert(0, "timestamp", out.index.strftime("%Y-%m-%d %H:%M:%S"))
    out.to_csv(path, index=False)


def synthetic_data(
    n: int = 600, n_features: int = 4, *, seed: int = 0, max_seq_len: int = 8, horizon: int = 2
) -> PreparedData:
    """A learnable problem: the label is a threshold of feature 0 at the decision bar."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    labels = np.where(x[:, 0] > 0.5, 1, np.where(x[:, 0] < -0.5, 2, 0)).astype(np.int64)
    labels[-horizon:] = -1
    profit = np.where(labels == 1, 0.01, np.where(labels == 2, 0.01, 0.0)).astype(np.float32)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return PreparedData(
        features=x,
        labels=labels,
        profit=profit,
        close=close,
        timestamps=bar_index(n).asi8.astype(np.int64),
        feature_names=tuple(f"f{i}" for i in range(n_features)),
        splits=(splits := split_ranges(n, max_seq_len, horizon, SplitSpec())),
        periods_per_year=6000.0,
        bar_seconds=3600.0,
        max_seq_len=max_seq_len,
        fit=holdout_fit(splits, horizon, 0.2),
    )


class TinyModel(nn.Module):
    """Reads the last time step: `batch x seq x F` -> logits `batch x 3`, profit `batch`."""

    def __init__(self, n_features: int, hidden: int = 16, *, seed: int = 0, dead: bool = False) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(0.1))
            self.action = nn.Linear(hidden, 3)
            self.profit = nn.Linear(hidden, 1)
        self.dead = dead

    def forward(self, x: Tensor) -> ModelOutput:
        h = self.body(x[:, -1, :])  # batch x hidden
        logits = self.action(h)  # batch x 3
        profit = self.profit(h).squeeze(-1)  # batch
        if self.dead:  # outputs do not depend on the parameters: the loss never changes
            logits, profit = 0.0 * logits.detach(), 0.0 * profit.detach() + 0.0 * logits.sum(-1)
        return ModelOutput(logits=logits, profit=profit)
