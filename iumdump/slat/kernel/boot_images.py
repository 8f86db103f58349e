"""The images the boot loader maps: ntoskrnl.exe at its randomized base, whole, with its header
page (section table, CodeView record naming the symbol table's PDB) and export directory;
hal.dll beside it; and PsLoadedModuleList naming both.

The PE structures themselves are written by :mod:`iumdump.slat.kernel.peimage`; this module
decides where they go and maps them as Windows does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from ...isf import SymbolTable
from ...structs.paging import PAGE_SHIFT, PAGE_SIZE
from ..pagetables import LARGE_PAGE_FRAMES, LARGE_PAGE_SIZE
from .constants import HAL_IMAGE_SIZE
from .manifest import KERNEL_EXPORTS, KERNEL_FUNCTIONS, KERNEL_SYMBOLS_USED, VARIABLE_SIZES
from .objects import pool_string, unicode_string_bytes
from .peimage import (
    IMAGE_SUBSYSTEM_NATIVE, KernelImagePlan, Section, codeview_record, export_directory,
    export_directory_size, header_page, plan_kernel_image, small_image_sections,
)
from .records import Record

if TYPE_CHECKING:
    from .context import KernelContext


def kernel_exports(symbols: SymbolTable) -> dict[str, int]:
    """ntoskrnl.exe's exports by name → RVA: KERNEL_EXPORTS that the symbol table has."""
    return {name: symbols.symbol(name) for name in KERNEL_EXPORTS if symbols.has_symbol(name)}


def kernel_image_plan(symbols: SymbolTable) -> KernelImagePlan:
    """ntoskrnl's section table from where a symbol table puts the kernel's variables and
    functions (iumdump.slat.kernel.peimage)."""
    rvas = [int(v["address"]) for v in symbols.data["symbols"].values()
            if isinstance(v.get("address"), int)]
    variables = {symbols.symbol(name): VARIABLE_SIZES.get(name, 8)
                 for name in KERNEL_SYMBOLS_USED
                 if name not in KERNEL_FUNCTIONS and symbols.has_symbol(name)}
    code = [symbols.symbol(name) for name in KERNEL_FUNCTIONS if symbols.has_symbol(name)]
    return plan_kernel_image(
        rvas, variables, code, kdbg=symbols.symbol("KdDebuggerDataBlock"),
        export_size=export_directory_size("ntoskrnl.exe", kernel_exports(symbols)))


def kernel_entry(ctx: KernelContext) -> int:
    """Where the kernel starts: KiSystemStartup, or the first code page where the symbol
    table does not name it."""
    if ctx.symbols.has_symbol("KiSystemStartup"):
        return ctx.symbol_address("KiSystemStartup")
    return ctx.base + 0x1000


def map_kernel_image(ctx: KernelContext) -> None:
    """Map the whole SizeOfImage of ntoskrnl.exe. Without VBS the loader maps the kernel with
    2 MiB pages; with VBS (HVCI enforcing per-section rights) each page carries its section's
    rights and the header page is non-executable — what MemProcFS's kernel scans expect of
    either (vmm/vmmwininit.c: "ntoskrnl.exe is loaded in 2MB pages except in low memory
    situations", and the small-page walk of VmmWinInit_FindNtosScan64 that wants a writable
    no-execute header page followed by read-only ones)."""
    pages = ctx.image_size >> PAGE_SHIFT
    space = ctx.system_space
    if not ctx.vbs and not ctx.filler.shared:
        large, tail = divmod(pages, LARGE_PAGE_FRAMES)
        first = ctx.filler.run(large * LARGE_PAGE_FRAMES + tail, align=LARGE_PAGE_FRAMES,
                               top=True)
        for index in range(large):
            space.map_large_page(ctx.base + index * LARGE_PAGE_SIZE,
                                 first[index * LARGE_PAGE_FRAMES], writable=True,
                                 executable=True, global_=True)
        done = large * LARGE_PAGE_FRAMES
        space.map_frames(ctx.base + done * PAGE_SIZE, first[done:], writable=True,
                         executable=True, global_=True)
        return
    _map_sections(ctx, ctx.base, ctx.filler.run(pages, top=True), ctx.image.sections)


