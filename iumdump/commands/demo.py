"""``iumdump demo``: synthesize a Credential Guard machine and analyse it — the first command to
run. Needs no dump, no symbol download and no network: the emulator writes the dump and its
symbol table, and the analysis runs offline against them."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..errors import InvalidInputError, ReportExistsError
from . import analyze as analyze_command

DEFAULT_OUTPUT = Path("iumdump-demo")
SCENARIO = "credential-guard"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="synthesize a Credential Guard machine and analyse it (start here)",
        description="Synthesize the credential-guard scenario — Windows 10 with Virtualization-"
                    "Based Security, Credential Guard's LsaIso.exe trustlet, a RunAsPPL lsass.exe "
                    "and an enclave host — as a bitmap crash dump with its symbol table, then run "
                    "`iumdump analyze` on it and write the reports beside it. Everything stays "
                    "on this machine: no download, no network.",
        epilog="afterwards, the same checks as Volatility plugins: "
               "vol -p \"$(iumdump plugins)\" -f iumdump-demo/memory.dmp "
               "-s iumdump-demo/symbols windows.secureprocs")
    parser.add_argument("-o", "--output", metavar="OUTDIR", type=Path, default=DEFAULT_OUTPUT,
                        help=f"directory for the dump, its symbols, truth.json and the reports "
                             f"(default: ./{DEFAULT_OUTPUT}); must be new or empty unless --force")
    parser.add_argument("--force", action="store_true",
                        help="redo the demo in an OUTDIR that is not empty, replacing its files")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no summary; print only the report paths")
    parser.set_defaults(handler=_run)


def _check_output(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError("exists and is not a directory", path=str(out_dir))
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ReportExistsError("is not empty (a previous demo?); pass --force to redo the demo "
                                "there, or choose another -o", path=str(out_dir))


def _run(args) -> int:
    from ..slat.synth import synthesize

    out_dir: Path = args.output
    _check_output(out_dir, args.force)
    say = (lambda *_: None) if args.quiet else (lambda text: print(text, file=sys.stdout))
    say(f"Synthesizing a Windows 10 machine with Credential Guard into {out_dir}/ …")
    result = synthesize(SCENARIO, out_dir, progress=not args.quiet)
    say(f"  dump     {result.dump_path} ({result.format})")
    say(f"  symbols  {result.symbols_dir}")
    say(f"  truth    {result.truth_path} (what the emulator built, for comparison)")
    say("")
    say(f"Analysing it: iumdump analyze {shlex.quote(str(result.dump_path))} -s "
        f"{shlex.quote(str(result.symbols_dir))} -o {shlex.quote(str(out_dir))} --offline")
    formats = analyze_command.DEFAULT_FORMATS
    paths = analyze_command.report_paths(out_dir, formats)
    report = analyze_command.analyze(str(result.dump_path), symbol_dirs=[str(result.symbols_dir)],
                                     offline=True, quiet=args.quiet, formats=formats)
    written = analyze_command.write(report, paths, force=True)
    analyze_command.print_summary(report, written, quiet=args.quiet)
    say("")
    say("Open the HTML report in a browser; the same checks run as Volatility 3 plugins:")
    say(f"  vol -p \"$(iumdump plugins)\" -f {shlex.quote(str(result.dump_path))} "
        f"-s {shlex.quote(str(result.symbols_dir))} windows.secureprocs")
    say("and the exports for timeline and case tools (a Sleuth Kit body file, CASE/UCO JSON-LD):")
    say(f"  iumdump analyze {shlex.quote(str(result.dump_path))} -s "
        f"{shlex.quote(str(result.symbols_dir))} -o {shlex.quote(str(out_dir))} --offline "
        "--format bodyfile,case")
    return 0
