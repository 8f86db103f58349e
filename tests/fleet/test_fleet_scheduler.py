"""``iumdump fleet --scheduler`` against a cluster started the way the README says — ``dask
scheduler`` and ``dask worker`` processes, here on 127.0.0.1 — with distributed's default worker
settings (daemonic workers: the evidence is then hashed in a thread)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fleet_fixtures import fleet_env, run_fleet
from markers import SLOW

from iumdump.commands.analyze import analyze

pytestmark = SLOW  # a Dask scheduler and workers started as commands

START_TIMEOUT = 120


def _dask(*args: str, home: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=fleet_env(home),
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a scheduler with one one-thread worker, both on the loopback interface."""
    root = tmp_path_factory.mktemp("cluster")
    home = root / "home"
    info = root / "scheduler.json"
    processes = [_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                       "--scheduler-file", str(info), home=home, log=root / "scheduler.log")]
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not info.is_file() or not info.read_text().strip():
            assert processes[0].poll() is None, (root / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        processes.append(_dask("worker", address, "--nthreads", "1", "--nworkers", "1",
                               "--host", "127.0.0.1", "--no-dashboard", home=home,
                               log=root / "worker.log"))
        yield address, root
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_fleet_on_a_running_cluster(scheduler, estate, tmp_path):
    address, root = scheduler
    out = tmp_path / "audit"
    good = estate.root / "ws01" / "memory.dmp"
    bad = next(iter(estate.bad))
    proc = run_fleet(str(good), str(bad), "-s", str(estate.symbols), "-o", str(out), "--offline",
                     "--scheduler", address, "--workers", "1", home=tmp_path / "home")
    assert proc.returncode == 3, proc.stderr + (root / "worker.log").read_text()[-3000:]
    assert f"cluster  scheduler {address}, 1 worker × 1 thread" in proc.stdout
    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["run"]["cluster"]["scheduler"] == address
    records = {r["path"]: r for r in fleet["dumps"]}
    assert records[str(good)]["status"] == "analysed"
    assert records[str(good)]["worker"].startswith("tcp://127.0.0.1:")
    assert records[str(bad)]["status"] == "failed"
    assert estate.bad[bad] in records[str(bad)]["error"]
    report = json.loads((out / records[str(good)]["reports"]["json"]).read_text())
    direct = analyze(str(good), symbol_dirs=[str(estate.symbols)], offline=True, quiet=True)
    assert report["dump"]["sha256"] == direct.dump["sha256"]  # hashed in the worker's thread
    assert report["processes"] == direct.processes and report["findings"] == direct.findings


def test_an_unreachable_scheduler_is_one_line(tmp_path, estate):
    proc = run_fleet(str(estate.root / "ws01" / "memory.dmp"), "-o", str(tmp_path / "audit"),
                     "--scheduler", "tcp://127.0.0.1:9", home=tmp_path / "home", timeout=120)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("iumdump fleet: tcp://127.0.0.1:9: cannot reach the Dask scheduler")
