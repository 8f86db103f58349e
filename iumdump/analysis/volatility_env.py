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
  :func:`volatility_settings`) is a fresh temporary directory per run,
  the symbol output directory; a table Volatility downloads into it is handed back
  (:meth:`PrivateDirectory.downloaded_tables`) before the directory is removed. Volatility's
  cache (``CACHE_PATH``: the identifier cache and the ISF validation cache) is iumdump's own,
  ``<cache>/iumdump/volatility3`` beside Volatility's ``<cache>/volatility3``: indexing and
  validating a real kernel's table takes Volatility some 15 seconds, which a cache thrown away
  after each run would cost every run. It starts as a read-only copy of Volatility's identifier
  cache, and holds nothing but Volatility's index of the tables (a temporary one is used when it
  cannot be written).
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
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Iterator, Sequence

ISF_SUFFIXES = (".json", ".json.xz", ".json.gz", ".json.bz2")  # Volatility's ISF_EXTENSIONS
VALIDATIONS_FILENAME = "valid_isf.hashcache"  # volatility3/schemas/__init__.py


class PrivateDirectory:
    """A temporary directory for one analysis — Volatility's symbol output, and a link to the
    dump when Volatility cannot open its path — and the cache directory Volatility is given.
    :meth:`close` removes the temporary directory."""

    def __init__(self, volatility_cache: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="iumdump-volatility-"))
        self.symbols = self.path / "symbols"
        self.symbols.mkdir()
        self.cache = own_cache(Path(volatility_cache))
        if self.cache is None:
            self.cache = self.path / "cache"
            self.cache.mkdir()
        self._seed_identifier_cache(Path(volatility_cache))

    def _seed_identifier_cache(self, volatility_cache: Path) -> None:
        """Start from a snapshot of Volatility's identifier cache, read-only (SQLite's backup
        API, so a ``vol`` writing it meanwhile cannot hand us half a file); empty on any error."""
        from volatility3.framework import constants

        source = volatility_cache / constants.IDENTIFIERS_FILENAME
        target = self.cache / constants.IDENTIFIERS_FILENAME
        if not source.is_file() or target.exists():
            return
        try:
            reader = sqlite3.connect(f"file:{urllib.parse.quote(str(source))}?mode=ro", uri=True)
            try:
                writer = sqlite3.connect(target)
                try:
                    reader.backup(writer)
                finally:
                    writer.close()
            finally:
                reader.close()
        except (sqlite3.Error, OSError):
            target.unlink(missing_ok=True)

    @property
    def validations(self) -> Path:
        """Volatility's cache of validated ISF hashes (``schemas.cached_validation_filepath``)."""
        return self.cache / VALIDATIONS_FILENAME

    def known_validations(self) -> set[str]:
        """The hashes of tables already validated, as ``schemas.load_cached_validations`` reads
        them (it does so once, from Volatility's own cache, when ``volatility3.schemas`` is
        imported)."""
        try:
            with open(self.validations, encoding="utf-8") as handle:
                found = json.load(handle)
        except (OSError, ValueError):
            return set()
        return {item for item in found if isinstance(item, str)} if isinstance(found, list) \
            else set()

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
        shutil.rmtree(self.path, ignore_errors=True)


def own_cache(volatility_cache: Path) -> Path | None:
    """iumdump's cache directory for Volatility, ``<cache>/iumdump/volatility3`` beside
    Volatility's ``<cache>/volatility3``; None when it cannot be created or written."""
    target = volatility_cache.parent / "iumdump" / "volatility3"
    return target if _writable(str(target)) else None


def _ascii_suffixes(path: Path) -> list[str]:
    return [suffix for suffix in path.suffixes if suffix.isascii() and suffix.isprintable()][-2:]


def symbol_search_path(private: PrivateDirectory, symbol_dirs) -> list[str]:
    """The private output directory first, then ``-s`` directories, then Volatility's own."""
    from volatility3.framework import constants

    return ([str(private.symbols)] + [os.path.abspath(d) for d in symbol_dirs]
            + list(constants.SYMBOL_BASEPATHS))


_protected: list[str] = []  # the directory protect_symbol_directories put first, once set


def protect_symbol_directories() -> str:
    """Put a writable directory that holds no analyst's files first on Volatility's symbol path
    (see the module docstring); idempotent. Returns that directory."""
    import volatility3.symbols
    from volatility3.framework import constants

    if not _protected:
        target = os.path.abspath(os.path.join(constants.CACHE_PATH, "symbols"))
        if not _writable(target):
            target = tempfile.mkdtemp(prefix="iumdump-volatility-symbols-")
            atexit.register(shutil.rmtree, target, True)
        _protected.append(target)
    target = _protected[0]
    current = [os.path.abspath(p) for p in volatility3.symbols.__path__]
    if not current or current[0] != target:
        # A new list: under plain Volatility __path__ *is* constants.SYMBOL_BASEPATHS.
        volatility3.symbols.__path__ = [target] + [p for p in current if p != target]
    return target


def _writable(directory: str) -> bool:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


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
    private = PrivateDirectory(saved_cache)
    environment = VolatilityEnvironment(captured, private)
    volatility3.symbols.__path__ = symbol_search_path(private, symbol_dirs)
    constants.CACHE_PATH = str(private.cache)
    schemas.cached_validation_filepath = str(private.validations)
    schemas.cached_validations.update(private.known_validations())
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
        private.close()


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
