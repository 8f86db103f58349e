"""report.md: the report as a Markdown document to paste into a case or ticket.

Sections: identification of the evidence and the analysis, findings by severity, the process
table, then the page accounting of each secure process. Every string from the dump goes through
:func:`.text.markdown`.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ..analysis.findings import SEVERITIES
from .model import FLAG_SHORT, Report, control_label, pages_sentence, trustlet_id_text
from .text import hex_or_dash, markdown as md

SEVERITY_NOTES = {
    "high": "a likely sign of compromise or tampering; investigate",
    "medium": "unexpected; needs an explanation before the dump is relied on",
    "low": "a limit on what this report can claim, or something unusual",
    "info": "facts about the machine's security posture",
}


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _pid(value: int | None) -> str:
    return "?" if value is None else str(value)


def flag_summary(process: dict[str, Any]) -> str:
    """The flags that are set, and the unknown ones marked ``?``."""
    set_flags = [FLAG_SHORT[name] for name, value in process["flags"].items() if value]
    unknown = [FLAG_SHORT[name] for name, value in process["flags"].items() if value is None]
    text = ", ".join(set_flags) or "none"
    if unknown:
        text += " (unknown: " + ", ".join(unknown) + ")"
    return text


def render(report: Report) -> str:
    dump, kernel, analysis, summary = report.dump, report.kernel, report.analysis, report.summary
    out: list[str] = [f"# iumdump report: {md(os.path.basename(dump['path']))}", ""]
    if report.partial:
        out += ["> **Partial result.** Part of the dump could not be read; counts and verdicts "
                "cover what could be seen. See *Notes*.", ""]

    out += ["## Evidence and analysis", ""]
    out += _table(["", ""], [
        ["Dump", md(dump["path"])],
        ["Size", f"{dump['size']:,} bytes"],
        ["SHA-256", f"`{dump['sha256']}`"],
        ["Format", md(dump["format"])],
        ["Kernel", f"build {kernel.get('build') or 'unknown'}, {md(kernel.get('pdb_name') or 'PDB')} "
                   f"{kernel.get('pdb_guid') or '?'}-{kernel.get('pdb_age') if kernel.get('pdb_age') is not None else '?'}"],
        ["Kernel base / DTB", f"{hex_or_dash(kernel.get('base'))} / {hex_or_dash(kernel.get('dtb'))}"],
        ["Analysed", f"{analysis['started']} to {analysis['finished']} "
                     f"({analysis['duration_seconds']:.1f} s)"],
        ["Tool", f"iumdump {report.tool['version']}, Volatility 3 {report.tool['volatility3']}"],
    ])
    out.append("")

    verdicts = summary["verdicts"]
    out += ["## Summary", ""]
    out.append(f"- {summary['processes']} processes ({summary['linked']} in the active list, "
               f"{summary['unlinked']} found only by pool scanning); "
               f"{verdicts.get('secure', 0)} secure, {verdicts.get('enclave-host', 0)} enclave "
               f"host(s), {verdicts.get('masquerade', 0)} masquerading, "
               f"{verdicts.get('unknown', 0)} unknown.")
    out.append(f"- Virtualization-Based Security: {'active' if summary['vbs_active'] else 'not seen'}; "
               f"Credential Guard: {'active' if summary['credential_guard'] else 'not seen'}.")
    pages = summary["trustlet_pages"]
    if pages["mapped"]:
        out.append(f"- Secure processes' user pages: {pages['mapped']:,} mapped — "
                   f"{pages['absent']:,} absent, {pages['zero_filled']:,} zero-filled, "
                   f"{pages['readable']:,} readable.")
    control = summary.get("control")
    if control and control["pages"]:
        out.append(f"- Normal processes' user pages (control group, {control_label(control)}): "
                   f"{control['pages']:,} mapped — {control['absent']:,} absent, "
                   f"{control['zero_filled']:,} zero-filled, {control['readable']:,} readable.")
    counts = summary["findings"]
    out.append("- Findings: " + ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES)) + ".")
    out.append("")

    out += ["## Findings", ""]
    if not report.findings:
        out += ["No findings.", ""]
    for severity, findings in report.findings_by_severity():
        out += [f"### {severity.capitalize()} — {SEVERITY_NOTES[severity]}", ""]
        for finding in findings:
            where = f"PID {finding['pid']}" if finding["pid"] is not None else "machine"
            out.append(f"- **{finding['kind']}** ({where}): {md(finding['message'])}")
        out.append("")

    out += ["## Pages of secure processes", ""]
    if not report.pages:
        out += ["No secure process has user pages to account for.", ""]
    for entry in report.pages:
        out += [f"### {md(entry['name'])} (PID {_pid(entry['pid'])})", ""]
        counts, rest = pages_sentence(entry)
        out.append(md(counts) + (" — **partial**" if entry.get("partial") else "") + md(rest))
        out.append("")
        control = entry.get("control")
        if control and entry["pages"]:
            out += _table(["", "Pages", "Absent", "ZeroFilled", "Readable"], [
                [md(entry["name"]), f"{entry['pages']:,}", f"{entry['absent']:,}",
                 f"{entry['zero_filled']:,}", f"{entry['readable']:,}"],
                [f"control: {control_label(control)}", f"{control['pages']:,}",
                 f"{control['absent']:,}", f"{control['zero_filled']:,}",
                 f"{control['readable']:,}"]])
            out.append("")
        if not entry["regions"] or not entry["pages"] and not entry.get("partial"):
            continue
        out += _table(["Start", "End", "Pages", "Absent", "ZeroFilled", "Readable", "Protection",
                       "Tag", "Verdict"],
                      [[hex_or_dash(r["start"]), hex_or_dash(r["end"]), r["pages"], r["absent"],
                        r["zero_filled"], r["readable"], md(r.get("protection") or "—"),
                        md(r.get("tag") or "—"),
                        r["verdict"] + (" (partial)" if r.get("partial") else "")]
                       for r in entry["regions"]])
        problems = list(dict.fromkeys(entry.get("problems", []) + [
            p for r in entry["regions"] for p in r.get("problems", [])]))
        if problems:
            out += [""] + [f"- partial: {md(p)}" for p in problems]
        out.append("")

    out += ["## Processes", ""]
    rows = []
    for process in report.processes:
        rows.append([
            _pid(process["pid"]), _pid(process["ppid"]), md(process["name"]),
            hex_or_dash(process["offset"]), _yes_no(process["linked"]),
            _yes_no(process["secure"]), hex_or_dash(process["secure_handle"]),
            trustlet_id_text(process),
            md(process["protection"] or "unknown"), f"{process['extended_flags']:#x}",
            flag_summary(process),
            (process["verdict"] or "unknown") + (" (partial)" if process.get("partial") else ""),
        ])
    out += _table(["PID", "PPID", "Name", "Offset(V)", "Linked", "Secure", "SecureHandle",
                   "TrustletId", "Protection", "ExtendedFlags", "Flags set", "Verdict"], rows)
    out += ["", "Flags are the PROCESS_EXTENDED_BASIC_INFORMATION bits NtQueryInformationProcess "
            "would have returned; *unknown* ones cannot be derived from this build's EPROCESS "
            "(the JSON report names the field each flag came from). A TrustletId marked "
            "*inferred* is the id the image path of a genuine Windows trustlet implies, where the "
            "build no longer stores TrustletIdentity.", ""]

    out += ["## Process images and times", ""]
    out += _table(["PID", "Name", "Created (UTC)", "Exited (UTC)", "Image path"],
                  [[_pid(p["pid"]), md(p["name"]), p.get("create_time") or "—",
                    p.get("exit_time") or "—", md(p.get("image_path"))]
                   for p in report.processes])
    out += ["", "The image path is SeAuditProcessCreationInfo.ImageFileName as the kernel holds "
            "it: the image's NT device path; minimal processes (Registry, MemCompression, Secure "
            "System) keep their bare name there and System none.", ""]

    notes = analysis.get("notes", [])
    log = analysis.get("volatility_log", [])
    if notes or log:
        out += ["## Notes", ""]
        out += [f"- {md(note)}" for note in notes]
        out += [f"- Volatility: {md(line)}" for line in log]
        out.append("")
    return "\n".join(out)
