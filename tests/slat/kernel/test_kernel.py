"""The synthetic kernel: what it writes where, read back by name from the same symbol table,
with PE, pool and object decoding done independently of the kernel's own code."""

from __future__ import annotations

import hashlib

import pefile
import pytest
from kernel_reader import PROFILES, Reader, build, symbols

from iumdump.errors import ScenarioError, SymbolError
from iumdump.isf import SymbolTable
from iumdump.slat import scenario as scenarios
from iumdump.slat.kernel import KernelContext
from iumdump.slat.kernel import manifest as M
from iumdump.slat.kernel.constants import KUSER_SHARED_DATA_USER, LOW_STUB
from iumdump.slat.kernel.kernel_space import KUSER_SHARED_DATA_KERNEL
from iumdump.slat.machine import SlatMachine
from iumdump.slat.memory import GuestPhysicalMemory
from iumdump.slat.profile import builtin_symbol_table
from iumdump.slat.synth import synthesize
from iumdump.structs.paging import EXECUTE_DISABLE, READ_WRITE, USER

def _used(profile: str) -> tuple[set, set]:
    used, types = set(), set()
    for scenario in ("credential-guard", "adversarial"):
        kernel, _, _ = build(profile, scenario)
        used |= kernel.layout.used
        types |= kernel.layout.used_types
    return used, types


@pytest.mark.parametrize("profile", PROFILES)
def test_the_kernel_uses_only_listed_fields(profile):
    """KERNEL_FIELDS_USED is what the built-in profile must provide: every field the kernel
    resolves is listed; what a layout lacks is only ever an optional field."""
    used, types = _used(profile)
    table = symbols(profile)
    assert used <= set(M.KERNEL_FIELDS_USED)
    assert {f for f in used if not table.has_member(*f)} <= set(M.KERNEL_FIELDS_OPTIONAL)
    assert types <= set(M.KERNEL_TYPES_USED)
    assert {t for t in M.KERNEL_TYPES_USED if not table.has_type(t)} <= set(M.KERNEL_TYPES_OPTIONAL)


def test_every_listed_field_is_used_by_some_layout():
    used = set()
    for profile in PROFILES:  # skips unless both real symbol tables are there
        used |= _used(profile)[0]
    assert set(M.KERNEL_FIELDS_USED) - used == set()


def test_builtin_profile_has_what_the_kernel_uses_where_19041_does():
    builtin, real = symbols("builtin"), symbols("19041")
    for type_name, path in M.KERNEL_FIELDS_USED + M.VOLATILITY_FIELDS_NEEDED:
        if real.has_member(type_name, path):
            assert builtin.member(type_name, path).offset == real.member(type_name, path).offset, (
                type_name, path)
    for name in M.KERNEL_SYMBOLS_USED:
        assert builtin.has_symbol(name) == real.has_symbol(name), name


@pytest.mark.parametrize("profile", PROFILES)
def test_pe_image_carries_the_symbol_tables_pdb_identity(profile):
    kernel, built, machine = build(profile)
    reader = Reader(kernel, machine)
    header = reader.read(built.base, 0x1000)
    pe = pefile.PE(data=header, fast_load=True)
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DEBUG"]])
    assert pe.FILE_HEADER.Machine == 0x8664 and pe.OPTIONAL_HEADER.Magic == 0x20B
    assert pe.OPTIONAL_HEADER.ImageBase == built.base and built.base % (2 << 20) == 0
    assert pe.OPTIONAL_HEADER.SizeOfImage == built.image_size
    table = symbols(profile)
    highest = max(s["address"] for s in table.data["symbols"].values() if "address" in s)
    assert max(s.VirtualAddress + s.Misc_VirtualSize for s in pe.sections) > highest
    (debug,) = pe.DIRECTORY_ENTRY_DEBUG
    codeview = debug.entry
    assert codeview.CvSignature == b"RSDS"
    assert codeview.Signature_String[:32] == table.guid  # as Volatility's pdbutil reads it
    assert codeview.Age == table.age
    assert codeview.PdbFileName.rstrip(b"\0") == b"ntkrnlmp.pdb"


