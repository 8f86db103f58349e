"""A process's user address space: the frames of each region (what they hold, VTL1's claim on a
trustlet's), their mapping, a VAD for each, the image's header page where the image is mapped,
and the PEB. Every process, trustlets included, also maps KUSER_SHARED_DATA's frame read-only at
0x7FFE0000 under a VAD of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

from ...errors import InvalidInputError
from ...isf import SymbolTable
from ...structs.paging import PAGE_SHIFT, PAGE_SIZE
from ..scenario import RegionSpec
from .constants import KUSER_SHARED_DATA_USER, NO_ACCESS, SHARED_CONTENT, VOLATILITY_SYMBOLS
from .peimage import IMAGE_SUBSYSTEM_WINDOWS_GUI, header_page, small_image_sections
from .records import Layout, Record
from .results import BuiltProcess, BuiltRegion
from .vads import IMAGE_TAG, PRIVATE_TAG, create_control_area, create_vad, link_vad_tree

if TYPE_CHECKING:
    from .context import KernelContext


def create_user_space(ctx: KernelContext, built: BuiltProcess, file_object: int
                      ) -> tuple[int, int]:
    """Map ``built``'s regions and the shared user data page, with their VADs (image VADs name
    ``file_object`` where there is one), and write its image header and PEB. Fills
    ``built.regions`` and ``built.peb``; returns the VAD tree's root and the number of VADs."""
    spec = built.spec
    space = built.space
    regions: list[BuiltRegion] = []
    subsection = 0
    specs = list(spec.regions)
    # NT maps KUSER_SHARED_DATA read-only and no-execute into every process it creates,
    # trustlets included (their address space is built in VTL0 like any other), under a
    # read-only VAD of its own (MiInsertSharedUserPageVad; ReactOS ntoskrnl/mm/ARM3/procsup.c).
    specs.append(RegionSpec(KUSER_SHARED_DATA_USER, 1, "PAGE_READONLY", SHARED_CONTENT))
    for region in sorted(specs, key=lambda r: r.start):
        pfns = user_frames(ctx, region)
        writable = region.protection in ("PAGE_READWRITE", "PAGE_EXECUTE_READWRITE")
        executable = "EXECUTE" in region.protection
        if isinstance(pfns, range):
            space.map_range(region.start, pfns.start, len(pfns), writable=writable, user=True,
                            executable=executable)
        else:
            space.map_frames(region.start, pfns, writable=writable, user=True,
                             executable=executable)
        if region.image and subsection == 0 and file_object:
            subsection = create_control_area(ctx, file_object, region.pages)
        tag = IMAGE_TAG if region.image and subsection else PRIVATE_TAG
        vad = create_vad(ctx, region, tag, subsection if tag == IMAGE_TAG else 0)
        regions.append(BuiltRegion(spec=region, vad=vad, tag=tag, pfns=pfns))
    built.regions = regions
    image = next((r.spec for r in regions if r.spec.image and not r.spec.bulk), None)
    if image is not None:
        _write_image_header(ctx, built, image)
    _write_process_environment(ctx, built)
    root = link_vad_tree(ctx, regions)
    return root, len(regions)


def user_frames(ctx: KernelContext, region: RegionSpec) -> list[int] | range:
    """The frames of ``region``, holding its content; a secure region's frames VTL1 takes from
    VTL0 (HvModifyVtlProtectionMask with no access)."""
    memory = ctx.memory
    if region.content == SHARED_CONTENT:
        return [ctx.kuser_pfn]
    if region.bulk:
        start = ctx.bulk.take(region.pages)
        memory.add_background(start, region.pages)
        pfns: list[int] | range = range(start, start + region.pages)
    else:
        pfns = [ctx.frames.allocate() for _ in range(region.pages)]
        for index, pfn in enumerate(pfns):
            if region.content == "zero":
                memory.zero_page(pfn)
            else:
                memory.write(pfn << PAGE_SHIFT, page_content(region, index))
    if region.secure:
        for start, count in frame_runs(pfns):
            ctx.machine.modify_vtl_protection_mask(start << PAGE_SHIFT, count, NO_ACCESS)
    return pfns


