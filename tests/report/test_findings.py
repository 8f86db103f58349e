"""Findings from derived processes and page accounting: which kinds, which severity, and what the
message tells an analyst."""

from __future__ import annotations

import dataclasses

import pytest
from report_fixtures import LAYOUT_19041, credential_guard_machine, pages, process

from iumdump.analysis.derive import ControlGroup, ProcessPages, RegionPages, derive_process
from iumdump.analysis.fields import ProcessFields
from iumdump.analysis.findings import (CREDENTIAL_GUARD, ENCLAVE_HOST_KIND, HIGH, INFO, KINDS,
                                       LOW, MASQUERADE_KIND, MEDIUM, PARTIAL_ANALYSIS,
                                       SECURE_STATE_UNKNOWN, SEVERITIES, TRUSTLET,
                                       TRUSTLET_PAGES_INACCESSIBLE, TRUSTLET_PAGES_NOT_CAPTURED,
                                       TRUSTLET_PAGES_READABLE, UNLINKED_PROCESS, VBS_ACTIVE,
                                       count_by_severity, dump_findings, header_findings)
from iumdump.analysis.preflight import summary_signature_text
from iumdump.structs import crashdump


def kinds(findings) -> set[tuple[str, int | None]]:
    return {(f.kind, f.pid) for f in findings}


def test_credential_guard_machine():
    procs, accounting = credential_guard_machine()
    found = dump_findings(procs, accounting, "crash-bitmap")
    assert kinds(found) == {(VBS_ACTIVE, 56), (CREDENTIAL_GUARD, 712), (TRUSTLET, 712),
                            (TRUSTLET_PAGES_INACCESSIBLE, 712), (ENCLAVE_HOST_KIND, 3312)}
    assert {f.severity for f in found} == {INFO}


def test_credential_guard_message_is_a_case_note():
    procs, accounting = credential_guard_machine()
    by_kind = {f.kind: f for f in dump_findings(procs, accounting, "crash-bitmap")}
    assert by_kind[CREDENTIAL_GUARD].message.startswith(
        "LsaIso.exe (PID 712) runs as a trustlet, so Credential Guard is active")
    pages_message = by_kind[TRUSTLET_PAGES_INACCESSIBLE].message
    assert "its 9 mapped user pages are VTL1-protected and absent from this dump by design" \
        in pages_message
    assert "9 left out of the bitmap crash dump" in pages_message
    assert "not memory smear, not tampering" in pages_message


def test_zero_filled_pages_are_explained_as_refused_reads():
    procs, _ = credential_guard_machine()
    lsaiso = procs[2]
    found = dump_findings(procs, {lsaiso.offset: pages(lsaiso, (0x1000_0000, 4, 0, 4, 0))}, "raw")
    message = next(f.message for f in found if f.kind == TRUSTLET_PAGES_INACCESSIBLE)
    assert "4 written as zeros by the acquisition" in message
    assert "left out" not in message


def test_readable_trustlet_pages_are_unexpected():
    procs, _ = credential_guard_machine()
    lsaiso = procs[2]
    found = dump_findings(procs, {lsaiso.offset: pages(lsaiso, (0x1000_0000, 4, 0, 1, 3))}, "raw")
    readable = [f for f in found if f.kind == TRUSTLET_PAGES_READABLE]
    assert [(f.pid, f.severity) for f in readable] == [(712, MEDIUM)]
    assert "3 of its 4 mapped user pages have content" in readable[0].message
    assert "acquired from the host" in readable[0].message
    assert TRUSTLET_PAGES_INACCESSIBLE not in {f.kind for f in found}


def test_masquerade_names_the_genuine_trustlet_and_sorts_first():
    procs, accounting = credential_guard_machine()
    procs.append(process("LsaIso.exe", 6240, ppid=4420))
    found = dump_findings(procs, accounting, "crash-bitmap")
    assert (found[0].kind, found[0].pid, found[0].severity) == (MASQUERADE_KIND, 6240, HIGH)
    assert "The genuine LsaIso.exe in this dump is PID 712." in found[0].message
    assert (TRUSTLET, 6240) not in kinds(found)


