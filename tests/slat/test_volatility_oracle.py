"""Unmodified Volatility 3 is the oracle of the synthetic kernel.

(DumpType 6 — the live kernel dump, and the kernel memory dump written at a bug check — which
Volatility 3 2.28 refuses, is read through iumdump's layer, registered as ``vol -p`` registers it:
the plugins are Volatility's own, unmodified.)

For every oracle scenario × acquisition format × profile (built-in, and the real 14393 and 19041
symbol tables when ../shared/isf has them): windows.info finds the kernel the truth describes,
windows.pslist lists exactly the linked processes, windows.psscan finds every process (the
unlinked one too) and nothing else, windows.vadinfo lists each trustlet's regions, and
windows.memmap walks a trustlet's page tables to exactly the pages the format kept.
"""

from __future__ import annotations

import datetime as _dt

import pytest
from markers import dump_params, quick_only

from iumdump.slat.writers import BITMAP_FORMATS, FORMATS

SCENARIOS = ("credential-guard", "no-vbs", "adversarial")
PROFILES = ("builtin", "14393", "19041")  # the real ones skip when ../shared/isf lacks them
MATRIX = [(s, f, p) for s in SCENARIOS for f in FORMATS for p in PROFILES]
USER_END = 0x0000_8000_0000_0000


@pytest.fixture(params=dump_params(MATRIX))
def dump(request, synth_dump):
    scenario, fmt, profile = request.param
    return synth_dump(scenario, fmt, profile)


def _linked(truth):
    return [p for p in truth["processes"] if p["linked"]]


def _trustlets(truth):
    """Secure processes with user pages that pslist (and so vadinfo/memmap) can reach."""
    return [p for p in truth["processes"] if p["secure"] and p["pages"] and p["linked"]]


def test_info_finds_the_kernel_the_truth_describes(dump, volatility):
    truth = dump.truth
    kernel = truth["kernel"]
    rows = {row["Variable"]: row["Value"]
            for row in volatility.run(dump, "windows.info.Info").rows}
    assert int(rows["Kernel Base"], 16) == kernel["kernel_virtual_offset"]
    assert int(rows["DTB"], 16) == kernel["dtb"]
    assert rows["Symbols"].endswith(f"{kernel['pdb_guid']}-{kernel['pdb_age']}.json.xz")
    assert int(rows["KdDebuggerDataBlock"], 16) == kernel["kdbg"] & 0xFFFF_FFFF_FFFF
    assert rows["NTBuildLab"].startswith(f"{kernel['build']}.")
    assert rows["Major/Minor"] == f"15.{kernel['build']}"
    assert rows["MachineType"] == "34404"
    assert rows["NtMajorVersion"] == "10" and rows["NtMinorVersion"] == "0"
    assert rows["NtProductType"] == "NtProductWinNt"
    assert rows["NtSystemRoot"] == "C:\\Windows"
    assert rows["KeNumberProcessors"] == "2"
    assert rows["PE Machine"] == "34404"
    assert rows["PE MajorOperatingSystemVersion"] == "10"
    assert rows["SystemTime"] == "2024-05-14 09:41:27+00:00"


def test_pslist_lists_exactly_the_linked_processes(dump, volatility):
    run = volatility.run(dump, "windows.pslist.PsList")
    listed = {row["PID"]: row for row in run.rows}
    expected = {p["pid"]: p for p in _linked(dump.truth)}
    assert sorted(listed) == sorted(expected)
    assert len(run.rows) == len(listed)  # no process twice
    for pid, process in expected.items():
        row = listed[pid]
        assert row["PPID"] == process["ppid"]
        assert row["ImageFileName"] == process["name"]
        assert row["Offset(V)"] == process["offset"]
        assert row["Threads"] == process["threads"]
        assert row["Wow64"] is process["flags"]["IsWow64Process"]
        if process["session"] is None:
            assert not isinstance(row["SessionId"], int)
        else:
            assert row["SessionId"] == process["session"]
        assert isinstance(row["CreateTime"], _dt.datetime)
        assert isinstance(row["ExitTime"], _dt.datetime) is process["flags"]["IsProcessDeleting"]


def test_psscan_finds_every_process_and_nothing_else(dump, volatility):
    run = volatility.run(dump, "windows.psscan.PsScan")
    found = sorted((row["PID"], row["Offset(V)"], row["ImageFileName"]) for row in run.rows)
    expected = sorted((p["pid"], p["offset"], p["name"]) for p in dump.truth["processes"])
    assert found == expected


def _utc(moment) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(moment, _dt.datetime) else None


