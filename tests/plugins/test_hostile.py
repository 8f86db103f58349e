"""Hostile structures: the plugins give partial or unavailable values, never an exception or a hang.

Each test copies a synthesized dump and patches bytes in the copy (the fixture's dump is never
touched), locating what to patch by name: EPROCESS addresses from truth.json, field offsets from
the dump's symbol table, page-table entries by walking from the process's DTB (``patch``, from
tests/hostile.py). tests/test_hostile_input.py runs ``iumdump analyze`` and ``vol`` on the same
kinds of damage.
"""

from __future__ import annotations

import struct

import pytest
from hostile import ADDRESS_MASK, Patch, deadline
from volatility3.framework import renderers
from volatility3.framework.interfaces.renderers import BaseAbsentValue

from iumdump.analysis.derive import IMPLAUSIBLE_SUFFIX, PARTIAL_SUFFIX

KUSER_SHARED_DATA_USER = 0x7FFE0000  # its user-space alias, mapped in every process (DESIGN §4)

@pytest.fixture
def run(plugin_session, plugin_classes):
    def run_plugin(result, name, **options):
        session = plugin_session(result)
        with deadline():
            return session.rows(plugin_classes[name], **options)
    return run_plugin


def linked(truth):
    return [p for p in truth["processes"] if p["linked"]]


def assert_unique_subset(rows, truth):
    pids = [row["PID"] for row in rows]
    assert len(pids) == len(set(pids))
    assert set(pids) <= {p["pid"] for p in truth["processes"]}


def test_process_list_loop_ends_and_lists_each_process_once(patch, run):
    """ActiveProcessLinks.Flink of a late process points back at an earlier one: the forward
    walk meets an entry it has seen; the backward walk still reaches every process."""
    dump = patch()
    processes = linked(dump.original.truth)
    early, late = processes[3], processes[-3]
    target, _ = dump.field(early["pid"], "ActiveProcessLinks")
    dump.write_field(late["pid"], "ActiveProcessLinks.Flink", target)
    dump.write_field(early["pid"], "ActiveProcessLinks.Flink", dump.field(early["pid"],
                                                                           "ActiveProcessLinks")[0])
    for plugin in ("secureprocs", "extbasicinfo", "trustletpages"):
        rows = run(dump.result, plugin)
        if plugin != "trustletpages":
            assert_unique_subset(rows, dump.original.truth)
            assert {row["PID"] for row in rows} == {p["pid"] for p in processes}


def test_links_outside_memory_end_the_walk_cleanly(patch, run):
    """Flink and Blink pointing at unmapped and non-canonical addresses cut the list: the
    processes reachable from either end are listed, nothing raises."""
    dump = patch()
    processes = linked(dump.original.truth)
    dump.write_field(processes[5]["pid"], "ActiveProcessLinks.Flink", 0xFFFF_F6FB_0000_0000)
    dump.write_field(processes[-5]["pid"], "ActiveProcessLinks.Blink", 0x0000_7FFF_DEAD_0000)
    rows = run(dump.result, "secureprocs")
    assert_unique_subset(rows, dump.original.truth)
    pids = {row["PID"] for row in rows}
    assert {p["pid"] for p in processes[:6]} <= pids
    assert {p["pid"] for p in processes[-5:]} <= pids
    assert not {p["pid"] for p in processes[6:-5]} & pids  # the cut took effect
    run(dump.result, "trustletpages", scan=True)


def _page_end_candidate(dump: Patch, session) -> int:
    """A kernel page whose successor is unmapped, with its last 16 bytes free (zero)."""
    layer = dump.kernel_layer
    for process in dump.original.truth["processes"]:
        page = process["address"] & 0xFFFF_FFFF_F000 & ~0xFFF
        for candidate in range(page, page + 0x40_0000, 0x1000):
            if layer.is_valid(candidate) and not layer.is_valid(candidate + 0x1000) \
                    and layer.read(candidate + 0xFF0, 16) == bytes(16):
                return candidate
    pytest.fail("no mapped kernel page followed by an unmapped one near the processes")


