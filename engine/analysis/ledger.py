"""The trial ledger: every configuration tried on these bars counts.

A deflated Sharpe ratio is only as honest as its N. A study's own trials are
not all the tries its pick was chosen from: earlier windows of a weekly line
searched the same history, warm-start studies were searched and attached,
and other specs under the same studies root ran on the same data file. The
ledger of a study S gathers:

- S's own trials that were evaluated (completed or stopped early);
- the configurations attached to S (warm start, ``previous_window: attach``):
  tried where they came from;
- every trial evaluated (completed or stopped early) by another study that
  read the same data (the same file hash or the same ``data.source``) and
  whose out-of-sample bars overlap S's: every study under S's studies root
  (the directory holding S, or holding S's line when S is a window) and every
  study S was warm-started from (``warm_start.json``). Symbolic links are not
  followed.

Three counts (the report shows all three):

- ``n_study``: S's own evaluated trials;
- ``n_bars``: distinct configurations (family and parameters) in the ledger;
- ``n_effective``: independent tries among them. The per-bar returns of every
  ledger entry that has them are aligned on S's out-of-sample bars and
  clustered on the correlation distance d = sqrt((1 − ρ)/2) (average
  linkage, cut where the average correlation falls below
  :data:`CLUSTER_CORRELATION`; López de Prado, 2019); configurations that
  never traded form one cluster. Entries without returns (stopped early,
  attached) are assumed to be as correlated as the rest:
  ``n_effective = ceil(clusters · n_bars / configurations with returns)``.

The deflated Sharpe ratio uses ``n_effective`` and, as V, the variance of the
clusters' Sharpe ratios (each cluster's medoid), never below the variance of
a skill-less Sharpe ratio estimate over S's bars (1/T per bar): correlated
trials spread less than independent ones, and a V below the null's would
deflate too little.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.store import StudyStore
from strategies.exceptions import InputError

if TYPE_CHECKING:
    from engine.records import TrialRecord


class _Study(Protocol):
    """What the ledger reads of a study (:class:`engine.analysis.results.StudyResults` has it)."""

    @property
    def store(self) -> StudyStore: ...

    @property
    def spec(self) -> Any: ...  # the strategy (family) name: ``spec.strategy``

    @property
    def records(self) -> Sequence[TrialRecord]: ...


__all__ = ["CLUSTER_CORRELATION", "Clusters", "Ledger", "TrialCounts", "effective_trials", "trial_ledger"]

logger = logging.getLogger(__name__)

#: Trials whose returns correlate at least this much (average linkage) are one try.
CLUSTER_CORRELATION = 0.5
MIN_OVERLAP = 50  # bars two entries must share for their correlation to count
_WINDOW = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STD_FLOOR = 1e-15


@dataclass(frozen=True)
class Clusters:
    """Independent groups of correlated return series: ``labels[j]`` of column j, ``n`` groups."""

    n: int
    labels: np.ndarray
    medoids: tuple[int, ...]


def effective_trials(returns: np.ndarray, *, min_overlap: int = MIN_OVERLAP) -> Clusters:
    """Cluster the columns of ``returns`` (`T x M` per-bar returns, NaN where a column has no bar).

    Constant columns (never traded) are one cluster; the others are clustered
    on d = sqrt((1 − ρ)/2) of their pairwise correlations (over the bars both
    have; fewer than ``min_overlap`` shared bars count as uncorrelated) by
    average linkage, cut at the distance of ρ = :data:`CLUSTER_CORRELATION`.
    A medoid (the member most correlated with its cluster) stands for each.
    """
    import pandas as pd
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    frame = pd.DataFrame(np.asarray(returns, dtype=np.float64))
    m = frame.shape[1]
    labels = np.zeros(m, dtype=np.int64)
    if m == 0:
        return Clusters(0, labels, ())
    std = frame.std(ddof=0).fillna(0.0).to_numpy()
    varying = np.flatnonzero(std > _STD_FLOOR)
    flat = np.flatnonzero(std <= _STD_FLOOR)
    corr = frame.iloc[:, varying].corr(min_periods=min_overlap).fillna(0.0).to_numpy(copy=True)
    np.fill_diagonal(corr, 1.0)
    if len(varying) >= 2:
        dist = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, 1.0))
        np.fill_diagonal(dist, 0.0)
        tree = linkage(squareform(dist, checks=False), method="average")
        cut = math.sqrt((1.0 - CLUSTER_CORRELATION) / 2.0)
        labels[varying] = fcluster(tree, t=cut, criterion="distance")
    elif len(varying) == 1:
        labels[varying] = 1
    n_varying = len(set(labels[varying].tolist()))
    labels[flat] = n_varying + 1
    medoids = []
    for c in sorted(set(labels[varying].tolist())):
        members = np.flatnonzero(labels[varying] == c)
        inner = corr[np.ix_(members, members)].mean(axis=1)
        medoids.append(int(varying[members[int(np.argmax(inner))]]))
    if len(flat):
        medoids.append(int(flat[0]))
    return Clusters(n_varying + (1 if len(flat) else 0), labels, tuple(medoids))


@dataclass(frozen=True)
class TrialCounts:
    """What the ledger counts, and the V the deflated Sharpe ratio uses (per bar)."""

    n_study: int
    n_bars: int
    n_effective: int
    n_clusters: int
    n_with_returns: int
    sharpe_variance: float
    null_variance: float
    studies: dict[str, int] = field(default_factory=dict)  # other studies counted -> their configurations

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Entry:
    study: str
    trial: int
    key: str  # family + parameters
    here: bool
    returns: np.ndarray | None = None  # aligned on the study's out-of-sample bars (NaN elsewhere)


@dataclass(frozen=True)
class Ledger:
    """The entries of a study's ledger (built by :func:`trial_ledger`) and their fingerprint."""

    entries: tuple[_Entry, ...]
    fingerprint: str
    n_obs: int

    def counts(self) -> TrialCounts:
        n_study = sum(e.here for e in self.entries)
        keys = {e.key for e in self.entries}
        with_returns = [e for e in self.entries if e.returns is not None]
        configs_with = {e.key for e in with_returns}
        null = 1.0 / max(self.n_obs, 1)
        if with_returns:
            matrix = np.column_stack([e.returns for e in with_returns if e.returns is not None])
            clusters = effective_trials(matrix)
            n_eff = min(len(keys), math.ceil(clusters.n * len(keys) / max(len(configs_with), 1)))
            variance = _cluster_variance(matrix, clusters)
        else:
            clusters = Clusters(0, np.zeros(0, dtype=np.int64), ())
            n_eff, variance = len(keys), math.nan
        others: dict[str, set[str]] = {}
        for e in self.entries:
            if not e.here:
                others.setdefault(e.study, set()).add(e.key)
        return TrialCounts(
            n_study=n_study,
            n_bars=len(keys),
            n_effective=max(n_eff, 1) if keys else 0,
            n_clusters=clusters.n,
            n_with_returns=len(with_returns),
            sharpe_variance=max(variance, null) if math.isfinite(variance) else null,
            null_variance=null,
            studies={k: len(v) for k, v in sorted(others.items())},
        )


