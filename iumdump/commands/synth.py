"""``iumdump synth``: synthesize a Windows memory dump of a machine with (or without) VBS."""

from __future__ import annotations

import sys

from ..errors import InvalidInputError
from ..slat.scenario import bundled_scenarios, format_size
from ..slat.synth import DEFAULT_FORMAT, DEFAULT_SCENARIO, FORMATS, synthesize
from ..slat.writers import DUMP_FORMATS
from ..structs.crashdump import DumpType

FORMAT_HELP = {
    "raw": "flat image; VTL1 pages zero-filled (WinPmem)",
    "crash-full": "complete crash dump (DumpType 1); VTL1 pages zero-filled",
    "crash-bitmap": "bitmap crash dump (DumpType 5, FDMP); VTL1 pages left out",
    "host": "flat image read from the host (LiveCloudKd); VTL1 pages readable",
    "crash-live": "live kernel memory dump (DumpType 6, SDMP, Task Manager); kernel memory "
                  "only: every process's user pages left out (read it with vol -p \"$(iumdump "
                  "plugins)\")",
    "crash-kernel": "kernel memory dump written at a bug check (DumpType 6, SDMP, bug check 0xE2 "
                    "MANUALLY_INITIATED_CRASH), the file an automatic memory dump is too; kernel "
                    "memory only, as crash-live (read it with vol -p \"$(iumdump plugins)\")",
}
# The formats whose header says DumpType 6, which Volatility 3 reads only through iumdump's layer
# (analysis.livedump): taken from the writers' table, not restated.
NEEDS_PLUGINS = tuple(name for name, spec in DUMP_FORMATS.items()
                      if spec.dump_type == DumpType.BITMAP_KERNEL)


def register(subparsers) -> None:
    scenarios = ", ".join(bundled_scenarios())
    formats = "; ".join(f"{name}: {text}" for name, text in FORMAT_HELP.items())
    parser = subparsers.add_parser(
        "synth", help="synthesize a memory dump, its symbol table and its ground truth",
        description="Build the machine a scenario describes — Hyper-V Virtual Trust Levels with "
                    "real EPT structures, a Windows 10 kernel laid out by a symbol table, trustlets "
                    "whose pages VTL1 owns — and dump its memory the way an acquisition tool "
                    "would. Writes OUTDIR/memory.raw or memory.dmp, the symbol table under "
                    "OUTDIR/symbols (give it to Volatility with -s) and OUTDIR/truth.json (what "
                    "was built: every process, its secure state, protection, flags and the fate "
                    "of each user page in this dump). Then: "
                    "vol -f OUTDIR/memory.dmp -s OUTDIR/symbols windows.pslist; for crash-live and "
                    "crash-kernel add -p \"$(iumdump plugins)\", which loads iumdump's layer for "
                    "their DumpType 6",
        epilog=f"bundled scenarios: {scenarios}. Formats: {formats}.")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, metavar="NAME|FILE",
                        help=f"a bundled scenario or a TOML file (default: {DEFAULT_SCENARIO})")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default=DEFAULT_FORMAT,
                        help=f"how the dump is acquired (default: {DEFAULT_FORMAT})")
    parser.add_argument("--isf", metavar="FILE",
                        help="a Volatility symbol table (.json or .json.xz) of the kernel to "
                             "imitate; fields are placed by name and the PDB GUID/age come from it "
                             "(default: the built-in Windows 10 19041 x64 profile)")
    parser.add_argument("--memory", metavar="SIZE",
                        help="guest memory size, e.g. 64M or 8G (default: the scenario's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the randomized layout and page contents (default: 0)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a fleet scenario parameter (processes, trustlet_pages, "
                             "pool_mb, process_pages, fill); repeatable")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    parser.add_argument("-o", "--output", dest="out", required=True, metavar="OUTDIR",
                        help="directory to write into (created if missing)")
    parser.set_defaults(handler=_run)


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"--param {pair!r} is not NAME=VALUE")
        params[name.strip()] = value.strip()
    return params


def _run(args) -> int:
    result = synthesize(args.scenario, args.out, fmt=args.fmt, isf=args.isf,
                        memory_size=args.memory, seed=args.seed,
                        params=_params(args.param) or None, progress=not args.quiet)
    if not args.quiet:
        truth = result.truth
        secure = [p["name"] for p in truth["processes"] if p["secure"]]
        print(f"{result.scenario}: {len(truth['processes'])} processes "
              f"({', '.join(secure) or 'none'} secure), {format_size(truth['memory_size'])} "
              f"{result.format} dump, kernel {truth['kernel']['build']} "
              f"{truth['kernel']['pdb_guid']}-{truth['kernel']['pdb_age']}", file=sys.stderr)
        print(f"  {result.dump_path}\n  {result.isf_path}\n  {result.truth_path}", file=sys.stderr)
        plugins = ' -p "$(iumdump plugins)"' if result.format in NEEDS_PLUGINS else ""
        print(f"  vol{plugins} -f {result.dump_path} -s {result.symbols_dir} windows.pslist",
              file=sys.stderr)
    return 0
