"""A metric of your own (README, "Metrics"): a function of the per-bar net returns and positions."""

from __future__ import annotations

import numpy as np


def worst_bar_pct(returns: np.ndarray, positions: np.ndarray) -> float:
    """The worst single-bar net return, in percent (0 for a model that never holds a position)."""
    held = returns[positions != 0]
    return 100.0 * float(held.min()) if len(held) else 0.0
