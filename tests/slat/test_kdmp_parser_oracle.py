"""kdmp-parser is the third oracle of the emulator's crash dumps: 0vercl0k's C++ parser of Windows
kernel dumps (the one wtf and pdblister use), through its Python binding (PyPI ``kdmp-parser``),
a reader that shares no code with Volatility, MemProcFS or iumdump.

For every crash format the emulator writes (``CRASH_FORMATS``, so a new one joins the matrix and
must state here what it keeps) × two scenarios × profile (built-in, and the real 14393 and 19041
tables when ../shared/isf has them), with kdmp-parser alone as the reader: it accepts the dump
with the format's DumpType; its header holds the kernel's DirectoryTableBase, PsActiveProcessHead,
PsLoadedModuleList and KdDebuggerDataBlock (truth.json and the symbol table's addresses), an AMD64
machine, the build and the bug check; its set of physical pages is the one Volatility's layer
maps, page contents read through both are the same bytes; each process's pages, found through
kdmp-parser's own page-table walk with the process's DTB, are absent, zero-filled or readable as
the format keeps them (VTL1's frames left out of bitmap dumps and zero-filled in a complete one,
user pages of every process left out of kernel-only dumps); its translation of the kernel base
with the kernel DTB leads to ntoskrnl's PE header; and its reads walk PsActiveProcessHead to the
truth's linked processes.

kdmp-parser 0.7.4 (src/lib/kdmp-parser.h and src/python/src/kdmp_parser.cc, tag v0.7.4) reads
DumpType 1 through its runs (BuildPhysmemFullDump) and 5 and 6 alike through the _SUMMARY_DUMP
bitmap (BuildPhysmemBMPDump; HEADER64::LooksGood accepts the summary signatures ``SDMP`` and
``FDMP``). Its binding shows the summary header (``HEADER64.BmpHeader``) for DumpType 5 only, so
a DumpType 6 dump's summary signature and page counts are not checked here. The tests skip where
the binding is not installed (the ``test`` extra installs it where it has wheels).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest
from markers import dump_params

from iumdump.isf import SymbolTable
from iumdump.slat.synth import SynthResult
from iumdump.slat.writers import CRASH_FORMATS

# ImportError too: a wheel whose native module cannot load here skips like a missing one.
kdmp_parser = pytest.importorskip(
    "kdmp_parser", exc_type=ImportError,
    reason="kdmp-parser is not installed or cannot load (the test extra has it on Linux and "
           "Windows x64)")

SCENARIOS = ("credential-guard", "adversarial")
PROFILES = ("builtin", "14393", "19041")  # the real ones skip when ../shared/isf lacks them
PAGE = 0x1000
SAMPLE_PAGES = 256  # pages whose contents kdmp-parser and Volatility must read alike
IMAGE_FILE_MACHINE_AMD64 = 0x8664  # Microsoft, "PE Format", Machine Types
LIVE_SYSTEM_DUMP = 0x161  # Microsoft, "Bug Check 0x161: LIVE_SYSTEM_DUMP"
MANUALLY_INITIATED_CRASH = 0xE2  # Microsoft, "Bug Check 0xE2: MANUALLY_INITIATED_CRASH"


@dataclass(frozen=True)
class Kept:
    """What a crash format is, as kdmp-parser should read it (DESIGN §6 for the formats)."""

    dump_type: int             # kdmp_parser.DumpType
    bugcheck: int
    summary: bytes | None      # the _SUMMARY_DUMP signature, where the binding shows it
    every_frame: bool          # every frame of the physical memory run is in the file
    vtl1_zero_filled: bool     # VTL1's frames stored as zeros (else left out)
    user_pages: bool           # the processes' user pages kept (else a kernel-only dump)


DumpType = kdmp_parser.DumpType
KEPT = {
    # A complete dump taken from the running system: every frame, refused ones as zeros.
    "crash-full": Kept(DumpType.FullDump, MANUALLY_INITIATED_CRASH, None, True, True, True),
    # A complete-memory bitmap dump (FDMP): the frames in use, refused ones left out.
    "crash-bitmap": Kept(DumpType.BMPDump, MANUALLY_INITIATED_CRASH, b"FDMP", False, False, True),
    # Task Manager's live kernel memory dump: kernel memory only.
    "crash-live": Kept(DumpType.LiveKernelBitmapDump, LIVE_SYSTEM_DUMP, None, False, False,
                       False),
    # A kernel memory dump written at a bug check: DumpType 6 too (wdm.h's DUMP_TYPE calls it
    # DUMP_TYPE_BITMAP_KERNEL; kdmp-parser issue #26 is one from NotMyFault), kernel memory only.
    "crash-kernel": Kept(DumpType.LiveKernelBitmapDump, MANUALLY_INITIATED_CRASH, None, False,
                         False, False),
}
MATRIX = [(s, f, p) for s in SCENARIOS for f in CRASH_FORMATS for p in PROFILES]


def test_every_crash_format_says_what_it_keeps():
    """A crash format the emulator learns to write joins this oracle's matrix; what kdmp-parser
    should find in it has to be stated in KEPT first."""
    assert set(CRASH_FORMATS) <= set(KEPT), set(CRASH_FORMATS) - set(KEPT)


@dataclass
class Opened:
    result: SynthResult
    parser: "kdmp_parser.KernelDumpParser"
    kept: Kept

    @property
    def truth(self) -> dict:
        return self.result.truth


@pytest.fixture(params=dump_params(MATRIX))
def dump(request, synth_dump) -> Opened:
    scenario, fmt, profile = request.param
    result = synth_dump(scenario, fmt, profile)
    # KernelDumpParser raises RuntimeError("Invalid kernel dump file") when Parse refuses it.
    return Opened(result, kdmp_parser.KernelDumpParser(result.dump_path), KEPT[fmt])


def _physical_layer(volatility, result):
    context = volatility.context(result)
    kernel_layer = context.layers[context.modules[volatility.kernel_module(result)].layer_name]
    return kernel_layer, context.layers[kernel_layer.config["memory_layer"]]


def test_kdmp_parser_accepts_the_dump_as_its_dump_type(dump):
    assert dump.parser.type == dump.kept.dump_type
    header = dump.parser.header
    assert header.LooksGood()
    if dump.kept.summary is not None:
        summary = header.BmpHeader
        assert summary.Signature.to_bytes(4, "little") == dump.kept.summary
        assert summary.Pages == dump.truth["memory_size"] // PAGE  # one bit per frame
        assert summary.TotalPresentPages == len(dump.parser.pages)  # as many as bits set


def test_kdmp_parser_reads_the_kernel_in_the_header(dump):
    """The header's pointers are the kernel's: truth.json's DTB and KDBG, and the symbol table's
    addresses of the lists from the kernel base."""
    kernel = dump.truth["kernel"]
    symbols = SymbolTable.load(dump.result.isf_path)
    header = dump.parser.header
    assert header.DirectoryTableBase == kernel["dtb"]
    assert dump.parser.directory_table_base == kernel["dtb"]
    assert header.PsActiveProcessHead == kernel["base"] + symbols.symbol("PsActiveProcessHead")
    assert header.PsLoadedModuleList == kernel["base"] + symbols.symbol("PsLoadedModuleList")
    assert header.KdDebuggerDataBlock == kernel["kdbg"]
    assert header.KdDebuggerDataBlock == kernel["base"] + symbols.symbol("KdDebuggerDataBlock")
    assert header.MachineImageType == IMAGE_FILE_MACHINE_AMD64
    assert (header.MajorVersion, header.MinorVersion) == (0xF, kernel["build"])  # free build
    assert header.BugCheckCode == dump.kept.bugcheck


def test_kdmp_parser_holds_the_frames_volatility_maps(dump, volatility):
    """The set of physical pages kdmp-parser builds from the runs or the bitmap is the one
    Volatility's layer (Volatility's own for DumpType 1 and 5, iumdump's for 6) maps."""
    present = set(dump.parser.pages.keys())
    _, physical = _physical_layer(volatility, dump.result)
    mapped = set()
    for offset, length, *_ in physical.mapping(0, physical.maximum_address + 1,
                                               ignore_errors=True):
        mapped.update(range(offset, offset + length, PAGE))
    assert present == mapped
    every_frame = set(range(0, dump.truth["memory_size"], PAGE))
    assert (present == every_frame) is dump.kept.every_frame
    assert present <= every_frame


