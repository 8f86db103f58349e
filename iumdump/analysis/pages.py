"""Account for every mapped user page of a process: absent from the dump, zero-filled, readable.

The walk reads the process's x64 page tables (PML4 → PDPT → PD → PT, 1 GiB and 2 MiB leaves
included) through Volatility's physical layer, over the user half of the address space. A page
counts when its leaf entry is valid (the hardware Present bit). Its frame is then

- **absent** when the dump does not hold it. Volatility's physical layers say so: a crash dump's
  layer (``WindowsCrashDump64Layer``, a segmented layer) has no segment for a frame its bitmap
  omits, so ``mapping(..., ignore_errors=True)`` skips it and ``is_valid`` is False; a raw file
  holds every frame below its size. A frame beyond the physical memory the dump describes is
  absent too, and makes the count partial (the entry that maps it is suspect);
- **zero-filled** when the dump holds it and every byte is zero (WinPmem and full crash dumps
  write zeros for pages the hypervisor refuses to VTL0);
- **readable** otherwise.

Why not ``layer.mapping()`` of the process layer: Volatility's Intel layer drops a page whose
frame the physical layer lacks, so an absent page would be indistinguishable from an unmapped one.

Two things keep the counts honest about what the dump could hold:

- **the shared user data page**: Windows maps KUSER_SHARED_DATA, the kernel's page at
  0xFFFFF78000000000, read-only at 0x7FFE0000 into every process, trustlets included (DESIGN §4).
  The page mapped there is recognised by its address and by its frame — the one the kernel's own
  page tables map at 0xFFFFF78000000000 — and gets a row of its own, labelled, never counted as
  the process's pages;
- **the control group**: the same accounting over the dump's normal processes
  (:func:`.secure_pages.control_group`). Where their user pages are in the dump, a trustlet
  whose pages are not was protected by VTL1; where theirs are missing too (a live kernel dump, a
  kernel dump, a failed acquisition), the dump cannot tell, and the verdict says
  ``not-captured``.

Pages are read only to tell zero from content, a chunk at a time; no byte of a page is returned,
logged or kept. Page tables that are missing, loop, or point outside the dump make the result
partial; they never raise. So do a DirectoryTableBase that cannot be a PML4 (0, beyond the dump,
no self-map entry), a PTE mapping one of the walk's own page tables (that page is not counted)
and a VAD tree that cannot be walked whole (its root in user space, fewer VADs than the
process's VadCount).
"""

from __future__ import annotations

import bisect
import logging
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from volatility3.framework import constants, exceptions, interfaces, objects
from volatility3.framework.layers import intel
from volatility3.plugins.windows import vadinfo

from ..structs.address_space import KI_USER_SHARED_DATA, MM_SHARED_USER_DATA_VA
from ..structs.paging import ADDRESS_MASK, PAGE_SHIFT, PAGE_SIZE, PAGE_SIZE_BIT, PRESENT
from .derive import ProcessPages, RegionPages
from .layers import PhysicalMemory, kernel_space_start
from .progress import ProgressCallback, sub_range

vollog = logging.getLogger(__name__)

ENTRIES = 512
USER_PML4_ENTRIES = 256  # PML4 entries 0–255 map the user half (below 0x8000'0000'0000)
LARGE_1G_MASK = ADDRESS_MASK & ~((1 << 30) - 1)  # frame of a 1 GiB leaf (PDPTE with PS)
LARGE_2M_MASK = ADDRESS_MASK & ~((1 << 21) - 1)  # frame of a 2 MiB leaf (PDE with PS)
_TABLE = struct.Struct(f"<{ENTRIES}Q")

READ_CHUNK = 1 << 20  # bytes read at once when testing frames for zeros
_ZERO_CHUNK = bytes(READ_CHUNK)
_ZERO_PAGE = bytes(PAGE_SIZE)

FATE_ABSENT = 0
FATE_ZERO = 1
FATE_CONTENT = 2
FATE_UNREADABLE = 3


