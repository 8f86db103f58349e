"""The guest page-table builder, checked against the paging constructs, against an independent
walk by Volatility 3's own Intel layer, and against Volatility's DTB self-reference test."""

from __future__ import annotations

import pytest

from iumdump.errors import InvalidInputError
from iumdump.slat.memory import FrameAllocator, GuestPhysicalMemory
from iumdump.slat.pagetables import (
    KERNEL_HALF_FIRST_INDEX, LARGE_PAGE_SIZE, AddressSpace, PageTableStore, canonical,
    is_canonical, leaf_bits, self_map_base,
)
from iumdump.structs.paging import PDE_2MB, PML4E, PTE

MEMORY = 16 << 20
KERNEL_VA = 0xFFFFF80312345000
POOL_VA = 0xFFFF_A580_0000_0000
USER_VA = 0x0000_7FF6_1234_0000
SELF_MAP_INDEX = 0x1A3


def _entry(memory: GuestPhysicalMemory, table_pfn: int, index: int) -> int:
    return int.from_bytes(memory.read((table_pfn << 12) + index * 8, 8), "little")


@pytest.fixture
def spaces():
    memory = GuestPhysicalMemory(MEMORY)
    allocator = FrameAllocator(memory, reserved=[(0, 0x100)])
    store = PageTableStore(memory, allocator.allocate)
    system = AddressSpace(store, root_pfn=allocator.take(0x1AD))
    system.set_self_reference(SELF_MAP_INDEX)
    process = AddressSpace(store)
    return memory, allocator, store, system, process


def test_a_4k_mapping_translates_and_its_entry_parses_as_a_pte(spaces):
    memory, allocator, store, system, _ = spaces
    frame = allocator.allocate()
    system.map_page(KERNEL_VA, frame, writable=True, global_=True)
    assert system.translate(KERNEL_VA + 0x123) == (frame << 12) + 0x123
    assert system.translate(KERNEL_VA + 0x1000) is None
    store.flush()
    # Walk the tables in guest memory by hand and parse each level with its construct.
    pml4e = PML4E.parse(memory.read(system.dtb + ((KERNEL_VA >> 39) & 0x1FF) * 8, 8))
    assert pml4e.Present and pml4e.ReadWrite and not pml4e.UserSupervisor
    table = pml4e.PageFrameNumber
    for shift in (30, 21):
        table = _entry(memory, table, (KERNEL_VA >> shift) & 0x1FF) >> 12 & ((1 << 40) - 1)
    pte = PTE.parse(memory.read((table << 12) + ((KERNEL_VA >> 12) & 0x1FF) * 8, 8))
    assert (pte.Present, pte.ReadWrite, pte.UserSupervisor, pte.Global, pte.ExecuteDisable) == (
        True, True, False, True, True)
    assert pte.PageFrameNumber == frame


def test_leaf_rights_follow_the_mapping(spaces):
    _, allocator, _, _, process = spaces
    frame = allocator.allocate()
    process.map_page(USER_VA, frame, writable=False, user=True, executable=True)
    leaf = next(process.leaves())
    parsed = PTE.parse(leaf.entry.to_bytes(8, "little"))
    assert (parsed.ReadWrite, parsed.UserSupervisor, parsed.ExecuteDisable) == (False, True, False)
    assert leaf.va == USER_VA and leaf.pfn == frame and leaf.user and not leaf.writable
    assert leaf_bits("PTE", writable=True, user=False, executable=False, global_=False) & (1 << 63)


def test_a_2mb_page_is_a_pde_with_ps_and_translates_inside(spaces):
    _, allocator, _, system, _ = spaces
    system.map_large_page(POOL_VA, 0x800, writable=True, global_=True)
    assert system.translate(POOL_VA + 0x1ABCDE) == (0x800 << 12) + 0x1ABCDE
    leaf = next(system.leaves(POOL_VA, POOL_VA + LARGE_PAGE_SIZE))
    parsed = PDE_2MB.parse(leaf.entry.to_bytes(8, "little"))
    assert parsed.PageSize and parsed.Present and parsed.PageFrameNumber == 0x800 >> 9
    assert leaf.size == LARGE_PAGE_SIZE
    with pytest.raises(InvalidInputError, match="inside a large page"):
        system.map_page(POOL_VA + 0x3000, allocator.allocate())
    with pytest.raises(InvalidInputError, match="not 2 MiB aligned"):
        system.map_large_page(POOL_VA + LARGE_PAGE_SIZE, 0x801)


def test_the_self_map_entry_points_at_its_own_pml4(spaces):
    memory, _, store, system, process = spaces
    process.share_kernel_half(system)
    store.flush()
    for space in (system, process):
        entry = _entry(memory, space.root_pfn, SELF_MAP_INDEX)
        assert entry & 0x000F_FFFF_FFFF_F000 == space.dtb
        assert entry & 1 and entry >> 63  # present, no-execute
    assert self_map_base(SELF_MAP_INDEX) == canonical(SELF_MAP_INDEX << 39)
    with pytest.raises(InvalidInputError, match="self-map"):
        system.map_page(self_map_base(SELF_MAP_INDEX), 0x300)


