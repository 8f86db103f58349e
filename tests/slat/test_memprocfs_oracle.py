"""MemProcFS is the second oracle of the synthetic kernel: a reader nobody here wrote, with its
own heuristics and its own offset database, and less forgiving than Volatility.

For every bundled scenario × acquisition format × profile (built-in, real 14393 and 19041 tables),
MemProcFS with the symbol server disabled must initialise on the dump — find the DTB, ntoskrnl.exe
(by its header page and export directory: vmm/vmmwininit.c) and the EPROCESS offsets (by its
heuristics, vmm/vmmwin.c VmmWinProcess_OffsetLocator64, or its offline database) — and list every
linked process with the truth's PID, PPID, name, EPROCESS address and DTB, the NT image path of
each user process, and as many threads and VADs as the truth has.

MemProcFS runs in a child process (tests/memprocfs_probe.py): its native libraries find each other
through LD_LIBRARY_PATH, which a running process cannot change for itself. The tests skip when
the ``memprocfs`` package is not installed or cannot load (it needs libusb-1.0 from Debian);
``.ci/run`` installs both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from markers import SLOW

from iumdump.slat.writers import FORMATS

pytestmark = SLOW  # MemProcFS opens every dump of the matrix, in a child process

PROBE = Path(__file__).resolve().parents[1] / "memprocfs_probe.py"
SCENARIOS = ("credential-guard", "no-vbs", "adversarial", "fleet-large")
PROFILES = ("builtin", "14393", "19041")  # the real ones skip when ../shared/isf lacks them
# fleet-large made small (the machine of test_kernel's tiny fleet, so the dump is shared).
FLEET = {"memory": "64M", "params": {"processes": 40, "trustlet_pages": 512, "pool_mb": 8,
                                      "process_pages": 16, "fill": 0.85}}
# A kernel-only dump (live, or written at a bug check) of a kernel whose PDB MemProcFS does not
# know is what it cannot read; test_memprocfs_needs_known_symbols_for_a_live_kernel_dump holds it
# to that.
KERNEL_ONLY = ("crash-live", "crash-kernel")
UNREADABLE = {(fmt, "builtin") for fmt in KERNEL_ONLY}
MATRIX = [(s, f, p) for s in SCENARIOS for f in FORMATS for p in PROFILES
          if (f, p) not in UNREADABLE]
IDS = [f"{s}-{f}-{p}" for s, f, p in MATRIX]
_SEEN: dict[Path, dict] = {}


def _library_dirs() -> list[str]:
    dirs = []
    for package in ("memprocfs", "leechcorepyc"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"MemProcFS is not installed (no {package} package; .ci/run installs it)")
        dirs.append(spec.submodule_search_locations[0])
    return dirs


@pytest.fixture(scope="session")
def memprocfs_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        _library_dirs() + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
    loaded = subprocess.run([sys.executable, "-c", "import memprocfs; memprocfs.Vmm"], env=env,
                            capture_output=True, text=True, timeout=120)
    if loaded.returncode != 0:
        last = (loaded.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"MemProcFS cannot load here: {last}")
    return env


def _probe(dump_path: Path, pids: list[int], env: dict[str, str]) -> dict:
    if dump_path not in _SEEN:
        run = subprocess.run([sys.executable, str(PROBE), str(dump_path), *map(str, pids)],
                             env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"MemProcFS crashed on {dump_path}: {run.stderr[-2000:]}"
        _SEEN[dump_path] = json.loads(run.stdout.strip().splitlines()[-1])
    return _SEEN[dump_path]


def _open(synth_dump, env, scenario: str, fmt: str, profile: str):
    options = FLEET if scenario == "fleet-large" else {}
    result = synth_dump(scenario, fmt, profile, **options)
    found = _probe(Path(result.dump_path), [p["pid"] for p in result.truth["processes"]], env)
    return result, found


@pytest.fixture(params=MATRIX, ids=IDS)
def seen(request, synth_dump, memprocfs_env):
    result, found = _open(synth_dump, memprocfs_env, *request.param)
    assert found["ok"], (f"MemProcFS cannot open {result.dump_path}: {found['error']}\n"
                         f"{found['log'][-3000:]}")
    return result.truth, found


def test_memprocfs_finds_the_kernel_the_truth_describes(seen):
    truth, found = seen
    kernel = truth["kernel"]
    assert found["build"] == kernel["build"]
    modules = {m["name"].lower(): m for m in found["modules"]}
    assert modules["ntoskrnl.exe"]["base"] == kernel["base"]
    assert "hal.dll" in modules


def test_memprocfs_lists_every_linked_process_as_the_truth_has_it(seen):
    truth, found = seen
    listed = {p["pid"]: p for p in found["processes"]}
    for process in (p for p in truth["processes"] if p["linked"]):
        got = listed.get(process["pid"])
        assert got is not None, f"MemProcFS does not find {process['name']} ({process['pid']})"
        assert (got["ppid"], got["name"], got["eprocess"]) == \
            (process["ppid"], process["name"], process["address"]), process["name"]
        if got["state"] == 0:
            assert got["listed"] and got["dtb"] == process["dtb"], process["name"]
        else:
            # An exited process (signalled, being deleted) MemProcFS keeps out of its list and
            # does not trust with a DTB: VmmProcessCreateEntry verifies a DTB only for state 0
            # and stores 0 otherwise (vmm/vmm.c).
            assert not got["listed"] and got["dtb"] == 0, process["name"]
        # SeAuditProcessCreationInfo, which MemProcFS takes for the path when it is an NT
        # device path (VmmWinProcess_Enumerate_PostProcessing); the minimal processes' bare
        # names it replaces with the EPROCESS name.
        path = process["image_path"] or ""
        assert got["path"] == (path if path.startswith("\\Device\\") else got["name"]), \
            process["name"]


def test_memprocfs_lists_nothing_the_truth_does_not_have(seen):
    """Whatever else MemProcFS finds (it also scans for processes cut from the list) is a process
    the emulator made, at the address it made it."""
    truth, found = seen
    made = {p["pid"]: p for p in truth["processes"]}
    for got in found["processes"]:
        assert got["pid"] in made, got
        assert got["eprocess"] == made[got["pid"]]["address"], got


def test_memprocfs_counts_the_truths_threads_and_vads(seen):
    truth, found = seen
    listed = {p["pid"]: p for p in found["processes"]}
    for process in (p for p in truth["processes"] if p["linked"]):
        got = listed[process["pid"]]
        assert got["threads"] == process["threads"], process["name"]
        regions = process["pages"]["regions"] if process["pages"] else []
        if got["vads"] is None:
            # MemProcFS builds a process's VAD map only when some VAD maps a section (an image):
            # MmVad_ExtendedInfoFetch stops at "no VAD with a subsection" and the map API fails
            # (vmm/mm/mm_vad.c) — System and the minimal processes have no count to compare.
            assert not any(r["tag"] == "Vad " for r in regions), process["name"]
        else:
            assert got["vads"] == len(regions), process["name"]


@pytest.mark.parametrize("fmt", KERNEL_ONLY)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_memprocfs_needs_known_symbols_for_a_live_kernel_dump(scenario, fmt, synth_dump,
                                                              memprocfs_env):
    """A live kernel dump (DumpType 6), like a kernel memory dump written at a bug check (the
    same DumpType, crash-kernel), holds no user pages, so MemProcFS's EPROCESS heuristic —
    it tells the PEB by following smss's user pointers (VmmWinProcess_OffsetLocator64) — has
    nothing to check, and with the symbol server disabled it takes offsets only for a PDB its
    database knows (VmmWinProcess_OffsetLocatorSYMSERV): the real tables' live dumps open above,
    the built-in profile's made-up GUID cannot. MemProcFS must still get as far as a reader can:
    the DTB, ntoskrnl.exe and System's EPROCESS through the export directory. Should it one day
    read this dump, this test fails and the combination joins the matrix."""
    result, found = _open(synth_dump, memprocfs_env, scenario, fmt, "builtin")
    assert not found["ok"]
    log = found["log"]
    assert f"NTOS located at: {result.truth['kernel']['base']:016x}" in log
    system = next(p for p in result.truth["processes"] if p["pid"] == 4)
    assert f"EPROCESS located at {system['address']:016x}" in log
    assert "Unable to locate EPROCESS offsets" in log
