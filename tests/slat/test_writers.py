"""Acquisition writers: each format's treatment of VTL1 pages checked against the file's bytes, and
unmodified Volatility 3 reading the crash dumps back."""

from __future__ import annotations

import os
import struct
import tracemalloc
from dataclasses import replace

import pytest
from volatility3.framework import contexts, exceptions
from volatility3.framework.layers import crash, physical

from iumdump.errors import InvalidInputError
from iumdump.analysis.livedump import WindowsLiveDump64Layer, WindowsLiveDumpStacker
from iumdump.slat.machine import (
    HV_MAP_GPA_PERMISSIONS_NONE, HV_MAP_GPA_READABLE, FrameRanges, SlatMachine,
)
from iumdump.slat.memory import PAGE_SIZE, GuestPhysicalMemory
from iumdump.slat.writers import (
    BUGCHECK_LIVE_SYSTEM_DUMP, FORMATS, KERNEL_ONLY_FORMATS, KernelFacts, WriteResult,
    default_filename, write_dump,
)
from iumdump.structs.crashdump import (
    DUMP_HEADER64_SIZE, PhysicalMemoryRun, parse_dump_header, parse_summary_dump,
)

MIB = 1 << 20
# Layout of the test machine, in frames.
BACKGROUND = (0x100, 0x900)             # in-use frames with generated content
KERNEL_PFN = 0x1                        # an explicit VTL0 frame
TRUSTLET_PFNS = range(0x400, 0x404)     # background frames VTL1 takes away
SECRET_PFN = 0xA00                      # an explicit frame VTL1 takes away
FREE_REFUSED_PFN = 0xB00                # a never-used frame VTL1 takes away
READ_ONLY_PFN = 0x450                   # VTL0 may read it, not write it
# Frames that are not kernel memory (user pages, standby pages): a live kernel dump leaves them
# out. One is also refused (SECRET_PFN), one never used (0xC00).
NOT_KERNEL = FrameRanges([(0x600, 0x700), (SECRET_PFN, SECRET_PFN + 1), (0xC00, 0xC01)])

FACTS = KernelFacts(directory_table_base=0x1AD000, pfn_database=0xFFFF_FA80_0000_0000,
                    ps_loaded_module_list=0xFFFF_F800_0123_4560,
                    ps_active_process_head=0xFFFF_F800_0123_7890,
                    kd_debugger_data_block=0xFFFF_F800_0120_0000, number_processors=4,
                    system_time=0x01DA_0000_0000_0000, minor_version=19041)


def build_machine(size: int = 16 * MIB) -> SlatMachine:
    memory = GuestPhysicalMemory(size, seed=4)
    memory.add_background(BACKGROUND[0], BACKGROUND[1] - BACKGROUND[0])
    memory.write(KERNEL_PFN * PAGE_SIZE, b"nt!KiSystemStartup")
    memory.write(SECRET_PFN * PAGE_SIZE, b"credential guard secret")
    machine = SlatMachine(memory)
    machine.modify_vtl_protection_mask(TRUSTLET_PFNS[0] * PAGE_SIZE, len(TRUSTLET_PFNS),
                                       HV_MAP_GPA_PERMISSIONS_NONE)
    machine.modify_vtl_protection_mask(SECRET_PFN * PAGE_SIZE, 1, HV_MAP_GPA_PERMISSIONS_NONE)
    machine.modify_vtl_protection_mask(FREE_REFUSED_PFN * PAGE_SIZE, 1, HV_MAP_GPA_PERMISSIONS_NONE)
    machine.modify_vtl_protection_mask(READ_ONLY_PFN * PAGE_SIZE, 1, HV_MAP_GPA_READABLE)
    return machine


REFUSED = sorted([*TRUSTLET_PFNS, SECRET_PFN, FREE_REFUSED_PFN])


@pytest.fixture(scope="module")
def machine() -> SlatMachine:
    return build_machine()


@pytest.fixture(scope="module")
def dumps(machine, tmp_path_factory) -> dict[str, WriteResult]:
    out = tmp_path_factory.mktemp("dumps")
    return {fmt: write_dump(machine, out / f"{fmt}.bin", fmt, FACTS, progress=False,
                            not_kernel=NOT_KERNEL if fmt in KERNEL_ONLY_FORMATS else None)
            for fmt in FORMATS}


def used_frames(machine) -> set[int]:
    return set(machine.memory.used_frames())