def test_volatility_dtb_scan_accepts_exactly_the_pml4_pages(spaces):
    """Volatility's DtbSelfRef64bit (automagic/windows.py) accepts a PML4 with its single
    self-reference and rejects every other page-table page."""
    from volatility3.framework.automagic.windows import DtbSelfRef64bit

    memory, allocator, store, system, process = spaces
    system.map_page(KERNEL_VA, allocator.allocate())
    process.map_page(USER_VA, allocator.allocate(), user=True)
    process.share_kernel_half(system)
    store.flush()
    test = DtbSelfRef64bit()
    accepted = set()
    for pfn in store.tables:
        page = memory.read(pfn << 12, 0x1000)
        if test(page, pfn << 12, 0):
            accepted.add(pfn)
    assert accepted == {system.root_pfn, process.root_pfn}
    assert test(memory.read(system.dtb, 0x1000), system.dtb, 0) == (system.dtb, SELF_MAP_INDEX * 8)


def test_a_process_shares_the_kernel_half_but_not_the_user_half(spaces):
    _, allocator, store, system, process = spaces
    kernel_frame, user_frame = allocator.allocate(), allocator.allocate()
    system.map_page(KERNEL_VA, kernel_frame)
    process.map_page(USER_VA, user_frame, user=True)
    process.share_kernel_half(system)
    assert process.translate(KERNEL_VA) == kernel_frame << 12
    assert system.translate(USER_VA) is None
    # Later kernel mappings below an existing PML4 entry are visible to the process too.
    system.map_page(KERNEL_VA + 0x1000, allocator.allocate())
    assert process.translate(KERNEL_VA + 0x1000) == system.translate(KERNEL_VA + 0x1000)
    roots = store.table(system.root_pfn), store.table(process.root_pfn)
    for index in range(KERNEL_HALF_FIRST_INDEX, 512):
        if index != SELF_MAP_INDEX:
            assert roots[0][index] == roots[1][index]


def test_volatility_intel_layer_walks_the_tables_to_the_same_frames(spaces, tmp_path):
    """An independent walk: Volatility's WindowsIntel32e over a raw image of the memory."""
    from volatility3.framework import contexts
    from volatility3.framework.layers import intel, physical

    memory, allocator, store, system, process = spaces
    frames = [allocator.allocate() for _ in range(5)]
    system.map_frames(KERNEL_VA, frames[:3], global_=True)
    system.map_large_page(POOL_VA, 0x600)
    process.map_frames(USER_VA, frames[3:], user=True, writable=False)
    process.share_kernel_half(system)
    store.flush()
    image = tmp_path / "memory.raw"
    image.write_bytes(memory.read(0, MEMORY))
    context = contexts.Context()
    context.config["base.location"] = image.as_uri()
    context.layers.add_layer(physical.FileLayer(context, "base", "memory"))
    for name, space in (("system", system), ("process", process)):
        context.config[f"{name}.memory_layer"] = "memory"
        context.config[f"{name}.page_map_offset"] = space.dtb
        layer = intel.WindowsIntel32e(context, name, name)
        for va in (KERNEL_VA, KERNEL_VA + 0x2FFF, POOL_VA + 0x1F_F000):
            assert layer.translate(va & 0xFFFF_FFFF_FFFF)[0] == space.translate(va)
        if space is process:
            assert layer.translate(USER_VA + 0x1000)[0] == (frames[4] << 12)
        else:
            assert not layer.is_valid(USER_VA)


def test_addresses_must_be_canonical_and_in_the_right_half(spaces):
    _, _, _, system, process = spaces
    assert is_canonical(0xFFFF_8000_0000_0000) and is_canonical(0x7FFF_FFFF_F000)
    assert not is_canonical(0x0000_8000_0000_0000)
    with pytest.raises(InvalidInputError, match="canonical"):
        system.map_page(0x0000_9000_0000_0000, 0x300)
    with pytest.raises(InvalidInputError, match="user half"):
        process.map_page(USER_VA, 0x300, user=False)
    with pytest.raises(InvalidInputError, match="kernel half"):
        system.map_page(KERNEL_VA, 0x300, user=True)


def test_leaves_come_in_address_order_and_skip_the_self_map(spaces):
    _, _, _, system, _ = spaces
    system.map_range(KERNEL_VA, 0x400, 3)
    system.map_large_page(POOL_VA, 0x600)
    leaves = list(system.leaves(0xFFFF_8000_0000_0000, 1 << 64))
    assert [leaf.va for leaf in leaves] == [POOL_VA, KERNEL_VA, KERNEL_VA + 0x1000, KERNEL_VA + 0x2000]
    assert [leaf.pfn for leaf in leaves] == [0x600, 0x400, 0x401, 0x402]
