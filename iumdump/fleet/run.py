"""The client side of a fleet run: plan, submit one task per dump, write what comes back.

1. :func:`plan` — expand the inputs, refuse an output directory that holds an earlier run (unless
   ``--resume`` or ``--force``), and for ``--resume`` keep the dumps whose report.json still
   matches the file's size and modification time: a worker then only confirms the sha256.
2. :func:`execute` — submit every task (largest dump first, so the long ones do not finish last),
   collect outcomes as they complete, write each dump's reports at once (atomically, with
   analyze's own writer, :func:`iumdump.report.write_report`), and keep one progress bar:
   done/total, failures, rate.
3. :func:`write_fleet` — fleet.json, fleet.csv, fleet.html, atomically; also after Ctrl-C, with
   the unfinished dumps marked ``interrupted``.

A task that loses its worker twice (a crash, Dask's memory limit, or ``--timeout``) ends in
:class:`distributed.KilledWorker`; the client says which from the timeouts the tasks counted in
the scheduler's metadata.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from ..errors import Error, InvalidInputError, ReportExistsError
from ..report import FILE_NAMES as REPORT_FILES
from ..report import DEFAULT_FORMATS, Report, report_paths, write_report
from ..report.output import check_targets, prepare_directory, write_reports
from ..report.model import iso_time
from ..visible import one_line, visible
from . import inputs, model, render
from .task import (ANALYSED, FAILED, RESUMED, TIMEOUT_METADATA, DumpJob, DumpOutcome,
                   run_dump, timeout_key)


@dataclass(frozen=True)
class FleetOptions:
    symbol_dirs: tuple[str, ...] = ()
    offline: bool = False
    formats: tuple[str, ...] = DEFAULT_FORMATS
    timeout: float | None = None
    resume: bool = False
    force: bool = False
    quiet: bool = False
    scheduler: str | None = None
    workers: int | None = None
    memory_limit: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"symbol_dirs": [os.path.abspath(d) for d in self.symbol_dirs],
                "offline": self.offline,
                "formats": list(self.formats), "timeout": self.timeout, "resume": self.resume,
                "force": self.force}


@dataclass
class Planned:
    """One dump and what to do with it: a job for a worker, and its earlier report (resume)."""

    dump: inputs.FleetDump
    job: DumpJob
    size: int | None
    modified: str | None
    earlier: dict | None = None


@dataclass
class FleetRun:
    """Everything the run produced, for the terminal and for fleet.json."""

    out_dir: Path
    planned: list[Planned]
    records: dict[str, dict] = field(default_factory=dict)   # path → record
    started: float = field(default_factory=time.time)
    finished: float | None = None
    interrupted: bool = False
    cluster: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    fleet: dict | None = None  # fleet.json as written
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # names this run's tasks

    def ordered_records(self) -> list[dict]:
        """Every dump's record in input order; those never finished marked interrupted."""
        out = []
        for item in self.planned:
            record = self.records.get(item.dump.path)
            if record is None:
                record = model.dump_record(item.dump, model.INTERRUPTED, size=item.size,
                                           modified=item.modified)
            out.append(record)
        return out

    def counts(self) -> Counter:
        return Counter(record["status"] for record in self.ordered_records())


# -- 1. plan -------------------------------------------------------------------------------------

