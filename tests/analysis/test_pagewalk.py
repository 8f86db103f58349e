"""The user page-table walk, frame classification and region accounting, on hand-built tables."""

from __future__ import annotations

import struct

import pytest

from iumdump.analysis.derive import INACCESSIBLE, PARTIALLY_READABLE, READABLE
from iumdump.analysis.pages import (PAGE_SIZE, FrameFates, Problem, Run, VadRegion, account,
                                    walk_user_page_tables)

P = 0x1  # Present
RW_U = 0x6  # ReadWrite | User
PS = 0x80  # PageSize


class Tables:
    """Physical memory holding page tables, as ``read_table`` sees it."""

    def __init__(self):
        self.tables: dict[int, list[int]] = {}
        self.next_frame = 0x100

    def new(self) -> int:
        address = self.next_frame << 12
        self.next_frame += 1
        self.tables[address] = [0] * 512
        return address

    def read(self, address: int) -> bytes | None:
        entries = self.tables.get(address)
        return None if entries is None else struct.pack("<512Q", *entries)

    def map(self, pml4: int, va: int, frame: int, *, size: str = "4k") -> None:
        """Map ``va`` to physical frame ``frame`` (4 KiB units), creating tables as needed."""
        indices = [(va >> shift) & 0x1FF for shift in (39, 30, 21, 12)]
        table = pml4
        levels = {"1g": 1, "2m": 2, "4k": 3}[size]
        for depth in range(levels):
            entry = self.tables[table][indices[depth]]
            if not entry & P:
                child = self.new()
                self.tables[table][indices[depth]] = child | P | RW_U
                entry = self.tables[table][indices[depth]]
            table = entry & 0x000F_FFFF_FFFF_F000
        leaf = (frame << 12) | P | RW_U | (PS if size != "4k" else 0)
        self.tables[table][indices[levels]] = leaf


@pytest.fixture
def tables():
    return Tables()


def test_4k_pages_merge_into_runs_where_both_addresses_follow_on(tables):
    pml4 = tables.new()
    for i in range(4):
        tables.map(pml4, 0x10000 + i * PAGE_SIZE, 0x5000 + i)
    tables.map(pml4, 0x14000, 0x9000)  # virtually next, physically elsewhere
    tables.map(pml4, 0x7FFE_0000, 0x6000)
    walk = walk_user_page_tables(tables.read, pml4)
    assert walk.problems == ()
    assert walk.runs == (Run(0x10, 0x5000, 4), Run(0x14, 0x9000, 1), Run(0x7FFE0, 0x6000, 1))


def test_large_pages_count_every_4k_page(tables):
    pml4 = tables.new()
    tables.map(pml4, 0x4000_0000, 0x20000, size="2m")
    tables.map(pml4, 0x80_0000_0000, 0x40000, size="1g")
    walk = walk_user_page_tables(tables.read, pml4)
    assert walk.runs == (Run(0x40000, 0x20000, 512), Run(0x8000000, 0x40000, 1 << 18))


def test_kernel_half_and_non_present_entries_are_ignored(tables):
    pml4 = tables.new()
    tables.map(pml4, 0xFFFF_8000_0000_0000 & 0xFFFF_FFFF_FFFF, 0x7000)  # PML4 index 256
    tables.tables[pml4][0] = 0x1234_5000  # not present: garbage must not be followed
    walk = walk_user_page_tables(tables.read, pml4)
    assert walk.runs == () and walk.problems == ()


def test_missing_table_is_a_problem_over_its_range(tables):
    pml4 = tables.new()
    tables.map(pml4, 0x20_0000, 0x7000)
    tables.map(pml4, 0x40_0000, 0x7001)
    pt = tables.tables[pml4][0]
    pd = tables.tables[pt & ~0xFFF][0] & ~0xFFF
    missing = tables.tables[pd][2] & ~0xFFF  # the page table for 0x400000
    del tables.tables[missing]
    walk = walk_user_page_tables(tables.read, pml4)
    assert walk.runs == (Run(0x200, 0x7000, 1),)
    (problem,) = walk.problems
    assert (problem.start, problem.end) == (0x40_0000, 0x60_0000)
    assert "not in the dump" in problem.message


