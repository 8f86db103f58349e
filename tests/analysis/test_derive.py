"""The pure derivations of DESIGN §4/§5: secure state, flags, protection, verdicts, region verdicts."""

from __future__ import annotations

import dataclasses

import pytest

from iumdump.analysis.derive import (ENCLAVE_HOST, INACCESSIBLE, MASQUERADE, NORMAL,
                                     NOT_CAPTURED, PARTIALLY_READABLE, PREDATES_VBS, READABLE,
                                     SECURE, SECURE_HANDLE_MASK, SECURE_PROCESS_BIT,
                                     SHARED_USER_DATA, TRUSTED_APP_BIT, ControlGroup, ProcessPages,
                                     RegionPages, derive_flags, derive_process,
                                     derive_protection_text, derive_secure, derive_verdict,
                                     extended_basic_information, region_verdict,
                                     render_process_verdict, render_region_verdict)
from iumdump.analysis.fields import ProcessFields, Unknown
from iumdump.isf import SymbolTable
from iumdump.structs.flagwords import flag_word
from iumdump.structs.process_info import FLAG_NAMES, parse_extended_basic_information

from kernel_layouts import LAYOUT_14393, LAYOUT_19041

LAYOUT_26100 = dataclasses.replace(LAYOUT_19041, trusted_app="Pcb.SecureState.Flags.TrustedApp",
                                   background=None)


def fields(layout=LAYOUT_19041, **values) -> ProcessFields:
    base = dict(offset=0xFFFF_A000_0000_1000, pid=100, ppid=4, name="svchost.exe", protection=0,
                wow64_process=0, process_delete=0, cross_session_create=0, deep_freeze=0,
                background=0, subsystem_process=0, minimal=0, exit_status=0x103,
                peb=0x7FF6_0000_0000, affinity=0xF, base_priority=8)
    if layout.secure_state:
        base["secure_state"] = 0
    if layout.secure_pid:
        base["secure_pid"] = 0
    if layout.trustlet_identity:
        base["trustlet_identity"] = 0
    if layout.background is None:
        base.pop("background")
    base.update(values)
    return ProcessFields(layout=layout, **base)


class TestSecureState:
    def test_bit0_is_secure_and_handle_masks_bits_0_and_1(self):
        info = derive_secure(fields(secure_state=0x1234_5003))
        assert info.secure is True
        assert info.secure_handle == 0x1234_5000
        assert info.source == "Pcb.SecureState"

    def test_handle_without_bit0_is_an_enclave_host(self):
        process = derive_process(fields(name="SgrmBroker.exe", secure_state=0x40_0000))
        assert process.secure.secure is False
        assert process.secure.secure_handle == 0x40_0000
        assert process.verdict == ENCLAVE_HOST

    def test_bit1_is_trusted_app_only_where_named(self):
        assert derive_secure(fields(secure_state=0x3)).trusted_app is None  # "Unused" on 19041
        assert derive_secure(fields(LAYOUT_26100, secure_state=0x3)).trusted_app is True
        assert derive_secure(fields(LAYOUT_26100, secure_state=0x1)).trusted_app is False

    def test_secure_pid_layout(self):
        info = derive_secure(fields(LAYOUT_14393, secure_pid=0x2C4))
        assert (info.secure, info.secure_handle, info.source) == (True, 0x2C4, "Pcb.SecurePid")
        assert derive_secure(fields(LAYOUT_14393)).secure is False

    def test_unreadable_state_is_unknown_not_false(self):
        info = derive_secure(fields(secure_state=None, unreadable=frozenset({"secure_state"})))
        assert info.secure is None and info.reason is Unknown.UNREADABLE

    def test_kernel_without_either_field_predates_vbs(self):
        """Regression: a kernel with neither SecurePid nor SecureState (Windows 7, 8.1) made every
        process's secure state unknown; such a kernel cannot run a secure process, so Secure is
        False, and a trustlet's name on it is a masquerade."""
        layout = dataclasses.replace(LAYOUT_19041, secure_state=None)
        info = derive_secure(fields(layout))
        assert (info.secure, info.source, info.reason) == (False, PREDATES_VBS, None)
        lsaiso = derive_process(fields(layout, name="LsaIso.exe"))
        assert lsaiso.verdict == MASQUERADE
        assert derive_process(fields(layout)).verdict == NORMAL
        secure_flag = lsaiso.flags["IsSecureProcess"]
        assert (secure_flag.value, secure_flag.source) == (False, PREDATES_VBS)


