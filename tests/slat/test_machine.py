"""The SLAT machine: HvModifyVtlProtectionMask semantics, VTL and host views, refused frames, and
the guest memory it is built on."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from iumdump.errors import EptViolation, InvalidInputError
from iumdump.slat.ept import EPT_READ, EPT_USER_EXECUTE, EPT_WRITE, EPT_EXECUTE
from iumdump.slat.machine import (
    HV_MAP_GPA_EXECUTABLE, HV_MAP_GPA_KERNEL_EXECUTABLE, HV_MAP_GPA_PERMISSIONS_MASK,
    HV_MAP_GPA_PERMISSIONS_NONE, HV_MAP_GPA_READABLE, HV_MAP_GPA_USER_EXECUTABLE,
    HV_MAP_GPA_WRITABLE, FrameRanges, SlatMachine, ept_to_mask, mask_to_ept,
)
from iumdump.slat.memory import (
    FRAME_BACKGROUND, FRAME_EXPLICIT, FRAME_FREE, PAGE_SIZE, FrameAllocator, GuestPhysicalMemory,
    OutOfMemoryError,
)

MIB = 1 << 20
SECURE_GPA = 0x40_0000       # four pages VTL1 takes from VTL0 in most tests
SECURE_PAGES = 4


@pytest.fixture
def machine() -> SlatMachine:
    memory = GuestPhysicalMemory(16 * MIB, seed=5)
    memory.add_background(0x100, 0x700)
    memory.write(SECURE_GPA, b"LsaIso secret" * 100)
    memory.write(0x1000, b"VTL0 kernel data")
    m = SlatMachine(memory)
    m.modify_vtl_protection_mask(SECURE_GPA, SECURE_PAGES, HV_MAP_GPA_PERMISSIONS_NONE)
    return m


def test_mask_constants_are_the_tlfs_values():
    assert (HV_MAP_GPA_READABLE, HV_MAP_GPA_WRITABLE, HV_MAP_GPA_KERNEL_EXECUTABLE,
            HV_MAP_GPA_USER_EXECUTABLE) == (0x1, 0x2, 0x4, 0x8)
    assert HV_MAP_GPA_EXECUTABLE == 0xC and HV_MAP_GPA_PERMISSIONS_MASK == 0xF


def test_vtl0_read_of_a_protected_page_raises_naming_gpa_and_access(machine):
    with pytest.raises(EptViolation) as err:
        machine.view(0).read(SECURE_GPA + 0x10, 8)
    assert err.value.gpa == SECURE_GPA + 0x10 and err.value.access == "read" and err.value.vtl == 0
    assert isinstance(err.value, PermissionError)
    assert "VTL0 read of GPA 0x400010" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(EptViolation) as err:
        machine.view(0).read_page((SECURE_GPA >> 12) + 3)
    assert err.value.gpa == SECURE_GPA + 0x3000


def test_a_read_running_into_a_protected_page_raises_at_its_first_byte(machine):
    with pytest.raises(EptViolation) as err:
        machine.view(0).read(SECURE_GPA - 0x10, 0x20)
    assert err.value.gpa == SECURE_GPA


def test_vtl0_reads_everything_else(machine):
    view = machine.view(0)
    assert view.read(0x1000, 16) == b"VTL0 kernel data"
    assert view.read_page(0x150) == machine.memory.page(0x150)
    assert view.read(SECURE_GPA - 0x1000, 0x1000) == machine.memory.read(SECURE_GPA - 0x1000, 0x1000)
    after = SECURE_GPA + SECURE_PAGES * PAGE_SIZE
    assert view.read(after, 4) == machine.memory.read(after, 4)
    assert view.read(0x900000, 4) == bytes(4)  # never used: reads as zeros


def test_host_and_vtl1_read_the_protected_pages(machine):
    assert machine.host_view().read(SECURE_GPA, 13) == b"LsaIso secret"
    assert machine.host_view().read_page(SECURE_GPA >> 12) == machine.memory.page(SECURE_GPA >> 12)
    assert machine.view(1).read(SECURE_GPA, 13) == b"LsaIso secret"


def test_read_only_pages_refuse_writes_and_keep_their_bytes(machine):
    gpa = 0x20_0000
    machine.modify_vtl_protection_mask(gpa, 1, HV_MAP_GPA_READABLE)
    before = machine.memory.read(gpa - 4, 8)
    with pytest.raises(EptViolation) as err:
        machine.view(0).write(gpa - 4, b"12345678")  # the first page is writable, the second not
    assert err.value.access == "write" and err.value.gpa == gpa
    assert machine.memory.read(gpa - 4, 8) == before  # a denied write changes nothing
    machine.view(1).write(gpa, b"vtl1")
    assert machine.view(0).read(gpa, 4) == b"vtl1"


def test_execute_rights_follow_the_kernel_and_user_bits(machine):
    gpa = 0x30_0000
    machine.modify_vtl_protection_mask(gpa, 1, HV_MAP_GPA_READABLE | HV_MAP_GPA_USER_EXECUTABLE)
    view = machine.view(0)
    view.check(gpa, "user-execute")
    with pytest.raises(EptViolation):
        view.check(gpa, "execute")
    machine.modify_vtl_protection_mask(gpa, 1, HV_MAP_GPA_READABLE | HV_MAP_GPA_KERNEL_EXECUTABLE)
    view.check(gpa, "execute")
    with pytest.raises(EptViolation):
        view.check(gpa, "user-execute")


@pytest.mark.parametrize("mask", [m for m in range(16) if not (m & 2 and not m & 1)])
def test_every_mask_round_trips_through_the_ept_entries(mask):
    m = SlatMachine(GuestPhysicalMemory(16 * MIB))
    m.modify_vtl_protection_mask(0x5000, 2, mask)
    assert m.protection_mask(0x5000) == m.protection_mask(0x6FFF) == mask
    leaf = m.view(0).walk(0x5000).entries[-1]
    assert bool(leaf & EPT_READ) == bool(mask & HV_MAP_GPA_READABLE)
    assert bool(leaf & EPT_WRITE) == bool(mask & HV_MAP_GPA_WRITABLE)
    assert bool(leaf & EPT_EXECUTE) == bool(mask & HV_MAP_GPA_KERNEL_EXECUTABLE)
    assert bool(leaf & EPT_USER_EXECUTE) == bool(mask & HV_MAP_GPA_USER_EXECUTABLE)
    assert m.protection_mask(0x7000) == HV_MAP_GPA_PERMISSIONS_MASK
    assert m.protection_mask(0x5000, vtl=1) == HV_MAP_GPA_PERMISSIONS_MASK
    assert ept_to_mask(mask_to_ept(mask)) == mask


def test_refused_frames_come_from_the_ept_and_follow_changes(machine):
    first = SECURE_GPA >> 12
    assert machine.refused_frames() == list(range(first, first + SECURE_PAGES))
    assert machine.refused_frames(1) == []
    machine.modify_vtl_protection_mask(0x8000, 1, HV_MAP_GPA_WRITABLE | HV_MAP_GPA_READABLE)
    machine.modify_vtl_protection_mask(0x9000, 1, HV_MAP_GPA_EXECUTABLE)  # execute-only
    assert machine.refused_frames() == [9, *range(first, first + SECURE_PAGES)]
    machine.modify_vtl_protection_mask(SECURE_GPA, SECURE_PAGES, HV_MAP_GPA_PERMISSIONS_MASK)
    assert machine.refused_frames() == {9}
    machine.view(0).read(SECURE_GPA, 16)


def test_refused_frames_reflect_the_tables_themselves(machine):
    """The query scans EPT leaves; a leaf changed behind the machine's back shows up too."""
    ept = machine.epts[0]
    ept.set_access(0x77, 1, 0)
    machine._refused_cache.clear()
    assert 0x77 in machine.refused_frames()
    with pytest.raises(EptViolation):
        machine.view(0).read_page(0x77)


