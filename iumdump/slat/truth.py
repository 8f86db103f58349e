"""Ground truth for a synthesized dump: ``truth.json`` (DESIGN §5).

Everything here is what the emulator *made*, stated independently of iumdump's analysis code, so
tests can hold the plugins and the analyzer to it: each process with its identity, its place in
memory, its secure state and protection, the PROCESS_EXTENDED_BASIC_INFORMATION flags the layout
supports (``null`` where DESIGN §4 says a flag cannot be derived), and for every process with
user pages what became of each page in *this* dump:

* ``absent`` — the frame is not in the file (a bitmap crash dump leaves refused frames out);
* ``zero_filled`` — in the file, all zeros (a refused page a tool wrote as zeros, or a page whose
  content is zero);
* ``readable`` — in the file with its content.

Keys (stable; other engineers' tests read them): ``scenario, format, seed, memory_size, dump,
kernel{build, pdb_guid, pdb_age, base, kernel_virtual_offset, dtb, profile, has_secure_state,
has_trustlet_identity}, processes[{pid, ppid, name, image_name, offset, address,
physical_offset, linked, secure, secure_handle, trustlet_id, scenario_trustlet_id, protection,
protection_text, minimal, verdict, session, image_path, create_time, exit_time, threads,
flags{…}, pages}]``.
``trustlet_id`` is what TrustletIdentity holds (``null`` where the build has no such field);
``scenario_trustlet_id`` the identity the scenario gave a trustlet, stored or not.
``image_path`` is what ``_EPROCESS.SeAuditProcessCreationInfo.ImageFileName`` names (``null``
where the pointer is NULL); ``create_time`` and ``exit_time`` are UTC to the second (``null``:
not exited). ``pages`` totals (``mapped, absent, zero_filled, readable``) count the process's own
pages; ``shared`` counts the KUSER_SHARED_DATA page every process maps, whose region is listed
with ``"shared": true``. ``offset`` is the EPROCESS address as Volatility prints it
(``Offset(V)`` of pslist/psscan: the 48-bit layer offset); ``address`` is the canonical kernel
pointer.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from bisect import bisect_right
from typing import Any, Iterable

from ..atomic import write_atomic
from ..structs.process_info import FLAG_NAMES
from ..structs.protection import protection_text
from .kernel.constants import SHARED_CONTENT
from .kernel.results import KernelBuild
from .memory import GuestPhysicalMemory
from .scenario import ProcessKind

ADDRESS_48 = (1 << 48) - 1
# The image names of the trustlets Windows ships, whose name on a process that is not secure the
# scenario means as a masquerade: LsaIso.exe (Credential Guard), vmsp.exe (the virtual TPM of a
# shielded VM's worker), BioIso.exe (Windows Hello biometrics) and FsIso.exe (the secure frame
# server) — Microsoft, "Isolated User Mode (IUM) Processes" (Win32 docs), and Windows Internals
# 7th ed., Part 1, ch. 3, "Trustlets". The emulator keeps its own list, apart from the analyzer's,
# so that its truth states intent rather than repeating the code it judges.
TRUSTLET_IMAGES = ("LsaIso.exe", "vmsp.exe", "BioIso.exe", "FsIso.exe")
_TRUSTLET_KEYS = frozenset(name.lower() for name in TRUSTLET_IMAGES)


def verdict(name: str, *, secure: bool, secure_handle: int) -> str:
    """The verdict the scenario intends, written apart from ``analysis.derive`` on purpose: the
    plugins and the analyzer are tested against it.

    ``secure``; ``masquerade`` (a trustlet's image name on a process that is not secure);
    ``enclave-host`` (a secure handle without the secure bit); else ``normal``."""
    if secure:
        return "secure"
    if name.lower() in _TRUSTLET_KEYS:
        return "masquerade"
    if secure_handle:
        return "enclave-host"
    return "normal"


class _Ranges:
    """Membership and counting over sorted disjoint [start, end) frame ranges."""

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        self.ranges = sorted(ranges)
        self.starts = [start for start, _ in self.ranges]

    def __contains__(self, pfn: int) -> bool:
        index = bisect_right(self.starts, pfn) - 1
        return index >= 0 and pfn < self.ranges[index][1]

    def count(self, start: int, end: int) -> int:
        """Frames of [start, end) inside the ranges."""
        total = 0
        index = max(bisect_right(self.starts, start) - 1, 0)
        while index < len(self.ranges) and self.ranges[index][0] < end:
            lo, hi = self.ranges[index]
            total += max(0, min(hi, end) - max(lo, start))
            index += 1
        return total


def _frame_ranges(frames) -> _Ranges:
    ranges = getattr(frames, "ranges", None)
    if ranges is not None:
        return _Ranges(ranges)
    return _Ranges((pfn, pfn + 1) for pfn in frames)


def page_fates(pfns, memory: GuestPhysicalMemory, absent: _Ranges, zero_filled: _Ranges
               ) -> dict[str, int]:
    """How many of the frames ``pfns`` are absent / zero-filled / readable in the dump."""
    if isinstance(pfns, range):
        # A bulk run: every frame holds generated (non-zero) content.
        missing = absent.count(pfns.start, pfns.stop)
        zeroed = zero_filled.count(pfns.start, pfns.stop)
        return {"absent": missing, "zero_filled": zeroed,
                "readable": len(pfns) - missing - zeroed}
    fates = {"absent": 0, "zero_filled": 0, "readable": 0}
    for pfn in pfns:
        if pfn in absent:
            fates["absent"] += 1
        elif pfn in zero_filled or not _has_content(memory, pfn):
            fates["zero_filled"] += 1
        else:
            fates["readable"] += 1
    return fates


def _has_content(memory: GuestPhysicalMemory, pfn: int) -> bool:
    if memory.is_explicit(pfn):
        return any(memory.page(pfn))
    return memory.is_background(pfn)


def _utc(moment: _dt.datetime) -> str:
    """UTC to the second, ``Z`` suffix: the FILETIME's whole seconds, as Volatility shows them."""
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_truth(*, scenario: str, fmt: str, seed: int, memory: GuestPhysicalMemory,
                kernel: KernelBuild, write_result, profile: str, dump_name: str,
                boot_time: _dt.datetime) -> dict[str, Any]:
    boot = boot_time
    absent = _frame_ranges(write_result.absent_pfns)
    zero_filled = _frame_ranges(write_result.zero_filled_pfns)
    processes = []
    for built in kernel.processes:
        spec = built.spec
        name = spec.name.encode("ascii", "replace")[:14].decode("ascii")
        entry: dict[str, Any] = {
            "pid": spec.pid,
            "ppid": spec.ppid,
            "name": name,
            "image_name": spec.name,
            "offset": built.eprocess & ADDRESS_48,
            "address": built.eprocess,
            "physical_offset": built.physical,
            "linked": spec.linked,
            "secure": built.secure,
            "secure_handle": built.secure_handle,
            "trustlet_id": built.trustlet_id,
            "scenario_trustlet_id": spec.trustlet_id,
            "protection": spec.protection,
            "protection_text": protection_text(spec.protection),
            "minimal": spec.kind is ProcessKind.MINIMAL,
            "verdict": verdict(spec.name, secure=built.secure,
                               secure_handle=built.secure_handle),
            "session": spec.session,
            "image_path": built.audit_name or None,
            "create_time": _utc(boot + _dt.timedelta(seconds=spec.created)),
            "exit_time": (None if spec.exited is None
                          else _utc(boot + _dt.timedelta(seconds=spec.exited))),
            "threads": len(built.threads),
            "dtb": built.dtb,
            "flags": {name: built.flags[name] for name in FLAG_NAMES},
            "pages": None,
        }
        if built.regions:
            regions = []
            totals = {"mapped": 0, "absent": 0, "zero_filled": 0, "readable": 0, "shared": 0}
            for region in sorted(built.regions, key=lambda r: r.spec.start):
                fates = page_fates(region.pfns, memory, absent, zero_filled)
                shared = region.spec.content == SHARED_CONTENT
                regions.append({"start": region.spec.start, "end": region.spec.end,
                                "pages": region.spec.pages, **fates,
                                "protection": region.spec.protection, "tag": region.tag,
                                "content": region.spec.content, "shared": shared,
                                "vad": region.vad})
                if shared:  # KUSER_SHARED_DATA: every process's, never the process's own
                    totals["shared"] += region.spec.pages
                    continue
                totals["mapped"] += region.spec.pages
                for key in fates:
                    totals[key] += fates[key]
            entry["pages"] = {**totals, "regions": regions}
        processes.append(entry)
    return {
        "scenario": scenario,
        "format": fmt,
        "seed": seed,
        "memory_size": memory.size,
        "dump": dump_name,
        "kernel": {
            "build": kernel.build,
            "revision": kernel.revision,
            "pdb_guid": kernel.guid,
            "pdb_age": kernel.age,
            "base": kernel.base,
            "kernel_virtual_offset": kernel.base & ADDRESS_48,
            "dtb": kernel.dtb,
            "kdbg": kernel.kdbg,
            "profile": profile,
            "has_secure_state": kernel.has_secure_state,
            "has_trustlet_identity": kernel.has_trustlet_identity,
        },
        "vtl1_frames": _count_frames(write_result.refused_pfns),
        "processes": processes,
    }


def _count_frames(frames) -> int:
    return len(frames) if frames is not None else 0


def write_truth(path: str | os.PathLike, truth: dict[str, Any]) -> None:
    """Write truth.json atomically."""
    write_atomic(path, json.dumps(truth, indent=1) + "\n", what="truth file")


def load_truth(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


__all__ = ["TRUSTLET_IMAGES", "build_truth", "load_truth", "page_fates", "verdict",
           "write_truth"]

