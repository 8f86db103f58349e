"""fleet.json / fleet.csv / fleet.html from records, without a cluster: the summary counts, the
order by severity, and text from dumps and file names kept inert in every rendering."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from types import SimpleNamespace

import jsonschema
import pytest
from markers import SLOW

from iumdump.commands.analyze import analyze
from iumdump.errors import InvalidInputError
from iumdump.fleet import model, render
from iumdump.fleet import run as fleet_run
from iumdump.fleet.inputs import FleetDump
from iumdump.fleet.run import FleetOptions, _lost_worker_message
from iumdump.fleet.task import DumpJob, DumpOutcome
from iumdump.report import Report
from iumdump.report import output as report_output
from iumdump.visible import visible

pytestmark = SLOW  # dumps analysed for the fleet reports

HOSTILE_NAME = "<img src=x>\u202eexe.ssasl"
HOSTILE_PATH = "/evidence/=HYPERLINK(\"x\")/<b>memory</b>.dmp"


@pytest.fixture(scope="module")
def reports(synth_dump) -> dict[str, dict]:
    """report.json of the credential-guard, no-vbs and adversarial machines, as dictionaries."""
    out = {}
    for scenario in ("credential-guard", "no-vbs", "adversarial"):
        result = synth_dump(scenario, "crash-bitmap")
        out[scenario] = analyze(str(result.dump_path), symbol_dirs=[str(result.symbols_dir)],
                                offline=True, quiet=True).as_dict()
    return out


def record(name: str, report: dict | None, *, path: str | None = None, error: str | None = None):
    dump = FleetDump(path=path or f"/evidence/{name}/memory.dmp", given=name,
                     report_id=f"{name}-0000000{len(name) % 10}")
    if report is None:
        return model.dump_record(dump, "failed", error=f"{dump.path}: {error}", task_seconds=0.2)
    files = {fmt: f"{dump.report_dir}/report.{fmt}" for fmt in ("json", "md", "html")}
    return model.dump_record(dump, "analysed", report=report, reports=files, task_seconds=1.0)


def fleet_of(records) -> dict:
    return model.build_fleet(records, started=1_700_000_000.0, finished=1_700_000_060.0,
                             cluster={"scheduler": "local", "address": "tcp://127.0.0.1:1",
                                      "workers": 2, "threads_per_worker": 1,
                                      "memory_limit": 2 << 30, "allowed_failures": 1,
                                      "dashboard": None},
                             options={"symbol_dirs": [], "offline": True,
                                      "formats": ["json", "md", "html"], "timeout": None,
                                      "resume": False, "force": False})


def test_summary_counts_and_severity_order(reports):
    records = [record("ws02", reports["no-vbs"]), record("ws01", reports["credential-guard"]),
               record("bad", None, error="is empty (0 bytes), not a memory dump"),
               record("srv03", reports["adversarial"])]
    fleet = fleet_of(records)
    jsonschema.Draft202012Validator(render.fleet_schema()).validate(fleet)
    summary = fleet["summary"]
    assert summary["statuses"] == {"analysed": 3, "resumed": 0, "failed": 1, "interrupted": 0}
    assert (summary["machines"], summary["vbs"], summary["credential_guard"]) == (3, 2, 2)
    assert summary["without_credential_guard"] == ["/evidence/ws02/memory.dmp"]
    assert summary["highest_severity"] == {"high": 1, "medium": 0, "low": 0, "info": 1,
                                           "none": 1}
    assert summary["verdicts"]["masquerade"] == {"processes": 1, "machines": 1}
    secure = sum(r["summary"]["verdicts"]["secure"] for r in reports.values())
    assert summary["verdicts"]["secure"]["processes"] == secure
    # Failures first (nothing is known about them), then high, info, none.
    assert [r["path"].split("/")[2] for r in model.ordered_by_severity(fleet["dumps"])] == \
        ["bad", "srv03", "ws01", "ws02"]


def test_a_secure_verdict_with_an_implausible_state_is_not_a_secure_process(reports):
    """Regression: fleet counted every process whose verdict reads "secure", so a notepad.exe
    whose SecureState word is all ones (analyze: "not counted as a secure process") was one of
    the machine's secure processes in fleet.json while report.json left it out."""
    import copy

    report = copy.deepcopy(reports["credential-guard"])
    fake = dict(next(p for p in report["processes"] if p["name"] == "notepad.exe"))
    fake.update(verdict="secure", secure=True, doubts=["Pcb.SecureState 0xffffffffffffffff "
                                                       "sets bit 1"])
    report["processes"] = [fake if p["name"] == "notepad.exe" else p
                           for p in report["processes"]]
    listed = record("ws01", report)["secure_processes"]
    assert listed == [{"pid": p["pid"], "name": p["name"]}
                      for p in report["summary"]["secure_processes"]]
    assert "notepad.exe" not in {p["name"] for p in listed}
    assert {"Secure System", "LsaIso.exe"} <= {p["name"] for p in listed}


