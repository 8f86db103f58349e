"""What iumdump keeps of Volatility 3's caches between runs, safe for runs at the same time.

Volatility indexes every ISF file on its symbol path in an identifier cache (SQLite,
``framework/automagic/symbol_cache.py``, ``SqliteCache``) and remembers which tables passed
schema validation (``schemas/__init__.py``, ``valid_isf.hashcache``): together about 4 seconds
a run with a real kernel's table (see :mod:`.volatility_env`). Both are worth keeping, but
neither is safe to share as Volatility writes it:

- ``SqliteCache.update`` deletes the entries of every file that is not on the *current*
  process's symbol path, so one cache shared by runs with different ``-s`` directories loses a
  run's entries between its update and its lookup: the kernel's table is then not found, and
  offline the run fails. Hence one identifier cache per symbol path (:class:`SymbolPathCache`,
  ``paths/<key>/identifier.cache``, the key a hash of the path); the run's private download
  directory, first on the path and empty when Volatility indexes, is not part of the key.
- ``SqliteCache`` unlinks its file on any ``sqlite3.DatabaseError`` (``database is locked``
  included) and on a schema version it does not know. Volatility is therefore given a symbolic
  link to the shared file in the run's private directory: what it unlinks is the link. SQLite
  follows the link (journal and lock go with the real file, SQLite >= 3.10).
- Two runs that index at once each hold a write transaction for as long as indexing takes; the
  second one's inserts time out after 5 seconds and are dropped, and its lookup can come before
  the first commits. Runs of one symbol path therefore index one at a time
  (:meth:`SymbolPathCache.index`, an ``flock``), before Volatility's own update, which then has
  nothing left to write.
- ``record_cached_validations`` truncates and rewrites its JSON in place: a reader can see half
  of it, and two writers can interleave. Each run lets Volatility write a private copy, and
  :class:`ValidationCache` merges it into the shared file under a lock and replaces it
  atomically. A lost entry would only cost a validation; a torn file is read as empty.

The cache stays bounded: a symbol path's directory is removed when it has not been used for
:data:`UNUSED_DAYS` or is not among the :data:`KEEP_PATHS` most recently used — never while a
run holds it (:func:`prune`); the validation cache keeps at most :data:`MAX_VALIDATIONS`
hashes (41 bytes each). What Volatility downloads (``CACHE_PATH/data_*.cache``) goes to the
run's private directory and is removed with it; the tables it converts are kept beside the
report. Where ``flock`` is unavailable the same layout is used without the locks and nothing is
pruned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterator, Sequence

try:
    import fcntl
except ImportError:  # Windows: no flock; runs rely on SQLite's own locking
    fcntl = None

from ..atomic import write_atomic
from ..errors import Error

IDENTIFIERS_FILENAME = "identifier.cache"   # volatility3 constants.IDENTIFIERS_FILENAME
VALIDATIONS_FILENAME = "valid_isf.hashcache"  # volatility3/schemas/__init__.py
PATHS_DIR = "paths"
KEEP_PATHS = 16
UNUSED_DAYS = 30
MAX_VALIDATIONS = 4096
LOCK_WAIT_SECONDS = 120.0  # then index without the lock: slower, never stuck behind a hung run
_USE_LOCK = "use.lock"     # held shared by each run of the path; its mtime is the last use
_INDEX_LOCK = "index.lock"


def cache_root(volatility_cache: Path) -> Path | None:
    """iumdump's cache directory for Volatility, ``<cache>/iumdump/volatility3`` beside
    Volatility's ``<cache>/volatility3``; None when it cannot be created or written."""
    target = volatility_cache.parent / "iumdump" / "volatility3"
    return target if writable(target) else None


