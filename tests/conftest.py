"""Session fixtures for every test: synthesized dumps, and Volatility 3 run in-process on them.

``synth_dump(scenario="credential-guard", fmt="crash-bitmap", profile="builtin", *,
memory="32M", seed=0, params=None) -> SynthResult``
    Synthesizes a dump once per session per set of arguments (in one session temp directory) and
    returns the cached :class:`iumdump.slat.synth.SynthResult`: ``dump_path``, ``symbols_dir``,
    ``truth_path``, ``truth`` (the parsed truth.json), ``isf_path``, ``kernel``, ``write``.
    ``profile`` is ``"builtin"``, ``"14393"`` or ``"19041"`` (the real symbol tables in
    ../shared/isf; the test is skipped when they are absent) or a path to an ISF.

``volatility.run(result, "windows.pslist.PsList", pid=[712]) -> VolatilityRun``
    Runs an unmodified Volatility 3 plugin on a synthesized dump through Volatility's own API
    (TreeGrid.populate), offline and with a session-private symbol cache
    (tests/volatility_harness.py). One context serves every plugin run on a dump: automagic (DTB
    scan, kernel search) runs once per dump, and a plugin whose requirements the kernel does not
    satisfy gets them from automagic as under ``vol``. Options are the plugin's config names.
    iumdump's plugins (``windows.secureprocs.SecureProcs`` …) load by name too.
    ``VolatilityRun.rows`` is a list of ``{column: value}`` with Volatility's own values (ints,
    datetimes, absent-value objects).

``volatility.context(result)`` and ``volatility.kernel_module(result)`` give the dump's
Volatility context and kernel module name for calling Volatility's classmethods.

``plugin_classes`` (iumdump's plugin classes as Volatility registered them),
``plugin_session(dump)`` (the dump's :class:`volatility_harness.OpenDump`) and ``patch(...)``
(a copy of a dump to damage, tests/hostile.py) serve the plugin and hostile-input tests. (The
plugin tests live in tests/plugins: a directory named vol_plugins there would shadow the package,
since pytest puts tests/ on sys.path and a namespace package wins over the editable install.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from iumdump.slat.synth import SynthResult, synthesize
from iumdump.slat.writers import FORMATS
from volatility_harness import VolatilityHarness, VolatilityRun

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ISF_DIR = REPO_ROOT.parent / "shared" / "isf"
# The real symbol tables beside the clone (../shared/README.md): build → file.
SHARED_ISFS = {
    "14393": SHARED_ISF_DIR / "517E128F7B7C4EA79491DE6B9B9CE190-1.json.xz",
    "19041": SHARED_ISF_DIR / "606FF669409B00F7FC8C61A9C1670129-1.json.xz",
}
SCENARIOS = ("credential-guard", "no-vbs", "adversarial")
PROFILES = ("builtin", "14393", "19041")
DEFAULT_MEMORY = "32M"

__all__ = ["DEFAULT_MEMORY", "FORMATS", "PROFILES", "SCENARIOS", "SHARED_ISFS",
           "VolatilityRun", "profile_isf"]


def profile_isf(profile: str) -> Path | None:
    """The ISF of a profile name (``None`` for the built-in one); skips the test when a shared
    real symbol table is absent."""
    if profile == "builtin":
        return None
    path = SHARED_ISFS.get(profile, Path(profile))
    if not path.is_file():
        pytest.skip(f"symbol table for profile {profile} not available ({path} is absent)")
    return path


@pytest.fixture(scope="session")
def real_isf():
    """``real_isf(profile) -> Path``: a real symbol table of ../shared/isf ("14393", "19041");
    skips the test when it is absent."""
    return profile_isf


@pytest.fixture(scope="session")
def synth_dump(tmp_path_factory):
    """Factory: ``synth_dump(scenario, fmt, profile, *, memory, seed, params) -> SynthResult``,
    synthesized once per session per arguments."""
    root = tmp_path_factory.mktemp("synth")
    cache: dict[tuple, SynthResult] = {}

    def make(scenario: str = "credential-guard", fmt: str = "crash-bitmap",
             profile: str = "builtin", *, memory: str | int = DEFAULT_MEMORY, seed: int = 0,
             params: dict[str, Any] | None = None) -> SynthResult:
        key = (scenario, fmt, profile, memory, seed, tuple(sorted((params or {}).items())))
        if key not in cache:
            isf = profile_isf(profile)
            name = "-".join(str(part) for part in key[:5]).replace("/", "_")
            if params:
                name += "-" + "-".join(f"{k}={v}" for k, v in key[5])
            cache[key] = synthesize(scenario, root / name, fmt=fmt, isf=isf, memory_size=memory,
                                    seed=seed, params=params, progress=False)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def volatility(tmp_path_factory):
    logging.getLogger("volatility3").setLevel(logging.ERROR)
    harness = VolatilityHarness(tmp_path_factory.mktemp("volatility"))
    yield harness
    harness.close()  # at once, rather than object by object as the interpreter exits


@pytest.fixture(scope="session")
def plugin_classes(volatility):
    """The plugin classes as Volatility registered them (``volatility3.plugins.windows.…``)."""
    plugins = volatility.plugins
    return {
        "secureprocs": plugins["windows.secureprocs.SecureProcs"],
        "extbasicinfo": plugins["windows.extbasicinfo.ExtBasicInfo"],
        "trustletpages": plugins["windows.trustletpages.TrustletPages"],
    }


@pytest.fixture(scope="session")
def plugin_session(volatility):
    """Factory: ``plugin_session(dump) -> OpenDump``, the dump's shared context, on which each
    plugin run costs only the plugin itself (no automagic)."""
    return volatility.dump


@pytest.fixture
def patch(synth_dump, plugin_session, tmp_path):
    """Factory: ``patch(scenario="credential-guard", fmt="raw", profile="builtin") -> Patch``, a
    copy of a synthesized dump in the test's directory to damage by name (tests/hostile.py)."""
    from hostile import Patch

    def make(scenario="credential-guard", fmt="raw", profile="builtin"):
        original = synth_dump(scenario, fmt, profile)
        return Patch(original, tmp_path, plugin_session(original))
    return make


@pytest.fixture(scope="session")
def vol_cache_dir(tmp_path_factory) -> Path:
    """A Volatility identifier-cache directory for ``vol --cache-path`` in subprocess tests."""
    return tmp_path_factory.mktemp("vol-cache")


def pytest_report_header(config) -> str:
    available = [p for p, path in SHARED_ISFS.items() if path.is_file()]
    return (f"iumdump: real symbol tables {', '.join(available) or 'absent'} in {SHARED_ISF_DIR}; "
            f"dumps are synthesized once per session ({DEFAULT_MEMORY} by default)")
