"""The Volatility-facing reader: fields found by name per build, read per process, the listing,
and the harness that opens dumps for the tests."""

from __future__ import annotations

import dataclasses

import pytest
from kernel_layouts import LAYOUT_14393, LAYOUT_19041
from markers import SLOW
from volatility3.framework import renderers
from volatility_harness import json_value, open_dump

from iumdump.analysis import eprocess, processes
from iumdump.analysis.derive import derive_process
from iumdump.analysis.fields import KernelLayout, Unknown
from iumdump.analysis.plugin_support import absent_value
from iumdump.errors import DumpFormatError

# The members DESIGN §4 names, as the real tables (and the built-in profile) have them.
COMMON = dict(
    protection="Protection", wow64_process="WoW64Process", process_delete="Flags.ProcessDelete",
    cross_session_create="Flags2.CrossSessionCreate", deep_freeze="Pcb.ProcessFlags.DeepFreeze",
    background="Flags.Background", subsystem_process="Flags3.SubsystemProcess",
    minimal="Flags3.Minimal", exit_status="ExitStatus", peb="Peb",
    affinity="Pcb.Affinity.Bitmap", base_priority="Pcb.BasePriority",
    create_time="CreateTime", exit_time="ExitTime",
    image_path="SeAuditProcessCreationInfo.ImageFileName")
LAYOUTS = {"builtin": LAYOUT_19041, "19041": LAYOUT_19041, "14393": LAYOUT_14393}


# The 19041 table in the full run only: the built-in profile is laid out as 19041 is.
@pytest.fixture(params=[pytest.param(p, marks=SLOW if p == "19041" else ())
                        for p in sorted(LAYOUTS)])
def kernel(request, synth_dump, volatility):
    dump = synth_dump("adversarial", "crash-bitmap", request.param)
    volatility.run(dump, "windows.pslist.PsList")
    return request.param, dump, volatility.context(dump), volatility.kernel_module(dump)


def test_layout_is_probed_by_name(kernel):
    profile, _dump, context, module = kernel
    assert eprocess.kernel_layout(context, module) == LAYOUTS[profile]


def test_the_expected_layouts_name_the_members_of_design():
    """The layouts the manifest makes for the tests are those DESIGN §4 names for each build."""
    assert LAYOUT_19041 == KernelLayout(secure_state="Pcb.SecureState", **COMMON)
    assert LAYOUT_14393 == KernelLayout(secure_pid="Pcb.SecurePid",
                                        trustlet_identity="TrustletIdentity", **COMMON)


def test_every_process_reads_completely_and_matches_truth(kernel):
    _profile, dump, context, module = kernel
    read = eprocess.ProcessReader(context, module)
    truth = {p["pid"]: p for p in dump.truth["processes"]}
    seen = set()
    for proc, linked in processes.iter_processes(context, module, scan=True):
        fields = read(proc, linked=linked)
        expected = truth[fields.pid]
        assert not fields.partial and fields.unreadable == frozenset()
        assert (fields.name, fields.ppid, fields.linked, fields.offset) == \
            (expected["name"], expected["ppid"], expected["linked"], expected["offset"])
        assert fields.protection == expected["protection"]
        assert bool(fields.minimal) is expected["minimal"]
        process = derive_process(fields)
        assert process.flags.as_dict() == expected["flags"]
        assert process.verdict == expected["verdict"]
        seen.add(fields.pid)
    assert seen == set(truth)


def test_read_processes_reports_progress(kernel):
    _profile, dump, context, module = kernel
    calls = []
    fields = list(processes.read_processes(context, module, pids=[712, 724],
                                        progress_callback=lambda p, t: calls.append((p, t))))
    assert [f.pid for f in fields] == [712, 724]
    assert [p for p, _ in calls] == [0.0, 50.0, 100.0]
    assert {t for _, t in calls} == {"Reading processes"}


def test_absent_values_say_why():
    absent = absent_value
    assert isinstance(absent(Unknown.UNREADABLE), renderers.UnreadableValue)
    assert isinstance(absent(Unknown.ABSENT), renderers.NotAvailableValue)
    assert isinstance(absent(Unknown.NOT_DERIVABLE), renderers.NotAvailableValue)


def test_an_open_dump_serves_several_plugins_on_one_context(synth_dump):
    from volatility3.plugins.windows import pslist, psscan

    dump = synth_dump("adversarial", "raw", "builtin")
    session = open_dump(dump.dump_path, [dump.symbols_dir])
    listed = session.rows(pslist.PsList)
    scanned = session.rows(psscan.PsScan)
    again = session.rows(pslist.PsList, pid=[712])
    assert sorted(r["PID"] for r in listed) == sorted(
        p["pid"] for p in dump.truth["processes"] if p["linked"])
    assert len(scanned) == len(dump.truth["processes"])
    assert [r["PID"] for r in again] == [712]  # options do not leak between runs
    assert [r["PID"] for r in session.rows(pslist.PsList)] == [r["PID"] for r in listed]


def test_opening_rejects_what_is_not_a_windows_dump(tmp_path):
    junk = tmp_path / "junk.raw"
    junk.write_bytes(bytes(1 << 20))
    with pytest.raises(DumpFormatError) as caught:
        open_dump(junk, [])
    assert str(junk) in str(caught.value)


def test_json_value_is_what_vol_json_prints():
    assert json_value(renderers.NotApplicableValue()) is None
    assert json_value(renderers.UnreadableValue()) is None
    assert json_value(True) is True
    assert json_value(7) == 7


def test_layout_fields_match_process_fields():
    """Every attribute the layout names is a ProcessFields attribute (the reader relies on it)."""
    from iumdump.analysis.fields import ProcessFields
    names = {f.name for f in dataclasses.fields(ProcessFields)}
    assert {f.name for f in dataclasses.fields(KernelLayout)} - {"trusted_app"} <= names


def test_pid_filter_leaves_out_a_process_whose_pid_is_unreadable():
    """PsList's own filter lets the exception end the whole listing; ours skips the process."""
    from volatility3.framework.exceptions import InvalidAddressException

    class Unreadable:
        @property
        def UniqueProcessId(self):
            raise InvalidAddressException("layer", 0x1000, "unreadable")

    class Readable:
        UniqueProcessId = 712

    leave_out = processes._pid_filter([712])
    assert leave_out(Unreadable()) is True
    assert leave_out(Readable()) is False
    assert processes._pid_filter(None)(Unreadable()) is False


def test_one_piece_read_equals_field_by_field_read(kernel):
    """The fast path (one read, decoded at the offsets the symbol table names) and the
    field-by-field path through Volatility's objects agree on every process and field."""
    _profile, _dump, context, module = kernel
    read = eprocess.ProcessReader(context, module)
    compared = 0
    for proc, linked in processes.iter_processes(context, module, scan=True):
        assert read(proc, linked=linked) == read.read_fields(proc, linked=linked)
        compared += 1
    assert compared == len(_dump.truth["processes"])