class TestVerdict:
    @pytest.mark.parametrize("name, secure, handle, expected", [
        ("LsaIso.exe", True, 0x1000, SECURE),
        ("LsaIso.exe", False, 0, MASQUERADE),
        ("lsaiso.EXE", False, 0, MASQUERADE),
        ("vmsp.exe", False, 0, MASQUERADE),
        ("BioIso.exe", False, 0, MASQUERADE),
        ("FsIso.exe", False, 0, MASQUERADE),
        ("FsIso.exe", False, 0x2000, MASQUERADE),  # masquerade outranks enclave-host
        ("SgrmBroker.exe", False, 0x2000, ENCLAVE_HOST),
        ("Secure System", True, 0x10, SECURE),
        ("lsass.exe", False, 0, NORMAL),
        ("LsaIso.exe.bak", False, 0, NORMAL),
        ("LsaIso.exe", None, None, None),
        ("lsass.exe", None, None, None),
    ])
    def test_precedence(self, name, secure, handle, expected):
        assert derive_verdict(name, secure, handle) == expected


class TestProtection:
    @pytest.mark.parametrize("level, text", [
        (0x00, "None"), (0x41, "ProtectedLight/Lsa"), (0x61, "ProtectedLight/WinTcb"),
        (0x72, "Protected/WinSystem"), (0x49, "ProtectedLight/Lsa+Audit"), (None, None)])
    def test_text(self, level, text):
        assert derive_protection_text(level) == text


class TestFlags:
    def test_each_flag_comes_from_its_field(self):
        cases = {
            "IsProtectedProcess": dict(protection=0x41),
            "IsWow64Process": dict(wow64_process=0xFFFF_A000_0000_2000),
            "IsProcessDeleting": dict(process_delete=1),
            "IsCrossSessionCreate": dict(cross_session_create=1),
            "IsFrozen": dict(deep_freeze=1),
            "IsBackground": dict(background=1),
            "IsSecureProcess": dict(secure_state=0x1001),
            "IsSubsystemProcess": dict(subsystem_process=1),
        }
        for name, values in cases.items():
            flags = derive_flags(fields(**values))
            set_flags = {state.name for state in flags if state.value}
            assert set_flags == {name}, name
            assert flags.value == 1 << FLAG_NAMES.index(name)

    def test_sources_name_the_fields(self):
        flags = derive_flags(fields())
        assert flags["IsProtectedProcess"].source == "Protection.Type"
        assert flags["IsProcessDeleting"].source == "Flags.ProcessDelete"
        assert flags["IsSecureProcess"].source == "Pcb.SecureState"
        assert flags["IsStronglyNamed"].source is None

    def test_unknown_flags_are_none_and_contribute_zero(self):
        flags = derive_flags(fields())
        assert flags.as_dict()["IsStronglyNamed"] is None
        assert flags["IsStronglyNamed"].reason is Unknown.NOT_DERIVABLE
        assert flags["IsTrustedApp"].value is None  # 19041: bit 1 is Unused
        assert flags.unknown == ("IsStronglyNamed", "IsTrustedApp")
        assert flags.value == 0

    def test_background_unknown_where_the_bit_is_reserved(self):
        flags = derive_flags(fields(LAYOUT_26100, secure_state=0x3))
        assert flags["IsBackground"].value is None
        assert flags["IsBackground"].reason is Unknown.ABSENT
        assert flags["IsTrustedApp"].value is True
        assert flags.value == (1 << 7) | (1 << 9)

    def test_unreadable_field_is_unknown_with_reason(self):
        flags = derive_flags(fields(process_delete=None, unreadable=frozenset({"process_delete"})))
        assert flags["IsProcessDeleting"].value is None
        assert flags["IsProcessDeleting"].reason is Unknown.UNREADABLE
        assert flags["IsProcessDeleting"].source == "Flags.ProcessDelete"

    def test_secure_pid_layout_flags(self):
        flags = derive_flags(fields(LAYOUT_14393, secure_pid=0x10))
        assert flags["IsSecureProcess"].value is True
        assert flags["IsSecureProcess"].source == "Pcb.SecurePid"


class TestProcess:
    def test_trustlet_id_only_where_the_build_has_it(self):
        assert derive_process(fields(LAYOUT_14393, trustlet_identity=1)).trustlet_id == 1
        assert derive_process(fields(LAYOUT_14393, trustlet_identity=1)).has_trustlet_identity
        assert derive_process(fields()).trustlet_id is None
        assert not derive_process(fields()).has_trustlet_identity

    def test_partial_when_a_field_is_unreadable(self):
        assert not derive_process(fields()).partial
        assert derive_process(fields(name=None, unreadable=frozenset({"name"}))).partial