def test_masquerade_without_a_genuine_trustlet():
    found = dump_findings([process("lsaiso.EXE", 900)], {}, "raw")
    assert [(f.kind, f.severity) for f in found] == [(MASQUERADE_KIND, HIGH)]
    assert "genuine" not in found[0].message


def test_unlinked_secure_process():
    procs, accounting = credential_guard_machine()
    procs.append(process("BioIso.exe", 3892, secure_state=0x1001, linked=False))
    found = dump_findings(procs, accounting, "crash-bitmap")
    unlinked = [f for f in found if f.kind == UNLINKED_PROCESS]
    assert [(f.pid, f.severity) for f in unlinked] == [(3892, MEDIUM)]
    assert "a secure process, was found by pool scanning" in unlinked[0].message
    assert (TRUSTLET, 3892) in kinds(found)


def test_unknown_enclave_host_is_low():
    found = dump_findings([process("thirdparty.exe", 4000, secure_state=0x5000)], {}, "raw")
    assert [(f.kind, f.severity) for f in found] == [(ENCLAVE_HOST_KIND, LOW)]
    assert "0x5000" in found[0].message


def test_no_vbs_machine_has_no_findings():
    procs = [process("System", 4, ppid=0, protection=0x72), process("lsass.exe", 700)]
    assert dump_findings(procs, {}, "raw") == []


def test_vbs_inferred_from_a_trustlet_when_secure_system_is_missing():
    found = dump_findings([process("vmsp.exe", 800, secure_state=0x3001)], {}, "raw")
    vbs = [f for f in found if f.kind == VBS_ACTIVE]
    assert len(vbs) == 1 and vbs[0].pid == 800
    assert "No Secure System process was listed" in vbs[0].message


def test_unknown_secure_state_and_unreadable_fields():
    proc = process("svchost.exe", 900, unreadable=("secure_state", "protection"))
    found = dump_findings([proc], {}, "raw")
    assert kinds(found) == {(SECURE_STATE_UNKNOWN, 900), (PARTIAL_ANALYSIS, 900)}
    assert {f.severity for f in found} == {LOW}
    partial = next(f for f in found if f.kind == PARTIAL_ANALYSIS)
    assert "protection, secure_state" in partial.message


def test_partial_page_walk_is_said():
    procs, _ = credential_guard_machine()
    lsaiso = procs[2]
    accounting = {lsaiso.offset: pages(lsaiso, (0x1000_0000, 2, 2, 0, 0),
                                       problems=("page table at 0x5000 missing from the dump",))}
    message = next(f.message for f in dump_findings(procs, accounting, "crash-bitmap")
                   if f.kind == TRUSTLET_PAGES_INACCESSIBLE)
    assert "The page walk was partial (page table at 0x5000 missing from the dump)" in message


def test_secure_process_without_pages_gets_no_page_finding():
    procs, _ = credential_guard_machine()
    found = dump_findings(procs, {procs[2].offset: pages(procs[2])}, "crash-bitmap")
    assert not {f.kind for f in found} & {TRUSTLET_PAGES_INACCESSIBLE, TRUSTLET_PAGES_READABLE}


def test_order_and_counts():
    procs, accounting = credential_guard_machine()
    procs += [process("LsaIso.exe", 6240), process("ghost.exe", 7000, linked=False)]
    found = dump_findings(procs, accounting, "crash-bitmap")
    ranks = [SEVERITIES.index(f.severity) for f in found]
    assert ranks == sorted(ranks, reverse=True)
    assert count_by_severity(found) == {"high": 1, "medium": 1, "low": 0, "info": 5}
    assert {f.kind for f in found} <= set(KINDS)


@pytest.mark.parametrize("name", ["<script>x</script>", "a\u202eexe.lsass"])
def test_messages_keep_the_name_as_decoded(name):
    """Findings are data: escaping is the renderers' job, so the message holds the raw name."""
    found = dump_findings([process(name, 10, linked=False)], {}, "raw")
    assert name in found[0].message


