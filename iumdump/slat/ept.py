"""The EPT of one VTL: 4-level extended page tables in hypervisor-private memory.

Hyper-V gives each VTL of a partition its own SLAT (on Intel, an EPT hierarchy). The tables live in
frames the hypervisor owns, never in guest-physical memory, so no guest dump contains them; here
they live in :class:`HypervisorMemory`, a host-physical space of their own. Entries are built and
decoded with the construct definitions of ``iumdump.structs.paging`` (Intel SDM Vol. 3C §29.3.2,
Tables 29-1..29-6); leaves are 1 GiB, 2 MiB or 4 KiB, and a large leaf is split into 512 smaller
ones when the permissions of part of it change.

Permissions are kept as EPT bits: Read (0), Write (1), Execute (2; supervisor-mode execute when
mode-based execute control is on, as Hyper-V's HVCI uses it) and UserModeExecute (10, SDM §29.3.3.1
"mode-based execute control for EPT"). The effective access of a GPA is the AND of these bits over
every entry of its walk. An entry with all four clear is not present (SDM §29.3.2); its other bits
are ignored by the processor, and the hypervisor keeps the frame and large-page bits there so it can
map the range again later.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

from construct import Construct

from ..errors import EptViolation, InvalidInputError
from ..structs.bitfields import word_value
from ..structs.paging import (
    EPT_EXECUTE, EPT_LARGE_PAGE, EPT_MEMORY_TYPE, EPT_PDE, EPT_PDE_2MB, EPT_PDPTE, EPT_PDPTE_1GB,
    EPT_PML4E, EPT_PTE, EPT_READ, EPT_WRITE, PAGE_SHIFT,
)

EPT_USER_EXECUTE = 1 << 10  # UserModeExecute, with mode-based execute control
EPT_ACCESS_MASK = EPT_READ | EPT_WRITE | EPT_EXECUTE | EPT_USER_EXECUTE
EPT_FULL_ACCESS = EPT_ACCESS_MASK

ENTRIES_PER_TABLE = 512
TABLE_SIZE = ENTRIES_PER_TABLE * 8
LEVEL_NAMES = ("PML4", "PDPT", "PD", "PT")
_LEVEL_SHIFT = (39, 30, 21, 12)  # address bits mapped by one entry of each level
_TABLE_ENTRY = (EPT_PML4E, EPT_PDPTE, EPT_PDE, None)
_LEAF_ENTRY = (None, EPT_PDPTE_1GB, EPT_PDE_2MB, EPT_PTE)
_ADDRESS_BITS = ((1 << 52) - 1)
# Bits of a leaf holding its address: 12..51 for a 4 KiB page, 21..51 / 30..51 for large pages.
_LEAF_ADDRESS_MASK = (None, _ADDRESS_BITS & ~((1 << 30) - 1), _ADDRESS_BITS & ~((1 << 21) - 1),
                      _ADDRESS_BITS & ~((1 << 12) - 1))
_TABLE_ADDRESS_MASK = _ADDRESS_BITS & ~((1 << 12) - 1)

# EPTP (SDM Vol. 3C §25.6.11): memory type of the tables in bits 2:0, page-walk length - 1 in 5:3.
_EPTP_WALK_LENGTH_4 = 3 << 3

# The hypervisor's own frames sit below the host-physical address where guest RAM starts.
HYPERVISOR_BASE_PFN = 0x1000          # host-physical 16 MiB
GUEST_RAM_SPA_BASE = 0x1_0000_0000    # guest RAM backed from host-physical 4 GiB (1 GiB aligned)

ACCESS_NAMES = {EPT_READ: "read", EPT_WRITE: "write", EPT_EXECUTE: "execute",
                EPT_USER_EXECUTE: "user-execute"}
_ACCESS_BY_NAME = {name: bit for bit, name in ACCESS_NAMES.items()}


def access_bit(access: str) -> int:
    """EPT permission bit needed for an access named ``read``, ``write``, ``execute`` or
    ``user-execute``."""
    try:
        return _ACCESS_BY_NAME[access]
    except KeyError:
        raise InvalidInputError(f"unknown access {access!r}; expected one of "
                                f"{', '.join(_ACCESS_BY_NAME)}") from None


def access_string(access: int) -> str:
    """``rwxu`` notation of EPT permission bits, ``-`` where a bit is clear."""
    return "".join(c if access & bit else "-" for c, bit in
                   zip("rwxu", (EPT_READ, EPT_WRITE, EPT_EXECUTE, EPT_USER_EXECUTE)))


@lru_cache(maxsize=1 << 16)
def parse_entry(entry: Construct, raw: int):
    """An EPT entry decoded by its construct definition (cached: walks repeat the same entries)."""
    return entry.parse(raw.to_bytes(8, "little"))


@lru_cache(maxsize=4096)
def _leaf_access(entry: Construct, attributes: int) -> int:
    # Decoding only the non-address bits keeps this cache small: one line per distinct permission.
    fields = parse_entry(entry, attributes)
    return _access_of(fields)


def _access_of(fields) -> int:
    return ((EPT_READ if fields.Read else 0) | (EPT_WRITE if fields.Write else 0)
            | (EPT_EXECUTE if fields.Execute else 0)
            | (EPT_USER_EXECUTE if fields.UserModeExecute else 0))


@lru_cache(maxsize=4096)
def _with_access(entry: Construct, attributes: int, access: int) -> int:
    """Non-address bits of a leaf after replacing its permissions, built by construct."""
    fields = parse_entry(entry, attributes)
    fields = dict(fields, Read=bool(access & EPT_READ), Write=bool(access & EPT_WRITE),
                  Execute=bool(access & EPT_EXECUTE),
                  UserModeExecute=bool(access & EPT_USER_EXECUTE))
    return int.from_bytes(entry.build(fields), "little")


def _build(entry: Construct, **values) -> int:
    return word_value(entry, **values)


def _table_pointer(hpfn: int) -> int:
    # Table entries grant everything; the leaves decide (the walk ANDs all levels).
    return _build(EPT_PML4E, Read=True, Write=True, Execute=True, UserModeExecute=True,
                  PageFrameNumber=hpfn)


def _leaf(level: int, access: int, spa: int, memory_type: int = EPT_MEMORY_TYPE["WB"]) -> int:
    entry = _LEAF_ENTRY[level]
    large = {"LargePage": True} if level < 3 else {}
    attributes = _with_access(entry, _build(entry, MemoryType=memory_type, **large), access)
    return attributes | (spa & _LEAF_ADDRESS_MASK[level])


class HypervisorMemory:
    """Host-physical frames private to the hypervisor: the EPT tables of every VTL."""

    def __init__(self, base_pfn: int = HYPERVISOR_BASE_PFN) -> None:
        self._tables: dict[int, bytearray] = {}
        self._next = base_pfn

    def allocate_table(self) -> int:
        hpfn = self._next
        self._next += 1
        self._tables[hpfn] = bytearray(TABLE_SIZE)
        return hpfn

    def table(self, hpfn: int) -> bytearray:
        try:
            return self._tables[hpfn]
        except KeyError:
            raise InvalidInputError(f"host frame {hpfn:#x} is not a hypervisor table") from None

    def read_entry(self, hpfn: int, index: int) -> int:
        return int.from_bytes(self.table(hpfn)[index * 8:index * 8 + 8], "little")

    def write_entry(self, hpfn: int, index: int, raw: int) -> None:
        self.table(hpfn)[index * 8:index * 8 + 8] = raw.to_bytes(8, "little")

    @property
    def table_count(self) -> int:
        return len(self._tables)


@dataclass(frozen=True)
class EptWalk:
    """The outcome of walking one GPA through a VTL's EPT."""

    gpa: int
    vtl: int
    entries: tuple[int, ...]   # raw entries read, PML4E first
    present: bool              # every entry of the walk is present
    access: int                # effective EPT permission bits (AND over the walk)
    leaf_level: int            # 1 = 1 GiB, 2 = 2 MiB, 3 = 4 KiB; where not present, the level
                               # whose entry stopped the walk (0 = a whole 512 GiB is unmapped)
    spa: int | None            # host-physical address, None when not present

    @property
    def leaf_size(self) -> int:
        return 1 << _LEAF_SHIFT_BY_LEVEL[self.leaf_level]

    @property
    def leaf_gpa(self) -> int:
        return self.gpa & ~(self.leaf_size - 1)

    def allows(self, access: int) -> bool:
        return self.present and (self.access & access) == access


