"""Kernel virtual memory: writes through System's address space backed by frames on demand, the
pools (small blocks behind _POOL_HEADERs, page-aligned big allocations), and the regions a
booted kernel has mapped without the emulator writing them (PFN database, pool in use)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from ...errors import InvalidInputError
from ...structs.paging import PAGE_SHIFT, PAGE_SIZE
from ..memory import GuestPhysicalMemory
from ..pagetables import LARGE_PAGE_FRAMES, LARGE_PAGE_SIZE, AddressSpace
from .constants import MMPFN_SIZE, POOL_BLOCK
from .frames import Filler, Frames
from .records import Layout, Record

if TYPE_CHECKING:
    from .context import KernelContext

class KernelMemory:
    """Writes through the System address space; pages are backed with fresh frames on demand."""

    def __init__(self, memory: GuestPhysicalMemory, space: AddressSpace, frames: Frames) -> None:
        self.memory = memory
        self.space = space
        self.frames = frames
        self.backed_pages = 0
        self.filler: Filler | None = None

    def back(self, va: int, length: int, *, writable: bool = True) -> None:
        """Make every page of the range writable memory of its own: map a fresh zero frame where
        nothing is mapped, give a page on the shared filler frame a frame of its own, and start
        a page of generated filler content from zeros (a variable's page holds data, not noise)."""
        for page in range(va & ~0xFFF, va + length, PAGE_SIZE):
            pa = self.space.translate(page)
            if pa is None:
                pfn = self.frames.allocate()
                self.memory.zero_page(pfn)
                self.space.map_page(page, pfn, writable=writable, global_=True)
                self.backed_pages += 1
                continue
            pfn = pa >> PAGE_SHIFT
            if self.filler is not None and self.filler.is_shared(pfn):
                pfn = self.frames.allocate()
                self.space.remap_page(page, pfn)
                self.backed_pages += 1
            if not self.memory.is_explicit(pfn):
                self.memory.zero_page(pfn)

    def write(self, va: int, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            at = va + offset
            pa = self.space.translate(at)
            if pa is None:
                raise InvalidInputError(f"kernel address {at:#x} is not mapped")
            chunk = min(PAGE_SIZE - (at & 0xFFF), len(data) - offset)
            self.memory.write(pa, data[offset:offset + chunk])
            offset += chunk

    def store(self, va: int, data: bytes) -> None:
        """Back (if needed) and write."""
        self.back(va, len(data))
        self.write(va, data)

    def read(self, va: int, length: int) -> bytes:
        out = bytearray()
        while length:
            pa = self.space.translate(va)
            if pa is None:
                raise InvalidInputError(f"kernel address {va:#x} is not mapped")
            chunk = min(PAGE_SIZE - (va & 0xFFF), length)
            out += self.memory.read(pa, chunk)
            va += chunk
            length -= chunk
        return bytes(out)


class Pool:
    """A kernel pool region: small blocks packed into pages behind _POOL_HEADERs, as the
    (pre-segment-heap and VS-segment) small-block allocator lays them out, and page-aligned big
    allocations without a header (tracked by the big-page table in Windows)."""

    def __init__(self, kmem: KernelMemory, header: Layout, base: int, *, pool_type: int) -> None:
        self.kmem = kmem
        self.header_layout = header
        self.base = base
        self.pool_type = pool_type
        self._page: int | None = None
        self._used = 0  # bytes used in the current page
        self._previous_blocks = 0
        self._next_page = base
        self.header_size = header.size("_POOL_HEADER")
        self.allocations = 0

    def allocate(self, size: int, tag: bytes) -> int:
        """A block for ``size`` bytes; returns the address of its _POOL_HEADER (the caller's
        data starts ``header_size`` bytes later)."""
        if len(tag) != 4:
            raise InvalidInputError(f"pool tag {tag!r} is not 4 bytes")
        total = -(-(self.header_size + size) // POOL_BLOCK) * POOL_BLOCK
        if total > PAGE_SIZE:
            raise InvalidInputError(f"a {size:#x}-byte allocation needs the big pool")
        if self._page is None or self._used + total > PAGE_SIZE:
            self._page = self._new_pages(1)
            self._used = 0
            self._previous_blocks = 0
        address = self._page + self._used
        header = Record(self.header_layout, "_POOL_HEADER")
        header.set("PreviousSize", self._previous_blocks)
        header.set("PoolIndex", 0)
        header.set("BlockSize", total // POOL_BLOCK)
        header.set("PoolType", self.pool_type)
        header.set("PoolTag", int.from_bytes(tag, "little"))
        self.kmem.write(address, bytes(header))
        self._used += total
        self._previous_blocks = total // POOL_BLOCK
        self.allocations += 1
        return address

    def allocate_data(self, data: bytes, tag: bytes) -> int:
        """A block holding ``data``; returns the address of the data."""
        address = self.allocate(len(data), tag) + self.header_size
        self.kmem.write(address, data)
        return address

    def allocate_pages(self, size: int) -> int:
        """A page-aligned big allocation (no pool header); returns its address."""
        pages = -(-size // PAGE_SIZE)
        return self._new_pages(pages)

    def _new_pages(self, count: int) -> int:
        address = self._next_page
        self._next_page += count * PAGE_SIZE
        self.kmem.back(address, count * PAGE_SIZE)
        return address



def map_pfn_database(ctx: KernelContext) -> None:
    """The PFN database at MmPfnDatabase: one _MMPFN per physical frame. Its entries are not
    modelled (nothing here reads them), so every page of the array is one zero frame — the
    region is mapped, sized to the machine, as a reader following MmPfnDatabase finds it."""
    layout = ctx.layout
    entry = layout.size("_MMPFN") if layout.has_type("_MMPFN") else MMPFN_SIZE
    pages = -(-ctx.memory.frame_count * entry // PAGE_SIZE)
    zero = ctx.frames.allocate()
    ctx.memory.zero_page(zero)
    ctx.system_space.map_frames(ctx.pfn_database, itertools.repeat(zero, pages),
                                writable=True, global_=True)


def map_bulk_pool(ctx: KernelContext, pool_pages: int) -> None:
    """Non-paged pool in 2 MiB large pages over background frames (a busy machine's pool):
    mapped kernel memory every pool scan has to read."""
    count = pool_pages // LARGE_PAGE_FRAMES
    for index in ctx.progress(range(count), "kernel pool", count):
        start = ctx.bulk.take(LARGE_PAGE_FRAMES, align=LARGE_PAGE_FRAMES)
        ctx.memory.add_background(start, LARGE_PAGE_FRAMES)
        ctx.system_space.map_large_page(ctx.bulk_pool_base + index * LARGE_PAGE_SIZE, start,
                                        writable=True, global_=True)
        ctx.pool_large_pages += 1


def map_paged_bulk_pool(ctx: KernelContext, pages: int) -> None:
    """Paged pool in 4 KiB pages over background frames, after the small blocks."""
    start = ctx.bulk.take(pages)
    ctx.memory.add_background(start, pages)
    ctx.system_space.map_range(ctx.paged_bulk_base, start, pages, writable=True, global_=True)


__all__ = ["KernelMemory", "Pool", "map_bulk_pool", "map_paged_bulk_pool", "map_pfn_database"]