def write_kernel_headers(ctx: KernelContext) -> None:
    """The header page of ntoskrnl.exe at the kernel base (sections, the CodeView record naming
    ntkrnlmp.pdb with the symbol table's GUID and age — what pdbscan matches) and its export
    directory, naming the image ntoskrnl.exe. Sets ``ctx.pe_timestamp``, the link time."""
    symbols, image = ctx.symbols, ctx.image
    # Link time: some months before the boot (the image was built, then installed).
    ctx.pe_timestamp = int(ctx.boot_time.timestamp()) - ctx.rng.randrange(30, 400) * 86400
    directory = export_directory("ntoskrnl.exe", image.export_rva, kernel_exports(symbols),
                                 ctx.pe_timestamp)
    entry = (symbols.symbol("KiSystemStartup") if symbols.has_symbol("KiSystemStartup")
             else image.sections[0].rva)
    header = header_page(
        ctx.pe_layout, image_base=ctx.base, size_of_image=ctx.image_size,
        sections=image.sections, entry_point=entry, timestamp=ctx.pe_timestamp,
        checksum=ctx.rng.randrange(0x900000, 0xB00000), subsystem=IMAGE_SUBSYSTEM_NATIVE,
        exports=(image.export_rva, len(directory)),
        codeview=codeview_record(symbols.guid, symbols.age, symbols.pdb_name))
    ctx.kmem.store(ctx.base, header)
    ctx.kmem.store(ctx.base + image.export_rva, directory)


def write_loaded_modules(ctx: KernelContext) -> int:
    """PsLoadedModuleList with ntoskrnl.exe and hal.dll (_LDR_DATA_TABLE_ENTRY in MmLd
    allocations), so the kernel can be found by its module list too. Maps hal.dll. Returns the
    list head."""
    layout = ctx.layout
    head = ctx.symbol_address("PsLoadedModuleList")
    hal_base = (ctx.base + ctx.image_size + LARGE_PAGE_SIZE) & ~(LARGE_PAGE_SIZE - 1)
    modules = [("ntoskrnl.exe", ctx.base, ctx.image_size, kernel_entry(ctx)),
               ("hal.dll", hal_base, HAL_IMAGE_SIZE, hal_base + 0x1000)]
    _map_driver_image(ctx, hal_base, HAL_IMAGE_SIZE)
    size = layout.size("_LDR_DATA_TABLE_ENTRY")
    entries = [ctx.nonpaged.allocate(size, b"MmLd") + ctx.nonpaged.header_size
               for _module in modules]
    links = layout.offset("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks")
    chain = [head] + [e + links for e in entries]
    for i, (entry, (name, base, image_size, entry_point)) in enumerate(zip(entries, modules)):
        ldr = Record(layout, "_LDR_DATA_TABLE_ENTRY")
        ldr.set("InLoadOrderLinks.Flink", chain[(i + 2) % len(chain)])
        ldr.set("InLoadOrderLinks.Blink", chain[i])
        ldr.set("DllBase", base)
        ldr.set("EntryPoint", entry_point)
        ldr.set("SizeOfImage", image_size)
        full = rf"\SystemRoot\system32\{name}"
        ldr.set("FullDllName", unicode_string_bytes(
            layout, full, pool_string(ctx, full, tag=b"MmLd", pool=ctx.nonpaged)))
        ldr.set("BaseDllName", unicode_string_bytes(
            layout, name, pool_string(ctx, name, tag=b"MmLd", pool=ctx.nonpaged)))
        ldr.set_optional("TimeDateStamp", ctx.pe_timestamp)
        ctx.kmem.write(entry, bytes(ldr))
    ctx.kmem.store(head, chain[1].to_bytes(8, "little") + chain[-1].to_bytes(8, "little"))
    return head


def _map_sections(ctx: KernelContext, base: int, frames: Sequence[int],
                  sections: Iterable[Section]) -> None:
    """Map an image page by page: the header page writable and no-execute, each section with
    its own rights."""
    space = ctx.system_space
    space.map_page(base, frames[0], writable=True, global_=True)
    for section in sections:
        lo, hi = section.rva >> PAGE_SHIFT, min(section.end >> PAGE_SHIFT, len(frames))
        space.map_frames(base + section.rva, frames[lo:hi], writable=section.writable,
                         executable=section.executable, global_=True)


def _map_driver_image(ctx: KernelContext, base: int, size: int) -> None:
    """A boot driver loaded beside the kernel (hal.dll): its whole image mapped, the header page
    naming its sections."""
    pages = size >> PAGE_SHIFT
    sections = small_image_sections(pages, driver=True)
    _map_sections(ctx, base, ctx.filler.run(pages), sections)
    init = next((s.rva for s in sections if s.name == "INIT"), sections[0].rva)
    ctx.kmem.store(base, header_page(
        ctx.pe_layout, image_base=base, size_of_image=size, sections=sections,
        entry_point=init, timestamp=ctx.pe_timestamp - ctx.rng.randrange(1, 30) * 86400,
        checksum=ctx.rng.randrange(0x10000, 0x100000), subsystem=IMAGE_SUBSYSTEM_NATIVE))


__all__ = ["kernel_entry", "kernel_exports", "kernel_image_plan", "map_kernel_image",
           "write_kernel_headers", "write_loaded_modules"]
