"""Layout oracles: the construct definitions against ctypes and against clang's MSVC layout.

Both oracles declare the structures independently of iumdump (ctypes classes here, C in
msvc_layouts.h) and are compared field by field with what the construct definitions encode:
the offset of every field, the position and width of every bit field, and the total size.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from construct import Renamed, Struct, Transformed

from iumdump.structs.pe import IMAGE_EXPORT_DIRECTORY
from iumdump.structs.process_info import (PROCESS_BASIC_INFORMATION,
                                          PROCESS_EXTENDED_BASIC_INFORMATION,
                                          parse_extended_basic_information)
from iumdump.structs.protection import PS_PROTECTION, parse_protection

HEADER = Path(__file__).with_name("msvc_layouts.h")
CLANG_TARGETS = {"x64": "x86_64-pc-windows-msvc", "x86": "i686-pc-windows-msvc"}
GAP_PREFIX = "_bits"

# Each record's construct definition; PS_PROTECTION is a union whose whole byte is ``Level``.
CONSTRUCTS = {
    "x64": {"PROCESS_BASIC_INFORMATION": PROCESS_BASIC_INFORMATION["x64"],
            "PROCESS_EXTENDED_BASIC_INFORMATION": PROCESS_EXTENDED_BASIC_INFORMATION["x64"],
            "PS_PROTECTION": Struct("Level" / PS_PROTECTION),
            "IMAGE_EXPORT_DIRECTORY": IMAGE_EXPORT_DIRECTORY},
    "x86": {"PROCESS_BASIC_INFORMATION": PROCESS_BASIC_INFORMATION["x86"],
            "PROCESS_EXTENDED_BASIC_INFORMATION": PROCESS_EXTENDED_BASIC_INFORMATION["x86"],
            "PS_PROTECTION": Struct("Level" / PS_PROTECTION),
            "IMAGE_EXPORT_DIRECTORY": IMAGE_EXPORT_DIRECTORY},
}


# -- what the construct definitions encode ---------------------------------------------------

def word_bits(word) -> list[tuple[str, int, int]]:
    """(name, bit, width) of the named bit fields of an ``lsb_first_bitfield_word``.

    The BitStruct lists fields from the most significant bit down, so walking it backwards
    counts up from bit 0."""
    bit = 0
    found = []
    for sub in reversed(word.subcon.subcon.subcons):
        width = sub.sizeof()  # inside Bitwise, sizes are in bits
        if not sub.name.startswith(GAP_PREFIX):
            found.append((sub.name, bit, width))
        bit += width
    return found


def construct_layout(definition, base: int = 0, prefix: str = "") -> dict:
    """path → (bit offset from the record's start, size in bytes or bit width, is_bitfield).

    Nested structures contribute ``Name.`` to the path; bit fields of a flag word are named
    directly, as C's anonymous union makes them."""
    layout = {}
    offset = base
    for sub in definition.subcons:
        if isinstance(sub, Renamed) and sub.name:
            inner = sub.subcon
            if isinstance(inner, Struct):
                layout.update(construct_layout(inner, offset, f"{prefix}{sub.name}."))
            else:
                layout[prefix + sub.name] = (offset * 8, inner.sizeof(), False)
                if isinstance(inner, Transformed):  # ByteSwapped(BitStruct): a flag word
                    for name, bit, width in word_bits(inner):
                        layout[prefix + name] = (offset * 8 + bit, width, True)
        offset += sub.sizeof()
    return layout


# -- ctypes ---------------------------------------------------------------------------------

def _ctypes_pbi(pointer):
    class PROCESS_BASIC_INFORMATION(ctypes.Structure):
        _fields_ = [("ExitStatus", ctypes.c_int32), ("PebBaseAddress", pointer),
                    ("AffinityMask", pointer), ("BasePriority", ctypes.c_int32),
                    ("UniqueProcessId", pointer), ("InheritedFromUniqueProcessId", pointer)]
    return PROCESS_BASIC_INFORMATION


def _ctypes_pebi(pointer):
    class FlagBits(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint32, 1) for name in (
            "IsProtectedProcess", "IsWow64Process", "IsProcessDeleting", "IsCrossSessionCreate",
            "IsFrozen", "IsBackground", "IsStronglyNamed", "IsSecureProcess",
            "IsSubsystemProcess", "IsTrustedApp")] + [("SpareBits", ctypes.c_uint32, 22)]

    class FlagsUnion(ctypes.Union):
        _anonymous_ = ("bits",)
        _fields_ = [("Flags", ctypes.c_uint32), ("bits", FlagBits)]

    class PROCESS_EXTENDED_BASIC_INFORMATION(ctypes.Structure):
        _anonymous_ = ("flags",)
        _fields_ = [("Size", pointer), ("BasicInfo", _ctypes_pbi(pointer)), ("flags", FlagsUnion)]
    return PROCESS_EXTENDED_BASIC_INFORMATION


