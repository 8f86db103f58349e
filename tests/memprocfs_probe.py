"""What MemProcFS sees in one dump, as JSON on stdout: run by tests/slat/test_memprocfs_oracle.py.

    python tests/memprocfs_probe.py DUMP [PID ...]

MemProcFS (PyPI ``memprocfs``, an AGPL tool used here only as a test oracle) is opened with the
symbol server disabled, so everything it finds comes from the dump and its own offline
knowledge: the DTB and ntoskrnl.exe by its scans, process offsets by its EPROCESS heuristics or
its bundled offset database. Its native libraries resolve each other through the loader path, so
this runs in a child process started with LD_LIBRARY_PATH naming the wheels' folders; one child per
dump also keeps each MemProcFS instance apart.

Output: ``{"ok": true, "build": N, "modules": [...], "processes": [{pid, ppid, name, eprocess,
dtb, state, path, listed, threads, vads}]}`` — every process MemProcFS lists, and each PID given
on the command line that it knows but does not list (its list leaves out exited processes,
``state`` 1) with ``listed`` false; ``threads``/``vads`` are counts, or null when MemProcFS gives
no such map for the process. ``{"ok": false, "error": "...", "log": "..."}`` when it cannot
initialise, with its own log of how far it got (debug level).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def _count(process, what: str) -> int | None:
    try:
        return len(getattr(process.maps, what)())
    except RuntimeError:  # MemProcFS's "ProcessMaps.<what>(): Failed."
        return None


def _describe(process, listed: bool) -> dict:
    return {"pid": process.pid, "ppid": process.ppid, "name": process.name,
            "eprocess": process.eprocess, "dtb": process.dtb, "state": process.state,
            "path": process.pathkernel, "listed": listed,
            "threads": _count(process, "thread"), "vads": _count(process, "vad")}


def main(dump: str, pids: list[int]) -> int:
    import memprocfs

    with tempfile.TemporaryDirectory(prefix="memprocfs-probe-") as folder:
        log = Path(folder) / "memprocfs.log"
        try:
            vmm = memprocfs.Vmm(["-device", dump, "-disable-symbolserver", "-waitinitialize",
                                 "-logfile", str(log), "-loglevel", "f:5"])
        except Exception as exc:  # MemProcFS raises a bare Exception when initialisation fails
            text = log.read_text(errors="replace") if log.exists() else ""
            print(json.dumps({"ok": False, "error": str(exc), "log": text}))
            return 0
    processes = [_describe(p, True) for p in vmm.process_list()]
    listed = {p["pid"] for p in processes}
    for pid in pids:
        if pid not in listed:
            try:
                processes.append(_describe(vmm.process(pid), False))
            except Exception:  # "Vmm.process(): No such process"
                pass
    modules = [{"name": m.name, "base": m.base, "size": m.image_size}
               for m in vmm.kernel.process.module_list()]
    print(json.dumps({"ok": True, "build": vmm.kernel.build, "modules": modules,
                      "processes": processes}))
    vmm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], [int(pid) for pid in sys.argv[2:]]))