def test_a_process_straddling_unmapped_memory_gives_unreadable_cells(patch, run,
                                                                     plugin_session):
    """A list entry near the end of a mapped page whose EPROCESS runs into an unmapped one:
    the fields on the mapped page are read, the others are UnreadableValue; every other row is
    intact."""
    dump = patch()
    session = plugin_session(dump.original)
    page = _page_end_candidate(dump, session)
    entry = page + 0x1000 - 16
    processes = linked(dump.original.truth)
    before, after = processes[7], processes[8]
    after_links, _ = dump.field(after["pid"], "ActiveProcessLinks")
    before_links, _ = dump.field(before["pid"], "ActiveProcessLinks")
    canonical = 0xFFFF_0000_0000_0000 | entry
    dump.write_virtual(entry, struct.pack("<QQ", after_links, before_links))
    dump.write_field(before["pid"], "ActiveProcessLinks.Flink", canonical)

    rows = run(dump.result, "secureprocs")
    fake = [row for row in rows if row["Offset(V)"] == entry - dump.symbols.member(
        "_EPROCESS", "ActiveProcessLinks").offset]
    assert len(fake) == 1
    (fake,) = fake
    assert isinstance(fake["ImageFileName"], renderers.UnreadableValue)
    assert isinstance(fake["Protection"], renderers.UnreadableValue)
    assert isinstance(fake["PID"], int)  # UniqueProcessId lies on the mapped page
    others = {row["PID"]: row for row in rows if row is not fake}
    assert set(others) == {p["pid"] for p in processes}
    assert all(row["Verdict"] == p["verdict"] for p in processes
               for row in [others[p["pid"]]])

    (info,) = [row for row in run(dump.result, "extbasicinfo")
               if row["ImageFileName"] is not None
               and isinstance(row["ImageFileName"], renderers.UnreadableValue)]
    assert isinstance(info["IsProtectedProcess"], renderers.UnreadableValue)
    assert isinstance(info["Bytes"], renderers.UnreadableValue)


def test_garbage_flag_words_decode_exactly_without_raising(patch, run):
    """All-ones in Protection, Flags, Flags2, Flags3, the KPROCESS flags and SecureState of a
    normal process: the row decodes the bits as Windows would — an undefined protection type
    shows as such — and nothing raises."""
    dump = patch()
    victim = next(p for p in linked(dump.original.truth) if p["name"] == "svchost.exe")
    pid = victim["pid"]
    for path in ("Protection", "Flags", "Flags2", "Flags3", "Pcb.SecureState"):
        _, size = dump.field(pid, path)
        dump.write_field(pid, path, b"\xff" * size)
    _, size = dump.field(pid, "Pcb.DeepFreeze")
    dump.write_field(pid, "Pcb.DeepFreeze", b"\xff" * size)

    row = {r["PID"]: r for r in run(dump.result, "secureprocs")}[pid]
    assert row["Protection"] == "Type7/Signer15+Audit"
    # the values as the dump holds them; the verdict says no kernel writes them (issue 9)
    assert row["Secure"] is True and row["Verdict"] == "secure" + IMPLAUSIBLE_SUFFIX
    assert row["SecureHandle"] == 0xFFFF_FFFF_FFFF_FFFC
    # every derivable flag bit set: all but IsStronglyNamed (6) and IsTrustedApp (9, unnamed);
    # IsWow64Process comes from a pointer that was left alone
    assert row["ExtendedFlags"] == 0b0110111101
    info = {r["PID"]: r for r in run(dump.result, "extbasicinfo")}[pid]
    assert info["IsProcessDeleting"] is True and info["IsSubsystemProcess"] is True
    assert isinstance(info["IsStronglyNamed"], BaseAbsentValue)