def file_pages(path, offset: int, count: int) -> list[bytes]:
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(count * PAGE_SIZE)
    return [data[i:i + PAGE_SIZE] for i in range(0, len(data), PAGE_SIZE)]


def test_raw_zero_fills_refused_pages(machine, dumps):
    result = dumps["raw"]
    assert os.path.getsize(result.path) == result.size == machine.memory.size
    pages = file_pages(result.path, 0, machine.frame_count)
    for pfn, page in enumerate(pages):
        if pfn in REFUSED:
            assert page == bytes(PAGE_SIZE), hex(pfn)
        else:
            assert page == machine.memory.page(pfn), hex(pfn)
    assert pages[KERNEL_PFN].startswith(b"nt!KiSystemStartup")
    assert result.zero_filled_pfns == REFUSED == result.refused_pfns
    assert result.absent_pfns == [] and result.first_page_offset == 0
    assert result.pages_written == machine.frame_count - len(REFUSED)


def test_crash_full_zero_fills_refused_pages_after_its_header(machine, dumps):
    result = dumps["crash-full"]
    header = parse_dump_header(open(result.path, "rb").read(DUMP_HEADER64_SIZE))
    assert header.DumpType == 1
    assert header.Runs == (PhysicalMemoryRun(0, machine.frame_count),)
    assert header.NumberOfPages == machine.frame_count
    assert header.RequiredDumpSpace == result.size == os.path.getsize(result.path)
    assert result.size == DUMP_HEADER64_SIZE + machine.memory.size
    raw_pages = file_pages(dumps["raw"].path, 0, machine.frame_count)
    assert file_pages(result.path, DUMP_HEADER64_SIZE, machine.frame_count) == raw_pages
    assert result.zero_filled_pfns == REFUSED and result.absent_pfns == []


def test_crash_full_header_carries_the_kernel_facts(dumps):
    header = parse_dump_header(open(dumps["crash-full"].path, "rb").read(DUMP_HEADER64_SIZE))
    assert (header.DirectoryTableBase, header.PfnDataBase, header.PsLoadedModuleList,
            header.PsActiveProcessHead, header.KdDebuggerDataBlock) == (
        FACTS.directory_table_base, FACTS.pfn_database, FACTS.ps_loaded_module_list,
        FACTS.ps_active_process_head, FACTS.kd_debugger_data_block)
    assert header.MachineImageType == 0x8664 and header.NumberProcessors == 4
    assert header.SystemTime == FACTS.system_time and header.MinorVersion == 19041
    # A complete memory dump is written at a bug check, never by a live capture (0x161).
    assert header.MajorVersion == 0xF and header.BugCheckCode == 0xE2


def test_crash_bitmap_leaves_refused_and_free_frames_out(machine, dumps):
    result = dumps["crash-bitmap"]
    with open(result.path, "rb") as handle:
        header = parse_dump_header(handle.read(DUMP_HEADER64_SIZE))
        summary = parse_summary_dump(handle.read(result.first_page_offset - DUMP_HEADER64_SIZE))
    assert header.DumpType == 5 and header.RequiredDumpSpace == result.size
    assert summary.Signature == b"FDMP"  # a complete memory dump, written as a bitmap
    stored = [pfn for pfn in range(machine.frame_count) if summary.has_page(pfn)]
    assert stored == sorted(used_frames(machine) - set(REFUSED))
    assert summary.BitmapSize == machine.frame_count and summary.Pages == len(stored)
    assert summary.HeaderSize == result.first_page_offset and summary.HeaderSize % PAGE_SIZE == 0
    assert result.size == summary.HeaderSize + len(stored) * PAGE_SIZE == os.path.getsize(result.path)
    pages = file_pages(result.path, summary.HeaderSize, len(stored))
    assert pages == [machine.memory.page(pfn) for pfn in stored]
    assert not any(b"credential guard secret" in page for page in pages)
    assert set(result.absent_pfns) == set(range(machine.frame_count)) - set(stored)
    assert result.zero_filled_pfns == [] and result.refused_pfns == REFUSED
    assert result.pages_written == len(stored)


