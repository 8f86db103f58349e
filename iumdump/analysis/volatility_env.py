"""Volatility's process-wide environment for one analysis: its symbol path, cache, offline mode
and logging (:func:`volatility_settings`, which restores them afterwards; the logs are kept for
the report instead of printed), what its caches keep of an analysis let go afterwards
(:func:`release_volatility_caches`) — and where Volatility 3 may write: never into the analyst's
symbol directories.

Volatility 3 (2.28, ``framework/symbols/windows/pdbutil.py``) looks a kernel's symbol table up
in its identifier cache (``CACHE_PATH/identifier.cache``, built from every ISF file on
``volatility3.symbols.__path__``). When the table is not there — missing, or present but not
indexable because it is corrupt or describes another kernel — ``download_pdb_isf`` walks the
symbol path *in order*, opens ``<dir>/windows/<pdb>/<GUID>-<AGE>.json.xz`` **for writing** in the
first directory where it can, and **deletes** that file when the download or conversion fails.
``vol -s DIR`` and ``iumdump analyze -s DIR`` put the analyst's directory first, so a damaged
table there was truncated and removed — with ``--offline`` too, because the offline check
(``layers/resources.py``, ``OfflineHandler``) only refuses the HTTP request after the file was
opened. ``constants.SYMBOL_BASEPATHS`` ends with ``CACHE_PATH/symbols``, where Volatility keeps
what it downloads when no earlier directory is writable.

iumdump therefore puts a directory of its own first on the symbol path, so Volatility's writes
and deletions land there:

- :class:`PrivateDirectory` (``iumdump analyze``, and everything run inside
  :func:`volatility_settings`) is a fresh temporary directory per run, the symbol output
  directory; a table Volatility downloads into it is handed back
  (:meth:`PrivateDirectory.downloaded_tables`) before the directory is removed. It is also
  Volatility's ``CACHE_PATH`` (what Volatility downloads is removed with it), but the identifier
  and ISF validation caches outlive the run, in iumdump's own cache ``<cache>/iumdump/volatility3``
  beside Volatility's ``<cache>/volatility3``: indexing and validating a real kernel's table
  costs Volatility about 4 seconds per run without them (``iumdump analyze --offline`` of a
  32 MiB dump with the real 19041 table, fresh home: 5.7 s, then 1.5 and 1.9 s warm). There
  is one identifier cache per symbol path, so that runs with other ``-s`` directories cannot
  delete its entries, reached through a symbolic link, so that Volatility cannot delete it;
  it starts as a read-only copy of Volatility's own (:mod:`.volatility_cache` has the details;
  a temporary one is used when the cache cannot be written). :func:`index_symbol_tables`
  indexes it before automagic, one run at a time.
- :func:`protect_symbol_directories` (the plugins, at import: under ``vol`` they are imported
  after ``-s`` and ``--cache-path`` took effect and before automagic looks for the kernel) moves
  Volatility's own download directory, ``CACHE_PATH/symbols``, to the front of the symbol path,
  or a temporary directory when that one is not writable.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from .volatility_cache import (IDENTIFIERS_FILENAME, VALIDATIONS_FILENAME, SymbolPathCache,
                               ValidationCache, copy_database, cache_root, prune, writable)

ISF_SUFFIXES = (".json", ".json.xz", ".json.gz", ".json.bz2")  # Volatility's ISF_EXTENSIONS


class PrivateDirectory:
    """A temporary directory for one analysis — Volatility's symbol output, its cache directory
    (``CACHE_PATH``) and a link to the dump when Volatility cannot open its path — and the
    caches it shares with other runs (:mod:`.volatility_cache`): ``cache/identifier.cache`` is a
    symbolic link to the identifier cache of ``search_path`` (the symbol path after the private
    output directory). :meth:`close` removes the temporary directory."""

    def __init__(self, volatility_cache: str, search_path: Sequence[str]) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="iumdump-volatility-"))
        self.symbols = self.path / "symbols"
        self.symbols.mkdir()
        self.cache = self.path / "cache"
        self.cache.mkdir()
        self._seed = Path(volatility_cache) / IDENTIFIERS_FILENAME
        self.shared: SymbolPathCache | None = None
        self._validations: ValidationCache | None = None
        root = cache_root(Path(volatility_cache))
        if root is not None:
            try:
                self.shared = SymbolPathCache(root, search_path)
                (self.cache / IDENTIFIERS_FILENAME).symlink_to(self.shared.identifiers)
            except OSError:  # no symbolic links here: a private index, as when unwritable
                if self.shared is not None:
                    self.shared.close()
                    self.shared = None
            else:
                self._validations = ValidationCache(root)
                prune(root, keep=self.shared.directory)
        if self.shared is None:
            copy_database(self._seed, self.cache / IDENTIFIERS_FILENAME)

    def index(self, progress_callback=None) -> None:
        """Index the symbol path into the shared identifier cache before Volatility looks a
        table up (see :meth:`SymbolPathCache.index`)."""
        if self.shared is not None:
            self.shared.index(self._seed, progress_callback)

    @property
    def validations(self) -> Path:
        """Where Volatility records validated ISF hashes in this run
        (``schemas.cached_validation_filepath``); :meth:`remember_validations` shares them."""
        return self.cache / VALIDATIONS_FILENAME

    def known_validations(self) -> set[str]:
        """The hashes of tables already validated by earlier runs (``schemas`` reads its own file
        once, from Volatility's cache, when ``volatility3.schemas`` is imported)."""
        return self._validations.load() if self._validations is not None else set()

    def remember_validations(self, hashes: set[str]) -> None:
        """Add the hashes of tables validated in this run to the shared validation cache."""
        if self._validations is not None:
            self._validations.merge(hashes)

    def location(self, path: Path) -> str:
        """The URL Volatility opens for the file at ``path``. Volatility's file URLs are UTF-8
        (``urllib.request.url2pathname``), so a name that is not valid UTF-8 is reached through
        a symbolic link here with a plain name (the file itself is opened read-only, as ever)."""
        from volatility3.framework.configuration import requirements

        try:
            os.fsencode(path).decode("utf-8")
        except UnicodeDecodeError:
            link = self.path / ("dump" + "".join(_ascii_suffixes(path)))
            if not link.is_symlink():
                link.symlink_to(path)
            path = link
        return requirements.URIRequirement.location_from_file(str(path))

    def downloaded_tables(self) -> dict[str, bytes]:
        """Symbol tables Volatility downloaded and converted in this run, by their path relative
        to a symbols directory (``windows/ntkrnlmp.pdb/<GUID>-<AGE>.json.xz``)."""
        found: dict[str, bytes] = {}
        for file in sorted(self.symbols.rglob("*")):
            if file.is_file() and file.name.endswith(ISF_SUFFIXES):
                found[file.relative_to(self.symbols).as_posix()] = file.read_bytes()
        return found

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        shutil.rmtree(self.path, ignore_errors=True)


def _ascii_suffixes(path: Path) -> list[str]:
    return [suffix for suffix in path.suffixes if suffix.isascii() and suffix.isprintable()][-2:]


def shared_search_path(symbol_dirs) -> list[str]:
    """The symbol path after the private output directory: the ``-s`` directories, then
    Volatility's own."""
    from volatility3.framework import constants

    return [os.path.abspath(d) for d in symbol_dirs] + list(constants.SYMBOL_BASEPATHS)


_protected: list[str] = []  # the directory protect_symbol_directories put first, once set


def protect_symbol_directories() -> str:
    """Put a writable directory that holds no analyst's files first on Volatility's symbol path
    (see the module docstring); idempotent. Returns that directory."""
    import volatility3.symbols
    from volatility3.framework import constants

    if not _protected:
        target = os.path.abspath(os.path.join(constants.CACHE_PATH, "symbols"))
        if not writable(target):
            target = tempfile.mkdtemp(prefix="iumdump-volatility-symbols-")
            atexit.register(shutil.rmtree, target, True)
        _protected.append(target)
    target = _protected[0]
    current = [os.path.abspath(p) for p in volatility3.symbols.__path__]
    if not current or current[0] != target:
        # A new list: under plain Volatility __path__ *is* constants.SYMBOL_BASEPATHS.
        volatility3.symbols.__path__ = [target] + [p for p in current if p != target]
    return target


# -- the settings of one analysis --------------------------------------------------------------

class _CapturedLogs(logging.Handler):
    """Keeps Volatility's warnings for the report instead of letting them reach stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().strip()
        except Exception:  # a malformed log call must not stop the analysis
            message = str(record.msg)
        if message and message not in self.messages:
            self.messages.append(message)


class VolatilityEnvironment:
    """What :func:`volatility_settings` set up for one analysis: the captured log lines
    (``messages``) and the private directory Volatility writes into (``private``)."""

    def __init__(self, captured: _CapturedLogs, private: PrivateDirectory) -> None:
        self._captured = captured
        self.private = private

    @property
    def messages(self) -> list[str]:
        return self._captured.messages

    def location(self, path: Path) -> str:
        """The URL Volatility opens for the dump at ``path``."""
        return self.private.location(path)

    def downloaded_tables(self) -> dict[str, bytes]:
        """Symbol tables Volatility downloaded in this run (see :class:`PrivateDirectory`)."""
        return self.private.downloaded_tables()


_active: list[VolatilityEnvironment] = []  # innermost volatility_settings last


@contextlib.contextmanager
def volatility_settings(symbol_dirs: Sequence[str], offline: bool
                        ) -> Iterator[VolatilityEnvironment]:
    """Set Volatility's process-wide settings for one analysis and restore them afterwards.

    - Volatility writes nothing of the analyst's: the directory it downloads symbol tables into
      is private to this run and comes first on the symbol path, ahead of the ``-s``
      directories, because Volatility deletes a table it failed to fetch from the first
      writable directory; its cache (``CACHE_PATH``, the ISF validation cache) is iumdump's
      own (the module docstring has the details).
    - The symbol search path is then the ``-s`` directories and Volatility's defaults, as
      ``vol -s``; ``offline`` is ``vol --offline`` (Volatility refuses every download).
    - Logging is captured rather than printed."""
    import volatility3.symbols
    from volatility3 import schemas
    from volatility3.framework import constants

    saved_path = list(volatility3.symbols.__path__)
    saved_offline = constants.OFFLINE
    saved_cache = constants.CACHE_PATH
    saved_validations = schemas.cached_validation_filepath
    captured = _CapturedLogs()
    loggers = [logging.getLogger(name) for name in ("volatility3", "iumdump.analysis",
                                                    "vol_plugins")]
    saved_loggers = [(lg.propagate, lg.level) for lg in loggers]
    search_path = shared_search_path(symbol_dirs)
    private = PrivateDirectory(saved_cache, search_path)
    environment = VolatilityEnvironment(captured, private)
    volatility3.symbols.__path__ = [str(private.symbols)] + search_path
    constants.CACHE_PATH = str(private.cache)
    schemas.cached_validation_filepath = str(private.validations)
    schemas.cached_validations.update(private.known_validations())
    validated_before = set(schemas.cached_validations)
    constants.OFFLINE = bool(offline) or saved_offline
    for logger in loggers:
        logger.addHandler(captured)
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)
    _active.append(environment)
    try:
        yield environment
    finally:
        _active.remove(environment)
        volatility3.symbols.__path__ = saved_path
        constants.OFFLINE = saved_offline
        constants.CACHE_PATH = saved_cache
        schemas.cached_validation_filepath = saved_validations
        for logger, (propagate, level) in zip(loggers, saved_loggers):
            logger.removeHandler(captured)
            logger.propagate = propagate
            logger.setLevel(level)
        private.remember_validations(set(schemas.cached_validations) - validated_before)
        private.close()


def index_symbol_tables(progress_callback=None) -> None:
    """Have Volatility index the symbol path of the innermost :func:`volatility_settings` into
    its shared identifier cache, one run of that path at a time (call before automagic, whose
    own update then finds nothing to write); nothing outside :func:`volatility_settings`."""
    if _active:
        _active[-1].private.index(progress_callback)


def dump_location(path: Path) -> str:
    """The URL Volatility opens for the dump at ``path``: through the innermost
    :func:`volatility_settings`' private directory where one is active (see
    :meth:`PrivateDirectory.location`), else the file's own URL."""
    if _active:
        return _active[-1].location(path)
    from volatility3.framework.configuration import requirements

    return requirements.URIRequirement.location_from_file(str(path))