def writable(directory: str | os.PathLike) -> bool:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def symbol_path_key(search_path: Sequence[str]) -> str:
    """The name of a symbol path's cache: the directories in order, as Volatility's file URLs
    are made from them, and the cache's schema version (another Volatility would unlink it)."""
    from volatility3.framework import constants

    text = json.dumps([constants.CACHE_SQLITE_SCHEMA_VERSION, [str(p) for p in search_path]])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class SymbolPathCache:
    """The shared identifier cache of one symbol path, held (a shared ``flock`` on its
    ``use.lock``) from construction until :meth:`close` so that :func:`prune` leaves it alone."""

    def __init__(self, root: Path, search_path: Sequence[str]) -> None:
        self.directory = root / PATHS_DIR / symbol_path_key(search_path)
        self._held = _hold(self.directory / _USE_LOCK)
        with contextlib.suppress(OSError):
            os.utime(self.directory / _USE_LOCK)
        description = self.directory / "paths.json"  # for whoever looks in the cache
        if not description.exists():
            with contextlib.suppress(Error, OSError):
                write_atomic(description, json.dumps([str(p) for p in search_path], indent=1))

    @property
    def identifiers(self) -> Path:
        return self.directory / IDENTIFIERS_FILENAME

    def index(self, seed: Path | None, progress_callback: Callable | None = None) -> None:
        """Bring the identifier cache up to date with the symbol path now in force (Volatility's
        own ``SqliteCache.update``), one run of this path at a time; a new cache starts as a copy
        of ``seed`` (Volatility's own identifier cache)."""
        from volatility3.framework.automagic import symbol_cache

        with _locked(self.directory / _INDEX_LOCK, progress_callback):
            if not self.identifiers.exists() and seed is not None:
                copy_database(seed, self.identifiers)
            try:
                cache = symbol_cache.SqliteCache(str(self.identifiers))
            except (sqlite3.Error, OSError):
                return  # Volatility's own update, during automagic, will say why
            try:
                cache.update(progress_callback)
            except (sqlite3.Error, OSError):
                pass  # likewise: the lookup falls back to walking the symbol path
            finally:
                cache._database.close()

    def close(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None


def prune(root: Path, keep: Path | None = None, *, now: float | None = None) -> list[Path]:
    """Remove the caches of symbol paths unused for :data:`UNUSED_DAYS` and those beyond the
    :data:`KEEP_PATHS` most recently used, except ``keep`` and any a run holds. Returns what was
    removed."""
    if fcntl is None:
        return []
    now = time.time() if now is None else now
    try:
        entries = [entry for entry in (root / PATHS_DIR).iterdir() if entry.is_dir()]
    except OSError:
        return []
    entries.sort(key=_last_use, reverse=True)
    removed = []
    for rank, entry in enumerate(entries):
        if keep is not None and entry == keep:
            continue
        if rank < KEEP_PATHS and now - _last_use(entry) < UNUSED_DAYS * 86400:
            continue
        try:
            fd = os.open(entry / _USE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a run holds it
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _last_use(entry: Path) -> float:
    try:
        return (entry / _USE_LOCK).stat().st_mtime
    except OSError:
        return 0.0


def _hold(path: Path) -> int | None:
    """A shared flock on ``path``, which is created; retried when :func:`prune` removed the file
    between our open and our lock (the lock would then be on a file nobody else can find)."""
    if fcntl is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return None
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # pruned between the two calls
            continue
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path, progress_callback: Callable | None = None,
            wait: float = LOCK_WAIT_SECONDS) -> Iterator[bool]:
    """An exclusive flock on ``path`` for the block; after ``wait`` seconds the block runs
    without it (yielding False)."""
    if fcntl is None:
        yield False
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except OSError:
                if time.monotonic() >= deadline:
                    locked = False
                    break
                if progress_callback is not None and not told:
                    progress_callback(0, "Waiting for another run indexing these symbol tables")
                    told = True
                time.sleep(0.1)
        yield locked
    finally:
        os.close(fd)  # releases the lock


def copy_database(source: Path, target: Path) -> None:
    """Copy Volatility's identifier cache to ``target`` (which must not exist), read-only (SQLite's
    backup API, so a ``vol`` writing it meanwhile cannot hand us half a file); the copy appears
    whole or not at all (a hard link of a finished temporary). Nothing on any error."""
    if not source.is_file():
        return
    fd, temporary = tempfile.mkstemp(prefix=".identifier-", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        reader = sqlite3.connect(f"file:{urllib.parse.quote(str(source))}?mode=ro", uri=True)
        try:
            writer = sqlite3.connect(temporary)
            try:
                reader.backup(writer)
            finally:
                writer.close()
        finally:
            reader.close()
        os.link(temporary, target)  # fails if a run without the lock created it meanwhile
    except (sqlite3.Error, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


class ValidationCache:
    """The hashes of ISF tables that passed Volatility's schema validation, shared by all runs
    (``<root>/valid_isf.hashcache``, the format of ``schemas.load_cached_validations``)."""

    def __init__(self, root: Path) -> None:
        self.path = root / VALIDATIONS_FILENAME

    def load(self) -> set[str]:
        return read_hashes(self.path)

    def merge(self, hashes: set[str]) -> None:
        """Add ``hashes``: under a lock, read, unite, replace the file atomically."""
        if not hashes:
            return
        with _locked(self.path.with_name(VALIDATIONS_FILENAME + ".lock"), wait=10.0):
            known = self.load()
            if hashes <= known:
                return
            merged = sorted(hashes) + sorted(known - hashes)
            with contextlib.suppress(Error, OSError):
                write_atomic(self.path, json.dumps(merged[:MAX_VALIDATIONS]))


def read_hashes(path: Path) -> set[str]:
    """The hashes in a validation cache file; none when it is absent, torn or not a list."""
    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return set()
    return {item for item in found if isinstance(item, str)} if isinstance(found, list) \
        else set()