@dataclass(frozen=True)
class Run:
    """``count`` pages contiguous both virtually and physically: page ``vpn`` → frame ``pfn``."""

    vpn: int
    pfn: int
    count: int


@dataclass(frozen=True)
class Problem:
    """Something the walk could not see: over virtual ``[start, end)``, or the whole process when
    ``start`` is None."""

    message: str
    start: int | None = None
    end: int | None = None

    def overlaps(self, start: int, end: int) -> bool:
        """Whether it touches the region whose first and last bytes are ``start`` and ``end``."""
        return self.start is None or (self.start <= end and start < self.end)


@dataclass(frozen=True)
class Walk:
    runs: tuple[Run, ...]  # sorted by vpn
    problems: tuple[Problem, ...]


def walk_user_page_tables(read_table: Callable[[int], bytes | None], dtb: int,
                          progress_callback: ProgressCallback = None) -> Walk:
    """Every valid leaf of the user half under the PML4 at ``dtb``.

    ``read_table(physical_address)`` returns the 4 KiB table there or None when the dump lacks it.
    A table reached twice (a loop, or tables aliased by corruption) is walked once and reported.
    """
    runs: list[Run] = []
    problems: list[Problem] = []
    seen: set[int] = set()
    # Merge as we go: the next page extends the last run when both addresses follow on.
    last = [None]  # [vpn, pfn, count] of the open run

    def emit(vpn: int, pfn: int, count: int) -> None:
        open_run = last[0]
        if open_run is not None and open_run[0] + open_run[2] == vpn \
                and open_run[1] + open_run[2] == pfn:
            open_run[2] += count
            return
        if open_run is not None:
            runs.append(Run(*open_run))
        last[0] = [vpn, pfn, count]

    def table(address: int, what: str, va: int, span: int | None) -> tuple[int, ...] | None:
        where = (va, va + span) if span else (None, None)
        if address in seen:
            problems.append(Problem(f"{what} for {va:#x} at physical {address:#x} is reached "
                                    "twice (page-table loop or corruption)", *where))
            return None
        seen.add(address)
        data = read_table(address)
        if data is None:
            problems.append(Problem(f"{what} for {va:#x} at physical {address:#x} is not in the "
                                    "dump", *where))
            return None
        return _TABLE.unpack(data)

    pml4 = table(dtb & ADDRESS_MASK, "PML4", 0, None)
    if pml4 is None:
        return Walk((), tuple(problems))
    for i4 in range(USER_PML4_ENTRIES):
        e4 = pml4[i4]
        if not e4 & PRESENT:
            continue
        if progress_callback:
            progress_callback(100.0 * i4 / USER_PML4_ENTRIES, "Walking page tables")
        va4 = i4 << 39
        pdpt = table(e4 & ADDRESS_MASK, "PDPT", va4, 1 << 39)
        if pdpt is None:
            continue
        for i3, e3 in enumerate(pdpt):
            if not e3 & PRESENT:
                continue
            va3 = va4 | i3 << 30
            if e3 & PAGE_SIZE_BIT:
                emit(va3 >> PAGE_SHIFT, (e3 & LARGE_1G_MASK) >> PAGE_SHIFT, 1 << 18)
                continue
            pd = table(e3 & ADDRESS_MASK, "page directory", va3, 1 << 30)
            if pd is None:
                continue
            for i2, e2 in enumerate(pd):
                if not e2 & PRESENT:
                    continue
                va2 = va3 | i2 << 21
                if e2 & PAGE_SIZE_BIT:
                    emit(va2 >> PAGE_SHIFT, (e2 & LARGE_2M_MASK) >> PAGE_SHIFT, ENTRIES)
                    continue
                pt = table(e2 & ADDRESS_MASK, "page table", va2, 1 << 21)
                if pt is None:
                    continue
                base = va2 >> PAGE_SHIFT
                for i1, e1 in enumerate(pt):
                    if e1 & PRESENT:
                        emit(base + i1, (e1 & ADDRESS_MASK) >> PAGE_SHIFT, 1)
    if last[0] is not None:
        runs.append(Run(*last[0]))
    kept, aliased = _without_table_frames(runs, sorted(address >> PAGE_SHIFT for address in seen))
    return Walk(kept, tuple(problems) + aliased)


