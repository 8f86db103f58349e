"""The synthetic kernel's builders, run in boot order: what the loader maps, what the boot leaves
at fixed places, the object manager, the pools a running system has in use, the processes, and
last the debugger data that points at all of it."""

from __future__ import annotations

from typing import Iterable

from ..scenario import ProcessSpec
from .boot_images import map_kernel_image, write_kernel_headers, write_loaded_modules
from .boot_structures import (
    claim_secure_kernel_memory, write_debugger_data, write_kuser_shared_data, write_low_stub,
)
from .constants import IMAGE_FILE_MACHINE_AMD64, windows_time
from .context import KernelContext
from .handle_tables import create_system_handle_table
from .kernel_memory import map_bulk_pool, map_paged_bulk_pool, map_pfn_database
from .objects import create_object_types
from .processes import create_processes
from .results import KernelBuild


def build_kernel(ctx: KernelContext, processes: Iterable[ProcessSpec], *, pool_pages: int = 0,
                 paged_pool_pages: int = 0) -> KernelBuild:
    """Lay the kernel out. ``pool_pages`` of non-paged pool (2 MiB pages) and
    ``paged_pool_pages`` of paged pool come from the bulk area with generated content: the pool
    a running system has in use, beyond the allocations the emulator writes."""
    specs = sorted(processes, key=lambda s: s.pid != 4)  # System first (stable otherwise)
    map_kernel_image(ctx)
    if ctx.vbs:
        claim_secure_kernel_memory(ctx)
    write_low_stub(ctx)
    write_kernel_headers(ctx)
    ctx.kuser_pfn = write_kuser_shared_data(ctx)
    map_pfn_database(ctx)
    create_object_types(ctx)
    module_list = write_loaded_modules(ctx)
    if pool_pages:  # first: its 2 MiB-aligned runs come from the top of the bulk area
        map_bulk_pool(ctx, pool_pages)
    if paged_pool_pages:
        map_paged_bulk_pool(ctx, paged_pool_pages)
    built = create_processes(ctx, specs)
    create_system_handle_table(ctx, built)
    write_debugger_data(ctx, built, module_list)
    for process in built:
        if process.space is not None and process.space is not ctx.system_space:
            process.space.share_kernel_half(ctx.system_space)
    ctx.store.flush()
    return KernelBuild(
        build=ctx.build_number, revision=ctx.revision, guid=ctx.symbols.guid,
        age=ctx.symbols.age, base=ctx.base, image_size=ctx.image_size,
        dtb=ctx.system_space.dtb, self_map_index=ctx.self_map_index,
        kdbg=ctx.symbol_address("KdDebuggerDataBlock"),
        version_block=ctx.symbol_address("KdVersionBlock"),
        ps_active_process_head=ctx.symbol_address("PsActiveProcessHead"),
        ps_loaded_module_list=ctx.symbol_address("PsLoadedModuleList"),
        pfn_database=ctx.pfn_database, number_processors=ctx.processors,
        system_time=windows_time(ctx.system_time), machine_type=IMAGE_FILE_MACHINE_AMD64,
        object_header_cookie=ctx.cookie,
        has_secure_state=ctx.layout.has("_KPROCESS", "SecureState"),
        has_trustlet_identity=ctx.layout.has("_EPROCESS", "TrustletIdentity"),
        processes=built, secure_kernel_frames=ctx.secure_kernel_frames,
        kernel_pages=ctx.kmem.backed_pages, pool_large_pages=ctx.pool_large_pages)


__all__ = ["build_kernel"]
