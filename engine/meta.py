"""``meta.json``: what a study was made with, and what resume compares.

:class:`StudyMeta` records the meta format version, the boengine and library
versions (Ax, BoTorch, GPyTorch, torch, NumPy, pandas, Python), the objective,
the SHA-256 of the data file, the storage URL given with ``--storage``
(without its password: a resume gives the URL again; none: the study's own
``ax.db``, derived from the directory it is in, so a copied or moved study
never writes into another one's database) and the facts of the
prepared data (input size, feature set, splits, bar frequency, first and last
bar).

Format versions: 1 (boengine 0.1: holdout validation only, an absolute
``storage_url``); 2 (Pareto-aware stopping across folds off unless asked
for); 3 (that stopping is ``"auto"``, on where it applies; 8 quasi-random
trials unless set); 4 (this one: ``budget.sobol_trials`` defaults to 8 for
trials with standard errors and 4 for trials without). A study of an older
format is read and resumed after :func:`migrate_spec`; one of a newer
format is refused.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from strategies.exceptions import InputError

__all__ = ["META_VERSION", "StudyMeta", "library_versions", "migrate_spec"]

META_VERSION = 4
_LIBRARIES = {
    "ax": "ax-platform",
    "botorch": "botorch",
    "gpytorch": "gpytorch",
    "torch": "torch",
    "numpy": "numpy",
    "pandas": "pandas",
}
_V1_KEYS = ("version", "created", "storage_url")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def library_versions() -> dict[str, str]:
    """Versions of the libraries a study's numbers depend on (read from package metadata, no imports)."""
    return {"python": platform.python_version(), **{k: _version(d) for k, d in _LIBRARIES.items()}}


@dataclass(frozen=True)
class StudyMeta:
    """The contents of ``meta.json`` (see the module docstring)."""

    version: int
    created: str
    boengine: str
    libraries: dict[str, str]
    objective: str
    data_hash: str = ""
    storage: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls, objective: str, *, facts: Mapping[str, Any], data_hash: str, storage: str | None
    ) -> StudyMeta:
        return cls(
            version=META_VERSION,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            boengine=_version("boengine"),
            libraries=library_versions(),
            objective=objective,
            data_hash=data_hash,
            storage=storage,
            facts=dict(facts),
        )

    def storage_url(self, study_dir: Path) -> str:
        """The SQLAlchemy URL of the study's Ax experiment: ``--storage``'s as recorded (a password
        shown as ``***``: the run that resumes gives the URL again), or ``<study_dir>/ax.db``."""
        return self.storage or f"sqlite:///{(Path(study_dir) / 'ax.db').resolve()}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str, study_dir: Path) -> StudyMeta:
        """Read a ``meta.json`` of any known format version; raise InputError for a newer one."""
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise InputError(f"{source}: no valid format version; is this a boengine study?")
        if version > META_VERSION:
            raise InputError(
                f"{source}: made by boengine {data.get('boengine', '?')} (meta format {version}); this "
                f"boengine {_version('boengine')} reads formats up to {META_VERSION}: upgrade boengine"
            )
        if version == 1:
            return cls._from_v1(data, study_dir)
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise InputError(f"{source}: {exc}; the file is damaged") from None

    @classmethod
    def _from_v1(cls, data: Mapping[str, Any], study_dir: Path) -> StudyMeta:
        url = str(data.get("storage_url", ""))
        own = (
            url.endswith("/ax.db")
            and Path(url.removeprefix("sqlite:///")).parent.name == Path(study_dir).name
        )
        return cls(
            version=1,
            created=str(data.get("created", "")),
            boengine="0.1.0",
            libraries={},
            objective="",  # format 1 did not record it: the spec says
            storage=None if own or not url else url,
            facts={k: v for k, v in data.items() if k not in _V1_KEYS},
        )

    def differences(self, other: StudyMeta) -> list[str]:
        """What differs between this study's versions and ``other``'s, one phrase each."""
        out = []
        if self.boengine != other.boengine:
            out.append(f"boengine {self.boengine} -> {other.boengine}")
        for name in sorted(set(self.libraries) | set(other.libraries)):
            a, b = self.libraries.get(name, "?"), other.libraries.get(name, "?")
            if a != b:
                out.append(f"{name} {a} -> {b}")
        return out


def migrate_spec(raw: Mapping[str, Any], version: int) -> dict[str, Any]:
    """A spec as written for an older meta format, made to mean the same under this version.

    Format 1 had holdout validation only; this version's default is walk-forward,
    so a format-1 spec without a validation scheme gets ``holdout`` explicitly
    (objectives without validation ignore it). Formats 1 and 2 stopped trials
    across folds only when asked to; this version's default is ``"auto"``, so
    their specs without ``early_stopping.pareto_folds.enabled`` get ``false``
    explicitly: a resumed study keeps the rule its trials were run under.
    Formats 1-3 started with 8 quasi-random trials whatever the objective, so
    their specs without ``budget.sobol_trials`` get 8.
    """
    spec = dict(raw)
    if version < 2:
        data = dict(spec.get("data") or {})
        data.setdefault("validation", {"scheme": "holdout"})
        spec["data"] = data
    if version < 3:
        stopping = dict(spec.get("early_stopping") or {})
        pareto = dict(stopping.get("pareto_folds") or {})
        pareto.setdefault("enabled", False)
        spec["early_stopping"] = {**stopping, "pareto_folds": pareto}
    if version < 4:
        budget = dict(spec.get("budget") or {})
        budget.setdefault("sobol_trials", 8)
        spec["budget"] = budget
    return spec