def _without_table_frames(runs: Sequence[Run], table_pfns: Sequence[int]
                          ) -> tuple[tuple[Run, ...], tuple[Problem, ...]]:
    """``runs`` without the pages whose frame holds one of the walk's own page tables. Windows
    never maps a page table into user space (the self-map lives in the kernel half), so such
    an entry is corrupt or planted, and the page is a page table, not the process's memory:
    it is left out of every count and reported."""
    kept: list[Run] = []
    problems: list[Problem] = []
    for run in runs:
        vpn, pfn, count = run.vpn, run.pfn, run.count
        index = bisect.bisect_left(table_pfns, pfn)
        while index < len(table_pfns) and table_pfns[index] < pfn + count:
            table = table_pfns[index]
            if table > pfn:
                kept.append(Run(vpn, pfn, table - pfn))
            va = (vpn + table - pfn) << PAGE_SHIFT
            problems.append(Problem(f"the page at {va:#x} maps frame {table:#x}, which "
                                    "holds one of this process's own page tables (a corrupt or "
                                    "planted entry): not counted", va, va + PAGE_SIZE))
            count -= table + 1 - pfn
            vpn += table + 1 - pfn
            pfn = table + 1
            index += 1
        if count:
            kept.append(Run(vpn, pfn, count))
    return tuple(kept), tuple(problems)


class FrameFates:
    """Fate of every frame the runs reference: absent, zero-filled, content, or unreadable (listed
    by the dump but not readable from it, e.g. a truncated file: counted absent, and partial)."""

    def __init__(self, physical: PhysicalMemory, runs: Sequence[Run],
                 progress_callback: ProgressCallback = None) -> None:
        self.extent_pfn = physical.extent >> PAGE_SHIFT
        # Present frame ranges with one fate byte per frame: first pfn, fates.
        self._starts: list[int] = []
        self._fates: list[bytearray] = []
        intervals = _merge((run.pfn, run.pfn + run.count) for run in runs)
        total = sum(high - low for low, high in intervals) or 1
        done = 0
        for low, high in intervals:
            for start, end in physical.present(low << PAGE_SHIFT, high << PAGE_SHIFT):
                self._starts.append(start >> PAGE_SHIFT)
                self._fates.append(self._classify(physical, start, end))
            done += high - low
            if progress_callback:
                progress_callback(100.0 * done / total, "Testing frames for content")

    @staticmethod
    def _classify(physical: PhysicalMemory, start: int, end: int) -> bytearray:
        fates = bytearray((end - start) >> PAGE_SHIFT)
        for chunk in range(start, end, READ_CHUNK):
            length = min(READ_CHUNK, end - chunk)
            index, pages = (chunk - start) >> PAGE_SHIFT, length >> PAGE_SHIFT
            try:
                data = physical.read(chunk, length)
            except exceptions.InvalidAddressException:
                # Part of the chunk cannot be read (e.g. a truncated file): page by page.
                for page in range(pages):
                    try:
                        one = physical.read(chunk + (page << PAGE_SHIFT), PAGE_SIZE)
                    except exceptions.InvalidAddressException:
                        fates[index + page] = FATE_UNREADABLE
                    else:
                        fates[index + page] = FATE_ZERO if one == _ZERO_PAGE else FATE_CONTENT
                continue
            if data == (_ZERO_CHUNK if length == READ_CHUNK else bytes(length)):
                fates[index:index + pages] = bytes([FATE_ZERO]) * pages
                continue
            for page in range(pages):
                at = page << PAGE_SHIFT
                fates[index + page] = (FATE_ZERO if data[at:at + PAGE_SIZE] == _ZERO_PAGE
                                       else FATE_CONTENT)
        return fates

    def count(self, pfn: int, pages: int) -> tuple[int, int, int, int, int]:
        """(absent, zero-filled, readable, beyond the described memory, unreadable) for
        ``pages`` frames from ``pfn``; absent includes the last two."""
        zero = content = unreadable = 0
        end = pfn + pages
        index = max(bisect.bisect_right(self._starts, pfn) - 1, 0)
        while index < len(self._starts) and self._starts[index] < end:
            first = self._starts[index]
            fates = self._fates[index]
            low, high = max(pfn, first), min(end, first + len(fates))
            if low < high:
                zero += fates.count(FATE_ZERO, low - first, high - first)
                content += fates.count(FATE_CONTENT, low - first, high - first)
                unreadable += fates.count(FATE_UNREADABLE, low - first, high - first)
            index += 1
        beyond = max(0, end - max(pfn, self.extent_pfn))
        return pages - zero - content, zero, content, beyond, unreadable


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1]:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