def test_masquerade_names_the_field_of_the_build():
    """1507–1703 kernels keep the secure state in Pcb.SecurePid, not in SecureState."""
    layout = dataclasses.replace(LAYOUT_19041, secure_state=None, secure_pid="Pcb.SecurePid",
                                 trustlet_identity="TrustletIdentity")
    fake = derive_process(ProcessFields(offset=0x1000, pid=6240, ppid=4420, name="LsaIso.exe",
                                        secure_pid=0, trustlet_identity=0, layout=layout))
    found = dump_findings([fake], {}, "crash-bitmap")
    assert "(Pcb.SecurePid is 0)" in found[0].message
    assert "(Pcb.SecureState bit 0 is clear)" in dump_findings([process("LsaIso.exe", 1)], {},
                                                        "raw")[0].message


# -- judged against the control group -----------------------------------------------------------

def _with_kuser(proc, accounting: ProcessPages) -> ProcessPages:
    """The accounting plus the KUSER_SHARED_DATA page at 0x7FFE0000, readable (kernel memory)."""
    shared = RegionPages(0x7FFE_0000, 0x7FFE_0FFF, 1, 0, 0, 1, "PAGE_READONLY", "VadS",
                         shared=True)
    regions = tuple(sorted(accounting.regions + (shared,), key=lambda r: r.start))
    return ProcessPages(proc.pid, proc.name, regions)


CAPTURED = ControlGroup(processes=5, pages=200, absent=0, zero_filled=20, readable=180,
                        pids=(724, 840, 896, 1100, 5108), candidates=9)
NOT_CAPTURED_CONTROL = ControlGroup(processes=5, pages=200, absent=200, zero_filled=0,
                                    readable=0, pids=(724, 840, 896, 1100, 5108), candidates=9)


def test_shared_user_data_page_is_not_a_readable_trustlet_page():
    """Regression: the KUSER_SHARED_DATA page Windows maps into every process, LsaIso.exe
    included, made a real Credential Guard dump report trustlet-pages-readable (medium) and lose
    trustlet-pages-inaccessible."""
    procs, accounting = credential_guard_machine()
    lsaiso = procs[2]
    accounting[lsaiso.offset] = _with_kuser(lsaiso, accounting[lsaiso.offset]).judged(CAPTURED)
    found = dump_findings(procs, accounting, "crash-bitmap")
    assert (TRUSTLET_PAGES_INACCESSIBLE, 712) in kinds(found)
    assert TRUSTLET_PAGES_READABLE not in {f.kind for f in found}
    message = next(f.message for f in found if f.kind == TRUSTLET_PAGES_INACCESSIBLE)
    assert "its 9 mapped user pages are VTL1-protected" in message
    assert "The shared user data page (KUSER_SHARED_DATA at 0x7FFE0000" in message
    assert "the control group of 5 normal processes has 180 of its 200 mapped user pages " \
           "readable" in message


def test_pages_missing_where_the_control_is_missing_too_are_not_blamed_on_vtl1():
    procs, accounting = credential_guard_machine()
    lsaiso = procs[2]
    accounting[lsaiso.offset] = _with_kuser(lsaiso, accounting[lsaiso.offset]).judged(
        NOT_CAPTURED_CONTROL)
    found = dump_findings(procs, accounting, "crash-bitmap")
    assert kinds(found) == {(VBS_ACTIVE, 56), (CREDENTIAL_GUARD, 712), (TRUSTLET, 712),
                            (TRUSTLET_PAGES_NOT_CAPTURED, 712), (ENCLAVE_HOST_KIND, 3312)}
    finding = next(f for f in found if f.kind == TRUSTLET_PAGES_NOT_CAPTURED)
    assert finding.severity == LOW
    assert "cannot show whether its pages were protected by VTL1" in finding.message
    assert "0 of its 200 mapped user pages readable (200 absent" in finding.message
    assert "VTL1-protected" not in finding.message and "by design" not in finding.message


def test_live_kernel_dump_without_a_control_group_is_not_captured():
    procs, accounting = credential_guard_machine()
    found = dump_findings(procs, accounting, "crash-live")
    assert (TRUSTLET_PAGES_NOT_CAPTURED, 712) in kinds(found)
    assert TRUSTLET_PAGES_INACCESSIBLE not in {f.kind for f in found}
    message = next(f.message for f in found if f.kind == TRUSTLET_PAGES_NOT_CAPTURED)
    assert "a kernel bitmap dump (DumpType 6: a kernel or automatic memory dump written at a " \
        "bug check, or a live kernel memory dump) holds kernel memory only" in message


