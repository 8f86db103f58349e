"""``iumdump synth`` as a user runs it, and the real ``vol`` command on what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iumdump.cli import main

SHARED_19041 = (Path(__file__).resolve().parents[2] / "shared" / "isf"
                / "606FF669409B00F7FC8C61A9C1670129-1.json.xz")


def _vol() -> str:
    candidate = Path(sys.executable).with_name("vol")
    return str(candidate) if candidate.exists() else "vol"


def test_help_explains_the_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("--scenario", "--format", "--isf", "--memory", "--seed", "credential-guard",
                 "crash-bitmap", "truth.json", "vol -f"):
        assert word in text


def test_defaults_write_a_credential_guard_crash_dump_vol_lists(tmp_path, vol_cache_dir):
    """The issue's done-when: ``iumdump synth -o out`` with no other options, then
    ``vol -f out/memory.dmp -s out/symbols windows.pslist`` lists its processes."""
    out = tmp_path / "out"
    assert main(["synth", "--quiet", "-o", str(out)]) == 0
    dump = out / "memory.dmp"
    assert dump.read_bytes()[:8] == b"PAGEDU64"
    truth = json.loads((out / "truth.json").read_text())
    assert (truth["scenario"], truth["format"], truth["kernel"]["profile"]) == (
        "credential-guard", "crash-bitmap", "builtin")
    symbol_file = (out / "symbols" / "windows" / "ntkrnlmp.pdb"
                   / f"{truth['kernel']['pdb_guid']}-{truth['kernel']['pdb_age']}.json.xz")
    assert symbol_file.is_file()
    command = [_vol(), "-q", "-r", "json", "--offline", "--cache-path", str(vol_cache_dir),
               "-f", str(dump), "-s", str(out / "symbols"), "windows.pslist"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert sorted(row["PID"] for row in rows) == sorted(
        p["pid"] for p in truth["processes"] if p["linked"])
    assert {row["ImageFileName"] for row in rows} >= {"System", "LsaIso.exe", "lsass.exe"}


def test_options_reach_the_files(tmp_path):
    if not SHARED_19041.is_file():
        pytest.skip(f"{SHARED_19041} is absent")
    out = tmp_path / "raw"
    assert main(["synth", "--quiet", "--scenario", "no-vbs", "--format", "raw", "--isf",
                 str(SHARED_19041), "--memory", "24M", "--seed", "5", "-o", str(out)]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert (out / "memory.raw").stat().st_size == 24 << 20
    assert (truth["scenario"], truth["format"], truth["seed"], truth["memory_size"]) == (
        "no-vbs", "raw", 5, 24 << 20)
    assert truth["kernel"]["pdb_guid"] == "606FF669409B00F7FC8C61A9C1670129"
    assert not any(p["secure"] for p in truth["processes"])
    copied = out / "symbols" / "windows" / "ntkrnlmp.pdb" / SHARED_19041.name
    assert copied.read_bytes() == SHARED_19041.read_bytes()


def test_a_scenario_file_and_fleet_parameters(tmp_path):
    scenario = tmp_path / "mine.toml"
    scenario.write_text((Path(__file__).resolve().parents[1] / "testdata" / "scenarios"
                         / "fleet-large.toml").read_text().replace('name = "fleet-large"',
                                                                   'name = "mine"'))
    out = tmp_path / "fleet"
    assert main(["synth", "--quiet", "--scenario", str(scenario), "--memory", "48M",
                 "--param", "processes=12", "--param", "trustlet_pages=64",
                 "--param", "pool_mb=4", "--param", "process_pages=8", "-o", str(out)]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["scenario"] == "mine" and len(truth["processes"]) == 19 + 12
    lsaiso = next(p for p in truth["processes"] if p["name"] == "LsaIso.exe")
    assert any(r["content"] == "secure-bulk" and r["pages"] == 64
               for r in lsaiso["pages"]["regions"])


@pytest.mark.parametrize("arguments,message", [
    (["--scenario", "no-such-thing"], "no scenario named 'no-such-thing'"),
    (["--memory", "12Q"], "memory size '12Q'"),
    (["--memory", "8M"], "below the minimum"),
    (["--isf", "/no/such/table.json.xz"], "symbol table not found"),
    (["--scenario", "fleet-large", "--memory", "32M", "--param", "colour=3"],
     "unknown parameter 'colour'"),
    (["--param", "processes"], "is not NAME=VALUE"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, arguments, message):
    assert main(["synth", "--quiet", *arguments, "-o", str(tmp_path / "x")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("iumdump synth: ")


def test_a_broken_scenario_file_is_named(tmp_path, capsys):
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "broken"\nvbs = yes\n')
    assert main(["synth", "--quiet", "--scenario", str(bad), "-o", str(tmp_path / "x")]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and str(bad) in line and "not valid TOML" in line
