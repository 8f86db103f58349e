"""EPT tables of one VTL: construction with large leaves, walks, splits, permission round trips.

The reference walk below reads the hypervisor's tables with plain integer arithmetic from the
Intel SDM (Vol. 3C §29.3.2), independently of the construct definitions the EPT code uses.
"""

from __future__ import annotations

import random
import struct

import pytest

from iumdump.errors import EptViolation, InvalidInputError
from iumdump.slat.ept import (
    EPT_ACCESS_MASK, EPT_EXECUTE, EPT_FULL_ACCESS, EPT_READ, EPT_USER_EXECUTE, EPT_WRITE,
    GUEST_RAM_SPA_BASE, Ept, EptRun, HypervisorMemory, access_string,
)
from iumdump.structs.paging import EPT_PDE_2MB, EPT_PDPTE_1GB, EPT_PTE

GIB, MIB, KIB = 1 << 30, 1 << 20, 1 << 10
# RAM that needs every leaf size: two 1 GiB leaves, three 2 MiB leaves, five 4 KiB leaves.
ODD_RAM = 2 * GIB + 6 * MIB + 20 * KIB


def reference_walk(hv: HypervisorMemory, pml4: int, gpa: int):
    """(spa, access, leaf_size) per the SDM, or None when an entry on the way is not present."""
    table = pml4
    access = EPT_ACCESS_MASK
    for level, shift in enumerate((39, 30, 21, 12)):
        index = (gpa >> shift) & 0x1FF
        (raw,) = struct.unpack_from("<Q", hv.table(table), index * 8)
        rwx = raw & (EPT_READ | EPT_WRITE | EPT_EXECUTE | EPT_USER_EXECUTE)
        if raw & 0b111 == 0 and not raw & EPT_USER_EXECUTE:
            return None
        access &= rwx
        if level == 3 or (level in (1, 2) and raw & 0x80):
            frame = raw & ((1 << 52) - 1) & ~((1 << shift) - 1)
            return frame | (gpa & ((1 << shift) - 1)), access, 1 << shift
        table = (raw & ((1 << 52) - 1)) >> 12
    raise AssertionError("a level-3 entry is always a leaf")


def make_ept(ram=ODD_RAM, access=EPT_FULL_ACCESS):
    hv = HypervisorMemory()
    return hv, Ept(hv, vtl=0, ram_size=ram, access=access)


def test_identity_map_uses_the_largest_leaves_that_fit():
    hv, ept = make_ept()
    sizes = {}
    gpa = 0
    while gpa < ODD_RAM:
        walk = ept.walk(gpa)
        sizes[walk.leaf_size] = sizes.get(walk.leaf_size, 0) + 1
        assert walk.spa == GUEST_RAM_SPA_BASE + gpa and walk.leaf_gpa == gpa
        gpa += walk.leaf_size
    assert sizes == {GIB: 2, 2 * MIB: 3, 4 * KIB: 5}
    # PML4, one PDPT, one PD for the third GiB, one PT for its last 2 MiB.
    assert hv.table_count == 4


def test_walk_decodes_leaves_with_the_construct_definitions():
    _, ept = make_ept()
    for gpa, definition in ((0x1234_5678, EPT_PDPTE_1GB), (2 * GIB + 0x12_3456, EPT_PDE_2MB),
                            (2 * GIB + 6 * MIB + 0x1234, EPT_PTE)):
        walk = ept.walk(gpa)
        leaf = definition.parse(walk.entries[-1].to_bytes(8, "little"))
        assert leaf.Read and leaf.Write and leaf.Execute and leaf.UserModeExecute
        assert leaf.MemoryType == 6  # write-back
        assert walk.spa == GUEST_RAM_SPA_BASE + gpa


def test_gpa_beyond_ram_is_not_mapped():
    _, ept = make_ept()
    walk = ept.walk(ODD_RAM)
    assert not walk.present and walk.spa is None
    with pytest.raises(EptViolation) as err:
        ept.translate(ODD_RAM + 0x10)
    assert err.value.gpa == ODD_RAM + 0x10 and err.value.access == "read"
    far = ept.walk(1 << 40)  # a whole unmapped PML4 entry
    assert not far.present and far.leaf_level == 0 and far.leaf_size == 1 << 39


