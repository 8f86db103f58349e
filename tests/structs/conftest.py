"""Shared fixtures of the struct tests: the real symbol tables in ../shared/isf, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from iumdump.isf import SymbolTable

# The repository root is two levels up; the shared folder sits beside the clone.
ISF_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "isf"
# PDB GUID-age of each table → the Windows build it describes (see ../shared/README.md).
ISF_BUILDS = {
    "517E128F7B7C4EA79491DE6B9B9CE190-1.json.xz": 14393,
    "606FF669409B00F7FC8C61A9C1670129-1.json.xz": 19041,
}

_loaded: dict[int, SymbolTable] = {}


def load_isf(build: int) -> SymbolTable:
    """The real symbol table of ``build``, loaded once per session; skips when it is absent."""
    if build not in _loaded:
        name = next(name for name, known in ISF_BUILDS.items() if known == build)
        path = ISF_DIR / name
        if not path.is_file():
            pytest.skip(f"real symbol tables not available ({path} is absent)")
        _loaded[build] = SymbolTable.load(path)
    return _loaded[build]


@pytest.fixture(scope="session", params=sorted(ISF_BUILDS.values()), ids=lambda build: str(build))
def real_isf(request) -> SymbolTable:
    """Each real symbol table in turn (14393, 19041)."""
    return load_isf(request.param)


@pytest.fixture(scope="session")
def isf_14393() -> SymbolTable:
    return load_isf(14393)


@pytest.fixture(scope="session")
def isf_19041() -> SymbolTable:
    return load_isf(19041)
