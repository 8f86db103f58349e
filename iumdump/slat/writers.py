"""Acquisition writers: dump a SLAT machine's memory the way real tools would.

A tool running in the guest reads through VTL0's EPT, and the hypervisor refuses the pages VTL1
took away. What the tool does about it depends on the format (DESIGN §6):

* ``raw`` — a flat image of guest-physical memory; each refused page is written as zeros, as
  WinPmem does when a read fails.
* ``crash-full`` — a complete crash dump (DumpType 1): the header, then every frame of the one
  physical memory run; refused pages zero-filled likewise.
* ``crash-bitmap`` — a bitmap crash dump (DumpType 5, summary signature ``FDMP``: a complete
  memory dump): only frames whose bitmap bit is set are stored; refused frames are left out, and
  so are frames never used, as an active memory dump omits free pages.
* ``crash-live`` — a live kernel memory dump (DumpType 6, summary signature ``SDMP``), as Task
  Manager's "Create live kernel memory dump file" writes it: the bitmap layout of DumpType 5 with
  kernel memory only — every process's user pages (and pages no one maps) are left out, the page
  tables, pool and kernel image kept; refused frames are left out too.
* ``crash-kernel`` — a kernel memory dump as Windows writes it at a bug check (an automatic memory
  dump is the same file, only its page file is sized differently: Microsoft's "Automatic Memory
  Dump" page). The file is laid out as ``crash-live`` is, with the same DumpType 6: Microsoft's
  ``DUMP_TYPE`` enum for bug check callbacks (``KBUGCHECK_SECONDARY_DUMP_DATA_EX.DumpType``,
  wdm.h) calls 6 ``DUMP_TYPE_BITMAP_KERNEL`` and 5 ``DUMP_TYPE_BITMAP_FULL``, rizin's
  ``dmp_specs.h`` ``DMP_DUMPTYPE_BITMAPKERNEL``, and automatic dumps after NotMyFault's crash
  are DumpType 6 (kdmp-parser issue #26, Volatility 3 issue #1112). Kernel memory only, as in
  ``crash-live``; what differs is the bug check: a crash an analyst forces from the keyboard,
  MANUALLY_INITIATED_CRASH (0xE2, parameters all zero; Microsoft's "Bug Check 0xE2" page).
* ``host`` — the raw format read through the host view (everything readable), like a host-side
  capture with LiveCloudKd.

Files are streamed through one reusable buffer (the image is never in memory), zero runs become
holes (a sparse file where the file system allows), and the file appears under its name only when
complete: it is written to a temporary name in the same directory and renamed
(:mod:`iumdump.atomic`).
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field, replace
from typing import Iterator

from tqdm import tqdm

from ..atomic import atomic_output
from ..errors import InvalidInputError
from ..structs.crashdump import (
    DUMP_HEADER64_SIZE, FULL_BITMAP_DUMP_SIGNATURE, IMAGE_FILE_MACHINE_AMD64,
    SUMMARY_DUMP_FIXED_SIZE, SUMMARY_DUMP_OFFSET, SUMMARY_DUMP_SIGNATURE, DumpHeader64, DumpType,
    PhysicalMemoryRun, SummaryDump, bitmap_bytes, build_dump_header, build_summary_dump,
)
from ..structs.paging import PAGE_SHIFT, PAGE_SIZE
from .ept import EPT_READ
from .machine import FrameRanges, SlatMachine
from .memory import FRAME_FREE

BUGCHECK_LIVE_SYSTEM_DUMP = 0x161  # Microsoft, "Bug Check 0x161: LIVE_SYSTEM_DUMP"; windows-sys 353
# A crash forced from the keyboard (CrashOnCtrlScroll) or a kernel debugger: Microsoft's "Bug Check
# 0xE2 MANUALLY_INITIATED_CRASH", windows-sys MANUALLY_INITIATED_CRASH = 226; no parameters.
BUGCHECK_MANUALLY_INITIATED_CRASH = 0xE2


@dataclass(frozen=True)
class DumpFormat:
    """How one format is acquired and laid out: everything a writer decides by format."""

    extension: str
    host_view: bool = False              # read through the host view (nothing refused)
    dump_type: DumpType | None = None    # None: no header, frame n at byte n * 4096
    summary_signature: bytes | None = None  # a bitmap dump's _SUMMARY_DUMP signature
    kernel_only: bool = False            # every process's user pages (not_kernel) left out
    # The bug check its header records unless KernelFacts names one: Windows writes a complete
    # or kernel memory dump only at a bug check (here one forced from the keyboard, as an analyst
    # does to capture a machine), a live dump with LIVE_SYSTEM_DUMP.
    bugcheck: int = BUGCHECK_LIVE_SYSTEM_DUMP

    @property
    def is_crash(self) -> bool:
        return self.dump_type is not None

    @property
    def is_bitmap(self) -> bool:
        return self.summary_signature is not None

    @property
    def zero_fills_refused(self) -> bool:
        """A flat image read through VTL0 stores a refused frame as zeros; a bitmap dump leaves
        it out, and the host view is refused nothing."""
        return not self.is_bitmap and not self.host_view


# DumpType 6 is DUMP_TYPE_BITMAP_KERNEL whoever writes it, Task Manager's live dump or the kernel
# at a bug check (module docstring); its summary says SDMP, a complete bitmap dump's FDMP.
DUMP_FORMATS = {
    "raw": DumpFormat("raw"),
    "crash-full": DumpFormat("dmp", dump_type=DumpType.FULL,
                             bugcheck=BUGCHECK_MANUALLY_INITIATED_CRASH),
    "crash-bitmap": DumpFormat("dmp", dump_type=DumpType.BITMAP,
                               summary_signature=FULL_BITMAP_DUMP_SIGNATURE,
                               bugcheck=BUGCHECK_MANUALLY_INITIATED_CRASH),
    "host": DumpFormat("raw", host_view=True),
    "crash-live": DumpFormat("dmp", dump_type=DumpType.BITMAP_KERNEL,
                             summary_signature=SUMMARY_DUMP_SIGNATURE, kernel_only=True),
    "crash-kernel": DumpFormat("dmp", dump_type=DumpType.BITMAP_KERNEL,
                               summary_signature=SUMMARY_DUMP_SIGNATURE, kernel_only=True,
                               bugcheck=BUGCHECK_MANUALLY_INITIATED_CRASH),
}
FORMATS = tuple(DUMP_FORMATS)
CRASH_FORMATS = tuple(name for name, spec in DUMP_FORMATS.items() if spec.is_crash)
BITMAP_FORMATS = tuple(name for name, spec in DUMP_FORMATS.items() if spec.is_bitmap)
KERNEL_ONLY_FORMATS = tuple(name for name, spec in DUMP_FORMATS.items() if spec.kernel_only)
_CHUNK_PAGES = 1024                # 4 MiB writes

# What the view gave for a run of frames.
_DATA = "data"          # readable and in use: stored with its content
_FREE = "free"          # readable, never used: zeros (a hole), left out of a bitmap dump
_REFUSED = "refused"    # the EPT refused the read: zero-filled or left out, by format
_NOT_KERNEL = "not-kernel"  # readable, but not kernel memory: left out of a live kernel dump


@dataclass(frozen=True)
class KernelFacts:
    """What a crash dump header says about the kernel (the values KeBugCheck's writer fills)."""

    directory_table_base: int
    pfn_database: int
    ps_loaded_module_list: int
    ps_active_process_head: int
    kd_debugger_data_block: int
    number_processors: int = 1
    system_time: int = 0                 # FILETIME (100 ns since 1601, UTC)
    bugcheck_code: int | None = None     # None: the format's own (DumpFormat.bugcheck)
    bugcheck_parameters: tuple[int, int, int, int] = (0, 0, 0, 0)
    machine_image_type: int = IMAGE_FILE_MACHINE_AMD64
    major_version: int = 0xF             # 0xF: free (retail) build
    minor_version: int = 0               # the build number, e.g. 19041
    system_up_time: int = 0              # 100 ns units
    product_type: int = 1                # NtProductWinNt


@dataclass(frozen=True)
class WriteResult:
    """What a writer put in the file, frame by frame."""

    path: str
    format: str
    size: int                        # bytes of the file (holes included)
    pages_written: int               # frames stored with the content the view read
    data_bytes: int                  # bytes actually written (not holes); the header included
    first_page_offset: int           # file offset of the first stored frame
    absent_pfns: FrameRanges = field(default_factory=FrameRanges)       # not in the file
    zero_filled_pfns: FrameRanges = field(default_factory=FrameRanges)  # refused, stored as zeros
    refused_pfns: FrameRanges = field(default_factory=FrameRanges)      # VTL0's EPT refused them


def default_filename(fmt: str) -> str:
    """``memory.raw`` or ``memory.dmp``, as ``iumdump synth`` names its output."""
    return f"memory.{_format(fmt).extension}"


def write_dump(machine: SlatMachine, path: str | os.PathLike, fmt: str,
               facts: KernelFacts | None = None, *, progress: bool = True,
               not_kernel: FrameRanges | None = None) -> WriteResult:
    """Acquire ``machine``'s memory into ``path`` in format ``fmt`` (one of FORMATS).
    ``not_kernel``: the frames that are not kernel memory (user pages of every process, pages no
    one maps), which ``crash-live`` and ``crash-kernel`` leave out; required for those only."""
    spec = _format(fmt)
    if spec.is_crash and facts is None:
        raise InvalidInputError(f"the {fmt} format needs KernelFacts for its header")
    if spec.kernel_only and not_kernel is None:
        raise InvalidInputError(f"the {fmt} format needs the frames that are not kernel "
                                "memory, to leave them out")
    if facts is not None and facts.bugcheck_code is None:
        facts = replace(facts, bugcheck_code=spec.bugcheck)
    view = machine.host_view() if spec.host_view else machine.view(0)
    plan = list(_plan(machine, view))
    if spec.kernel_only:
        plan = list(_mark(plan, not_kernel, _NOT_KERNEL))
    refused = FrameRanges((s, e) for s, e, state in plan if state == _REFUSED)
    if spec.host_view:
        refused = machine.refused_frames(0)
    path = os.fspath(path)
    with atomic_output(path, what="dump") as out, _progress(machine, fmt, progress) as bar:
        if spec.is_bitmap:
            first_page = _bitmap_header_size(machine.frame_count)
            result = _write_bitmap(machine, view, plan, facts, out.fileno(), bar,
                                   spec.dump_type, spec.summary_signature)
        else:
            first_page = DUMP_HEADER64_SIZE if spec.is_crash else 0
            size = first_page + machine.memory.size
            header = b""
            if spec.is_crash:
                header = build_dump_header(_dump_header(machine, facts, spec.dump_type, size))
            result = _write_flat(view, plan, out.fileno(), bar, first_page, size, header)
    written, data_bytes, size = result
    absent = FrameRanges()
    if spec.is_bitmap:
        absent = FrameRanges((s, e) for s, e, state in plan if state != _DATA)
    return WriteResult(path=path, format=fmt, size=size, pages_written=written,
                       data_bytes=data_bytes, first_page_offset=first_page, absent_pfns=absent,
                       zero_filled_pfns=refused if spec.zero_fills_refused else FrameRanges(),
                       refused_pfns=refused)


def _format(fmt: str) -> DumpFormat:
    spec = DUMP_FORMATS.get(fmt)
    if spec is None:
        raise InvalidInputError(f"unknown dump format {fmt!r}; "
                                f"expected one of {', '.join(FORMATS)}")
    return spec


def _plan(machine: SlatMachine, view) -> Iterator[tuple[int, int, str]]:
    """``(start, end, state)`` runs over all frames: the view's EPT runs crossed with the memory's
    explicit/background/free runs. One EPT walk per leaf, so 8 GiB of 1 GiB leaves is 8 walks."""
    access_runs = view.runs(0, machine.frame_count)
    kind_runs = machine.memory.frame_runs(0, machine.frame_count)
    run = next(access_runs, None)
    kind = next(kind_runs, None)
    pending: tuple[int, int, str] | None = None
    while run is not None and kind is not None:
        start = max(run.start_pfn, kind[0])
        end = min(run.end_pfn, kind[1])
        if not run.access & EPT_READ:
            state = _REFUSED
        elif kind[2] == FRAME_FREE:
            state = _FREE
        else:
            state = _DATA
        if pending is not None and pending[2] == state and pending[1] == start:
            pending = (pending[0], end, state)
        else:
            if pending is not None:
                yield pending
            pending = (start, end, state)
        if run.end_pfn == end:
            run = next(access_runs, None)
        if kind[1] == end:
            kind = next(kind_runs, None)
    if pending is not None:
        yield pending


def _mark(plan, ranges: FrameRanges, state: str) -> Iterator[tuple[int, int, str]]:
    """``plan`` with the data frames inside ``ranges`` given ``state`` instead."""
    marked = ranges.ranges
    for start, end, current in plan:
        if current != _DATA:
            yield start, end, current
            continue
        index = max(bisect.bisect_right(marked, (start, start)) - 1, 0)
        position = start
        while index < len(marked) and marked[index][0] < end:
            low, high = max(marked[index][0], position), min(marked[index][1], end)
            if low < high:
                if position < low:
                    yield position, low, _DATA
                yield low, high, state
                position = high
            index += 1
        if position < end:
            yield position, end, _DATA


def _write_flat(view, plan, fd: int, bar, base: int, size: int, header: bytes
                ) -> tuple[int, int, int]:
    """Raw, host and crash-full: frame n at ``base + n * 4096``; zero runs stay holes."""
    os.ftruncate(fd, size)
    data_bytes = 0
    if header:
        data_bytes += _pwrite_all(fd, header, 0)
    written = 0
    buffer = memoryview(bytearray(_CHUNK_PAGES * PAGE_SIZE))
    for start, end, state in plan:
        if state == _DATA:
            for pfn, count in _chunks(start, end):
                chunk = buffer[:count << PAGE_SHIFT]
                view.read_frames_into(pfn, chunk)
                data_bytes += _pwrite_all(fd, chunk, base + (pfn << PAGE_SHIFT))
                bar.update(count)
        else:
            bar.update(end - start)
        if state != _REFUSED:
            written += end - start
    return written, data_bytes, size


def _write_bitmap(machine: SlatMachine, view, plan, facts: KernelFacts, fd: int, bar,
                  dump_type: int, signature: bytes) -> tuple[int, int, int]:
    """The bitmap formats: header, _SUMMARY_DUMP with one bit per stored frame, then those
    frames."""
    frame_count = machine.frame_count
    bitmap = bytearray(bitmap_bytes(frame_count))
    pages = 0
    for start, end, state in plan:
        if state == _DATA:
            _set_bits(bitmap, start, end)
            pages += end - start
    header_size = _bitmap_header_size(frame_count)
    size = header_size + (pages << PAGE_SHIFT)
    header = build_dump_header(_dump_header(machine, facts, dump_type, size))
    summary = build_summary_dump(SummaryDump(HeaderSize=header_size, Pages=pages,
                                             BitmapSize=frame_count, Bitmap=bytes(bitmap),
                                             Signature=signature))
    os.ftruncate(fd, size)
    data_bytes = _pwrite_all(fd, header, 0) + _pwrite_all(fd, summary, SUMMARY_DUMP_OFFSET)
    offset = header_size
    buffer = memoryview(bytearray(_CHUNK_PAGES * PAGE_SIZE))
    for start, end, state in plan:
        if state != _DATA:
            bar.update(end - start)
            continue
        for pfn, count in _chunks(start, end):
            chunk = buffer[:count << PAGE_SHIFT]
            view.read_frames_into(pfn, chunk)
            data_bytes += _pwrite_all(fd, chunk, offset)
            offset += len(chunk)
            bar.update(count)
    return pages, data_bytes, size


def _bitmap_header_size(frame_count: int) -> int:
    end = SUMMARY_DUMP_OFFSET + SUMMARY_DUMP_FIXED_SIZE + bitmap_bytes(frame_count)
    return (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def _set_bits(bitmap: bytearray, start: int, end: int) -> None:
    """Set bits [start, end) of an LSB-first bitmap, whole bytes at a time in the middle."""
    while start < end and start & 7:
        bitmap[start >> 3] |= 1 << (start & 7)
        start += 1
    whole_end = end & ~7
    if start < whole_end:
        bitmap[start >> 3:whole_end >> 3] = b"\xff" * ((whole_end - start) >> 3)
        start = whole_end
    while start < end:
        bitmap[start >> 3] |= 1 << (start & 7)
        start += 1


def _dump_header(machine: SlatMachine, facts: KernelFacts, dump_type: int, size: int
                 ) -> DumpHeader64:
    frames = machine.frame_count
    return DumpHeader64(
        DirectoryTableBase=facts.directory_table_base, PfnDataBase=facts.pfn_database,
        PsLoadedModuleList=facts.ps_loaded_module_list,
        PsActiveProcessHead=facts.ps_active_process_head,
        KdDebuggerDataBlock=facts.kd_debugger_data_block, DumpType=dump_type,
        Runs=(PhysicalMemoryRun(0, frames),), NumberOfPages=frames, RequiredDumpSpace=size,
        SystemTime=facts.system_time, MajorVersion=facts.major_version,
        MinorVersion=facts.minor_version, MachineImageType=facts.machine_image_type,
        NumberProcessors=facts.number_processors, BugCheckCode=facts.bugcheck_code,
        BugCheckCodeParameter=tuple(facts.bugcheck_parameters),
        SystemUpTime=facts.system_up_time, ProductType=facts.product_type)


def _chunks(start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end:
        count = min(end - start, _CHUNK_PAGES)
        yield start, count
        start += count


def _pwrite_all(fd: int, data, offset: int) -> int:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    return done


def _progress(machine: SlatMachine, fmt: str, enabled: bool) -> tqdm:
    # disable=None lets tqdm switch itself off when stderr is not a terminal.
    return tqdm(total=machine.frame_count, unit="page", unit_scale=True, desc=f"writing {fmt}",
                disable=None if enabled else True, leave=False)