def test_protecting_one_page_splits_only_its_leaves():
    hv, ept = make_ept()
    target = 0x4000_0000 + 0x1234_5000  # inside the second 1 GiB leaf
    ept.set_access(target >> 12, 1, EPT_READ)
    assert hv.table_count == 4 + 2  # one new PD, one new PT
    walk = ept.walk(target)
    assert walk.leaf_level == 3 and walk.access == EPT_READ and walk.spa == GUEST_RAM_SPA_BASE + target
    for neighbour, size in ((target + 0x1000, 4 * KIB), (target - 0x1000, 4 * KIB),
                            (target + 2 * MIB, 2 * MIB), (0x1000, GIB)):
        other = ept.walk(neighbour)
        assert other.access == EPT_FULL_ACCESS and other.leaf_size == size
        assert other.spa == GUEST_RAM_SPA_BASE + neighbour


def test_split_children_inherit_memory_type_and_frames():
    hv, ept = make_ept()
    ept.set_access(0x12345, 1, 0)
    walk = ept.walk(0x12346 << 12)
    leaf = EPT_PTE.parse(walk.entries[-1].to_bytes(8, "little"))
    assert leaf.MemoryType == 6 and leaf.PageFrameNumber == (GUEST_RAM_SPA_BASE >> 12) + 0x12346


def test_aligned_ranges_change_whole_large_leaves_without_splitting():
    hv, ept = make_ept()
    ept.set_access(0, GIB >> 12, EPT_READ | EPT_EXECUTE)  # exactly the first 1 GiB leaf
    assert hv.table_count == 4
    assert ept.walk(0x3FFF_F000).leaf_size == GIB
    assert ept.walk(0x3FFF_F000).access == EPT_READ | EPT_EXECUTE
    ept.set_access((2 * GIB) >> 12, 512, 0)  # exactly one 2 MiB leaf
    assert hv.table_count == 4 and ept.walk(2 * GIB).leaf_size == 2 * MIB


@pytest.mark.parametrize("access", range(16))
def test_every_access_round_trips_through_the_leaf(access):
    access = ((access & 1) * EPT_READ | (access >> 1 & 1) * EPT_WRITE
              | (access >> 2 & 1) * EPT_EXECUTE | (access >> 3 & 1) * EPT_USER_EXECUTE)
    hv, ept = make_ept(64 * MIB)
    ept.set_access(0x2100, 3, access)
    for pfn in range(0x2100, 0x2103):
        walk = ept.walk(pfn << 12)
        assert walk.present == bool(access)
        assert walk.access == access
        leaf = EPT_PTE.parse(walk.entries[-1].to_bytes(8, "little"))
        assert (leaf.Read, leaf.Write, leaf.Execute, leaf.UserModeExecute) == (
            bool(access & EPT_READ), bool(access & EPT_WRITE), bool(access & EPT_EXECUTE),
            bool(access & EPT_USER_EXECUTE))
        # The frame survives even while the entry is not present.
        assert leaf.PageFrameNumber == (GUEST_RAM_SPA_BASE >> 12) + pfn


def test_taking_away_and_giving_back_restores_the_mapping():
    _, ept = make_ept(32 * MIB)
    ept.set_access(0x1000, 0x200, 0)  # one whole 2 MiB leaf becomes not present
    assert not ept.walk(0x1000 << 12).present
    ept.set_access(0x1010, 1, EPT_READ)  # part of it again: splits the not-present leaf
    walk = ept.walk(0x1010 << 12)
    assert walk.access == EPT_READ and walk.spa == GUEST_RAM_SPA_BASE + (0x1010 << 12)
    assert not ept.walk(0x1011 << 12).present


def test_translations_agree_with_an_independent_walk():
    rng = random.Random(7)
    hv, ept = make_ept(64 * MIB)
    accesses = [0, EPT_READ, EPT_READ | EPT_WRITE, EPT_READ | EPT_EXECUTE, EPT_FULL_ACCESS,
                EPT_READ | EPT_USER_EXECUTE]
    for _ in range(60):
        start = rng.randrange(0, (64 * MIB >> 12) - 600)
        ept.set_access(start, rng.choice([1, 2, 17, 512, 520]), rng.choice(accesses))
    for _ in range(3000):
        gpa = rng.randrange(0, 64 * MIB + 8 * MIB)
        walk = ept.walk(gpa)
        expected = reference_walk(hv, ept.pml4, gpa)
        if expected is None:
            assert not walk.present
            continue
        spa, access, size = expected
        assert (walk.spa, walk.access, walk.leaf_size) == (spa, access, size), hex(gpa)
        if access & EPT_READ:
            assert ept.translate(gpa, "read") == spa
        else:
            with pytest.raises(EptViolation):
                ept.translate(gpa, "read")


