"""``iumdump fleet``: ``iumdump analyze`` over many dumps on Dask, and one report for the lot."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import InvalidInputError
from ..fleet import run as fleet_run
from ..report.text import visible
from ..visible import one_line
from . import analyze as analyze_command

DESCRIPTION = """\
Analyse many memory dumps — an estate-wide audit of which machines really run Credential Guard,
a hunt for a masquerading LsaIso.exe across a domain — with the same analysis as `iumdump
analyze`, one Dask task per dump, on this machine's cores or on a Dask cluster.

Each dump gets its own folder OUTDIR/reports/<folder>_<file>-<hash>/ with the reports `iumdump
analyze` writes (--format). The fleet report covers them all: OUTDIR/fleet.json (schema:
iumdump/data/fleet.schema.json), fleet.csv (one row per dump: path, sha256, kernel build, VBS,
Credential Guard, secure processes, masquerades, unlinked secure processes, highest severity,
status, seconds) and a self-contained fleet.html: machines ordered by severity, counts per build
and per verdict, the machines without Credential Guard, each row linking to the dump's report.

DUMP is a file (whatever its name); DIR is searched recursively for files with a memory-dump
extension (.dmp .raw .mem .vmem .img .bin .lime .vmss .vmsn .core .elf …); GLOB is a quoted
pattern (** spans folders). Each dump is read where it lies, by path: with --scheduler every
worker must see the dumps and the -s directories under the same paths (a shared file system);
only the path travels through the scheduler, and the reports come back to this machine, which
writes them.

Without --scheduler, fleet starts a local Dask cluster on 127.0.0.1 — one worker process per core
(--workers), one thread each — prints its dashboard address when bokeh is installed, and stops it
at the end. With --scheduler tcp://HOST:8786 it uses a running cluster (dask scheduler; dask
worker tcp://HOST:8786 --nthreads 1 on each machine, iumdump installed there).

Failures stay with their dump: a bad dump's one-line error goes into the fleet report and the
others go on. A task that runs past --timeout or whose worker is lost (a crash, or Dask's memory
limit) is run once more, then recorded as failed. Ctrl-C stops the run: every report already
written is complete, the fleet report covers what was done, and --resume finishes the rest.
--resume skips each dump whose report.json describes the same file (size, modification time, and
the sha256 — a worker re-reads the file to confirm it, much faster than analysing it).

Exit status: 0 when every dump was analysed; 3 when the fleet report was written but some dumps
failed (each named on stderr and in the report); 2 with one line on stderr for bad input (no
dumps found, an unusable OUTDIR or symbol directory, an unreachable scheduler); 1 for an internal
error; 130 when interrupted."""

EPILOG = """\
examples:
  iumdump fleet /evidence/*/memory.dmp -s /evidence/symbols -o audit --offline
  iumdump fleet /evidence -o audit --workers 4 --timeout 1800
  iumdump fleet '/evidence/**/*.raw' -o audit --resume
  iumdump fleet /mnt/cases/estate -o audit --scheduler tcp://10.0.0.5:8786"""


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
        return value
    return parse


def _size(text: str) -> int:
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"not a size such as 4GiB or 3000MB: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fleet", help="analyse many dumps on Dask (this machine's cores or a cluster) and write "
                      "one fleet report",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="DUMP|DIR|GLOB",
                        help="dumps: files, directories (searched recursively for memory-dump "
                             "extensions) or quoted glob patterns")
    analyze_command.add_options(
        parser, output_required=True,
        output_help="directory for fleet.json, fleet.csv, fleet.html and reports/<dump>/ "
                    "(created if missing)",
        force_help="analyse every dump again in an OUTDIR that holds an earlier run, replacing "
                   "its reports")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use the running Dask cluster whose scheduler is at ADDRESS (e.g. "
                             "tcp://10.0.0.5:8786) instead of starting a local one")
    parser.add_argument("--workers", metavar="N", type=_positive(int),
                        help="local cluster: worker processes (default: one per core); with "
                             "--scheduler: wait until N workers are connected (default 1)")
    parser.add_argument("--memory-limit", metavar="SIZE", type=_size,
                        help="local cluster: memory limit per worker, where Dask stops and "
                             "restarts it (default: this machine's memory divided among the "
                             "workers, at least 2GiB)")
    parser.add_argument("--timeout", metavar="S", type=_positive(float),
                        help="seconds one dump may take; a dump past it is tried once more, "
                             "then recorded as failed (default: no limit)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the reports of an earlier run into OUTDIR for dumps that have "
                             "not changed (size, modification time, sha256); analyse the rest")
    parser.set_defaults(handler=_run)


def _format_bytes(value: int | None) -> str:
    from dask.utils import format_bytes

    return "no limit" if not value else format_bytes(value)


def _say(quiet: bool):
    return (lambda *_: None) if quiet else (lambda text: print(text, file=sys.stdout, flush=True))


def _start_cluster(args):
    from ..fleet import cluster

    if args.scheduler:
        return cluster.connect(args.scheduler, workers=args.workers)
    return cluster.start_local(args.workers, args.memory_limit)