def test_a_table_loop_is_walked_once_and_reported(tables):
    pml4 = tables.new()
    tables.map(pml4, 0x1000, 0x7000)
    tables.tables[pml4][1] = pml4 | P | RW_U  # PML4 entry 1 points back at the PML4
    walk = walk_user_page_tables(tables.read, pml4)
    assert walk.runs == (Run(1, 0x7000, 1),)
    assert len(walk.problems) == 1 and "twice" in walk.problems[0].message


def test_missing_pml4_is_process_wide(tables):
    walk = walk_user_page_tables(tables.read, 0x9999_000)
    assert walk.runs == ()
    assert walk.problems[0].start is None


class FakePhysical:
    """Frames by number: content bytes, or absent. ``extent`` in bytes."""

    def __init__(self, frames: dict[int, bytes], extent_frames: int, unreadable=()):
        self.frames = frames
        self.extent = extent_frames * PAGE_SIZE
        self.unreadable = set(unreadable)
        self.reads = []

    def present(self, start, end):
        found = []
        for pfn in range(start // PAGE_SIZE, min(end, self.extent) // PAGE_SIZE):
            if pfn in self.frames or pfn in self.unreadable:
                if found and found[-1][1] == pfn * PAGE_SIZE:
                    found[-1] = (found[-1][0], (pfn + 1) * PAGE_SIZE)
                else:
                    found.append((pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE))
        return found

    def read(self, address, length):
        from volatility3.framework.exceptions import InvalidAddressException
        self.reads.append((address, length))
        out = b""
        for pfn in range(address // PAGE_SIZE, (address + length) // PAGE_SIZE):
            if pfn in self.unreadable:
                raise InvalidAddressException("fake", pfn * PAGE_SIZE, "truncated")
            out += self.frames[pfn]
        return out


def content():
    return b"\x00" * 100 + b"\x01" + b"\x00" * (PAGE_SIZE - 101)


def test_fates_absent_zero_readable_and_beyond():
    physical = FakePhysical({10: bytes(PAGE_SIZE), 11: content(), 12: bytes(PAGE_SIZE)}, 64)
    fates = FrameFates(physical, [Run(0, 9, 4), Run(100, 70, 2)])
    assert fates.count(9, 4) == (1, 2, 1, 0, 0)  # 9 absent, 10 zero, 11 content, 12 zero
    assert fates.count(70, 2) == (2, 0, 0, 2, 0)  # beyond the 64 frames described
    assert fates.count(63, 2) == (2, 0, 0, 1, 0)


def test_unreadable_present_frames_count_absent_and_are_flagged():
    physical = FakePhysical({5: content()}, 64, unreadable={6})
    fates = FrameFates(physical, [Run(0, 5, 2)])
    assert fates.count(5, 2) == (1, 0, 1, 0, 1)


def test_frames_mapped_twice_are_read_once():
    physical = FakePhysical({5: content(), 6: bytes(PAGE_SIZE)}, 64)
    FrameFates(physical, [Run(0, 5, 2), Run(10, 5, 2)])
    assert physical.reads == [(5 * PAGE_SIZE, 2 * PAGE_SIZE)]


def test_account_per_vad_and_outside_runs():
    frames = {pfn: bytes(PAGE_SIZE) for pfn in range(0x100, 0x110)}
    frames.update({pfn: content() for pfn in range(0x200, 0x204)})
    physical = FakePhysical(frames, 0x1000)
    runs = [Run(0x10, 0x100, 16),   # VAD A: all zero
            Run(0x30, 0x200, 4),    # VAD B: all readable
            Run(0x34, 0x300, 2),    # VAD B: absent → B partially readable
            Run(0x50, 0x300, 1),    # outside every VAD
            Run(0x51, 0x301, 1)]    # … contiguous with the previous: one row
    fates = FrameFates(physical, runs)
    regions = [VadRegion(0x30000, 0x3FFFF, "PAGE_READWRITE", "VadS"),
               VadRegion(0x10000, 0x1FFFF, "PAGE_READONLY", "Vad "),
               VadRegion(0x60000, 0x6FFFF, None, "VadS")]  # nothing mapped: no row
    rows = account(runs, fates, regions)
    assert [(r.start, r.end, r.pages, r.absent, r.zero_filled, r.readable, r.verdict, r.tag)
            for r in rows] == [
        (0x10000, 0x1FFFF, 16, 0, 16, 0, INACCESSIBLE, "Vad "),
        (0x30000, 0x3FFFF, 6, 2, 0, 4, PARTIALLY_READABLE, "VadS"),
        (0x50000, 0x51FFF, 2, 2, 0, 0, INACCESSIBLE, None),
    ]
    assert not any(r.partial for r in rows)
    assert len(account(runs, fates, regions, include_empty=True)) == 4


def test_a_run_crossing_vad_boundaries_is_split():
    physical = FakePhysical({pfn: content() for pfn in range(0x100, 0x108)}, 0x1000)
    runs = [Run(0x10, 0x100, 8)]
    rows = account(runs, FrameFates(physical, runs),
                   [VadRegion(0x12000, 0x13FFF), VadRegion(0x16000, 0x20FFF)])
    assert [(r.start, r.end, r.pages, r.tag) for r in rows] == [
        (0x10000, 0x11FFF, 2, None), (0x12000, 0x13FFF, 2, None),
        (0x14000, 0x15FFF, 2, None), (0x16000, 0x20FFF, 2, None)]
    assert all(r.verdict == READABLE for r in rows)


def test_overlapping_vads_count_each_page_once_and_are_partial():
    physical = FakePhysical({pfn: content() for pfn in range(0x100, 0x110)}, 0x1000)
    runs = [Run(0x10, 0x100, 16)]
    rows = account(runs, FrameFates(physical, runs), [VadRegion(0x10000, 0x1BFFF, tag="VadS"),
                                                      VadRegion(0x18000, 0x1FFFF, tag="Vad ")])
    assert sum(r.pages for r in rows) == 16
    assert [r.partial for r in rows] == [True, True]
    assert [(r.start, r.pages) for r in rows] == [(0x10000, 12), (0x1C000, 4)]


def test_problems_mark_only_the_rows_they_touch():
    physical = FakePhysical({pfn: content() for pfn in range(0x100, 0x104)}, 0x1000)
    runs = [Run(0x10, 0x100, 2), Run(0x400, 0x102, 2)]
    fates = FrameFates(physical, runs)
    regions = [VadRegion(0x10000, 0x11FFF), VadRegion(0x400000, 0x401FFF)]
    rows = account(runs, fates, regions, [Problem("page table gone", 0x400000, 0x600000)])
    assert [r.partial for r in rows] == [False, True]
    rows = account(runs, fates, regions, [Problem("VAD tree not fully readable")])
    assert [r.partial for r in rows] == [True, True]
    assert rows[0].rendered_verdict == "readable (partial)"


def test_a_range_that_could_not_be_walked_gets_its_own_row():
    physical = FakePhysical({0x100: content()}, 0x1000)
    runs = [Run(0x10, 0x100, 1)]
    rows = account(runs, FrameFates(physical, runs), [VadRegion(0x10000, 0x10FFF)],
                   [Problem("PDPT missing", 1 << 39, 2 << 39)])
    assert [(r.start, r.end, r.pages, r.rendered_verdict) for r in rows] == [
        (0x10000, 0x10FFF, 1, "readable"),
        (1 << 39, (2 << 39) - 1, 0, "inaccessible (partial)")]


def test_frames_beyond_memory_make_the_row_partial():
    physical = FakePhysical({}, 0x10)
    runs = [Run(0x10, 0xFFFF_FFFF, 1)]
    (row,) = account(runs, FrameFates(physical, runs), [VadRegion(0x10000, 0x10FFF)])
    assert (row.pages, row.absent, row.partial) == (1, 1, True)
    assert "beyond" in row.problems[0]


# -- the shared user data page ------------------------------------------------------------------

KUSER_VPN = 0x7FFE0  # MM_SHARED_USER_DATA_VA >> 12 (ntddk.h)
KUSER_PFN = 0x77


def trustlet_runs():
    """A trustlet's pages as a bitmap dump holds them: its own frames absent, and the kernel's
    KUSER_SHARED_DATA frame (present, with content) at 0x7FFE0000."""
    return [Run(0x10, 0x300, 4), Run(KUSER_VPN, KUSER_PFN, 1)]


def test_shared_page_in_its_vad_is_labelled_and_not_counted():
    """Regression: the KUSER_SHARED_DATA page every process (trustlets too) maps at 0x7FFE0000
    was counted as a readable trustlet page, raising trustlet-pages-readable on real dumps."""
    from iumdump.analysis.derive import SHARED_USER_DATA, ProcessPages
    from iumdump.analysis.pages import SharedPage

    runs = trustlet_runs()
    fates = FrameFates(FakePhysical({KUSER_PFN: content()}, 0x1000), runs)
    regions = [VadRegion(0x10000, 0x13FFF, "PAGE_READWRITE", "VadS"),
               VadRegion(0x7FFE0000, 0x7FFE0FFF, "PAGE_READONLY", "VadS")]
    rows = account(runs, fates, regions, shared=SharedPage(KUSER_VPN, KUSER_PFN))
    assert [(r.start, r.end, r.pages, r.absent, r.readable, r.shared, r.verdict, r.tag,
             r.protection) for r in rows] == [
        (0x10000, 0x13FFF, 4, 4, 0, False, INACCESSIBLE, "VadS", "PAGE_READWRITE"),
        (0x7FFE0000, 0x7FFE0FFF, 1, 0, 1, True, SHARED_USER_DATA, "VadS", "PAGE_READONLY")]
    pages = ProcessPages(712, "LsaIso.exe", rows)
    assert (pages.mapped, pages.absent, pages.readable, pages.shared_pages) == (4, 4, 0, 1)
    assert pages.verdict == INACCESSIBLE
    assert len(account(runs, fates, regions, include_empty=True,
                       shared=SharedPage(KUSER_VPN, KUSER_PFN))) == 2
    # Without knowing it, the same page is the trustlet's own and readable.
    assert ProcessPages(712, "LsaIso.exe", account(runs, fates, regions)).readable == 1


def test_shared_page_outside_every_vad_is_its_own_row():
    """A dump whose kernel maps the page without a VAD: it is still recognised, and the other
    pages outside every VAD keep their own row."""
    from iumdump.analysis.derive import ProcessPages
    from iumdump.analysis.pages import SharedPage

    runs = [Run(0x10, 0x300, 4), Run(KUSER_VPN - 1, 0x400, 1), Run(KUSER_VPN, KUSER_PFN, 1)]
    fates = FrameFates(FakePhysical({KUSER_PFN: content(), 0x400: content()}, 0x1000), runs)
    rows = account(runs, fates, [VadRegion(0x10000, 0x13FFF, tag="VadS")],
                   shared=SharedPage(KUSER_VPN, KUSER_PFN))
    assert [(r.start, r.pages, r.readable, r.shared, r.tag) for r in rows] == [
        (0x10000, 4, 0, False, "VadS"), (0x7FFDF000, 1, 1, False, None),
        (0x7FFE0000, 1, 1, True, None)]
    pages = ProcessPages(712, "LsaIso.exe", rows)
    assert (pages.readable, pages.shared_pages, pages.outside_vad_pages) == (1, 1, 1)


def test_another_frame_at_the_shared_address_is_the_process_own():
    """Only the kernel's KUSER_SHARED_DATA frame is the shared page: something else mapped at
    0x7FFE0000 counts (and, readable in a trustlet, is reported)."""
    from iumdump.analysis.pages import SharedPage

    runs = [Run(KUSER_VPN, 0x500, 1)]
    fates = FrameFates(FakePhysical({0x500: content()}, 0x1000), runs)
    (row,) = account(runs, fates, [], shared=SharedPage(KUSER_VPN, KUSER_PFN))
    assert (row.shared, row.readable) == (False, 1)
    (row,) = account(runs, fates, [], shared=SharedPage(KUSER_VPN, None))  # frame unknown
    assert row.shared


def test_shared_page_inside_a_larger_run_is_carved_out():
    from iumdump.analysis.pages import SharedPage

    runs = [Run(KUSER_VPN - 2, KUSER_PFN - 2, 5)]
    frames = {pfn: content() for pfn in range(KUSER_PFN - 2, KUSER_PFN + 3)}
    rows = account(runs, FrameFates(FakePhysical(frames, 0x1000), runs), [],
                   shared=SharedPage(KUSER_VPN, KUSER_PFN))
    assert [(r.start, r.pages, r.shared) for r in rows] == [
        (0x7FFDE000, 2, False), (0x7FFE0000, 1, True), (0x7FFE1000, 2, False)]