def _cluster_variance(matrix: np.ndarray, clusters: Clusters) -> float:
    """Variance (ddof 1) of the per-bar Sharpe ratios of the clusters' medoids; NaN for < 2 clusters."""
    if clusters.n < 2:
        return math.nan
    sharpes = []
    for j in clusters.medoids:
        col = matrix[:, j]
        col = col[np.isfinite(col)]
        std = float(col.std()) if len(col) else 0.0
        sharpes.append(float(col.mean()) / std if std > _STD_FLOOR else 0.0)
    return float(np.var(sharpes, ddof=1))


def _key(strategy: str, params: Mapping[str, Any]) -> str:
    return json.dumps({"strategy": strategy, "params": params}, sort_keys=True, default=str)


def trial_ledger(res: _Study, own: Mapping[int, np.ndarray]) -> Ledger:
    """The ledger of study ``res``; ``own``: its trials' per-bar out-of-sample returns by index."""
    stamps = res.store.oos_timestamps()
    n_obs = len(stamps) if stamps is not None else max((len(a) for a in own.values()), default=0)
    entries = [
        _Entry(str(res.store.dir), r.index, _key(res.spec.strategy, r.params), True, own.get(r.index))
        for r in res.records
        if r.tried_here
    ]
    entries += [
        _Entry(r.source, r.index, _key(res.spec.strategy, r.params), False)
        for r in res.records
        if r.attached and r.status == "completed"
    ]
    identity = _identity(res.store)
    span = (int(stamps[0]), int(stamps[-1])) if stamps is not None and len(stamps) else None
    for other in _candidates(res.store):
        entries += _other_entries(other, identity, stamps, span)
    # an attached trial found in its own study is one entry, not two
    found = {(Path(e.study).name, e.key) for e in entries if not e.here and e.study != ""}
    entries = [
        e for e in entries if not (e.study.startswith("warm_start:") and (e.study[11:], e.key) in found)
    ]
    text = json.dumps(sorted((e.study, e.trial, e.key, e.returns is not None) for e in entries))
    return Ledger(tuple(entries), hashlib.sha256(text.encode()).hexdigest()[:16], n_obs)