class _ProtectionBits(ctypes.Structure):
    _fields_ = [("Type", ctypes.c_uint8, 3), ("Audit", ctypes.c_uint8, 1),
                ("Signer", ctypes.c_uint8, 4)]


class _ProtectionUnion(ctypes.Union):
    _anonymous_ = ("bits",)
    _fields_ = [("Level", ctypes.c_uint8), ("bits", _ProtectionBits)]


class PS_PROTECTION_CTYPES(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("u", _ProtectionUnion)]


class IMAGE_EXPORT_DIRECTORY_CTYPES(ctypes.Structure):
    _fields_ = [("Characteristics", ctypes.c_uint32), ("TimeDateStamp", ctypes.c_uint32),
                ("MajorVersion", ctypes.c_uint16), ("MinorVersion", ctypes.c_uint16),
                ("Name", ctypes.c_uint32), ("Base", ctypes.c_uint32),
                ("NumberOfFunctions", ctypes.c_uint32), ("NumberOfNames", ctypes.c_uint32),
                ("AddressOfFunctions", ctypes.c_uint32), ("AddressOfNames", ctypes.c_uint32),
                ("AddressOfNameOrdinals", ctypes.c_uint32)]


# ULONG_PTR, SIZE_T and pointers are 8 bytes on x64 and 4 on x86 (a 32-bit process).
CTYPES = {
    arch: {"PROCESS_BASIC_INFORMATION": _ctypes_pbi(pointer),
           "PROCESS_EXTENDED_BASIC_INFORMATION": _ctypes_pebi(pointer),
           "PS_PROTECTION": PS_PROTECTION_CTYPES,
           "IMAGE_EXPORT_DIRECTORY": IMAGE_EXPORT_DIRECTORY_CTYPES}
    for arch, pointer in (("x64", ctypes.c_uint64), ("x86", ctypes.c_uint32))
}


def ctypes_bits(field) -> tuple[int, int] | None:
    """(bit offset, width) of a ctypes bit field, None for a plain field (any CPython)."""
    if hasattr(field, "bit_size"):  # 3.13+
        return (field.bit_offset, field.bit_size) if field.is_bitfield else None
    return (field.size & 0xFFFF, field.size >> 16) if field.size >> 16 else None


def ctypes_layout(record, base: int = 0, prefix: str = "") -> dict:
    layout = {}
    anonymous = getattr(record, "_anonymous_", ())
    for name, ctype, *_ in record._fields_:
        field = getattr(record, name)
        offset = base + field.offset
        if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            inner_prefix = prefix if name in anonymous else f"{prefix}{name}."
            layout.update(ctypes_layout(ctype, offset, inner_prefix))
            continue
        bits = ctypes_bits(field)
        if bits is None:
            layout[prefix + name] = (offset * 8, ctypes.sizeof(ctype), False)
        else:
            layout[prefix + name] = (offset * 8 + bits[0], bits[1], True)
    return layout


RECORDS = [(arch, name) for arch in ("x64", "x86") for name in CONSTRUCTS[arch]]


