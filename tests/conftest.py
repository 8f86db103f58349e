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
    (automagic, construct_plugin, TreeGrid.populate), offline and with a session-private symbol
    cache. One context serves every plugin run on a dump, so automagic (DTB scan, kernel search)
    runs once per dump. Options are the plugin's config names. iumdump's plugins
    (``windows.secureprocs.SecureProcs`` …) load by name too. ``VolatilityRun.rows`` is a list of
    ``{column: value}`` with Volatility's own values (ints, datetimes, absent-value objects).

``volatility.context(result)`` and ``volatility.kernel_module(result)`` give the dump's
Volatility context and kernel module name (after a run) for calling Volatility's classmethods.

``plugin_classes`` (iumdump's plugin classes as Volatility registered them),
``plugin_session(dump)`` (a VolatilitySession on the dump's shared context) and ``patch(...)``
(a copy of a dump to damage, tests/hostile.py) serve the plugin and hostile-input tests. (The
plugin tests live in tests/plugins: a directory named vol_plugins there would shadow the package,
since pytest puts tests/ on sys.path and a namespace package wins over the editable install.)
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iumdump.slat.synth import SynthResult, synthesize
from iumdump.slat.writers import FORMATS

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


@dataclass
class VolatilityRun:
    """The rows one plugin rendered."""

    plugin: str
    columns: list[str]
    rows: list[dict[str, Any]]

    def column(self, name: str) -> list[Any]:
        return [row[name] for row in self.rows]


@dataclass
class _DumpSession:
    context: Any
    kernel_config: Any = None
    kernel_name: str | None = None
    runs: int = 0
    plugins_run: list[str] = field(default_factory=list)


class VolatilityRunner:
    """Volatility 3 in this process: one context per dump, plugins by their registered names."""

    def __init__(self, root: Path) -> None:
        import volatility3.plugins
        import volatility3.symbols
        from volatility3 import framework
        from volatility3.framework import constants

        framework.require_interface_version(2, 0, 0)
        self._root = root
        cache = root / "cache"
        cache.mkdir()
        # Offline and with its own identifier cache: no network, and no other session's
        # symbol directories (the cache is keyed by the directories on the symbol path).
        constants.OFFLINE = True
        constants.CACHE_PATH = str(cache)
        plugin_dir = REPO_ROOT / "vol_plugins"
        if plugin_dir.is_dir() and str(plugin_dir) not in volatility3.plugins.__path__:
            # What ``vol -p vol_plugins`` does; and if Volatility's windows package is already
            # imported, what its __init__ would have done: span every windows directory.
            volatility3.plugins.__path__ = [str(plugin_dir)] + list(constants.PLUGINS_PATH)
            windows = sys.modules.get("volatility3.plugins.windows")
            extra = str(plugin_dir / "windows")
            if windows is not None and extra not in windows.__path__:
                windows.__path__.insert(0, extra)
        framework.import_files(volatility3.plugins, True)
        self.plugins = framework.list_plugins()
        self._sessions: dict[Path, _DumpSession] = {}
        self._symbol_dirs: dict[str, Path] = {}

    def run(self, result: SynthResult, plugin: str, **options: Any) -> VolatilityRun:
        from volatility3.framework import automagic, interfaces, plugins
        from volatility3.framework.automagic import stacker

        plugin_class = self.plugins[plugin]
        session = self._session(result)
        context = session.context
        base = f"plugins{session.runs}"
        session.runs += 1
        path = interfaces.configuration.path_join(base, plugin_class.__name__)
        if session.kernel_config is not None:
            context.config.splice(interfaces.configuration.path_join(path, "kernel"),
                                  session.kernel_config)
        for name, value in options.items():
            context.config[interfaces.configuration.path_join(path, name)] = value
        automagics = automagic.choose_automagic(automagic.available(context), plugin_class)
        context.config["automagic.LayerStacker.stackers"] = stacker.choose_os_stackers(
            plugin_class)
        with self._symbol_path():
            constructed = plugins.construct_plugin(context, automagics, plugin_class, base,
                                                   None, None)
        if session.kernel_config is None:
            session.kernel_config = context.config.branch(
                interfaces.configuration.path_join(path, "kernel"))
            session.kernel_name = context.config[interfaces.configuration.path_join(path, "kernel")]
        grid = constructed.run()
        columns = [column.name for column in grid.columns]
        rows: list[dict[str, Any]] = []
        grid.populate(lambda node, _acc: rows.append(dict(zip(columns, node.values))), None)
        session.plugins_run.append(plugin)
        return VolatilityRun(plugin=plugin, columns=columns, rows=rows)

    def context(self, result: SynthResult):
        """The Volatility context of a dump (after at least one run: layers and kernel module)."""
        return self._session(result).context

    def kernel_module(self, result: SynthResult) -> str:
        """The name of the kernel module in the dump's context (after at least one run)."""
        name = self._session(result).kernel_name
        if name is None:
            raise RuntimeError("run a plugin on the dump first")
        return name

    def _session(self, result: SynthResult) -> _DumpSession:
        from volatility3.framework import contexts
        from volatility3.framework.configuration import requirements

        key = Path(result.dump_path)
        if key not in self._sessions:
            context = contexts.Context()
            context.config["automagic.LayerStacker.single_location"] = (
                requirements.URIRequirement.location_from_file(str(key)))
            self._shared_symbols(result)
            self._sessions[key] = _DumpSession(context=context)
        return self._sessions[key]

    def _shared_symbols(self, result: SynthResult) -> Path:
        """A symbols directory per symbol table, shared by every dump made with it: Volatility's
        identifier cache indexes (and hashes) each new directory's tables, seconds for a real
        kernel's; the file is the one synthesize wrote beside the dump."""
        name = result.isf_path.name
        if name not in self._symbol_dirs:
            target = self._root / "symbols" / name.removesuffix(".json.xz")
            relative = result.isf_path.relative_to(result.symbols_dir)
            (target / relative).parent.mkdir(parents=True)
            shutil.copyfile(result.isf_path, target / relative)
            self._symbol_dirs[name] = target
        return self._symbol_dirs[name]

    @contextlib.contextmanager
    def _symbol_path(self):
        """Every shared symbols directory on Volatility's symbol path while automagic runs: its
        identifier cache drops directories no longer on the path, and would re-index them."""
        import volatility3.symbols
        from volatility3.framework import constants

        saved = list(volatility3.symbols.__path__)
        volatility3.symbols.__path__ = [str(d) for d in self._symbol_dirs.values()] + list(
            constants.SYMBOL_BASEPATHS)
        try:
            yield
        finally:
            volatility3.symbols.__path__ = saved


@pytest.fixture(scope="session")
def volatility(tmp_path_factory) -> VolatilityRunner:
    logging.getLogger("volatility3").setLevel(logging.ERROR)
    return VolatilityRunner(tmp_path_factory.mktemp("volatility"))


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
    """Factory: ``plugin_session(dump) -> VolatilitySession`` on the dump's shared context.

    The ``volatility`` fixture runs automagic for every plugin it runs; a VolatilitySession reuses
    the kernel the first run found, so each plugin run costs only the plugin itself.
    """
    from iumdump.analysis.reader import VolatilitySession

    sessions = {}

    def get(dump):
        key = Path(dump.dump_path)
        if key not in sessions:
            try:
                name = volatility.kernel_module(dump)
            except RuntimeError:  # no plugin ran on this dump yet: let one find the kernel
                volatility.run(dump, "windows.pslist.PsList")
                name = volatility.kernel_module(dump)
            sessions[key] = VolatilitySession.for_module(volatility.context(dump), name)
        return sessions[key]

    return get


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
