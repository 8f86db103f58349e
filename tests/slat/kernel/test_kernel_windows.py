"""The synthetic kernel has what a real Windows kernel has and other readers rely on: ntoskrnl.exe
mapped whole with its section table and export directory, the system regions in their own PML4
slots shared by every process, System's handle table and VAD tree, image headers where images
are mapped, kernel stacks. Each is read back independently of the kernel's code (pefile for PE
structures, the x64 paging rules for page tables, Volatility's own plugins for handles), with the
rule a reader applies cited where it is one (MemProcFS vmm/vmmwininit.c, vmm/vmmwin.c).
"""

from __future__ import annotations

import pefile
import pytest
from kernel_reader import PROFILES, Reader, build, symbols
from markers import quick_only

from iumdump.slat.kernel import manifest as M
from iumdump.slat.kernel.constants import KERNEL_STACK_SIZE, KUSER_SHARED_DATA_USER
from iumdump.slat.kernel.kernel_space import BOOT_IMAGES_SLOT, KUSER_SLOT
from iumdump.slat.pagetables import LARGE_PAGE_SIZE

PAGE = 0x1000
NX = 1 << 63


def _image(reader: Reader, base: int, size: int) -> bytes:
    """The mapped image as pefile reads a file whose raw offsets are its RVAs."""
    return b"".join(reader.read(base + rva, PAGE) for rva in range(0, size, PAGE))


@pytest.fixture(scope="module", params=PROFILES)
def kernel(request):
    kernel, built, machine = build(request.param)
    return kernel, built, machine, Reader(kernel, machine)


