"""``iumdump fleet`` on a local Dask cluster over a small estate with bad dumps among the good:
each dump's report is the one ``iumdump analyze`` writes; each bad dump is recorded with the
error ``analyze`` gives it and the others go on; fleet.json follows its schema, fleet.csv has the
issue's columns, fleet.html links every report; --resume skips what is done; --timeout retries
once, then fails; Ctrl-C leaves complete files only."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from fleet_fixtures import FLEET_TIMEOUT, fleet_env, run_fleet
from markers import SLOW
from test_html_chromium import CHROMIUM, rgb, screenshot_colours

from iumdump.commands.analyze import analyze
from iumdump.errors import Error
from iumdump.fleet import render

pytestmark = SLOW  # a local Dask cluster per run

# What differs between two analyses of the same dump: when they ran and how long each step took.
RUN_DEPENDENT = ("started", "finished", "duration_seconds", "timings")


@pytest.fixture(scope="module")
def first_run(estate, tmp_path_factory):
    """(estate, OUTDIR, completed process) of one fleet run over the estate's folder."""
    out = tmp_path_factory.mktemp("fleet") / "audit"
    proc = run_fleet(str(estate.root), "-s", str(estate.symbols), "-o", str(out), "--offline",
                     "--workers", "2", home=tmp_path_factory.mktemp("home"))
    return estate, out, proc


def load(out: Path) -> dict:
    return json.loads((out / "fleet.json").read_text())


