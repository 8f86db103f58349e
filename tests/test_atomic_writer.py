"""iumdump.atomic, the one writer of every output file: reports, and the emulator's dumps, symbol
tables and truth.json. Each gets the mode a plain open() gives, reaches the disk before it
replaces anything, and leaves neither a half-written file nor a temporary behind.

Regression: there were four writers with four policies — reports at 0644 whatever the umask and
flushed to disk; dumps, symbol tables and truth.json at 0666 less the umask and renamed into place
unflushed, so after a crash a dump's name could stand for data that never reached the disk."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest

from iumdump import atomic
from iumdump.errors import InvalidInputError
from iumdump.report.output import write_reports
from iumdump.slat.synth import synthesize


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def files_under(directory) -> dict[str, int]:
    """Relative path → permission bits of every file below ``directory``."""
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = stat.S_IMODE(os.stat(path).st_mode)
    return found


def test_every_output_is_flushed_and_has_the_mode_open_gives(tmp_path, monkeypatch):
    flushed = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        flushed.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd")
                       else fd)
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", recording_fsync)
    with umask(0o002):
        result = synthesize("credential-guard", tmp_path / "synth", fmt="crash-bitmap",
                            progress=False)
        write_reports({tmp_path / "report.json": "{}\n"})
    modes = files_under(tmp_path)
    assert set(modes) == {"synth/memory.dmp", "synth/truth.json", "report.json",
                          os.path.relpath(next(result.symbols_dir.rglob("*.json.xz")), tmp_path)}
    assert set(modes.values()) == {0o664}  # 0666 less the umask, as open() would give
    if os.path.isdir("/proc/self/fd"):
        # Each file was flushed under its temporary name, then its directory after the rename.
        temporaries = [path for path in flushed if os.path.basename(path).startswith(".")]
        assert len(temporaries) == 4
        assert {os.path.realpath(result.dump_path.parent), os.path.realpath(tmp_path)} \
            <= set(flushed)


def test_a_failure_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "memory.raw"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic.atomic_output(target, what="dump") as out:
            out.write(b"half")
            raise RuntimeError("acquisition interrupted")
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["memory.raw"]


def test_replaces_and_accepts_text(tmp_path):
    target = tmp_path / "truth.json"
    target.write_text("old")
    atomic.write_atomic(target, "{\"é\": 1}\n")
    assert target.read_bytes() == "{\"é\": 1}\n".encode("utf-8")
    assert os.listdir(tmp_path) == ["truth.json"]


def test_a_missing_directory_is_one_line_naming_the_file(tmp_path):
    target = tmp_path / "missing" / "symbols.json.xz"
    with pytest.raises(InvalidInputError, match="cannot create a symbol table in") as err:
        atomic.write_atomic(target, b"x", what="symbol table")
    assert "\n" not in str(err.value) and str(target) in str(err.value)