@pytest.mark.parametrize("profile", PROFILES)
def test_processes_sit_in_proc_pool_blocks_with_decodable_object_headers(profile):
    kernel, built, machine = build(profile)
    reader = Reader(kernel, machine)
    table = reader.symbols
    cookie = reader.u(kernel.symbol_address("ObHeaderCookie"), 1)
    type_table = kernel.symbol_address("ObTypeIndexTable")
    body = table.member("_OBJECT_HEADER", "Body").offset
    header_size = table.size("_POOL_HEADER") if table.has_type("_POOL_HEADER") else 0x10
    for process in built.processes:
        header = process.eprocess - body
        index = (reader.field("_OBJECT_HEADER", header, "TypeIndex") ^ cookie
                 ^ (header >> 8 & 0xFF))
        type_object = reader.u(type_table + 8 * index)
        name = table.member("_OBJECT_TYPE", "Name")
        length = reader.u(type_object + name.offset, 2)
        buffer = reader.u(type_object + name.offset + table.member("_UNICODE_STRING", "Buffer").offset)
        assert reader.read(buffer, length).decode("utf-16-le") == "Process"
        info_mask = reader.field("_OBJECT_HEADER", header, "InfoMask")
        optional = sum(table.size(f"_OBJECT_HEADER_{h}") for bit, h in enumerate(
            ("CREATOR_INFO", "NAME_INFO", "HANDLE_INFO", "QUOTA_INFO")) if info_mask >> bit & 1)
        pool = header - optional - header_size
        assert reader.read(pool + 4, 4) == b"Proc"
        block_size = reader.u(pool + 2, 1)
        assert block_size * 16 >= header_size + optional + body + table.size("_EPROCESS")
        assert reader.u(pool + 3, 1) % 2 == 0 and reader.u(pool + 3, 1) > 0  # non-paged
        assert 0 <= reader.field("_OBJECT_HEADER", header, "PointerCount") < 0x1000000


@pytest.mark.parametrize("profile", PROFILES)
def test_secure_state_is_encoded_as_the_layout_defines(profile):
    kernel, built, machine = build(profile)
    reader = Reader(kernel, machine)
    by_name = {p.spec.name: p for p in built.processes}
    lsaiso, sgrm, lsass = by_name["LsaIso.exe"], by_name["SgrmBroker.exe"], by_name["lsass.exe"]
    if reader.symbols.has_member("_EPROCESS", "Pcb.SecureState"):
        word = lambda p: reader.field("_EPROCESS", p.eprocess, "Pcb.SecureState.SecureHandle")  # noqa: E731
        bit = lambda p: reader.field("_EPROCESS", p.eprocess,  # noqa: E731
                                     "Pcb.SecureState.Flags.SecureProcess")
        assert bit(lsaiso) == 1 and word(lsaiso) & ~3 == lsaiso.secure_handle != 0
        assert bit(sgrm) == 0 and word(sgrm) == sgrm.secure_handle != 0
        assert word(lsass) == 0
        assert (sgrm.secure, lsaiso.secure) == (False, True)
    else:
        pid = lambda p: reader.field("_EPROCESS", p.eprocess, "Pcb.SecurePid")  # noqa: E731
        assert pid(lsaiso) == lsaiso.secure_handle != 0
        assert pid(sgrm) == 0 == sgrm.secure_handle and not sgrm.secure  # no enclave hosts here
        assert reader.field("_EPROCESS", lsaiso.eprocess, "TrustletIdentity") == 1
        assert reader.field("_EPROCESS", lsass.eprocess, "TrustletIdentity") == 0
    assert reader.field("_EPROCESS", lsass.eprocess, "Protection.Level") == 0x41
    assert reader.field("_EPROCESS", by_name["Registry"].eprocess, "Minimal") == 1


def test_trustlet_pages_belong_to_vtl1_and_the_rest_to_vtl0():
    _, built, machine = build("builtin")
    refused = machine.refused_frames(0)
    for process in built.processes:
        for region in process.regions:
            for pfn in region.pfns:
                assert (pfn in refused) is (region.spec.content == "secure")
    start, end = built.secure_kernel_frames
    assert all(pfn in refused for pfn in range(start, end))
    trustlet = next(p for p in built.processes if p.spec.name == "LsaIso.exe")
    frame = trustlet.regions[0].pfns[0]
    assert any(machine.host_view().read_page(frame))