def test_tlfs_rules_for_the_hypercall(machine):
    with pytest.raises(InvalidInputError, match="lower VTL"):
        machine.modify_vtl_protection_mask(0x1000, 1, 0, target_vtl=1)
    with pytest.raises(InvalidInputError, match="not guest RAM"):
        machine.modify_vtl_protection_mask(16 * MIB - 0x1000, 2, 0)
    with pytest.raises(InvalidInputError, match="outside"):
        machine.modify_vtl_protection_mask(0x1000, 1, 0x10)
    with pytest.raises(InvalidInputError, match="writable but not readable"):
        machine.modify_vtl_protection_mask(0x1000, 1, HV_MAP_GPA_WRITABLE)
    with pytest.raises(InvalidInputError, match="aligned"):
        machine.modify_vtl_protection_mask(0x1001, 1, 0)
    with pytest.raises(InvalidInputError):
        machine.view(2)


def test_hvci_forbids_writable_kernel_code():
    m = SlatMachine(GuestPhysicalMemory(16 * MIB), hvci=True)
    with pytest.raises(InvalidInputError, match="W\\^X"):
        m.modify_vtl_protection_mask(0x1000, 1, HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE
                                     | HV_MAP_GPA_KERNEL_EXECUTABLE)
    m.modify_vtl_protection_mask(0x1000, 1, HV_MAP_GPA_READABLE | HV_MAP_GPA_KERNEL_EXECUTABLE)
    m.modify_vtl_protection_mask(0x2000, 1, HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE
                                 | HV_MAP_GPA_USER_EXECUTABLE)
    SlatMachine(GuestPhysicalMemory(16 * MIB)).modify_vtl_protection_mask(0x1000, 1, 0x7)