def comparable(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for key in RUN_DEPENDENT:
        report["analysis"].pop(key, None)
    return report


def validate(fleet: dict) -> None:
    jsonschema.Draft202012Validator(render.fleet_schema()).validate(fleet)


def test_exit_status_and_terminal(first_run):
    estate, out, proc = first_run
    assert proc.returncode == 3, proc.stderr  # the fleet report is written; some dumps failed
    assert "Traceback" not in proc.stderr
    # One line per failed dump on stderr, each naming the file.
    failed_lines = [line for line in proc.stderr.splitlines() if line.startswith("failed ")]
    assert sorted(line.split()[1].rstrip(":") for line in failed_lines) == \
        sorted(str(path) for path in estate.bad)
    assert re.search(r"^done +3 analysed, 0 resumed, 3 failed in ", proc.stdout, re.M)
    assert "cluster  local, 2 workers × 1 thread" in proc.stdout
    assert f"{out}/fleet.html" in proc.stdout


def test_fleet_json_follows_its_schema(first_run):
    _, out, _ = first_run
    jsonschema.Draft202012Validator.check_schema(render.fleet_schema())
    validate(load(out))


def test_every_dump_found_once_and_nothing_else(first_run):
    estate, out, _ = first_run
    fleet = load(out)
    assert [record["path"] for record in fleet["dumps"]] == [str(p) for p in estate.dumps]
    assert not {str(p) for p in estate.others} & {r["path"] for r in fleet["dumps"]}
    assert fleet["summary"]["statuses"] == {"analysed": 3, "resumed": 0, "failed": 3,
                                            "interrupted": 0}
    assert fleet["run"]["cluster"]["workers"] == 2
    assert fleet["run"]["cluster"]["allowed_failures"] == 1


def test_each_report_is_the_one_analyze_writes(first_run):
    """The same engine, options and result: the per-dump report.json equals analyze's, apart
    from when the analysis ran."""
    estate, out, _ = first_run
    records = {r["path"]: r for r in load(out)["dumps"]}
    for path in estate.good:
        record = records[str(path)]
        assert record["status"] == "analysed"
        assert sorted(os.listdir(out / record["report_dir"])) == ["report.html", "report.json",
                                                                 "report.md"]
        from_fleet = json.loads((out / record["reports"]["json"]).read_text())
        direct = analyze(str(path), symbol_dirs=[str(estate.symbols)], offline=True,
                         quiet=True).as_dict()
        assert comparable(from_fleet) == comparable(direct)
        # The fleet's record repeats the report's facts.
        assert record["sha256"] == direct["dump"]["sha256"]
        assert record["credential_guard"] == direct["summary"]["credential_guard"]
        assert record["kernel_build"] == direct["kernel"]["build"]


def test_truth_reaches_the_fleet_record(first_run):
    """The machines' known facts, through the whole chain."""
    estate, out, _ = first_run
    records = {r["path"]: r for r in load(out)["dumps"]}
    guard = records[str(estate.root / "ws01" / "memory.dmp")]
    assert (guard["vbs"], guard["credential_guard"]) == (True, True)
    assert guard["highest_severity"] == "info"
    no_vbs = records[str(estate.root / "ws02" / "memory.dmp")]
    assert (no_vbs["vbs"], no_vbs["credential_guard"], no_vbs["secure_processes"]) == \
        (False, False, [])
    adversarial = records[str(estate.root / "srv03" / "memory.raw")]
    truth = estate.good[estate.root / "srv03" / "memory.raw"].truth["processes"]
    assert adversarial["masquerades"] == [{"pid": p["pid"], "name": p["name"]} for p in truth
                                          if p["verdict"] == "masquerade"]
    assert adversarial["unlinked_secure"] == [{"pid": p["pid"], "name": p["name"]} for p in truth
                                              if p["secure"] and not p["linked"]]
    assert adversarial["highest_severity"] == "high"
    summary = load(out)["summary"]
    assert summary["without_credential_guard"] == [str(estate.root / "ws02" / "memory.dmp")]
    assert summary["builds"] == {"19041": {"machines": 3, "vbs": 2, "credential_guard": 2}}


def test_bad_dumps_keep_analyze_s_error(first_run):
    estate, out, _ = first_run
    records = {r["path"]: r for r in load(out)["dumps"]}
    for path, reason in estate.bad.items():
        record = records[str(path)]
        assert record["status"] == "failed" and record["reports"] == {}
        with pytest.raises(Error) as refused:
            analyze(str(path), symbol_dirs=[str(estate.symbols)], offline=True, quiet=True)
        assert record["error"] == str(refused.value)
        assert reason in record["error"] and "\n" not in record["error"]
        assert not (out / record["report_dir"]).exists()


def test_csv_has_one_row_per_dump_with_the_issue_s_columns(first_run):
    estate, out, _ = first_run
    with open(out / "fleet.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == render.CSV_COLUMNS
    assert render.CSV_COLUMNS[:11] == (
        "path", "sha256", "kernel_build", "vbs", "credential_guard", "secure_processes",
        "masquerades", "unlinked_secure", "highest_severity", "status", "seconds")
    fleet = load(out)
    assert [row["path"] for row in rows] == [r["path"] for r in fleet["dumps"]]
    for row, record in zip(rows, fleet["dumps"]):
        assert row["status"] == record["status"]
        if record["status"] == "analysed":
            assert row["sha256"] == record["sha256"]
            assert row["vbs"] == ("yes" if record["vbs"] else "no")
            assert int(row["secure_processes"]) == len(record["secure_processes"])
            assert int(row["masquerades"]) == len(record["masquerades"])
            assert row["report"] == record["reports"]["html"]
        else:
            assert row["error"] == record["error"] and row["sha256"] == ""


def test_html_links_every_report_and_loads_nothing(first_run):
    _, out, _ = first_run
    page = (out / "fleet.html").read_text()
    assert "<script" not in page
    assert render.report_html.CSP in page
    links = re.findall(r'href="([^"]+)"', page)
    analysed = [r for r in load(out)["dumps"] if r["status"] == "analysed"]
    assert {r["reports"]["html"] for r in analysed} <= set(links)
    for link in links:
        assert not re.match(r"[a-z]+:", link), link  # relative: nothing leaves the folder
        assert (out / link).is_file(), link


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_fleet_html_renders_in_chromium(first_run, tmp_path):
    """fleet.html as a browser shows it under its Content-Security-Policy: not blank, the dark
    header, the high-severity colour (the adversarial machine's masquerade) and the badge of
    the failed dumps on screen."""
    _, out, _ = first_run
    counts = screenshot_colours(out / "fleet.html", tmp_path)
    for colour in ("#0f172a", "#b91c1c", "#111827"):
        assert counts[rgb(colour)] > 20, f"{colour} is not on screen"


def test_a_second_run_into_the_same_folder_is_refused(first_run, tmp_path):
    estate, out, _ = first_run
    proc = run_fleet(str(estate.root), "-o", str(out), "--offline", home=tmp_path / "home")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"iumdump fleet: {out}: holds an earlier fleet run; pass --resume to finish it, --force "
        "to analyse every dump again, or choose another -o"]


def test_resume_skips_finished_dumps_and_redoes_changed_ones(first_run, tmp_path):
    """Runs last in this module: it changes a dump of the estate."""
    estate, out, _ = first_run
    before = {r["path"]: r for r in load(out)["dumps"]}
    stamps = {path: os.stat(out / record["reports"]["json"]).st_mtime_ns
              for path, record in before.items() if record["status"] == "analysed"}
    home = tmp_path / "home"

    proc = run_fleet(str(estate.root), "-s", str(estate.symbols), "-o", str(out), "--offline",
                     "--workers", "1", "--resume", home=home)
    assert proc.returncode == 3, proc.stderr
    after = {r["path"]: r for r in load(out)["dumps"]}
    validate(load(out))
    for path, stamp in stamps.items():
        assert after[path]["status"] == "resumed"
        assert os.stat(out / after[path]["reports"]["json"]).st_mtime_ns == stamp  # untouched
        assert after[path]["sha256"] == before[path]["sha256"]
    assert {p for p, r in after.items() if r["status"] == "failed"} == {str(p) for p in estate.bad}

    # The same size and modification time but other content: the sha256 gives it away.
    changed = estate.root / "ws01" / "memory.dmp"  # a private copy
    info = os.stat(changed)
    with open(changed, "r+b") as handle:
        handle.seek(info.st_size - 1)
        last = handle.read(1)
        handle.seek(info.st_size - 1)
        handle.write(bytes([last[0] ^ 0xFF]))
    os.utime(changed, ns=(info.st_atime_ns, info.st_mtime_ns))
    proc = run_fleet(str(changed), str(estate.root / "ws02" / "memory.dmp"), "-s",
                     str(estate.symbols), "-o", str(out), "--offline", "--workers", "1",
                     "--resume", home=home)
    assert proc.returncode == 0, proc.stderr
    again = {r["path"]: r for r in load(out)["dumps"]}
    assert again[str(changed)]["status"] == "analysed"
    assert "sha256" in again[str(changed)]["note"]
    assert again[str(changed)]["sha256"] != before[str(changed)]["sha256"]
    assert again[str(estate.root / "ws02" / "memory.dmp")]["status"] == "resumed"


def test_timeout_retries_once_then_fails(estate, tmp_path):
    """Every analysis takes longer than a tenth of a second (Volatility's layer and kernel search
    alone do), so both attempts run out; the worker is restarted each time."""
    out = tmp_path / "audit"
    dump = estate.root / "ws02" / "memory.dmp"
    proc = run_fleet(str(dump), "-s", str(estate.symbols), "-o", str(out), "--offline",
                     "--workers", "1", "--timeout", "0.1", home=tmp_path / "home")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    [record] = load(out)["dumps"]
    assert record["status"] == "failed"
    assert record["error"] == (f"{dump}: timed out: still running after --timeout 0.1 s on each "
                               "of its 2 attempts")
    assert not (out / record["report_dir"]).exists()


def test_ctrl_c_stops_cleanly(estate, tmp_path):
    """SIGINT to the whole process group, as a terminal sends it, once the first report is
    written: exit 130, no traceback from the client or a worker, no temporary file, every
    report complete, the fleet report saying what was done."""
    source = next(p for p in estate.good if not p.is_symlink())
    batch = tmp_path / "batch"
    for index in range(8):
        target = batch / f"host{index:02}" / "memory.dmp"
        target.parent.mkdir(parents=True)
        target.write_bytes(source.read_bytes())
    out = tmp_path / "audit"
    command = [sys.executable, "-m", "iumdump.cli", "fleet", str(batch), "-s",
               str(estate.symbols), "-o", str(out), "--offline", "--workers", "1"]
    proc = subprocess.Popen(command, env=fleet_env(tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + FLEET_TIMEOUT
    while not list((out / "reports").glob("*/report.html")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "run the same command with --resume to finish" in stderr
    # iumdump.atomic's temporaries are .<name>.<random>.part (the .tmp check alone never failed)
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".part"))]
    fleet = load(out)
    validate(fleet)
    assert fleet["run"]["interrupted"] is True
    statuses = {r["status"] for r in fleet["dumps"]}
    assert "analysed" in statuses and "interrupted" in statuses
    for record in fleet["dumps"]:
        for report in record["reports"].values():
            if report.endswith(".json"):
                json.loads((out / report).read_text())  # complete, not half written
        if record["status"] == "interrupted":
            assert not (out / record["report_dir"]).exists()
