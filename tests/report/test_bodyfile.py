"""report.body: a Sleuth Kit 3.x body file (MD5|name|inode|mode_as_string|UID|GID|size|atime|
mtime|ctime|crtime) of the secure processes' creation and exit and of the findings, read back by
the real ``mactime`` (Debian package sleuthkit; those tests skip where it is not installed)."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from datetime import datetime

import pytest
from report_fixtures import analyze_dump, credential_guard_machine, make_report, process

from iumdump.report import bodyfile

MACTIME = shutil.which("mactime")
needs_mactime = pytest.mark.skipif(MACTIME is None,
                                   reason="mactime (Debian package sleuthkit) is not installed")
HOSTILE = "a|b%7C\nc\u202e"  # a pipe, an encoded pipe, a newline, a right-to-left override
TIMELINE_VERDICTS = ("secure", "masquerade", "enclave-host")


def fields_of(text: str) -> list[list[str]]:
    rows = [line.split("|") for line in text.splitlines()]
    for row in rows:
        assert len(row) == 11, row
        assert all(value != "" for value in row), row  # every field filled
    return rows


def unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def mactime(path, *arguments: str) -> list[dict[str, str]]:
    """``mactime -b PATH -d -y [DATE]`` (comma separated, ISO 8601 UTC dates) as dicts."""
    done = subprocess.run([MACTIME, "-b", str(path), "-d", "-y", *arguments],
                          capture_output=True, text=True, timeout=60, check=True,
                          env=dict(os.environ, TZ="UTC"))
    return list(csv.DictReader(io.StringIO(done.stdout)))


def test_every_line_has_eleven_filled_fields_and_one_time():
    procs, accounting = credential_guard_machine()
    report = make_report(procs, accounting)
    rows = fields_of(bodyfile.render(report))
    # Process events (none of the fixture's processes has times) are left out; every finding
    # is a line, placed at the start of the analysis.
    assert len(rows) == len(report.findings)
    for row in rows:
        assert (row[0], row[3], row[4], row[5], row[6]) == ("0", "-/----------", "0", "0", "0")
        times = [int(value) for value in row[7:]]
        assert sum(1 for value in times if value) == 1
        assert row[9] == str(unix(report.analysis["started"]))  # ctime: when it was recorded
        assert row[1].endswith("(placed at the time of analysis)")


def test_names_never_add_a_field_or_a_line():
    procs, accounting = credential_guard_machine()
    procs.append(process(HOSTILE, 6666, linked=False, secure_state=0x7001,
                         image_path="\\Device\\HarddiskVolume3\\x|y.exe",
                         create_time=133_601_473_310_000_000, exit_time=0))
    text = bodyfile.render(make_report(procs, accounting))
    rows = fields_of(text)
    names = [row[1] for row in rows if "6666" in row[1]]
    assert names and all("a%7Cb%257C\\x0ac\\u202e" in name for name in names)
    assert any("image \\Device\\HarddiskVolume3\\x%7Cy.exe" in name for name in names)
    assert "\u202e" not in text and text.count("\n") == len(rows)


def test_a_verdict_is_qualified_as_the_reports_qualify_it():
    """Regression: a notepad.exe whose SecureState word is all ones (analyze: "not counted as a
    secure process", report.md: "secure (implausible)") went into the timeline as a plain
    "secure process"."""
    procs, accounting = credential_guard_machine()
    procs.append(process("notepad.exe", 6100, secure_state=0xFFFF_FFFF_FFFF_FFFF,
                         create_time=133_601_473_310_000_000))
    names = [row[1] for row in fields_of(bodyfile.render(make_report(procs, accounting)))
             if "(PID 6100," in row[1] and row[1].startswith("iumdump: ")]
    assert names and all(name.startswith("iumdump: secure process notepad.exe")
                         and ", verdict secure (implausible)" in name for name in names)


@needs_mactime
def test_mactime_decodes_names_back(tmp_path):
    procs, accounting = credential_guard_machine()
    procs.append(process(HOSTILE, 6666, secure_state=0x7001,
                         create_time=133_601_473_310_000_000, exit_time=0))
    path = tmp_path / "report.body"
    path.write_text(bodyfile.render(make_report(procs, accounting)))
    created = [row for row in mactime(path, "2024-01-01")
               if row["File Name"].startswith("iumdump: secure process a|b%7C\\x0ac\\u202e")]
    assert [(row["Date"], row["Type"], row["Meta"]) for row in created] == \
        [("2024-05-14T08:02:11Z", "...b", "6666")]


@pytest.fixture(scope="module")
def adversarial(synth_dump, tmp_path_factory):
    """(truth, report.json, report.body path) of the adversarial machine."""
    result = synth_dump("adversarial", "crash-bitmap")
    out = tmp_path_factory.mktemp("bodyfile")
    report = analyze_dump(result, out, "json,bodyfile")
    assert sorted(os.listdir(out)) == ["report.body", "report.json"]
    return result.truth, report, out / "report.body"


def test_creation_and_exit_of_secure_masquerading_and_enclave_host_processes(adversarial):
    truth, report, path = adversarial
    rows = fields_of(path.read_text())
    events = {(row[1], row[2]): row for row in rows if row[1].startswith("iumdump: ")}
    expected = [p for p in truth["processes"] if p["verdict"] in TIMELINE_VERDICTS]
    assert len(events) == len(expected) + sum(1 for p in expected if p["exit_time"])
    for process_ in expected:
        mine = {name: row for (name, inode), row in events.items()
                if inode == str(process_["pid"])
                and f"process {process_['name']} (PID {process_['pid']}," in name}
        created = next(row for name, row in mine.items() if name.endswith(" created"))
        assert created[1].startswith(f"iumdump: {process_['verdict']} process")
        assert (created[7:10], created[10]) == (["0", "0", "0"], str(unix(process_["create_time"])))
        if process_["image_path"]:
            assert f"image {process_['image_path']}" in created[1]
        exited = [row for name, row in mine.items() if name.endswith(" exited")]
        if process_["exit_time"]:
            assert [row[8] for row in exited] == [str(unix(process_["exit_time"]))]
        else:
            assert exited == []
    # Every finding is a line, at the time of the process it is about.
    findings = [row for row in rows if row[1].startswith("iumdump finding ")]
    assert len(findings) == len(report["findings"])
    by_pid = {p["pid"]: p for p in truth["processes"]}
    for row, finding in zip(findings, report["findings"]):
        assert row[1].startswith(f"iumdump finding [{finding['severity']}] {finding['kind']}: ")
        anchor = by_pid[finding["pid"]]
        if finding["kind"] in ("secure-process-exited", "exited-process"):
            assert row[8] == str(unix(anchor["exit_time"]))
        else:
            assert row[10] == str(unix(anchor["create_time"]))


@needs_mactime
def test_mactime_sorts_the_timeline(adversarial):
    """The real mactime reads every line (none skipped) and puts each event at its time."""
    truth, report, path = adversarial
    lines = path.read_text().splitlines()
    timeline = mactime(path, "2000-01-01")  # a start date leaves out the zero (unset) times
    assert len(timeline) == len(lines)
    assert [row["Date"] for row in timeline] == sorted(row["Date"] for row in timeline)
    vmsp = next(p for p in truth["processes"] if p["name"] == "vmsp.exe")
    exits = [row for row in timeline if row["Meta"] == str(vmsp["pid"]) and row["Type"] == "m..."]
    assert {row["Date"] for row in exits} == {vmsp["exit_time"]}
    assert any(row["File Name"].startswith("iumdump finding [medium] secure-process-exited")
               for row in exits)
    masquerade = next(row for row in timeline
                      if row["File Name"].startswith("iumdump finding [high] masquerade"))
    fake = next(p for p in truth["processes"] if p["verdict"] == "masquerade")
    assert (masquerade["Date"], masquerade["Type"], masquerade["Meta"]) == \
        (fake["create_time"], "...b", str(fake["pid"]))
    assert all(row["Size"] == "0" and row["Mode"] == "-/----------" for row in timeline)


@needs_mactime
def test_the_documented_mactime_command_lists_each_event_once(adversarial):
    """The README and ``analyze --help`` said ``mactime -b report.body -d -y``: without a start
    date mactime also lists every unset (zero) time, so each event came out a second time dated
    0000-00-00 with the type ``mac.`` — three events that never happened. The documented command
    must give one row per line of the body file, none at time zero."""
    from pathlib import Path

    from iumdump.cli import build_parser

    _, _, path = adversarial
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    helps = build_parser()._subparsers._group_actions[0].choices["analyze"].epilog
    text = " ".join((readme + helps).split())
    documented = re.findall(r"mactime -b \S+ -d -y(?: [0-9-]+)?", text)
    assert len(documented) >= 2
    lines = path.read_text().splitlines()
    for command in set(documented):
        arguments = command.split()[4:]  # what follows -b FILE -d -y
        timeline = mactime(path, *arguments)
        assert len(timeline) == len(lines), command
        assert not [row for row in timeline if row["Date"].startswith("0000")], command


@needs_mactime
def test_a_time_before_1970_is_not_lost(tmp_path):
    """A FILETIME before the Unix epoch (a smeared or forged CreateTime: 1601-01-11) became a
    negative body-file time, which mactime drops: the secure process's creation and the findings
    about it vanished from the timeline. Such a time is now placed at the time of analysis, its
    recorded value in the name, like a finding without a time."""
    procs, accounting = credential_guard_machine()
    procs.append(process("BioIso.exe", 6666, secure_state=0x7001,
                         create_time=10 * 86_400 * 10_000_000, exit_time=0))
    report = make_report(procs, accounting)
    rows = fields_of(bodyfile.render(report))
    assert all(int(value) >= 0 for row in rows for value in row[7:])
    mine = [row for row in rows if row[2] == "6666"]
    created = [row for row in mine if "BioIso.exe" in row[1] and " created" in row[1]]
    assert [row[1].endswith("1601-01-11T00:00:00Z; placed at the time of analysis)")
            for row in created] == [True]
    assert all(row[9] == str(unix(report.analysis["started"])) for row in mine)
    path = tmp_path / "report.body"
    path.write_text(bodyfile.render(report))
    timeline = mactime(path, "1970-01-02")
    assert len(timeline) == len(rows)
    assert sum(1 for row in timeline if row["Meta"] == "6666") == len(mine) > 1
