"""What the quick subset leaves out: ``pytest -m "not slow"`` runs in under a minute on two cores,
``pytest`` runs everything.

Marked slow (``SLOW``): tests and whole modules that run other programs — ``vol`` and
``iumdump`` as commands on damaged dumps, MemProcFS, Chromium, case_validate, a wheel build, Dask
clusters — and, of each test over the matrix of scenarios × acquisition formats × symbol tables,
every dump but the :data:`QUICK_DUMPS`: a Credential Guard machine and the adversarial one, in
the default format with the built-in symbol table. The quick subset still runs every test function of a matrix.
"""

from __future__ import annotations

from typing import Iterable

import pytest

SLOW = pytest.mark.slow
QUICK_DUMPS = frozenset({("credential-guard", "crash-bitmap", "builtin"),
                         ("adversarial", "crash-bitmap", "builtin")})


def dump_params(cases: Iterable[tuple[str, ...]]) -> list:
    """``(scenario, format, profile)`` cases as pytest parameters (ids ``scenario-format-profile``),
    all but the :data:`QUICK_DUMPS` marked slow."""
    return [pytest.param(case, id="-".join(case), marks=() if case in QUICK_DUMPS else SLOW)
            for case in cases]


def quick_only(values: Iterable, quick) -> list:
    """Each of ``values`` a pytest parameter (a tuple for several arguments), all but ``quick``
    marked slow."""
    return [pytest.param(*(value if isinstance(value, tuple) else (value,)),
                         marks=() if value == quick else SLOW) for value in values]
