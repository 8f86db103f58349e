"""_DUMP_HEADER64, its physical memory run list and _SUMMARY_DUMP.

Three oracles for the layout: ctypes (natural alignment, as MSVC lays these structures out),
clang's MSVC record layout when clang is installed, and the offsets in Volatility 3's own
crash64.json / crash_common.json, which its WindowsCrashDump64Layer reads the files with.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import volatility3
from iumdump.errors import DumpFormatError, TruncatedDumpError
from iumdump.structs.crashdump import (
    DUMP_HEADER32, DUMP_HEADER32_SIZE, DUMP_HEADER64, DUMP_HEADER64_SIZE, DUMP_TYPE_NAMES,
    EXCEPTION_RECORD64, MAX_PHYSICAL_MEMORY_RUNS,
    MAX_PHYSICAL_MEMORY_RUNS32, PHYSICAL_MEMORY_RUN64, SUMMARY_DUMP, SUMMARY_DUMP_FIXED_SIZE,
    DumpHeader64, DumpType, ExceptionRecord64, PhysicalMemoryRun, SummaryDump, bitmap_bytes,
    build_dump_header, build_summary_dump, parse_dump_header, parse_dump_header32,
    parse_summary_dump,
)

VOLATILITY_SYMBOLS = Path(volatility3.__file__).parent / "framework" / "symbols" / "windows"

U32, U64 = ctypes.c_uint32, ctypes.c_uint64


class PHYSICAL_MEMORY_RUN64_C(ctypes.Structure):
    _fields_ = [("BasePage", U64), ("PageCount", U64)]


class PHYSICAL_MEMORY_DESCRIPTOR64_C(ctypes.Structure):
    _fields_ = [("NumberOfRuns", U32), ("NumberOfPages", U64), ("Run", PHYSICAL_MEMORY_RUN64_C * 1)]


class EXCEPTION_RECORD64_C(ctypes.Structure):
    _fields_ = [("ExceptionCode", ctypes.c_int32), ("ExceptionFlags", U32),
                ("ExceptionRecord", U64), ("ExceptionAddress", U64), ("NumberParameters", U32),
                ("__unusedAlignment", U32), ("ExceptionInformation", U64 * 15)]


class _PhysicalMemoryBlock(ctypes.Union):
    _fields_ = [("PhysicalMemoryBlock", PHYSICAL_MEMORY_DESCRIPTOR64_C),
                ("PhysicalMemoryBlockBuffer", ctypes.c_ubyte * 0x2C0)]


class DUMP_HEADER64_C(ctypes.Structure):
    """The publicly documented declaration, transcribed."""
    _anonymous_ = ("u",)
    _fields_ = [
        ("Signature", U32), ("ValidDump", U32), ("MajorVersion", U32), ("MinorVersion", U32),
        ("DirectoryTableBase", U64), ("PfnDataBase", U64), ("PsLoadedModuleList", U64),
        ("PsActiveProcessHead", U64), ("MachineImageType", U32), ("NumberProcessors", U32),
        ("BugCheckCode", U32), ("BugCheckCodeParameter", U64 * 4), ("VersionUser", ctypes.c_char * 32),
        ("KdDebuggerDataBlock", U64), ("u", _PhysicalMemoryBlock),
        ("ContextRecord", ctypes.c_ubyte * 3000), ("Exception", EXCEPTION_RECORD64_C),
        ("DumpType", U32), ("RequiredDumpSpace", U64), ("SystemTime", U64),
        ("Comment", ctypes.c_char * 128), ("SystemUpTime", U64), ("MiniDumpFields", U32),
        ("SecondaryDataState", U32), ("ProductType", U32), ("SuiteMask", U32),
        ("WriterStatus", U32), ("Unused1", ctypes.c_ubyte), ("KdSecondaryVersion", ctypes.c_ubyte),
        ("Unused2", ctypes.c_ubyte * 2), ("_reserved0", ctypes.c_ubyte * 4016),
    ]


C_DECLARATIONS = """
typedef unsigned int ULONG; typedef unsigned long long ULONG64; typedef unsigned char UCHAR;
typedef int LONG;
typedef struct _PHYSICAL_MEMORY_RUN64 { ULONG64 BasePage; ULONG64 PageCount; } PHYSICAL_MEMORY_RUN64;
typedef struct _PHYSICAL_MEMORY_DESCRIPTOR64 {
    ULONG NumberOfRuns; ULONG64 NumberOfPages; PHYSICAL_MEMORY_RUN64 Run[1];
} PHYSICAL_MEMORY_DESCRIPTOR64;
typedef struct _EXCEPTION_RECORD64 {
    LONG ExceptionCode; ULONG ExceptionFlags; ULONG64 ExceptionRecord; ULONG64 ExceptionAddress;
    ULONG NumberParameters; ULONG __unusedAlignment; ULONG64 ExceptionInformation[15];
} EXCEPTION_RECORD64;
typedef struct _DUMP_HEADER64 {
    ULONG Signature; ULONG ValidDump; ULONG MajorVersion; ULONG MinorVersion;
    ULONG64 DirectoryTableBase; ULONG64 PfnDataBase; ULONG64 PsLoadedModuleList;
    ULONG64 PsActiveProcessHead; ULONG MachineImageType; ULONG NumberProcessors;
    ULONG BugCheckCode; ULONG64 BugCheckCodeParameter[4]; UCHAR VersionUser[32];
    ULONG64 KdDebuggerDataBlock;
    union { PHYSICAL_MEMORY_DESCRIPTOR64 PhysicalMemoryBlock; UCHAR PhysicalMemoryBlockBuffer[0x2C0]; };
    UCHAR ContextRecord[3000]; EXCEPTION_RECORD64 Exception; ULONG DumpType;
    ULONG64 RequiredDumpSpace; ULONG64 SystemTime; UCHAR Comment[128]; ULONG64 SystemUpTime;
    ULONG MiniDumpFields; ULONG SecondaryDataState; ULONG ProductType; ULONG SuiteMask;
    ULONG WriterStatus; UCHAR Unused1; UCHAR KdSecondaryVersion; UCHAR Unused2[2];
    UCHAR _reserved0[4016];
} DUMP_HEADER64;
typedef struct _SUMMARY_DUMP64 {
    ULONG Signature; ULONG ValidDump; ULONG DumpOptions; UCHAR Padding0[0x14];
    ULONG64 HeaderSize; ULONG64 Pages; ULONG64 BitmapSize; ULONG Bitmap[1];
} SUMMARY_DUMP64;
int sizes[] = { sizeof(DUMP_HEADER64), sizeof(SUMMARY_DUMP64) };
"""

# Integer fields of the header and the value each is set to when its offset is located.
HEADER_INTS = ["MajorVersion", "MinorVersion", "DirectoryTableBase", "PfnDataBase",
               "PsLoadedModuleList", "PsActiveProcessHead", "MachineImageType",
               "NumberProcessors", "BugCheckCode", "KdDebuggerDataBlock", "DumpType",
               "RequiredDumpSpace", "SystemTime", "SystemUpTime", "MiniDumpFields",
               "SecondaryDataState", "ProductType", "SuiteMask", "WriterStatus", "Unused1",
               "KdSecondaryVersion"]


def a_header(**changes) -> DumpHeader64:
    values = dict(DirectoryTableBase=0, PfnDataBase=0, PsLoadedModuleList=0,
                  PsActiveProcessHead=0, KdDebuggerDataBlock=0, DumpType=0, Runs=(),
                  NumberOfPages=0, MachineImageType=0, NumberProcessors=0, MajorVersion=0)
    values.update(changes)
    return DumpHeader64(**values)


def offset_in_build(**changes) -> int:
    """Offset of the first byte that changes when the given fields change: where construct puts
    them, found from the bytes alone."""
    base = build_dump_header(a_header())
    changed = build_dump_header(a_header(**changes))
    return next(i for i, (a, b) in enumerate(zip(base, changed)) if a != b)


def test_sizes():
    assert len(build_dump_header(a_header())) == DUMP_HEADER64_SIZE == 0x2000
    assert ctypes.sizeof(DUMP_HEADER64_C) == 0x2000
    assert EXCEPTION_RECORD64.sizeof() == ctypes.sizeof(EXCEPTION_RECORD64_C) == 0x98
    assert PHYSICAL_MEMORY_RUN64.sizeof() == ctypes.sizeof(PHYSICAL_MEMORY_RUN64_C) == 0x10
    assert len(build_summary_dump(SummaryDump(0, 0, 0, b""))) == SUMMARY_DUMP_FIXED_SIZE == 0x38
    for runs in (0, 1, MAX_PHYSICAL_MEMORY_RUNS):
        header = a_header(Runs=tuple(PhysicalMemoryRun(i, 1) for i in range(runs)))
        assert len(build_dump_header(header)) == 0x2000
    assert MAX_PHYSICAL_MEMORY_RUNS == 43


@pytest.mark.parametrize("name", HEADER_INTS)
def test_field_offsets_match_ctypes(name):
    assert offset_in_build(**{name: 0x5A}) == getattr(DUMP_HEADER64_C, name).offset


def test_nested_offsets_match_ctypes():
    block = DUMP_HEADER64_C.u.offset
    assert block == 0x88
    assert offset_in_build(NumberOfPages=1) == block + PHYSICAL_MEMORY_DESCRIPTOR64_C.NumberOfPages.offset
    assert offset_in_build(Runs=(PhysicalMemoryRun(1, 0),)) == block  # NumberOfRuns first
    run = build_dump_header(a_header(Runs=(PhysicalMemoryRun(0x1111, 0x2222),)))
    at = block + PHYSICAL_MEMORY_DESCRIPTOR64_C.Run.offset
    assert run[at:at + 16] == (0x1111).to_bytes(8, "little") + (0x2222).to_bytes(8, "little")
    assert offset_in_build(BugCheckCodeParameter=(0, 0, 1, 0)) == \
        DUMP_HEADER64_C.BugCheckCodeParameter.offset + 16
    exception = DUMP_HEADER64_C.Exception.offset
    assert offset_in_build(Exception=ExceptionRecord64(NumberParameters=1)) == \
        exception + EXCEPTION_RECORD64_C.NumberParameters.offset
    assert offset_in_build(Exception=ExceptionRecord64(ExceptionInformation=(0,) * 14 + (1,))) == \
        exception + EXCEPTION_RECORD64_C.ExceptionInformation.offset + 14 * 8
    for name in ("VersionUser", "ContextRecord", "Comment"):
        size = getattr(DUMP_HEADER64_C, name).size
        assert offset_in_build(**{name: b"\x01" + bytes(size - 1)}) == \
            getattr(DUMP_HEADER64_C, name).offset


def test_signature_bytes():
    """Regression: the _SUMMARY_DUMP was built (and required) as ``SDMPDU64``, borrowing the x64
    header's ValidDump; Windows writes ``SDMPDUMP`` or ``FDMPDUMP`` (kdmp-parser BMP_HEADER64,
    LeechCore device_file.c, rizin dmp_specs.h), so every real bitmap dump was refused."""
    raw = build_dump_header(a_header())
    assert raw[:8] == b"PAGEDU64"
    summary = build_summary_dump(SummaryDump(0x3000, 0, 0, b""))
    assert summary[:8] == b"SDMP" + b"DUMP"
    full = build_summary_dump(SummaryDump(0x3000, 0, 0, b"", Signature=b"FDMP"))
    assert full[:8] == b"FDMPDUMP"


# kdmp-parser BMP_HEADER64: Signature, ValidDump, padding to FirstPage at 0x20,
# TotalPresentPages, Pages (bits), then the bitmap.
BMP_HEADER64 = struct.Struct("<4s4s24xQQQ")


@pytest.mark.parametrize("signature", [b"SDMP", b"FDMP"])
def test_summary_headers_as_windows_writes_them_parse(signature):
    """A summary header packed from kdmp-parser's BMP_HEADER64 layout (not from our definition)
    parses, both signatures LeechCore and rizin accept."""
    bitmap = bytes([0b101, 0, 0, 0x80])
    raw = BMP_HEADER64.pack(signature, b"DUMP", 0x3000, 3, 32) + bitmap
    summary = parse_summary_dump(raw)
    assert (summary.Signature, summary.HeaderSize, summary.Pages, summary.BitmapSize) == \
        (signature, 0x3000, 3, 32)
    assert [pfn for pfn in range(32) if summary.has_page(pfn)] == [0, 2, 31]
    assert build_summary_dump(summary) == raw


@pytest.mark.parametrize("head", [b"SDMPDU64", b"KDMPDUMP", b"PAGEDUMP", bytes(8)])
def test_summary_headers_windows_does_not_write_are_refused(head):
    with pytest.raises(DumpFormatError) as err:
        parse_summary_dump(head + bytes(0x30))
    assert "\n" not in str(err.value)


def test_x86_header_as_volatility_and_leechcore_read_it():
    """The x86 _DUMP_HEADER packed at the offsets of Volatility's crash.json (LeechCore reads
    the run list at 0x64 and DumpType at 0xF88): the preflight's construct definition reads the
    same values."""
    header = bytearray(DUMP_HEADER32_SIZE)
    struct.pack_into("<4s4sII", header, 0, b"PAGE", b"DUMP", 0xF, 7601)
    struct.pack_into("<I", header, 0x10, 0x185000)           # DirectoryTableBase
    struct.pack_into("<I", header, 0x20, 0x14C)              # MachineImageType: i386
    struct.pack_into("<B", header, 0x5C, 1)                  # PaeEnabled
    struct.pack_into("<IIIIII", header, 0x64, 2, 48, 1, 16, 0x100, 32)  # two runs
    struct.pack_into("<I", header, 0xF88, 1)                 # DumpType
    parsed = parse_dump_header32(bytes(header))
    assert (parsed.MajorVersion, parsed.MinorVersion, parsed.DirectoryTableBase,
            parsed.MachineImageType, parsed.PaeEnabled, parsed.DumpType) == \
        (0xF, 7601, 0x185000, 0x14C, 1, 1)
    assert parsed.Runs == (PhysicalMemoryRun(1, 16), PhysicalMemoryRun(0x100, 32))
    assert parsed.NumberOfPages == 48
    struct.pack_into("<I", header, 0x64, MAX_PHYSICAL_MEMORY_RUNS32 + 1)
    with pytest.raises(DumpFormatError, match="at most 86"):
        parse_dump_header32(bytes(header))


X86_INTS = {"MajorVersion": 4, "MinorVersion": 4, "DirectoryTableBase": 4, "PfnDataBase": 4,
            "PsLoadedModuleList": 4, "PsActiveProcessHead": 4, "MachineImageType": 4,
            "NumberProcessors": 4, "BugCheckCode": 4, "PaeEnabled": 1, "KdSecondaryVersion": 1,
            "KdDebuggerDataBlock": 4, "DumpType": 4, "MiniDumpFields": 4,
            "SecondaryDataState": 4, "ProductType": 4, "SuiteMask": 4, "WriterStatus": 4,
            "RequiredDumpSpace": 8, "SystemUpTime": 8, "SystemTime": 8}


def test_x86_header_offsets_match_volatility_crash_json():
    """Each field of our x86 definition, set alone to a marker, lands where crash.json puts it."""
    volatility = _volatility_fields("crash", "_DUMP_HEADER")
    zeros = dict({name: 0 for name in X86_INTS}, BugCheckCodeParameter=[0] * 4,
                 PhysicalMemoryBlockBuffer=dict(NumberOfRuns=0, NumberOfPages=0, Run=[]))
    assert len(DUMP_HEADER32.build(zeros)) == DUMP_HEADER32_SIZE
    for name, size in X86_INTS.items():
        marker = 0x5A
        raw = DUMP_HEADER32.build(dict(zeros, **{name: marker}))
        assert raw.index(bytes([marker]), 8) == volatility[name], name
    assert volatility["PhysicalMemoryBlockBuffer"] == 0x64


def test_dump_type_names_cover_the_cited_types():
    """kdmp-parser-rs DumpType (1, 5, 6, 8, 9, 10) and rizin DMP_DUMPTYPE_* (1-7)."""
    assert set(DUMP_TYPE_NAMES) == set(range(1, 11))
    assert DumpType.LIVE_KERNEL == 6 and DumpType.BITMAP == 5


def _volatility_fields(table: str, struct: str) -> dict[str, int]:
    with open(VOLATILITY_SYMBOLS / f"{table}.json") as handle:
        types = json.load(handle)["user_types"]
    return {name: f["offset"] for name, f in types[struct]["fields"].items()}


def test_offsets_match_volatility_crash64_json():
    volatility = _volatility_fields("crash64", "_DUMP_HEADER64")
    for name in HEADER_INTS:
        assert offset_in_build(**{name: 0x5A}) == volatility[name], name
    assert volatility["PhysicalMemoryBlockBuffer"] == DUMP_HEADER64_C.u.offset
    assert volatility["ContextRecord"] == DUMP_HEADER64_C.ContextRecord.offset
    assert volatility["Exception"] == DUMP_HEADER64_C.Exception.offset
    descriptor = _volatility_fields("crash64", "_PHYSICAL_MEMORY_DESCRIPTOR64")
    assert descriptor["NumberOfRuns"] == 0 and descriptor["Run"] == 16
    # (Volatility types NumberOfPages as a ULONG at 4 and never reads it; see crashdump.py.)
    run = _volatility_fields("crash64", "_PHYSICAL_MEMORY_RUN64")
    assert run == {"BasePage": 0, "PageCount": 8}


def test_summary_offsets_match_volatility_crash_common_json():
    volatility = _volatility_fields("crash_common", "_SUMMARY_DUMP")
    summary = SummaryDump(HeaderSize=0x1111, Pages=0x2222, BitmapSize=32,
                          Bitmap=b"\x33\x33\x33\x33", DumpOptions=0x4444)
    raw = build_summary_dump(summary)
    for name, value in (("HeaderSize", 0x1111), ("Pages", 0x2222), ("BitmapSize", 32),
                        ("DumpOptions", 0x4444)):
        at = volatility[name]
        width = 4 if name == "DumpOptions" else 8
        assert raw[at:at + width] == value.to_bytes(width, "little"), name
    assert raw[volatility["BufferLong"]:] == b"\x33" * 4


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not installed")
def test_layout_matches_clang_msvc_record_layout(tmp_path):
    source = tmp_path / "dump.c"
    source.write_text(C_DECLARATIONS)
    dump = subprocess.run(["clang", "-target", "x86_64-pc-windows-msvc", "-fsyntax-only",
                           "-Xclang", "-fdump-record-layouts", str(source)],
                          capture_output=True, text=True, check=True).stdout
    layouts: dict[str, dict[str, int]] = {}
    sizes: dict[str, int] = {}
    current = None
    for line in dump.splitlines():
        top = re.match(r"\s+0 \| struct (\w+)$", line)
        if top:
            current = top.group(1)
            layouts[current] = {}
            continue
        member = re.match(r"\s+(\d+) \|   (?:struct \w+ |union \w+ |[\w\[\]\d]+ )(\w+)$", line)
        if member and current:
            layouts[current].setdefault(member.group(2), int(member.group(1)))
        size = re.match(r"\s+\| \[sizeof=(\d+),", line)
        if size and current:
            sizes[current] = int(size.group(1))
    header = layouts["_DUMP_HEADER64"]
    assert sizes["_DUMP_HEADER64"] == 0x2000
    for name in HEADER_INTS:
        assert offset_in_build(**{name: 0x5A}) == header[name], name
    assert sizes["_EXCEPTION_RECORD64"] == EXCEPTION_RECORD64.sizeof()
    summary = layouts["_SUMMARY_DUMP64"]
    assert summary["HeaderSize"] == 0x20 and summary["Pages"] == 0x28
    assert summary["BitmapSize"] == 0x30 and summary["Bitmap"] == SUMMARY_DUMP_FIXED_SIZE


# -- round trips ---------------------------------------------------------------------------

u32 = st.integers(0, 2 ** 32 - 1)
u64 = st.integers(0, 2 ** 64 - 1)
runs = st.lists(st.builds(PhysicalMemoryRun, u64, u64), max_size=MAX_PHYSICAL_MEMORY_RUNS)
headers = st.builds(
    DumpHeader64, DirectoryTableBase=u64, PfnDataBase=u64, PsLoadedModuleList=u64,
    PsActiveProcessHead=u64, KdDebuggerDataBlock=u64, DumpType=u32,
    Runs=runs.map(tuple), NumberOfPages=u64, RequiredDumpSpace=u64, SystemTime=u64,
    MajorVersion=u32, MinorVersion=u32, MachineImageType=u32, NumberProcessors=u32,
    BugCheckCode=u32, BugCheckCodeParameter=st.tuples(u64, u64, u64, u64),
    VersionUser=st.binary(min_size=32, max_size=32),
    Exception=st.builds(ExceptionRecord64, ExceptionCode=st.integers(-2 ** 31, 2 ** 31 - 1),
                        NumberParameters=u32,
                        ExceptionInformation=st.lists(u64, min_size=15, max_size=15).map(tuple)),
    SystemUpTime=u64, WriterStatus=u32, Unused1=st.integers(0, 255),
    RunListPadding1=st.none())


@settings(max_examples=60, deadline=None)
@given(headers)
def test_header_parse_of_build_is_identity(header):
    assert parse_dump_header(build_dump_header(header)) == header


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 64 - 1), st.integers(0, MAX_PHYSICAL_MEMORY_RUNS))
def test_header_build_of_parse_is_identity(seed, run_count):
    # Every byte random (padding included), only the signature and a run count that fits fixed.
    raw = bytearray(b"PAGEDU64" + random.Random(seed).randbytes(0x2000 - 8))
    raw[0x88:0x8C] = run_count.to_bytes(4, "little")
    assert build_dump_header(parse_dump_header(bytes(raw))) == bytes(raw)
    assert DUMP_HEADER64.build(DUMP_HEADER64.parse(bytes(raw))) == bytes(raw)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300).flatmap(lambda bits: st.builds(
    SummaryDump, HeaderSize=u64, Pages=u64, BitmapSize=st.just(bits),
    Bitmap=st.binary(min_size=bitmap_bytes(bits), max_size=bitmap_bytes(bits)),
    Signature=st.sampled_from([b"SDMP", b"FDMP"]), DumpOptions=u32,
    Padding0=st.binary(min_size=0x14, max_size=0x14))))
def test_summary_round_trips(summary):
    raw = build_summary_dump(summary)
    assert parse_summary_dump(raw) == summary
    assert build_summary_dump(parse_summary_dump(raw)) == raw
    assert SUMMARY_DUMP.build(SUMMARY_DUMP.parse(raw)) == raw


def test_bitmap_is_lsb_first_in_whole_ulongs():
    bitmap = bytearray(bitmap_bytes(40))
    assert len(bitmap) == 8  # 40 bits take two ULONGs
    bitmap[0] = 0b0000_0101
    bitmap[4] = 0b1000_0000
    summary = parse_summary_dump(build_summary_dump(SummaryDump(0x3000, 3, 40, bytes(bitmap))))
    assert [pfn for pfn in range(40) if summary.has_page(pfn)] == [0, 2, 39]


def test_zero_run_padding_has_one_spelling():
    header = a_header(Runs=(PhysicalMemoryRun(0, 1),), RunListPadding1=bytes(0x2C0 - 0x20))
    assert header.RunListPadding1 is None
    assert parse_dump_header(build_dump_header(header)) == header


# -- errors ------------------------------------------------------------------------------------

def test_truncated_header():
    with pytest.raises(TruncatedDumpError) as err:
        parse_dump_header(build_dump_header(a_header())[:0x100])
    assert isinstance(err.value, EOFError) and "\n" not in str(err.value)


def test_bad_signature_is_one_line():
    raw = b"PAGEDUMP" + build_dump_header(a_header())[8:]  # a 32-bit dump's ValidDump
    with pytest.raises(DumpFormatError) as err:
        parse_dump_header(raw)
    assert "ValidDump" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DumpFormatError):
        parse_summary_dump(b"XDMPDU64" + bytes(0x30))


def test_too_many_runs_refused():
    with pytest.raises(DumpFormatError):
        build_dump_header(a_header(Runs=(PhysicalMemoryRun(0, 1),) * (MAX_PHYSICAL_MEMORY_RUNS + 1)))


def test_bitmap_length_must_match_bitmap_size():
    with pytest.raises(DumpFormatError):
        build_summary_dump(SummaryDump(0x3000, 0, 33, bytes(4)))


def test_dataclasses_are_the_public_face():
    header = parse_dump_header(build_dump_header(a_header(Runs=(PhysicalMemoryRun(0, 8),))))
    assert dataclasses.is_dataclass(header) and header.Runs == (PhysicalMemoryRun(0, 8),)
    assert dataclasses.is_dataclass(header.Exception)