_LEAF_SHIFT_BY_LEVEL = dict(enumerate(_LEVEL_SHIFT))


@dataclass(frozen=True)
class EptRun:
    """Consecutive guest frames with the same effective access and contiguous host frames."""

    start_pfn: int
    count: int
    access: int
    spa: int | None  # host-physical address of start_pfn; None where the range is not mapped

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.count


class Ept:
    """The EPT of one VTL, identity-mapping ``ram_size`` bytes of guest RAM to host-physical
    ``spa_base + gpa`` with the largest leaves that fit, every page granted ``access``."""

    def __init__(self, hypervisor: HypervisorMemory, *, vtl: int, ram_size: int,
                 spa_base: int = GUEST_RAM_SPA_BASE, access: int = EPT_FULL_ACCESS) -> None:
        if spa_base & ((1 << 30) - 1):
            raise InvalidInputError(f"host-physical base {spa_base:#x} is not 1 GiB aligned")
        if ram_size <= 0 or ram_size & ((1 << PAGE_SHIFT) - 1):
            raise InvalidInputError(f"RAM size {ram_size:#x} is not a positive multiple of 4 KiB")
        self.hypervisor = hypervisor
        self.vtl = vtl
        self.ram_size = ram_size
        self.spa_base = spa_base
        self.pml4 = hypervisor.allocate_table()
        gpa = 0
        while gpa < ram_size:
            level = 1
            while (gpa & ((1 << _LEVEL_SHIFT[level]) - 1)
                   or gpa + (1 << _LEVEL_SHIFT[level]) > ram_size):
                level += 1
            table = self._table_for(gpa, level)
            self.hypervisor.write_entry(table, _index(gpa, level),
                                        _leaf(level, access, spa_base + gpa))
            gpa += 1 << _LEVEL_SHIFT[level]

    @property
    def eptp(self) -> int:
        """The EPT pointer a VMCS would hold for this VTL."""
        return (self.pml4 << PAGE_SHIFT) | _EPTP_WALK_LENGTH_4 | EPT_MEMORY_TYPE["WB"]

    def _table_for(self, gpa: int, level: int) -> int:
        """Host frame of the table at ``level`` covering ``gpa``, creating tables on the way."""
        table = self.pml4
        for upper in range(level):
            index = _index(gpa, upper)
            raw = self.hypervisor.read_entry(table, index)
            if raw == 0:
                child = self.hypervisor.allocate_table()
                self.hypervisor.write_entry(table, index, _table_pointer(child))
                table = child
            else:
                table = parse_entry(_TABLE_ENTRY[upper], raw).PageFrameNumber
        return table

    # -- walking --------------------------------------------------------------------------
    def walk(self, gpa: int) -> EptWalk:
        """Translate ``gpa`` the way the processor does, decoding each entry with construct."""
        table = self.pml4
        access = EPT_ACCESS_MASK
        entries: list[int] = []
        for level in range(4):
            raw = self.hypervisor.read_entry(table, _index(gpa, level))
            entries.append(raw)
            if not raw & EPT_ACCESS_MASK:
                # Not present: the hypervisor's large-page bit says how much it covers.
                leaf_level = level if (level in (1, 2) and raw & EPT_LARGE_PAGE) or raw == 0 else 3
                return EptWalk(gpa, self.vtl, tuple(entries), False, 0, leaf_level, None)
            if level == 3 or (level in (1, 2) and raw & EPT_LARGE_PAGE):
                fields = parse_entry(_LEAF_ENTRY[level], raw)
                access &= _access_of(fields)
                shift = _LEVEL_SHIFT[level]
                spa = (fields.PageFrameNumber << shift) | (gpa & ((1 << shift) - 1))
                return EptWalk(gpa, self.vtl, tuple(entries), True, access, level, spa)
            fields = parse_entry(_TABLE_ENTRY[level], raw)
            access &= _access_of(fields)
            table = fields.PageFrameNumber
        raise AssertionError("unreachable: level 3 is always a leaf")

    def translate(self, gpa: int, access: str = "read") -> int:
        """Host-physical address of ``gpa``, or :class:`EptViolation` if the access is denied."""
        walk = self.walk(gpa)
        if not walk.allows(access_bit(access)):
            raise violation(self.vtl, gpa, access, walk)
        return walk.spa

    def runs(self, start_pfn: int = 0, end_pfn: int | None = None) -> Iterator[EptRun]:
        """Maximal runs of frames in ``[start_pfn, end_pfn)`` that share an effective access and map
        to contiguous host frames, found by walking the tables (one visit per leaf, not per page)."""
        ram_pages = self.ram_size >> PAGE_SHIFT
        end_pfn = ram_pages if end_pfn is None else min(end_pfn, ram_pages)
        pending: EptRun | None = None
        for run in self._leaves(self.pml4, 0, 0, EPT_ACCESS_MASK, start_pfn, end_pfn):
            if (pending is not None and pending.access == run.access
                    and pending.end_pfn == run.start_pfn
                    and (pending.spa is None) == (run.spa is None)
                    and (run.spa is None
                         or pending.spa + (pending.count << PAGE_SHIFT) == run.spa)):
                pending = EptRun(pending.start_pfn, pending.count + run.count, pending.access,
                                 pending.spa)
                continue
            if pending is not None:
                yield pending
            pending = run
        if pending is not None:
            yield pending

    def _leaves(self, table: int, level: int, base_pfn: int, access: int, start_pfn: int,
                end_pfn: int) -> Iterator[EptRun]:
        span = 1 << (_LEVEL_SHIFT[level] - PAGE_SHIFT)  # frames per entry at this level
        first = max((start_pfn - base_pfn) // span, 0)
        last = min((end_pfn - base_pfn + span - 1) // span, ENTRIES_PER_TABLE)
        raws = array("Q", self.hypervisor.table(table))
        if level == 3:
            yield from self._page_table_runs(raws, base_pfn, access, first, last, start_pfn)
            return
        for index in range(first, last):
            raw = raws[index]
            entry_pfn = base_pfn + index * span
            lo, hi = max(entry_pfn, start_pfn), min(entry_pfn + span, end_pfn)
            if not raw & EPT_ACCESS_MASK:
                if raw == 0 or level == 0 or (level < 3 and not raw & EPT_LARGE_PAGE):
                    yield EptRun(lo, hi - lo, 0, None)
                else:
                    yield EptRun(lo, hi - lo, 0, self._leaf_spa(level, raw, lo - entry_pfn))
                continue
            if level == 3 or (level in (1, 2) and raw & EPT_LARGE_PAGE):
                leaf_access = access & _leaf_access(_LEAF_ENTRY[level],
                                                    raw & ~_LEAF_ADDRESS_MASK[level])
                yield EptRun(lo, hi - lo, leaf_access, self._leaf_spa(level, raw, lo - entry_pfn))
                continue
            child_access = access & _leaf_access(_TABLE_ENTRY[level], raw & ~_TABLE_ADDRESS_MASK)
            yield from self._leaves((raw & _TABLE_ADDRESS_MASK) >> PAGE_SHIFT, level + 1,
                                    entry_pfn, child_access, start_pfn, end_pfn)

    @staticmethod
    def _page_table_runs(raws: array, base_pfn: int, access: int, first: int, last: int,
                         start_pfn: int) -> Iterator[EptRun]:
        # A split page table is 512 leaves that mostly agree: coalesce them here with plain
        # integers (same non-address bits, consecutive frames) and make one EptRun per run, not
        # one per 4 KiB leaf — the writers scan every leaf of an 8 GiB machine twice.
        address_mask = _LEAF_ADDRESS_MASK[3]
        index = first
        while index < last:
            raw = raws[index]
            attributes = raw & ~address_mask
            address = raw & address_mask
            end = index + 1
            while (end < last and raws[end] & ~address_mask == attributes
                   and raws[end] & address_mask == address + ((end - index) << PAGE_SHIFT)):
                end += 1
            if raw & EPT_ACCESS_MASK:
                run_access = access & _leaf_access(EPT_PTE, attributes)
            else:
                run_access = 0
            pfn = max(base_pfn + index, start_pfn)
            spa = None if raw == 0 else address + ((pfn - base_pfn - index) << PAGE_SHIFT)
            yield EptRun(pfn, base_pfn + end - pfn, run_access, spa)
            index = end

    @staticmethod
    def _leaf_spa(level: int, raw: int, offset_pages: int) -> int:
        return (raw & _LEAF_ADDRESS_MASK[level]) + (offset_pages << PAGE_SHIFT)

    # -- changing permissions --------------------------------------------------------------
    def set_access(self, start_pfn: int, count: int, access: int) -> None:
        """Give frames ``[start_pfn, start_pfn + count)`` the EPT permissions ``access``, rewriting
        whole large leaves where the range covers them and splitting those it covers in part."""
        if access & ~EPT_ACCESS_MASK:
            raise InvalidInputError(f"EPT access bits {access:#x} outside {EPT_ACCESS_MASK:#x}")
        end = start_pfn + count
        if start_pfn < 0 or count <= 0 or end > self.ram_size >> PAGE_SHIFT:
            raise InvalidInputError(f"frames {start_pfn:#x}+{count:#x} are not guest RAM "
                                    f"of {self.ram_size:#x} bytes")
        pfn = start_pfn
        while pfn < end:
            pfn = self._set_one_leaf(pfn, end, access)

    def _set_one_leaf(self, pfn: int, end: int, access: int) -> int:
        table, level = self.pml4, 0
        while True:
            index = _index(pfn << PAGE_SHIFT, level)
            raw = self.hypervisor.read_entry(table, index)
            is_leaf = level == 3 or (level in (1, 2) and raw & EPT_LARGE_PAGE)
            if not is_leaf:
                if raw == 0:
                    raise InvalidInputError(f"GPA {pfn << PAGE_SHIFT:#x} is not guest RAM")
                table = (raw & _TABLE_ADDRESS_MASK) >> PAGE_SHIFT
                level += 1
                continue
            span = 1 << (_LEVEL_SHIFT[level] - PAGE_SHIFT)
            if pfn % span == 0 and pfn + span <= end:
                entry = _LEAF_ENTRY[level]
                mask = _LEAF_ADDRESS_MASK[level]
                attributes = _with_access(entry, raw & ~mask, access)
                self.hypervisor.write_entry(table, index, attributes | (raw & mask))
                return pfn + span
            table = self._split(table, index, level, raw)
            level += 1

    def _split(self, table: int, index: int, level: int, raw: int) -> int:
        """Replace the large leaf ``raw`` by a table of 512 leaves one level down with the same
        permissions and memory type; returns the new table's host frame."""
        parent = parse_entry(_LEAF_ENTRY[level], raw)
        child_level = level + 1
        child_entry = _LEAF_ENTRY[child_level]
        large = {"LargePage": True} if child_level < 3 else {}
        template = _build(child_entry, Read=parent.Read, Write=parent.Write,
                          Execute=parent.Execute, UserModeExecute=parent.UserModeExecute,
                          MemoryType=parent.MemoryType, IgnorePat=parent.IgnorePat, **large)
        base = raw & _LEAF_ADDRESS_MASK[level]
        step = 1 << _LEVEL_SHIFT[child_level]
        child = self.hypervisor.allocate_table()
        self.hypervisor.table(child)[:] = array(
            "Q", (template | (base + i * step) for i in range(ENTRIES_PER_TABLE))).tobytes()
        self.hypervisor.write_entry(table, index, _table_pointer(child))
        return child


def _index(gpa: int, level: int) -> int:
    return (gpa >> _LEVEL_SHIFT[level]) & (ENTRIES_PER_TABLE - 1)


def violation(vtl: int, gpa: int, access: str, walk: EptWalk | None = None) -> EptViolation:
    """The EPT-violation error for a denied access, naming the GPA, the access and the EPT's
    permissions there."""
    granted = access_string(walk.access) if walk is not None and walk.present else "not present"
    return EptViolation(f"EPT violation: VTL{vtl} {access} of GPA {gpa:#x} denied (EPT: {granted})",
                        gpa=gpa, access=access, vtl=vtl)
