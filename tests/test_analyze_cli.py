"""``iumdump analyze`` on every scenario, held to the emulator's truth.json: every process and its
verdict, flags and protection, every secure process's pages, the findings the truth implies; the
report validates against its schema and each rendering carries every finding."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import os
from pathlib import Path

import jsonschema
import pytest
from markers import SLOW, dump_params

from iumdump import cli
from iumdump.report import jsonreport
from iumdump.report.text import html_text, markdown as md_text
from truth_pages import user_memory_captured

# Every scenario in its default acquisition (a bitmap crash dump: VTL1 pages absent), and the
# adversarial one in each other format: zero-filled (raw, complete crash dump) and readable (a
# host-side capture). Then the adversarial machine laid out by the real 1607 and 2004 kernels'
# symbol tables (SecurePid and TrustletIdentity on 1607), where ../shared/isf has them. And live
# kernel dumps and a kernel memory dump written at a bug check (both DumpType 6), which hold no
# process's user pages: nothing is blamed on VTL1.
CASES = [("credential-guard", "crash-bitmap", "builtin"), ("no-vbs", "crash-bitmap", "builtin"),
         ("adversarial", "crash-bitmap", "builtin"), ("adversarial", "raw", "builtin"),
         ("adversarial", "crash-full", "builtin"), ("adversarial", "host", "builtin"),
         ("adversarial", "crash-bitmap", "14393"), ("adversarial", "crash-bitmap", "19041"),
         ("credential-guard", "crash-live", "builtin"), ("adversarial", "crash-live", "19041"),
         ("adversarial", "crash-kernel", "builtin")]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", params=dump_params(CASES))
def analyzed(request, synth_dump, tmp_path_factory):
    """(truth, report dict, output directory, stdout) of one analysis."""
    scenario, fmt, profile = request.param
    result = synth_dump(scenario, fmt, profile)
    out = tmp_path_factory.mktemp(f"report-{scenario}-{fmt}-{profile}")
    code, stdout, stderr = run_cli("analyze", str(result.dump_path), "-s",
                                   str(result.symbols_dir), "-o", str(out), "--offline", "-q")
    assert (code, stderr) == (0, "")
    report = json.loads((out / "report.json").read_text())
    return result, report, out, stdout


def expected_identity(process: dict, kernel: dict) -> dict | None:
    """Read where the build keeps TrustletIdentity; else inferred for a trustlet whose image is
    the Windows one in System32 (issue 13), from the identity the scenario gave it."""
    names = {1: "LsaIso", 2: "vmsp", 3: "vTPM enrollment", 4: "BioIso", 5: "FsIso"}
    if kernel["has_trustlet_identity"]:
        value = process["trustlet_id"]
        return {"id": value, "name": names.get(value), "basis": "read",
                "source": "TrustletIdentity"}
    path = process["image_path"] or ""
    if process["secure"] and process["scenario_trustlet_id"] and path.lower() == \
            f"\\device\\harddiskvolume3\\windows\\system32\\{process['name'].lower()}":
        value = process["scenario_trustlet_id"]
        return {"id": value, "name": names[value], "basis": "inferred", "source": path}
    return None


def expected_findings(truth: dict) -> set[tuple[str, int]]:
    """The findings DESIGN §5 implies for what the emulator built: a trustlet's missing pages
    are VTL1's doing only where the normal processes' pages are in the dump."""
    processes = truth["processes"]
    captured = user_memory_captured(truth)
    expected: set[tuple[str, int]] = set()
    secure_system = [p for p in processes if p["name"] == "Secure System" and p["linked"]]
    secure = [p for p in processes if p["secure"]]
    if secure_system:
        expected.add(("vbs-active", secure_system[0]["pid"]))
    elif secure:
        expected.add(("vbs-active", secure[0]["pid"]))
    for p in processes:
        pid, verdict = p["pid"], p["verdict"]
        if verdict == "secure" and p["name"] != "Secure System":
            expected.add(("trustlet", pid))
            if p["name"].lower() == "lsaiso.exe":
                expected.add(("credential-guard", pid))
        if verdict in ("masquerade", "enclave-host"):
            expected.add((verdict, pid))
        if not p["linked"]:
            expected.add(("unlinked-process", pid))
        if p["secure"] and p["pages"] and p["pages"]["mapped"]:
            expected.add(("trustlet-pages-readable" if p["pages"]["readable"]
                          else "trustlet-pages-not-captured" if captured is False
                          else "trustlet-pages-inaccessible", pid))
        # Issue 13: exits and where a secure process's image lives.
        if p["secure"] and p["exit_time"]:
            expected.add(("secure-process-exited", pid))
        elif p["linked"] and p["exit_time"]:
            expected.add(("exited-process", pid))
        if p["secure"] and (p["image_path"] or "").startswith("\\") and not p[
                "image_path"].lower().startswith("\\device\\harddiskvolume3\\windows\\system32\\"):
            expected.add(("secure-image-outside-system32", pid))
    return expected


def test_report_files(analyzed):
    result, report, out, stdout = analyzed
    assert sorted(os.listdir(out)) == ["report.html", "report.json", "report.md"]
    assert stdout.split() == [str(out / name) for name in
                              ("report.json", "report.md", "report.html")]


def test_report_validates_against_schema(analyzed):
    _, report, _, _ = analyzed
    schema = jsonreport.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(report)


def test_dump_and_kernel_identity(analyzed):
    result, report, _, _ = analyzed
    data = Path(result.dump_path).read_bytes()
    assert report["dump"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert report["dump"]["size"] == len(data)
    assert report["dump"]["path"] == str(Path(result.dump_path).resolve())
    # DumpType 6 is named crash-live whoever wrote it (Task Manager, or the kernel at a bug check).
    assert report["dump"]["format"] == {"host": "raw", "crash-kernel": "crash-live"}.get(
        result.format, result.format)
    assert report["dump"]["unchanged"] is True
    kernel = result.truth["kernel"]
    assert report["kernel"]["build"] == kernel["build"]
    assert report["kernel"]["pdb_guid"] == kernel["pdb_guid"].upper()
    assert report["kernel"]["pdb_age"] == kernel["pdb_age"]
    assert report["kernel"]["base"] == kernel["kernel_virtual_offset"]
    assert report["analysis"]["partial"] is False


def test_processes_match_truth(analyzed):
    result, report, _, _ = analyzed
    by_offset = {p["offset"]: p for p in report["processes"]}
    assert len(by_offset) == len(report["processes"])
    assert sorted(by_offset) == sorted(p["offset"] for p in result.truth["processes"])
    for truth in result.truth["processes"]:
        got = by_offset[truth["offset"]]
        assert (got["pid"], got["ppid"], got["name"], got["linked"]) == \
            (truth["pid"], truth["ppid"], truth["name"], truth["linked"])
        assert (got["secure"], got["secure_handle"], got["trustlet_id"]) == \
            (truth["secure"], truth["secure_handle"], truth["trustlet_id"]), truth["name"]
        assert (got["protection_level"], got["protection"]) == \
            (truth["protection"], truth["protection_text"])
        assert got["verdict"] == truth["verdict"], truth["name"]
        assert got["flags"] == truth["flags"], truth["name"]
        assert (got["image_path"], got["create_time"], got["exit_time"]) == \
            (truth["image_path"], truth["create_time"], truth["exit_time"]), truth["name"]
        assert got["trustlet_identity"] == expected_identity(truth, result.truth["kernel"])
        assert got["minimal"] == truth["minimal"]
        assert got["partial"] is False


def test_secure_process_pages_match_truth(analyzed):
    result, report, _, _ = analyzed
    pages = {entry["offset"]: entry for entry in report["pages"]}
    secure = [p for p in result.truth["processes"] if p["secure"]]
    assert sorted(pages) == sorted(p["offset"] for p in secure)
    keys = ("start", "end", "pages", "absent", "zero_filled", "readable", "protection", "tag")
    for truth in secure:
        entry = pages[truth["offset"]]
        expected = truth["pages"] or {"mapped": 0, "absent": 0, "zero_filled": 0,
                                      "readable": 0, "regions": []}
        assert (entry["pages"], entry["absent"], entry["zero_filled"], entry["readable"]) == \
            (expected["mapped"], expected["absent"], expected["zero_filled"],
             expected["readable"]), truth["name"]
        assert [tuple(r[k] for k in keys) for r in entry["regions"]] == \
            [tuple(r[k] for k in keys) for r in expected["regions"]]


def test_findings_match_truth(analyzed):
    result, report, _, _ = analyzed
    got = {(f["kind"], f["pid"]) for f in report["findings"]}
    assert got == expected_findings(result.truth)
    summary = report["summary"]
    assert summary["credential_guard"] == any(k == "credential-guard" for k, _ in got)
    assert summary["vbs_active"] == any(k == "vbs-active" for k, _ in got)


def test_markdown_and_html_contain_every_finding(analyzed):
    _, report, out, _ = analyzed
    markdown = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for finding in report["findings"]:
        assert md_text(finding["message"]) in markdown
        assert html_text(finding["message"]) in html
    for process in report["processes"]:
        assert html_text(process["name"]) in html


def test_no_vbs_means_no_findings(synth_dump, tmp_path):
    result = synth_dump("no-vbs", "crash-bitmap")
    code, stdout, _ = run_cli("analyze", str(result.dump_path), "-s", str(result.symbols_dir),
                              "-o", str(tmp_path), "--offline")
    assert code == 0, _
    assert "findings 0 high, 0 medium, 0 low, 0 info" in stdout
    assert "secure: none" in stdout


def test_summary_on_stdout(synth_dump, tmp_path):
    result = synth_dump("credential-guard", "crash-bitmap")
    code, stdout, stderr = run_cli("analyze", str(result.dump_path), "-s",
                                   str(result.symbols_dir), "-o", str(tmp_path), "--offline")
    assert (code, stderr) == (0, "")
    assert "secure: Secure System (56), LsaIso.exe (712)" in stdout
    assert "[info] credential-guard: LsaIso.exe (PID 712) runs as a trustlet, so Credential " \
           "Guard is active" in stdout
    assert str(tmp_path / "report.html") in stdout


@SLOW  # two analyses
def test_existing_report_needs_force(synth_dump, tmp_path):
    result = synth_dump("credential-guard", "crash-bitmap")
    argv = ["analyze", str(result.dump_path), "-s", str(result.symbols_dir), "-o", str(tmp_path),
            "--offline", "-q", "--format", "md"]
    assert run_cli(*argv)[0] == 0
    before = (tmp_path / "report.md").stat()
    code, stdout, stderr = run_cli(*argv)
    assert (code, stdout) == (2, "")
    assert stderr == (f"iumdump analyze: {tmp_path / 'report.md'}: exists; pass --force to "
                      "overwrite it, or choose another -o\n")
    assert (tmp_path / "report.md").stat().st_mtime_ns == before.st_mtime_ns
    assert run_cli(*argv, "--force")[0] == 0
    assert os.listdir(tmp_path) == ["report.md"]


@SLOW
def test_format_subset_and_default_output(synth_dump, tmp_path, monkeypatch):
    result = synth_dump("credential-guard", "crash-bitmap")
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run_cli("analyze", str(result.dump_path), "-s", str(result.symbols_dir),
                              "--offline", "-q", "--format", "json,html")
    assert code == 0
    assert stdout.split() == ["iumdump-memory/report.json", "iumdump-memory/report.html"]
    assert sorted(os.listdir(tmp_path / "iumdump-memory")) == ["report.html", "report.json"]


def test_unknown_format_is_a_usage_error(synth_dump, capsys):
    result = synth_dump("credential-guard", "crash-bitmap")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze", str(result.dump_path), "--format", "pdf"])
    assert exit_info.value.code == 2
    assert "unknown report format 'pdf'" in capsys.readouterr().err


@SLOW
def test_dump_is_only_ever_opened_read_only(synth_dump, tmp_path, monkeypatch):
    """Evidence handling: every open of the dump, by iumdump or Volatility, is read-only."""
    result = synth_dump("adversarial", "crash-bitmap")
    dump = os.path.realpath(result.dump_path)
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def check_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(file) == dump:
            opened.append(mode)
            assert not set(mode) & set("wax+"), mode
        return real_open(file, mode, *args, **kwargs)

    def check_os_open(path, flags, *args, **kwargs):
        if os.path.realpath(path) == dump:
            opened.append(f"os:{flags}")
            assert flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC) == 0
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", check_open)
    monkeypatch.setattr(io, "open", check_open)
    monkeypatch.setattr(os, "open", check_os_open)
    before = hashlib.sha256(Path(dump).read_bytes()).hexdigest()
    code, _, stderr = run_cli("analyze", dump, "-s", str(result.symbols_dir), "-o",
                              str(tmp_path), "--offline", "-q")
    assert (code, stderr) == (0, "")
    assert opened  # the checks above saw the opens (inspect, hash, Volatility)
    assert hashlib.sha256(Path(dump).read_bytes()).hexdigest() == before


def analyze_with_summary_head(synth_dump, tmp_path, head: bytes) -> dict:
    """report.json of the credential-guard bitmap dump (written ``FDMPDUMP``) with ``head``
    written over the start of its _SUMMARY_DUMP at 0x2000; the analysis must succeed."""
    result = synth_dump("credential-guard", "crash-bitmap")
    data = bytearray(Path(result.dump_path).read_bytes())
    assert data[0x2000:0x2008] == b"FDMPDUMP"
    data[0x2000:0x2000 + len(head)] = head
    dump = tmp_path / "memory.dmp"
    dump.write_bytes(bytes(data))
    code, _, stderr = run_cli("analyze", str(dump), "-s", str(result.symbols_dir), "-o",
                              str(tmp_path / "out"), "--offline", "-q", "--format", "json")
    assert (code, stderr) == (0, "")
    return json.loads((tmp_path / "out" / "report.json").read_text())


@SLOW
@pytest.mark.parametrize("signature", [b"SDMP", b"FDMP"])
def test_bitmap_dumps_with_either_summary_signature_are_analysed(signature, synth_dump,
                                                                 tmp_path):
    """Regression: every bitmap dump Windows writes (``SDMPDUMP`` for kernel and automatic
    dumps, ``FDMPDUMP`` for complete ones) was refused, because iumdump expected ``SDMPDU64``."""
    report = analyze_with_summary_head(synth_dump, tmp_path, signature)
    assert report["dump"]["format"] == "crash-bitmap"
    assert report["dump"]["summary_signature"] == signature.decode()
    kinds = {(f["kind"], f["pid"]) for f in report["findings"]}
    assert ("trustlet-pages-inaccessible", 712) in kinds
    assert not any(kind == "trustlet-pages-readable" for kind, _ in kinds)


def test_a_summary_header_windows_does_not_write_is_analysed_with_a_finding(synth_dump,
                                                                          tmp_path):
    """Regression: a bitmap dump reading ``SDMPDU64`` (iumdump's old emulator; Volatility reads
    it) was refused. It is analysed, and the report names the header as no Windows header."""
    report = analyze_with_summary_head(synth_dump, tmp_path, b"SDMPDU64")
    assert report["dump"]["summary_signature"] == "SDMPDU64"
    header = [f for f in report["findings"] if f["kind"] == "nonstandard-dump-header"]
    assert [(f["severity"], f["pid"]) for f in header] == [("low", None)]
    assert "'SDMPDU64'" in header[0]["message"]
    assert ("trustlet-pages-inaccessible", 712) in {(f["kind"], f["pid"])
                                                    for f in report["findings"]}


def test_credential_guard_with_kuser_everywhere_is_inaccessible_not_readable(synth_dump,
                                                                            tmp_path):
    """The emulator maps KUSER_SHARED_DATA into LsaIso.exe as Windows does; the report still
    says its pages are inaccessible, labels the shared page, and claims nothing readable."""
    result = synth_dump("credential-guard", "crash-bitmap")
    lsaiso = next(p for p in result.truth["processes"] if p["name"] == "LsaIso.exe")
    assert [r["start"] for r in lsaiso["pages"]["regions"] if r["shared"]] == [0x7FFE0000]
    code, _, stderr = run_cli("analyze", str(result.dump_path), "-s", str(result.symbols_dir),
                              "-o", str(tmp_path), "--offline", "-q")
    assert (code, stderr) == (0, "")
    report = json.loads((tmp_path / "report.json").read_text())
    kinds = {(f["kind"], f["pid"]) for f in report["findings"]}
    assert ("trustlet-pages-inaccessible", 712) in kinds
    assert "trustlet-pages-readable" not in {kind for kind, _ in kinds}
    (entry,) = [e for e in report["pages"] if e["pid"] == 712]
    assert (entry["shared_pages"], entry["readable"], entry["verdict"]) == (1, 0, "inaccessible")
    assert entry["control"]["captured"] is True
    markdown = (tmp_path / "report.md").read_text()
    assert "shared-user-data" in markdown and "control: " in markdown
    assert "shared user data page" in (tmp_path / "report.html").read_text()


def test_ctrl_c_during_the_analysis_exits_130_and_leaves_no_report(synth_dump, tmp_path,
                                                                   monkeypatch):
    """The exit status --help documents for an interrupt; the sha256 child is stopped and no
    report, whole or partial, is left behind."""
    from iumdump.analysis import engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "collect", interrupted)
    result = synth_dump("credential-guard", "crash-bitmap")
    out = tmp_path / "out"
    code, _, stderr = run_cli("analyze", str(result.dump_path), "-s", str(result.symbols_dir),
                              "-o", str(out), "--offline", "-q")
    assert (code, stderr) == (130, "iumdump: interrupted\n")
    assert not out.exists() or not any(out.iterdir())


def test_kernel_memory_dump_written_at_a_bug_check_is_not_captured(synth_dump, tmp_path):
    """Windows' own crash dump of a Credential Guard machine — a kernel memory dump (or an
    automatic one, the same file) written at a bug check: DumpType 6, SDMP — holds no process's
    user pages. LsaIso.exe's absent pages are the dump's doing, not VTL1's: not-captured, and no
    finding claims VTL1 protection or readable trustlet memory."""
    result = synth_dump("credential-guard", "crash-kernel")
    code, _, stderr = run_cli("analyze", str(result.dump_path), "-s", str(result.symbols_dir),
                              "-o", str(tmp_path), "--offline", "-q", "--format", "json")
    assert (code, stderr) == (0, "")
    report = json.loads((tmp_path / "report.json").read_text())
    dump = report["dump"]
    assert (dump["format"], dump["dump_type"], dump["summary_signature"]) == (
        "crash-live", 6, "SDMP")
    assert dump["bug_check"] == 0xE2  # MANUALLY_INITIATED_CRASH, as the emulator's crash-kernel
    (entry,) = [e for e in report["pages"] if e["name"] == "LsaIso.exe"]
    assert entry["verdict"] == "not-captured" and entry["readable"] == 0
    assert entry["control"]["captured"] is False and entry["control"]["pages"] > 0
    assert entry["control"]["readable"] == 0
    kinds = {(f["kind"], f["pid"]) for f in report["findings"]}
    assert ("trustlet-pages-not-captured", entry["pid"]) in kinds
    assert {"credential-guard", "vbs-active", "trustlet"} <= {kind for kind, _ in kinds}
    assert not {kind for kind, _ in kinds} & {"trustlet-pages-inaccessible",
                                              "trustlet-pages-readable"}