def page_content(region: RegionSpec, index: int) -> bytes:
    """Recognisable content of page ``index`` of a region: its address and whose it is."""
    va = region.start + index * PAGE_SIZE
    label = b"IUM-SECRET" if region.secure else b"VTL0-DATA"
    line = label + f" va={va:#014x} ".encode() + bytes([0x41 + index % 26]) * 5
    return (line * (PAGE_SIZE // len(line) + 1))[:PAGE_SIZE]


def peb32_address(built: BuiltProcess) -> int:
    """Where a WoW64 process's PEB32 is: the start of its PEB region (its PEB follows)."""
    return next(r for r in built.regions if r.spec.peb).spec.start


def frame_runs(pfns: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Maximal runs of consecutive frame numbers as (start, count)."""
    if isinstance(pfns, range):
        if len(pfns):
            yield pfns.start, len(pfns)
        return
    start = previous = None
    for pfn in pfns:
        if start is None:
            start = previous = pfn
        elif pfn == previous + 1:
            previous = pfn
        else:
            yield start, previous - start + 1
            start = previous = pfn
    if start is not None:
        yield start, previous - start + 1


def _write_image_header(ctx: KernelContext, built: BuiltProcess, region: RegionSpec) -> None:
    """The process image's header page at its base, as the image loader maps it (PE32 for a
    WoW64 process): what a reader sees at EPROCESS.SectionBaseAddress — MemProcFS, for one,
    tells the PEB from the image by this MZ (vmm/vmmwin.c, VmmWinProcess_OffsetLocator64)."""
    sections = small_image_sections(region.pages)
    header = header_page(
        ctx.pe_layout, image_base=region.start, size_of_image=region.pages * PAGE_SIZE,
        sections=sections, entry_point=sections[0].rva if sections else 0,
        timestamp=ctx.pe_timestamp - ctx.rng.randrange(1, 400) * 86400,
        checksum=ctx.rng.randrange(0x1000, 0x100000), subsystem=IMAGE_SUBSYSTEM_WINDOWS_GUI,
        pe32=built.spec.wow64)
    _write_user(ctx, built, region.start, header)


def _write_process_environment(ctx: KernelContext, built: BuiltProcess) -> None:
    """The PEB (and before it the PEB32 of a WoW64 process) in the region marked ``peb``,
    written into its frames as the process sees them."""
    spec = built.spec
    peb_region = next((r for r in built.regions if r.spec.peb), None)
    if peb_region is None:
        return
    built.peb = peb_region.spec.start + (PAGE_SIZE if spec.wow64 else 0)
    peb = Record(ctx.layout, "_PEB")
    peb.set("ImageBaseAddress", spec.image_base)
    peb.set("BeingDebugged", 0)
    peb.set("OSMajorVersion", 10)
    peb.set("OSMinorVersion", 0)
    peb.set("OSBuildNumber", ctx.build_number)
    peb.set("OSPlatformId", 2)  # VER_PLATFORM_WIN32_NT
    peb.set("ImageSubsystem", 2)  # IMAGE_SUBSYSTEM_WINDOWS_GUI
    peb.set("ImageSubsystemMajorVersion", 10)
    peb.set("NumberOfProcessors", ctx.processors)
    peb.set("SessionId", spec.session or 0)
    _write_user(ctx, built, built.peb, bytes(peb))
    if spec.wow64:
        peb32 = Record(Layout(SymbolTable.load(VOLATILITY_SYMBOLS / "wow64.json")), "_PEB32")
        peb32.set("ImageBaseAddress", spec.image_base)
        peb32.set("OSMajorVersion", 10)
        peb32.set("OSBuildNumber", ctx.build_number)
        _write_user(ctx, built, peb32_address(built), bytes(peb32))


def _write_user(ctx: KernelContext, built: BuiltProcess, va: int, data: bytes) -> None:
    pa = built.space.translate(va)
    if pa is None:
        raise InvalidInputError(f"user address {va:#x} of pid {built.spec.pid} is not mapped")
    ctx.memory.write(pa, data)


__all__ = ["create_user_space", "frame_runs", "page_content", "peb32_address", "user_frames"]
