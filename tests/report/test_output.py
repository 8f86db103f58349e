"""Reports are written atomically and never overwrite one another unasked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iumdump.errors import InvalidInputError, ReportExistsError
from iumdump.report import output


def test_writes_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    output.write_atomic(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert os.listdir(tmp_path) == ["report.json"]


def test_existing_reports_refused_before_anything_is_written(tmp_path):
    first, second = tmp_path / "report.json", tmp_path / "report.md"
    second.write_text("old")
    with pytest.raises(ReportExistsError, match="pass --force"):
        output.write_reports({first: "new", second: "new"})
    assert not first.exists()  # refused up front: no half-written set
    assert second.read_text() == "old"


def test_force_replaces(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    output.write_reports({target: "new"}, force=True)
    assert target.read_text() == "new"


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", broken_fsync)
    with pytest.raises(InvalidInputError, match="No space left on device"):
        output.write_reports({target: "new"}, force=True)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.html"]


def test_directory_in_the_way(tmp_path):
    (tmp_path / "report.json").mkdir()
    with pytest.raises(InvalidInputError, match="is a directory"):
        output.check_targets([tmp_path / "report.json"], force=True)


def test_prepare_directory(tmp_path):
    output.prepare_directory(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InvalidInputError, match="not a directory"):
        output.prepare_directory(blocker)


def test_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        output.write_atomic(Path(tmp_path / "r.json"), b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o640


def test_ctrl_c_while_a_set_is_written_finishes_the_set_first(tmp_path, monkeypatch):
    """Ctrl-C between two files of a set left report.json without report.md and report.html
    (seen with ``iumdump fleet``: a dump recorded as interrupted beside a lone report.json). The
    interrupt now waits until the set is written, then stops the run as before."""
    import signal

    from iumdump import atomic

    written = []
    real = atomic.write_atomic

    def write_then_interrupt(path, data, **kwargs):
        real(path, data, **kwargs)
        written.append(Path(path).name)
        if len(written) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends on Ctrl-C

    monkeypatch.setattr(output, "write_atomic", write_then_interrupt)
    files = {tmp_path / name: "x" for name in ("report.json", "report.md", "report.html")}
    with pytest.raises(KeyboardInterrupt):
        output.write_reports(files)
    assert written == ["report.json", "report.md", "report.html"]
    assert sorted(os.listdir(tmp_path)) == ["report.html", "report.json", "report.md"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