class TestExtendedBasicInformation:
    def test_bytes_roundtrip_through_the_construct(self):
        process = derive_process(fields(protection=0x41, secure_state=0x1001, exit_status=-1,
                                        pid=0x2C4, ppid=0x268))
        info = extended_basic_information(process)
        data = info.to_bytes()
        assert len(data) == 0x40
        assert int.from_bytes(data[0:8], "little") == 0x40
        assert int.from_bytes(data[0x38:0x3C], "little") == process.flags.value == 0x81
        parsed = parse_extended_basic_information(data)
        assert parsed.basic_info.ExitStatus == 0xFFFF_FFFF
        assert parsed.basic_info.UniqueProcessId == 0x2C4
        assert parsed.basic_info.InheritedFromUniqueProcessId == 0x268
        assert parsed.basic_info.PebBaseAddress == 0x7FF6_0000_0000
        assert parsed.basic_info.AffinityMask == 0xF
        assert parsed.basic_info.BasePriority == 8

    def test_none_when_a_basic_field_is_unknown(self):
        process = derive_process(fields(peb=None, unreadable=frozenset({"peb"})))
        assert extended_basic_information(process) is None


class TestRegions:
    @pytest.mark.parametrize("counts, verdict", [
        ((10, 10, 0, 0), INACCESSIBLE),
        ((10, 0, 10, 0), INACCESSIBLE),
        ((10, 4, 6, 0), INACCESSIBLE),
        ((10, 0, 0, 10), READABLE),
        ((10, 3, 0, 7), PARTIALLY_READABLE),
        ((10, 0, 9, 1), PARTIALLY_READABLE),
        ((0, 0, 0, 0), INACCESSIBLE),
    ])
    def test_verdict(self, counts, verdict):
        assert region_verdict(*counts) == verdict

    def test_counts_must_add_up(self):
        with pytest.raises(ValueError):
            region_verdict(10, 1, 1, 1)

    def test_process_verdict_keeps_its_word_first(self):
        """secureprocs' Verdict and the reports' cells: the verdict, then what qualifies it."""
        assert render_process_verdict("secure", implausible=False, partial=False) == "secure"
        assert render_process_verdict("secure", implausible=True, partial=False) == \
            "secure (implausible)"
        assert render_process_verdict("normal", implausible=False, partial=True) == \
            "normal (partial)"
        both = render_process_verdict("secure", implausible=True, partial=True)
        assert both == "secure (implausible) (partial)" and both.split(" (")[0] == "secure"

    def test_partial_says_so(self):
        assert render_region_verdict(INACCESSIBLE, False) == "inaccessible"
        assert render_region_verdict(INACCESSIBLE, True) == "inaccessible (partial)"
        row = RegionPages(0x10000, 0x1FFFF, 16, 16, 0, 0, problems=("page table missing",))
        assert row.rendered_verdict == "inaccessible (partial)"

    def test_process_totals(self):
        pages = ProcessPages(8, "LsaIso.exe", (RegionPages(0, 0xFFFF, 16, 16, 0, 0),
                                               RegionPages(0x20000, 0x20FFF, 1, 0, 0, 1)))
        assert (pages.mapped, pages.absent, pages.zero_filled, pages.readable) == (17, 16, 0, 1)
        assert pages.verdict == PARTIALLY_READABLE
        assert not pages.partial
        assert pages.as_dict()["regions"][1]["verdict"] == READABLE


def test_defined_protection_levels():
    from iumdump.analysis.derive import is_defined_protection
    assert is_defined_protection(0x00) and is_defined_protection(0x41)
    assert is_defined_protection(0x82)  # Protected/App
    assert not is_defined_protection(0x03)  # Type 3 is PsProtectedTypeMax, not a level
    assert not is_defined_protection(0x91)  # Signer 9 is PsProtectedSignerMax
    assert not is_defined_protection(0xFF)


class TestLegacyProtection:
    LAYOUT_7 = dataclasses.replace(LAYOUT_19041, secure_state=None, protection=None,
                                   protected_process="Flags2.ProtectedProcess")

    def test_protected_process_bit_where_protection_is_absent(self):
        """Windows 7 has no PS_PROTECTION; its protected processes carry a flag bit."""
        flag = derive_flags(fields(self.LAYOUT_7, protection=None, protected_process=1))[
            "IsProtectedProcess"]
        assert (flag.value, flag.source) == (True, "Flags2.ProtectedProcess")
        flag = derive_flags(fields(self.LAYOUT_7, protection=None, protected_process=0))[
            "IsProtectedProcess"]
        assert flag.value is False

    def test_neither_is_unknown(self):
        layout = dataclasses.replace(self.LAYOUT_7, protected_process=None)
        flag = derive_flags(fields(layout, protection=None))["IsProtectedProcess"]
        assert (flag.value, flag.reason) == (None, Unknown.ABSENT)