def test_a_secure_state_no_kernel_writes_is_not_a_clean_secure_row(patch, run):
    """Regression (issue 9): notepad.exe with SecureState all ones read Secure True, SecureHandle
    0xfffffffffffffffc, Verdict ``secure``, only a stderr warning saying otherwise, while
    ``iumdump analyze`` does not count it as secure. The values stay as the dump holds them; the
    verdict keeps its word first and says it is implausible."""
    dump = patch()
    notepad = next(p for p in linked(dump.original.truth) if p["name"] == "notepad.exe")
    _, size = dump.field(notepad["pid"], "Pcb.SecureState")
    dump.write_field(notepad["pid"], "Pcb.SecureState", b"\xff" * size)
    rows = {row["PID"]: row for row in run(dump.result, "secureprocs")}
    row = rows[notepad["pid"]]
    assert (row["Secure"], row["SecureHandle"]) == (True, 0xFFFF_FFFF_FFFF_FFFC)
    assert row["Verdict"] == "secure (implausible)"
    assert row["Verdict"].split(" (")[0] == "secure"  # the documented way to parse it
    assert all(rows[p["pid"]]["Verdict"] == p["verdict"] for p in linked(dump.original.truth)
               if p["pid"] != notepad["pid"])


def test_an_object_in_user_space_is_not_a_normal_row(patch, run):
    """Regression (issue 9): a Flink into the user alias of KUSER_SHARED_DATA gave the row
    ``0 0 (empty) 0x7ffe0000 … normal`` with no mark, where analyze marks the object partial
    (not a process). The row's verdict now says partial, as the reports' verdict cells do."""
    dump = patch()
    victim = linked(dump.original.truth)[-3]
    links = dump.symbols.member("_EPROCESS", "ActiveProcessLinks").offset
    dump.write_field(victim["pid"], "ActiveProcessLinks.Flink", KUSER_SHARED_DATA_USER + links)
    rows = run(dump.result, "secureprocs")
    (fake,) = [row for row in rows if row["Offset(V)"] == KUSER_SHARED_DATA_USER]
    assert fake["Verdict"] == "normal" + PARTIAL_SUFFIX
    assert not any(row["Verdict"].endswith(")") for row in rows if row is not fake)


def _trustlet(truth):
    return next(p for p in truth["processes"] if p["secure"] and p["pages"] and p["linked"])


@pytest.mark.parametrize("fmt", ["raw", "crash-bitmap"])
def test_ptes_past_the_end_of_the_dump_make_rows_partial(patch, run, fmt):
    """A PTE whose frame lies beyond the memory the dump describes, and a PDE whose page table
    does: those regions' rows say "(partial)", the others are untouched."""
    dump = patch(fmt=fmt)
    trustlet = _trustlet(dump.original.truth)
    regions = trustlet["pages"]["regions"]
    first, second = regions[0], regions[-1]
    dump.write_entry(dump.entry_address(trustlet["dtb"], first["start"], 1),
                     (0x3_FFFF_F000 | 0x67))
    dump.write_entry(dump.entry_address(trustlet["dtb"], second["start"], 2),
                     (0x7_FFFF_E000 | 0x67))
    rows = run(dump.result, "trustletpages", pid=[trustlet["pid"]])
    by_start = {row["Start"]: row for row in rows}
    assert by_start[first["start"]]["Verdict"].endswith(PARTIAL_SUFFIX)
    assert by_start[first["start"]]["Pages"] == first["pages"]
    assert by_start[first["start"]]["Absent"] >= 1
    (covering,) = [row for row in rows if row["Start"] <= second["start"] <= row["End"]]
    assert covering["Verdict"].endswith(PARTIAL_SUFFIX)
    untouched = [r for r in regions[1:-1]]
    for region in untouched:
        assert not by_start[region["start"]]["Verdict"].endswith(PARTIAL_SUFFIX)
        assert by_start[region["start"]]["Pages"] == region["pages"]


