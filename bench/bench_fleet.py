"""Benchmark ``iumdump fleet`` against the obvious alternative — a shell loop of ``iumdump
analyze`` — on the same 16 emulator dumps, in one run.

    python bench/bench_fleet.py --workdir /tmp/iumdump-bench-fleet [--large-memory 1G] [--repeat 1]

The dumps mix scenarios (credential-guard, no-vbs, adversarial, fleet-large) and formats (raw,
crash-full, crash-bitmap, crash-live, host), some laid out by the real 1607 and 2004 kernels'
symbol tables from ../shared/isf when present; four are fleet-large machines of
``--large-memory`` (one raw at twice that). They are synthesized once into WORKDIR and reused.
Every command runs as a subprocess, as the analyst would start it, with wall time taken per run
(median of ``--repeat``, the three commands taking turns so that a change of load hits all):

- the loop: ``iumdump analyze DUMP -s SYMBOLS --offline`` for each dump, one after the other;
- ``iumdump fleet DUMPS… --workers 1`` and ``--workers 2`` (a local Dask cluster).

Goals on a 2-core machine: fleet --workers 2 <= 0.6 x the loop; fleet --workers 1 <= 1.1 x the
loop (Dask costs under 10 %). Also printed: each worker's peak RSS (from fleet.json) against the
largest peak of one ``analyze``, dumps per hour per worker, and the CPU seconds each way spent
(user + system, the whole process tree): a wall time that grows while the CPU time does not
means the cores were busy with something else. The reports of the two ways are compared:
each fleet report must equal the loop's apart from its timings. The load average is
printed before and after each command: the figures mean little on a machine that is busy with
other work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_analyze import print_goals  # bench/ is the script's directory

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SHARED_ISF = REPO.parent / "shared" / "isf"
ISFS = {"14393": SHARED_ISF / "517E128F7B7C4EA79491DE6B9B9CE190-1.json.xz",
        "19041": SHARED_ISF / "606FF669409B00F7FC8C61A9C1670129-1.json.xz"}
GOALS = {"fleet1_vs_loop": 1.1, "fleet2_vs_loop": 0.6}
RUN_DEPENDENT = ("started", "finished", "duration_seconds", "timings")


def dump_plan(large: str) -> list[tuple[str, str, str, str | None]]:
    """(scenario, format, memory, real symbol table or None) of the 16 dumps."""
    number, unit = int(large[:-1]), large[-1]
    return [
        ("fleet-large", "raw", f"{2 * number}{unit}", None),
        ("fleet-large", "crash-full", large, None),
        ("fleet-large", "crash-bitmap", large, None),
        ("fleet-large", "host", large, None),
        ("credential-guard", "crash-bitmap", "512M", None),
        ("credential-guard", "raw", "512M", None),
        ("credential-guard", "crash-full", "256M", "19041"),
        ("credential-guard", "crash-bitmap", "256M", "14393"),
        ("no-vbs", "crash-bitmap", "256M", None),
        ("credential-guard", "crash-live", "512M", None),
        ("no-vbs", "crash-full", "256M", "19041"),
        ("adversarial", "crash-bitmap", "256M", None),
        ("adversarial", "raw", "512M", None),
        ("adversarial", "host", "256M", None),
        ("adversarial", "crash-full", "256M", "14393"),
        ("adversarial", "crash-bitmap", "256M", "19041"),
    ]


def synthesize(workdir: Path, large: str) -> tuple[list[Path], Path]:
    """The dumps (synthesized once) and one symbols directory holding every table they need."""
    symbols = workdir / "symbols"
    dumps = []
    for index, (scenario, fmt, memory, isf) in enumerate(dump_plan(large)):
        if isf and not ISFS[isf].is_file():
            isf = None  # the real table is absent: the built-in profile stands in
        out = workdir / "dumps" / f"{index:02}-{scenario}-{fmt}-{memory}-{isf or 'builtin'}"
        if not (out / "truth.json").is_file():
            command = [str(BIN / "iumdump"), "synth", "--scenario", scenario, "--format", fmt,
                       "--memory", memory, "--seed", str(index), "-q", "-o", str(out)]
            if isf:
                command += ["--isf", str(ISFS[isf])]
            print(f"synthesizing {out.name}", file=sys.stderr)
            subprocess.run(command, check=True)
        for table in (out / "symbols").rglob("*.json.xz"):
            target = symbols / table.relative_to(out / "symbols")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(table, target)
        dumps.append(next(p for p in out.iterdir() if p.name.startswith("memory.")))
    return dumps, symbols


def load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def run(command: list[str], env: dict, ok=(0,)) -> tuple[float, int, float]:
    """(wall seconds, peak RSS bytes of the process tree's largest process, CPU seconds of the
    whole tree) of one command."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code not in ok:
            err.seek(0)
            raise SystemExit(f"failed ({code}): {' '.join(command)}\n"
                             f"{err.read().decode(errors='replace')[-3000:]}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def loop(dumps: list[Path], symbols: Path, out: Path, env: dict) -> dict:
    walls, peaks, cpus = [], [], []
    for dump in dumps:
        target = out / dump.parent.name
        wall, peak, cpu = run([str(BIN / "iumdump"), "analyze", str(dump), "-s", str(symbols),
                               "-o", str(target), "--offline", "-q", "--force"], env)
        walls.append(wall)
        peaks.append(peak)
        cpus.append(cpu)
    return {"wall": sum(walls), "per_dump": walls, "peak_rss": max(peaks), "cpu": sum(cpus)}


def fleet(dumps: list[Path], symbols: Path, out: Path, workers: int, env: dict) -> dict:
    if out.exists():
        shutil.rmtree(out)
    wall, peak, cpu = run([str(BIN / "iumdump"), "fleet", *map(str, dumps), "-s", str(symbols),
                           "-o", str(out), "--offline", "-q", "--workers", str(workers)], env)
    data = json.loads((out / "fleet.json").read_text())
    failed = [r for r in data["dumps"] if r["status"] != "analysed"]
    if failed:
        raise SystemExit(f"fleet --workers {workers} did not analyse {failed[0]['path']}: "
                         f"{failed[0]['error']}")
    per_worker: dict[str, int] = {}
    after: dict[str, list[int]] = {}
    for record in data["dumps"]:
        worker = record["worker"]
        per_worker[worker] = max(per_worker.get(worker, 0), record["worker_peak_rss"])
        after.setdefault(worker, []).append(record["worker_rss"])
    return {"wall": wall, "cpu": cpu, "tree_peak_rss": peak, "worker_peak_rss": per_worker,
            "worker_rss_after_tasks": after, "dumps": data["dumps"]}


def comparable(path: Path) -> dict:
    report = json.loads(path.read_text())
    for key in RUN_DEPENDENT:
        report["analysis"].pop(key, None)
    return report


def check_same_reports(dumps: list[Path], loop_out: Path, fleet_result: dict, fleet_out: Path):
    records = {r["path"]: r for r in fleet_result["dumps"]}
    for dump in dumps:
        mine = comparable(fleet_out / records[str(dump)]["reports"]["json"])
        theirs = comparable(loop_out / dump.parent.name / "report.json")
        if mine != theirs:
            raise SystemExit(f"fleet's report of {dump} differs from analyze's")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "iumdump-bench-fleet")
    parser.add_argument("--large-memory", default="1G",
                        help="memory of the fleet-large machines, e.g. 1G (one raw gets twice)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    dumps, symbols = synthesize(args.workdir, args.large_memory)
    total = sum(d.stat().st_size for d in dumps)
    print(f"{len(dumps)} dumps, {total / 2**30:.2f} GiB; warming the page cache", file=sys.stderr)
    for dump in dumps:
        with open(dump, "rb", buffering=0) as handle:
            while handle.read(8 << 20):
                pass
    home = args.workdir / "home"  # one Volatility cache for every command, warmed first
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    out = args.workdir / "out"
    run([str(BIN / "iumdump"), "analyze", str(dumps[-1]), "-s", str(symbols), "-o",
         str(out / "warm"), "--offline", "-q", "--force"], env)

    results: dict[str, list[dict]] = {"loop": [], "fleet1": [], "fleet2": []}
    loads: list[tuple[str, str, str]] = []
    for _ in range(args.repeat):
        for name in results:
            before = load()
            if name == "loop":
                result = loop(dumps, symbols, out / "loop", env)
            else:
                workers = int(name[-1])
                result = fleet(dumps, symbols, out / name, workers, env)
                check_same_reports(dumps, out / "loop", result, out / name)
            results[name].append(result)
            loads.append((name, before, load()))
            print(f"{name}: {result['wall']:.1f} s (load {before} → {loads[-1][2]})",
                  file=sys.stderr)

    wall = {name: statistics.median(r["wall"] for r in runs) for name, runs in results.items()}
    ratios = {"fleet1_vs_loop": wall["fleet1"] / wall["loop"],
              "fleet2_vs_loop": wall["fleet2"] / wall["loop"]}
    analyze_peak = max(r["peak_rss"] for r in results["loop"])
    workers = {"loop": 1, "fleet1": 1, "fleet2": 2}
    print(f"\n{len(dumps)} dumps, {total / 2**30:.2f} GiB; fleet-large at {args.large_memory} "
          f"(one raw at twice); {os.cpu_count()} cores; repeat {args.repeat}")
    print(f"{'command':<34}{'wall s':>9}{'ratio':>8}{'CPU s':>8}{'dumps/h/worker':>16}"
          f"{'peak RSS MiB':>14}")
    labels = {"loop": "loop of iumdump analyze", "fleet1": "iumdump fleet --workers 1",
              "fleet2": "iumdump fleet --workers 2"}
    for name in results:
        ratio = wall[name] / wall["loop"]
        rate = len(dumps) * 3600 / wall[name] / workers[name]
        if name == "loop":
            peak = f"{analyze_peak / 2**20:.0f}"
        else:
            peaks = [max(r["worker_peak_rss"].values()) for r in results[name]]
            peak = f"{max(peaks) / 2**20:.0f}/worker"
        cpu = statistics.median(r["cpu"] for r in results[name])
        print(f"{labels[name]:<34}{wall[name]:>9.1f}{ratio:>8.2f}{cpu:>8.1f}{rate:>16.0f}"
              f"{peak:>14}")
    print()
    print_goals(ratios, GOALS)
    for name in ("fleet1", "fleet2"):
        for worker, rss in results[name][-1]["worker_rss_after_tasks"].items():
            print(f"{name} worker {worker}: RSS after each task (MiB) "
                  + " ".join(f"{value / 2**20:.0f}" for value in rss))
    print("load average (1/5/15 min) before → after: "
          + "; ".join(f"{name} {a} → {b}" for name, a, b in loads))
    if args.json:
        args.json.write_text(json.dumps({
            "dumps": [str(d) for d in dumps], "bytes": total, "wall": wall, "ratios": ratios,
            "goals": GOALS, "analyze_peak_rss": analyze_peak, "loads": loads,
            "runs": {name: [{k: v for k, v in r.items() if k != "dumps"} for r in runs]
                     for name, runs in results.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
