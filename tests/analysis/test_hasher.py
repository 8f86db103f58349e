"""The evidence hash runs in a child process; these hold it to hashlib and to one-line errors."""

from __future__ import annotations

import hashlib
import os

import pytest

from iumdump.analysis.hasher import Hasher
from iumdump.analysis.preflight import DumpFile
from iumdump.errors import InvalidInputError
from iumdump.hashing import CHUNK


def _dump_file(path, size=None) -> DumpFile:
    info = os.stat(path)
    return DumpFile(path=path, given=str(path), size=info.st_size if size is None else size,
                    format="raw", mtime_ns=info.st_mtime_ns, device=info.st_dev, inode=info.st_ino)


def test_digest_equals_hashlib_across_chunk_boundaries(tmp_path):
    path = tmp_path / "dump.raw"
    data = os.urandom(CHUNK + 4097)  # a full chunk and a ragged tail
    path.write_bytes(data)
    hasher = Hasher(_dump_file(path))
    assert hasher.result(quiet=True) == hashlib.sha256(data).hexdigest()
    assert hasher.done == len(data)


def test_a_file_that_cannot_be_read_is_one_line_bad_input(tmp_path):
    """The child reports the OSError; the parent turns it into the CLI's one-line error."""
    hasher = Hasher(_dump_file(tmp_path, size=4096))  # a directory: open() fails in the child
    with pytest.raises(InvalidInputError, match="cannot read") as caught:
        hasher.result(quiet=True)
    assert "\n" not in str(caught.value)


def test_a_file_that_changed_size_is_reported(tmp_path):
    path = tmp_path / "dump.raw"
    path.write_bytes(b"\x01" * 8192)
    hasher = Hasher(_dump_file(path, size=4096))  # the size seen before analysis was smaller
    with pytest.raises(InvalidInputError, match="changed size while being hashed"):
        hasher.result(quiet=True)


def _hash_in_daemon(path: str, results) -> None:
    """Body of a daemonic child (what a Dask worker is by default): Hasher must still work."""
    try:
        hasher = Hasher(_dump_file(path))
        results.put(("ok", hasher.result(quiet=True), type(hasher._process).__name__))
    except Exception as exc:  # reported to the test, which fails with it
        results.put(("error", repr(exc), None))


def test_a_daemonic_process_hashes_in_a_thread(tmp_path):
    """Regression: a daemonic process may not start children, so the evidence hash failed
    ('daemonic processes are not allowed to have children') in every Dask worker started with
    distributed's default daemon setting — each dump of a fleet run on such a cluster."""
    import multiprocessing

    path = tmp_path / "dump.raw"
    data = os.urandom(3 * 4096)
    path.write_bytes(data)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_hash_in_daemon, args=(str(path), results), daemon=True)
    child.start()
    outcome = results.get(timeout=60)
    child.join(60)
    assert outcome == ("ok", hashlib.sha256(data).hexdigest(), "Thread")
