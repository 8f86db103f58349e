"""Benchmark the plugins against the Volatility plugins they extend, in one run on one dump.

    python bench/bench_plugins.py --dump OUT/memory.dmp --symbols OUT/symbols [--truth OUT/truth.json]
    python bench/bench_plugins.py --synth fleet-large --workdir /tmp/bench   # synthesize first

Measures, in one run,

1. as ``vol`` subprocesses (what an analyst waits for: layer stacking, kernel search and symbol
   loading included), the median and the fastest wall time of ``--repeat`` runs of each pair,
   run alternately (baseline, candidate, baseline, …) so other load on the machine falls on both:
   - windows.secureprocs / windows.pslist                (goal <= 1.15)
   - windows.secureprocs --scan / windows.psscan          (goal <= 1.15)
   - windows.trustletpages --pid P / windows.memmap --pid P, and P's pages per second;
2. in-process, on one Volatility context opened once (so set-up is out of the figures and only
   the plugins' own work is compared), the median of ``--repeat`` runs of the same pairs, each
   after one warm-up run.

P is the trustlet with the most mapped pages (from truth.json, else from a first trustletpages
run). Results go to stdout and, with ``--json``, to a file. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "vol_plugins"
sys.path.insert(0, str(ROOT / "tests"))  # volatility_harness


def vol(dump: Path, symbols: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("vol")), "-q", "--offline", "-p", str(PLUGIN_DIR),
            "-s", str(symbols), "-f", str(dump), *args]


def timed(command: list[str], repeat: int) -> tuple[float, str]:
    """Median wall time of ``repeat`` runs, and the last run's stdout."""
    times = []
    output = ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode:
            raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
        output = done.stdout
    return statistics.median(times), output


def paired(baseline: list[str], candidate: list[str], repeat: int) -> dict[str, list[float]]:
    """Wall times of the two commands run alternately, so that load from other processes on
    the machine falls on both alike."""
    times: dict[str, list[float]] = {"baseline": [], "candidate": []}
    for _ in range(repeat):
        for name, command in (("baseline", baseline), ("candidate", candidate)):
            times[name].append(timed(command, 1)[0])
    return times


def in_process(dump: Path, symbols: Path, pid: int, repeat: int) -> dict[str, float]:
    """Median seconds of each plugin's run on one shared context (after a warm-up run)."""
    from volatility_harness import load_plugins, open_dump  # tests/: what the tests open dumps with

    plugins = load_plugins()
    started = time.perf_counter()
    session = open_dump(str(dump), [str(symbols)])
    results = {"open": time.perf_counter() - started}
    cases = {
        "pslist": ("windows.pslist.PsList", {}),
        "secureprocs": ("windows.secureprocs.SecureProcs", {}),
        "psscan": ("windows.psscan.PsScan", {}),
        "secureprocs_scan": ("windows.secureprocs.SecureProcs", {"scan": True}),
        "memmap_pid": ("windows.memmap.Memmap", {"pid": pid}),
        "trustletpages_pid": ("windows.trustletpages.TrustletPages", {"pid": [pid]}),
    }
    for name, (plugin, options) in cases.items():
        session.rows(plugins[plugin], **options)  # warm-up: caches of the layers and symbols
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            session.rows(plugins[plugin], **options)
            times.append(time.perf_counter() - started)
        results[name] = statistics.median(times)
    return results


def largest_trustlet(truth_path: Path | None, dump: Path, symbols: Path) -> tuple[int, int]:
    """(pid, mapped pages) of the secure process with the most mapped pages."""
    if truth_path and truth_path.exists():
        truth = json.loads(truth_path.read_text())
        best = max((p for p in truth["processes"] if p.get("secure") and p.get("pages")),
                   key=lambda p: p["pages"]["mapped"])
        return best["pid"], best["pages"]["mapped"]
    _, output = timed(vol(dump, symbols, "-r", "json", "windows.trustletpages"), 1)
    totals: dict[int, int] = {}
    for row in json.loads(output):
        totals[row["PID"]] = totals.get(row["PID"], 0) + row["Pages"]
    pid = max(totals, key=totals.get)
    return pid, totals[pid]


def synthesize(scenario: str, workdir: Path, fmt: str) -> tuple[Path, Path, Path]:
    out = workdir / f"{scenario}-{fmt}"
    if not (out / "truth.json").exists():
        subprocess.run([str(Path(sys.executable).with_name("iumdump")), "synth", "--scenario",
                        scenario, "--format", fmt, "-o", str(out)], check=True)
    dump = next(p for p in out.iterdir() if p.name.startswith("memory."))
    return dump, out / "symbols", out / "truth.json"


