"""x64 4-level paging entries and Intel EPT entries as construct definitions.

Sources: Intel SDM Vol. 3A, §4.5 "4-Level Paging", Tables 4-15 (PML4E), 4-16/4-17 (PDPTE, 1-GiB
page / page directory), 4-18/4-19 (PDE, 2-MiB page / page table), 4-20 (PTE); and Vol. 3C,
§29.3.2 "EPT Translation Mechanism", Tables 29-1..29-6 (EPT PML4E, PDPTE, PDE, PTE).
Every entry is one little-endian QWORD; bit fields are LSB-first (see ``bitfields``).
"""

from __future__ import annotations

from construct import Construct

from .bitfields import BitField, lsb_first_bitfield_word

PAGE_SHIFT = 12  # 4-KiB pages: the one page size of iumdump (large pages are counted in them)
PAGE_SIZE = 1 << PAGE_SHIFT
FRAME_BITS = 40  # bits 12..51: MAXPHYADDR of 52, the architectural maximum

# -- guest paging (CR3 → PML4 → PDPT → PD → PT) ---------------------------------------------

_COMMON = [
    BitField("Present", 0), BitField("ReadWrite", 1), BitField("UserSupervisor", 2),
    BitField("PageWriteThrough", 3), BitField("PageCacheDisable", 4), BitField("Accessed", 5),
]
_XD = [BitField("ExecuteDisable", 63)]


def _paging(*fields: BitField) -> Construct:
    return lsb_first_bitfield_word([*_COMMON, *fields, *_XD], 8)


# Entries that reference a table: bit 7 (PS) is 0 (reserved in the PML4E).
PML4E = _paging(BitField("PageSize", 7), BitField("PageFrameNumber", 12, FRAME_BITS))
PDPTE = _paging(BitField("PageSize", 7), BitField("PageFrameNumber", 12, FRAME_BITS))
PDE = _paging(BitField("PageSize", 7), BitField("PageFrameNumber", 12, FRAME_BITS))
# Leaf entries: PS=1 in a PDPTE maps 1 GiB, in a PDE 2 MiB; PAT moves to bit 12 there.
_LEAF = [BitField("Dirty", 6), BitField("Global", 8), BitField("ProtectionKey", 59, 4)]
PDPTE_1GB = _paging(*_LEAF, BitField("PageSize", 7), BitField("Pat", 12),
                    BitField("PageFrameNumber", 30, 22))
PDE_2MB = _paging(*_LEAF, BitField("PageSize", 7), BitField("Pat", 12),
                  BitField("PageFrameNumber", 21, 31))
PTE = _paging(*_LEAF, BitField("Pat", 7), BitField("PageFrameNumber", 12, FRAME_BITS))

# Frame-number granularity of each leaf kind, in address bits.
LARGE_PAGE_SHIFT = {"PDPTE_1GB": 30, "PDE_2MB": 21, "PTE": 12}

PRESENT = 1 << 0
READ_WRITE = 1 << 1
USER = 1 << 2
PAGE_SIZE_BIT = 1 << 7
EXECUTE_DISABLE = 1 << 63
ADDRESS_MASK = ((1 << 52) - 1) & ~0xFFF

# -- EPT (the hypervisor's second-level tables for one VTL) ------------------------------------

_EPT_RWX = [BitField("Read", 0), BitField("Write", 1), BitField("Execute", 2)]
_EPT_LEAF = [
    BitField("MemoryType", 3, 3), BitField("IgnorePat", 6), BitField("Accessed", 8),
    BitField("Dirty", 9), BitField("UserModeExecute", 10), BitField("VerifyGuestPaging", 57),
    BitField("PagingWriteAccess", 58), BitField("SupervisorShadowStack", 60),
    BitField("SubPageWritePermissions", 61), BitField("SuppressVe", 63),
]
_EPT_TABLE = [BitField("Accessed", 8), BitField("UserModeExecute", 10)]


def _ept(*fields: BitField) -> Construct:
    return lsb_first_bitfield_word([*_EPT_RWX, *fields], 8)


EPT_PML4E = _ept(*_EPT_TABLE, BitField("PageFrameNumber", 12, FRAME_BITS))
EPT_PDPTE = _ept(*_EPT_TABLE, BitField("LargePage", 7), BitField("PageFrameNumber", 12, FRAME_BITS))
EPT_PDE = _ept(*_EPT_TABLE, BitField("LargePage", 7), BitField("PageFrameNumber", 12, FRAME_BITS))
EPT_PDPTE_1GB = _ept(*_EPT_LEAF, BitField("LargePage", 7), BitField("PageFrameNumber", 30, 22))
EPT_PDE_2MB = _ept(*_EPT_LEAF, BitField("LargePage", 7), BitField("PageFrameNumber", 21, 31))
EPT_PTE = _ept(*_EPT_LEAF, BitField("PageFrameNumber", 12, FRAME_BITS))

# EPT memory types (SDM Vol. 3C §29.3.7): the value of MemoryType in a leaf entry.
EPT_MEMORY_TYPE = {"UC": 0, "WC": 1, "WT": 4, "WP": 5, "WB": 6}

EPT_READ = 1 << 0
EPT_WRITE = 1 << 1
EPT_EXECUTE = 1 << 2
EPT_LARGE_PAGE = 1 << 7


def pfn_of(entry: int) -> int:
    """Frame number (in 4 KiB frames) an entry points at, for table entries and 4 KiB leaves."""
    return (entry & ADDRESS_MASK) >> PAGE_SHIFT


def table_indices(address: int) -> tuple[int, int, int, int]:
    """PML4, PDPT, PD and PT indices of a 48-bit (guest-virtual or guest-physical) address."""
    return ((address >> 39) & 0x1FF, (address >> 30) & 0x1FF, (address >> 21) & 0x1FF,
            (address >> 12) & 0x1FF)
