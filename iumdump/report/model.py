"""The report as data: one JSON-ready dictionary that every renderer reads.

The keys are those of DESIGN §5 (``tool, dump, kernel, processes[], pages[], findings[]``) plus
what an analyst needs to rely on the report: when and how the analysis ran (``analysis``), a
``summary``, and partial markers — ``analysis.partial`` for the whole report, ``partial`` on each
process and page entry, with the reasons beside them. ``iumdump/data/report.schema.json``
describes it; :data:`REPORT_VERSION` changes when a key changes meaning.

Numbers stay numbers (addresses, offsets, handles are integers; the EPROCESS ``offset`` is the
48-bit layer offset Volatility prints as ``Offset(V)``); text from the dump (process names) is kept
exactly as decoded, and each renderer escapes it for its format.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from .. import __version__
from ..analysis.derive import (VERDICTS, ControlGroup, DerivedProcess, ProcessPages,
                               believed_secure, render_process_verdict,
                               render_region_verdict)
from ..analysis.findings import SEVERITIES, Finding, count_by_severity

REPORT_VERSION = "1"
TOOL_NAME = "iumdump"

# Short names for the ten flags, for tables (DESIGN §4 order).
FLAG_SHORT = {
    "IsProtectedProcess": "Protected", "IsWow64Process": "Wow64",
    "IsProcessDeleting": "Deleting", "IsCrossSessionCreate": "CrossSession",
    "IsFrozen": "Frozen", "IsBackground": "Background", "IsStronglyNamed": "StronglyNamed",
    "IsSecureProcess": "Secure", "IsSubsystemProcess": "Subsystem", "IsTrustedApp": "TrustedApp",
}


# The order every report, table and fleet ranking lists severities in.
SEVERITIES_MOST_FIRST = tuple(reversed(SEVERITIES))

# What each severity asks of the analyst, beside its heading in report.md and report.html.
SEVERITY_NOTES = {
    "high": "a likely sign of compromise or tampering; investigate",
    "medium": "unexpected; needs an explanation before the dump is relied on",
    "low": "a limit on what this report can claim, or something unusual",
    "info": "facts about the machine's security posture",
}


def trustlet_id_text(process: Mapping[str, Any]) -> str:
    """The TrustletId cell: as read, ``1 (inferred)`` where only the image path implies it, N/A
    where neither."""
    identity = process.get("trustlet_identity")
    if identity and identity["basis"] == "inferred":
        return f"{identity['id']} (inferred)"
    return "N/A" if process["trustlet_id"] is None else str(process["trustlet_id"])


def verdict_text(process: Mapping[str, Any]) -> str:
    """The Verdict cell: ``unknown`` when the secure state is, qualified as windows.secureprocs
    qualifies it (``secure (implausible)``); ``(partial)`` wherever the entry is partial."""
    return render_process_verdict(process["verdict"] or "unknown",
                                  implausible=bool(process.get("doubts")),
                                  partial=bool(process.get("partial")))


def region_verdict_text(region: Mapping[str, Any]) -> str:
    """A region's Verdict cell, as windows.trustletpages writes it: ``(partial)`` where its
    pages could not all be accounted for."""
    return render_region_verdict(region["verdict"], bool(region.get("partial")))


def iso_time(value: datetime | float | None) -> str | None:
    """UTC, second precision, ``Z`` suffix: the form a case note wants."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00",
                                                                                    "Z")


def volatility_version() -> str:
    from volatility3.framework import constants

    return constants.PACKAGE_VERSION


def process_entry(process: DerivedProcess) -> dict[str, Any]:
    fields = process.fields
    return {
        "pid": process.pid,
        "ppid": process.ppid,
        "name": process.name,
        "offset": process.offset,
        "linked": process.linked,
        "secure": process.secure.secure,
        "secure_handle": process.secure.secure_handle,
        "trustlet_id": process.trustlet_id,
        "trustlet_identity": (process.trustlet_identity.as_dict()
                              if process.trustlet_identity else None),
        "image_path": process.image_path,
        "create_time": iso_time(process.create_time),
        "exit_time": iso_time(process.exit_time),
        "protection": process.protection_text,
        "protection_level": fields.protection,
        "extended_flags": process.flags.value,
        "flags": process.flags.as_dict(),
        "flag_sources": {state.name: state.source for state in process.flags},
        "unknown_flags": {state.name: state.reason.value for state in process.flags
                          if state.value is None and state.reason is not None},
        "minimal": process.minimal,
        "verdict": process.verdict,
        "secure_state_source": process.secure.source,
        "partial": process.partial,
        "unreadable": sorted(fields.unreadable),
        "problems": list(fields.problems),
        "doubts": list(process.doubts),
    }


