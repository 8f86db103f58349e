"""Handle tables: each user process's _HANDLE_TABLE on the list of handle tables, and System's
ObjectTable, the kernel's handle table, holding a handle with full access to every other process.

x64 Windows 8.1+ encoding, read by name: TableCode points at pages of _HANDLE_TABLE_ENTRY (one
page: level 0; more: a level-1 page of pointers to them, the level in TableCode's low bits);
entry 0 of each page is never a handle; ObjectPointerBits = object header >> 4, the entry
Unlocked, GrantedAccessBits the access mask (Volatility windows.handles, MemProcFS
VmmWinHandle_InitializeCore_ReadHandleTable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...structs.paging import PAGE_SIZE
from ..scenario import ProcessKind
from .constants import HANDLE_TABLE_ENTRIES, PROCESS_ALL_ACCESS
from .records import Record
from .results import BuiltProcess

if TYPE_CHECKING:
    from .context import KernelContext


def create_handle_table(ctx: KernelContext, pid: int, *, quota_process: int = 0,
                        table_code: int = 0) -> int:
    """A handle table in an ``Obtb`` paged-pool block, alone on its list of handle tables:
    charged to the EPROCESS ``quota_process``, its entries at ``table_code`` (none: empty).
    Returns its address (the process's ObjectTable)."""
    layout = ctx.layout
    table = ctx.paged.allocate(layout.size("_HANDLE_TABLE"), b"Obtb") + ctx.paged.header_size
    handles = Record(layout, "_HANDLE_TABLE")
    if table_code:
        handles.set("TableCode", table_code)
    handles.set("UniqueProcessId", pid)
    if quota_process:
        handles.set("QuotaProcess", quota_process)
    links_at = table + layout.offset("_HANDLE_TABLE", "HandleTableList")
    handles.set_list_entry("HandleTableList", links_at, links_at)
    ctx.kmem.write(table, bytes(handles))
    return table


def create_system_handle_table(ctx: KernelContext, processes: list[BuiltProcess]) -> None:
    """System's ObjectTable with a handle to every other process, where the layout describes
    handle table entries."""
    system = next(p for p in processes if p.spec.kind is ProcessKind.SYSTEM)
    layout = ctx.layout
    if not (layout.has("_HANDLE_TABLE", "TableCode")
            and layout.has_type("_HANDLE_TABLE_ENTRY")):
        return
    header_offset = layout.offset("_OBJECT_HEADER", "Body")
    targets = [p.eprocess - header_offset for p in processes if p is not system]
    per_page = HANDLE_TABLE_ENTRIES - 1
    pages = []
    for first in range(0, max(len(targets), 1), per_page):
        page = ctx.paged.allocate_pages(PAGE_SIZE)
        entries = bytearray(PAGE_SIZE)
        for slot, header in enumerate(targets[first:first + per_page], start=1):
            entry = Record(layout, "_HANDLE_TABLE_ENTRY")
            entry.set("Unlocked", 1)
            entry.set("ObjectPointerBits", (header >> 4) & ((1 << 44) - 1))
            entry.set("GrantedAccessBits", PROCESS_ALL_ACCESS)
            entries[slot * 16:slot * 16 + 16] = bytes(entry)
        ctx.kmem.write(page, bytes(entries))
        pages.append(page)
    if len(pages) == 1:
        table_code = pages[0]
    else:
        directory = ctx.paged.allocate_pages(PAGE_SIZE)
        ctx.kmem.write(directory, b"".join(p.to_bytes(8, "little") for p in pages))
        table_code = directory | 1
    table = create_handle_table(ctx, system.spec.pid, table_code=table_code)
    ctx.kmem.write(system.eprocess + layout.offset("_EPROCESS", "ObjectTable"),
                   table.to_bytes(8, "little"))


__all__ = ["create_handle_table", "create_system_handle_table"]
