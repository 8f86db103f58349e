"""``iumdump demo`` as a new user runs it: one command in an empty directory, no network, the
dump, symbols, truth and three reports in ./iumdump-demo, findings on the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from markers import SLOW

from iumdump.commands import plugins


def demo(cwd, *extra: str) -> subprocess.CompletedProcess:
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    return subprocess.run([sys.executable, "-m", "iumdump.cli", "demo", *extra], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_demo_in_an_empty_directory(tmp_path):
    proc = demo(tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "iumdump-demo"
    assert sorted(os.listdir(out)) == ["memory.dmp", "report.html", "report.json", "report.md",
                                       "symbols", "truth.json"]
    report = json.loads((out / "report.json").read_text())
    truth = json.loads((out / "truth.json").read_text())
    assert report["dump"]["format"] == "crash-bitmap"
    assert report["analysis"]["offline"] is True
    kinds = {(f["kind"], f["pid"]) for f in report["findings"]}
    assert {("vbs-active", 56), ("credential-guard", 712), ("trustlet", 712),
            ("trustlet-pages-inaccessible", 712), ("enclave-host", 3312)} == kinds
    assert [p["verdict"] for p in report["processes"]] == [p["verdict"] for p in truth["processes"]]
    # The terminal says where everything went and what was found.
    assert "iumdump-demo/memory.dmp" in proc.stdout
    assert "[info] credential-guard: LsaIso.exe (PID 712) runs as a trustlet" in proc.stdout
    assert "iumdump-demo/report.html" in proc.stdout
    assert 'vol -p "$(iumdump plugins)"' in proc.stdout
    assert "Traceback" not in proc.stderr


@SLOW  # two demos
def test_demo_refuses_a_used_directory_without_force(tmp_path):
    out = tmp_path / "iumdump-demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = demo(tmp_path, "-q")
    assert proc.returncode == 2
    assert proc.stderr == ("iumdump demo: iumdump-demo: is not empty (a previous demo?); pass "
                           "--force to redo the demo there, or choose another -o\n")
    assert os.listdir(out) == ["notes.txt"]
    proc = demo(tmp_path, "-q", "--force")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"iumdump-demo/report.{ext}" for ext in ("json", "md", "html")]
    assert (out / "notes.txt").read_text() == "mine"


def test_plugins_prints_the_plugin_directory():
    proc = subprocess.run([sys.executable, "-m", "iumdump.cli", "plugins"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    directory = proc.stdout.strip()
    assert directory == str(plugins.plugin_directory())
    assert os.path.isfile(os.path.join(directory, "windows", "secureprocs.py"))