def test_read_frames_into_consults_the_ept(machine):
    buffer = memoryview(bytearray(8 * PAGE_SIZE))
    machine.view(0).read_frames_into(0x100, buffer)
    assert bytes(buffer) == machine.memory.frames(0x100, 8)
    with pytest.raises(EptViolation) as err:
        machine.view(0).read_frames_into((SECURE_GPA >> 12) - 2, buffer)
    assert err.value.gpa == SECURE_GPA
    machine.host_view().read_frames_into((SECURE_GPA >> 12) - 2, buffer)
    assert bytes(buffer[0x2000:0x200D]) == b"LsaIso secret"


def test_random_reads_agree_with_the_refused_set():
    rng = random.Random(3)
    memory = GuestPhysicalMemory(32 * MIB, seed=1)
    memory.add_background(0, memory.frame_count)
    m = SlatMachine(memory)
    for _ in range(40):
        m.modify_vtl_protection_mask(rng.randrange(0, 8000) << 12, rng.randrange(1, 30),
                                     rng.choice([0, 1, 3, 0xF, 0xC]))
    refused = set(m.refused_frames())
    view = m.view(0)
    for _ in range(500):
        pfn = rng.randrange(memory.frame_count)
        if pfn in refused:
            with pytest.raises(EptViolation):
                view.read_page(pfn)
        else:
            assert view.read_page(pfn) == memory.page(pfn)


# -- FrameRanges ------------------------------------------------------------------------------

def test_frame_ranges_behave_like_a_sorted_list():
    frames = FrameRanges([(10, 13), (2, 4), (3, 5), (13, 14)])
    assert frames.ranges == [(2, 5), (10, 14)]
    assert list(frames) == [2, 3, 4, 10, 11, 12, 13] and len(frames) == 7
    assert frames[0] == 2 and frames[3] == 10 and frames[-1] == 13 and frames[1:3] == [3, 4]
    assert 11 in frames and 5 not in frames and 1 not in frames and "x" not in frames
    assert frames == [2, 3, 4, 10, 11, 12, 13] and frames == {13, 2, 3, 4, 10, 11, 12}
    assert frames != [2, 3] and FrameRanges.from_pfns([4, 2, 3]) == FrameRanges([(2, 5)])
    with pytest.raises(IndexError):
        frames[7]
    assert "frames=7" in repr(frames)


# -- guest memory ------------------------------------------------------------------------------

def test_frame_runs_classify_every_frame():
    memory = GuestPhysicalMemory(1 * MIB, seed=2)
    memory.add_background(10, 20)
    memory.write(15 * PAGE_SIZE, b"x")
    memory.zero_page(40)
    memory.zero_page(41)
    assert list(memory.frame_runs()) == [
        (0, 10, FRAME_FREE), (10, 15, FRAME_BACKGROUND), (15, 16, FRAME_EXPLICIT),
        (16, 30, FRAME_BACKGROUND), (30, 40, FRAME_FREE), (40, 42, FRAME_EXPLICIT),
        (42, 256, FRAME_FREE)]
    assert list(memory.frame_runs(12, 41)) == [
        (12, 15, FRAME_BACKGROUND), (15, 16, FRAME_EXPLICIT), (16, 30, FRAME_BACKGROUND),
        (30, 40, FRAME_FREE), (40, 41, FRAME_EXPLICIT)]