def pages_entry(process: DerivedProcess, pages: ProcessPages) -> dict[str, Any]:
    entry = pages.as_dict()
    # The walked EPROCESS, so two processes with one PID (an exited one found by the pool scan)
    # stay apart.
    entry["offset"] = process.offset
    entry["regions"] = [dict(region, problems=list(source.problems))
                        for region, source in zip(entry["regions"], pages.regions)]
    return entry


def dump_format_label(dump: Mapping[str, Any]) -> str:
    """The dump's format with what its crash dump header says, e.g. ``crash-live, DumpType 6,
    SDMP, bug check 0xe2``: DumpType 6 is a live dump or one written at a bug check, and the
    bug check tells them apart (0x161 LIVE_SYSTEM_DUMP for a live one). Reports written before
    these keys existed give the format alone."""
    parts = []
    if dump.get("dump_type") is not None:
        parts.append(f"DumpType {dump['dump_type']}")
    if dump.get("summary_signature"):
        parts.append(str(dump["summary_signature"]))
    if dump.get("bug_check") is not None:
        parts.append(f"bug check {dump['bug_check']:#x}")
    return ", ".join([str(dump["format"]), *parts])


def page_problems(entry: Mapping[str, Any]) -> list[str]:
    """Why a process's page accounting is partial: its own problems, then its regions', once
    each in order."""
    return list(dict.fromkeys(entry.get("problems", []) + [
        problem for region in entry["regions"] for problem in region.get("problems", [])]))


def control_label(control: Mapping[str, Any]) -> str:
    count = control["processes"]
    return f"{count} normal process{'' if count == 1 else 'es'}"


def pages_sentence(entry: Mapping[str, Any]) -> tuple[str, str]:
    """A paragraph, plain text, on a secure process's pages, in two parts: the counts, then (after
    where a renderer marks a partial count) the verdict, the shared user data page, and the
    control group the verdict stands on."""
    counts = (f"{entry['pages']:,} mapped user pages: {entry['absent']:,} absent from the dump, "
              f"{entry['zero_filled']:,} zero-filled, {entry['readable']:,} readable")
    rest = f"; verdict {entry['verdict']}" if entry["pages"] and entry.get("verdict") else ""
    rest += "."
    if entry.get("shared_pages"):
        rest += (" The shared user data page (KUSER_SHARED_DATA at 0x7FFE0000, mapped into every "
                 "process) is listed apart and not counted.")
    control = entry.get("control")
    if control and entry["pages"]:
        if control["captured"] is None:
            rest += " No normal process's user pages to compare with."
        else:
            rest += (f" Control group ({control_label(control)}): {control['readable']:,} of "
                     f"{control['pages']:,} user pages readable — the dump "
                     + ("holds" if control["captured"] else "does not hold")
                     + " the normal processes' user memory.")
    return counts, rest


