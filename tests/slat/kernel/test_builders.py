"""Each builder of the synthetic kernel run alone on a fresh context (nothing else built), and
read back by name — the records they write, the lists they link, the memory they claim."""

from __future__ import annotations

import pytest
from kernel_reader import PROFILES, Reader, context, symbols

from iumdump.errors import InvalidInputError, SymbolError
from iumdump.isf import SymbolTable
from iumdump.slat.kernel import KernelContext, fill_free_frames
from iumdump.slat.kernel.boot_structures import (
    claim_secure_kernel_memory, write_kuser_shared_data, write_low_stub,
)
from iumdump.slat.kernel.constants import KUSER_SHARED_DATA_USER, LOW_STUB, OBJECT_TYPES
from iumdump.slat.kernel.kernel_space import KUSER_SHARED_DATA_KERNEL
from iumdump.slat.kernel.objects import create_object, pool_string
from iumdump.slat.kernel.records import Layout, Record
from iumdump.slat.kernel.results import BuiltRegion
from iumdump.slat.kernel.secure_state import secure_state
from iumdump.slat.kernel.sessions import create_sessions
from iumdump.slat.kernel.user_memory import frame_runs
from iumdump.slat.kernel.vads import PRIVATE_TAG, create_vad, link_vad_tree
from iumdump.slat.machine import SlatMachine
from iumdump.slat.memory import GuestPhysicalMemory
from iumdump.slat.profile import builtin_symbol_table
from iumdump.slat.scenario import ProcessKind, ProcessSpec, RegionSpec, SecureKind
from iumdump.structs.flagwords import flag_word


# -- records ---------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_records_write_bit_fields_with_the_tables_flag_words(profile):
    table = symbols(profile)
    layout = Layout(table)
    process = Record(layout, "_EPROCESS")
    process.set("Minimal", 1)
    process.set("SubsystemProcess", 1)
    process.set("UniqueProcessId", 0x1234)
    word = flag_word(table, "_EPROCESS", "Flags3")
    value = int.from_bytes(bytes(process)[word.offset:word.offset + word.size], "little")
    # Where 14393 and 19041 put SubsystemProcess differs (bit 8 / bit 6): the table decides.
    bit = table.member("_EPROCESS", "SubsystemProcess").bit_position
    assert value == 1 | 1 << bit
    assert {n for n, v in word.decode(value).items() if v} == {"Minimal", "SubsystemProcess"}
    pid = table.member("_EPROCESS", "UniqueProcessId")
    assert bytes(process)[pid.offset:pid.offset + 2] == b"\x34\x12"
    assert ("_EPROCESS", "SubsystemProcess") in layout.used


def test_a_bit_field_value_that_does_not_fit_is_refused():
    process = Record(Layout(builtin_symbol_table()), "_EPROCESS")
    with pytest.raises(InvalidInputError, match="AddressSpaceInitialized"):
        process.set("AddressSpaceInitialized", 4)  # a 2-bit field
    with pytest.raises(SymbolError, match="NoSuchFlag"):
        process.set("NoSuchFlag", 1)


# -- the context and boot structures ---------------------------------------------------------
def test_a_variable_in_the_pe_header_page_is_refused():
    data = builtin_symbol_table().data
    data["symbols"]["PsActiveProcessHead"]["address"] = 0x800
    machine = SlatMachine(GuestPhysicalMemory(16 << 20))
    kernel, _ = context("builtin")
    with pytest.raises(SymbolError, match="PsActiveProcessHead lies in the kernel's PE header"):
        KernelContext(machine, SymbolTable(data), seed=0, processors=1,
                      boot_time=kernel.boot_time, system_time=kernel.system_time, vbs=False)


def test_the_low_stub_alone_names_the_system_page_map():
    kernel, machine = context("builtin")
    write_low_stub(kernel)
    stub = machine.memory.read(LOW_STUB, 0xA8)
    assert stub[:2] == b"\xe9\x4d"
    assert int.from_bytes(stub[0xA0:0xA8], "little") == kernel.system_space.dtb
    assert int.from_bytes(stub[0x70:0x78], "little") == kernel.symbol_address("KiSystemStartup")