def test_bulk_frames_equal_page_by_page_content():
    memory = GuestPhysicalMemory(4 * MIB, seed=9)
    memory.add_background(3, 700)
    memory.write(100 * PAGE_SIZE + 7, b"explicit")
    memory.zero_page(500)
    expected = b"".join(memory.page(pfn) for pfn in range(1024))
    assert memory.frames(0, 1024) == expected
    assert memory.read(99 * PAGE_SIZE + 5, 2 * PAGE_SIZE) == expected[99 * PAGE_SIZE + 5:101 * PAGE_SIZE + 5]
    assert memory.page(50)[:8] == (50).to_bytes(8, "little")
    assert memory.page(51)[8:] == memory.page(52)[8:] and memory.page(51) != memory.page(52)


def test_streaming_an_8_gib_background_costs_no_image_sized_allocations():
    memory = GuestPhysicalMemory(8 << 30)
    memory.add_background(0, memory.frame_count)
    buffer = memoryview(bytearray(4 * MIB))
    tracemalloc.start()
    for start in range(0, memory.frame_count, memory.frame_count // 16):
        memory.frames_into(start, buffer)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * MIB
    assert bytes(buffer[:8]) == (15 * memory.frame_count // 16).to_bytes(8, "little")


def test_allocator_is_lowest_first_and_skips_reserved_and_taken_frames():
    memory = GuestPhysicalMemory(1 * MIB)
    allocator = FrameAllocator(memory, reserved=[(0, 4)])
    allocator.take(5)
    assert allocator.allocate() == 4
    assert allocator.allocate() == 6
    allocator.reserve(8, 2)
    assert allocator.allocate_run(3) == 10  # 7 is free but 8-9 are reserved
    assert allocator.allocate() == 7
    assert allocator.allocate() == 13
    with pytest.raises(InvalidInputError):
        allocator.take(5)
    allocator.take(8)  # a reserved frame may be claimed explicitly
    assert allocator.allocated == {4, 5, 6, 7, 8, 10, 11, 12, 13}
    with pytest.raises(OutOfMemoryError):
        allocator.allocate_run(256)
    while True:
        try:
            allocator.allocate()
        except OutOfMemoryError:
            break
    assert 9 not in allocator.allocated and len(allocator.allocated) == 256 - 5


def test_allocator_of_an_8_gib_machine_is_compact_and_fast():
    memory = GuestPhysicalMemory(8 << 30)
    tracemalloc.start()
    allocator = FrameAllocator(memory, reserved=[(0, 0x100)])
    run = allocator.allocate_run(1 << 20)
    for _ in range(1000):
        allocator.allocate()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # One byte per frame (2 MiB) plus the run's search pattern; a set of a million PFNs is ~60 MiB.
    assert run == 0x100 and peak < 6 * MIB


def test_small_reads_between_writes_do_not_resort_the_explicit_frames():
    """Regression guard: bulk reads use a sorted list of explicit frames, rebuilt after each new
    frame; a builder that writes a frame and reads a pointer back, 100 000 times, must not pay a
    sort per read (quadratic)."""
    memory = GuestPhysicalMemory(64 * MIB)
    memory.write(99 * PAGE_SIZE, (99).to_bytes(8, "little"))
    for pfn in range(100, 300):
        memory.write(pfn * PAGE_SIZE, pfn.to_bytes(8, "little"))
        assert memory.read((pfn - 1) * PAGE_SIZE, 8) == (pfn - 1).to_bytes(8, "little")
        assert memory._sorted_explicit is None
    assert memory.read(99 * PAGE_SIZE, 32 * PAGE_SIZE)[PAGE_SIZE:PAGE_SIZE + 8] == \
        (100).to_bytes(8, "little")
    assert memory._sorted_explicit is not None