def test_crash_live_keeps_kernel_memory_only(machine, dumps):
    """DumpType 6 (Task Manager's live kernel memory dump): the bitmap layout of DumpType 5 with
    an SDMP summary, holding the frames in use that are kernel memory and VTL0 may read."""
    result = dumps["crash-live"]
    with open(result.path, "rb") as handle:
        head = handle.read(DUMP_HEADER64_SIZE)
        header = parse_dump_header(head)
        summary_bytes = handle.read(result.first_page_offset - DUMP_HEADER64_SIZE)
        summary = parse_summary_dump(summary_bytes)
    assert head[:8] == b"PAGEDU64" and summary_bytes[:8] == b"SDMPDUMP"
    assert header.DumpType == 6 and header.RequiredDumpSpace == result.size
    stored = [pfn for pfn in range(machine.frame_count) if summary.has_page(pfn)]
    assert stored == sorted(used_frames(machine) - set(REFUSED) - set(NOT_KERNEL))
    assert 0x600 not in stored and 0x5FF in stored and 0x700 in stored
    assert summary.Pages == len(stored) == result.pages_written
    pages = file_pages(result.path, summary.HeaderSize, len(stored))
    assert pages == [machine.memory.page(pfn) for pfn in stored]
    assert set(result.absent_pfns) == set(range(machine.frame_count)) - set(stored)
    assert result.zero_filled_pfns == [] and result.refused_pfns == REFUSED


# _DUMP_HEADER64 offsets as kdmp-parser's HEADER64 (src/lib/kdmp-parser-structs.h) lays them out:
# BugCheckCode 0x38, BugCheckCodeParameter[4] 0x40, DumpType 0xF98; its BMP_HEADER64 at 0x2000.
BUGCHECK_CODE_AT, BUGCHECK_PARAMETERS_AT, DUMP_TYPE_AT, BMP_HEADER_AT = 0x38, 0x40, 0xF98, 0x2000


def test_crash_kernel_is_the_live_dumps_file_written_at_a_keyboard_bug_check(dumps):
    """A kernel memory dump written at a bug check is DumpType 6 (DUMP_TYPE_BITMAP_KERNEL) with
    an SDMP summary, as a live dump is, and holds the same kernel memory: byte for byte the live
    dump's file but for the bug check, MANUALLY_INITIATED_CRASH (0xE2) with no parameters."""
    kernel = open(dumps["crash-kernel"].path, "rb").read()
    live = open(dumps["crash-live"].path, "rb").read()
    assert kernel[:8] == b"PAGEDU64" and kernel[BMP_HEADER_AT:BMP_HEADER_AT + 8] == b"SDMPDUMP"
    assert struct.unpack_from("<I", kernel, DUMP_TYPE_AT) == (6,)
    assert struct.unpack_from("<I", kernel, BUGCHECK_CODE_AT) == (0xE2,)
    assert struct.unpack_from("<4Q", kernel, BUGCHECK_PARAMETERS_AT) == (0, 0, 0, 0)
    assert struct.unpack_from("<I", live, BUGCHECK_CODE_AT) == (BUGCHECK_LIVE_SYSTEM_DUMP,)
    assert len(kernel) == len(live)
    assert kernel[:BUGCHECK_CODE_AT] == live[:BUGCHECK_CODE_AT]
    assert kernel[BUGCHECK_CODE_AT + 4:] == live[BUGCHECK_CODE_AT + 4:]
    assert dumps["crash-kernel"].absent_pfns == dumps["crash-live"].absent_pfns


def test_a_bug_check_named_in_the_facts_is_the_one_written(machine, tmp_path):
    facts = replace(FACTS, bugcheck_code=0xD1, bugcheck_parameters=(1, 2, 3, 4))
    result = write_dump(machine, tmp_path / "k.dmp", "crash-kernel", facts, progress=False,
                        not_kernel=NOT_KERNEL)
    head = open(result.path, "rb").read(DUMP_HEADER64_SIZE)
    assert struct.unpack_from("<I4xQQQQ", head, BUGCHECK_CODE_AT) == (0xD1, 1, 2, 3, 4)


@pytest.mark.parametrize("fmt", KERNEL_ONLY_FORMATS)
def test_crash_live_needs_to_know_what_is_not_kernel_memory(machine, tmp_path, fmt):
    with pytest.raises(InvalidInputError, match="not kernel memory"):
        write_dump(machine, tmp_path / "live.dmp", fmt, FACTS, progress=False)
    assert os.listdir(tmp_path) == []


def test_host_capture_reads_everything(machine, dumps):
    result = dumps["host"]
    pages = file_pages(result.path, 0, machine.frame_count)
    assert pages == [machine.memory.page(pfn) for pfn in range(machine.frame_count)]
    assert pages[SECRET_PFN].startswith(b"credential guard secret")
    assert result.zero_filled_pfns == [] and result.absent_pfns == []
    assert result.refused_pfns == REFUSED  # what VTL0 would have been refused
    assert result.pages_written == machine.frame_count