def test_vad_tree_is_a_search_tree_with_parent_links():
    kernel, built, machine = build("builtin")
    reader = Reader(kernel, machine)
    for process in built.processes:
        if not process.regions:
            continue
        root = reader.field("_EPROCESS", process.eprocess, "VadRoot.Root")
        starts = []

        def walk(node, parent):
            if not node:
                return
            assert reader.field("_MMVAD_SHORT", node, "VadNode.ParentValue") & ~3 == parent
            walk(reader.field("_MMVAD_SHORT", node, "VadNode.Left"), node)
            low = reader.field("_MMVAD_SHORT", node, "StartingVpn")
            high = reader.field("_MMVAD_SHORT", node, "StartingVpnHigh")
            starts.append((high << 32 | low) << 12)
            assert reader.read(node - 12, 4) in (b"VadS", b"Vad ")  # the pool tag Volatility reads
            walk(reader.field("_MMVAD_SHORT", node, "VadNode.Right"), node)

        walk(root, 0)
        assert starts == sorted(r.spec.start for r in process.regions)


def test_kuser_shared_data_is_one_frame_at_both_addresses():
    kernel, built, machine = build("builtin")
    system = kernel.system_space
    assert system.translate(KUSER_SHARED_DATA_KERNEL) == system.translate(KUSER_SHARED_DATA_USER)
    # Volatility's Intel64LayerCheck reads NtMajorVersion at its fixed offset 0x26C.
    assert int.from_bytes(machine.memory.read(system.translate(KUSER_SHARED_DATA_KERNEL) + 0x26C,
                                              4), "little") == 10
    notepad = next(p for p in built.processes if p.spec.name == "notepad.exe")
    assert notepad.space.translate(KUSER_SHARED_DATA_USER) == system.translate(
        KUSER_SHARED_DATA_KERNEL)


def test_kuser_shared_data_is_mapped_into_every_process_trustlets_included():
    """Regression: trustlets were built without the shared user data page; NT maps it read-only
    and no-execute into every process it creates (MiInsertSharedUserPageVad, ReactOS
    procsup.c), LsaIso.exe included, and real Credential Guard dumps show it there."""
    kernel, built, _machine = build("builtin")
    kuser = kernel.system_space.translate(KUSER_SHARED_DATA_KERNEL)
    with_space = [p for p in built.processes if p.regions]
    assert any(p.secure for p in with_space)
    for process in with_space:
        (leaf,) = list(process.space.leaves(KUSER_SHARED_DATA_USER,
                                            KUSER_SHARED_DATA_USER + 0x1000))
        assert leaf.pa == kuser, process.spec.name
        assert leaf.entry & USER and not leaf.entry & READ_WRITE
        assert leaf.entry & EXECUTE_DISABLE
        (region,) = [r for r in process.regions if r.spec.start == KUSER_SHARED_DATA_USER]
        assert (region.spec.pages, region.spec.protection, region.tag) == \
            (1, "PAGE_READONLY", "VadS")


def test_truth_counts_the_shared_page_apart(synth_dump):
    truth = synth_dump("credential-guard", "crash-bitmap", "builtin").truth
    lsaiso = next(p for p in truth["processes"] if p["name"] == "LsaIso.exe")["pages"]
    (shared,) = [r for r in lsaiso["regions"] if r["shared"]]
    assert (shared["start"], shared["readable"], shared["content"]) == (0x7FFE0000, 1, "shared")
    assert lsaiso["shared"] == 1 and lsaiso["readable"] == 0
    assert lsaiso["mapped"] == sum(r["pages"] for r in lsaiso["regions"] if not r["shared"])


def test_memory_compression_is_named_as_windows_names_it(synth_dump):
    for scenario in ("credential-guard", "no-vbs", "adversarial"):
        names = {p["name"] for p in synth_dump(scenario, "raw", "builtin").truth["processes"]}
        assert "MemCompression" in names and not any(n.startswith("Memory C") for n in names)


def test_low_stub_names_the_system_page_map_and_a_kernel_address():
    _, built, machine = build("builtin")
    stub = machine.memory.read(LOW_STUB, 0x100)
    # volatility3.framework.constants.windows: JMP_AND_COMPLETION_SIGNATURE under its mask.
    assert int.from_bytes(stub[:8], "little") & 0xFFFFFFFFFFFF00FF == 0x00000001000600E9
    assert int.from_bytes(stub[0xA0:0xA8], "little") == built.dtb
    target = int.from_bytes(stub[0x70:0x78], "little")
    assert built.base <= target < built.base + 0x2000000 and target & 3 == 0


@pytest.mark.parametrize("fmt,fate", [("raw", "zero_filled"), ("crash-full", "zero_filled"),
                                      ("crash-bitmap", "absent"), ("host", "readable")])
