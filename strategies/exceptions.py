"""The one error hierarchy of boengine.

It lives in ``strategies`` because that is the bottom of the import graph
(``engine -> objectives -> strategies``): every package can raise these
errors and the CLI maps them to exit codes in one place.

- :class:`InputError` and its subclasses mean *bad input* (a spec, a data
  file, an argument). The CLI prints the message as one line and exits 2.
  Messages say what must hold, the value received, and how to fix it.
- :class:`StudyError` means a runtime failure of a study (exit 1).
- :class:`TrialError` is raised inside one trial; the engine records the trial
  as failed with the message as its reason and carries on.
"""

from __future__ import annotations

__all__ = [
    "BoengineError",
    "ConfigError",
    "DataError",
    "InputError",
    "SpecError",
    "StudyError",
    "TrialError",
]


class BoengineError(Exception):
    """Base class of every error boengine raises on purpose."""


class InputError(BoengineError, ValueError):
    """Bad input: the user must change a file or an argument (exit code 2)."""


class SpecError(InputError):
    """An experiment spec is invalid; the message names the file and field."""


class ConfigError(InputError):
    """A model or search-space configuration is invalid."""


class DataError(InputError):
    """A market-data source is missing, malformed or too short."""


class TrialError(BoengineError, RuntimeError):
    """One trial failed (exception, non-finite metric, timeout)."""


class StudyError(BoengineError, RuntimeError):
    """A study cannot go on (locked, too many failures, corrupt store)."""