def check_output(out_dir: Path, options: FleetOptions) -> None:
    """Refuse, before any work, an output directory that cannot take the reports, or that holds
    an earlier run this one would silently mix with."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError("exists and is not a directory", path=str(out_dir))
    targets = [out_dir / name for name in render.FILE_NAMES.values()]
    earlier = [path for path in targets if path.exists()]
    reports = out_dir / inputs.REPORTS_DIR
    if reports.is_dir() and any(reports.iterdir()):
        earlier.append(reports)
    if earlier and not (options.resume or options.force):
        raise ReportExistsError("holds an earlier fleet run; pass --resume to finish it, --force "
                                "to analyse every dump again, or choose another -o",
                                path=str(out_dir))
    check_targets(targets, force=True)  # a directory named fleet.json is still refused


def _stat(path: str) -> tuple[int | None, str | None]:
    try:
        info = os.stat(path)
    except OSError:
        return None, None
    return info.st_size, iso_time(info.st_mtime)


def _earlier_report(out_dir: Path, dump: inputs.FleetDump, size: int | None,
                    modified: str | None) -> dict | None:
    """The earlier report.json of ``dump`` when it describes a file of this size and
    modification time and recorded a sha256; None otherwise (then the dump is analysed)."""
    path = out_dir / dump.report_dir / REPORT_FILES["json"]
    try:
        data = json.loads(path.read_text("utf-8"))
        recorded = data["dump"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if size is None or recorded.get("size") != size or recorded.get("modified") != modified:
        return None
    if not isinstance(recorded.get("sha256"), str) or recorded.get("path") != dump.path:
        return None
    if "unlinked_secure" not in data.get("summary", {}):  # written before the key: redo it
        return None
    return data


def plan(arguments: list[str], out_dir: Path, options: FleetOptions) -> list[Planned]:
    if options.resume and "json" not in options.formats:
        raise InvalidInputError("--resume reads each dump's report.json to know it is done: keep "
                                "json in --format")
    for directory in options.symbol_dirs:
        if not os.path.isdir(directory):
            raise InvalidInputError("symbol directory does not exist or is not a directory",
                                    path=directory)
    dumps = inputs.expand(arguments, exclude=[out_dir])
    if not dumps:
        raise InvalidInputError("no dumps to analyse")
    check_output(out_dir, options)
    planned = []
    for dump in dumps:
        size, modified = _stat(dump.path)
        earlier = _earlier_report(out_dir, dump, size, modified) if options.resume else None
        job = DumpJob(path=dump.path, report_id=dump.report_id,
                      symbol_dirs=tuple(os.path.abspath(d) for d in options.symbol_dirs),
                      offline=options.offline, formats=options.formats,
                      timeout=options.timeout,
                      expected_sha256=earlier["dump"]["sha256"] if earlier else None)
        planned.append(Planned(dump, job, size, modified, earlier))
    return planned


# -- 2. execute ----------------------------------------------------------------------------------

def _lost_worker_message(dump: inputs.FleetDump, timeouts: int, attempts: int | None,
                         options: FleetOptions, cluster) -> str:
    """Why a task ended in KilledWorker: its timeouts (counted on the scheduler), else a lost
    worker."""
    limit = f" of {cluster.memory_limit / 2**30:.1f} GiB" if cluster.memory_limit else ""
    lost = ("the worker running it was lost (the process died, or Dask stopped it for exceeding "
            f"its memory limit{limit})")
    tried = f"each of its {attempts} attempts" if attempts else "every attempt"
    path = visible(dump.path)
    if timeouts and (attempts is None or timeouts >= attempts):
        return (f"{path}: timed out: still running after --timeout {options.timeout:g} s "
                f"on {tried}")
    if timeouts:
        return (f"{path}: timed out (--timeout {options.timeout:g} s) on {timeouts} of "
                f"{attempts} attempts; on the other {lost}")
    return f"{path}: {lost} on {tried}"


class _Writer:
    """Turns outcomes into records, writing each dump's reports as they arrive."""

    def __init__(self, run: FleetRun, options: FleetOptions) -> None:
        self.run = run
        self.options = options

    def _report_files(self, dump: inputs.FleetDump) -> dict[str, str]:
        paths = report_paths(self.run.out_dir / dump.report_dir, self.options.formats)
        return {fmt: f"{dump.report_dir}/{path.name}" for fmt, path in paths.items()
                if path.is_file()}

    def record(self, item: Planned, outcome: DumpOutcome) -> dict:
        dump = item.dump
        report_dict = None
        error = outcome.error
        status = outcome.status
        interrupted = False
        try:
            if status == ANALYSED:
                report_dict = outcome.report.as_dict()
                self._write(dump, outcome.report, force=True)
            elif status == RESUMED:
                report_dict = item.earlier
                self._write(dump, Report.from_dict(item.earlier), force=False, missing_only=True)
        except Error as err:  # the output directory failed us (disk full, permissions)
            error = f"{visible(dump.path)}: reports not written: {err}"
            status, report_dict = FAILED, None
        except KeyboardInterrupt:  # Ctrl-C waits for a set of reports: all written, or none
            interrupted = True
        record = model.dump_record(
            dump, status, report=report_dict, reports=self._report_files(dump), error=error,
            note=outcome.note, task_seconds=outcome.seconds, worker=outcome.worker,
            host=outcome.host, worker_rss=outcome.worker_rss,
            worker_peak_rss=outcome.worker_peak_rss, size=item.size, modified=item.modified)
        if interrupted:
            if record["reports"]:  # its reports are on disk: say so in the fleet report
                self.run.records[dump.path] = record
            raise KeyboardInterrupt
        self.run.records[dump.path] = record
        return record

    def _write(self, dump: inputs.FleetDump, report: Report, *, force: bool,
               missing_only: bool = False) -> None:
        """analyze's own writer (:func:`iumdump.report.write_report`): the same renderings and
        saved files, each written atomically."""
        paths = report_paths(self.run.out_dir / dump.report_dir, self.options.formats)
        if missing_only:
            paths = {fmt: path for fmt, path in paths.items() if not path.exists()}
        if paths:
            write_report(report, paths, force=force)


