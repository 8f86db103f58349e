"""x64 4-level guest page tables, built in guest-physical memory.

Source: Intel SDM Vol. 3A §4.5 "4-Level Paging" (CR3 → PML4 → PDPT → PD → PT; a PDE with PS=1
maps 2 MiB) and Windows Internals 7th ed. part 1, ch. 5 "Address translation": every process has
its own PML4 whose upper half (indices 256–511, the kernel half) points at the same PDPTs in every
process, and one PML4 entry maps the page-table hierarchy itself (the "self-map"; its index is
randomized since Windows 10 1607).

Each table page is kept as 512 integers until ``PageTableStore.flush`` writes it to guest memory,
so mapping a gigabyte costs one integer per page and no construct call per entry: the entry
templates come from the construct definitions in ``iumdump.structs.paging`` (built once per flag
combination) and the frame address is OR-ed in.
"""

from __future__ import annotations

import functools
from array import array
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from ..errors import InvalidInputError
from ..structs.bitfields import word_value
from ..structs.paging import (
    ADDRESS_MASK, PAGE_SHIFT, PAGE_SIZE, PAGE_SIZE_BIT, PDE, PDE_2MB, PDPTE, PML4E, PRESENT, PTE,
)
from .memory import GuestPhysicalMemory

ENTRIES = 512
KERNEL_HALF_FIRST_INDEX = 256  # PML4 indices 256..511 map 0xFFFF800000000000 and above
LARGE_PAGE_SIZE = 0x200000
LARGE_PAGE_FRAMES = LARGE_PAGE_SIZE >> PAGE_SHIFT
USER_SPACE_END = 0x0000_8000_0000_0000
KERNEL_SPACE_START = 0xFFFF_8000_0000_0000
_VA_MASK = (1 << 48) - 1


def canonical(address: int) -> int:
    """Sign-extend a 48-bit virtual address (bit 47 copied into bits 48–63)."""
    address &= _VA_MASK
    return address | 0xFFFF_0000_0000_0000 if address & (1 << 47) else address


def is_canonical(address: int) -> bool:
    return 0 <= address < USER_SPACE_END or KERNEL_SPACE_START <= address < 1 << 64


def self_map_base(index: int) -> int:
    """Virtual address of the page-table self-map through PML4 entry ``index`` (MmPteBase)."""
    return canonical(index << 39)


@functools.lru_cache(maxsize=None)
def leaf_bits(kind: str, *, writable: bool, user: bool, executable: bool, global_: bool) -> int:
    """The flag bits of a leaf entry (``PTE`` or ``PDE_2MB``), from its construct definition."""
    construct = {"PTE": PTE, "PDE_2MB": PDE_2MB}[kind]
    values = dict(Present=True, ReadWrite=writable, UserSupervisor=user, Accessed=True,
                  Dirty=writable, Global=global_, ExecuteDisable=not executable)
    if kind == "PDE_2MB":
        values["PageSize"] = True
    return word_value(construct, **values)


@functools.lru_cache(maxsize=None)
def table_bits(kind: str, *, user: bool) -> int:
    """The flag bits of an entry that references a table: present, writable, accessed, and user
    in the user half (the leaf decides the final rights, as Windows does)."""
    construct = {"PML4E": PML4E, "PDPTE": PDPTE, "PDE": PDE}[kind]
    return word_value(construct, Present=True, ReadWrite=True, UserSupervisor=user, Accessed=True)


@functools.lru_cache(maxsize=None)
def self_reference_bits() -> int:
    # Windows' self-map entry is present, writable, accessed and no-execute (e.g. 0x8000...063).
    return word_value(PML4E, Present=True, ReadWrite=True, Accessed=True, ExecuteDisable=True)


@dataclass(frozen=True)
class LeafMapping:
    """One leaf translation: ``size`` bytes at virtual ``va`` map physical ``pa``."""

    va: int
    pa: int
    size: int
    entry: int

    @property
    def pfn(self) -> int:
        return self.pa >> PAGE_SHIFT

    @property
    def writable(self) -> bool:
        return bool(self.entry & 0x2)

    @property
    def user(self) -> bool:
        return bool(self.entry & 0x4)