def test_zero_runs_are_holes(machine, dumps):
    probe = os.path.join(os.path.dirname(dumps["raw"].path), "probe")
    with open(probe, "wb") as handle:
        handle.truncate(4 * MIB)
    if os.stat(probe).st_blocks * 512 >= 4 * MIB:
        pytest.skip("the file system does not make sparse files")
    for fmt in ("raw", "crash-full", "host"):
        result = dumps[fmt]
        allocated = os.stat(result.path).st_blocks * 512
        # Only frames in use take blocks: 2050 of the 4096 (free frames and, but for host,
        # refused ones are holes); a little slack for the file system's own granularity.
        in_use = len(used_frames(machine)) * PAGE_SIZE + DUMP_HEADER64_SIZE
        assert result.data_bytes <= allocated <= in_use + 64 * 1024, fmt
        assert allocated < result.size * 0.6


# -- Volatility 3 as the oracle --------------------------------------------------------------

def volatility_layer(path, layer_class):
    context = contexts.Context()
    context.config["base.location"] = "file://" + os.path.abspath(path)
    context.add_layer(physical.FileLayer(context, "base", "base"))
    if layer_class is None:
        return context.layers["base"]
    context.config["memory.base_layer"] = "base"
    layer = layer_class(context, "memory", "memory")
    context.add_layer(layer)
    return layer


@pytest.mark.parametrize("fmt", ["crash-full", "crash-bitmap"])
def test_volatility_opens_the_crash_dumps(machine, dumps, fmt):
    layer = volatility_layer(dumps[fmt].path, crash.WindowsCrashDump64Layer)
    assert layer.dump_type == {"crash-full": 1, "crash-bitmap": 5}[fmt]
    assert layer.dtb == FACTS.directory_table_base
    assert layer.read(KERNEL_PFN * PAGE_SIZE, 18) == b"nt!KiSystemStartup"
    for pfn in (0x100, 0x3FF, 0x404, READ_ONLY_PFN, 0x8FF):
        assert layer.read(pfn * PAGE_SIZE, PAGE_SIZE) == machine.memory.page(pfn), hex(pfn)
    for pfn in (*TRUSTLET_PFNS, SECRET_PFN):
        if fmt == "crash-full":
            assert layer.read(pfn * PAGE_SIZE, PAGE_SIZE) == bytes(PAGE_SIZE)
        else:
            assert not layer.is_valid(pfn * PAGE_SIZE)
            with pytest.raises(exceptions.InvalidAddressException):
                layer.read(pfn * PAGE_SIZE, 8)


@pytest.mark.parametrize("fmt", KERNEL_ONLY_FORMATS)
def test_stock_volatility_refuses_the_live_dump_and_iumdumps_layer_reads_it(machine, dumps, fmt):
    """Volatility 3's crash dump layer refuses DumpType 6 (why iumdump provides a layer), be it
    a live dump or a kernel memory dump written at a bug check; the subclass reads it with
    Volatility's own bitmap code."""
    path = dumps[fmt].path
    with pytest.raises(crash.WindowsCrashDumpFormatException, match="unsupported dump format"):
        volatility_layer(path, crash.WindowsCrashDump64Layer)
    base = volatility_layer(path, None)
    assert crash.WindowsCrashDumpStacker.stack(base.context, "base") is None
    stacked = WindowsLiveDumpStacker.stack(base.context, "base")
    assert isinstance(stacked, WindowsLiveDump64Layer) and stacked.dump_type == 6
    layer = volatility_layer(path, WindowsLiveDump64Layer)
    assert layer.read(KERNEL_PFN * PAGE_SIZE, 18) == b"nt!KiSystemStartup"
    for pfn in (0x100, 0x5FF, 0x700, 0x8FF):
        assert layer.read(pfn * PAGE_SIZE, PAGE_SIZE) == machine.memory.page(pfn), hex(pfn)
    for pfn in (0x600, 0x6FF, SECRET_PFN, *TRUSTLET_PFNS):
        assert not layer.is_valid(pfn * PAGE_SIZE), hex(pfn)


def test_live_dump_stacker_leaves_other_dumps_to_volatility(dumps):
    for fmt in ("crash-full", "crash-bitmap", "raw"):
        base = volatility_layer(dumps[fmt].path, None)
        assert WindowsLiveDumpStacker.stack(base.context, "base") is None, fmt


