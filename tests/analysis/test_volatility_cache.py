"""The caches iumdump keeps of Volatility between runs (iumdump/analysis/volatility_cache.py):
runs with other symbol directories, at the same time or one after another, must not undo each
other's index. Every test points Volatility's CACHE_PATH (in-process) or HOME/XDG_CACHE_HOME
(subprocesses) at its own directory: the user's cache is never touched."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from markers import SLOW

from iumdump.analysis import volatility_cache
from iumdump.analysis.volatility_env import index_symbol_tables, volatility_settings
from iumdump.commands.analyze import analyze as run_analysis


@pytest.fixture
def two_copies(synth_dump, tmp_path):
    """The demo dump, and two directories holding copies of its symbol table."""
    dump = synth_dump("credential-guard", "crash-bitmap")
    copies = []
    for name in ("A", "B"):
        shutil.copytree(dump.symbols_dir, tmp_path / name)
        copies.append(tmp_path / name)
    return dump, copies


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Volatility's CACHE_PATH in the test's directory; iumdump's cache is its sibling."""
    from volatility3.framework import constants

    cache = tmp_path / "cache" / "volatility3"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "CACHE_PATH", str(cache))
    return tmp_path / "cache" / "iumdump"


def indexed(root: Path, directory: Path) -> list[tuple[str, str]]:
    """(location, when indexed) of every entry for a file under ``directory``, in every
    identifier cache iumdump keeps (whatever its layout)."""
    found = []
    for database in sorted(root.rglob("identifier.cache")):
        if database.is_symlink():
            continue
        connection = sqlite3.connect(database)
        try:
            found += connection.execute(
                "SELECT location, cached FROM cache WHERE location LIKE ?",
                (Path(directory).as_uri() + "/%",)).fetchall()
        finally:
            connection.close()
    return found


def kernel_identifier(dump) -> bytes:
    from volatility3.framework.automagic import symbol_cache

    table = json.loads(__import__("lzma").decompress(dump.isf_path.read_bytes()))
    return symbol_cache.WindowsIdentifier.get_identifier(table)


def test_another_symbol_directory_does_not_unindex_mine(two_copies, private_cache):
    """Regression: Volatility's SqliteCache.update deletes the entries of every file not on the
    current symbol path, and every run shared one identifier cache, so a run with -s B deleted
    what a run with -s A had indexed (re-indexed next time: ~15 s for a real kernel's table)."""
    dump, (a, b) = two_copies
    run_analysis(str(dump.dump_path), symbol_dirs=[str(a)], offline=True, quiet=True)
    first = indexed(private_cache, a)
    assert len(first) == 1
    run_analysis(str(dump.dump_path), symbol_dirs=[str(b)], offline=True, quiet=True)
    assert indexed(private_cache, a) == first, "the -s B run deleted -s A's entry"
    time.sleep(1.1)  # Volatility's 'cached' column has a resolution of one second
    run_analysis(str(dump.dump_path), symbol_dirs=[str(a)], offline=True, quiet=True)
    assert indexed(private_cache, a) == first, "the second -s A run indexed the table again"


@SLOW  # runs iumdump analyze as a program
def test_a_run_between_my_index_and_my_lookup_cannot_unindex_my_table(two_copies,
                                                                        private_cache,
                                                                        tmp_path):
    """Regression, the failure seen in a fleet run ("symbol table … was not accepted by
    Volatility"): another run indexing another symbol path between this run's update and its
    lookup deleted this run's entry, so Volatility did not find a good table offline."""
    from volatility3.framework import constants
    from volatility3.framework.automagic import symbol_cache

    dump, (a, b) = two_copies
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    with volatility_settings([str(a)], offline=True):
        index_symbol_tables()
        symbol_cache.SqliteCache(os.path.join(constants.CACHE_PATH, "identifier.cache")
                                 ).update()  # what automagic does next
        other = subprocess.run([sys.executable, "-m", "iumdump.cli", "analyze", "--offline", "-q",
                                "-s", str(b), "-o", str(tmp_path / "out-b"),
                                str(dump.dump_path)], env=env, capture_output=True, text=True,
                               timeout=300)
        assert other.returncode == 0, other.stderr
        found = symbol_cache.SqliteCache(
            os.path.join(constants.CACHE_PATH, "identifier.cache")).find_location(
                kernel_identifier(dump), "windows")
    assert found == (a / dump.isf_path.relative_to(dump.symbols_dir)).as_uri()


