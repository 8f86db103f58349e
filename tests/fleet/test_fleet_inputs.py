"""DUMP|DIR|GLOB: which files a fleet run takes, once each, and where their reports go."""

from __future__ import annotations

import os

import pytest

from iumdump.errors import InvalidInputError
from iumdump.fleet.inputs import expand, report_id


@pytest.fixture
def evidence(tmp_path):
    root = tmp_path / "evidence"
    for name in ("ws01/memory.dmp", "ws01/notes.txt", "ws02/MEMORY.RAW", "ws02/.hidden.dmp",
                 "deep/a/b/host.vmem", ".cache/x.dmp", "odd/symbols.json.xz"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def test_a_directory_gives_its_dump_files_recursively(evidence):
    found = [os.path.relpath(d.path, evidence) for d in expand([str(evidence)])]
    assert found == ["deep/a/b/host.vmem", "ws01/memory.dmp", "ws02/MEMORY.RAW"]


def test_files_globs_and_duplicates(evidence, tmp_path):
    notes = evidence / "ws01" / "notes.txt"  # named explicitly: taken whatever its extension
    link = tmp_path / "link.dmp"
    link.symlink_to(evidence / "ws01" / "memory.dmp")
    found = expand([str(notes), str(evidence / "ws0*" / "*.dmp"), str(link),
                    str(evidence / "**" / "*.vmem"), str(evidence)])
    assert [os.path.relpath(d.path, evidence) for d in found] == [
        "ws01/notes.txt", "ws01/memory.dmp", "deep/a/b/host.vmem", "ws02/MEMORY.RAW"]
    assert found[1].given == str(evidence / "ws01" / "memory.dmp")


def test_the_output_directory_is_left_out(evidence):
    out = evidence / "ws01"
    found = expand([str(evidence)], exclude=[out])
    assert [os.path.relpath(d.path, evidence) for d in found] == ["deep/a/b/host.vmem",
                                                                  "ws02/MEMORY.RAW"]


@pytest.mark.parametrize("argument, message", [
    ("missing.dmp", "no such file or directory"),
    ("nothing-*.dmp", "no file matches this pattern"),
])
def test_names_that_match_nothing_are_refused(tmp_path, monkeypatch, argument, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError) as refused:
        expand([argument])
    assert str(refused.value) == f"{argument}: {message}"


def test_a_directory_without_dumps_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("no dumps here")
    with pytest.raises(InvalidInputError, match="holds no file with a memory-dump extension"):
        expand([str(tmp_path)])


def test_report_folders_are_readable_stable_and_distinct():
    first = report_id("/cases/WS042/memory.dmp")
    assert first == report_id("/cases/WS042/memory.dmp")
    assert first.startswith("WS042_memory.dmp-") and len(first) == len("WS042_memory.dmp-") + 8
    assert first != report_id("/other/WS042/memory.dmp")
    assert report_id("/x/../../etc/pass wd;rm -rf/\u202e.dmp").replace("-", "").replace(
        "_", "").replace(".", "").isalnum()


def test_an_unreadable_folder_of_the_evidence_is_refused(evidence, monkeypatch):
    """os.walk skipped a folder it could not list (onerror=None), so a machine's dump in a
    folder without read permission was silently left out of the audit. Reading a directory as
    root ignores its mode, hence the refusal is provoked through os.scandir."""
    real = os.scandir
    unreadable = str(evidence / "ws02")

    def scandir(path="."):
        if os.fspath(path) == unreadable:
            raise PermissionError(13, "Permission denied", unreadable)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(InvalidInputError) as refused:
        expand([str(evidence)])
    assert str(refused.value).startswith(f"{unreadable}: cannot read this folder (Permission "
                                         "denied)")