def test_readable_trustlet_pages_name_the_control_group():
    procs, _ = credential_guard_machine()
    lsaiso = procs[2]
    accounting = {lsaiso.offset: pages(lsaiso, (0x1000_0000, 4, 0, 0, 4)).judged(CAPTURED)}
    message = next(f.message for f in dump_findings(procs, accounting, "host")
                   if f.kind == TRUSTLET_PAGES_READABLE)
    assert "(the control group of 5 normal processes has 180 of its 200" in message


def test_secure_process_findings_hold_on_every_dump_type():
    procs, accounting = credential_guard_machine()
    masquerade = process("LsaIso.exe", 6240, ppid=4420)
    for fmt in ("crash-bitmap", "crash-live", "crash-full", "raw", "lime"):
        got = {kind for kind, _ in kinds(dump_findings(procs + [masquerade], accounting, fmt))}
        assert {VBS_ACTIVE, CREDENTIAL_GUARD, TRUSTLET, MASQUERADE_KIND} <= got, fmt


def test_a_kernel_that_predates_vbs_names_the_masquerade_and_not_an_unknown_state():
    layout = dataclasses.replace(LAYOUT_19041, secure_state=None)
    fake = derive_process(ProcessFields(offset=0x1000, pid=612, ppid=500, name="LsaIso.exe",
                                        layout=layout))
    found = dump_findings([fake], {}, "crash-bitmap")
    assert kinds(found) == {(MASQUERADE_KIND, 612)}
    assert "the kernel predates VBS" in found[0].message


# -- issue 13: image paths and times -----------------------------------------------------------

SYSTEM32 = "\\Device\\HarddiskVolume3\\Windows\\System32\\"
BOOT = (11_644_473_600 + 1_715_673_731) * 10_000_000  # 2024-05-14 08:02:11 UTC
SECOND = 10_000_000


def with_paths() -> list:
    """The credential-guard machine with the image paths and times the kernel records."""
    procs, _ = credential_guard_machine()
    return [dataclasses.replace(p, fields=dataclasses.replace(
        p.fields, image_path=(None if p.name == "System" else p.name if p.minimal
                              else SYSTEM32 + p.name),
        create_time=BOOT + p.pid * SECOND, exit_time=0)) for p in procs] + [
        process("smss.exe", 392, image_path=SYSTEM32 + "smss.exe", create_time=BOOT,
                exit_time=0)]


def rederive(proc):
    return derive_process(proc.fields)


def test_genuine_trustlet_path_is_support_and_identity_inferred():
    found = dump_findings([rederive(p) for p in with_paths()], {}, "crash-bitmap")
    trustlet = next(f for f in found if (f.kind, f.pid) == (TRUSTLET, 712))
    assert ("trustlet identity 1 (LsaIso) inferred from its image path (this build's EPROCESS "
            "does not store TrustletIdentity)") in trustlet.message
    assert f"Its image {SYSTEM32}LsaIso.exe is where Windows installs this trustlet." \
        in trustlet.message
    assert {f.severity for f in found} == {INFO}


def test_masquerade_says_where_its_binary_lives():
    procs = [rederive(p) for p in with_paths()]
    procs.append(process("LsaIso.exe", 6240, ppid=4420,
                         image_path="\\Device\\HarddiskVolume3\\Users\\Public\\LsaIso.exe"))
    masquerade = dump_findings(procs, {}, "raw")[0]
    assert masquerade.kind == MASQUERADE_KIND
    assert "Its image is \\Device\\HarddiskVolume3\\Users\\Public\\LsaIso.exe." \
        in masquerade.message
    assert f"The genuine LsaIso.exe in this dump is PID 712, image {SYSTEM32}LsaIso.exe." \
        in masquerade.message