# Volatility memoises some methods with functools caches on the class (``lru_cache`` keyed by
# the object the method is called on): the objects they keep hold their context.
_CACHE_TYPE = type(functools.lru_cache(maxsize=None)(lambda: None))
_volatility_caches: list = []
_volatility_modules_seen = 0


def release_volatility_caches() -> None:
    """Let go of everything Volatility's process-wide caches keep of finished analyses.

    ``MMVAD_SHORT.get_tag`` (an unbounded ``lru_cache``), ``add_process_layer`` and the layers'
    page-table caches are memoised per object, and each object they keep holds its context —
    the layers and the whole symbol table of the dump it came from. A process that runs
    analysis after analysis (an ``iumdump fleet`` worker) keeps every one: measured, about 37 MB
    more per dump with a real 19041 kernel's table, without bound. Call this between analyses,
    never during one: the caches are cleared (re-scanned for when Volatility has imported new
    modules) and the freed contexts' reference cycles collected at once."""
    global _volatility_modules_seen
    loaded = sum(1 for name in list(sys.modules) if name.startswith("volatility3."))
    if loaded != _volatility_modules_seen:
        _volatility_caches[:] = [
            obj for obj in gc.get_objects() if isinstance(obj, _CACHE_TYPE)
            and (getattr(obj, "__module__", None) or "").startswith("volatility3.")]
        _volatility_modules_seen = loaded
    for cache in _volatility_caches:
        cache.cache_clear()
    gc.collect()