def test_truth_records_what_each_format_did_to_trustlet_pages(synth_dump, fmt, fate):
    truth = synth_dump("credential-guard", fmt, "builtin").truth
    lsaiso = next(p for p in truth["processes"] if p["name"] == "LsaIso.exe")
    pages = lsaiso["pages"]
    assert pages["mapped"] == pages[fate] > 0
    assert sum(pages[k] for k in ("absent", "zero_filled", "readable")) == pages["mapped"]
    notepad = next(p for p in truth["processes"] if p["name"] == "notepad.exe")["pages"]
    zero = [r for r in notepad["regions"] if r["content"] == "zero"]
    assert zero and all(r["zero_filled"] == r["pages"] for r in zero)
    assert notepad["readable"] == notepad["mapped"] - sum(r["pages"] for r in zero)


@pytest.mark.parametrize("profile", PROFILES)
def test_truth_flags_and_verdicts_follow_the_layout(synth_dump, profile):
    truth = synth_dump("adversarial", "crash-bitmap", profile).truth
    by_pid = {p["pid"]: p for p in truth["processes"]}
    secure_state = truth["kernel"]["has_secure_state"]
    assert by_pid[712]["verdict"] == "secure" and by_pid[712]["flags"]["IsSecureProcess"]
    assert by_pid[6240]["verdict"] == "masquerade" and not by_pid[6240]["secure"]
    assert by_pid[3312]["verdict"] == ("enclave-host" if secure_state else "normal")
    assert by_pid[3892]["linked"] is False and by_pid[3892]["secure"]
    assert by_pid[724]["protection_text"] == "ProtectedLight/Lsa"
    assert by_pid[4]["protection_text"] == "Protected/WinSystem"
    assert by_pid[5480]["flags"]["IsWow64Process"] and by_pid[6012]["flags"]["IsProcessDeleting"]
    assert by_pid[6148]["flags"]["IsCrossSessionCreate"]
    assert by_pid[6600]["flags"]["IsSubsystemProcess"]
    assert by_pid[7004]["flags"]["IsFrozen"] and by_pid[7004]["flags"]["IsBackground"]
    for process in truth["processes"]:
        assert process["flags"]["IsStronglyNamed"] is None
        assert process["flags"]["IsTrustedApp"] is None  # no 24H2 layout here
        assert (process["trustlet_id"] is None) is not truth["kernel"]["has_trustlet_identity"]
    if truth["kernel"]["has_trustlet_identity"]:
        assert by_pid[712]["trustlet_id"] == 1 and by_pid[3892]["trustlet_id"] == 4


def test_same_seed_same_bytes_other_seed_other_layout(tmp_path):
    first = synthesize("credential-guard", tmp_path / "a", fmt="raw", memory_size="16M",
                       progress=False)
    again = synthesize("credential-guard", tmp_path / "b", fmt="raw", memory_size="16M",
                       progress=False)
    other = synthesize("credential-guard", tmp_path / "c", fmt="raw", memory_size="16M", seed=7,
                       progress=False)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(first.dump_path) == digest(again.dump_path)
    assert first.truth == again.truth
    assert other.truth["kernel"]["base"] != first.truth["kernel"]["base"]
    assert digest(other.dump_path) != digest(first.dump_path)


def test_a_tiny_fleet_is_dense_with_a_large_mapped_pool(synth_dump, volatility):
    result = synth_dump("fleet-large", "crash-bitmap", "builtin", memory="64M",
                        params={"processes": 40, "trustlet_pages": 512, "pool_mb": 8,
                                "process_pages": 16, "fill": 0.85})
    truth = result.truth
    assert len(truth["processes"]) == 19 + 40
    assert result.kernel.pool_large_pages == 4
    lsaiso = next(p for p in truth["processes"] if p["name"] == "LsaIso.exe")
    assert lsaiso["pages"]["absent"] == lsaiso["pages"]["mapped"] >= 512
    stored = result.write.pages_written
    assert stored >= 0.8 * (64 << 20) // 4096 - lsaiso["pages"]["mapped"] - 300
    listed = volatility.run(result, "windows.pslist.PsList")
    assert sorted(listed.column("PID")) == sorted(p["pid"] for p in truth["processes"])
    scanned = volatility.run(result, "windows.psscan.PsScan")
    assert len(scanned.rows) == len(truth["processes"])


def test_a_symbol_table_without_a_required_symbol_is_refused():
    data = builtin_symbol_table().data
    del data["symbols"]["KdDebuggerDataBlock"]
    machine = SlatMachine(GuestPhysicalMemory(16 << 20))
    loaded = scenarios.load("credential-guard")
    with pytest.raises(SymbolError, match="KdDebuggerDataBlock"):
        KernelContext(machine, SymbolTable(data), seed=0, processors=2,
                      boot_time=loaded.boot_time, system_time=loaded.system_time, vbs=True)