@dataclass(frozen=True)
class SharedPage:
    """Where the shared user data page is: virtual page ``vpn``, backed by frame ``pfn`` (None
    when the kernel's mapping of KUSER_SHARED_DATA could not be read: the address alone)."""

    vpn: int = MM_SHARED_USER_DATA_VA >> PAGE_SHIFT
    pfn: int | None = None


def _carve_shared(runs: Sequence[Run], shared: SharedPage | None) -> tuple[list[Run], Run | None]:
    """``runs`` without the shared user data page, and that page's run (None when the process
    does not map it, or maps another frame there)."""
    if shared is None:
        return list(runs), None
    kept: list[Run] = []
    found = None
    for run in runs:
        offset = shared.vpn - run.vpn
        if found is None and 0 <= offset < run.count and (
                shared.pfn is None or run.pfn + offset == shared.pfn):
            found = Run(shared.vpn, run.pfn + offset, 1)
            if offset:
                kept.append(Run(run.vpn, run.pfn, offset))
            if run.count - offset - 1:
                kept.append(Run(shared.vpn + 1, found.pfn + 1, run.count - offset - 1))
            continue
        kept.append(run)
    return kept, found


@dataclass(frozen=True)
class VadRegion:
    """A user region to account pages to: a VAD (``end`` is its last byte)."""

    start: int
    end: int
    protection: str | None = None
    tag: str | None = None


class _Tally:
    __slots__ = ("pages", "absent", "zero", "content", "beyond", "unreadable")

    def __init__(self) -> None:
        self.pages = self.absent = self.zero = self.content = self.beyond = self.unreadable = 0

    def add(self, fates: FrameFates, pfn: int, count: int) -> None:
        absent, zero, content, beyond, unreadable = fates.count(pfn, count)
        self.pages += count
        self.absent += absent
        self.zero += zero
        self.content += content
        self.beyond += beyond
        self.unreadable += unreadable

    def row(self, start: int, end: int, protection: str | None, tag: str | None,
            problems: Iterable[Problem], *, shared: bool = False) -> RegionPages:
        notes = [p.message for p in problems if p.overlaps(start, end)]
        if self.beyond:
            notes.append(f"{self.beyond} page(s) map frames beyond the physical memory in the dump")
        if self.unreadable:
            notes.append(f"{self.unreadable} page(s) map frames the dump lists but cannot supply")
        return RegionPages(start, end, self.pages, self.absent, self.zero, self.content,
                           protection, tag, tuple(notes), shared=shared)


