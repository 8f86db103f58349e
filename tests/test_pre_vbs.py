"""Kernels that predate VBS (Windows 7, 8.1): no _KPROCESS.SecurePid or SecureState, so no
process can be secure; Windows 7 has no _EPROCESS.Protection either, but a ProtectedProcess bit.

The layout is derived from the real 19041 symbol table in ../shared/isf (skipped when absent):
the secure fields removed, ``Protection`` removed, and bit 11 of ``Flags2`` renamed to
``ProtectedProcess``, where Windows 7 x64 keeps it (``dt nt!_EPROCESS``: Flags2 ``ProtectedProcess
: Pos 11, 1 Bit``); a GUID of its own so it is never mistaken for the real table. The emulator
lays the credential-guard machine out by it and ``iumdump analyze`` reads it.
"""

from __future__ import annotations

import contextlib
import io
import json
import lzma
from pathlib import Path

import pytest
from markers import SLOW

from iumdump import cli

pytestmark = SLOW  # a machine without VBS synthesized and analysed

REAL_19041 = (Path(__file__).resolve().parents[2] / "shared" / "isf"
              / "606FF669409B00F7FC8C61A9C1670129-1.json.xz")

PRE_VBS_GUID = "606FF669409B00F7FC8C61A9C16701A7"


@pytest.fixture(scope="module")
def pre_vbs_isf(tmp_path_factory):
    source = REAL_19041
    if not source.is_file():
        pytest.skip(f"real symbol table {source} is absent")
    with lzma.open(source, "rt", encoding="utf-8") as handle:
        table = json.load(handle)
    kprocess = table["user_types"]["_KPROCESS"]["fields"]
    for name in ("SecureState", "SecurePid"):
        kprocess.pop(name, None)
    eprocess = table["user_types"]["_EPROCESS"]["fields"]
    eprocess.pop("Protection")
    eprocess.pop("TrustletIdentity", None)
    legacy = eprocess.pop("EmptyJobEvaluated")
    assert legacy["offset"] == eprocess["Flags2"]["offset"]
    assert legacy["type"]["bit_position"] == 11
    eprocess["ProtectedProcess"] = legacy
    table["metadata"]["windows"]["pdb"]["GUID"] = PRE_VBS_GUID
    path = tmp_path_factory.mktemp("pre-vbs") / f"{PRE_VBS_GUID}-1.json.xz"
    with lzma.open(path, "wt", encoding="utf-8") as handle:
        json.dump(table, handle)
    return path


@pytest.fixture(scope="module")
def report(pre_vbs_isf, synth_dump, tmp_path_factory):
    result = synth_dump("credential-guard", "crash-bitmap", str(pre_vbs_isf))
    out = tmp_path_factory.mktemp("pre-vbs-report")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["analyze", str(result.dump_path), "-s", str(result.symbols_dir), "-o",
                         str(out), "--offline", "-q", "--format", "json"])
    assert (code, stderr.getvalue()) == (0, "")
    return result, json.loads((out / "report.json").read_text())


def test_no_process_is_secure_and_the_reason_is_the_kernel(report):
    _result, data = report
    processes = {p["name"]: p for p in data["processes"]}
    assert all(p["secure"] is False for p in data["processes"])
    assert {p["secure_state_source"] for p in data["processes"]} == {"kernel predates VBS"}
    assert {p["flag_sources"]["IsSecureProcess"] for p in data["processes"]} == \
        {"kernel predates VBS"}
    assert processes["LsaIso.exe"]["verdict"] == "masquerade"
    assert processes["Secure System"]["verdict"] == "normal"
    assert data["summary"]["verdicts"]["unknown"] == 0


def test_findings_name_the_masquerade_and_claim_no_vbs(report):
    _result, data = report
    kinds = {(f["kind"], f["pid"]) for f in data["findings"]}
    assert kinds == {("masquerade", 712)}
    (finding,) = data["findings"]
    assert finding["severity"] == "high"
    assert "the kernel predates VBS" in finding["message"]
    assert not data["pages"] and not data["summary"]["vbs_active"]


def test_protected_processes_come_from_the_legacy_bit(report):
    result, data = report
    truth = {p["pid"]: p for p in result.truth["processes"]}
    for process in data["processes"]:
        expected = bool(truth[process["pid"]]["protection"] & 0x7)  # PS_PROTECTION.Type
        assert process["flags"]["IsProtectedProcess"] is expected, process["name"]
        assert process["flag_sources"]["IsProtectedProcess"] == "Flags2.ProtectedProcess"
        assert process["protection"] is None and process["protection_level"] is None
    lsass = next(p for p in data["processes"] if p["name"] == "lsass.exe")
    assert lsass["flags"]["IsProtectedProcess"] is True