class TestControlGroup:
    """Page verdicts judged against the normal processes' pages (the control group)."""

    TRUSTLET = ProcessPages(712, "LsaIso.exe", (
        RegionPages(0x10000, 0x1FFFF, 16, 16, 0, 0),
        RegionPages(0x7FFE0000, 0x7FFE0FFF, 1, 0, 0, 1, shared=True)))

    def test_captured_when_most_control_pages_are_readable(self):
        assert ControlGroup(3, 100, 0, 10, 90).captured is True
        assert ControlGroup(3, 100, 0, 50, 50).captured is True
        assert ControlGroup(3, 100, 100, 0, 0).captured is False
        assert ControlGroup(3, 100, 60, 0, 40).captured is False
        assert ControlGroup().captured is None  # no basis

    def test_missing_pages_with_the_control_present_are_inaccessible(self):
        judged = self.TRUSTLET.judged(ControlGroup(3, 100, 0, 10, 90))
        assert judged.verdict == INACCESSIBLE
        assert [r.verdict for r in judged.regions] == [INACCESSIBLE, SHARED_USER_DATA]

    def test_missing_pages_with_the_control_missing_too_are_not_captured(self):
        judged = self.TRUSTLET.judged(ControlGroup(3, 100, 100, 0, 0))
        assert judged.verdict == NOT_CAPTURED
        assert [r.verdict for r in judged.regions] == [NOT_CAPTURED, SHARED_USER_DATA]
        entry = judged.as_dict()
        assert (entry["pages"], entry["readable"], entry["shared_pages"]) == (16, 0, 1)
        assert entry["control"]["captured"] is False and entry["verdict"] == NOT_CAPTURED

    def test_readable_pages_stay_readable_whatever_the_control(self):
        pages = ProcessPages(712, "LsaIso.exe", (RegionPages(0, 0xFFFF, 16, 0, 0, 16),))
        assert pages.judged(ControlGroup(3, 100, 100, 0, 0)).verdict == READABLE

    def test_without_a_control_group_the_counts_decide(self):
        assert self.TRUSTLET.judged(None).verdict == INACCESSIBLE
        assert self.TRUSTLET.judged(ControlGroup()).verdict == INACCESSIBLE

    def test_control_candidates_are_normal_linked_user_processes(self):
        from iumdump.analysis.derive import is_control_candidate
        assert is_control_candidate(derive_process(fields()))
        assert not is_control_candidate(derive_process(fields(pid=4, name="System")))
        assert not is_control_candidate(derive_process(fields(minimal=1, name="Registry")))
        assert not is_control_candidate(derive_process(fields(linked=False)))
        assert not is_control_candidate(derive_process(fields(secure_state=0x1001)))
        assert not is_control_candidate(derive_process(fields(name="LsaIso.exe")))


class TestTimes:
    """Issue 13: CreateTime and ExitTime are FILETIMEs (100 ns since 1601-01-01 UTC)."""

    def test_filetime_to_utc_to_the_second(self):
        import datetime

        from iumdump.analysis.derive import filetime_to_datetime

        # 2024-05-14 08:02:15.3 UTC: 11644473600 s from 1601 to 1970, then Unix time.
        value = (11_644_473_600 + 1_715_673_735) * 10_000_000 + 3_000_000
        assert filetime_to_datetime(value) == datetime.datetime(
            2024, 5, 14, 8, 2, 15, tzinfo=datetime.timezone.utc)
        assert filetime_to_datetime(0) is None  # never set: a running process's ExitTime
        assert filetime_to_datetime(None) is None
        assert filetime_to_datetime(-5) is None
        assert filetime_to_datetime(2**63 - 1) is None  # past year 9999: smear or tampering

    def test_exited_follows_exit_time(self):
        running = derive_process(fields(create_time=133_600_000_000_000_000, exit_time=0))
        gone = derive_process(fields(create_time=133_600_000_000_000_000,
                                     exit_time=133_600_000_100_000_000))
        assert (running.exited, running.exit_time) == (False, None)
        assert gone.exited and gone.exit_time > gone.create_time


