"""PE images as Windows maps them: the header page, the section table, the export directory.

Layouts come from Volatility's pe.json (winnt.h: _IMAGE_DOS_HEADER, _IMAGE_NT_HEADERS64,
_IMAGE_SECTION_HEADER, _IMAGE_DEBUG_DIRECTORY) and :mod:`iumdump.structs.pe` (the export
directory, PE/COFF spec §6.3); section flags are winnt.h's IMAGE_SCN_* values. A mapped image is
laid out at its RVAs (SectionAlignment = page size), so the header page is the file's first page
and every section starts on a page.

The kernel's section table follows the names ntoskrnl.exe uses and what readers look up in it:

* ``.text``, and ``PAGE``-prefixed code — pageable, as the loader decides from a section name
  beginning with "PAGE" (Microsoft, "Making Drivers Pageable");
* ``POOLCODE`` — its name in the header page is how MemProcFS recognises ntoskrnl when it scans
  for the kernel (vmm/vmmwininit.c, VmmWinInit_FindNtosScanHint64 / _FindNtosScan64);
* ``.data`` holding KdDebuggerDataBlock — MemProcFS finds the KDBG by scanning ntoskrnl's
  ``.data`` (VmmWinInit_FindPsLoadedModuleListKDBG, which also takes a ``.data`` larger than
  1 MiB as not the kernel's), and ``ALMOSTRO`` after it (VmmWinInit_FindSystemEPROCESS);
* ``INIT``, ``.rsrc``, ``.reloc`` last — init code and resources are placed at the end of the
  image so the space can be reclaimed after boot (the ReactOS kernel's linker script
  sdk/cmake/init-section.lds says the same), ``.reloc`` always last;
* ``.edata`` — the export directory naming the image ``ntoskrnl.exe``.

Where each section starts comes from the symbol table being imitated: the 64 KiB blocks holding
the kernel variables the emulator writes are data, the rest is code, so a real ISF's layout gives
a table with the same shape as that build's (the exact boundaries of one build are not in an ISF
and are not claimed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Iterable, Mapping

from construct import Bytes, Const, CString, Int32ul, Struct

from ...errors import InvalidInputError
from ...structs.pe import (
    IMAGE_DIRECTORY_ENTRY_DEBUG, IMAGE_DIRECTORY_ENTRY_EXPORT, IMAGE_EXPORT_DIRECTORY,
    IMAGE_EXPORT_DIRECTORY_SIZE, IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_I386,
)
from ...structs.paging import PAGE_SIZE
from .records import Layout, Record

# winnt.h IMAGE_SCN_* section characteristics.
SCN_CNT_CODE = 0x00000020
SCN_CNT_INITIALIZED_DATA = 0x00000040
SCN_MEM_DISCARDABLE = 0x02000000
SCN_MEM_NOT_PAGED = 0x08000000
SCN_MEM_EXECUTE = 0x20000000
SCN_MEM_READ = 0x40000000
SCN_MEM_WRITE = 0x80000000

CODE = SCN_CNT_CODE | SCN_MEM_EXECUTE | SCN_MEM_READ
RDATA = SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ
DATA = SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ | SCN_MEM_WRITE

IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002
IMAGE_FILE_LARGE_ADDRESS_AWARE = 0x0020
IMAGE_FILE_32BIT_MACHINE = 0x0100
IMAGE_SUBSYSTEM_NATIVE = 1
IMAGE_SUBSYSTEM_WINDOWS_GUI = 2
# DYNAMIC_BASE | NX_COMPAT | GUARD_CF, and HIGH_ENTROPY_VA for a 64-bit image
DLL_CHARACTERISTICS = 0x0040 | 0x0100 | 0x4000
HIGH_ENTROPY_VA = 0x0020
IMAGE_DEBUG_TYPE_CODEVIEW = 2
E_LFANEW = 0x108  # where link.exe puts the NT headers after the DOS stub and Rich header
DOS_STUB = (b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
            b"This program cannot be run in DOS mode.\r\r\n$")

# CodeView debug record of PDB 7.0 files (PE/COFF spec §6.1.1 "Debug Type", type 2; the "RSDS"
# record as link.exe writes it: signature, GUID, age, NUL-terminated PDB path).
CV_INFO_PDB70 = Struct(
    "CvSignature" / Const(b"RSDS"),
    "Signature" / Bytes(16),  # GUID in its in-memory (mixed-endian) form
    "Age" / Int32ul,
    "PdbFileName" / CString("ascii"),
)

_BLOCK = 0x10000           # the granularity of the kernel's section plan
_MERGE_GAP = 0x100000      # data blocks closer than this belong to one data section
_DATA_SECTION_LIMIT = 0x100000
# Sections after the last symbol: (name, size, characteristics).
_KERNEL_TAIL = (("INIT", 0x60000, CODE | SCN_MEM_DISCARDABLE),
                (".rsrc", 0x20000, RDATA | SCN_MEM_DISCARDABLE),
                (".reloc", 0x10000, RDATA | SCN_MEM_DISCARDABLE))
_EXTRA_CODE_NAMES = ("PAGE", "PAGEKD", "PAGEVRFY", "PAGEHDLS", "PAGEBGFX")


@dataclass(frozen=True)
class Section:
    """One section of a mapped image: ``size`` bytes from ``rva`` (page-aligned)."""

    name: str
    rva: int
    size: int
    characteristics: int

    @property
    def end(self) -> int:
        return self.rva + -(-self.size // PAGE_SIZE) * PAGE_SIZE

    @property
    def executable(self) -> bool:
        return bool(self.characteristics & SCN_MEM_EXECUTE)

    @property
    def writable(self) -> bool:
        return bool(self.characteristics & SCN_MEM_WRITE)


@dataclass(frozen=True)
class KernelImagePlan:
    """Where ntoskrnl's sections lie, where its export directory goes and its SizeOfImage."""

    sections: tuple[Section, ...]
    size_of_image: int
    export_rva: int

    def section_at(self, rva: int) -> Section | None:
        return next((s for s in self.sections if s.rva <= rva < s.end), None)