def test_volatility_stacker_recognises_the_bitmap_dump(dumps):
    base = volatility_layer(dumps["crash-bitmap"].path, None)
    stacked = crash.WindowsCrashDumpStacker.stack(base.context, "base")
    assert isinstance(stacked, crash.WindowsCrashDump64Layer) and stacked.dump_type == 5


def test_volatility_reads_the_raw_image(machine, dumps):
    layer = volatility_layer(dumps["raw"].path, None)
    assert layer.read(SECRET_PFN * PAGE_SIZE, PAGE_SIZE) == bytes(PAGE_SIZE)
    assert layer.read(0x123 * PAGE_SIZE, PAGE_SIZE) == machine.memory.page(0x123)


def test_odd_sized_machine_bitmap_reads_back_through_volatility(tmp_path):
    """A frame count that is not a multiple of 32 ends the bitmap inside a ULONG."""
    machine = build_machine(16 * MIB + 5 * PAGE_SIZE)
    machine.memory.write(machine.memory.size - 8, b"lastpage")
    result = write_dump(machine, tmp_path / "odd.dmp", "crash-bitmap", FACTS, progress=False)
    layer = volatility_layer(result.path, crash.WindowsCrashDump64Layer)
    assert layer.read(machine.memory.size - 8, 8) == b"lastpage"
    assert not layer.is_valid(machine.memory.size - 2 * PAGE_SIZE)  # free, left out


# -- how the writers work ----------------------------------------------------------------------

def test_writers_consult_the_ept_not_a_side_list(tmp_path):
    """A leaf changed in the EPT tables directly (not through the hypercall) is honoured."""
    machine = build_machine()
    machine.epts[0].set_access(0x200, 1, 0)
    result = write_dump(machine, tmp_path / "m.raw", "raw", progress=False)
    assert file_pages(result.path, 0x200 * PAGE_SIZE, 1) == [bytes(PAGE_SIZE)]
    assert 0x200 in result.zero_filled_pfns


def test_streaming_keeps_memory_flat(tmp_path):
    memory = GuestPhysicalMemory(64 * MIB, seed=1)
    memory.add_background(0, memory.frame_count)
    machine = SlatMachine(memory)
    machine.modify_vtl_protection_mask(0x100_0000, 300, 0)
    tracemalloc.start()
    for fmt in ("raw", "crash-bitmap"):
        result = write_dump(machine, tmp_path / fmt, fmt, FACTS, progress=False)
        assert result.pages_written == memory.frame_count - 300
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 12 * MIB  # the image is 64 MiB; the writers hold one 4 MiB buffer


def test_failure_leaves_neither_a_partial_file_nor_a_temporary(tmp_path, monkeypatch):
    machine = build_machine()
    target = tmp_path / "memory.raw"
    target.write_bytes(b"previous dump")

    def broken(self, start_pfn, out):
        raise OSError("disk full")

    monkeypatch.setattr(type(machine.memory), "frames_into", broken)
    with pytest.raises(OSError):
        write_dump(machine, target, "raw", progress=False)
    assert target.read_bytes() == b"previous dump"
    assert os.listdir(tmp_path) == ["memory.raw"]


def test_output_replaces_atomically_with_a_normal_mode(tmp_path):
    target = tmp_path / "memory.dmp"
    target.write_bytes(b"old")
    result = write_dump(build_machine(), target, "crash-full", FACTS, progress=False)
    assert result.path == str(target) and os.listdir(tmp_path) == ["memory.dmp"]
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~mask


def test_progress_false_is_silent(tmp_path, capfd):
    write_dump(build_machine(), tmp_path / "m.raw", "raw", progress=False)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_bad_requests_are_refused(tmp_path):
    machine = build_machine()
    with pytest.raises(InvalidInputError, match="KernelFacts"):
        write_dump(machine, tmp_path / "m.dmp", "crash-bitmap", None, progress=False)
    with pytest.raises(InvalidInputError, match="unknown dump format"):
        write_dump(machine, tmp_path / "m.dmp", "lime", FACTS, progress=False)
    with pytest.raises(InvalidInputError, match="cannot create a dump in") as err:
        write_dump(machine, tmp_path / "missing" / "m.raw", "raw", progress=False)
    assert "\n" not in str(err.value) and str(tmp_path / "missing" / "m.raw") in str(err.value)
    assert os.listdir(tmp_path) == []


def test_default_filenames_follow_the_synth_contract():
    assert [default_filename(fmt) for fmt in FORMATS] == [
        "memory.raw", "memory.dmp", "memory.dmp", "memory.raw", "memory.dmp", "memory.dmp"]