def account(runs: Sequence[Run], fates: FrameFates, regions: Sequence[VadRegion],
            problems: Sequence[Problem] = (), *, include_empty: bool = False,
            shared: SharedPage | None = None) -> tuple[RegionPages, ...]:
    """Distribute the mapped pages over ``regions``; pages outside every region form one extra
    region per virtually contiguous run (tag None). Overlapping regions (a corrupt VAD tree) are
    clipped so that no page is counted twice, and marked partial. Each row carries the problems
    that touch it (process-wide ones touch every row); a range that could not be walked and
    touches no row becomes a row of its own with zero counts. Rows are in address order.

    With ``shared``, the shared user data page gets a row of its own (``shared``), with the
    protection and tag of the VAD holding it, if any; a VAD holding nothing else gives no other
    row."""
    problems = list(problems)
    runs, shared_run = _carve_shared(runs, shared)
    clipped: list[VadRegion] = []
    for region in sorted(regions, key=lambda r: (r.start, r.end)):
        start = region.start
        if clipped and start <= clipped[-1].end:
            problems.append(Problem(f"VAD {region.start:#x}-{region.end:#x} overlaps VAD "
                                    f"{clipped[-1].start:#x}-{clipped[-1].end:#x}",
                                    region.start, region.end + 1))
            start = clipped[-1].end + 1
        if start > region.end:
            continue
        clipped.append(VadRegion(start, region.end, region.protection, region.tag))
    first_vpns = [r.start >> PAGE_SHIFT for r in clipped]
    last_vpns = [r.end >> PAGE_SHIFT for r in clipped]
    tallies = [_Tally() for _ in clipped]
    outside: list[list] = []  # [first vpn, tally, vpn after the last]

    for run in runs:
        vpn, pfn, count = run.vpn, run.pfn, run.count
        while count:
            index = bisect.bisect_right(first_vpns, vpn) - 1
            if index >= 0 and vpn <= last_vpns[index]:
                take = min(count, last_vpns[index] - vpn + 1)
                tallies[index].add(fates, pfn, take)
            else:
                following = index + 1
                limit = first_vpns[following] if following < len(first_vpns) else vpn + count
                take = min(count, limit - vpn)
                if not (outside and outside[-1][2] == vpn):
                    outside.append([vpn, _Tally(), vpn])
                outside[-1][1].add(fates, pfn, take)
                outside[-1][2] = vpn + take
            vpn, pfn, count = vpn + take, pfn + take, count - take

    rows = []
    if shared_run is not None:
        start = shared_run.vpn << PAGE_SHIFT
        end = start + PAGE_SIZE - 1
        index = bisect.bisect_right(first_vpns, shared_run.vpn) - 1
        holder = clipped[index] if index >= 0 and shared_run.vpn <= last_vpns[index] else None
        tally = _Tally()
        tally.add(fates, shared_run.pfn, 1)
        rows.append(tally.row(start, end, holder and holder.protection, holder and holder.tag,
                              problems, shared=True))
    rows += [tally.row(r.start, r.end, r.protection, r.tag, problems)
             for r, tally in zip(clipped, tallies)
             if tally.pages or include_empty and not (
                 shared_run is not None and (r.start >> PAGE_SHIFT, r.end >> PAGE_SHIFT)
                 == (shared_run.vpn, shared_run.vpn))]
    rows += [tally.row(first << PAGE_SHIFT, (after << PAGE_SHIFT) - 1, None, None, problems)
             for first, tally, after in outside]
    # A range that could not be walked and touches no row still gets one, so the output shows
    # it (zero counts, partial) rather than only a log line.
    unseen: dict[tuple[int, int], list[str]] = {}
    for problem in problems:
        if problem.start is not None and not any(problem.overlaps(r.start, r.end) for r in rows):
            unseen.setdefault((problem.start, problem.end - 1), []).append(problem.message)
    rows += [RegionPages(start, end, problems=tuple(messages))
             for (start, end), messages in unseen.items()]
    rows.sort(key=lambda row: row.start)
    return tuple(rows)


# -- Volatility-facing ------------------------------------------------------------------------

USER_RANGE = (0, (USER_PML4_ENTRIES << 39) - 1)


