"""Benchmark ``iumdump analyze`` against stock Volatility 3 on the same dump, in one run.

    python bench/bench_analyze.py --dump OUT/memory.dmp --symbols OUT/symbols [--truth OUT/truth.json]
    python bench/bench_analyze.py --synth fleet-large --workdir /tmp/bench   # synthesize first

Every command runs as a subprocess, context set-up included — what an analyst waits for — with
wall time and peak RSS (the child's ru_maxrss from wait4) taken per run, median of ``--repeat``:

- ``iumdump analyze DUMP --format json,md,html`` (all three reports, sha256 included);
- ``vol windows.psscan``: the ratio analyze / psscan (goal: wall <= 1.25, peak RSS <= 1.5);
- the analyst's manual sequence, each a separate ``vol`` run: windows.pslist, windows.psscan,
  then windows.vadinfo and windows.memmap of each secure process (goal: analyze <= 0.5 of it).

Also timed: the sha256 of the dump alone (hashlib in one process, as analyze computes it beside
the analysis). It is the floor of analyze's wall time: SHA-256 is one sequential chain, so a dump
hashes no faster than one core can (about 0.4 GB/s without the SHA extensions, 1.5–2 GB/s with
them), however much of the analysis it overlaps.

The secure processes come from truth.json when given, else from the analyze report. The page
cache is warmed with one untimed read of the dump first, so every command sees the same cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
HASH_SCRIPT = """
import hashlib, sys
digest = hashlib.sha256()
with open(sys.argv[1], "rb", buffering=0) as handle:
    buffer = bytearray(4 << 20)
    view = memoryview(buffer)
    while count := handle.readinto(buffer):
        digest.update(view[:count])
