"""Where Volatility 3 may write: never into the analyst's symbol directories.

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

- :class:`PrivateDirectory` (``iumdump analyze``, and everything built on
  :func:`iumdump.analysis.session.volatility_settings`) is a fresh temporary directory per run
  holding Volatility's cache (``CACHE_PATH``: identifier cache, ISF validation cache) and the
  symbol output directory. The identifier cache starts as a read-only copy of Volatility's own,
  so tables Volatility already indexed are not read again. A table Volatility downloads into it
  is handed back (:meth:`PrivateDirectory.downloaded_tables`) before the directory is removed.
- :func:`protect_symbol_directories` (the plugins, at import: under ``vol`` they are imported
  after ``-s`` and ``--cache-path`` took effect and before automagic looks for the kernel) moves
  Volatility's own download directory, ``CACHE_PATH/symbols``, to the front of the symbol path,
  or a temporary directory when that one is not writable.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from pathlib import Path

ISF_SUFFIXES = (".json", ".json.xz", ".json.gz", ".json.bz2")  # Volatility's ISF_EXTENSIONS


class PrivateDirectory:
    """A temporary directory for one analysis: Volatility's cache and symbol output, and a link
    to the dump when Volatility cannot open its path. :meth:`close` removes it."""

    def __init__(self, volatility_cache: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="iumdump-volatility-"))
        self.cache = self.path / "cache"
        self.symbols = self.path / "symbols"
        self.cache.mkdir()
        self.symbols.mkdir()
        self._seed_identifier_cache(Path(volatility_cache))

    def _seed_identifier_cache(self, volatility_cache: Path) -> None:
        """Start from a snapshot of Volatility's identifier cache, read-only (SQLite's backup
        API, so a ``vol`` writing it meanwhile cannot hand us half a file); empty on any error."""
        from volatility3.framework import constants

        source = volatility_cache / constants.IDENTIFIERS_FILENAME
        target = self.cache / constants.IDENTIFIERS_FILENAME
        if not source.is_file():
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