def test_hostile_text_stays_inert(reports):
    """A process name with markup and a right-to-left override, a file name that a spreadsheet
    would run as a formula or a browser would parse as markup."""
    hostile = json.loads(json.dumps(reports["adversarial"]))
    for process in hostile["processes"]:
        if process["verdict"] == "masquerade":
            process["name"] = HOSTILE_NAME
    fleet = fleet_of([record("srv03", hostile, path=HOSTILE_PATH),
                      record("=cmd", None, path="=cmd|' /C calc'!A0", error="bad <b>input</b>")])

    page = render.render_html(fleet)
    assert "<img" not in page and "<b>" not in page
    assert "&lt;img src=x&gt;\\u202eexe.ssasl" in page  # escaped, the override made visible
    assert "\u202e" not in page

    rows = list(csv.reader(io.StringIO(render.render_csv(fleet))))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]
    assert "'=cmd|' /C calc'!A0" in cells

    text = render.render_json(fleet)
    assert text.isascii() and "\\u202e" in text
    assert json.loads(text) == fleet


def test_an_error_about_a_hostile_file_name_is_escaped_once():
    """A bad dump's error is ``str()`` of analyze's Error, whose path is already made visible
    (``\\x1b``, ``\\udcff``). fleet.csv, fleet.html and the terminal escaped it a second time
    (``\\\\x1b``), so the error no longer named the file the path column shows, and fleet.html
    repeated the path because the prefix it strips is the visible one, not the raw one."""
    path = "/evidence/x\x1b[31mred\udcff.dmp"
    error = str(InvalidInputError("is empty (0 bytes), not a memory dump", path=path))
    assert error.startswith(visible(path) + ": ")
    dump = FleetDump(path=path, given=path, report_id="x-00000000")
    fleet = fleet_of([model.dump_record(dump, "failed", error=error, task_seconds=0.1)])

    rows = list(csv.reader(io.StringIO(render.render_csv(fleet))))
    assert (rows[1][0], rows[1][11]) == (visible(path), error)
    assert render.error_reason(fleet["dumps"][0]) == "is empty (0 bytes), not a memory dump"
    page = render.render_html(fleet)
    assert "\\\\x1b" not in page and "\\\\udcff" not in page and "\x1b" not in page
    assert page.count("x\\x1b[31mred\\udcff.dmp") == 2  # the failed table and the machines table
    # The client's own errors about a dump (a lost worker, a timeout) name it the same way.
    lost = _lost_worker_message(dump, 0, 2, FleetOptions(), SimpleNamespace(memory_limit=None))
    assert lost.startswith(visible(path) + ": the worker running it was lost")


def interrupt_after_first_write(monkeypatch, module) -> list[str]:
    """Make ``module.write_atomic`` send this process SIGINT, as Ctrl-C in a terminal does,
    once its first file is written; returns the names it writes."""
    real, written = module.write_atomic, []

    def write_then_interrupt(path, data, **kwargs):
        real(path, data, **kwargs)
        written.append(path.name)
        if len(written) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(module, "write_atomic", write_then_interrupt)
    return written

def test_ctrl_c_while_the_fleet_report_is_written_finishes_it(tmp_path, monkeypatch):
    """A second Ctrl-C while fleet.json, fleet.csv and fleet.html are written left fleet.json
    alone, describing a run whose CSV and HTML were missing or from an earlier run."""
    written = interrupt_after_first_write(monkeypatch, report_output)  # the writer fleet uses
    done = fleet_run.FleetRun(out_dir=tmp_path, planned=[], finished=1_700_000_060.0,
                              cluster=fleet_of([])["run"]["cluster"])
    with pytest.raises(KeyboardInterrupt):
        fleet_run.write_fleet(done, FleetOptions())
    assert sorted(written) == ["fleet.csv", "fleet.html", "fleet.json"]


def test_ctrl_c_while_a_dump_s_reports_are_written(reports, tmp_path, monkeypatch):
    """Ctrl-C between a dump's report.json and its report.md left report.json alone, and the
    fleet report called the dump interrupted beside it. Now the set is finished first and the
    fleet report says the dump was analysed; the run then stops as before."""
    interrupt_after_first_write(monkeypatch, report_output)
    dump = FleetDump(path="/evidence/ws01/memory.dmp", given="ws01", report_id="ws01-00000000")
    item = fleet_run.Planned(dump, DumpJob(path=dump.path, report_id=dump.report_id), 1, None)
    done = fleet_run.FleetRun(out_dir=tmp_path, planned=[item])
    outcome = DumpOutcome(path=dump.path, status="analysed",
                          report=Report.from_dict(reports["credential-guard"]))
    with pytest.raises(KeyboardInterrupt):
        fleet_run._Writer(done, FleetOptions()).record(item, outcome)
    assert sorted(os.listdir(tmp_path / dump.report_dir)) == ["report.html", "report.json",
                                                              "report.md"]
    [record] = done.ordered_records()
    assert record["status"] == "analysed" and sorted(record["reports"]) == ["html", "json", "md"]


def test_resume_without_report_json_is_refused(tmp_path):
    """--resume recognises a finished dump by its report.json; with --format md (no json) it
    found none and silently analysed every dump again."""
    (tmp_path / "ws01.dmp").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="--resume reads each dump's report.json"):
        fleet_run.plan([str(tmp_path / "ws01.dmp")], tmp_path / "audit",
                       FleetOptions(formats=("md", "html"), resume=True))
    assert fleet_run.plan([str(tmp_path / "ws01.dmp")], tmp_path / "audit",
                          FleetOptions(formats=("json",), resume=True))
