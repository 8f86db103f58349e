"""Which parts of iumdump may import which, read from the source with ``ast`` (nothing is
imported, so a rule holds for imports inside functions too).

* The emulator (``iumdump.slat``) imports nothing from the analyzer, the reports or the CLI: its
  truth is a statement of intent, independent of the code it judges.
* The library (``iumdump`` but ``iumdump.commands`` and ``iumdump.cli``) never imports the CLI's
  commands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "iumdump"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
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
    return found


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
    assert PACKAGE / "analysis" / "reader.py" in paths and PACKAGE / "cli.py" not in paths
    assert violations(paths, ("iumdump.commands",)) == []
