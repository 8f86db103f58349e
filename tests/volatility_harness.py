"""Volatility 3 in this process, for the tests and the benchmarks: plugins loaded as ``vol -p``
loads them, one context per dump with its kernel found by one automagic pass, then any number of
plugin runs on it (Volatility's own and iumdump's) without automagic.

- :func:`load_plugins`: Volatility's plugins and iumdump's, by registered name.
- :class:`OpenDump`: one dump's context and kernel; :meth:`OpenDump.rows` runs a plugin.
- :class:`VolatilityHarness` (the ``volatility`` fixture): an :class:`OpenDump` per synthesized
  dump, offline, with a private identifier cache and one symbols directory per symbol table; the
  pool scan of each of its dumps runs once (:func:`scan_once`), and each symbol table's file is
  parsed once for every context that loads it (:func:`share_symbol_tables`).
- :func:`open_dump`: a dump opened as ``iumdump analyze`` opens it (checked, its settings), for
  the benchmarks.

Not part of iumdump: bench/ puts this directory on ``sys.path`` to use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

BASE_CONFIG_PATH = "iumdump.plugins"  # each run is configured under plugins<N>.<Name>


def load_plugins() -> dict[str, type]:
    """Volatility's plugins and iumdump's, by registered name (``windows.secureprocs.SecureProcs``),
    as ``vol -p "$(iumdump plugins)"`` loads them: the plugin directory first on
    ``volatility3.plugins.__path__`` and, where Volatility's ``windows`` package was imported
    before (its ``__init__`` spans the windows directories of the path as it was), first on
    its path too."""
    import volatility3.plugins
    from volatility3 import framework
    from volatility3.framework import constants

    from iumdump.volplugins import plugin_directory

    framework.require_interface_version(2, 0, 0)
    directory = str(plugin_directory())
    if directory not in volatility3.plugins.__path__:
        volatility3.plugins.__path__ = [directory] + list(constants.PLUGINS_PATH)
    windows = sys.modules.get("volatility3.plugins.windows")
    extra = os.path.join(directory, "windows")
    if windows is not None and extra not in windows.__path__:
        windows.__path__.insert(0, extra)
    framework.import_files(volatility3.plugins, True)
    return framework.list_plugins()


def json_value(value):
    """A cell as Volatility's JSON renderer writes it for the types the plugins use: absent
    values become None, Hex its int, everything else itself."""
    from volatility3.framework import interfaces

    if isinstance(value, interfaces.renderers.BaseAbsentValue):
        return None
    return value


@dataclass
class VolatilityRun:
    """The rows one plugin rendered."""

    plugin: str
    columns: list[str]
    rows: list[dict[str, Any]]

    def column(self, name: str) -> list[Any]:
        return [row[name] for row in self.rows]


class OpenDump:
    """One dump opened in one Volatility context: the layers are stacked and the kernel found
    once, then any number of plugins (or iumdump's reader) run against the same context."""

    def __init__(self, context, kernel_module_name: str, plugins: dict[str, type] | None = None,
                 progress_callback: Callable[[float, str], None] | None = None,
                 automagic_path: Callable[[], contextlib.AbstractContextManager] | None = None
                 ) -> None:
        self.context = context
        self.kernel_module_name = kernel_module_name
        self._plugins = plugins or {}
        self._progress_callback = progress_callback
        self._automagic_path = automagic_path or contextlib.nullcontext
        self._runs = [0]  # shared by every view of this dump (see with_progress)

    def with_progress(self, progress_callback) -> "OpenDump":
        """The same dump and context, its plugins reporting to ``progress_callback``."""
        view = OpenDump(self.context, self.kernel_module_name, self._plugins, progress_callback,
                        self._automagic_path)
        view._runs = self._runs
        return view

    def plugin(self, plugin: type | str, **options):
        """``plugin`` (a class, or its registered name) configured on this dump's kernel, with
        ``options`` (requirement name → value, e.g. ``pid=[4]``, ``scan=True``) set in its
        configuration. Each call gets its own configuration path, so no option leaks from one
        run into the next. A plugin with requirements the kernel does not satisfy gets them from
        automagic, as ``vol`` would."""
        from volatility3.framework import automagic, interfaces, plugins
        from volatility3.framework.automagic import stacker

        plugin_class = self._plugins[plugin] if isinstance(plugin, str) else plugin
        self._runs[0] += 1
        base = f"{BASE_CONFIG_PATH}{self._runs[0]}"
        path = interfaces.configuration.path_join(base, plugin_class.__name__)
        kernel_path = interfaces.configuration.path_join(path, "kernel")
        kernel = self.context.modules[self.kernel_module_name]
        self.context.config.splice(kernel_path, self.context.config.branch(kernel.config_path))
        self.context.config[kernel_path] = self.kernel_module_name
        for name, value in options.items():
            self.context.config[interfaces.configuration.path_join(path, name)] = value
        if not plugin_class.unsatisfied(self.context, path):
            return plugin_class(self.context, path, progress_callback=self._progress_callback)
        automagics = automagic.choose_automagic(automagic.available(self.context), plugin_class)
        self.context.config["automagic.LayerStacker.stackers"] = stacker.choose_os_stackers(
            plugin_class)
        with self._automagic_path():
            return plugins.construct_plugin(self.context, automagics, plugin_class, base,
                                            self._progress_callback, None)

    def rows(self, plugin: type | str, **options) -> list[dict]:
        """The plugin's rows as ``{column: value}`` with Volatility's own values (absent values
        stay absent-value objects; :func:`json_value` turns a value into what ``-r json``
        prints)."""
        return self.run(plugin, **options).rows

    def run(self, plugin: type | str, **options) -> VolatilityRun:
        grid = self.plugin(plugin, **options).run()
        names = [column.name for column in grid.columns]
        rows: list[dict] = []
        grid.populate(lambda node, _acc: rows.append(dict(zip(names, node.values))), None)
        name = plugin if isinstance(plugin, str) else plugin.__name__
        return VolatilityRun(plugin=name, columns=names, rows=rows)


def find_kernel(context, location: str, progress_callback=None) -> str:
    """Stack layers over the file at ``location`` and find its Windows kernel as ``vol`` does
    for a Windows plugin (one automagic pass); returns the kernel module's name."""
    from volatility3.framework import automagic, exceptions, interfaces
    from volatility3.framework.automagic import stacker
    from volatility3.plugins.windows import pslist

    configurable = pslist.PsList
    context.config["automagic.LayerStacker.single_location"] = location
    automagics = automagic.choose_automagic(automagic.available(context), configurable)
    context.config["automagic.LayerStacker.stackers"] = stacker.choose_os_stackers(configurable)
    automagic.run(automagics, context, configurable, "harness", progress_callback)
    path = interfaces.configuration.path_join("harness", configurable.__name__)
    unsatisfied = configurable.unsatisfied(context, path)
    if unsatisfied:
        raise exceptions.UnsatisfiedException(unsatisfied)
    return context.config[interfaces.configuration.path_join(path, "kernel")]


# Contexts whose pool scans are kept (id → {kernel module: (objects, the error that ended it)}).
_SCANS: dict[int, dict[str, tuple[list, Exception | None]]] = {}


def scan_once(context) -> None:
    """Make Volatility's process pool scan (``PsScan.scan_processes``, which windows.psscan and
    iumdump's ``--scan`` both call) run once on ``context`` and hand later callers the same
    objects, filtered by each caller's ``filter_func``, and the same exception where the scan
    ended in one. The dumps are read-only, so a second scan of one context can only find what
    the first found; the tests run several plugins with ``--scan`` on every dump, and a scan is
    most of each run. Other contexts (``iumdump analyze``'s, the benchmarks') scan as ever."""
    from volatility3.plugins.windows import psscan

    if not getattr(psscan.PsScan.scan_processes, "iumdump_scan_once", False):
        scan = psscan.PsScan.scan_processes.__func__

        def scan_processes(cls, context, kernel_module_name, filter_func=lambda _: False):
            kept = _SCANS.get(id(context))
            if kept is None:
                yield from scan(cls, context, kernel_module_name, filter_func)
                return
            if kernel_module_name not in kept:
                found: list = []
                try:
                    found.extend(scan(cls, context, kernel_module_name))
                    kept[kernel_module_name] = (found, None)
                except Exception as excp:  # noqa: BLE001 - handed on to every caller
                    kept[kernel_module_name] = (found, excp)
            found, error = kept[kernel_module_name]
            for proc in found:
                if not filter_func(proc):
                    yield proc
            if error is not None:
                raise error

        scan_processes.iumdump_scan_once = True
        psscan.PsScan.scan_processes = classmethod(scan_processes)
    _SCANS.setdefault(id(context), {})


_PARSED_TABLES: dict[bytes, dict] = {}  # sha256 of an ISF file → its parsed JSON


class _ParsedOnce:
    """Stands in for the ``json`` module while Volatility loads one symbol table: the table's
    JSON as parsed for an earlier context when the file's bytes are the same."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def load(self, stream, **options):
        import json

        if self._key is None:
            return json.load(stream, **options)
        if self._key not in _PARSED_TABLES:
            _PARSED_TABLES[self._key] = json.load(stream, **options)
        return _PARSED_TABLES[self._key]

    def __getattr__(self, name: str):
        import json

        return getattr(json, name)


def share_symbol_tables() -> None:
    """Make Volatility parse each symbol table file once per test session, however many contexts
    load it (one per dump: some 30 load a real kernel's table, megabytes of JSON each, which every
    context then kept, and freeing them made the end of a run last seconds). Volatility 3 only
    reads an ISF document (``framework/symbols/intermed.py`` never writes to it), so the contexts
    can share one parsed copy; the file is still opened, and a file of other bytes is parsed."""
    import hashlib
    import urllib.parse
    import urllib.request

    from volatility3.framework.symbols import intermed

    table = intermed.IntermediateSymbolTable
    if getattr(table.__init__, "iumdump_parsed_once", False):
        return
    load = table.__init__

    def __init__(self, context, config_path, name, isf_url, *args, **kwargs):
        key = None
        parsed = urllib.parse.urlparse(isf_url)
        if parsed.scheme == "file":
            with contextlib.suppress(OSError):
                path = urllib.request.url2pathname(parsed.path)
                key = hashlib.sha256(Path(path).read_bytes()).digest()
        saved = intermed.json
        intermed.json = _ParsedOnce(key)
        try:
            load(self, context, config_path, name, isf_url, *args, **kwargs)
        finally:
            intermed.json = saved

    __init__.iumdump_parsed_once = True
    table.__init__ = __init__


class VolatilityHarness:
    """Volatility 3 in this process for the tests: offline, with its own identifier cache, one
    :class:`OpenDump` per synthesized dump (kernel found once, pool scanned once), plugins by
    registered name."""

    def __init__(self, root: Path) -> None:
        from volatility3.framework import constants

        self._root = root
        cache = root / "cache"
        cache.mkdir()
        # Offline and with its own identifier cache: no network, and no other session's
        # symbol directories (the cache is keyed by the directories on the symbol path).
        constants.OFFLINE = True
        constants.CACHE_PATH = str(cache)
        self.plugins = load_plugins()
        share_symbol_tables()
        self._dumps: dict[Path, OpenDump] = {}
        self._symbol_dirs: dict[str, Path] = {}

    def dump(self, result) -> OpenDump:
        """The dump of a :class:`iumdump.slat.synth.SynthResult` (or anything with its
        ``dump_path``, ``isf_path`` and ``symbols_dir``), opened once."""
        from volatility3.framework import contexts
        from volatility3.framework.configuration import requirements

        key = Path(result.dump_path)
        if key not in self._dumps:
            self._shared_symbols(result)
            context = contexts.Context()
            with self._symbol_path():
                name = find_kernel(context,
                                   requirements.URIRequirement.location_from_file(str(key)))
            scan_once(context)  # the harness keeps its contexts: their ids stay theirs
            self._dumps[key] = OpenDump(context, name, self.plugins, None, self._symbol_path)
        return self._dumps[key]

    def run(self, result, plugin: str, **options: Any) -> VolatilityRun:
        """Volatility's plugin ``plugin`` (its registered name) on the dump of ``result``."""
        return self.dump(result).run(plugin, **options)

    def close(self) -> None:
        """Let go of every dump's context, and of what Volatility's caches keep of them."""
        from iumdump.analysis.volatility_env import release_volatility_caches

        for dump in self._dumps.values():
            _SCANS.pop(id(dump.context), None)
        self._dumps.clear()
        release_volatility_caches()

    def context(self, result):
        return self.dump(result).context

    def kernel_module(self, result) -> str:
        return self.dump(result).kernel_module_name

    def _shared_symbols(self, result) -> Path:
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


def open_dump(path: str | os.PathLike, symbol_dirs: Iterable[str] = (), *,
              progress_callback=None, offline: bool = True) -> OpenDump:
    """Open the dump at ``path`` as ``iumdump analyze`` does (checked, one automagic pass, the
    symbol tables under ``symbol_dirs`` first, as ``vol -s``). Raises
    :class:`iumdump.errors.Error` subclasses (e.g. DumpFormatError) with one-line messages when
    it is not a readable Windows dump."""
    from iumdump.analysis.engine import open_kernel
    from iumdump.analysis.preflight import inspect_dump
    from iumdump.analysis.volatility_env import volatility_settings

    dump = inspect_dump(path)
    with volatility_settings(list(symbol_dirs), offline):
        kernel = open_kernel(dump, offline=offline, progress_callback=progress_callback)
    return OpenDump(kernel.context, kernel.kernel_module_name, load_plugins(), progress_callback)