def add_dump_arguments(parser: argparse.ArgumentParser) -> None:
    """The dump a benchmark runs on: ``--dump`` and ``--symbols`` (``--truth``), or ``--synth``
    a scenario into ``--workdir`` (as ``--format``)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dump", type=Path)
    source.add_argument("--synth", metavar="SCENARIO")
    parser.add_argument("--symbols", type=Path)
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/iumdump-bench"))
    parser.add_argument("--format", default="crash-bitmap")


def resolve_dump(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill ``args.dump``, ``args.symbols`` and ``args.truth``, synthesizing first with
    ``--synth``."""
    if args.synth:
        args.workdir.mkdir(parents=True, exist_ok=True)
        args.dump, args.symbols, args.truth = synthesize(args.synth, args.workdir, args.format)
    elif args.symbols is None:
        parser.error("--symbols is required with --dump")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dump_arguments(parser)
    parser.add_argument("--pid", type=int, help="trustlet to walk (default: the largest)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    resolve_dump(parser, args)

    pid, pages = ((args.pid, None) if args.pid else
                  largest_trustlet(args.truth, args.dump, args.symbols))
    pairs = {
        "secureprocs/pslist": (("windows.pslist",), ("windows.secureprocs",)),
        "secureprocs --scan/psscan": (("windows.psscan",), ("windows.secureprocs", "--scan")),
        "trustletpages/memmap": (("windows.memmap", "--pid", str(pid)),
                                 ("windows.trustletpages", "--pid", str(pid))),
    }
    names = {"secureprocs/pslist": ("pslist", "secureprocs"),
             "secureprocs --scan/psscan": ("psscan", "secureprocs_scan"),
             "trustletpages/memmap": ("memmap_pid", "trustletpages_pid")}
    wall: dict[str, float] = {}
    wall_min: dict[str, float] = {}
    for label, (baseline, candidate) in pairs.items():
        times = paired(vol(args.dump, args.symbols, *baseline),
                       vol(args.dump, args.symbols, *candidate), args.repeat)
        for key, name in zip(("baseline", "candidate"), names[label]):
            wall[name] = statistics.median(times[key])
            wall_min[name] = min(times[key])
        print(f"vol {label}: {json.dumps(times)}", flush=True)
    if pages is None:
        _, output = timed(vol(args.dump, args.symbols, "-r", "json", "windows.trustletpages",
                              "--pid", str(pid)), 1)
        pages = sum(row["Pages"] for row in json.loads(output))
    warm = in_process(args.dump, args.symbols, pid, args.repeat)
    results = {"dump": str(args.dump), "size": args.dump.stat().st_size, "repeat": args.repeat,
               "pid": pid, "pages": pages, "vol_wall": wall, "vol_wall_min": wall_min,
               "in_process": warm}
    for label, figures in (("vol_wall", wall), ("vol_wall_min", wall_min), ("in_process", warm)):
        results[label + "_ratios"] = {
            "secureprocs/pslist": figures["secureprocs"] / figures["pslist"],
            "secureprocs --scan/psscan": figures["secureprocs_scan"] / figures["psscan"],
            "trustletpages/memmap": figures["trustletpages_pid"] / figures["memmap_pid"],
            "pages_per_second": pages / figures["trustletpages_pid"],
        }

    print(f"dump {results['dump']} ({results['size'] / 2**30:.2f} GiB); trustlet PID {pid}, "
          f"{pages} mapped pages; median of {args.repeat}")
    for label, key in (("vol, wall end to end, median (pairs run alternately)", "vol_wall"),
                       ("vol, wall end to end, fastest run", "vol_wall_min"),
                       (f"in-process (context opened once in {warm['open']:.2f} s), median",
                        "in_process")):
        figures, ratios = results[key], results[key + "_ratios"]
        print(f"  {label}")
        for name in ("pslist", "secureprocs", "psscan", "secureprocs_scan", "memmap_pid",
                     "trustletpages_pid"):
            print(f"    {name:20s} {figures[name]:8.3f} s")
        print(f"    secureprocs/pslist          {ratios['secureprocs/pslist']:.3f}  (goal <= 1.15)")
        print(f"    secureprocs --scan/psscan   {ratios['secureprocs --scan/psscan']:.3f}  "
              "(goal <= 1.15)")
        print(f"    trustletpages/memmap        {ratios['trustletpages/memmap']:.3f}  "
              f"({ratios['pages_per_second']:,.0f} pages/s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