@SLOW  # runs iumdump analyze as a program
def test_concurrent_runs_with_the_same_and_other_symbol_directories(two_copies, tmp_path):
    """Three analyses at once on a cold cache, two with -s A and one with -s B (a fleet's
    workers beside an analyst's own run): all succeed, each with its own copy of the table."""
    dump, (a, b) = two_copies
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    runs = []
    for number, directory in enumerate((a, a, b)):
        runs.append((directory, tmp_path / f"out-{number}", subprocess.Popen(
            [sys.executable, "-m", "iumdump.cli", "analyze", "--offline", "-q", "--format", "json",
             "-s", str(directory), "-o", str(tmp_path / f"out-{number}"), str(dump.dump_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for directory, out, process in runs:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        report = json.loads((out / "report.json").read_text())
        assert report["kernel"]["symbols"].startswith(directory.as_uri() + "/")
    root = tmp_path / "cache" / "iumdump"
    assert len(indexed(root, a)) == 1 and len(indexed(root, b)) == 1


def test_volatility_unlinking_its_cache_unlinks_only_the_runs_link(two_copies, private_cache,
                                                                    monkeypatch):
    """SqliteCache unlinks its file on any sqlite3.DatabaseError, 'database is locked' included.
    With the shared cache locked by another process, a run's Volatility removes its own link
    and carries on with a private index; the shared cache and its entries are untouched."""
    dump, (a, _) = two_copies
    run_analysis(str(dump.dump_path), symbol_dirs=[str(a)], offline=True, quiet=True)
    first = indexed(private_cache, a)
    (shared,) = [p for p in private_cache.rglob("identifier.cache") if not p.is_symlink()]
    monkeypatch.setattr(sqlite3, "connect", functools.partial(sqlite3.connect, timeout=0.1))
    holder = sqlite3.connect(shared, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a writer in the middle of its commit
    try:
        with volatility_settings([str(a)], offline=True) as settings:
            from volatility3.framework import constants
            from volatility3.framework.automagic import symbol_cache

            link = Path(constants.CACHE_PATH, "identifier.cache")
            assert link.is_symlink()
            private = symbol_cache.SqliteCache(str(link))  # locked: Volatility unlinks it
            assert not link.is_symlink() and private.find_location(b"x", None) is None
            assert settings.private.shared.identifiers == shared
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert shared.is_file() and indexed(private_cache, a) == first


def test_unused_symbol_paths_are_pruned_but_never_one_in_use(tmp_path):
    """The cache holds at most KEEP_PATHS symbol paths, none unused for UNUSED_DAYS; a path a
    run holds stays, however old."""
    root = tmp_path / "iumdump"
    now = time.time()
    held = volatility_cache.SymbolPathCache(root, ["/held"])
    old = now - (volatility_cache.UNUSED_DAYS + 1) * 86400
    os.utime(held.directory / "use.lock", (old, old))
    recent = []
    for number in range(volatility_cache.KEEP_PATHS + 2):
        cache = volatility_cache.SymbolPathCache(root, [f"/recent/{number}"])
        cache.close()
        when = now - number * 60
        os.utime(cache.directory / "use.lock", (when, when))
        recent.append(cache.directory)
    stale = volatility_cache.SymbolPathCache(root, ["/stale"])
    stale.close()
    os.utime(stale.directory / "use.lock", (old, old))
    try:
        removed = set(volatility_cache.prune(root, now=now))
    finally:
        held.close()
    assert removed == {stale.directory, *recent[volatility_cache.KEEP_PATHS:]}
    assert held.directory.is_dir() and all(d.is_dir() for d in recent[:volatility_cache.KEEP_PATHS])
    assert volatility_cache.SymbolPathCache(root, ["/stale"]).directory.is_dir()  # made again


def test_validation_cache_survives_a_torn_file_and_keeps_both_writers(tmp_path):
    """Volatility rewrites valid_isf.hashcache in place (truncate, then write): a torn file is
    read as empty, and runs merge their hashes into one whole file instead of overwriting."""
    cache = volatility_cache.ValidationCache(tmp_path)
    cache.path.write_text('["0123')
    assert cache.load() == set()
    cache.merge({"a" * 40})
    volatility_cache.ValidationCache(tmp_path).merge({"b" * 40})
    assert json.loads(cache.path.read_text()) and cache.load() == {"a" * 40, "b" * 40}