@pytest.mark.parametrize("path,why", [
    ("\\Device\\HarddiskVolume3\\ProgramData\\Cache\\FsIso.exe", "not under \\Windows\\System32"),
    ("\\Device\\HarddiskVolume5\\Windows\\System32\\FsIso.exe",
     "on \\Device\\HarddiskVolume5, not on \\Device\\HarddiskVolume3"),
])
def test_secure_image_outside_system32_is_high(path, why):
    from iumdump.analysis.findings import SECURE_IMAGE_OUTSIDE_SYSTEM32

    procs = [rederive(p) for p in with_paths()]
    procs.append(process("FsIso.exe", 6532, secure_state=0x7001, image_path=path))
    found = dump_findings(procs, {}, "raw")
    assert (found[0].kind, found[0].pid, found[0].severity) == \
        (SECURE_IMAGE_OUTSIDE_SYSTEM32, 6532, HIGH)
    assert why in found[0].message
    # Not the system's trustlet image, so the path is no support.
    trustlet = next(f for f in found if (f.kind, f.pid) == (TRUSTLET, 6532))
    assert "where Windows installs" not in trustlet.message
    assert f"Its image is {path}." in trustlet.message


def test_secure_system_and_unreadable_paths_are_not_outside_system32():
    """A minimal process's bare name is not a path, and no path is no evidence."""
    from iumdump.analysis.findings import SECURE_IMAGE_OUTSIDE_SYSTEM32

    procs = [rederive(p) for p in with_paths()]
    procs.append(process("BioIso.exe", 3892, secure_state=0x1001, unreadable=("image_path",)))
    assert SECURE_IMAGE_OUTSIDE_SYSTEM32 not in {f.kind for f in dump_findings(procs, {}, "raw")}


def test_exited_processes_are_called_out():
    from iumdump.analysis.findings import EXITED_PROCESS, SECURE_PROCESS_EXITED

    procs = [rederive(p) for p in with_paths()]
    procs += [process("vmsp.exe", 6420, secure_state=0x3001, image_path=SYSTEM32 + "vmsp.exe",
                      create_time=BOOT + 3000 * SECOND, exit_time=BOOT + 3550 * SECOND),
              process("WerFault.exe", 6012, image_path=SYSTEM32 + "WerFault.exe",
                      create_time=BOOT + 3100 * SECOND, exit_time=BOOT + 5000 * SECOND)]
    found = dump_findings(procs, {}, "raw")
    assert {(f.kind, f.pid, f.severity) for f in found
            if f.kind in (SECURE_PROCESS_EXITED, EXITED_PROCESS)} == \
        {(SECURE_PROCESS_EXITED, 6420, MEDIUM), (EXITED_PROCESS, 6012, LOW)}
    exited = next(f for f in found if f.kind == SECURE_PROCESS_EXITED)
    assert "exited at 2024-05-14" in exited.message
    trustlet = next(f for f in found if (f.kind, f.pid) == (TRUSTLET, 6420))
    assert "a trustlet that ran in Virtual Trust Level 1 and has exited" in trustlet.message


def test_an_exited_lsaiso_is_not_credential_guard_at_work():
    from iumdump.analysis.findings import SECURE_PROCESS_EXITED

    procs = [rederive(p) for p in with_paths()]
    procs[2] = derive_process(dataclasses.replace(procs[2].fields,
                                                  exit_time=BOOT + 4000 * SECOND))
    found = dump_findings(procs, {}, "raw")
    assert CREDENTIAL_GUARD not in {f.kind for f in found}
    exited = next(f for f in found if f.kind == SECURE_PROCESS_EXITED)
    assert "Credential Guard is not isolating credentials since then" in exited.message


def test_unlinked_process_says_what_its_exit_time_means():
    hidden = process("BioIso.exe", 3892, secure_state=0x1001, linked=False,
                     create_time=BOOT, exit_time=0)
    freed = process("old.exe", 5000, linked=False, create_time=BOOT,
                    exit_time=BOOT + 100 * SECOND)
    found = {f.pid: f.message for f in dump_findings([hidden, freed], {}, "raw")
             if f.kind == UNLINKED_PROCESS}
    assert "It has no ExitTime: a process that never exited is missing from the list" \
        in found[3892]
    assert "Its ExitTime is 2024-05-14" in found[5000]