@dataclass
class Report:
    """The report's sections, each plain JSON data."""

    tool: dict[str, Any]
    analysis: dict[str, Any]
    dump: dict[str, Any]
    kernel: dict[str, Any]
    summary: dict[str, Any]
    processes: list[dict[str, Any]]
    pages: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    # Files saved beside the reports (path relative to OUTDIR → bytes), not part of report.json:
    # a symbol table Volatility downloaded during the analysis.
    files: dict[str, bytes] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"report_version": REPORT_VERSION, "tool": self.tool, "analysis": self.analysis,
                "dump": self.dump, "kernel": self.kernel, "summary": self.summary,
                "findings": self.findings, "processes": self.processes, "pages": self.pages}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Report":
        """A report read back from report.json (to render it again, say)."""
        return cls(**{key: data[key] for key in ("tool", "analysis", "dump", "kernel", "summary",
                                                 "processes", "pages", "findings")})

    @property
    def partial(self) -> bool:
        return bool(self.analysis.get("partial"))

    def findings_by_severity(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """``[(severity, findings)]``, most severe first, empty severities left out."""
        groups = []
        for severity in SEVERITIES_MOST_FIRST:
            chosen = [f for f in self.findings if f["severity"] == severity]
            if chosen:
                groups.append((severity, chosen))
        return groups

    def process_for(self, offset: int) -> dict[str, Any] | None:
        for process in self.processes:
            if process["offset"] == offset:
                return process
        return None


def summarize(processes: Sequence[DerivedProcess], pages: Mapping[int, ProcessPages],
              findings: Sequence[Finding], control: ControlGroup | None = None
              ) -> dict[str, Any]:
    kinds = {f.kind for f in findings}
    secure = [p for p in processes if believed_secure(p)]
    verdicts = {verdict: 0 for verdict in VERDICTS}
    verdicts["unknown"] = 0
    for process in processes:
        verdicts[process.verdict or "unknown"] += 1
    totals = {"mapped": 0, "absent": 0, "zero_filled": 0, "readable": 0}
    for accounting in pages.values():
        totals["mapped"] += accounting.mapped
        totals["absent"] += accounting.absent
        totals["zero_filled"] += accounting.zero_filled
        totals["readable"] += accounting.readable
    return {
        "processes": len(processes),
        "linked": sum(1 for p in processes if p.linked),
        "unlinked": sum(1 for p in processes if p.linked is False),
        # found by the pool scan where the active list could not be read at all
        "linked_unknown": sum(1 for p in processes if p.linked is None),
        "verdicts": verdicts,
        "secure_processes": [{"pid": p.pid, "name": p.name} for p in secure],
        # of those, the ones only a pool scan found (unlinked from the active list: DKOM)
        "unlinked_secure": [{"pid": p.pid, "name": p.name} for p in secure
                            if p.linked is False],
        "vbs_active": "vbs-active" in kinds,
        "credential_guard": "credential-guard" in kinds,
        "trustlet_pages": totals,
        "control": None if control is None else control.as_dict(),
        "findings": count_by_severity(findings),
    }


def build_report(*, dump: Mapping[str, Any], kernel: Mapping[str, Any],
                 processes: Sequence[DerivedProcess], pages: Mapping[int, ProcessPages],
                 findings: Sequence[Finding], started: float, finished: float,
                 options: Mapping[str, Any] | None = None, notes: Iterable[str] = (),
                 volatility_log: Iterable[str] = (),
                 timings: Mapping[str, float] | None = None,
                 control: ControlGroup | None = None) -> Report:
    """Assemble the report. ``dump`` holds path, size, sha256, format (and any extras);
    ``kernel`` is :meth:`KernelInfo.as_dict`; ``pages`` maps EPROCESS offsets to accounting;
    ``control`` is the control group the page verdicts were judged against (default: the one the
    accounting carries)."""
    if control is None:
        control = next((p.control for p in pages.values() if p.control is not None), None)
    notes = list(notes)
    by_offset = {p.offset: p for p in processes}
    page_entries = [pages_entry(by_offset[offset], accounting)
                    for offset, accounting in pages.items() if offset in by_offset]
    partial = (bool(notes) or any(p.partial for p in processes)
               or any(entry["partial"] for entry in page_entries))
    analysis = {
        "started": iso_time(started),
        "finished": iso_time(finished),
        "duration_seconds": round(finished - started, 3),
        "timings": {name: round(value, 3) for name, value in (timings or {}).items()},
        "partial": partial,
        "notes": notes,
        "volatility_log": list(volatility_log),
        **dict(options or {}),
    }
    return Report(
        tool={"name": TOOL_NAME, "version": __version__, "volatility3": volatility_version(),
              "python": platform.python_version()},
        analysis=analysis,
        dump=dict(dump),
        kernel=dict(kernel),
        summary=summarize(processes, pages, findings, control),
        processes=[process_entry(p) for p in processes],
        pages=page_entries,
        findings=[f.as_dict() for f in findings],
    )