class TestImagePaths:
    """SeAuditProcessCreationInfo.ImageFileName: NT device paths, bare names, none."""

    SYSTEM32 = "\\Device\\HarddiskVolume3\\Windows\\System32\\"

    @pytest.mark.parametrize("path,file_path,under", [
        ("\\Device\\HarddiskVolume3\\Windows\\System32\\LsaIso.exe", True, True),
        ("\\Device\\HarddiskVolume1\\WINDOWS\\system32\\lsass.exe", True, True),
        ("\\??\\C:\\Windows\\System32\\vmsp.exe", True, True),
        ("\\SystemRoot\\System32\\smss.exe", True, True),
        ("\\Device\\HarddiskVolume3\\Windows\\System32\\lxss\\tools\\init", True, True),
        ("\\Device\\HarddiskVolume3\\Users\\Public\\LsaIso.exe", True, False),
        ("\\Device\\HarddiskVolume3\\Windows\\System32\\..\\..\\Temp\\x.exe", True, False),
        ("\\Device\\Mup\\server\\share\\Windows\\System32\\LsaIso.exe", True, False),
        ("\\Windows\\System32\\LsaIso.exe", True, False),  # no device: not what the kernel keeps
        ("Registry", False, False),
        ("", False, False),
        (None, False, False),
    ])
    def test_system32(self, path, file_path, under):
        from iumdump.analysis.derive import in_system32, is_file_path

        assert is_file_path(path) is file_path
        assert in_system32(path) is under

    @pytest.mark.parametrize("name,expected", [
        ("LsaIso.exe", 1), ("vmsp.exe", 2), ("BIOISO.EXE", 4), ("FsIso.exe", 5),
        ("lsass.exe", None), ("SgrmBroker.exe", None)])
    def test_implied_trustlet_ids(self, name, expected):
        from iumdump.analysis.derive import implied_trustlet_id

        assert implied_trustlet_id(self.SYSTEM32 + name) == expected
        # Anywhere else the image says nothing about the identity.
        assert implied_trustlet_id(f"\\Device\\HarddiskVolume3\\Temp\\{name}") is None
        assert implied_trustlet_id(self.SYSTEM32 + "sub\\" + name) is None


class TestTrustletIdentity:
    """Read where the build keeps TrustletIdentity; inferred from a genuine image elsewhere."""

    LSAISO = "\\Device\\HarddiskVolume3\\Windows\\System32\\LsaIso.exe"

    def test_inferred_on_a_build_without_trustlet_identity(self):
        process = derive_process(fields(secure_state=0xE8D6_EEC1, name="LsaIso.exe",
                                        image_path=self.LSAISO))
        assert process.trustlet_id is None  # nothing was read: the column stays N/A
        identity = process.trustlet_identity
        assert (identity.id, identity.name, identity.basis, identity.source) == \
            (1, "LsaIso", "inferred", self.LSAISO)

    def test_read_where_the_build_has_it(self):
        process = derive_process(fields(LAYOUT_14393, secure_pid=0x1234, trustlet_identity=1,
                                        name="LsaIso.exe", image_path=self.LSAISO))
        identity = process.trustlet_identity
        assert (process.trustlet_id, identity.id, identity.basis, identity.source) == \
            (1, 1, "read", "TrustletIdentity")
        assert process.implied_trustlet_id == 1

    @pytest.mark.parametrize("values", [
        dict(secure_state=0xE8D6_EEC1, name="FsIso.exe",
             image_path="\\Device\\HarddiskVolume3\\ProgramData\\Cache\\FsIso.exe"),
        dict(secure_state=0xE8D6_EEC1, name="NewIso.exe",
             image_path="\\Device\\HarddiskVolume3\\Windows\\System32\\NewIso.exe"),
        dict(secure_state=0xE8D6_EEC1, name="LsaIso.exe"),  # no path read
        dict(secure_state=0, name="LsaIso.exe", image_path=LSAISO),  # not secure
    ])
    def test_unknown_images_stay_unknown(self, values):
        assert derive_process(fields(**values)).trustlet_identity is None


def test_secure_state_bits_are_those_the_real_19041_table_names(real_isf):
    """derive reads SecureState with bit masks of its own, and the emulator writes the word by
    field name from the symbol table, so only the real table can tell whether both are right:
    19041's _KPROCESS.SecureState names bit 0 SecureProcess and bit 1 (TrustedApp from 24H2,
    Unused here), and every other bit is the secure handle."""
    word = flag_word(SymbolTable.load(real_isf("19041")), "_KPROCESS", "SecureState")
    assert SECURE_PROCESS_BIT == 1 << word.bit("SecureProcess").bit
    assert TRUSTED_APP_BIT == 1 << word.bit("Unused").bit
    handle = 0xFFFF_C08A_1234_5003
    assert word.unnamed_bits(handle) == handle & SECURE_HANDLE_MASK
