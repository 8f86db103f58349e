"""``iumdump analyze``: every check on one dump in one pass, and a report fit for a case file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..analysis.engine import analyze_dump as analyze
from ..errors import InvalidInputError
from ..report import (DEFAULT_FORMATS, FILE_NAMES, FORMATS, Report, report_paths,
                      write_report as write)
from ..report.output import check_targets
from ..report.model import control_label, dump_format_label, page_problems
from ..report.text import visible

DESCRIPTION = """\
Analyse a Windows memory dump in one pass: find every process (active list and pool scan),
decide which are secure (IUM) trustlets, enclave hosts or masquerading, read their image paths and
creation and exit times, decode their protection and PROCESS_EXTENDED_BASIC_INFORMATION flags, and
account for every user page of each secure process that the dump cannot show (absent, zero-filled)
or, unexpectedly, can. Writes OUTDIR/report.json (schema: iumdump/data/report.schema.json),
report.md and a self-contained report.html; on request (--format) a Sleuth Kit body file
(report.body) and a CASE/UCO JSON-LD export (report.case.jsonld).

The dump is opened read-only and its sha256 recorded in the report; reports are written to a
temporary file and renamed, and an existing report is never overwritten without --force.
Volatility 3 reads the dump: raw memory, Windows crash dumps, LiME, and the other formats it
stacks. The kernel's symbol table is looked up as Volatility does: the -s directories first, then
Volatility's own symbol directories, then (unless --offline) Volatility downloads the PDB from
Microsoft's symbol server and converts it; a table downloaded so is saved as
OUTDIR/symbols/windows/<pdb>/<GUID>-<AGE>.json.xz, for -s OUTDIR/symbols next time. The files
in the -s directories are never rewritten or deleted: Volatility's downloads go to a private
temporary directory, its index of the symbol tables to iumdump's own cache
(~/.cache/iumdump/volatility3).