@pytest.mark.parametrize("profile", PROFILES)
def test_kuser_shared_data_alone_is_one_frame_at_both_addresses(profile):
    kernel, machine = context(profile)
    pfn = write_kuser_shared_data(kernel)
    space = kernel.system_space
    assert space.translate(KUSER_SHARED_DATA_KERNEL) == space.translate(KUSER_SHARED_DATA_USER) \
        == pfn << 12
    reader = Reader(kernel, machine)
    assert reader.field("_KUSER_SHARED_DATA", KUSER_SHARED_DATA_KERNEL, "NtMajorVersion") == 10
    if kernel.symbols.has_member("_KUSER_SHARED_DATA", "DbgVirtEnabled"):  # UAC virtualization
        assert reader.field("_KUSER_SHARED_DATA", KUSER_SHARED_DATA_KERNEL,
                            "DbgVirtEnabled") == 1


@pytest.mark.parametrize("scenario", ["credential-guard", "no-vbs"])
def test_kuser_shared_data_flags_follow_uac_and_secure_boot_not_vbs(scenario):
    """Regression: DbgVirtEnabled was set only with VBS, as if it meant virtualization-based
    security; it is UAC's file and registry virtualization (on by default since Vista, years
    before VBS), so a machine without VBS has it too. DbgSecureBootEnabled comes with Credential
    Guard, which requires Secure Boot."""
    kernel, machine = context("builtin", scenario)
    write_kuser_shared_data(kernel)
    reader = Reader(kernel, machine)
    flags = {name: reader.field("_KUSER_SHARED_DATA", KUSER_SHARED_DATA_KERNEL, name)
             for name in ("DbgVirtEnabled", "DbgSecureBootEnabled")}
    assert flags == {"DbgVirtEnabled": 1, "DbgSecureBootEnabled": int(kernel.vbs)}


def test_the_secure_kernel_claims_its_frames_from_vtl0():
    kernel, machine = context("builtin")
    claim_secure_kernel_memory(kernel)
    start, end = kernel.secure_kernel_frames
    refused = machine.refused_frames(0)
    assert end - start >= 256 and all(pfn in refused for pfn in range(start, end))


# -- processes, alone ------------------------------------------------------------------------
def _spec(secure: SecureKind | None, trustlet_id: int | None = None) -> ProcessSpec:
    return ProcessSpec(name="x.exe", pid=0x200, ppid=4, kind=ProcessKind.USER, secure=secure,
                       trustlet_id=trustlet_id)


@pytest.mark.parametrize("profile", PROFILES)
def test_secure_state_follows_the_layout(profile):
    kernel, _ = context(profile)
    trustlet = secure_state(kernel, _spec(SecureKind.TRUSTLET, 4))
    host = secure_state(kernel, _spec(SecureKind.ENCLAVE_HOST))
    normal = secure_state(kernel, _spec(None))
    assert trustlet.secure and trustlet.handle and not host.secure
    assert (normal.word, normal.handle, normal.secure) == (0, 0, False)
    if kernel.symbols.has_member("_KPROCESS", "SecureState"):
        word = flag_word(kernel.symbols, "_KPROCESS", "SecureState")
        assert word.decode(trustlet.word)["SecureProcess"] and trustlet.word & ~3 == trustlet.handle
        assert not word.decode(host.word)["SecureProcess"] and host.word == host.handle != 0
        assert trustlet.trustlet_id is None
    else:  # SecurePid: an enclave host cannot be told apart before 1709
        assert trustlet.word == trustlet.handle and (host.word, host.handle) == (0, 0)
        assert (trustlet.trustlet_id, normal.trustlet_id) == (4, 0)