def vad_regions(context: interfaces.context.ContextInterface, kernel_module_name: str,
                proc: interfaces.objects.ObjectInterface) -> tuple[list[VadRegion], list[Problem]]:
    """The process's VADs as regions, and what could not be read of the tree."""
    problems: list[Problem] = []
    kernel = context.modules[kernel_module_name]
    try:
        protect_values = [int(value) for value in vadinfo.VadInfo.protect_values(
            context, kernel.layer_name, kernel.symbol_table_name)]
    except (exceptions.InvalidAddressException, exceptions.SymbolError, ValueError) as excp:
        vollog.log(constants.LOGLEVEL_VV, f"MmProtectToValue unreadable: {excp}")
        protect_values = None
    regions: list[VadRegion] = []
    walked = 0
    try:
        root = proc.get_vad_root()
        layer = context.layers[root.vol.layer_name]
        kernel_space = kernel_space_start(layer)
        if root.vol.offset and root.vol.offset < kernel_space:
            # VADs are pool allocations: a root in user space is a corrupt pointer, and what
            # lies there is no tree (walking it would invent regions).
            problems.append(Problem(f"VAD tree root at {root.vol.offset:#x} lies in user space, "
                                    "where the kernel allocates no VAD: tree not walked"))
            return regions, problems
        if root.vol.offset and not layer.is_valid(root.vol.offset, root.vol.size):
            # Volatility's traverse() silently yields nothing for an unreadable root.
            problems.append(Problem(f"VAD tree root at {root.vol.offset:#x} is not readable"))
        for vad in root.traverse():
            walked += 1
            if vad.vol.offset < kernel_space:
                problems.append(Problem(f"VAD at {vad.vol.offset:#x} lies in user space: "
                                        "a corrupt link, skipped"))
                continue
            try:
                start, end = int(vad.get_start()), int(vad.get_end())
                tag = vad.get_tag()
            except (exceptions.InvalidAddressException, AttributeError) as excp:
                problems.append(Problem(f"VAD at {vad.vol.offset:#x} cannot be read: {excp}"))
                continue
            if not 0 <= start <= end <= USER_RANGE[1]:
                problems.append(Problem(f"VAD at {vad.vol.offset:#x} has an invalid range "
                                        f"{start:#x}-{end:#x}"))
                continue
            protection = None
            if protect_values is not None:
                try:
                    protection = vad.get_protection(protect_values,
                                                    vadinfo.winnt_protections) or None
                except (exceptions.InvalidAddressException, AttributeError):
                    protection = None
            regions.append(VadRegion(start, end, protection, tag))
    except (exceptions.InvalidAddressException, RuntimeError, AttributeError) as excp:
        # RuntimeError is Volatility's "Vad tree is too deep" (a corrupt or looping tree).
        problems.append(Problem(f"VAD tree not fully readable: {excp}"))
        return regions, problems
    # Volatility's traverse() passes over a node it has seen (a loop), an untagged node and an
    # unreadable child without a word; the kernel's own count of the process's VADs (MiInsertVad
    # and MiRemoveVad keep _EPROCESS.VadCount) says whether the walk saw the whole tree.
    expected = _vad_count(proc)
    if expected is not None and walked != expected:
        problems.append(Problem(f"the VAD tree walk found {walked:,} of the {expected:,} VADs "
                                "that VadCount records (a loop, a cut or a damaged node): "
                                "regions may be missing"))
    return regions, problems


def _vad_count(proc) -> int | None:
    try:
        return int(proc.VadCount) if proc.has_member("VadCount") else None
    except exceptions.InvalidAddressException:
        return None


def _directory_table_base(proc) -> int:
    dtb = proc.Pcb.DirectoryTableBase
    if isinstance(dtb, objects.Array):  # declared as an array on some x64 builds
        dtb = dtb.cast("unsigned long long")
    return int(dtb)