def _floor(value: int, unit: int) -> int:
    return value // unit * unit


def _ceil(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def plan_kernel_image(symbol_rvas: Iterable[int], variables: Mapping[int, int], code: Iterable[int],
                      *, kdbg: int, export_size: int) -> KernelImagePlan:
    """The section table of a kernel whose symbols lie at ``symbol_rvas``.

    ``variables`` maps the RVA of each kernel variable the emulator writes to its size; ``code``
    lists RVAs known to be functions (KiSystemStartup, exported routines); ``kdbg`` is
    KdDebuggerDataBlock's RVA, which must land in ``.data``."""
    code = sorted(set(code))
    symbols_end = _ceil(max([*symbol_rvas, *variables, *code, PAGE_SIZE]) + 8, _BLOCK)
    # Data clusters: the blocks of the written variables, merged across small gaps that hold no
    # known function.
    clusters: list[list[int]] = []
    for rva, size in sorted(variables.items()):
        lo, hi = _floor(rva, _BLOCK), _ceil(rva + max(size, 1), _BLOCK)
        if clusters and lo <= clusters[-1][1] + _MERGE_GAP and not any(
                clusters[-1][1] <= c < lo for c in code):
            clusters[-1][1] = max(clusters[-1][1], hi)
        else:
            clusters.append([lo, hi])
    if not clusters:
        raise InvalidInputError("a kernel image needs at least one data variable")
    clusters[0][0] = max(clusters[0][0], PAGE_SIZE)
    # A short stretch before the first data cluster with no known function in it is read-only
    # data too (constants and the import table open an image), not a code section of its own.
    if clusters[0][0] < _MERGE_GAP and not any(c < clusters[0][0] for c in code):
        clusters[0][0] = PAGE_SIZE

    runs: list[tuple[str, int, int]] = []  # (kind, start, end) over [0x1000, symbols_end)
    at = PAGE_SIZE
    for lo, hi in clusters:
        if at < lo:
            runs.append(("code", at, lo))
        runs.append(("data", lo, hi))
        at = hi
    if at < symbols_end or not any(kind == "code" for kind, _lo, _hi in runs):
        # code after the last variable (a kernel always has some: POOLCODE is looked up)
        symbols_end = max(symbols_end, at + _BLOCK)
        runs.append(("code", at, symbols_end))

    sections: list[Section] = []
    data_index = next((i for i, (kind, lo, hi) in enumerate(runs)
                       if kind == "data" and lo <= kdbg < hi), None)
    if data_index is None:
        raise InvalidInputError(f"KdDebuggerDataBlock ({kdbg:#x}) is not among the variables")
    code_runs = [i for i, run in enumerate(runs) if run[0] == "code"]
    extra_code = iter(_EXTRA_CODE_NAMES)  # the code runs after the first
    before, after = iter((".rdata", "PAGECONST")), iter(("PAGEDATA", "CACHEALI"))
    for index, (kind, lo, hi) in enumerate(runs):
        if kind == "data":
            if index == data_index:
                split = min(hi, max(lo + _DATA_SECTION_LIMIT, _ceil(kdbg + 1, _BLOCK)))
                sections.append(Section(".data", lo, split - lo, DATA | SCN_MEM_NOT_PAGED))
                if split < hi:
                    sections.append(Section("ALMOSTRO", split, hi - split,
                                            DATA | SCN_MEM_NOT_PAGED))
            elif index < data_index:
                sections.append(Section(next(before, "PAGECONST"), lo, hi - lo,
                                        RDATA | SCN_MEM_NOT_PAGED))
            else:
                sections.append(Section(next(after, "PAGEDATA"), lo, hi - lo, DATA))
        elif index == code_runs[0]:
            sections.extend(_split_text(lo, hi, last=len(code_runs) == 1))
        else:
            sections.append(Section(next(extra_code, "PAGE"), lo, hi - lo, CODE))

    at = symbols_end
    export_rva = at
    sections.append(Section(".edata", at, export_size, RDATA))
    at = _ceil(at + export_size, PAGE_SIZE)
    for name, size, characteristics in _KERNEL_TAIL:
        sections.append(Section(name, at, size, characteristics))
        at += size
    return KernelImagePlan(sections=tuple(sections), size_of_image=at, export_rva=export_rva)


def _split_text(lo: int, hi: int, *, last: bool) -> list[Section]:
    """The first code run: ``.text``, ``PAGELK``, ``POOLCODE`` (and ``PAGE`` when it is the
    only code run), each at least a page."""
    pages = (hi - lo) // PAGE_SIZE
    parts = (("PAGELK", 1, 20), ("POOLCODE", 1, 20)) + ((("PAGE", 9, 20),) if last else ())
    sizes = [max(1, pages * num // den) for _name, num, den in parts]
    text = pages - sum(sizes)
    if text < 1:
        raise InvalidInputError(f"code run {lo:#x}-{hi:#x} is too small for the kernel's sections")
    sections = [Section(".text", lo, text * PAGE_SIZE, CODE | SCN_MEM_NOT_PAGED)]
    at = lo + text * PAGE_SIZE
    for (name, _num, _den), count in zip(parts, sizes):
        flags = CODE | (SCN_MEM_NOT_PAGED if name == "POOLCODE" else 0)
        sections.append(Section(name, at, count * PAGE_SIZE, flags))
        at += count * PAGE_SIZE
    return sections


def export_directory(module_name: str, rva: int, exports: Mapping[str, int],
                     timestamp: int) -> bytes:
    """The export directory of an image (PE/COFF §6.3) placed at ``rva``: the table, the
    address table (one entry per export, ordinal base 1), the name pointer table in ascending
    order, the ordinal table, then the module name and the export names."""
    names = sorted(exports, key=lambda n: n.encode("ascii"))
    count = len(names)
    functions_at = IMAGE_EXPORT_DIRECTORY_SIZE
    names_at = functions_at + 4 * count
    ordinals_at = names_at + 4 * count
    strings_at = ordinals_at + 2 * count
    strings = bytearray(module_name.encode("ascii") + b"\0")
    name_rvas = []
    for name in names:
        name_rvas.append(rva + strings_at + len(strings))
        strings += name.encode("ascii") + b"\0"
    table = IMAGE_EXPORT_DIRECTORY.build(dict(
        Characteristics=0, TimeDateStamp=timestamp, MajorVersion=0, MinorVersion=0,
        Name=rva + strings_at, Base=1, NumberOfFunctions=count, NumberOfNames=count,
        AddressOfFunctions=rva + functions_at, AddressOfNames=rva + names_at,
        AddressOfNameOrdinals=rva + ordinals_at))
    return (table + b"".join(exports[n].to_bytes(4, "little") for n in names)
            + b"".join(r.to_bytes(4, "little") for r in name_rvas)
            + b"".join(i.to_bytes(2, "little") for i in range(count)) + bytes(strings))


def export_directory_size(module_name: str, names: Iterable[str]) -> int:
    names = list(names)
    return (IMAGE_EXPORT_DIRECTORY_SIZE + 10 * len(names) + len(module_name) + 1
            + sum(len(n) + 1 for n in names))


def codeview_record(guid: str, age: int, pdb_name: str) -> bytes:
    return CV_INFO_PDB70.build(dict(Signature=uuid.UUID(guid).bytes_le, Age=age,
                                    PdbFileName=pdb_name))


def header_page(pe: Layout, *, image_base: int, size_of_image: int,
                sections: Iterable[Section], entry_point: int, timestamp: int, checksum: int,
                subsystem: int = IMAGE_SUBSYSTEM_NATIVE, exports: tuple[int, int] | None = None,
                codeview: bytes | None = None, pe32: bool = False) -> bytes:
    """The first page of a mapped image: DOS header and stub, NT headers (PE32+ for x64, or
    PE32 for an x86 image when ``pe32``), the section table, then (when given) a CodeView debug
    directory entry and its record. ``exports`` is the export directory's (RVA, size)."""
    sections = list(sections)
    nt_type = "_IMAGE_NT_HEADERS" if pe32 else "_IMAGE_NT_HEADERS64"
    nt_size = pe.size(nt_type)
    section_size = pe.size("_IMAGE_SECTION_HEADER")
    code = [s for s in sections if s.characteristics & SCN_CNT_CODE]
    data = [s for s in sections if not s.characteristics & SCN_CNT_CODE]
    code_size = sum(s.end - s.rva for s in code)

    dos = Record(pe, "_IMAGE_DOS_HEADER")
    for name, value in (("e_magic", 0x5A4D), ("e_cblp", 0x90), ("e_cp", 3), ("e_cparhdr", 4),
                        ("e_maxalloc", 0xFFFF), ("e_sp", 0xB8), ("e_lfarlc", 0x40),
                        ("e_lfanew", E_LFANEW)):
        dos.set(name, value)
    nt = Record(pe, nt_type)
    nt.set("Signature", 0x4550)
    nt.set("FileHeader.Machine", IMAGE_FILE_MACHINE_I386 if pe32 else IMAGE_FILE_MACHINE_AMD64)
    nt.set("FileHeader.NumberOfSections", len(sections))
    nt.set("FileHeader.TimeDateStamp", timestamp)
    nt.set("FileHeader.SizeOfOptionalHeader",
           pe.size("_IMAGE_OPTIONAL_HEADER" if pe32 else "_IMAGE_OPTIONAL_HEADER64"))
    nt.set("FileHeader.Characteristics",
           IMAGE_FILE_EXECUTABLE_IMAGE | (IMAGE_FILE_32BIT_MACHINE if pe32
                                          else IMAGE_FILE_LARGE_ADDRESS_AWARE))
    opt = "OptionalHeader."
    nt.set(opt + "Magic", 0x10B if pe32 else 0x20B)  # PE32 / PE32+
    if pe32:
        nt.set(opt + "BaseOfData", data[0].rva if data else PAGE_SIZE)
    nt.set(opt + "MajorLinkerVersion", 14)
    nt.set(opt + "MinorLinkerVersion", 20)
    nt.set(opt + "SizeOfCode", code_size)
    nt.set(opt + "SizeOfInitializedData", size_of_image - code_size - PAGE_SIZE)
    nt.set(opt + "AddressOfEntryPoint", entry_point)
    nt.set(opt + "BaseOfCode", code[0].rva if code else PAGE_SIZE)
    nt.set(opt + "ImageBase", image_base)  # the loader records the base it relocated to
    nt.set(opt + "SectionAlignment", PAGE_SIZE)
    nt.set(opt + "FileAlignment", 0x200)
    for part in ("OperatingSystem", "Image", "Subsystem"):
        nt.set(opt + f"Major{part}Version", 10)
        nt.set(opt + f"Minor{part}Version", 0)
    nt.set(opt + "SizeOfImage", size_of_image)
    nt.set(opt + "SizeOfHeaders", PAGE_SIZE)
    nt.set(opt + "CheckSum", checksum)
    nt.set(opt + "Subsystem", subsystem)
    nt.set(opt + "DllCharacteristics", DLL_CHARACTERISTICS | (0 if pe32 else HIGH_ENTROPY_VA))
    nt.set(opt + "SizeOfStackReserve", 0x80000)
    nt.set(opt + "SizeOfStackCommit", 0x2000)
    nt.set(opt + "SizeOfHeapReserve", 0x100000)
    nt.set(opt + "SizeOfHeapCommit", 0x1000)
    nt.set(opt + "NumberOfRvaAndSizes", 16)
    directory = pe.member(nt_type, opt + "DataDirectory").offset
    entry_size = pe.size("_IMAGE_DATA_DIRECTORY")

    def set_directory(index: int, rva: int, size: int) -> None:
        at = directory + index * entry_size
        nt.data[at:at + 8] = rva.to_bytes(4, "little") + size.to_bytes(4, "little")

    if exports is not None:
        set_directory(IMAGE_DIRECTORY_ENTRY_EXPORT, *exports)

    page = bytearray(PAGE_SIZE)
    page[0:len(dos.data)] = dos.data
    page[0x40:0x40 + len(DOS_STUB)] = DOS_STUB
    at = E_LFANEW + nt_size
    for section in sections:
        header = Record(pe, "_IMAGE_SECTION_HEADER")
        header.set("Name", section.name.encode("ascii").ljust(8, b"\0"))
        header.set("Misc.VirtualSize", section.size)
        header.set("VirtualAddress", section.rva)
        header.set("SizeOfRawData", _ceil(section.size, 0x200))
        header.set("PointerToRawData", section.rva)
        header.set("Characteristics", section.characteristics)
        page[at:at + section_size] = header.data
        at += section_size
    if codeview is not None:
        debug_at = _ceil(at, 0x10)
        debug_size = pe.size("_IMAGE_DEBUG_DIRECTORY")
        record_at = debug_at + debug_size
        if record_at + len(codeview) > PAGE_SIZE:
            raise InvalidInputError("the section table leaves no room for the debug record")
        debug = Record(pe, "_IMAGE_DEBUG_DIRECTORY")
        debug.set("TimeDateStamp", timestamp)
        debug.set("Type", IMAGE_DEBUG_TYPE_CODEVIEW)
        debug.set("SizeOfData", len(codeview))
        debug.set("AddressOfRawData", record_at)
        debug.set("PointerToRawData", record_at)
        page[debug_at:debug_at + debug_size] = debug.data
        page[record_at:record_at + len(codeview)] = codeview
        set_directory(IMAGE_DIRECTORY_ENTRY_DEBUG, debug_at, debug_size)
    page[E_LFANEW:E_LFANEW + nt_size] = nt.data
    if at > PAGE_SIZE:
        raise InvalidInputError(f"{len(sections)} sections do not fit the header page")
    return bytes(page)


# The sections of a small image after its header page: (name, characteristics, share of the
# pages); the first takes what the others leave. An executable: code, constants, data,
# exception data, resources. A driver: non-paged and pageable code, constants, data, then the
# INIT code and resources discarded after load, relocations last.
_EXE_SECTIONS = ((".text", CODE, 0), (".rdata", RDATA, 0), (".data", DATA, 0),
                 (".pdata", RDATA, 0), (".rsrc", RDATA, 0))
_DRIVER_SECTIONS = ((".text", CODE | SCN_MEM_NOT_PAGED, 0), ("PAGE", CODE, 20),
                    (".rdata", RDATA | SCN_MEM_NOT_PAGED, 10),
                    (".data", DATA | SCN_MEM_NOT_PAGED, 5),
                    ("INIT", CODE | SCN_MEM_DISCARDABLE, 5),
                    (".rsrc", RDATA | SCN_MEM_DISCARDABLE, 2),
                    (".reloc", RDATA | SCN_MEM_DISCARDABLE, 2))


def small_image_sections(pages: int, *, driver: bool = False) -> tuple[Section, ...]:
    """The section table of an image mapped over ``pages`` pages (the header page included):
    each section at least a page where they fit, the first (code) taking the rest."""
    layout = _DRIVER_SECTIONS if driver else _EXE_SECTIONS
    body = pages - 1
    if body < 1:
        return ()
    tail = [(name, flags, max(1, body * share // 100)) for name, flags, share in layout[1:]]
    while tail and sum(n for _name, _flags, n in tail) >= body:
        tail.pop()
    name, flags, _share = layout[0]
    first = body - sum(n for _name, _flags, n in tail)
    sections = [Section(name, PAGE_SIZE, first * PAGE_SIZE, flags)]
    at = PAGE_SIZE + first * PAGE_SIZE
    for name, flags, count in tail:
        sections.append(Section(name, at, count * PAGE_SIZE, flags))
        at += count * PAGE_SIZE
    return tuple(sections)


__all__ = ["CODE", "DATA", "KernelImagePlan", "RDATA", "Section", "codeview_record",
           "export_directory", "export_directory_size", "header_page", "plan_kernel_image",
           "small_image_sections"]