def test_pstree_audit_and_times_are_the_truth(dump, volatility):
    """windows.pstree's Audit column is SeAuditProcessCreationInfo.ImageFileName: the NT device
    path of each image, the bare name of a minimal process, nothing for System; CreateTime and
    ExitTime are the scenario's, to the second."""
    from volatility3.framework import renderers

    rows = {row["PID"]: row for row in volatility.run(dump, "windows.pstree.PsTree").rows}
    expected = {p["pid"]: p for p in _linked(dump.truth)}
    assert sorted(rows) == sorted(expected)
    for pid, process in expected.items():
        row = rows[pid]
        if process["image_path"] is None:
            assert isinstance(row["Audit"], renderers.NotAvailableValue), process["name"]
        else:
            assert row["Audit"] == process["image_path"]
        assert (_utc(row["CreateTime"]), _utc(row["ExitTime"])) == \
            (process["create_time"], process["exit_time"]), process["name"]


def test_vadinfo_of_each_trustlet_lists_the_truth_regions(dump, volatility):
    trustlets = _trustlets(dump.truth)
    if not trustlets:
        assert dump.scenario == "no-vbs"
        return
    for trustlet in trustlets:
        run = volatility.run(dump, "windows.vadinfo.VadInfo", pid=[trustlet["pid"]])
        listed = sorted((row["Start VPN"], row["End VPN"], row["Tag"], row["Protection"])
                        for row in run.rows)
        expected = sorted((r["start"], r["end"], r["tag"], r["protection"])
                          for r in trustlet["pages"]["regions"])
        assert listed == expected
        assert {row["PID"] for row in run.rows} == {trustlet["pid"]}
        images = [row["File"] for row in run.rows if row["Tag"] == "Vad "]
        expected = f"\\Windows\\System32\\{trustlet['image_name']}"
        if not trustlet["image_path"].endswith(expected):  # a trustlet run from elsewhere
            expected = trustlet["image_path"].removeprefix("\\Device\\HarddiskVolume3")
        assert images == [expected]


@pytest.mark.parametrize("fmt, profile", quick_only(
    [(fmt, profile) for fmt in FORMATS for profile in PROFILES], ("crash-bitmap", "builtin")))
def test_memmap_of_the_trustlet_maps_the_pages_the_format_kept(synth_dump, volatility, fmt,
                                                              profile):
    """memmap walks the trustlet's page tables through Volatility's layer; a page whose frame
    the dump left out (crash-bitmap) is not mapped for it, every other mapped page is."""
    dump = synth_dump("credential-guard", fmt, profile)
    trustlet = _trustlets(dump.truth)[0]
    run = volatility.run(dump, "windows.memmap.Memmap", pid=trustlet["pid"])
    user_pages = set()
    for row in run.rows:
        if row["Virtual"] < USER_END:
            user_pages.update(range(row["Virtual"], row["Virtual"] + row["Size"], 0x1000))
    kept = set()
    for region in trustlet["pages"]["regions"]:
        if region["absent"] == 0:
            kept.update(range(region["start"], region["end"] + 1, 0x1000))
        else:
            assert region["absent"] == region["pages"]
    assert user_pages == kept
    # Bitmap dumps leave refused frames out; a kernel-only one (live, or written at a bug check)
    # leaves out all user pages.
    expected_absent = trustlet["pages"]["mapped"] if fmt in BITMAP_FORMATS else 0
    assert trustlet["pages"]["absent"] == expected_absent


@pytest.mark.parametrize("profile", quick_only(PROFILES, "builtin"))
def test_both_kernel_finding_methods_find_the_kernel(synth_dump, volatility, profile):
    """The low stub (what Volatility uses on real Windows 10) and the KDBG scan each lead
    Volatility's own KernelPDBScanner to the kernel base and its PDB."""
    from volatility3.framework.automagic import pdbscan

    dump = synth_dump("credential-guard", "raw", profile)
    volatility.run(dump, "windows.pslist.PsList")
    context = volatility.context(dump)
    layer = next(layer for layer in context.layers.values()
                 if layer.__class__.__name__.startswith("WindowsIntel"))
    scanner = pdbscan.KernelPDBScanner(context, "iumdump_test.pdbscan")
    for method in (scanner.method_low_stub_offset, scanner.method_kdbg_offset):
        found = method(context, layer)
        assert found is not None, method.__name__
        _layer_name, base, kernel = found
        assert base == dump.truth["kernel"]["kernel_virtual_offset"], method.__name__
        assert (kernel["GUID"], kernel["age"], kernel["pdb_name"]) == (
            dump.truth["kernel"]["pdb_guid"], dump.truth["kernel"]["pdb_age"], "ntkrnlmp.pdb")