def test_sessions_alone_thread_their_members():
    kernel, machine = context("builtin")
    specs = [ProcessSpec(name=f"p{i}", pid=8 + 4 * i, ppid=4, session=i % 2) for i in range(5)]
    eprocesses = {spec.pid: 0xFFFF_A000_0000_0000 + 0x1000 * i for i, spec in enumerate(specs)}
    sessions = create_sessions(kernel, specs, eprocesses)
    assert sorted(sessions.spaces) == [0, 1]
    reader = Reader(kernel, machine)
    links = kernel.layout.offset("_EPROCESS", "SessionProcessLinks")
    for session_id, space in sessions.spaces.items():
        members = [s.pid for s in specs if s.session == session_id]
        assert reader.field("_MM_SESSION_SPACE", space, "SessionId") == session_id
        assert reader.field("_MM_SESSION_SPACE", space, "ReferenceCount") == len(members)
        head = space + kernel.layout.offset("_MM_SESSION_SPACE", "ProcessList")
        assert reader.u(head) == eprocesses[members[0]] + links
        walked, at = [], reader.u(head)
        while at != head:
            pid = next(p for p, e in eprocesses.items() if e + links == at)
            walked.append(pid)
            at = sessions.links[pid][0]
        assert walked == members


def test_objects_alone_carry_an_encoded_type_index_and_their_pool_tag():
    kernel, machine = context("builtin")
    reader = Reader(kernel, machine)
    body = create_object(kernel, "Process", 0x40, headers=("QUOTA_INFO",), creator_pid=8)
    header = body - kernel.layout.offset("_OBJECT_HEADER", "Body")
    encoded = reader.field("_OBJECT_HEADER", header, "TypeIndex")
    index = encoded ^ kernel.cookie ^ (header >> 8 & 0xFF)  # ObGetObjectType's decoding
    assert OBJECT_TYPES[index - 2] == "Process"
    quota = kernel.layout.size("_OBJECT_HEADER_QUOTA_INFO")
    assert reader.read(header - quota - kernel.nonpaged.header_size + 4, 4) == b"Proc"
    name = pool_string(kernel, "abc")
    assert reader.read(name, 8) == "abc\0".encode("utf-16-le")
    with pytest.raises(SymbolError, match="_OBJECT_HEADER_NOPE"):
        create_object(kernel, "Process", 0x40, headers=("NOPE",))


def test_a_vad_tree_alone_is_a_balanced_search_tree():
    kernel, machine = context("builtin")
    reader = Reader(kernel, machine)
    regions = [RegionSpec(0x10000 * (i + 1), 1, "PAGE_READWRITE") for i in range(7)]
    built = [BuiltRegion(spec=r, vad=create_vad(kernel, r, PRIVATE_TAG, 0), tag=PRIVATE_TAG,
                         pfns=[]) for r in reversed(regions)]
    root = link_vad_tree(kernel, built)

    def walk(node: int, depth: int = 0) -> list[tuple[int, int]]:
        if not node:
            return []
        return (walk(reader.field("_MMVAD_SHORT", node, "VadNode.Left"), depth + 1)
                + [(reader.field("_MMVAD_SHORT", node, "StartingVpn") << 12, depth)]
                + walk(reader.field("_MMVAD_SHORT", node, "VadNode.Right"), depth + 1))

    order = walk(root)
    assert [start for start, _ in order] == [r.start for r in regions]
    assert max(depth for _, depth in order) == 2  # seven nodes, three levels
    assert reader.field("_MMVAD_SHORT", root, "u.VadFlags.PrivateMemory") == 1


def test_frame_runs_are_maximal():
    assert list(frame_runs([5, 6, 7, 9, 10, 3])) == [(5, 3), (9, 2), (3, 1)]
    assert list(frame_runs(range(8, 12))) == [(8, 4)]
    assert list(frame_runs([])) == [] and list(frame_runs(range(0))) == []


def test_free_frames_fill_to_the_fraction_and_stay_unmapped():
    kernel, machine = context("builtin", memory=16 << 20)
    filled = fill_free_frames(kernel, 0.5)
    total = machine.memory.frame_count
    assert filled and sum(end - start for start, end in kernel.standby_frames) == filled
    free = sum(end - start for start, end, kind in machine.memory.frame_runs(0, total)
               if kind == "free")
    assert free <= total // 2 + 1
