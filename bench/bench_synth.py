"""Benchmark: synthesize a large machine's dump and compare the write rate with dd's.

    python bench/bench_synth.py [--memory 8G] [--formats raw,crash-bitmap] [--workdir DIR]
                                [--mode cli|writer] [--keep]

``--mode cli`` (the default) runs the shipped command for each format,

    iumdump synth --scenario fleet-large --format FMT --memory SIZE -o OUTDIR

and reports its wall time, its peak RSS (``ru_maxrss`` of that child, from ``os.wait4``; the goal
is < 500 MiB whatever the memory size) and its write throughput: the bytes the dump really holds
(data extents found with SEEK_DATA/SEEK_HOLE, so holes do not count) over the command's whole wall
time — scenario building and symbol-table writing included, so the figure is conservative.

``--mode writer`` times the acquisition writer alone on a stand-in machine (mostly background
frames, VTL1 taking 2 MiB blocks and single pages from VTL0), for when the synthetic kernel is not
the thing being measured.

The baseline is dd writing the same number of bytes into the same directory in the same run,
4 MiB blocks, both ways:

* ``dd if=/dev/zero`` — the fastest source dd has (the kernel fills the buffer); the bytes are
  zeros but dd writes them for real (no ``conv=sparse``), and ext4 stores zeros like any bytes;
* ``yes | dd iflag=fullblock`` — non-zero bytes, paying for a pipe like a producer would.

The ratio is taken against the *faster* of the two (goal ≥ 0.5). Dirty pages are flushed with
``sync`` before each timed step (not timed), so one step's write-back does not slow the next; no
step waits for its own data to reach the disk (neither iumdump nor dd fsyncs).

This prints figures; it asserts nothing and is not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from iumdump.slat.writers import FORMATS, default_filename

MIB = 1 << 20
RSS_LIMIT = 500 * MIB
THROUGHPUT_GOAL = 0.5
WRITER_MIN_MEMORY = 256 * MIB  # the stand-in's 64 VTL1 blocks of 2 MiB must leave RAM readable


@dataclass
class Step:
    wall: float          # seconds
    peak_rss: int        # bytes
    data_bytes: int      # bytes stored in the file (not holes)
    file_size: int


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMGT]?)(i?B)?", text.strip(), re.IGNORECASE)
    if not match:
        raise SystemExit(f"bench_synth: bad size {text!r}")
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[match.group(2).upper()]


def run_child(argv: list[str], **kwargs) -> tuple[float, int, int]:
    """Run a command; (wall seconds, peak RSS bytes of that child, exit status)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, **kwargs)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024, child.returncode  # ru_maxrss is in KiB on Linux


def data_bytes(path: str) -> int:
    """Bytes in the file's data extents: what was written, holes excluded."""
    total = 0
    with open(path, "rb") as handle:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after offset
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            total += end - start
            offset = end
    return total


def sync() -> None:
    subprocess.run(["sync"], check=True)


def iumdump_command() -> list[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "iumdump")
    return [beside] if os.path.exists(beside) else [sys.executable, "-m", "iumdump.cli"]


def synth_step(fmt: str, memory: str, outdir: str) -> Step:
    argv = [*iumdump_command(), "synth", "--scenario", "fleet-large", "--format", fmt,
            "--memory", memory, "-o", outdir]
    with tempfile.TemporaryFile("w+") as log:  # its progress bars and summary, shown on failure
        wall, rss, status = run_child(argv, stdout=log, stderr=subprocess.STDOUT)
        if status != 0:
            log.seek(0)
            sys.stderr.write(log.read()[-4000:])
            raise SystemExit(f"bench_synth: {' '.join(argv)} exited with {status}")
    path = os.path.join(outdir, default_filename(fmt))
    return Step(wall, rss, data_bytes(path), os.path.getsize(path))


WRITER_CHILD = r"""
import sys, time
from iumdump.slat.machine import FrameRanges, SlatMachine
from iumdump.slat.memory import GuestPhysicalMemory
from iumdump.slat.writers import KERNEL_ONLY_FORMATS, KernelFacts, write_dump
size, fmt, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
memory = GuestPhysicalMemory(size, seed=1)
frames = memory.frame_count
memory.add_background(0x100, frames * 9 // 10 - 0x100)       # 90% of RAM in use
for pfn in range(0x1000, 0x1000 + 4096):                        # 16 MiB of explicit kernel pages
    memory.write(pfn << 12, pfn.to_bytes(8, "little") * 4)
machine = SlatMachine(memory)
for block in range(64):                                         # VTL1: 64 blocks of 2 MiB ...
    machine.modify_vtl_protection_mask((frames // 64 * block) << 12, 512, 0)
for page in range(2000):                                        # ... and 2000 single pages
    machine.modify_vtl_protection_mask(((frames // 2000 * page) + 7) << 12, 1, 0)
facts = KernelFacts(0x1AD000, 0xFFFFFA8000000000, 0xFFFFF80000001000, 0xFFFFF80000002000,
                    0xFFFFF80000003000)
# A kernel-only dump leaves user memory out: say the upper half of what is in use is user pages.
user = (FrameRanges([(frames * 9 // 20, frames * 9 // 10)])
        if fmt in KERNEL_ONLY_FORMATS else None)
start = time.perf_counter()
result = write_dump(machine, path, fmt, facts, progress=False, not_kernel=user)
print(f"{time.perf_counter() - start:.6f} {result.data_bytes}")
"""