@pytest.mark.parametrize("profile", quick_only(PROFILES, "builtin"))
def test_volatility_reads_the_secure_state_where_the_truth_put_it(synth_dump, volatility,
                                                                  profile):
    """Through Volatility's object model (fields by name from the same symbol table): the
    secure-state word, protection byte and flag bits of every process of the adversarial
    scenario, found by pool scanning."""
    from volatility3.plugins.windows import psscan

    dump = synth_dump("adversarial", "crash-full", profile)
    run = volatility.run(dump, "windows.psscan.PsScan")
    assert run.rows
    context = volatility.context(dump)
    kernel = volatility.kernel_module(dump)
    truth = {p["offset"]: p for p in dump.truth["processes"]}
    seen = set()
    for proc in psscan.PsScan.scan_processes(context, kernel):
        process = truth[proc.vol.offset]
        seen.add(process["pid"])
        assert proc.Protection.Level == process["protection"]
        if dump.truth["kernel"]["has_secure_state"]:
            word = int(proc.Pcb.SecureState.SecureHandle)
            assert bool(word & 1) is process["secure"]
            assert word & ~3 == process["secure_handle"]
        else:
            assert int(proc.Pcb.SecurePid) == process["secure_handle"]
            assert bool(proc.Pcb.SecurePid) is process["secure"]
        if dump.truth["kernel"]["has_trustlet_identity"]:
            assert int(proc.TrustletIdentity) == process["trustlet_id"]
        flags = process["flags"]
        assert bool(proc.ProcessDelete) is flags["IsProcessDeleting"]
        assert bool(proc.CrossSessionCreate) is flags["IsCrossSessionCreate"]
        assert bool(proc.Pcb.DeepFreeze) is flags["IsFrozen"]
        assert bool(proc.SubsystemProcess) is flags["IsSubsystemProcess"]
        assert bool(proc.Minimal) is process["minimal"]
        assert bool(proc.WoW64Process) is flags["IsWow64Process"]
        if flags["IsBackground"] is not None:
            assert bool(proc.Background) is flags["IsBackground"]
    assert seen == {p["pid"] for p in dump.truth["processes"]}


@pytest.mark.parametrize("profile", quick_only(PROFILES, "builtin"))
def test_the_shared_user_data_page_is_where_volatility_looks_for_it(synth_dump, volatility,
                                                                    profile):
    """The emulator (slat.kernel) and the analyzer (analysis.pages, which labels the page in
    every process and never counts it) each name KUSER_SHARED_DATA's two addresses. Volatility
    names them in its own code: windows.info reads the structure at its kernel address, and its
    Windows layer check expects the user alias at 0x7FFE0000 on the kernel's frame. Through
    Volatility's layers each process with user pages maps the alias to that frame."""
    from volatility3.framework.automagic.windows import Intel32LayerCheck
    from volatility3.plugins.windows import info, pslist

    from iumdump.analysis.pages import KI_USER_SHARED_DATA, MM_SHARED_USER_DATA_VA
    from iumdump.slat.kernel.constants import KUSER_SHARED_DATA_USER
    from iumdump.slat.kernel.kernel_space import KUSER_SHARED_DATA_KERNEL

    dump = synth_dump("credential-guard", "crash-full", profile)
    context = volatility.context(dump)
    kernel = volatility.kernel_module(dump)
    kernel_layer = context.layers[context.modules[kernel].layer_name]
    kuser = info.Info.get_kuser_structure(context, kernel)
    assert KI_USER_SHARED_DATA == KUSER_SHARED_DATA_KERNEL
    # Volatility keeps offsets without their sign extension (48 bits).
    assert kuser.vol.offset == KI_USER_SHARED_DATA & kernel_layer.address_mask
    assert kuser.NtMajorVersion == 10
    assert Intel32LayerCheck.KUSER_USER_SPACE_ADDR == MM_SHARED_USER_DATA_VA \
        == KUSER_SHARED_DATA_USER
    frame = kernel_layer.translate(KI_USER_SHARED_DATA)[0]
    with_pages = {p["pid"] for p in dump.truth["processes"] if p["pages"] and p["linked"]}
    seen = set()
    for proc in pslist.PsList.list_processes(context, kernel):
        if proc.UniqueProcessId in with_pages:
            layer = context.layers[proc.add_process_layer()]
            assert layer.translate(MM_SHARED_USER_DATA_VA)[0] == frame, proc.UniqueProcessId
            seen.add(int(proc.UniqueProcessId))
    assert seen == with_pages and len(seen) > 1