Exit status: 0 on success; 2 with one line on stderr for bad input (a missing, empty, truncated or
unrecognised dump, no Windows kernel in it, missing, damaged or wrong symbols, an existing
report); 1 for an internal error (one line; IUMDUMP_TRACEBACK=1 shows where); 130 when
interrupted (no report is left half-written)."""

EPILOG = """\
examples:
  iumdump analyze memory.dmp -s symbols -o case-1234
  iumdump analyze --offline --format json,md memory.raw -s /evidence/symbols
  iumdump analyze memory.dmp -o case-1234 --format json,bodyfile,case
  mactime -b case-1234/report.body -d -y 1970-01-02   (the timeline, with the findings in it;
                                                      the date leaves out the unset times)
  vol -p "$(iumdump plugins)" -f memory.dmp windows.secureprocs   (the same checks as plugins)"""


MAX_PRINTED_NOTES = 5  # reasons for a partial report printed in the summary


def default_output(dump: str) -> Path:
    """``./iumdump-<dump name without extension>``: next to where the analyst works, never
    beside the evidence (which may be read-only, and should stay untouched)."""
    stem = Path(dump).stem or "dump"
    return Path(f"iumdump-{stem}")


def parse_formats(value: str) -> tuple[str, ...]:
    chosen: list[str] = []
    for item in value.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item not in FORMATS + ("all",):
            raise argparse.ArgumentTypeError(
                f"unknown report format {item!r}; choose from {', '.join(FORMATS)} or all")
        for fmt in FORMATS if item == "all" else (item,):
            if fmt not in chosen:
                chosen.append(fmt)
    if not chosen:
        raise argparse.ArgumentTypeError("no report format given")
    return tuple(chosen)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help="analyse a memory dump in one pass and write JSON/Markdown/HTML reports",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", metavar="DUMP", help="the memory dump (opened read-only)")
    add_options(parser)
    parser.set_defaults(handler=_run)


def add_options(parser: argparse.ArgumentParser, *, output_help: str | None = None,
                output_required: bool = False, force_help: str | None = None) -> None:
    """analyze's options, which ``iumdump fleet`` shares (with its own words for -o and
    --force)."""
    parser.add_argument("-s", "--symbols", metavar="SYMBOL_DIR", action="append", default=[],
                        help="directory holding Volatility symbol tables (windows/<pdb>/<GUID>-"
                             "<AGE>.json.xz), searched before Volatility's own; repeatable")
    parser.add_argument("-o", "--output", metavar="OUTDIR", type=Path, required=output_required,
                        help=output_help or "directory for the reports (created if missing; "
                             "default: ./iumdump-<dump name>)")
    parser.add_argument("--format", dest="formats", metavar="LIST", type=parse_formats,
                        default=DEFAULT_FORMATS,
                        help="comma-separated report formats: json, md, html (the default), "
                             "and the exports bodyfile (report.body: a Sleuth Kit body file of "
                             "the secure processes' creation and exit and of the findings, for "
                             "mactime or plaso) and case (report.case.jsonld: CASE/UCO JSON-LD "
                             "for case tools); all for every one")
    parser.add_argument("--offline", action="store_true",
                        help="never let Volatility download symbols; fail with a message saying "
                             "which symbol table to supply instead")
    parser.add_argument("--force", action="store_true",
                        help=force_help or "overwrite reports that already exist in OUTDIR")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no summary; print only the report paths")


def _check_output(dump: str, out_dir: Path, formats: tuple[str, ...], force: bool) -> dict:
    """Refuse early — before a long analysis — what the final write would refuse."""
    paths = report_paths(out_dir, formats)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError("exists and is not a directory", path=str(out_dir))
    check_targets(list(paths.values()), force=force)
    ancestor = out_dir.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidInputError("cannot create reports here: not a writable directory",
                                path=str(ancestor))
    for path in paths.values():
        if path.exists() and os.path.exists(dump) and os.path.samefile(path, dump):
            raise InvalidInputError("a report would overwrite the dump itself", path=str(path))
    return paths


def print_summary(report: Report, written: list[Path], *, quiet: bool, stream=None) -> None:
    """A few lines for the terminal; dump-controlled text is made visible (no escape sequences
    reach the terminal)."""
    stream = stream or sys.stdout
    if not quiet:
        dump, kernel, summary = report.dump, report.kernel, report.summary
        print(f"dump     {visible(dump['path'])} ({visible(dump_format_label(dump))}, "
              f"{dump['size']:,} bytes)", file=stream)
        print(f"sha256   {dump['sha256']}", file=stream)
        print(f"kernel   build {kernel.get('build') or 'unknown'}, "
              f"{kernel.get('pdb_name') or 'PDB'} {kernel.get('pdb_guid')}-{kernel.get('pdb_age')}",
              file=stream)
        secure = ", ".join(f"{visible(p['name'])} ({p['pid']})"
                           for p in summary["secure_processes"]) or "none"
        unknown = summary.get("linked_unknown")
        membership = f"{summary['unlinked']} unlinked" + (
            f", {unknown} whose list membership is unknown" if unknown else "")
        print(f"found    {summary['processes']} processes ({membership}); secure: {secure}",
              file=stream)
        control = summary.get("control")
        if control and control["pages"]:
            holds = "holds" if control["captured"] else "does not hold"
            print(f"control  {control_label(control)}: {control['readable']:,} of "
                  f"{control['pages']:,} user pages readable; the dump {holds} user memory",
                  file=stream)
        counts = summary["findings"]
        print("findings " + ", ".join(f"{n} {severity}" for severity, n in counts.items()),
              file=stream)
        for finding in report.findings:
            print(f"  [{finding['severity']}] {finding['kind']}: {visible(finding['message'])}",
                  file=stream)
        if report.partial:
            reasons = partial_reasons(report) or ["see the findings"]
            for reason in reasons[:MAX_PRINTED_NOTES]:
                print(f"partial  {visible(reason)}", file=stream)
            if len(reasons) > MAX_PRINTED_NOTES:
                print(f"partial  … and {len(reasons) - MAX_PRINTED_NOTES} more in the report",
                      file=stream)
        print("reports", file=stream)
    for path in written:  # visible: an output directory may be named anything, too
        print(f"  {visible(path)}" if not quiet else visible(path), file=stream)


def partial_reasons(report: Report) -> list[str]:
    """Why the report is partial, one sentence each: the analysis notes, then each process
    that is not what it seems or has unreadable fields, then each page walk's problems."""
    reasons = list(report.analysis.get("notes") or [])
    for process in report.processes:
        who = f"{process['name'] or '<no name>'} (PID {process['pid']})"
        reasons += [f"{who}: {problem}" for problem in process.get("problems", [])]
        if process.get("unreadable"):
            reasons.append(f"{who}: unreadable {', '.join(process['unreadable'])}")
    for entry in report.pages:
        reasons += [f"pages of {entry['name']} (PID {entry['pid']}): {problem}"
                    for problem in page_problems(entry)]
    return reasons


def _run(args) -> int:
    out_dir = args.output if args.output is not None else default_output(args.dump)
    paths = _check_output(args.dump, out_dir, args.formats, args.force)
    report = analyze(args.dump, symbol_dirs=args.symbols, offline=args.offline,
                     quiet=args.quiet, formats=args.formats)
    written = write(report, paths, force=args.force)
    print_summary(report, written, quiet=args.quiet)
    return 0


__all__ = ["FILE_NAMES", "analyze", "default_output", "print_summary", "write"]
