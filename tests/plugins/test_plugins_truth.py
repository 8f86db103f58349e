"""The three plugins against truth.json, on every scenario × acquisition format × profile.

Profiles: the built-in one and the real 14393 (SecurePid, TrustletIdentity) and 19041
(SecureState) symbol tables from ../shared/isf, skipped when absent. The plugins run in-process
through Volatility's own API on one shared context per dump (the ``volatility`` fixture). A
pool scan (``scan=True``) costs most of a run, so it runs where the truth has an unlinked
process (the adversarial scenario); elsewhere the active list holds every process of the truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from markers import dump_params
from volatility3.framework import renderers
from volatility3.framework.interfaces.renderers import BaseAbsentValue

from iumdump.structs.process_info import FLAG_NAMES, parse_extended_basic_information
from iumdump.structs.protection import protection_text
from iumdump.slat.writers import FORMATS
from truth_pages import expected_region_verdict, user_memory_captured

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

SCENARIOS = ("credential-guard", "no-vbs", "adversarial")
PROFILES = ("builtin", "14393", "19041")
# What a timeline line calls a process of each verdict: only a secure one is a "Secure process".
TIMELINE_LABELS = {"secure": "Secure process", "masquerade": "Masquerading process",
                   "enclave-host": "Enclave host"}
MATRIX = [(s, f, p) for s in SCENARIOS for f in FORMATS for p in PROFILES]
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "testdata" / "scenarios"


@pytest.fixture(params=dump_params(MATRIX))
def dump(request, synth_dump):
    scenario, fmt, profile = request.param
    return synth_dump(scenario, fmt, profile)


@pytest.fixture
def run(dump, plugin_session, plugin_classes):
    """``run("secureprocs", scan=True)`` → the plugin's rows on this dump."""
    session = plugin_session(dump)
    return lambda name, **options: session.rows(plugin_classes[name], **options)


def flags_word(flags: dict) -> int:
    """The Flags ULONG of truth's flags: unknown (None) flags count as 0."""
    return sum(1 << bit for bit, name in enumerate(FLAG_NAMES) if flags[name])


def needs_scan(truth) -> bool:
    return any(not p["linked"] for p in truth["processes"])


def by_pid(rows):
    table = {}
    for row in rows:
        assert row["PID"] not in table, f"PID {row['PID']} listed twice"
        table[row["PID"]] = row
    return table


def test_secureprocs_rows_equal_truth(dump, run):
    truth = dump.truth
    kernel = truth["kernel"]
    rows = by_pid(run("secureprocs", scan=needs_scan(truth)))
    expected = {p["pid"]: p for p in truth["processes"]}
    assert sorted(rows) == sorted(expected)
    assert {pid for pid, p in expected.items() if p["secure"]} == \
        {pid for pid, row in rows.items() if row["Secure"]}
    for pid, process in expected.items():
        row = rows[pid]
        assert row["PPID"] == process["ppid"]
        assert row["ImageFileName"] == process["name"]
        assert row["Offset(V)"] == process["offset"]
        assert row["Linked"] is process["linked"]
        assert row["Secure"] is process["secure"]
        assert row["SecureHandle"] == process["secure_handle"]
        if kernel["has_trustlet_identity"]:
            assert row["TrustletId"] == process["trustlet_id"]
        else:
            assert isinstance(row["TrustletId"], renderers.NotApplicableValue)
        assert row["Protection"] == process["protection_text"] == \
            protection_text(process["protection"])
        assert row["ExtendedFlags"] == flags_word(process["flags"])
        assert row["Verdict"] == process["verdict"], process["name"]
        if process["image_path"] is None:  # System: the kernel records none
            assert isinstance(row["ImagePath"], renderers.NotAvailableValue)
        else:
            assert row["ImagePath"] == process["image_path"], process["name"]
    assert list(rows[4]) == ["PID", "PPID", "ImageFileName", "Offset(V)", "Linked", "Secure",
                             "SecureHandle", "TrustletId", "Protection", "ExtendedFlags",
                             "Verdict", "ImagePath"]