def test_ntoskrnl_has_its_sections_and_export_directory(kernel):
    kernel, built, machine, reader = kernel
    pe = pefile.PE(data=_image(reader, built.base, built.image_size))
    assert pe.OPTIONAL_HEADER.SizeOfImage == built.image_size
    names = [s.Name.rstrip(b"\0").decode() for s in pe.sections]
    # what readers look ntoskrnl up by (POOLCODE, .data) and the layout Windows images have
    assert {".text", "PAGE", "POOLCODE", ".data", "INIT", ".rsrc", ".reloc", ".edata"} <= set(
        names)
    assert names[-1] == ".reloc"
    spans = sorted((s.VirtualAddress, s.VirtualAddress + s.Misc_VirtualSize) for s in pe.sections)
    assert spans[0][0] == PAGE
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start == -(-end // PAGE) * PAGE  # contiguous, page-aligned
    assert -(-spans[-1][1] // PAGE) * PAGE == built.image_size

    def section(rva):
        return next(s for s in pe.sections
                    if s.VirtualAddress <= rva < s.VirtualAddress + s.Misc_VirtualSize)

    table = reader.symbols
    for name in M.KERNEL_SYMBOLS_USED:
        if not table.has_symbol(name):
            continue
        flags = section(table.symbol(name)).Characteristics
        if name in M.KERNEL_FUNCTIONS:
            assert flags & 0x20000000, name  # IMAGE_SCN_MEM_EXECUTE
        else:
            assert not flags & 0x20000000 and not flags & 0x20, name  # data, not code
    assert section(table.symbol("KdDebuggerDataBlock")).Name.rstrip(b"\0") == b".data"

    export = pe.DIRECTORY_ENTRY_EXPORT
    assert export.name == b"ntoskrnl.exe"
    exported = {s.name.decode(): s.address for s in export.symbols}
    expected = {n: table.symbol(n) for n in M.KERNEL_EXPORTS if table.has_symbol(n)}
    assert exported == expected
    assert {"PsInitialSystemProcess", "PsLoadedModuleList", "NtBuildNumber"} <= set(exported)
    ordered = [s.name for s in sorted(export.symbols, key=lambda s: s.ordinal)]
    assert ordered == sorted(ordered)  # the name table a loader binary-searches


def test_ntoskrnl_is_mapped_whole_with_the_rights_windows_gives_it(kernel):
    """With VBS every page has its section's rights and the header page is writable and
    no-execute after an unmapped page (what MemProcFS's small-page kernel scan wants); without
    VBS the loader uses 2 MiB pages."""
    kernel, built, machine, reader = kernel
    leaves = list(kernel.system_space.leaves(built.base, built.base + built.image_size))
    assert sum(leaf.size for leaf in leaves) == built.image_size
    assert kernel.system_space.translate(built.base - PAGE) is None
    if kernel.vbs:
        assert {leaf.size for leaf in leaves} == {PAGE}
        header = leaves[0]
        assert header.writable and header.entry & NX
        following = [leaf for leaf in leaves if leaf.va < built.base + 32 * PAGE][2:]
        assert all(leaf.entry & 0xF == 0x1 for leaf in following)  # present, read-only, supervisor
    else:
        assert leaves[0].size == LARGE_PAGE_SIZE


def test_no_vbs_kernel_uses_large_pages():
    kernel, built, _machine = build("builtin", "no-vbs")
    sizes = {leaf.size for leaf in kernel.system_space.leaves(
        built.base, built.base + built.image_size)}
    assert LARGE_PAGE_SIZE in sizes


def test_system_pml4_has_the_kernel_regions_every_process_shares(kernel):
    """VmmWinInit_DTB_FindValidate_X64 (MemProcFS) takes a page for the kernel's PML4 when it has
    a self-reference and at least six present, writable, supervisor, executable kernel entries
    below the top of memory, and over 64 empty entries in each half."""
    kernel, built, machine, reader = kernel
    root = kernel.store.table(kernel.system_space.root_pfn)
    kernel_half = list(root[256:])
    valid = [e for e in kernel_half
             if e & 0x8000000000000087 == 0x3 and (e & 0xFFFFFFFFFF000) < machine.memory.size]
    assert len(valid) >= 6
    assert sum(1 for e in kernel_half if e & 0xFFFFFFFFFF083 == built.dtb | 0x3) == 1
    assert sum(1 for e in root[:256] if e == 0) > 0x40 and kernel_half.count(0) > 0x40
    slots = {index for index, e in enumerate(root) if index >= 256 and e & 1}
    assert {KUSER_SLOT, BOOT_IMAGES_SLOT, kernel.self_map_index} <= slots
    for region in kernel.kernel_space.regions.values():
        assert region.slot in slots or region.kind in ("MiVaSystemPtes",), region
    for process in built.processes:
        if process.space is kernel.system_space:
            continue
        own = kernel.store.table(process.space.root_pfn)
        for index in range(256, 512):
            if index == kernel.self_map_index:
                assert own[index] & 0xFFFFFFFFFF000 == process.dtb
            else:
                assert own[index] == root[index], (process.spec.name, hex(index))


def test_pfn_database_is_mapped_at_mmpfndatabase_for_every_frame(kernel):
    kernel, built, machine, reader = kernel
    database = reader.u(kernel.symbol_address("MmPfnDatabase"))
    assert database == built.pfn_database
    last = database + machine.memory.frame_count * 0x30 - 1
    assert kernel.system_space.translate(database) is not None
    assert kernel.system_space.translate(last) is not None


def test_system_has_a_handle_table_in_an_obtb_block_and_a_vad_tree(kernel):
    """The EPROCESS offset locator of MemProcFS (vmm/vmmwin.c VmmWinProcess_OffsetLocator64)
    recognises ObjectTable by the ``Obtb`` pool tag 16 bytes before System's, and VadRoot by a
    kernel pointer right after ExitStatus = STATUS_PENDING, or a VadHint equal to it."""
    kernel, built, machine, reader = kernel
    system = next(p for p in built.processes if p.spec.pid == 4)
    table = reader.field("_EPROCESS", system.eprocess, "ObjectTable")
    assert reader.read(table - 12, 4) == b"Obtb"
    assert reader.field("_EPROCESS", system.eprocess, "ExitStatus") == 0x103
    for process in built.processes:
        root = reader.field("_EPROCESS", process.eprocess, "VadRoot.Root")
        assert (root != 0) == bool(process.regions)
        assert reader.field("_EPROCESS", process.eprocess, "VadHint") == root
    assert system.regions and system.regions[0].spec.start == KUSER_SHARED_DATA_USER


def test_image_processes_have_their_pe_header_at_section_base_address(kernel):
    kernel, built, machine, reader = kernel
    for process in built.processes:
        base = reader.field("_EPROCESS", process.eprocess, "SectionBaseAddress")
        if not base or any(r.spec.secure for r in process.regions):
            continue
        header = reader.read(base, PAGE, space=process.space)
        pe = pefile.PE(data=header, fast_load=True)
        image = next(r.spec for r in process.regions if r.spec.image)
        assert pe.OPTIONAL_HEADER.SizeOfImage == image.pages * PAGE, process.spec.name
        assert pe.FILE_HEADER.Machine == (0x14C if process.spec.wow64 else 0x8664)


def test_user_processes_have_their_nt_image_path_in_se_audit_info(kernel):
    kernel, built, machine, reader = kernel
    table = reader.symbols
    for process in built.processes:
        if process.spec.kind != "user":
            continue
        info = reader.field("_EPROCESS", process.eprocess,
                            "SeAuditProcessCreationInfo.ImageFileName")
        name = table.member("_OBJECT_NAME_INFORMATION", "Name").offset
        length = reader.u(info + name, 2)
        buffer = reader.u(info + name + table.member("_UNICODE_STRING", "Buffer").offset)
        path = reader.read(buffer, length).decode("utf-16-le")
        assert path == process.spec.image_path and path.startswith("\\Device\\")


def test_every_thread_has_a_mapped_kernel_stack_below_a_guard_page(kernel):
    kernel, built, machine, reader = kernel
    if not reader.symbols.has_member("_ETHREAD", "Tcb.StackBase"):
        pytest.skip("this layout has no StackBase")
    space = kernel.system_space
    for process in built.processes:
        for thread in process.threads:
            base = reader.field("_ETHREAD", thread, "Tcb.StackBase")
            limit = reader.field("_ETHREAD", thread, "Tcb.StackLimit")
            assert base - limit == KERNEL_STACK_SIZE
            assert all(space.translate(va) is not None for va in range(limit, base, PAGE))
            assert space.translate(limit - PAGE) is None
            assert limit < reader.field("_ETHREAD", thread, "Tcb.KernelStack") < base


@pytest.mark.parametrize("profile", quick_only(PROFILES, "builtin"))
def test_volatility_lists_systems_handles_to_every_other_process(profile, synth_dump,
                                                                 volatility):
    result = synth_dump("credential-guard", "crash-bitmap", profile)
    rows = volatility.run(result, "windows.handles.Handles", pid=[4]).rows
    processes = [row for row in rows if row["Type"] == "Process"]
    others = {p["address"] & 0xFFFF_FFFF_FFFF for p in result.truth["processes"] if p["pid"] != 4}
    assert {row["Offset"] for row in processes} == others
    assert all(row["GrantedAccess"] == 0x1FFFFF for row in processes)
    assert sorted(row["HandleValue"] for row in processes) == \
        list(range(4, 4 * (len(others) + 1), 4))


@pytest.mark.parametrize("profile", PROFILES)
def test_bitmap_dumps_are_sized_like_real_ones(profile, synth_dump):
    """A kernel's mapped image, pools and stacks put a bitmap dump past 16 MiB, the least a
    real one holds (LeechCore leechcore/device_file.c refuses smaller dump files)."""
    symbols(profile)  # skips without the real table
    for scenario in ("credential-guard", "no-vbs"):
        result = synth_dump(scenario, "crash-bitmap", profile)
        assert result.write.size > 16 << 20


def test_a_tiny_machine_shares_the_frames_nobody_reads(tmp_path):
    """16 MiB cannot hold a 14 MiB kernel image page for page: its code pages share a frame,
    and every page the kernel writes still gets its own."""
    kernel, built, machine = build("builtin", memory=16 << 20)
    assert kernel.filler.shared
    reader = Reader(kernel, machine)
    assert reader.read(built.base, 2) == b"MZ"
    data = kernel.system_space.translate(kernel.symbol_address("PsActiveProcessHead"))
    code = kernel.system_space.translate(kernel.symbol_address("KiSystemStartup"))
    assert data >> 12 != kernel.filler.shared_pfn and code >> 12 == kernel.filler.shared_pfn
