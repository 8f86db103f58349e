"""The PE image writer: export directories, section plans and header pages, checked with pefile
(an independent PE parser) and against the PE/COFF rules they follow."""

from __future__ import annotations

import pefile
import pytest
from kernel_reader import PROFILES, symbols

from iumdump.errors import InvalidInputError
from iumdump.isf import SymbolTable
from iumdump.slat.kernel import manifest as M
from iumdump.slat.kernel import peimage
from iumdump.slat.kernel.boot_images import kernel_image_plan
from iumdump.slat.kernel.constants import VOLATILITY_SYMBOLS
from iumdump.slat.kernel.records import Layout
from iumdump.structs.pe import IMAGE_EXPORT_DIRECTORY, IMAGE_EXPORT_DIRECTORY_SIZE

PE_LAYOUT = Layout(SymbolTable.load(VOLATILITY_SYMBOLS / "pe.json"))
EXPORTS = {"PsLoadedModuleList": 0x2000, "KeNumberProcessors": 0x2008, "NtBuildNumber": 0x2010,
           "MmGetSystemRoutineAddress": 0x1040}


def _image(sections, exports=None, size=0x4000, pe32=False) -> bytes:
    image = bytearray(size)
    directory = None
    if exports is not None:
        directory = peimage.export_directory("test.sys", 0x3000, exports, 0x5F000000)
        image[0x3000:0x3000 + len(directory)] = directory
    image[:0x1000] = peimage.header_page(
        PE_LAYOUT, image_base=0x400000 if pe32 else 0xFFFFF80000000000, size_of_image=size,
        sections=sections,
        entry_point=0x1000, timestamp=0x5F000000, checksum=0x1234,
        exports=(0x3000, len(directory)) if directory else None, pe32=pe32)
    return bytes(image)


def test_export_directory_reads_back_with_pefile():
    sections = (peimage.Section(".text", 0x1000, 0x1000, peimage.CODE),
                peimage.Section(".data", 0x2000, 0x1000, peimage.DATA),
                peimage.Section(".edata", 0x3000, 0x1000, peimage.RDATA))
    pe = pefile.PE(data=_image(sections, EXPORTS))
    export = pe.DIRECTORY_ENTRY_EXPORT
    assert export.name == b"test.sys"
    assert {s.name.decode(): s.address for s in export.symbols} == EXPORTS
    assert [s.ordinal for s in export.symbols] == [1, 2, 3, 4]
    assert [s.name for s in export.symbols] == sorted(n.encode() for n in EXPORTS)


def test_export_directory_size_is_what_it_builds():
    built = peimage.export_directory("ntoskrnl.exe", 0x10000, EXPORTS, 0)
    assert len(built) == peimage.export_directory_size("ntoskrnl.exe", EXPORTS)
    table = IMAGE_EXPORT_DIRECTORY.parse(built)
    assert IMAGE_EXPORT_DIRECTORY.sizeof() == IMAGE_EXPORT_DIRECTORY_SIZE
    assert (table.Base, table.NumberOfFunctions, table.NumberOfNames) == (1, 4, 4)
    assert built[table.Name - 0x10000:].split(b"\0")[0] == b"ntoskrnl.exe"


def test_a_pe32_header_for_a_32_bit_image():
    sections = peimage.small_image_sections(4)
    pe = pefile.PE(data=_image(sections, pe32=True))
    assert pe.FILE_HEADER.Machine == 0x14C and pe.OPTIONAL_HEADER.Magic == 0x10B
    assert pe.OPTIONAL_HEADER.BaseOfData == sections[1].rva
    assert [s.Name.rstrip(b"\0") for s in pe.sections] == [b".text", b".rdata", b".data"]


@pytest.mark.parametrize("pages", range(1, 12))
def test_small_images_fill_their_pages_without_overlap(pages):
    for driver in (False, True):
        sections = peimage.small_image_sections(pages, driver=driver)
        at = 0x1000
        for section in sections:
            assert section.rva == at and section.size >= 0x1000
            at = section.end
        assert at == (pages * 0x1000 if pages > 1 else 0x1000)


def test_a_header_page_refuses_more_sections_than_fit():
    many = [peimage.Section(f"S{i}", 0x1000 * (i + 1), 0x1000, peimage.DATA) for i in range(120)]
    with pytest.raises(InvalidInputError, match="do not fit"):
        peimage.header_page(PE_LAYOUT, image_base=0, size_of_image=0x79000, sections=many,
                            entry_point=0, timestamp=0, checksum=0)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_kernel_plan_places_each_symbol_in_a_section_of_its_kind(profile):
    table = symbols(profile)
    plan = kernel_image_plan(table)
    sections = plan.sections
    assert sections[0].rva == 0x1000
    for before, after in zip(sections, sections[1:]):
        assert after.rva == before.end
    assert sections[-1].end == plan.size_of_image
    highest = max(s["address"] for s in table.data["symbols"].values() if "address" in s)
    assert plan.export_rva > highest
    for name in M.KERNEL_SYMBOLS_USED:
        if table.has_symbol(name):
            section = plan.section_at(table.symbol(name))
            assert section.executable == (name in M.KERNEL_FUNCTIONS), (name, section)
    assert plan.section_at(table.symbol("KdDebuggerDataBlock")).name == ".data"
    assert len({s.name for s in sections}) == len(sections)


def test_a_plan_needs_the_kdbg_among_its_variables():
    with pytest.raises(InvalidInputError, match="KdDebuggerDataBlock"):
        peimage.plan_kernel_image([0x5000], {0x20000: 8}, [0x3000], kdbg=0x90000,
                                  export_size=0x100)


def test_a_plan_without_known_code_still_has_the_kernels_code_sections():
    plan = peimage.plan_kernel_image([0x10000], {0x10000: 8, 0x12000: 8}, [], kdbg=0x10000,
                                     export_size=0x100)
    names = [s.name for s in plan.sections]
    assert ".data" in names and "POOLCODE" in names and ".text" in names