def test_page_table_loop_is_walked_once(patch, run):
    """A PML4 entry that points back at the PML4: the walk ends, the regions are counted as
    before, and the 512 GiB the entry claims to map get a row of their own, partial."""
    dump = patch()
    trustlet = _trustlet(dump.original.truth)
    pml4 = trustlet["dtb"] & ADDRESS_MASK
    free = next(i for i in range(1, 256)
                if not struct.unpack("<Q", dump.read_physical(pml4 + i * 8, 8))[0] & 1)
    dump.write_entry(pml4 + free * 8, pml4 | 0x67)
    rows = run(dump.result, "trustletpages", pid=[trustlet["pid"]])
    loop = [row for row in rows if row["Start"] == free << 39]
    assert [(row["End"], row["Pages"], row["Verdict"]) for row in loop] == \
        [(((free + 1) << 39) - 1, 0, "inaccessible" + PARTIAL_SUFFIX)]
    regions = [row for row in rows if row not in loop]
    assert [(row["Start"], row["Pages"], row["Verdict"].endswith(PARTIAL_SUFFIX))
            for row in regions] == \
        [(r["start"], r["pages"], False) for r in trustlet["pages"]["regions"]]


def test_unreadable_dtb_and_vad_root_give_partial_rows(patch, run):
    dump = patch()
    trustlet = _trustlet(dump.original.truth)
    dump.write_field(trustlet["pid"], "Pcb.DirectoryTableBase", 0x7F_FFFF_F000)
    (row,) = run(dump.result, "trustletpages", pid=[trustlet["pid"]])
    assert row["Pages"] == 0 and row["Verdict"] == "inaccessible" + PARTIAL_SUFFIX

    dump = patch(fmt="crash-full")
    trustlet = _trustlet(dump.original.truth)
    dump.write_field(trustlet["pid"], "VadRoot", 0xFFFF_F6FB_0000_0000)
    rows = run(dump.result, "trustletpages", pid=[trustlet["pid"]])
    assert rows and all(row["Verdict"].endswith(PARTIAL_SUFFIX) for row in rows)
    # Every mapped page still has a row: the trustlet's own, and the shared user data page.
    assert sum(row["Pages"] for row in rows) == \
        trustlet["pages"]["mapped"] + trustlet["pages"]["shared"]


@pytest.mark.parametrize("damage", ["unmapped-pointer", "length-past-maximum", "odd-length"])
def test_a_broken_audit_image_name_is_unreadable_not_fatal(patch, run, damage):
    """Issue 13: SeAuditProcessCreationInfo.ImageFileName leads into pool memory the dump may
    lack or that smear left implausible (a UNICODE_STRING whose Length exceeds its
    MaximumLength, or is odd): ImagePath is UnreadableValue, the row and the others stay."""
    dump = patch()
    lsaiso = next(p for p in dump.original.truth["processes"] if p["name"] == "LsaIso.exe")
    pointer_va, _ = dump.field(lsaiso["pid"], "SeAuditProcessCreationInfo.ImageFileName")
    if damage == "unmapped-pointer":
        dump.write_field(lsaiso["pid"], "SeAuditProcessCreationInfo.ImageFileName",
                         0xFFFF_F6FB_0000_0000)
    else:
        (name_info,) = struct.unpack("<Q", dump.kernel_layer.read(pointer_va & 0xFFFF_FFFF_FFFF,
                                                                  8))
        length = dump.symbols.member("_UNICODE_STRING", "Length").offset
        (size,) = struct.unpack("<H", dump.kernel_layer.read(
            (name_info & 0xFFFF_FFFF_FFFF) + length, 2))
        bad = size + 0x40 if damage == "length-past-maximum" else size - 1
        dump.write_virtual((name_info & 0xFFFF_FFFF_FFFF) + length, struct.pack("<H", bad))
    rows = {row["PID"]: row for row in run(dump.result, "secureprocs")}
    assert isinstance(rows[lsaiso["pid"]]["ImagePath"], renderers.UnreadableValue)
    assert rows[lsaiso["pid"]]["Verdict"] == "secure"
    others = [p for p in linked(dump.original.truth) if p["pid"] != lsaiso["pid"]]
    assert all(rows[p["pid"]]["ImagePath"] == p["image_path"] for p in others if p["image_path"])