def test_kdmp_parser_reads_the_bytes_volatility_reads(dump, volatility):
    present = sorted(dump.parser.pages.keys())
    sample = present[::max(1, len(present) // SAMPLE_PAGES)] + [dump.truth["kernel"]["dtb"]]
    _, physical = _physical_layer(volatility, dump.result)
    for address in sample:
        assert bytes(dump.parser.read_physical_page(address)) == physical.read(address, PAGE), \
            hex(address)


def _fates(parser, region: dict, dtb: int) -> dict[str, int]:
    """Each page of ``region`` as kdmp-parser finds it: its own walk of the process's page tables
    (VirtTranslate), then its physical page map."""
    fates = {"unmapped": 0, "absent": 0, "zero_filled": 0, "readable": 0}
    for virtual in range(region["start"], region["end"] + 1, PAGE):
        physical = parser.translate_virtual(virtual, dtb)
        if physical is None:
            fates["unmapped"] += 1
            continue
        page = parser.read_physical_page(physical)
        fates["absent" if page is None else "readable" if any(page) else "zero_filled"] += 1
    return fates


def test_kdmp_parser_finds_process_pages_where_the_format_keeps_them(dump):
    """Every process's regions page by page: kdmp-parser's counts are the truth's, and they are
    what the format promises — a trustlet's pages (VTL1's) zero-filled in a complete dump and
    absent from a bitmap one, a normal process's user pages absent from a kernel-only dump and
    present otherwise, the shared user data page (a kernel frame) present everywhere."""
    kept = dump.kept
    checked = {"secure": 0, "normal": 0, "shared": 0}
    for process in dump.truth["processes"]:
        for region in (process["pages"] or {"regions": []})["regions"]:
            name = f"{process['name']} ({process['pid']}) {region['start']:#x}"
            fates = _fates(dump.parser, region, process["dtb"])
            assert fates == {"unmapped": 0, "absent": region["absent"],
                             "zero_filled": region["zero_filled"],
                             "readable": region["readable"]}, name
            pages = region["pages"]
            if region["shared"]:
                checked["shared"] += 1
                assert fates["absent"] == 0, name
            elif process["secure"]:
                checked["secure"] += 1
                vtl1 = "zero_filled" if kept.vtl1_zero_filled else "absent"
                assert fates[vtl1] == pages, name
            else:
                checked["normal"] += 1
                assert fates["absent"] == (0 if kept.user_pages else pages), name
    assert checked["normal"] and checked["shared"] and checked["secure"]


def test_kdmp_parser_translates_the_kernel_base_to_its_pe_header(dump, volatility):
    kernel = dump.truth["kernel"]
    base, dtb = kernel["base"], kernel["dtb"]
    physical = dump.parser.translate_virtual(base, dtb)
    assert physical is not None
    assert dump.parser.translate_virtual(base) == physical  # 0: the header's DTB
    kernel_layer, _ = _physical_layer(volatility, dump.result)
    assert physical == kernel_layer.translate(base)[0]
    page = bytes(dump.parser.read_virtual_page(base, dtb))
    assert page == bytes(dump.parser.read_physical_page(physical))
    assert page[:2] == b"MZ"
    (pe_offset,) = struct.unpack_from("<I", page, 0x3C)  # IMAGE_DOS_HEADER.e_lfanew
    assert page[pe_offset:pe_offset + 4] == b"PE\0\0"
    (machine,) = struct.unpack_from("<H", page, pe_offset + 4)  # IMAGE_FILE_HEADER.Machine
    assert machine == IMAGE_FILE_MACHINE_AMD64


def _read_pointer(parser, virtual: int, dtb: int) -> int:
    page = parser.read_virtual_page(virtual, dtb)
    assert page is not None, f"kdmp-parser cannot read {virtual:#x}"
    return struct.unpack_from("<Q", page, virtual & (PAGE - 1))[0]


def test_kdmp_parser_walks_the_active_process_list(dump):
    """From the header's PsActiveProcessHead through each _EPROCESS.ActiveProcessLinks.Flink (the
    symbol table's offset), read with kdmp-parser's translation: the truth's linked processes, in
    list order, once each."""
    links = SymbolTable.load(dump.result.isf_path).member("_EPROCESS", "ActiveProcessLinks")
    dtb = dump.truth["kernel"]["dtb"]
    head = dump.parser.header.PsActiveProcessHead
    linked = [p["address"] for p in dump.truth["processes"] if p["linked"]]
    walked = []
    entry = _read_pointer(dump.parser, head, dtb)
    while entry != head and len(walked) <= len(linked):
        walked.append(entry - links.offset)
        entry = _read_pointer(dump.parser, entry, dtb)
    assert walked == linked