def _describe_cluster(found) -> str:
    threads = max(found.threads.values(), default=1)
    where = "local" if found.scheduler == "local" else f"scheduler {visible(found.scheduler)}"
    text = (f"{where}, {found.workers} worker{'s' if found.workers != 1 else ''} × {threads} "
            f"thread{'s' if threads != 1 else ''}, memory limit {_format_bytes(found.memory_limit)}"
            " each")
    if found.dashboard:
        text += f"; dashboard {found.dashboard}"
    return text


EXIT_SOME_FAILED = 3  # the fleet report is written; 1 and 2 mean what they do for every command
SHOWN_MACHINES = 10  # high-severity machines named on the terminal; the rest are in fleet.html


def _print_summary(run: fleet_run.FleetRun, say) -> None:
    records, summary = run.fleet["dumps"], run.fleet["summary"]  # as fleet.json says them
    statuses = summary["statuses"]
    elapsed = (run.finished or time.time()) - run.started
    done = statuses[fleet_run.ANALYSED]
    rate = f" ({done * 3600 / elapsed:,.0f} dumps/hour)" if done and elapsed > 0 else ""
    say(f"done     {done} analysed, {statuses[fleet_run.RESUMED]} resumed, "
        f"{statuses[fleet_run.FAILED]} failed" +
        (f", {statuses['interrupted']} interrupted" if statuses["interrupted"] else "") +
        f" in {elapsed:.1f} s{rate}")
    if not summary["machines"]:
        return
    say(f"machines {summary['machines']}: {summary['vbs']} with VBS, "
        f"{summary['credential_guard']} with Credential Guard, "
        f"{len(summary['without_credential_guard'])} without")
    say("severity " + ", ".join(f"{n} {severity}" for severity, n in
                                summary["highest_severity"].items())
        + " (machines, by their most severe finding)")
    urgent = [r for r in fleet_run.model.ordered_by_severity(records)
              if r["highest_severity"] == "high"]
    for record in urgent[:SHOWN_MACHINES]:
        details = [f"{label} " + ", ".join(f"{visible(p['name'])} ({p['pid']})"
                                           for p in record[key])
                   for label, key in (("masquerade", "masquerades"),
                                      ("unlinked secure", "unlinked_secure")) if record[key]]
        say(f"high     {visible(record['path'])}: "
            + ("; ".join(details) or ", ".join(record["finding_kinds"])))
    if len(urgent) > SHOWN_MACHINES:
        say(f"         … and {len(urgent) - SHOWN_MACHINES} more (fleet.html)")


def _run(args) -> int:
    if args.scheduler and args.memory_limit:
        raise InvalidInputError("--memory-limit sets the workers of the local cluster; a running "
                                "cluster's workers take theirs from dask worker --memory-limit")
    options = fleet_run.FleetOptions(
        symbol_dirs=tuple(args.symbols), offline=args.offline, formats=args.formats,
        timeout=args.timeout, resume=args.resume, force=args.force, quiet=args.quiet,
        scheduler=args.scheduler, workers=args.workers, memory_limit=args.memory_limit)
    say = _say(args.quiet)
    planned = fleet_run.plan(args.inputs, args.output, options)
    run = fleet_run.FleetRun(out_dir=args.output, planned=planned)
    confirm = sum(1 for item in planned if item.earlier is not None)
    say(f"fleet    {len(planned)} dump{'s' if len(planned) != 1 else ''} → "
        f"{visible(args.output)}/reports/ ({', '.join(options.formats)})" +
        (f"; {confirm} with a report from an earlier run, to confirm" if confirm else ""))
    import dask

    from ..fleet.cluster import LOCAL_CONFIG

    found = None
    with dask.config.set({} if args.scheduler else LOCAL_CONFIG):
        try:
            found = _start_cluster(args)
            run.cluster = found.describe()
            run.notes += found.warnings
            say(f"cluster  {_describe_cluster(found)}")
            for warning in found.warnings:
                say(f"note     {warning}")
            fleet_run.execute(run, found, options, echo=None if args.quiet else one_line)
        except KeyboardInterrupt:
            run.interrupted = True
        finally:
            if found is not None:
                try:
                    found.close()
                except (KeyboardInterrupt, Exception):  # a second Ctrl-C: leave the rest to exit
                    pass
    run.finished = time.time()
    if run.interrupted and not run.records:
        print("iumdump fleet: interrupted before any dump was done; nothing written",
              file=sys.stderr)
        return 130
    written = fleet_run.write_fleet(run, options)
    _print_summary(run, say)
    say("reports")
    for path in written:
        print(f"  {visible(path)}" if not args.quiet else visible(path), file=sys.stdout)
    if run.interrupted:
        counts = run.counts()
        print(f"iumdump fleet: interrupted with {counts['interrupted']} of {len(planned)} dumps "
              "not done; run the same command with --resume to finish", file=sys.stderr)
        return 130
    return EXIT_SOME_FAILED if run.counts()[fleet_run.FAILED] else 0
