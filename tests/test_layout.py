"""The package layout as DESIGN.md states it: one-way imports, no circle, a self-contained optimizer.

Every import counts, at module level or inside a function (a lazy import
still ties two modules together); only ``if TYPE_CHECKING:`` blocks are
left out. A package's ``__init__`` importing its own submodules is an edge
like any other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "objectives", "strategies")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str, known: set[str], *, type_checking: bool = False) -> set[str]:
    """Project modules imported by ``path`` (a ``from pkg import sub`` counts ``pkg.sub`` when it is
    a module); imports under ``if TYPE_CHECKING:`` only with ``type_checking``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known, type_checking=type_checking) for name, path in mods.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (``a -> b -> a``), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_imports_run_one_way() -> None:
    graph = _graph(type_checking=True)
    for mod, deps in graph.items():
        top = mod.split(".")[0]
        if top == "objectives":
            assert not [d for d in deps if d.startswith("engine")], mod
        if top == "strategies":
            assert not [d for d in deps if d.startswith(("engine", "objectives"))], mod


def test_the_optimizer_imports_nothing_else_of_engine() -> None:
    for mod, deps in _graph(type_checking=True).items():
        if mod.startswith("engine.optimizer"):
            outside = sorted(
                d for d in deps if d.startswith("engine") and not d.startswith("engine.optimizer")
            )
            assert not outside, (mod, outside)


def test_the_engine_reaches_the_trading_pipeline_through_its_objectives_only() -> None:
    """engine/ imports objectives/ only in engine/objective/ (its door: engine.objective.pipeline)
    and, for the spec's sections, in engine/spec_model.py."""
    for mod, deps in _graph(type_checking=True).items():
        if not mod.startswith("engine.") or mod.startswith("engine.objective"):
            continue
        allowed = {"objectives.config"} if mod == "engine.spec_model" else set()
        side_doors = sorted(d for d in deps if d.split(".")[0] == "objectives" and d not in allowed)
        assert not side_doors, (mod, side_doors)


#: The names of a study's files (engine/store.py's layout); the records module names result.json.
STUDY_FILES = {
    "spec.json", "spec.given.json", "meta.json", "ax.db", "batches.jsonl", "runs.jsonl", "study.log",
    "test.json", "verdict.json", "carry_over.json", "regime.json", "warm_start.json", "priors.json",
    "pareto.csv", "pareto.html", "report.md", "report.html", "result.json", "curve.jsonl", "model.pt",
    "final.pt", "error.txt", "returns.npy", "positions.npy", "test_returns.npy", ".lock", ".run",
}  # fmt: skip


def study_file_names(path: Path) -> list[str]:
    """The study file names written as string constants in ``path`` (docstrings and comments are
    prose, not names: only a constant that is exactly a file's name counts)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sorted(
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in STUDY_FILES
    )


def test_only_the_store_knows_the_study_files_names() -> None:
    allowed = {"engine/store.py", "engine/records.py", "engine/meta.py"}  # meta.py: meta.json's format
    for path in sorted((ROOT / "engine").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel not in allowed:
            assert not study_file_names(path), (rel, study_file_names(path))
    assert "verdict.json" in study_file_names(ROOT / "engine" / "store.py")  # the check sees names


def test_no_import_circle() -> None:
    cycle = find_circle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_import_circle_even_under_type_checking() -> None:
    cycle = find_circle(_graph(type_checking=True))
    assert cycle is None, "import circle (imports under TYPE_CHECKING included): " + " -> ".join(cycle or [])


def test_the_circle_check_can_fail() -> None:
    """The detector the test above uses finds a planted circle, and the project's graph with one
    planted edge (so a passing test means something)."""
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    graph = _graph()
    assert "engine.store" in graph["engine.analysis.results"]
    graph["engine.store"] = {*graph["engine.store"], "engine.analysis.results"}
    planted = find_circle(graph)
    assert planted is not None and "engine.store" in planted and "engine.analysis.results" in planted


def test_no_synthetic_branch_outside_its_objective() -> None:
    allowed = {"engine/objective/synthetic_objective.py", "engine/objective/registry.py"}
    for pkg in ("engine",):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel in allowed:
                continue
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"startswith\(\s*[\"']synthetic|is_synthetic|SYNTHETIC_PREFIX", text), rel
