"""The analysis of one dump, start to end: a dump in, a :class:`~iumdump.report.model.Report` out.

What ``iumdump analyze`` runs, and what each worker of ``iumdump fleet`` runs for each dump — the
same function, so the two cannot differ. It uses :mod:`.session` step by step: the file checked
before Volatility sees it, the hash in a child process beside the analysis, one Volatility
context with the run's private settings, every check, the findings, and the report's data.
"""

from __future__ import annotations

import os
import time

from ..errors import InvalidInputError
from ..report import DEFAULT_FORMATS, Report, build_report

SYMBOLS_DIR = "symbols"  # under OUTDIR: symbol tables Volatility downloaded during the run


def analyze_dump(dump: str, *, symbol_dirs: list[str] | tuple[str, ...] = (), offline: bool = False,
            quiet: bool = False, formats: tuple[str, ...] = DEFAULT_FORMATS) -> Report:
    """Run every check on ``dump`` with one Volatility context and return the report."""
    from . import findings as findings_module
    from . import session as engine

    started = time.time()
    timings: dict[str, float] = {}
    for directory in symbol_dirs:
        if not os.path.isdir(directory):
            raise InvalidInputError("symbol directory does not exist or is not a directory",
                                    path=directory)
    dump_file = engine.inspect_dump(dump)
    hasher = engine.Hasher(dump_file)
    try:
        with engine.volatility_settings(symbol_dirs, offline) as logs:
            phase = time.monotonic()
            with engine.phase_bar("Finding the Windows kernel", quiet, total=100.0, unit="%",
                                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}"
                                  ) as bar:
                session = engine.open_kernel(dump_file, offline=offline,
                                             progress_callback=engine.percent_callback(
                                                 bar, "Finding the Windows kernel"))
            timings["kernel"] = time.monotonic() - phase
            collected = engine.collect(session, quiet=quiet)
            timings.update(collected.timings)
            volatility_log = list(logs.messages)
            downloaded = {f"{SYMBOLS_DIR}/{name}": data
                          for name, data in logs.downloaded_tables().items()}
        phase = time.monotonic()
        sha256 = hasher.result(quiet)
        timings["sha256_wait"] = time.monotonic() - phase
    except BaseException:
        hasher.cancel()
        raise
    finished = time.time()
    changed = dump_file.changed()
    notes = list(collected.notes)
    if changed:
        notes.append(f"the dump {changed}; the sha256 may not match what was analysed")
    found = findings_module.analyze(collected.processes, collected.pages, dump_file.format)
    from ..report.model import iso_time

    kernel = session.kernel.as_dict()
    if downloaded:
        # The table lived in the run's private directory, removed by now: point at its copy.
        kernel["symbols"] = next((name for name in downloaded if name.endswith(
            os.path.basename(str(kernel["symbols"])))), kernel["symbols"])
    report = build_report(
        dump={"path": str(dump_file.path), "size": dump_file.size, "sha256": sha256,
              "format": dump_file.format, "modified": iso_time(dump_file.mtime_ns / 1e9),
              "expected_size": dump_file.expected_size, "unchanged": changed is None,
              "dump_type": dump_file.dump_type,
              "summary_signature": dump_file.summary_signature},
        kernel=kernel, processes=collected.processes, pages=collected.pages,
        findings=found, started=started, finished=finished,
        options={"offline": bool(offline), "symbol_dirs": [os.path.abspath(d)
                                                           for d in symbol_dirs],
                 "formats": list(formats)},
        notes=notes, volatility_log=volatility_log, timings=timings, control=collected.control)
    report.files = downloaded
    return report