def test_a_machine_too_small_for_its_scenario_is_a_scenario_error():
    with pytest.raises(ScenarioError, match="too small|do not fit"):
        synthesize("fleet-large", "/nonexistent-never-written", memory_size="16M",
                   params={"processes": 4000, "process_pages": 64}, progress=False)


@pytest.mark.parametrize("text,message", [
    ('name = "x"\nvbs = true\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "a"\npid = 4\n',
     "pid 4 is used by both"),
    ('name = "x"\nvbs = true\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "a"\npid = 7\n',
     "not a positive multiple of 4"),
    ('name = "x"\nvbs = false\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "t"\npid = 8\nsecure = "trustlet"\n',
     "secure but the scenario has vbs = false"),
    ('name = "x"\nvbs = true\ncolour = 1\n', "unknown key 'colour'"),
    ('name = "x"\nvbs = true\nmemory = "12Q"\n', "not a number with an optional K/M/G/T suffix"),
    ('name = "x"\nvbs = \n', "not valid TOML"),
    ('name = "x"\nvbs = true\n[[process]]\nname = "a"\npid = 8\n', "no System process"),
    ('name = "x"\nvbs = true\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "a"\n'
     'pid = 8\n[[process.region]]\nstart = 0x10000\npages = 2\ncontent = "gold"\n', "content 'gold'"),
    ('name = "x"\nvbs = true\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "a"\n'
     'pid = 8\ncreated = 100\nexited = 50\n', "exited 50 s must lie between created"),
    ('name = "x"\nvbs = true\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "a"\n'
     'pid = 8\nexited = 99999\n', "and system_time"),
    ('name = "x"\nvbs = true\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "a"\n'
     'pid = 8\nexited = 100\ndeleting = false\n', "leave out deleting = false"),
    ('name = "x"\nvbs = true\n[[process]]\nname = "System"\npid = 4\n[[process]]\nname = "a"\n'
     'pid = 8\ncreated = 99999\n', "is not before system_time"),
])
def test_bad_scenarios_are_one_line_scenario_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        scenarios.load(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_sizes_parse_with_binary_suffixes():
    assert scenarios.parse_size("64M") == 64 << 20
    assert scenarios.parse_size("8G") == 8 << 30
    assert scenarios.parse_size("1GiB") == 1 << 30
    assert scenarios.parse_size(4096) == 4096
    with pytest.raises(ScenarioError):
        scenarios.parse_size("100")


@pytest.mark.parametrize("fmt", ["crash-live", "crash-kernel"])
def test_a_live_kernel_dump_holds_no_process_user_page(synth_dump, fmt):
    """crash-live keeps kernel memory only, and so does crash-kernel (a kernel memory dump
    written at a bug check): every process's own user pages are absent (the shared user data
    page, a kernel page, stays readable)."""
    truth = synth_dump("credential-guard", fmt, "builtin").truth
    # (System's only user page is the shared one: it has pages but none of its own.)
    with_pages = [p for p in truth["processes"] if p["pages"] and p["pages"]["mapped"]]
    assert with_pages
    for process in with_pages:
        pages = process["pages"]
        assert pages["absent"] == pages["mapped"] > 0, process["name"]
        assert all(r["readable"] == 1 for r in pages["regions"] if r["shared"])


def test_an_exited_process_is_deleting_and_a_deleting_one_has_exited():
    """Issue 13: ExitTime comes from the scenario (``exited``, seconds after boot); a process that
    has exited has ProcessDelete set, and a deleting process without ``exited`` exited just
    before the dump was taken."""
    loaded = scenarios.from_dict({
        "name": "x", "vbs": True, "process": [
            {"name": "System", "pid": 4},
            {"name": "a.exe", "pid": 8, "created": 100, "exited": 250.5},
            {"name": "b.exe", "pid": 12, "created": 100, "deleting": True},
            {"name": "c.exe", "pid": 16, "created": 100}]})
    exited, deleting, running = (loaded.process(pid) for pid in (8, 12, 16))
    assert (exited.exited, exited.deleting) == (250.5, True)
    lifetime = (loaded.system_time - loaded.boot_time).total_seconds()
    assert (deleting.exited, deleting.deleting) == (lifetime - 3, True)
    assert (running.exited, running.deleting) == (None, False)