def shared_user_data_page(context: interfaces.context.ContextInterface,
                          kernel_module_name: str) -> SharedPage:
    """The shared user data page: 0x7FFE0000, and the frame the kernel's own page tables map at
    KI_USER_SHARED_DATA (None when that mapping cannot be read)."""
    kernel = context.modules[kernel_module_name]
    layer = context.layers[kernel.layer_name]
    try:
        offset, _physical = layer.translate(KI_USER_SHARED_DATA & layer.address_mask)
    except (exceptions.InvalidAddressException, AttributeError) as excp:
        vollog.log(constants.LOGLEVEL_VV, f"KUSER_SHARED_DATA not mapped by the kernel: {excp}")
        return SharedPage()
    return SharedPage(pfn=offset >> PAGE_SHIFT)


def dtb_problem(physical: PhysicalMemory, dtb: int) -> str | None:
    """Why ``dtb`` cannot be the root of a Windows x64 address space, or None. Every Windows
    PML4 maps itself through one of its kernel-half entries (the page-table self-map; the index
    is fixed at 0x1ED before Windows 10 1607, random since) — the fact Volatility's own DTB scan
    rests on (``framework/automagic/windows.py``, DtbSelfReferential)."""
    frame = dtb & ADDRESS_MASK
    if not frame:
        return f"DirectoryTableBase is {dtb:#x}: no address space to walk"
    if frame >= physical.extent:
        return (f"DirectoryTableBase {dtb:#x} lies beyond the physical memory the dump "
                f"describes (which ends at {physical.extent:#x})")
    table = physical.read_table(frame)
    if table is None:
        return None  # the walk reports the PML4 missing from the dump
    entries = _TABLE.unpack(table)[USER_PML4_ENTRIES:]
    if not any(entry & PRESENT and entry & ADDRESS_MASK == frame for entry in entries):
        return (f"DirectoryTableBase {dtb:#x} does not point at a PML4: the page has no "
                "self-referencing entry, which every Windows x64 PML4 has")
    return None


def process_pages(context: interfaces.context.ContextInterface, kernel_module_name: str,
                  proc: interfaces.objects.ObjectInterface, *, pid: int | None = None,
                  name: str | None = None, include_empty: bool = False,
                  shared: SharedPage | None = None,
                  progress_callback: ProgressCallback = None) -> ProcessPages:
    """Account for every mapped user page of ``proc``, per VAD region. Never raises for a
    damaged process: what cannot be read is listed in ``problems`` and makes rows partial. When
    nothing can be attributed to a region, one row spans the user range so the process still
    shows, marked partial. ``shared`` is :func:`shared_user_data_page` (looked up when not
    given: pass it when accounting for many processes)."""
    if shared is None:
        shared = shared_user_data_page(context, kernel_module_name)
    kernel = context.modules[kernel_module_name]
    kernel_layer = context.layers[kernel.layer_name]

    def failed(message: str) -> ProcessPages:
        row = RegionPages(*USER_RANGE, problems=(message,))
        return ProcessPages(pid, name, (row,), (message,))

    if not isinstance(kernel_layer, intel.Intel32e):
        return failed(f"layer {kernel.layer_name} does not use x64 4-level paging")
    try:
        dtb = _directory_table_base(proc)
    except exceptions.InvalidAddressException as excp:
        return failed(f"DirectoryTableBase unreadable at {excp.invalid_address:#x}")
    physical = PhysicalMemory(context, kernel_layer.config["memory_layer"])
    wrong = dtb_problem(physical, dtb)
    if wrong:
        return failed(wrong)

    walk = walk_user_page_tables(physical.read_table, dtb, sub_range(progress_callback, 0, 20))
    regions, problems = vad_regions(context, kernel_module_name, proc)
    problems = list(walk.problems) + problems
    fates = FrameFates(physical, walk.runs, sub_range(progress_callback, 20, 100))
    rows = account(walk.runs, fates, regions, problems, include_empty=include_empty,
                   shared=shared)
    messages = tuple(p.message for p in problems)
    if not rows and problems:
        return ProcessPages(pid, name, (RegionPages(*USER_RANGE, problems=messages),), messages)
    return ProcessPages(pid, name, rows, messages)