def writer_step(fmt: str, size: int, outdir: str) -> tuple[Step, float]:
    """Whole child (building the machine + writing) and the write alone, timed inside it."""
    path = os.path.join(outdir, default_filename(fmt))
    with tempfile.TemporaryFile("w+") as out:
        wall, rss, status = run_child([sys.executable, "-c", WRITER_CHILD, str(size), fmt, path],
                                      stdout=out)
        if status != 0:
            raise SystemExit(f"bench_synth: the writer child exited with {status}")
        out.seek(0)
        write_seconds = float(out.read().split()[0])
    return Step(wall, rss, data_bytes(path), os.path.getsize(path)), write_seconds


def dd_steps(count_bytes: int, outdir: str) -> dict[str, float]:
    """Seconds dd takes to write ``count_bytes`` (rounded up to 4 MiB blocks), both sources."""
    blocks = -(-count_bytes // (4 * MIB))
    target = os.path.join(outdir, "dd.out")
    timings = {}
    for name, shell in (
            ("dd if=/dev/zero", f"dd if=/dev/zero of={target} bs=4M count={blocks} status=none"),
            ("yes | dd", f"yes | dd iflag=fullblock of={target} bs=4M count={blocks} status=none")):
        sync()
        wall, _, status = run_child(["sh", "-c", shell])
        if status not in (0, 141):  # 141: yes ends on SIGPIPE
            raise SystemExit(f"bench_synth: {shell!r} exited with {status}")
        timings[name] = wall
        os.unlink(target)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", default="8G", help="guest memory size (default 8G)")
    parser.add_argument("--formats", default="raw,crash-bitmap",
                        help=f"comma-separated, of {', '.join(FORMATS)} (default raw,crash-bitmap)")
    parser.add_argument("--mode", choices=["cli", "writer"], default="cli")
    parser.add_argument("--workdir", help="where to write (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the dumps")
    args = parser.parse_args(argv)
    size = parse_size(args.memory)
    formats = args.formats.split(",")
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown:
        raise SystemExit(f"bench_synth: unknown format {', '.join(unknown)}; "
                         f"expected some of {', '.join(FORMATS)}")
    if args.mode == "writer" and size < WRITER_MIN_MEMORY:
        raise SystemExit(f"bench_synth: --mode writer needs --memory of at least "
                         f"{WRITER_MIN_MEMORY // MIB} MiB")
    workdir = tempfile.mkdtemp(prefix="iumdump-bench-", dir=args.workdir)
    print(f"iumdump synth benchmark: {args.mode} mode, memory {args.memory} ({size / MIB:.0f} MiB), "
          f"workdir {workdir}")
    print(f"{'format':<13} {'wall s':>8} {'write s':>8} {'peak RSS':>10} {'data MiB':>9} "
          f"{'MiB/s':>8} {'dd MiB/s':>9} {'ratio':>6}  verdict")
    try:
        for fmt in formats:
            outdir = os.path.join(workdir, fmt)
            os.makedirs(outdir)
            sync()
            if args.mode == "cli":
                step = synth_step(fmt, args.memory, outdir)
                timed = step.wall
            else:
                step, timed = writer_step(fmt, size, outdir)
            dd = dd_steps(step.data_bytes, workdir)
            best_dd = min(dd.values())
            rate = step.data_bytes / timed / MIB
            dd_rate = step.data_bytes / best_dd / MIB
            ratio = rate / dd_rate
            verdict = []
            verdict.append("RSS ok" if step.peak_rss < RSS_LIMIT else "RSS OVER 500 MiB")
            verdict.append("rate ok" if ratio >= THROUGHPUT_GOAL else "rate BELOW 0.5x dd")
            print(f"{fmt:<13} {step.wall:8.2f} {timed:8.2f} {step.peak_rss / MIB:8.0f} Mi "
                  f"{step.data_bytes / MIB:9.0f} {rate:8.0f} {dd_rate:9.0f} {ratio:6.2f}  "
                  f"{', '.join(verdict)}")
            print(f"{'':<13} file {step.file_size / MIB:.0f} MiB; dd: "
                  + ", ".join(f"{name} {step.data_bytes / t / MIB:.0f} MiB/s" for name, t in dd.items()))
            if not args.keep:
                shutil.rmtree(outdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