@pytest.mark.parametrize("arch, record", RECORDS)
def test_ctypes_oracle(arch, record):
    if arch == "x64" and ctypes.alignment(ctypes.c_uint64) != 8:
        pytest.skip("this host's C ABI aligns 64-bit integers to 4, unlike x64 Windows")
    definition, oracle = CONSTRUCTS[arch][record], CTYPES[arch][record]
    assert construct_layout(definition) == ctypes_layout(oracle)
    assert definition.sizeof() == ctypes.sizeof(oracle)


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_ctypes_reads_what_construct_builds(arch):
    """Beyond positions: bytes with a distinct value in every field read the same both ways."""
    definition = PROCESS_EXTENDED_BASIC_INFORMATION[arch]
    raw = bytes((i * 37 + 11) & 0xFF for i in range(definition.sizeof()))
    raw = definition.build(definition.parse(raw))  # padding zeroed, as Windows leaves it
    info = parse_extended_basic_information(raw, arch)
    oracle = CTYPES[arch]["PROCESS_EXTENDED_BASIC_INFORMATION"].from_buffer_copy(raw)
    assert info.size == oracle.Size
    for name, value in info.basic_info.as_dict().items():
        mask = 0xFFFFFFFF if name == "ExitStatus" else -1  # NTSTATUS kept unsigned
        assert value == getattr(oracle.BasicInfo, name) & mask, name
    for name, value in info.flags.items():
        assert value == bool(getattr(oracle, name)), name
    assert info.spare_bits == oracle.SpareBits
    assert info.flags_value == oracle.Flags


def test_ctypes_reads_every_protection_byte_as_construct_does():
    for level in range(256):
        oracle = PS_PROTECTION_CTYPES.from_buffer_copy(bytes([level]))
        parsed = parse_protection(level)
        assert (parsed.type, parsed.audit, parsed.signer) == \
            (oracle.Type, bool(oracle.Audit), oracle.Signer)


# -- clang's MSVC record layout --------------------------------------------------------------

_LINE = re.compile(r"^\s*(\d+)(?::(\d+)-(\d+))?\s+\|( +)(.*?)\s*$")
_SIZE = re.compile(r"\[sizeof=(\d+)")


def clang_layouts(target: str) -> dict[str, tuple[dict, int]]:
    """record name → (path → (bit offset, bit width or None), sizeof) from clang's dump."""
    result = subprocess.run(
        ["clang", "-fsyntax-only", f"--target={target}", "-Xclang", "-fdump-record-layouts",
         "-x", "c", str(HEADER)], capture_output=True, text=True, check=True)
    records = {}
    for block in result.stdout.split("*** Dumping AST Record Layout")[1:]:
        lines = [line for line in block.splitlines() if line.strip()]
        top = _LINE.match(lines[0])
        if top is None or "anonymous" in top.group(5):
            continue  # the anonymous unions and structs appear again inside their parents
        name = top.group(5).split()[-1].lstrip("_")
        fields = {}
        prefixes = [""]
        for line in lines[1:]:
            match = _LINE.match(line)
            if match is None:
                size = _SIZE.search(line)
                if size:
                    records[name] = (fields, int(size.group(1)))
                continue
            byte, first, last, indent, body = match.groups()
            depth = (len(indent) - 1) // 2
            del prefixes[depth:]
            if body.startswith(("struct ", "union ")):
                anonymous = body.endswith(")")
                prefixes.append("" if anonymous else body.split()[-1] + ".")
                continue
            path = "".join(prefixes) + body.split()[-1]
            if first is None:
                fields[path] = (int(byte) * 8, None)
            else:
                fields[path] = (int(byte) * 8 + int(first), int(last) - int(first) + 1)
    return records


@pytest.fixture(scope="module", params=["x64", "x86"])
def clang_target(request):
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (.ci/run installs it from the Debian packages)")
    return request.param, clang_layouts(CLANG_TARGETS[request.param])


@pytest.mark.parametrize("record", list(CONSTRUCTS["x64"]))
def test_clang_msvc_layout_oracle(clang_target, record):
    arch, layouts = clang_target
    fields, size = layouts[record]
    definition = CONSTRUCTS[arch][record]
    expected = {path: (bit, width if is_bit else None)
                for path, (bit, width, is_bit) in construct_layout(definition).items()}
    assert fields == expected
    assert size == definition.sizeof()