def test_runs_agree_with_page_by_page_walks():
    rng = random.Random(11)
    _, ept = make_ept(16 * MIB)
    for _ in range(30):
        ept.set_access(rng.randrange(0, 4000), rng.randrange(1, 40),
                       rng.choice([0, EPT_READ, EPT_FULL_ACCESS]))
    runs = list(ept.runs())
    assert runs[0].start_pfn == 0 and runs[-1].end_pfn == 4096
    for previous, run in zip(runs, runs[1:]):
        assert previous.end_pfn == run.start_pfn and previous.access != run.access
    for run in runs:
        for pfn in range(run.start_pfn, run.end_pfn):
            walk = ept.walk(pfn << 12)
            assert walk.access == run.access
            if walk.present:
                assert walk.spa == run.spa + ((pfn - run.start_pfn) << 12)


def test_runs_of_a_sub_range_are_clipped():
    _, ept = make_ept(ODD_RAM)
    ept.set_access(0x100, 4, 0)
    assert list(ept.runs(0xFE, 0x106)) == [
        EptRun(0xFE, 2, EPT_FULL_ACCESS, GUEST_RAM_SPA_BASE + 0xFE000),
        EptRun(0x100, 4, 0, GUEST_RAM_SPA_BASE + 0x100000),
        EptRun(0x104, 2, EPT_FULL_ACCESS, GUEST_RAM_SPA_BASE + 0x104000)]
    # One 1 GiB leaf is one run however many frames it holds.
    assert list(ept.runs(GIB >> 12, 2 * GIB >> 12)) == [
        EptRun(GIB >> 12, GIB >> 12, EPT_FULL_ACCESS, GUEST_RAM_SPA_BASE + GIB)]


def test_tables_live_outside_guest_ram():
    hv, ept = make_ept(64 * MIB)
    ept.set_access(5, 1, 0)
    spa_of_tables = [hpfn << 12 for hpfn in hv._tables]
    assert all(not GUEST_RAM_SPA_BASE <= spa < GUEST_RAM_SPA_BASE + 64 * MIB
               for spa in spa_of_tables)
    assert ept.eptp == (ept.pml4 << 12) | (3 << 3) | 6  # WB tables, 4-level walk


def test_each_vtl_has_its_own_tables():
    hv = HypervisorMemory()
    vtl0 = Ept(hv, vtl=0, ram_size=16 * MIB)
    vtl1 = Ept(hv, vtl=1, ram_size=16 * MIB)
    vtl0.set_access(0x10, 1, 0)
    assert not vtl0.walk(0x10000).present and vtl1.walk(0x10000).access == EPT_FULL_ACCESS
    with pytest.raises(EptViolation) as err:
        vtl0.translate(0x10008, "read")
    assert err.value.vtl == 0 and "VTL0 read of GPA 0x10008" in str(err.value)


def test_violation_names_the_access_denied():
    _, ept = make_ept(16 * MIB)
    ept.set_access(0x20, 1, EPT_READ)
    assert ept.translate(0x20000, "read") == GUEST_RAM_SPA_BASE + 0x20000
    for access in ("write", "execute", "user-execute"):
        with pytest.raises(EptViolation) as err:
            ept.translate(0x20010, access)
        assert err.value.access == access and err.value.gpa == 0x20010
        assert f"{access} of GPA 0x20010" in str(err.value) and "r---" in str(err.value)
    with pytest.raises(InvalidInputError):
        ept.translate(0x20000, "fetch")


def test_bad_arguments_are_refused():
    _, ept = make_ept(16 * MIB)
    with pytest.raises(InvalidInputError):
        ept.set_access(4095, 2, 0)  # runs past RAM
    with pytest.raises(InvalidInputError):
        ept.set_access(0, 1, 1 << 5)  # not a permission bit
    with pytest.raises(InvalidInputError):
        Ept(HypervisorMemory(), vtl=0, ram_size=16 * MIB, spa_base=0x1000_0000)
    assert access_string(EPT_READ | EPT_USER_EXECUTE) == "r--u"


def test_split_page_tables_yield_one_run_per_run_not_per_leaf():
    """Regression: runs() made one EptRun per 4 KiB leaf of a split table, so scanning an 8 GiB
    machine with a few thousand single-page protections cost more than writing its dump."""
    _, ept = make_ept(64 * MIB)
    for pfn in range(7, 64 * MIB >> 12, 4096):  # one page every 16 MiB: four split tables
        ept.set_access(pfn, 1, 0)
    runs = list(ept.runs())
    assert len(runs) == 2 * 4 + 1
    assert [run.count for run in runs[:3]] == [7, 1, 4095]
