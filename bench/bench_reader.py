"""Benchmark reading processes: iumdump's one read per EPROCESS against Volatility's objects.

    python bench/bench_reader.py --dump OUT/memory.dmp --symbols OUT/symbols
    python bench/bench_reader.py --synth fleet-large --workdir /tmp/bench   # synthesize first

On one Volatility context (opened once, out of the figures), every process of the active list is
read ``--repeat`` times each way, alternately, and the median per process is printed:

- the one-read path (``ProcessReader.__call__``): the EPROCESS read in one piece, each field
  decoded at the offset the symbol table gives its name, bit fields through their flag word's
  construct definition — what the plugins and ``iumdump analyze`` do;
- the field-by-field path (``ProcessReader.read_fields``): each field through Volatility's own
  objects, as a plugin written the obvious way would read them (and iumdump does for an EPROCESS
  running into memory the dump lacks).

The ratio field-by-field / one-read is the speed the one-read path buys. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench_plugins import add_dump_arguments, resolve_dump  # the same dumps as bench_plugins

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # volatility_harness


def per_process(read, processes: list, repeat: int) -> list[float]:
    """Seconds per process of ``repeat`` passes of ``read`` over ``processes``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for proc in processes:
            read(proc)
        times.append((time.perf_counter() - started) / len(processes))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dump_arguments(parser)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    resolve_dump(parser, args)

    from volatility_harness import open_dump

    from iumdump.analysis.eprocess import ProcessReader
    from iumdump.analysis.processes import iter_processes

    dump = open_dump(args.dump, [str(args.symbols)])
    context, kernel = dump.context, dump.kernel_module_name
    processes = [proc for proc, _linked in iter_processes(context, kernel)]
    reader = ProcessReader(context, kernel)
    for proc in processes:  # warm-up: Volatility's layer caches, the flag words' decodings
        assert reader(proc) == reader.read_fields(proc)
    one_read, by_field = [], []
    for _ in range(args.repeat):
        one_read += per_process(reader, processes, 1)
        by_field += per_process(reader.read_fields, processes, 1)
    results = {"dump": str(args.dump), "processes": len(processes), "repeat": args.repeat,
               "one_read_us": statistics.median(one_read) * 1e6,
               "one_read_min_us": min(one_read) * 1e6,
               "field_by_field_us": statistics.median(by_field) * 1e6}
    results["ratio"] = results["field_by_field_us"] / results["one_read_us"]
    print(f"dump {args.dump}: {len(processes)} processes, median of {args.repeat} passes")
    print(f"  one read per EPROCESS   {results['one_read_us']:8.1f} us/process "
          f"(fastest pass {results['one_read_min_us']:.1f})")
    print(f"  field by field (objects){results['field_by_field_us']:8.1f} us/process")
    print(f"  field by field / one read  {results['ratio']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