def test_trustlet_identity_that_disagrees_with_its_image():
    from iumdump.analysis.findings import TRUSTLET_IDENTITY_MISMATCH

    layout = dataclasses.replace(LAYOUT_19041, secure_state=None, secure_pid="Pcb.SecurePid",
                                 trustlet_identity="TrustletIdentity")
    odd = derive_process(ProcessFields(offset=0x1000, pid=712, ppid=572, name="LsaIso.exe",
                                       secure_pid=0x1234, trustlet_identity=4,
                                       image_path=SYSTEM32 + "LsaIso.exe", layout=layout))
    found = dump_findings([odd], {}, "raw")
    mismatch = [f for f in found if f.kind == TRUSTLET_IDENTITY_MISMATCH]
    assert [(f.pid, f.severity) for f in mismatch] == [(712, MEDIUM)]
    assert "TrustletIdentity 4" in mismatch[0].message and "identity 1" in mismatch[0].message


def test_live_kernel_dump_is_not_said_to_never_hold_user_pages():
    """Regression: without a control group the finding said a live kernel memory dump "holds
    kernel memory only", as a fact; a live dump holds user pages when its taker asks for them
    (SYSDBG_LIVEDUMP_CONTROL_FLAGS.IncludeUserSpaceMemoryPages, offered by System Informer and
    NtObjectManager), so the sentence an analyst pastes must say so."""
    procs, accounting = credential_guard_machine()
    found = dump_findings(procs, accounting, "crash-live")
    message = next(f.message for f in found if f.kind == TRUSTLET_PAGES_NOT_CAPTURED)
    assert "unless it was taken with user-space pages included" in message


@pytest.mark.parametrize("signature, expected", [(None, []), ("SDMP", []), ("FDMP", []),
                                                 ("SDMPDU64", [("nonstandard-dump-header",
                                                                LOW, None)])])
def test_a_summary_header_windows_does_not_write_is_a_machine_finding(signature, expected):
    """The preflight reads such a dump as Volatility does; the finding is how the analyst learns
    the file did not come unaltered from Windows' dump writer. It never touches the verdicts."""
    procs, accounting = credential_guard_machine()
    found = dump_findings(procs, accounting, "crash-bitmap", signature)
    assert [(f.kind, f.severity, f.pid) for f in found if f.pid is None] == expected
    assert kinds(dump_findings(procs, accounting, "crash-bitmap")) <= kinds(found)
    assert (TRUSTLET_PAGES_INACCESSIBLE, 712) in kinds(found)


@pytest.mark.parametrize("signature", crashdump.SUMMARY_DUMP_SIGNATURES)
def test_every_summary_signature_windows_writes_passes_as_the_preflight_names_it(signature):
    """The finding once kept its own copy of the signatures structs.crashdump declares; this ties
    the finding to them through the preflight's naming, so neither can drift from the other."""
    stored = crashdump.StoredSummary(signature + crashdump.DUMP_VALID_DUMP, 0x2000, 1, 1)
    assert header_findings(summary_signature_text(stored)) == []
    altered = crashdump.StoredSummary(signature + crashdump.DUMP_VALID_DUMP64, 0x2000, 1, 1)
    assert [f.kind for f in header_findings(summary_signature_text(altered))] == [
        "nonstandard-dump-header"]


def test_no_process_is_called_unlinked_where_the_list_could_not_be_read():
    """Regression (issue 9): with the table's PsActiveProcessHead misplaced, every process the
    pool scan found got a medium unlinked-process finding pointing to DKOM, though the list
    could not be read at all. ``linked`` None (unknown) raises none, and Secure System found
    that way still shows VBS running."""
    procs, accounting = credential_guard_machine()
    unknown = [derive_process(dataclasses.replace(p.fields, linked=None)) for p in procs]
    found = dump_findings(unknown, accounting, "crash-bitmap")
    assert not [f for f in found if f.kind == UNLINKED_PROCESS]
    assert kinds(found) == kinds(dump_findings(procs, accounting, "crash-bitmap"))
    assert dump_findings([process("ghost.exe", 7000, linked=False)], {}, "raw")[0].kind == \
        UNLINKED_PROCESS
