"""Windows crash dump headers: _DUMP_HEADER64 (x64) and _DUMP_HEADER (x86), their physical memory
run lists, and the _SUMMARY_DUMP of bitmap dumps.

Sources: Volatility 3 ``framework/symbols/windows/crash64.json``, ``crash.json`` and
``crash_common.json`` (the field offsets its crash dump layers read) and
``framework/layers/crash.py`` (how it reads them); kdmp-parser ``src/lib/kdmp-parser-structs.h``
(``HEADER64``, ``BMP_HEADER64``: Signature ``SDMP`` or ``FDMP``, ValidDump ``DUMP``, FirstPage at
0x20) and kdmp-parser-rs ``src/structs.rs`` (``DumpType``); LeechCore
``leechcore/device_file.c`` (accepts ``FDMPDUMP`` and ``SDMPDUMP`` at 0x2000 for DumpType 5 and
6); rizin ``librz/bin/format/dmp/dmp_specs.h`` (``DMP_BMP_MAGIC`` / ``DMP_BMP_FULL_MAGIC``).

A complete dump (DumpType 1) is the header followed by the pages of each run of the physical
memory descriptor, back to back. A bitmap dump (DumpType 5, and the kernel bitmap dump, DumpType 6)
has a _SUMMARY_DUMP after the header (x64: at 0x2000) whose bitmap (bit n = frame n, LSB first
within each ULONG) says which frames are stored; those frames follow, in ascending order, from
the file offset HeaderSize. The summary's signature is ``SDMP`` (a kernel or automatic dump: kernel
memory only) or ``FDMP`` (a complete memory dump), and its ValidDump is ``DUMP`` — not the
``DU64`` of the x64 header.

One divergence from Volatility's JSON: it types _PHYSICAL_MEMORY_DESCRIPTOR64.NumberOfPages as a
ULONG at 4; the structure has a ULONG64 there, aligned to 8 (Volatility never reads the field).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum

from construct import (
    Array, Bytes, Const, ConstructError, Default, Int8ul, Int32sl, Int32ul, Int64ul, OneOf, Struct,
    this,
)

from ..errors import DumpFormatError, TruncatedDumpError
from .bitfields import construct_message
from .pe import IMAGE_FILE_MACHINE_AMD64

DUMP_HEADER64_SIZE = 0x2000
RUN_LIST_OFFSET64 = 0x88                      # PhysicalMemoryBlockBuffer (crash64.json)
DUMP_TYPE_OFFSET64 = 0xF98                    # DumpType (crash64.json; kdmp-parser HEADER64)
SUMMARY_DUMP_OFFSET = DUMP_HEADER64_SIZE      # Volatility: page_size * headerpages (2)
PHYSICAL_MEMORY_BLOCK_SIZE = 0x2C0            # ContextRecord (0x348) - PhysicalMemoryBlockBuffer (0x88)
MAX_PHYSICAL_MEMORY_RUNS = (PHYSICAL_MEMORY_BLOCK_SIZE - 0x10) // 0x10

DUMP_SIGNATURE = b"PAGE"
DUMP_VALID_DUMP64 = b"DU64"                   # the x64 _DUMP_HEADER64
DUMP_VALID_DUMP = b"DUMP"                     # the x86 _DUMP_HEADER, and every _SUMMARY_DUMP
SUMMARY_DUMP_SIGNATURE = b"SDMP"              # a kernel/automatic (or live kernel) bitmap dump
FULL_BITMAP_DUMP_SIGNATURE = b"FDMP"          # a complete-memory bitmap dump
SUMMARY_DUMP_SIGNATURES = (SUMMARY_DUMP_SIGNATURE, FULL_BITMAP_DUMP_SIGNATURE)


class DumpType(IntEnum):
    """_DUMP_HEADER*.DumpType (kdmp-parser DumpType_t, kdmp-parser-rs DumpType, rizin
    DMP_DUMPTYPE_*). A header may hold any number: parse it as an int, and take it as a DumpType
    only where it is one of these."""

    FULL = 1
    SUMMARY = 2          # an old-style kernel (summary) dump
    HEADER = 3           # header only
    TRIAGE = 4           # a small (triage, mini) dump
    BITMAP = 5           # DUMP_TYPE_BITMAP_FULL
    # DUMP_TYPE_BITMAP_KERNEL (wdm.h; rizin DMP_DUMPTYPE_BITMAPKERNEL): the kernel and automatic
    # memory dumps written at a bug check, and Task Manager's live kernel memory dump (kdmp-parser
    # LiveKernelMemory); LIVE_KERNEL is its first name here, kept.
    BITMAP_KERNEL = 6
    LIVE_KERNEL = 6
    AUTOMATIC = 7        # DUMP_TYPE_AUTOMATIC: the setting; its dumps on disk say 6
    KERNEL_MEMORY = 8    # .dump /k
    KERNEL_AND_USER = 9  # .dump /ka
    COMPLETE_MEMORY = 10  # .dump /f

    @property
    def description(self) -> str:
        return DUMP_TYPE_NAMES[self]


DUMP_TYPE_NAMES = {
    DumpType.FULL: "complete memory dump", DumpType.SUMMARY: "kernel summary dump",
    DumpType.HEADER: "header-only dump", DumpType.TRIAGE: "small (triage) dump",
    DumpType.BITMAP: "bitmap dump", DumpType.BITMAP_KERNEL: "kernel bitmap dump: kernel, automatic or live kernel memory dump",
    DumpType.AUTOMATIC: "automatic dump",
    DumpType.KERNEL_MEMORY: "kernel memory dump (.dump /k)",
    DumpType.KERNEL_AND_USER: "kernel and user memory dump (.dump /ka)",
    DumpType.COMPLETE_MEMORY: "complete memory dump (.dump /f)",
}


def _pad(size) -> object:
    """Explicit filler that parses whatever is there and builds zeros unless given."""
    if callable(size):
        return Default(Bytes(size), lambda ctx: bytes(size(ctx)))
    return Default(Bytes(size), bytes(size))


# _PHYSICAL_MEMORY_RUN64 (crash64.json): one run of physical frames.
PHYSICAL_MEMORY_RUN64 = Struct(
    "BasePage" / Int64ul,
    "PageCount" / Int64ul,
)

# _PHYSICAL_MEMORY_DESCRIPTOR64 as it sits in the header's fixed PhysicalMemoryBlockBuffer area;
# the runs used are followed by the rest of the area.
PHYSICAL_MEMORY_DESCRIPTOR64 = Struct(
    "NumberOfRuns" / Int32ul,
    "Padding0" / _pad(4),
    "NumberOfPages" / Int64ul,
    "Run" / Array(this.NumberOfRuns, PHYSICAL_MEMORY_RUN64),
    "Padding1" / _pad(lambda ctx: PHYSICAL_MEMORY_BLOCK_SIZE - 0x10 - 0x10 * ctx.NumberOfRuns),
)

# _EXCEPTION_RECORD64 (crash64.json).
EXCEPTION_RECORD64 = Struct(
    "ExceptionCode" / Int32sl,
    "ExceptionFlags" / Int32ul,
    "ExceptionRecord" / Int64ul,
    "ExceptionAddress" / Int64ul,
    "NumberParameters" / Int32ul,
    "Padding0" / _pad(4),
    "ExceptionInformation" / Array(15, Int64ul),
)

# _DUMP_HEADER64 (crash64.json; 0x2000 bytes).
DUMP_HEADER64 = Struct(
    "Signature" / Const(DUMP_SIGNATURE),
    "ValidDump" / Const(DUMP_VALID_DUMP64),
    "MajorVersion" / Int32ul,
    "MinorVersion" / Int32ul,
    "DirectoryTableBase" / Int64ul,
    "PfnDataBase" / Int64ul,
    "PsLoadedModuleList" / Int64ul,
    "PsActiveProcessHead" / Int64ul,
    "MachineImageType" / Int32ul,
    "NumberProcessors" / Int32ul,
    "BugCheckCode" / Int32ul,
    "Padding0" / _pad(4),
    "BugCheckCodeParameter" / Array(4, Int64ul),
    "VersionUser" / _pad(32),
    "KdDebuggerDataBlock" / Int64ul,
    "PhysicalMemoryBlockBuffer" / PHYSICAL_MEMORY_DESCRIPTOR64,
    "ContextRecord" / _pad(3000),
    "Exception" / EXCEPTION_RECORD64,
    "DumpType" / Int32ul,
    "Padding1" / _pad(4),
    "RequiredDumpSpace" / Int64ul,
    "SystemTime" / Int64ul,
    "Comment" / _pad(128),
    "SystemUpTime" / Int64ul,
    "MiniDumpFields" / Int32ul,
    "SecondaryDataState" / Int32ul,
    "ProductType" / Int32ul,
    "SuiteMask" / Int32ul,
    "WriterStatus" / Int32ul,
    "Unused1" / Int8ul,
    "KdSecondaryVersion" / Int8ul,
    "Unused2" / _pad(2),
    "Reserved0" / _pad(DUMP_HEADER64_SIZE - 0x1050),
)

# -- x86 ------------------------------------------------------------------------------------------
DUMP_HEADER32_SIZE = 0x1000
RUN_LIST_OFFSET32 = 0x64                      # PhysicalMemoryBlockBuffer (crash.json)
DUMP_TYPE_OFFSET32 = 0xF88                    # DumpType (crash.json; LeechCore)
PHYSICAL_MEMORY_BLOCK32_SIZE = 700  # ContextRecord (0x320) - PhysicalMemoryBlockBuffer (0x64)
MAX_PHYSICAL_MEMORY_RUNS32 = (PHYSICAL_MEMORY_BLOCK32_SIZE - 8) // 8

# _PHYSICAL_MEMORY_DESCRIPTOR and _PHYSICAL_MEMORY_RUN (crash.json): ULONG page numbers.
PHYSICAL_MEMORY_RUN32 = Struct(
    "BasePage" / Int32ul,
    "PageCount" / Int32ul,
)
PHYSICAL_MEMORY_DESCRIPTOR32 = Struct(
    "NumberOfRuns" / Int32ul,
    "NumberOfPages" / Int32ul,
    "Run" / Array(this.NumberOfRuns, PHYSICAL_MEMORY_RUN32),
    "Padding0" / _pad(lambda ctx: PHYSICAL_MEMORY_BLOCK32_SIZE - 8 - 8 * ctx.NumberOfRuns),
)

# _DUMP_HEADER (crash.json, 0x1000 bytes; LeechCore reads the run list at 0x64 and DumpType at
# 0xF88; rizin's dmp32_header agrees up to Comment). What lies between Comment and DumpType, and
# the context and exception records, is kept as bytes.
DUMP_HEADER32 = Struct(
    "Signature" / Const(DUMP_SIGNATURE),
    "ValidDump" / Const(DUMP_VALID_DUMP),
    "MajorVersion" / Int32ul,
    "MinorVersion" / Int32ul,
    "DirectoryTableBase" / Int32ul,
    "PfnDataBase" / Int32ul,
    "PsLoadedModuleList" / Int32ul,
    "PsActiveProcessHead" / Int32ul,
    "MachineImageType" / Int32ul,
    "NumberProcessors" / Int32ul,
    "BugCheckCode" / Int32ul,
    "BugCheckCodeParameter" / Array(4, Int32ul),
    "VersionUser" / _pad(32),
    "PaeEnabled" / Int8ul,
    "KdSecondaryVersion" / Int8ul,
    "VersionUser2" / _pad(2),
    "KdDebuggerDataBlock" / Int32ul,
    "PhysicalMemoryBlockBuffer" / PHYSICAL_MEMORY_DESCRIPTOR32,
    "ContextRecord" / _pad(1200),
    "Exception" / _pad(0x50),                # _EXCEPTION_RECORD32
    "Comment" / _pad(128),
    "Padding0" / _pad(0xF88 - 0x8A0),
    "DumpType" / Int32ul,
    "MiniDumpFields" / Int32ul,
    "SecondaryDataState" / Int32ul,
    "ProductType" / Int32ul,
    "SuiteMask" / Int32ul,
    "WriterStatus" / Int32ul,
    "RequiredDumpSpace" / Int64ul,
    "Padding1" / _pad(0x10),
    "SystemUpTime" / Int64ul,
    "SystemTime" / Int64ul,
    "Reserved0" / _pad(56),
)

SUMMARY_DUMP_FIXED_SIZE = 0x38  # crash_common.json: the bitmap (BufferLong/BufferChar) starts here


def bitmap_bytes(bitmap_size: int) -> int:
    """Bytes of a bitmap of ``bitmap_size`` bits: whole ULONGs, as Volatility reads it."""
    return (bitmap_size + 31) // 32 * 4


# _SUMMARY_DUMP (crash_common.json; kdmp-parser BMP_HEADER64) with its bitmap. HeaderSize
# (kdmp-parser: FirstPage) is the file offset of the first stored page; Pages is the number of
# bits set; BitmapSize the number of bits (frames).
# The fixed part alone, for readers that stream the bitmap rather than hold it.
_SUMMARY_DUMP_COUNTS = (
    "DumpOptions" / Int32ul,
    "Padding0" / _pad(0x14),
    "HeaderSize" / Int64ul,
    "Pages" / Int64ul,
    "BitmapSize" / Int64ul,
)
SUMMARY_DUMP_FIXED = Struct(
    "Signature" / Default(OneOf(Bytes(4), list(SUMMARY_DUMP_SIGNATURES)), SUMMARY_DUMP_SIGNATURE),
    "ValidDump" / Const(DUMP_VALID_DUMP),
    *_SUMMARY_DUMP_COUNTS,
)
# The same bytes with the signatures taken as they are: Volatility's crash layer reads HeaderSize
# and the bitmap without looking at them (framework/layers/crash.py), so a reader that must accept
# what Volatility accepts reads the sizes whatever the signature says, and judges it apart.
SUMMARY_DUMP_FIXED_AS_STORED = Struct(
    "Signature" / Bytes(4),
    "ValidDump" / Bytes(4),
    *_SUMMARY_DUMP_COUNTS,
)
SUMMARY_DUMP = Struct(
    *SUMMARY_DUMP_FIXED.subcons,
    "Bitmap" / Bytes(lambda ctx: bitmap_bytes(ctx.BitmapSize)),
)


# -- public dataclasses ----------------------------------------------------------------------

@dataclass(frozen=True)
class PhysicalMemoryRun:
    BasePage: int
    PageCount: int


@dataclass(frozen=True)
class ExceptionRecord64:
    ExceptionCode: int = 0
    ExceptionFlags: int = 0
    ExceptionRecord: int = 0
    ExceptionAddress: int = 0
    NumberParameters: int = 0
    ExceptionInformation: tuple[int, ...] = (0,) * 15
    Padding0: bytes = bytes(4)


@dataclass(frozen=True)
class DumpHeader64:
    """_DUMP_HEADER64 with its run list. Fields keep their Windows names; the ``Padding*`` /
    ``Reserved0`` fields hold whatever bytes the file has there, so any header round-trips."""

    DirectoryTableBase: int
    PfnDataBase: int
    PsLoadedModuleList: int
    PsActiveProcessHead: int
    KdDebuggerDataBlock: int
    DumpType: int
    Runs: tuple[PhysicalMemoryRun, ...]
    NumberOfPages: int
    RequiredDumpSpace: int = 0
    SystemTime: int = 0
    MajorVersion: int = 0xF           # 0xF: a free (retail) build
    MinorVersion: int = 0             # the build number
    MachineImageType: int = IMAGE_FILE_MACHINE_AMD64
    NumberProcessors: int = 1
    BugCheckCode: int = 0
    BugCheckCodeParameter: tuple[int, int, int, int] = (0, 0, 0, 0)
    VersionUser: bytes = bytes(32)
    ContextRecord: bytes = bytes(3000)
    Exception: ExceptionRecord64 = field(default_factory=ExceptionRecord64)
    Comment: bytes = bytes(128)
    SystemUpTime: int = 0
    MiniDumpFields: int = 0
    SecondaryDataState: int = 0
    ProductType: int = 0
    SuiteMask: int = 0
    WriterStatus: int = 0
    Unused1: int = 0
    KdSecondaryVersion: int = 0
    Unused2: bytes = bytes(2)
    Padding0: bytes = bytes(4)
    Padding1: bytes = bytes(4)
    RunListPadding0: bytes = bytes(4)
    RunListPadding1: bytes | None = None  # the run area after the runs; None: all zeros
    Reserved0: bytes = bytes(DUMP_HEADER64_SIZE - 0x1050)

    def __post_init__(self) -> None:
        # One spelling for "zeros after the runs", so parse(build(x)) == x.
        if self.RunListPadding1 is not None and not any(self.RunListPadding1):
            object.__setattr__(self, "RunListPadding1", None)


@dataclass(frozen=True)
class DumpHeader32:
    """The parts of an x86 _DUMP_HEADER a reader needs before stacking layers on it."""

    MajorVersion: int
    MinorVersion: int
    DirectoryTableBase: int
    MachineImageType: int
    DumpType: int
    Runs: tuple[PhysicalMemoryRun, ...]
    NumberOfPages: int
    PaeEnabled: int = 0
    BugCheckCode: int = 0


@dataclass(frozen=True)
class SummaryDump:
    """_SUMMARY_DUMP and its page bitmap (``Bitmap`` as stored: whole ULONGs)."""

    HeaderSize: int
    Pages: int
    BitmapSize: int
    Bitmap: bytes
    Signature: bytes = SUMMARY_DUMP_SIGNATURE
    DumpOptions: int = 0
    Padding0: bytes = bytes(0x14)

    def has_page(self, pfn: int) -> bool:
        return 0 <= pfn < self.BitmapSize and bool(self.Bitmap[pfn >> 3] >> (pfn & 7) & 1)


def build_dump_header(header: DumpHeader64) -> bytes:
    if len(header.Runs) > MAX_PHYSICAL_MEMORY_RUNS:
        raise DumpFormatError(f"{len(header.Runs)} physical memory runs do not fit the header "
                              f"(at most {MAX_PHYSICAL_MEMORY_RUNS})")
    values = {f.name: getattr(header, f.name) for f in fields(header)
              if f.name not in ("Runs", "NumberOfPages", "Exception", "RunListPadding0",
                                "RunListPadding1")}
    descriptor = {"NumberOfRuns": len(header.Runs), "Padding0": header.RunListPadding0,
                  "NumberOfPages": header.NumberOfPages,
                  "Run": [{"BasePage": r.BasePage, "PageCount": r.PageCount} for r in header.Runs]}
    if header.RunListPadding1 is not None:
        descriptor["Padding1"] = header.RunListPadding1
    values["PhysicalMemoryBlockBuffer"] = descriptor
    values["Exception"] = {f.name: getattr(header.Exception, f.name)
                           for f in fields(header.Exception)}
    return _build(DUMP_HEADER64, values, "_DUMP_HEADER64")


def parse_dump_header(data: bytes, *, run_list: bool = True) -> DumpHeader64:
    """``run_list=False`` for a dump located by its bitmap (DumpType 5, 6): its run list is then
    not read (``Runs`` is empty), as Volatility, kdmp-parser and rizin do not read it there —
    Windows may leave it as nt!IoFillDumpHeader's ``PAGE`` filler (kdmp-parser
    ``PHYSMEM_DESC::LooksGood``, checked for DumpType 1 only)."""
    if not run_list:
        data = _without_runs(data, RUN_LIST_OFFSET64)
    parsed = _parse(DUMP_HEADER64, data, DUMP_HEADER64_SIZE, "_DUMP_HEADER64",
                    runs=(MAX_PHYSICAL_MEMORY_RUNS, RUN_LIST_OFFSET64))
    block = parsed.PhysicalMemoryBlockBuffer
    exception = parsed.Exception
    return DumpHeader64(
        Runs=tuple(PhysicalMemoryRun(r.BasePage, r.PageCount) for r in block.Run),
        NumberOfPages=block.NumberOfPages,
        RunListPadding0=block.Padding0,
        RunListPadding1=None if not any(block.Padding1) else block.Padding1,
        Exception=ExceptionRecord64(
            **{f.name: (tuple(exception[f.name]) if f.name == "ExceptionInformation"
                        else exception[f.name]) for f in fields(ExceptionRecord64)}),
        BugCheckCodeParameter=tuple(parsed.BugCheckCodeParameter),
        **{f.name: parsed[f.name] for f in fields(DumpHeader64)
           if f.name not in ("Runs", "NumberOfPages", "RunListPadding0", "RunListPadding1",
                             "Exception", "BugCheckCodeParameter")},
    )


def parse_dump_header32(data: bytes, *, run_list: bool = True) -> DumpHeader32:
    """``run_list``: as for :func:`parse_dump_header`."""
    if not run_list:
        data = _without_runs(data, RUN_LIST_OFFSET32)
    parsed = _parse(DUMP_HEADER32, data, DUMP_HEADER32_SIZE, "_DUMP_HEADER", runs=(
        MAX_PHYSICAL_MEMORY_RUNS32, RUN_LIST_OFFSET32))
    block = parsed.PhysicalMemoryBlockBuffer
    return DumpHeader32(
        MajorVersion=parsed.MajorVersion, MinorVersion=parsed.MinorVersion,
        DirectoryTableBase=parsed.DirectoryTableBase, MachineImageType=parsed.MachineImageType,
        DumpType=parsed.DumpType, PaeEnabled=parsed.PaeEnabled, BugCheckCode=parsed.BugCheckCode,
        Runs=tuple(PhysicalMemoryRun(r.BasePage, r.PageCount) for r in block.Run),
        NumberOfPages=block.NumberOfPages)


def build_summary_dump(summary: SummaryDump) -> bytes:
    if len(summary.Bitmap) != bitmap_bytes(summary.BitmapSize):
        raise DumpFormatError(f"bitmap of {len(summary.Bitmap)} bytes does not hold "
                              f"{summary.BitmapSize} bits in whole ULONGs")
    return _build(SUMMARY_DUMP, {f.name: getattr(summary, f.name) for f in fields(summary)},
                  "_SUMMARY_DUMP")


def parse_summary_dump(data: bytes) -> SummaryDump:
    parsed = _parse(SUMMARY_DUMP, data, SUMMARY_DUMP_FIXED_SIZE, "_SUMMARY_DUMP")
    return SummaryDump(**{f.name: parsed[f.name] for f in fields(SummaryDump)})


def parse_summary_dump_fixed(data: bytes) -> tuple[int, int, int]:
    """``(HeaderSize, Pages, BitmapSize)`` from the first ``SUMMARY_DUMP_FIXED_SIZE`` bytes,
    with the signatures checked; the bitmap itself is left to the caller to stream."""
    parsed = _parse(SUMMARY_DUMP_FIXED, data, SUMMARY_DUMP_FIXED_SIZE, "_SUMMARY_DUMP")
    return parsed.HeaderSize, parsed.Pages, parsed.BitmapSize


@dataclass(frozen=True)
class StoredSummary:
    """The fixed part of a _SUMMARY_DUMP as the file holds it, signatures unchecked."""

    signature: bytes     # Signature and ValidDump, 8 bytes
    header_size: int
    pages: int
    bitmap_size: int

    @property
    def as_windows_writes(self) -> bool:
        return self.signature in WINDOWS_SUMMARY_HEADS


WINDOWS_SUMMARY_HEADS = tuple(s + DUMP_VALID_DUMP for s in SUMMARY_DUMP_SIGNATURES)


def read_summary_dump_fixed(data: bytes) -> StoredSummary:
    """The fixed part of a _SUMMARY_DUMP read as Volatility reads it: sizes whatever the
    signatures say (a file with ``SDMPDU64`` there stacks in Volatility all the same)."""
    parsed = _parse(SUMMARY_DUMP_FIXED_AS_STORED, data, SUMMARY_DUMP_FIXED_SIZE, "_SUMMARY_DUMP")
    return StoredSummary(parsed.Signature + parsed.ValidDump, parsed.HeaderSize, parsed.Pages,
                         parsed.BitmapSize)


def _without_runs(data: bytes, offset: int) -> bytes:
    """``data`` with the run list's NumberOfRuns read as 0 (the list's bytes are kept)."""
    return bytes(data[:offset]) + bytes(4) + bytes(data[offset + 4:])


def header_dump_type(data: bytes) -> int:
    """The DumpType of a whole x64 (``PAGEDU64``) or x86 (``PAGEDUMP``) header, read before the
    rest: it says whether the run list is read."""
    offset = DUMP_TYPE_OFFSET64 if data[4:8] == DUMP_VALID_DUMP64 else DUMP_TYPE_OFFSET32
    return int.from_bytes(data[offset:offset + 4], "little")


def _build(struct: Struct, values: dict, name: str) -> bytes:
    try:
        return struct.build(values)
    except ConstructError as exc:
        raise DumpFormatError(f"cannot build {name}: {construct_message(exc)}") from exc


def _parse(struct: Struct, data: bytes, minimum: int, name: str,
           runs: tuple[int, int] | None = None):
    """``runs``: (most runs the header's run list holds, offset of NumberOfRuns), checked first
    so a damaged count is named as such rather than read as a truncated file."""
    if len(data) < minimum:
        raise TruncatedDumpError(f"{name} needs {minimum:#x} bytes, got {len(data):#x}",
                                 offset=len(data), expected=minimum, actual=len(data))
    if runs is not None:
        most, at = runs
        count = int.from_bytes(data[at:at + 4], "little")
        if count > most:
            raise DumpFormatError(f"{name} lists {count:,} physical memory runs; its run list "
                                  f"holds at most {most}")
    try:
        return struct.parse(data)
    except ConstructError as exc:
        if "stream read less than specified amount" in str(exc):
            raise TruncatedDumpError(f"{name} is truncated ({len(data):#x} bytes)",
                                     offset=len(data), actual=len(data)) from exc
        raise DumpFormatError(f"not a {name}: {construct_message(exc)}") from exc
