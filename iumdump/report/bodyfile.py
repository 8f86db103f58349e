"""report.body: the timeline of a report as a Sleuth Kit body file, for mactime, plaso and the
timeline tools that read it.

Format (The Sleuth Kit wiki, "Body file", https://wiki.sleuthkit.org/index.php?title=Body_file):
TSK 3.x writes one line per item, eleven ``|``-separated fields

    MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime

with the times in Unix seconds; mactime needs at least one of them non-zero and prints the other
fields as they are (it lists a zero time too, as 0000-00-00, unless given a start date:
``mactime -b report.body -d -y 1970-01-02``). Every field is filled here: mactime skips a
line with an empty one, and plaso's parser (log2timeline/plaso, ``plaso/parsers/bodyfile.py``)
fails on an empty inode. So: MD5 ``0`` (TSK's "not hashed"), inode the PID (``0`` for
a finding about the machine), mode ``-/----------`` (TSK's mode string of an entry with no file
type), UID, GID and size ``0``, and ``0`` for each time an event does not have (as fls writes a
missing crtime).

What goes in, each its own line:

- the creation (crtime, ``b``) and exit (mtime, ``m``, as Volatility's timeliner places an exit) of
  every secure, masquerading and enclave-host process, with the verdict, trustlet identity and
  image path in the name;
- every finding, placed at the time of the process it is about — its exit for a finding about an
  exit, else its creation — or, with no such time (a finding about the machine, an unreadable
  CreateTime), at the start of the analysis in ctime (``c``: when the statement was recorded), so
  that no finding is left out.

A body file counts Unix seconds, and mactime drops a time that is not after 1970-01-01 (it
takes 0 for "none" and skips what precedes its start date). A FILETIME before that (smear or
forgery: no Windows ran then) is therefore never written as such: the event goes at the start of
the analysis in ctime, its recorded time in the name, and the findings about that process too.

Names are text from the dump: characters that do not print are written as visible escapes
(``\\x07``, ``\\u202e``), and ``%`` and ``|`` as ``%25`` and ``%7C``, which mactime decodes back
(it splits each line at ``|`` and then decodes ``%XX``); a name therefore never adds a field or
a line. plaso takes the MD5 from the front of a line and the other nine fields from its end, so
a name keeps its place there too; it decodes ``\\xNN`` (control characters), ``\\|`` and
``\\\\`` in a name but not ``%XX``, so it shows ``%7C`` and ``%25`` as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from .model import Report, verdict_text
from .text import hidden_escape

MD5_NONE = "0"
MODE_NO_FILE_TYPE = "-/----------"
NO_TIME = 0
TIMELINE_VERDICTS = ("secure", "masquerade", "enclave-host")
EXIT_FINDINGS = ("secure-process-exited", "exited-process")


@dataclass(frozen=True)
class BodyLine:
    """One line: a name and its times (Unix seconds, 0 when the event has none)."""

    name: str
    inode: int = 0
    atime: int = NO_TIME
    mtime: int = NO_TIME
    ctime: int = NO_TIME
    crtime: int = NO_TIME

    def render(self) -> str:
        fields = (MD5_NONE, escape_name(self.name), str(self.inode), MODE_NO_FILE_TYPE, "0", "0",
                  "0", str(self.atime), str(self.mtime), str(self.ctime), str(self.crtime))
        return "|".join(fields)


def escape_name(text: str) -> str:
    """A name that is one field of one line, readable as written and decoded back by mactime
    (backslashes stay single: NT paths read as paths)."""
    percent = {"%": "%25", "|": "%7C"}
    return "".join(percent.get(char) or hidden_escape(char) or char for char in text)


def unix_seconds(iso: str | None) -> int | None:
    """``2024-05-14T08:02:15Z`` → Unix seconds; None stays None."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc)
               .timestamp())


def _describe(process: dict[str, Any]) -> str:
    name = process["name"] if process["name"] is not None else "<unreadable name>"
    pid = process["pid"] if process["pid"] is not None else "unreadable"
    parts = [f"{process['verdict']} process {name} (PID {pid}, EPROCESS {process['offset']:#x})"]
    if verdict_text(process) != process["verdict"]:  # qualified as the reports qualify it
        parts.append(f"verdict {verdict_text(process)}")
    if process["linked"] is False:
        parts.append("unlinked")
    elif process["linked"] is None:
        parts.append("list membership unknown")
    identity = process.get("trustlet_identity")
    if identity and process["secure"]:
        parts.append(f"trustlet {identity['id']}" + (f" {identity['name']}" if identity["name"]
                                                      else "")
                     + (" (inferred from image path)" if identity["basis"] == "inferred"
                        else ""))
    if process.get("image_path"):
        parts.append(f"image {process['image_path']}")
    return ", ".join(parts)


def body_seconds(iso: str | None) -> int | None:
    """Unix seconds of a time a body file can hold (after 1970-01-01), else None."""
    seconds = unix_seconds(iso)
    return seconds if seconds is not None and seconds > 0 else None


def lines(report: Report) -> Iterator[BodyLine]:
    """The process events, then the findings, in report order."""
    by_offset = {p["offset"]: p for p in report.processes}
    analysed = body_seconds(report.analysis.get("started")) or NO_TIME
    for process in report.processes:
        if process["verdict"] not in TIMELINE_VERDICTS:
            continue
        inode = process["pid"] or 0
        for event, key, field in (("created", "create_time", "crtime"),
                                  ("exited", "exit_time", "mtime")):
            when = process.get(key)
            if when is None:
                continue
            name = f"iumdump: {_describe(process)} {event}"
            seconds = body_seconds(when)
            if seconds is not None:
                yield BodyLine(name, inode, **{field: seconds})
            else:
                yield BodyLine(f"{name} (recorded as {when}; placed at the time of analysis)",
                               inode, ctime=analysed)
    for finding in report.findings:
        process = by_offset.get(finding.get("offset"))
        name = f"iumdump finding [{finding['severity']}] {finding['kind']}: {finding['message']}"
        inode = finding["pid"] or 0
        created = body_seconds(process.get("create_time")) if process else None
        exited = body_seconds(process.get("exit_time")) if process else None
        if finding["kind"] in EXIT_FINDINGS and exited is not None:
            yield BodyLine(name, inode, mtime=exited)
        elif created is not None:
            yield BodyLine(name, inode, crtime=created)
        else:
            yield BodyLine(name + " (placed at the time of analysis)", inode, ctime=analysed)


def render(report: Report) -> str:
    return "".join(line.render() + "\n" for line in lines(report))