class PageTableStore:
    """Every page-table page of the machine, as arrays of 512 entries keyed by frame number.

    Address spaces share one store because the kernel half of every PML4 points at the same
    PDPTs. ``allocate_frame`` hands out frames for new tables.
    """

    def __init__(self, memory: GuestPhysicalMemory, allocate_frame: Callable[[], int]) -> None:
        self.memory = memory
        self._allocate_frame = allocate_frame
        self.tables: dict[int, array] = {}

    def new_table(self, pfn: int | None = None) -> int:
        if pfn is None:
            pfn = self._allocate_frame()
        if pfn in self.tables:
            raise InvalidInputError(f"frame {pfn:#x} already holds a page table")
        self.tables[pfn] = array("Q", bytes(PAGE_SIZE))
        return pfn

    def table(self, pfn: int) -> array:
        return self.tables[pfn]

    def flush(self) -> None:
        """Write every table into guest memory (call once the mappings are final)."""
        for pfn, table in self.tables.items():
            self.memory.write(pfn << PAGE_SHIFT, table.tobytes())

    @property
    def frame_count(self) -> int:
        return len(self.tables)


class AddressSpace:
    """One page-map hierarchy rooted at a PML4 (one CR3 value)."""

    def __init__(self, store: PageTableStore, *, root_pfn: int | None = None) -> None:
        self.store = store
        self.root_pfn = store.new_table(root_pfn)
        self.self_reference_index: int | None = None

    @property
    def dtb(self) -> int:
        """The CR3 / DirectoryTableBase value (no PCID)."""
        return self.root_pfn << PAGE_SHIFT

    # -- building ---------------------------------------------------------------------------
    def map_page(self, va: int, pfn: int, *, writable: bool = True, user: bool = False,
                 executable: bool = False, global_: bool = False) -> None:
        """Map one 4 KiB page."""
        table = self._table_for(va, levels=3, user=user)
        bits = leaf_bits("PTE", writable=writable, user=user, executable=executable,
                         global_=global_)
        table[(va >> 12) & 0x1FF] = bits | (pfn << PAGE_SHIFT)

    def map_frames(self, va: int, pfns: Iterable[int], *, writable: bool = True,
                   user: bool = False, executable: bool = False, global_: bool = False) -> int:
        """Map consecutive 4 KiB pages from ``va`` onto ``pfns``; returns how many were mapped."""
        self._check(va, user)
        bits = leaf_bits("PTE", writable=writable, user=user, executable=executable,
                         global_=global_)
        count = 0
        table = None
        for pfn in pfns:
            index = (va >> 12) & 0x1FF
            if table is None or index == 0:
                table = self._table_for(va, levels=3, user=user)
            table[index] = bits | (pfn << PAGE_SHIFT)
            va += PAGE_SIZE
            count += 1
        return count

    def map_range(self, va: int, first_pfn: int, count: int, **flags) -> None:
        """Map ``count`` pages from ``va`` onto the contiguous frames from ``first_pfn``."""
        self.map_frames(va, range(first_pfn, first_pfn + count), **flags)

    def map_large_page(self, va: int, pfn: int, *, writable: bool = True, user: bool = False,
                       executable: bool = False, global_: bool = False) -> None:
        """Map one 2 MiB page (a PDE with PS=1); ``va`` and ``pfn`` must be 2 MiB aligned."""
        if va % LARGE_PAGE_SIZE or pfn % LARGE_PAGE_FRAMES:
            raise InvalidInputError(f"2 MiB page {va:#x} → frame {pfn:#x} is not 2 MiB aligned")
        directory = self._table_for(va, levels=2, user=user)
        index = (va >> 21) & 0x1FF
        if directory[index] & PRESENT and not directory[index] & PAGE_SIZE_BIT:
            raise InvalidInputError(f"{canonical(va):#x} is already mapped by a page table")
        directory[index] = leaf_bits("PDE_2MB", writable=writable, user=user,
                                     executable=executable, global_=global_) | (pfn << PAGE_SHIFT)

    def remap_page(self, va: int, pfn: int) -> None:
        """Point the 4 KiB page at ``va`` (already mapped) at another frame, keeping its rights."""
        table = self._table_for(va, levels=3, user=va < USER_SPACE_END)
        index = (va >> 12) & 0x1FF
        if not table[index] & PRESENT:
            raise InvalidInputError(f"{canonical(va):#x} is not mapped")
        table[index] = (table[index] & ~ADDRESS_MASK) | (pfn << PAGE_SHIFT)

    def set_self_reference(self, index: int) -> int:
        """Point PML4 entry ``index`` at this PML4; returns the self-map's base address."""
        if not KERNEL_HALF_FIRST_INDEX <= index < ENTRIES:
            raise InvalidInputError(f"self-map index {index:#x} is not in the kernel half")
        root = self.store.table(self.root_pfn)
        if root[index] & PRESENT:
            raise InvalidInputError(f"PML4 entry {index:#x} is already in use")
        root[index] = self_reference_bits() | self.dtb
        self.self_reference_index = index
        return self_map_base(index)

    def share_kernel_half(self, source: AddressSpace) -> None:
        """Copy ``source``'s kernel-half PML4 entries (they point at shared PDPTs), keeping this
        space's own self-map entry pointing at its own PML4, as MmCreateProcessAddressSpace does."""
        root = self.store.table(self.root_pfn)
        other = self.store.table(source.root_pfn)
        for index in range(KERNEL_HALF_FIRST_INDEX, ENTRIES):
            if index == source.self_reference_index:
                continue
            root[index] = other[index]
        if source.self_reference_index is not None and self.self_reference_index is None:
            self.set_self_reference(source.self_reference_index)

    # -- reading ----------------------------------------------------------------------------
    def translate(self, va: int) -> int | None:
        """Physical address of ``va``, or None when a level is not present."""
        entry = PRESENT | self.dtb
        for level, shift in enumerate((39, 30, 21, 12)):
            table = self.store.tables.get((entry & ADDRESS_MASK) >> PAGE_SHIFT)
            if table is None:
                return None
            entry = table[(va >> shift) & 0x1FF]
            if not entry & PRESENT:
                return None
            if level == 2 and entry & PAGE_SIZE_BIT:
                return (entry & ADDRESS_MASK & ~(LARGE_PAGE_SIZE - 1)) | (va & (LARGE_PAGE_SIZE - 1))
        return (entry & ADDRESS_MASK) | (va & 0xFFF)

    def leaves(self, start: int = 0, end: int = USER_SPACE_END) -> Iterator[LeafMapping]:
        """Every leaf mapping whose page starts in ``[start, end)`` (canonical addresses), in
        address order; the self-map entry is not followed."""
        root = self.store.table(self.root_pfn)
        lo, hi = start & _VA_MASK, ((end - 1) & _VA_MASK)
        for i4 in range(lo >> 39, (hi >> 39) + 1):
            e4 = root[i4]
            if not e4 & PRESENT or i4 == self.self_reference_index:
                continue
            pdpt = self.store.tables[(e4 & ADDRESS_MASK) >> PAGE_SHIFT]
            for i3 in range(ENTRIES):
                e3 = pdpt[i3]
                if not e3 & PRESENT:
                    continue
                pd = self.store.tables[(e3 & ADDRESS_MASK) >> PAGE_SHIFT]
                for i2 in range(ENTRIES):
                    e2 = pd[i2]
                    if not e2 & PRESENT:
                        continue
                    base = (i4 << 39) | (i3 << 30) | (i2 << 21)
                    if e2 & PAGE_SIZE_BIT:
                        if lo <= base <= hi:
                            yield LeafMapping(canonical(base),
                                              e2 & ADDRESS_MASK & ~(LARGE_PAGE_SIZE - 1),
                                              LARGE_PAGE_SIZE, e2)
                        continue
                    pt = self.store.tables[(e2 & ADDRESS_MASK) >> PAGE_SHIFT]
                    for i1, e1 in enumerate(pt):
                        if e1 & PRESENT:
                            va = base | (i1 << 12)
                            if lo <= va <= hi:
                                yield LeafMapping(canonical(va), e1 & ADDRESS_MASK, PAGE_SIZE, e1)

    # -- internals --------------------------------------------------------------------------
    def _check(self, va: int, user: bool) -> None:
        if not is_canonical(va):
            raise InvalidInputError(f"{va:#x} is not a canonical x64 address")
        if user != (va < USER_SPACE_END):
            half = "user" if va < USER_SPACE_END else "kernel"
            raise InvalidInputError(f"{va:#x} is in the {half} half but mapped with user={user}")

    def _table_for(self, va: int, *, levels: int, user: bool) -> array:
        """The table ``levels`` below the PML4 that holds ``va``'s entry, creating tables."""
        self._check(va, user)
        table = self.store.table(self.root_pfn)
        for kind, shift in (("PML4E", 39), ("PDPTE", 30), ("PDE", 21))[:levels]:
            index = (va >> shift) & 0x1FF
            entry = table[index]
            if entry & PRESENT:
                if entry & PAGE_SIZE_BIT and kind != "PML4E":
                    raise InvalidInputError(f"{canonical(va):#x} is inside a large page")
                if kind == "PML4E" and index == self.self_reference_index:
                    raise InvalidInputError(f"{canonical(va):#x} is inside the page-table self-map")
                table = self.store.table((entry & ADDRESS_MASK) >> PAGE_SHIFT)
                continue
            pfn = self.store.new_table()
            table[index] = table_bits(kind, user=user) | (pfn << PAGE_SHIFT)
            table = self.store.table(pfn)
        return table
