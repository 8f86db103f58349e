"""Which parts of iumdump may import which, read from the source with ``ast`` (nothing is
imported, so a rule holds for imports inside functions too).

* The emulator (``iumdump.slat``) imports nothing from the analyzer, the reports or the CLI: its
  truth is a statement of intent, independent of the code it judges.
* The library (``iumdump`` but ``iumdump.commands`` and ``iumdump.cli``) never imports the CLI's
  commands.
* The analysis (``iumdump.analysis``) has no import cycles among its modules, imports inside
  functions included: each module can be read, and imported, after those it builds on.
* The pure derivations (``iumdump.analysis.derive``, and the field manifest and findings they
  build on) import nothing from Volatility.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "iumdump"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def imported_modules(path: Path) -> frozenset[str]:
    """Every module ``path`` imports, relative imports resolved (``from . import x`` counts as
    importing the package and ``package.x``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return frozenset(found)


def modules(*under: str) -> list[Path]:
    return sorted(p for part in under for p in (PACKAGE / part).rglob("*.py"))


def library_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if not module_name(p).startswith(("iumdump.commands", "iumdump.cli"))]


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{module_name(p)} imports {m}" for p in paths for m in imported_modules(p)
                  if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_module_names_resolve_relative_imports():
    """The checker itself: a relative import two levels up from a subpackage's module."""
    path = PACKAGE / "slat" / "kernel" / "records.py"
    assert module_name(path) == "iumdump.slat.kernel.records"
    assert "iumdump.structs.flagwords" in imported_modules(path)
    assert "iumdump.isf.SymbolTable" in imported_modules(path)


@pytest.mark.parametrize("forbidden", ["iumdump.analysis", "iumdump.report", "iumdump.commands"])
def test_the_emulator_imports_nothing_it_judges_or_serves(forbidden):
    assert modules("slat") and violations(modules("slat"), (forbidden,)) == []


def test_the_library_never_imports_the_commands():
    paths = library_modules()
    assert PACKAGE / "analysis" / "eprocess.py" in paths and PACKAGE / "cli.py" not in paths
    assert violations(paths, ("iumdump.commands",)) == []


@functools.cache
def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports (a name imported from a module counts as
    that module; the package's ``__init__`` is a module of its own)."""
    paths = {module_name(p): p for p in modules(package.removeprefix("iumdump.").replace(".", "/"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        graph[name] = {target for target in paths
                       for imported in imported_modules(path)
                       if target != name and imported == target}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``, each as the modules on it (Tarjan's strongly connected
    components with more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles():
    """The checker itself, on a made-up graph: a → b → c → a is one cycle, d stands apart."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_analysis_has_no_import_cycles():
    graph = import_graph("iumdump.analysis")
    assert "iumdump.analysis.engine" in graph and graph["iumdump.analysis.engine"]
    assert cycles(graph) == []


@pytest.mark.parametrize("module", ["derive", "fields", "findings", "preflight"])
def test_the_pure_analysis_imports_nothing_from_volatility(module):
    path = PACKAGE / "analysis" / f"{module}.py"
    assert violations([path], ("volatility3", "iumdump.analysis.eprocess")) == []
    # Nor through the modules of the analysis it imports.
    graph = import_graph("iumdump.analysis")
    reached, todo = set(), [module_name(path)]
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    assert violations([PACKAGE / (m.removeprefix("iumdump.").replace(".", "/") + ".py")
                       for m in reached if m != "iumdump.analysis"],
                      ("volatility3",)) == []
