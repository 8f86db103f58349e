"""Processes and page accounting built from plain values (no dump): the inputs of findings and
reports, so their rules and renderings can be tested one case at a time."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from iumdump.analysis.derive import DerivedProcess, ProcessPages, RegionPages, derive_process
from iumdump.analysis.fields import ProcessFields
from iumdump.analysis.findings import dump_findings as find
from iumdump.report.model import Report, build_report
from kernel_layouts import LAYOUT_19041

EPROCESS_BASE = 0xE78B_8000_0000
SHA256 = "ab" * 32


def process(name: str, pid: int, *, secure_state: int = 0, ppid: int = 4, linked: bool = True,
            protection: int = 0, minimal: int = 0, unreadable: tuple[str, ...] = (),
            **values: Any) -> DerivedProcess:
    base = dict(offset=EPROCESS_BASE + pid * 0x1000, linked=linked, pid=pid, ppid=ppid, name=name,
                secure_state=secure_state, protection=protection, wow64_process=0,
                process_delete=0, cross_session_create=0, deep_freeze=0, background=0,
                subsystem_process=0, minimal=minimal, exit_status=0x103, peb=0x7FF6_0000_0000,
                affinity=0xF, base_priority=8)
    base.update(values)
    for attribute in unreadable:
        base[attribute] = None
    return derive_process(ProcessFields(layout=LAYOUT_19041, unreadable=frozenset(unreadable),
                                        **base))


def pages(proc: DerivedProcess, *regions: tuple[int, int, int, int, int],
          problems: tuple[str, ...] = ()) -> ProcessPages:
    """``regions``: (start, pages, absent, zero_filled, readable) each."""
    rows = tuple(RegionPages(start, start + pages_ * 0x1000 - 1, pages_, absent, zero, readable,
                             "PAGE_READWRITE", "VadS")
                 for start, pages_, absent, zero, readable in regions)
    return ProcessPages(proc.pid, proc.name, rows, problems)


def credential_guard_machine() -> tuple[list[DerivedProcess], dict[int, ProcessPages]]:
    """The processes of the credential-guard scenario that matter to findings."""
    procs = [
        process("System", 4, ppid=0, protection=0x72),
        process("Secure System", 56, secure_state=0x1B1F_4E65, minimal=1),
        process("LsaIso.exe", 712, ppid=572, secure_state=0xE8D6_EEC1),
        process("lsass.exe", 724, ppid=572, protection=0x41),
        process("SgrmBroker.exe", 3312, ppid=704, secure_state=0x2A70_8750),
        process("notepad.exe", 5108, ppid=4420),
    ]
    accounting = {
        procs[1].offset: pages(procs[1]),
        procs[2].offset: pages(procs[2], (0x1670_0000, 3, 3, 0, 0), (0x7FF6_C710_0000, 6, 6, 0, 0)),
    }
    return procs, accounting


def make_report(procs: list[DerivedProcess], accounting: dict[int, ProcessPages], *,
                dump_format: str = "crash-bitmap", notes: tuple[str, ...] = (),
                path: str = "/evidence/memory.dmp") -> Report:
    return build_report(
        dump={"path": path, "size": 64 << 20, "sha256": SHA256, "format": dump_format},
        kernel={"build": 19041, "pdb_guid": "D4D134AD442A3271FE277D30486DA8C0", "pdb_age": 1,
                "pdb_name": "ntkrnlmp.pdb", "base": 0xF802_9420_0000, "dtb": 0x1AD000,
                "architecture": "Intel64", "layers": ["Intel32e", "WindowsCrashDump64Layer",
                                                      "FileLayer"]},
        processes=procs, pages=accounting, findings=find(procs, accounting, dump_format),
        started=1_700_000_000.0, finished=1_700_000_002.5, notes=notes,
        options={"offline": True, "symbol_dirs": [], "formats": ["json", "md", "html"]})


def analyze_dump(result, out: Path, formats: str) -> dict[str, Any]:
    """``iumdump analyze`` of a synthesized dump into ``out`` with ``--format formats`` (json
    among them), as a user runs it; returns report.json."""
    from iumdump import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["analyze", str(result.dump_path), "-s", str(result.symbols_dir), "-o",
                         str(out), "--offline", "-q", "--format", formats])
    assert (code, stderr.getvalue()) == (0, "")
    return json.loads((out / "report.json").read_text())