def execute(run: FleetRun, cluster, options: FleetOptions,
            echo: Callable[[str], None] | None = None) -> None:
    """Submit every planned dump to ``cluster`` and record each outcome as it completes.
    KeyboardInterrupt propagates after the futures are cancelled; what was done is kept."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker, as_completed

    client = cluster.client
    prepare_directory(run.out_dir)  # now that the cluster is up: no empty folder for a refusal
    writer = _Writer(run, options)
    by_size = sorted(run.planned, key=lambda item: item.size or 0, reverse=True)
    futures = {}
    for rank, item in enumerate(by_size):
        job = dataclasses.replace(item.job, run_token=run.token)
        future = client.submit(run_dump, job, key=f"iumdump-fleet-{run.token}-{job.report_id}",
                               pure=False, priority=len(by_size) - rank)
        futures[future] = item
    failed = 0
    bar = tqdm(total=len(run.planned), desc="Fleet", unit=" dump", dynamic_ncols=True,
               disable=True if options.quiet else None, smoothing=0.1)
    bar.set_postfix_str("failed 0", refresh=False)
    try:
        for future in as_completed(list(futures)):
            item = futures.pop(future)
            try:
                outcome = future.result()
            except KilledWorker:
                attempts = (None if cluster.allowed_failures is None
                            else cluster.allowed_failures + 1)
                outcome = DumpOutcome(path=item.dump.path, status=FAILED, error=(
                    _lost_worker_message(item.dump, _timeouts(client, run.token,
                                                              item.dump.report_id),
                                         attempts, options, cluster)))
            except CancelledError as exc:
                outcome = DumpOutcome(path=item.dump.path, status=FAILED,
                                      error=one_line(f"{visible(item.dump.path)}: the task was "
                                                    f"cancelled ({exc})"))
            except Exception as exc:  # the task itself never raises; Dask or the network did
                text = " ".join(str(exc).split()) or type(exc).__name__
                outcome = DumpOutcome(path=item.dump.path, status=FAILED,
                                      error=one_line(f"{visible(item.dump.path)}: "
                                                    f"{type(exc).__name__}: {text}"))
            record = writer.record(item, outcome)
            if record["status"] == FAILED:
                failed += 1
                if echo is not None:
                    bar.write(f"failed   {echo(record['error'])}", file=sys.stderr)
            bar.set_postfix_str(f"failed {failed}", refresh=False)
            bar.update(1)
    except BaseException:
        if futures:
            try:
                client.cancel(list(futures), force=True)
            except Exception:  # the cluster is going away with us
                pass
        raise
    finally:
        bar.close()
        try:
            client.set_metadata([TIMEOUT_METADATA, run.token], None)
        except Exception:  # the scheduler is gone: so are its records
            pass


def _timeouts(client, token: str, report_id: str) -> int:
    try:
        return int(client.get_metadata(timeout_key(token, report_id), default=0) or 0)
    except Exception:  # unknown: the message then names both causes
        return 0


# -- 3. the fleet report -------------------------------------------------------------------------

def write_fleet(run: FleetRun, options: FleetOptions) -> list[Path]:
    run.finished = run.finished or time.time()
    fleet = model.build_fleet(run.ordered_records(), started=run.started, finished=run.finished,
                              cluster=run.cluster, options=options.describe(),
                              interrupted=run.interrupted, notes=run.notes)
    rendered = {run.out_dir / name: render.RENDERERS[fmt](fleet)
                for fmt, name in render.FILE_NAMES.items()}
    # analyze's writer: each file atomic, and a Ctrl-C waits for the set (fleet.json, .csv and
    # .html describe the same run); an earlier run's are replaced, as check_output allowed.
    run.written = write_reports(rendered, force=True)
    run.fleet = fleet
    return run.written