def _identity(store: StudyStore) -> tuple[str, str]:
    """(data file hash, data.source) of a study; '' where unknown."""
    try:
        meta = store.read_meta()
        raw = store.read_spec()
    except Exception:  # an unreadable study is no part of the ledger (warned where it is skipped)
        return "", ""
    source = str((raw.get("data") or {}).get("source", "builtin:eurusd_1h"))
    if not source.startswith("builtin:"):
        source = str(Path(source).expanduser().resolve())
    return meta.data_hash, source


def _candidates(store: StudyStore) -> list[Path]:
    """Other studies that may share bars with ``store``'s: the studies root's, and warm-start sources."""
    here = store.dir.resolve()
    root = here.parent
    if _WINDOW.match(here.name) and not StudyStore(root).exists():
        root = root.parent  # a window of a study line: the line's siblings count too
    found: list[Path] = []
    for d in _children(root):
        if StudyStore(d).exists():
            found.append(d)
        else:
            found += [w for w in _children(d) if _WINDOW.match(w.name) and StudyStore(w).exists()]
    try:
        found += [Path(d) for d in store.read_warm_start() or {}]
    except InputError as exc:
        logger.warning("%s; its studies are not in the trial ledger", exc)
    out, seen = [], {here}
    for d in found:
        if d.is_symlink() or not d.is_dir():
            continue
        r = d.resolve()
        if r not in seen and StudyStore(r).exists():
            seen.add(r)
            out.append(r)
    return sorted(out)


def _children(directory: Path) -> Iterable[Path]:
    if not directory.is_dir() or directory.is_symlink():
        return []
    try:
        return sorted(d for d in directory.iterdir() if d.is_dir() and not d.is_symlink())
    except OSError:
        return []


def _other_entries(
    directory: Path, identity: tuple[str, str], stamps: np.ndarray | None, span: tuple[int, int] | None
) -> list[_Entry]:
    """The evaluated trials of another study on the same data whose out-of-sample bars overlap ours."""
    store = StudyStore(directory)
    data_hash, source = _identity(store)
    if not (data_hash or source) or not (
        (data_hash and data_hash == identity[0]) or (source and source == identity[1])
    ):
        return []
    damaged: list[str] = []
    try:
        theirs = store.oos_timestamps()
        records = store.trial_records(damaged=damaged)
        strategy = str(store.read_spec().get("strategy", ""))
    except Exception as exc:  # damaged beyond its trial records: the ledger says so and goes on
        logger.warning("%s: not counted in the trial ledger (%s)", directory, exc)
        return []
    if damaged:  # its readable trials still count
        logger.warning(
            "%s: %d damaged trial record(s) not counted in the trial ledger (%s)",
            directory,
            len(damaged),
            damaged[0],
        )
    if theirs is None or not len(theirs) or span is None or theirs[-1] < span[0] or theirs[0] > span[1]:
        return []
    out = []
    for rec in records:
        if not rec.tried_here:
            continue
        aligned = None
        if rec.status == "completed" and stamps is not None:
            aligned = _aligned(store, rec.index, theirs, stamps)
        out.append(_Entry(str(directory), rec.index, _key(strategy, rec.params), False, aligned))
    return out


def _aligned(store: StudyStore, index: int, theirs: np.ndarray, ours: np.ndarray) -> np.ndarray | None:
    """Another study's trial returns placed on our bars by timestamp (NaN where it has none)."""
    try:
        returns = store.read_array(index, "returns")
    except (ValueError, OSError):
        return None
    if returns is None or len(returns) != len(theirs):
        return None
    out = np.full(len(ours), np.nan)
    pos = np.searchsorted(theirs, ours)
    pos = np.clip(pos, 0, len(theirs) - 1)
    hit = theirs[pos] == ours
    out[hit] = returns[pos[hit]]
    return out if int(hit.sum()) >= MIN_OVERLAP else None