print(digest.hexdigest())
"""
GOALS = {"analyze_vs_psscan_wall": 1.25, "analyze_vs_manual_wall": 0.5,
         "analyze_vs_psscan_rss": 1.5}


def print_goals(ratios: dict[str, float], goals: dict[str, float]) -> None:
    """Each ratio beside its goal (lower is better), ok or MISSED."""
    width = max(len(name) for name in ratios) + 2
    for name, value in ratios.items():
        verdict = "ok" if value <= goals[name] else "MISSED"
        print(f"{name:<{width}}{value:>6.2f}  (goal <= {goals[name]})  {verdict}")


def run(command: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one run; exits on failure."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n"
                             f"{err.read().decode(errors='replace')[-3000:]}")
        return wall, usage.ru_maxrss * 1024, out.read().decode(errors="replace")


def measure(command: list[str], repeat: int) -> dict:
    walls, peaks, output = [], [], ""
    for _ in range(repeat):
        wall, peak, output = run(command)
        walls.append(wall)
        peaks.append(peak)
    return {"command": command, "wall": statistics.median(walls), "walls": walls,
            "rss": statistics.median(peaks), "output": output}


def vol(dump: Path, symbols: Path, *args: str) -> list[str]:
    return [str(BIN / "vol"), "-q", "--offline", "-s", str(symbols), "-f", str(dump), *args]


def warm(dump: Path) -> None:
    with open(dump, "rb", buffering=0) as handle:
        while handle.read(8 << 20):
            pass


def synthesize(scenario: str, workdir: Path) -> tuple[Path, Path, Path]:
    out = workdir / scenario
    if not (out / "truth.json").exists():
        subprocess.run([str(BIN / "iumdump"), "synth", "--scenario", scenario, "-o", str(out)],
                       check=True)
    dump = next(p for p in out.iterdir() if p.name.startswith("memory."))
    return dump, out / "symbols", out / "truth.json"


def secure_pids(truth: Path | None, report: dict) -> list[int]:
    if truth and truth.exists():
        processes = json.loads(truth.read_text())["processes"]
        return [p["pid"] for p in processes if p["secure"]]
    return [p["pid"] for p in report["processes"] if p["secure"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dump", type=Path)
    source.add_argument("--synth", metavar="SCENARIO")
    parser.add_argument("--symbols", type=Path)
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "iumdump-bench")
    parser.add_argument("--repeat", type=int, default=1, help="runs per command (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    if args.synth:
        dump, symbols, truth = synthesize(args.synth, args.workdir)
    else:
        if not args.symbols:
            parser.error("--dump needs --symbols")
        dump, symbols, truth = args.dump, args.symbols, args.truth
    print(f"dump {dump} ({dump.stat().st_size / 2**30:.2f} GiB); warming the page cache",
          file=sys.stderr)
    warm(dump)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="iumdump-bench-") as out:
        analyze_cmd = [str(BIN / "iumdump"), "analyze", str(dump), "-s", str(symbols), "-o", out,
                       "--format", "json,md,html", "--offline", "-q", "--force"]
        results["analyze"] = measure(analyze_cmd, args.repeat)
        report = json.loads((Path(out) / "report.json").read_text())
    results["psscan"] = measure(vol(dump, symbols, "windows.psscan"), args.repeat)
    results["sha256"] = measure([sys.executable, "-c", HASH_SCRIPT, str(dump)], args.repeat)

    manual = ["pslist", "psscan"]
    commands = {"pslist": vol(dump, symbols, "windows.pslist"),
                "psscan": vol(dump, symbols, "windows.psscan")}
    for pid in secure_pids(truth, report):
        for plugin in ("vadinfo", "memmap"):
            name = f"{plugin} --pid {pid}"
            manual.append(name)
            commands[name] = vol(dump, symbols, f"windows.{plugin}", "--pid", str(pid))
    steps = {}
    for name in manual:
        steps[name] = results["psscan"] if name == "psscan" else measure(commands[name],
                                                                           args.repeat)
    manual_wall = sum(step["wall"] for step in steps.values())

    ratios = {
        "analyze_vs_psscan_wall": results["analyze"]["wall"] / results["psscan"]["wall"],
        "analyze_vs_manual_wall": results["analyze"]["wall"] / manual_wall,
        "analyze_vs_psscan_rss": results["analyze"]["rss"] / results["psscan"]["rss"],
    }
    floor = results["sha256"]["wall"] / results["psscan"]["wall"]
    if results["sha256"]["output"].strip() != report["dump"]["sha256"]:
        raise SystemExit("analyze recorded a different sha256 than hashlib computes")
    print(f"\n{'command':<34}{'wall s':>10}{'peak RSS MiB':>15}")
    print(f"{'iumdump analyze (json,md,html)':<34}{results['analyze']['wall']:>10.2f}"
          f"{results['analyze']['rss'] / 2**20:>15.0f}")
    for name, step in steps.items():
        print(f"{'vol windows.' + name:<34}{step['wall']:>10.2f}{step['rss'] / 2**20:>15.0f}")
    print(f"{'manual sequence (sum)':<34}{manual_wall:>10.2f}")
    print(f"{'sha256 of the dump alone':<34}{results['sha256']['wall']:>10.2f}"
          f"{results['sha256']['rss'] / 2**20:>15.0f}")
    print()
    print_goals(ratios, GOALS)
    print(f"{'sha256 alone / psscan (floor)':<26}{floor:>6.2f}")
    timings = report["analysis"].get("timings", {})
    print("analyze phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if args.json:
        args.json.write_text(json.dumps({
            "dump": str(dump), "size": dump.stat().st_size, "repeat": args.repeat,
            "analyze": {k: v for k, v in results["analyze"].items() if k != "output"},
            "steps": {k: {kk: vv for kk, vv in v.items() if kk != "output"}
                      for k, v in steps.items()},
            "sha256": {k: v for k, v in results["sha256"].items() if k != "output"},
            "manual_wall": manual_wall, "ratios": ratios, "goals": GOALS,
            "sha256_floor_vs_psscan": floor,
            "analyze_phases": timings}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
