"""The preflight (``preflight.inspect_dump``) against the crash dump headers Windows writes, packed
with ``struct`` from the cited layouts (kdmp-parser ``HEADER64`` / ``BMP_HEADER64``, Volatility's
crash.json for x86), never from iumdump's own definitions; and its agreement with Volatility: a
file whose crash dump layer Volatility stacks (with iumdump's DumpType 6 layer registered, as
``vol -p`` does) passes the preflight, on those headers and on every dump the emulator writes."""

from __future__ import annotations

import os
import struct

import pytest
from volatility3.framework import contexts
from volatility3.framework.layers import crash, physical

from iumdump.analysis import preflight
from iumdump.analysis.livedump import WindowsLiveDumpStacker
from iumdump.errors import DumpFormatError
from iumdump.slat.writers import CRASH_FORMATS, FORMATS

PAGE = 0x1000
FRAMES = 64
# kdmp-parser BMP_HEADER64: Signature, ValidDump, padding to FirstPage (0x20), TotalPresentPages,
# Pages (the number of bits), then the bitmap.
BMP_HEADER64 = struct.Struct("<4s4s24xQQQ")


def x64_header(dump_type: int, runs=((0, FRAMES),)) -> bytearray:
    """kdmp-parser HEADER64: PAGE/DU64, MinorVersion at 0xC, DirectoryTableBase 0x10,
    MachineImageType 0x30, PHYSMEM_DESC at 0x88 (NumberOfRuns, Padding0, NumberOfPages, runs),
    DumpType 0xF98."""
    header = bytearray(0x2000)
    struct.pack_into("<4s4sII", header, 0, b"PAGE", b"DU64", 0xF, 22621)
    struct.pack_into("<Q", header, 0x10, 0x1AD000)
    struct.pack_into("<I", header, 0x30, 0x8664)
    struct.pack_into("<IIQ", header, 0x88, len(runs), 0, sum(count for _, count in runs))
    for index, (base, count) in enumerate(runs):
        struct.pack_into("<QQ", header, 0x98 + 0x10 * index, base, count)
    struct.pack_into("<I", header, 0xF98, dump_type)
    return header


