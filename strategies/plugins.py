"""User code named in a spec: ``package.module:name`` references and installed entry points.

A reference names a module by its dotted import name and an attribute of it
(``experiments.my_family:TinyMLP``, ``experiments.my_metrics:tail_ratio``).
It is imported by name, as Python imports any module, from the installed
packages and ``PYTHONPATH``, and from the **current working directory**,
which :func:`load_reference` appends to the *end* of ``sys.path`` (so an
installed package or the standard library always wins, and a file in the
working directory never shadows one). Run boengine from the directory that
holds the package (the repository root for ``experiments.my_family``), or
install the package.

Worker processes find it the same way: the local pool's processes are
spawned with the driver's working directory and ``sys.path``, Ray adds the
driver's working directory to its workers' ``sys.path``, and every lookup
appends the working directory again. Only dotted identifiers are accepted:
no file paths, no relative imports, nothing evaluated.

Installed packages can name their families in the entry-point group
:data:`FAMILY_ENTRY_POINTS` (``[project.entry-points."boengine.families"]
my_net = "my_package.models:MyNet"``); a spec then says ``"strategy": "my_net"``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from importlib.metadata import entry_points
from typing import Any

from strategies.exceptions import ConfigError

__all__ = ["FAMILY_ENTRY_POINTS", "entry_point_names", "is_reference", "load_entry_point", "load_reference"]

FAMILY_ENTRY_POINTS = "boengine.families"

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_REFERENCE = re.compile(rf"^({_DOTTED}):({_DOTTED})$")


def is_reference(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:attribute``."""
    return _REFERENCE.match(name) is not None


def load_reference(ref: str, *, what: str) -> Any:
    """The object ``ref`` (``package.module:attribute``) names, importing its module.

    Args:
        ref: the reference.
        what: where it was given, the message's first words (``"metrics.tail"``); "" for none.

    Raises:
        ConfigError: one line: a malformed reference, a module that cannot be found, an
            error while importing it (its type and message), or a missing attribute.
    """
    where = f"{what}: " if what else ""
    m = _REFERENCE.match(ref)
    if m is None:
        raise ConfigError(
            f"{where}{ref!r} is not a reference of the form 'package.module:name' (dotted Python "
            "identifiers, no file path); e.g. 'experiments.my_family:TinyMLP'"
        )
    module_name, attribute = m.groups()
    module = _import(module_name, ref, where)
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"{where}module '{module_name}' ({getattr(module, '__file__', None) or 'built in'}) has "
                f"no '{attribute}'; fix the name after ':' in {ref!r}"
            )
        obj = getattr(obj, part)
    return obj


def _import(module_name: str, ref: str, where: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)  # last: never shadows an installed module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
            raise ConfigError(
                f"{where}cannot find module '{module_name}' of {ref!r} in the installed packages or the "
                f"current directory {cwd}; run boengine from the directory that holds it, or install it"
            ) from None
        raise ConfigError(
            f"{where}importing '{module_name}' failed: {_error_line(exc)}; fix the module"
        ) from None
    except Exception as exc:  # the user's module raised while it was imported: one line, exit 2
        raise ConfigError(
            f"{where}importing '{module_name}' failed: {_error_line(exc)}; fix the module"
        ) from None


def _error_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, SyntaxError) and exc.filename:
        text = f"{exc.msg} ({exc.filename}, line {exc.lineno})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def entry_point_names(group: str = FAMILY_ENTRY_POINTS) -> tuple[str, ...]:
    """Names of the installed entry points of ``group``."""
    return tuple(sorted({ep.name for ep in entry_points(group=group)}))


def load_entry_point(name: str, *, what: str, group: str = FAMILY_ENTRY_POINTS) -> Any | None:
    """The object the installed entry point ``name`` of ``group`` names (None if there is none)."""
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        return None
    where = f"{what} " if what else ""
    return load_reference(found[0].value.replace(" ", ""), what=f"{where}(entry point {group}:{name})")