def _utc(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_secureprocs_timeline_through_the_api(dump, plugin_session, plugin_classes):
    """generate_timeline (Volatility's TimeLinerInterface) gives the creation (CREATED) and exit
    (MODIFIED) of every secure, masquerading and enclave-host process, pool-scanned ones too,
    with the verdict and image path in the description."""
    from volatility3.plugins import timeliner

    plugin = plugin_session(dump).plugin(plugin_classes["secureprocs"])
    assert isinstance(plugin, timeliner.TimeLinerInterface)
    events = {}
    for description, kind, moment in plugin.generate_timeline():
        assert moment.tzinfo is not None
        events.setdefault(description, {})[kind] = _utc(moment)
    expected = [p for p in dump.truth["processes"]
                if p["verdict"] in ("secure", "masquerade", "enclave-host")]
    assert len(events) == len(expected)
    for process in expected:
        description = next(d for d in events
                           if d.startswith(f"{TIMELINE_LABELS[process['verdict']]}: "
                                           f"{process['pid']} {process['name']} "
                                           f"({process['address'] & 0xFFFF_FFFF_FFFF:#x})"))
        assert f"verdict {process['verdict']}" in description
        assert ("unlinked" in description) is (not process["linked"])
        if process["image_path"]:
            assert description.endswith(f"image {process['image_path']}")
        times = {timeliner.TimeLinerType.CREATED: process["create_time"]}
        if process["exit_time"]:
            times[timeliner.TimeLinerType.MODIFIED] = process["exit_time"]
        assert events[description] == times, process["name"]


@pytest.mark.parametrize("dump", dump_params(m for m in MATRIX if m[0] == "adversarial"),
                         indirect=True)
def test_secureprocs_without_scan_lists_the_active_list(dump, run):
    """Where a process is unlinked, only --scan lists it (elsewhere the rows test ran without)."""
    assert needs_scan(dump.truth)
    rows = by_pid(run("secureprocs"))
    assert sorted(rows) == sorted(p["pid"] for p in dump.truth["processes"] if p["linked"])
    assert all(row["Linked"] is True for row in rows.values())


def test_secureprocs_pid_filter(dump, run):
    linked = [p for p in dump.truth["processes"] if p["linked"]]
    wanted = sorted({p["pid"] for p in linked[::3]}
                    | {p["pid"] for p in linked if p["verdict"] != "normal"})
    rows = run("secureprocs", pid=wanted)
    assert sorted(row["PID"] for row in rows) == wanted


def _scenario(truth) -> dict:
    with open(SCENARIO_DIR / f"{truth['scenario']}.toml", "rb") as handle:
        return tomllib.load(handle)


def test_extbasicinfo_rows_equal_truth(dump, run):
    truth = dump.truth
    scenario = _scenario(truth)
    priorities = {p["pid"]: p.get("priority", 8) for p in scenario["process"]}
    affinity = (1 << scenario["processors"]) - 1
    rows = by_pid(run("extbasicinfo", scan=needs_scan(truth)))
    expected = {p["pid"]: p for p in truth["processes"]}
    assert sorted(rows) == sorted(expected)
    for pid, process in expected.items():
        row = rows[pid]
        for name in FLAG_NAMES:
            value = process["flags"][name]
            if value is None:
                assert isinstance(row[name], BaseAbsentValue), (process["name"], name)
            else:
                assert row[name] is value, (process["name"], name)
        assert row["Flags"] == flags_word(process["flags"])
        assert row["UniqueProcessId"] == pid
        assert row["InheritedFromUniqueProcessId"] == process["ppid"]
        assert row["BasePriority"] == priorities[pid]
        assert row["AffinityMask"] == affinity
        # A user process has a PEB in its user range (System maps the shared user data page
        # under a VAD, as every process does, but has no PEB).
        if process["pages"] and pid != 4:
            assert 0 < row["PebBaseAddress"] < 0x8000_0000_0000
        info = parse_extended_basic_information(bytes.fromhex(row["Bytes"]))
        assert info.size == 0x40
        assert info.flags_value == row["Flags"]
        assert info.basic_info.UniqueProcessId == pid
        assert info.basic_info.InheritedFromUniqueProcessId == process["ppid"]
        assert info.basic_info.ExitStatus == row["ExitStatus"]
        assert info.basic_info.PebBaseAddress == row["PebBaseAddress"]
        assert info.basic_info.AffinityMask == affinity
        assert info.basic_info.BasePriority == priorities[pid]
        assert info.nonzero_padding == ()


def _expected_regions(process, truth):
    captured = user_memory_captured(truth)
    return [(process["pid"], r["start"], r["end"], r["pages"], r["absent"], r["zero_filled"],
             r["readable"], expected_region_verdict(r, captured))
            for r in process["pages"]["regions"] if r["pages"]]


def _rows(rows):
    return [(row["PID"], row["Start"], row["End"], row["Pages"], row["Absent"],
             row["ZeroFilled"], row["Readable"], row["Verdict"]) for row in rows]


def test_trustletpages_rows_equal_truth(dump, run):
    """Every secure process with a user range (the unlinked one through --scan), region by
    region; the totals equal truth's page counts."""
    truth = dump.truth
    secure = [p for p in truth["processes"] if p["secure"] and p["pages"]]
    expected = [row for p in secure for row in _expected_regions(p, truth)]
    got = _rows(run("trustletpages", scan=needs_scan(truth)))
    assert sorted(got) == sorted(expected)
    for process in secure:
        # The process's own pages; the shared user data page has its own, labelled row.
        mine = [row for row in got if row[0] == process["pid"] and row[7] != "shared-user-data"]
        pages = process["pages"]
        assert [sum(row[i] for row in mine) for i in (3, 4, 5, 6)] == \
            [pages["mapped"], pages["absent"], pages["zero_filled"], pages["readable"]]
        shared = [row for row in got if row[0] == process["pid"] and row not in mine]
        assert [(row[1], row[3]) for row in shared] == [(0x7FFE0000, 1)] * pages["shared"]
    if needs_scan(truth):
        linked = [row for p in secure if p["linked"] for row in _expected_regions(p, truth)]
        assert sorted(_rows(run("trustletpages"))) == sorted(linked)


def test_trustletpages_pid_walks_any_process(dump, run):
    """--pid on ordinary processes: readable and zero pages are counted too, and minimal
    processes (no user address space) give no rows."""
    truth = dump.truth
    ordinary = [p for p in truth["processes"] if p["linked"] and not p["secure"] and p["pages"]]
    minimal = [p for p in truth["processes"] if p["linked"] and p["minimal"]]
    assert minimal and all(p["pages"] is None for p in minimal)
    chosen = ordinary[:3] + minimal
    got = _rows(run("trustletpages", pid=[p["pid"] for p in chosen]))
    expected = [row for p in ordinary[:3] for row in _expected_regions(p, truth)]
    assert sorted(got) == sorted(expected)