def bitmap_dump(dump_type: int, signature: bytes, present=(0, 1, 2, 5, 63)) -> bytes:
    bitmap = bytearray(FRAMES // 8)
    for pfn in present:
        bitmap[pfn >> 3] |= 1 << (pfn & 7)
    first_page = 0x3000
    summary = BMP_HEADER64.pack(signature, b"DUMP", first_page, len(present), FRAMES) + bitmap
    data = x64_header(dump_type) + summary.ljust(first_page - 0x2000, b"\0")
    return bytes(data) + b"".join(bytes([pfn]) * PAGE for pfn in present)


def full_dump() -> bytes:
    return bytes(x64_header(1)) + bytes(FRAMES * PAGE)


def x86_dump(dump_type: int) -> bytes:
    """Volatility crash.json _DUMP_HEADER: PAGE/DUMP, run list at 0x64, DumpType at 0xF88."""
    header = bytearray(0x1000)
    struct.pack_into("<4s4sII", header, 0, b"PAGE", b"DUMP", 0xF, 7601)
    struct.pack_into("<I", header, 0x20, 0x14C)
    struct.pack_into("<IIII", header, 0x64, 1, FRAMES, 0, FRAMES)
    struct.pack_into("<I", header, 0xF88, dump_type)
    return bytes(header) + bytes(FRAMES * PAGE)


def volatility_stacks(path) -> type | None:
    """The crash dump layer Volatility's stacking puts on the file (its own stacker, then
    iumdump's, in stack order as automagic tries them), or None."""
    context = contexts.Context()
    context.config["base.location"] = "file://" + os.path.abspath(path)
    context.add_layer(physical.FileLayer(context, "base", "base"))
    for stacker in sorted((crash.WindowsCrashDumpStacker, WindowsLiveDumpStacker),
                          key=lambda s: s.stack_order):
        try:
            layer = stacker.stack(context, "base")
        except Exception:  # what automagic does with a stacker that fails
            layer = None
        if layer is not None:
            return type(layer)
    return None


CITED = {
    "x64-full": (full_dump(), "crash-full"),
    "x64-bitmap-SDMP": (bitmap_dump(5, b"SDMP"), "crash-bitmap"),
    "x64-bitmap-FDMP": (bitmap_dump(5, b"FDMP"), "crash-bitmap"),
    "x64-live-SDMP": (bitmap_dump(6, b"SDMP"), "crash-live"),
    "x64-live-FDMP": (bitmap_dump(6, b"FDMP"), "crash-live"),
    "x86-full": (x86_dump(1), "crash32-full"),
}


@pytest.mark.parametrize("name", sorted(CITED))
def test_headers_windows_writes_pass_and_volatility_agrees(name, tmp_path):
    data, expected = CITED[name]
    path = tmp_path / f"{name}.dmp"
    path.write_bytes(data)
    found = preflight.inspect_dump(path)
    assert found.format == expected
    assert found.expected_size == found.size == len(data)
    assert volatility_stacks(path) is not None
    if "bitmap" in expected or "live" in expected:
        assert found.summary_signature == name.rsplit("-", 1)[1]


@pytest.mark.parametrize("bug_check", [0x161, 0xE2])
def test_the_bug_check_tells_a_live_dump_from_one_written_at_a_crash(bug_check, tmp_path):
    """DumpType 6 is both (DUMP_TYPE_BITMAP_KERNEL); BugCheckCode, at 0x38 of kdmp-parser's
    HEADER64, is 0x161 LIVE_SYSTEM_DUMP for a live dump and the crash's code otherwise."""
    data = bytearray(bitmap_dump(6, b"SDMP"))
    struct.pack_into("<I", data, 0x38, bug_check)
    path = tmp_path / "kernel.dmp"
    path.write_bytes(bytes(data))
    found = preflight.inspect_dump(path)
    assert (found.dump_type, found.bug_check) == (6, bug_check)


@pytest.mark.parametrize("dump_type", [2, 3, 4, 7, 8, 9, 10, 11])
def test_unsupported_dump_types_get_one_line_naming_them(dump_type, tmp_path):
    """Neither Volatility nor iumdump reads these; the line names the type and what is read."""
    path = tmp_path / "other.dmp"
    data = bytearray(full_dump())
    struct.pack_into("<I", data, 0xF98, dump_type)
    path.write_bytes(bytes(data))
    assert volatility_stacks(path) is None
    with pytest.raises(DumpFormatError) as caught:
        preflight.inspect_dump(path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"crash dump type {dump_type} is not a memory dump" in message
    assert "supported x64 dump types are 1 (complete memory dump), 5 (bitmap dump), " \
           "6 (kernel bitmap dump: kernel, automatic or live kernel memory dump)" in message
    if dump_type in (8, 9, 10):
        assert (".dump /k", ".dump /ka", ".dump /f")[dump_type - 8] in message


def test_x86_live_dump_is_not_a_type_volatility_reads(tmp_path):
    path = tmp_path / "x86-live.dmp"
    path.write_bytes(x86_dump(6))
    assert volatility_stacks(path) is None
    with pytest.raises(DumpFormatError, match=r"supported x86 dump types are 1 \(complete "
                                              r"memory dump\), 5 \(bitmap dump\)$"):
        preflight.inspect_dump(path)


@pytest.mark.parametrize("head, shown", [(b"SDMPDU64", "SDMPDU64"),
                                         (bytes(4) + b"DUMP", "\\x00\\x00\\x00\\x00DUMP"),
                                         (b"KDMPDUMP", "KDMPDUMP")])
def test_summary_heads_windows_does_not_write_pass_as_volatility_reads_them(head, shown,
                                                                           tmp_path):
    """Regression: ``SDMPDU64`` (what iumdump's emulator used to write) and other heads Windows
    never writes were refused, although Volatility stacks such a file (it reads the bitmap and
    never the signature): the preflight was stricter than Volatility. It now passes them and
    names what the header holds, for the finding nonstandard-dump-header."""
    data = bytearray(bitmap_dump(5, b"SDMP"))
    data[0x2000:0x2008] = head
    path = tmp_path / "odd-summary.dmp"
    path.write_bytes(bytes(data))
    assert volatility_stacks(path) is not None
    found = preflight.inspect_dump(path)
    assert (found.format, found.summary_signature) == ("crash-bitmap", shown)
    assert found.expected_size == found.size


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_emulator_dump_passes_and_volatility_agrees(fmt, synth_dump):
    result = synth_dump("credential-guard", fmt)
    found = preflight.inspect_dump(result.dump_path)
    # The analyzer names a file by what it holds: a kernel memory dump written at a bug check is
    # DumpType 6, as a live one is, and is named so.
    assert found.format == {"host": "raw", "crash-kernel": "crash-live"}.get(fmt, fmt)
    layer = volatility_stacks(result.dump_path)
    assert (layer is not None) is (fmt in CRASH_FORMATS)
    if fmt in CRASH_FORMATS:
        assert found.expected_size == found.size
        assert found.dump_type == {"crash-full": 1, "crash-bitmap": 5, "crash-live": 6,
                                   "crash-kernel": 6}[fmt]
        assert found.summary_signature == {"crash-full": None, "crash-bitmap": "FDMP",
                                           "crash-live": "SDMP", "crash-kernel": "SDMP"}[fmt]


@pytest.mark.parametrize("dump_type", [5, 6])
def test_bitmap_dump_whose_run_list_is_unfilled(dump_type, tmp_path):
    """Regression: the preflight parsed the header's run list on every dump and refused a bitmap
    dump whose list Windows left as nt!IoFillDumpHeader's ``PAGE`` filler ("lists 1,162,297,680
    physical memory runs"), though a bitmap dump's pages are located by its bitmap alone:
    Volatility stacks it, and kdmp-parser checks the run list (PHYSMEM_DESC::LooksGood, which
    treats ``PAGE`` there as unfilled) only for DumpType 1."""
    data = bytearray(bitmap_dump(dump_type, b"SDMP"))
    data[0x88:0x88 + 0x2C0] = b"PAGE" * (0x2C0 // 4)
    path = tmp_path / "unfilled-runs.dmp"
    path.write_bytes(bytes(data))
    assert volatility_stacks(path) is not None
    found = preflight.inspect_dump(path)
    assert found.format == {5: "crash-bitmap", 6: "crash-live"}[dump_type]
    assert found.expected_size == found.size == len(data)


def test_full_dump_whose_run_list_is_unfilled_is_refused(tmp_path):
    """A complete dump (DumpType 1) is located by its run list: ``PAGE`` filler there is no
    run list, and the line says so."""
    data = bytearray(full_dump())
    data[0x88:0x88 + 0x2C0] = b"PAGE" * (0x2C0 // 4)
    path = tmp_path / "unfilled-runs.dmp"
    path.write_bytes(bytes(data))
    with pytest.raises(DumpFormatError, match="physical memory runs"):
        preflight.inspect_dump(path)


def test_physical_extent_of_a_bitmap_dump_is_its_bitmap(tmp_path):
    """Regression: the extent of a bitmap dump's physical memory was also taken from its run
    list; ``PAGE`` filler there (see above) made it ~2**76 bytes, so a frame beyond the machine's
    memory counted as merely absent, and a DirectoryTableBase beyond it passed as plausible."""
    from iumdump.analysis.layers import physical_extent

    data = bytearray(bitmap_dump(5, b"FDMP"))
    data[0x88:0x88 + 0x2C0] = b"PAGE" * (0x2C0 // 4)
    path = tmp_path / "unfilled-runs.dmp"
    path.write_bytes(bytes(data))
    context = contexts.Context()
    context.config["base.location"] = "file://" + os.path.abspath(path)
    context.add_layer(physical.FileLayer(context, "base", "base"))
    layer = crash.WindowsCrashDumpStacker.stack(context, "base")
    assert physical_extent(layer) == FRAMES * PAGE
