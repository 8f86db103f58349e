"""Forensic reports of ``iumdump analyze``: the report as data (:mod:`.model`) and its
renderings — report.json (:mod:`.jsonreport`, with a JSON Schema), report.md (:mod:`.markdown`)
and a self-contained report.html (:mod:`.html`) — and its exports for other tools: a Sleuth Kit
body file (:mod:`.bodyfile`) and CASE/UCO JSON-LD (:mod:`.case`); all written atomically
(:mod:`.output`, :mod:`iumdump.atomic`)."""

from __future__ import annotations

from pathlib import Path

from . import bodyfile, case, html, jsonreport, markdown
from .output import interrupts_deferred, prepare_directory, write_reports
from .model import REPORT_VERSION, Report, build_report

# The reports (written by default) and the exports for timeline and case tools (on request).
REPORT_FORMATS = ("json", "md", "html")
EXPORT_FORMATS = ("bodyfile", "case")
FORMATS = REPORT_FORMATS + EXPORT_FORMATS
DEFAULT_FORMATS = REPORT_FORMATS
FILE_NAMES = {"json": "report.json", "md": "report.md", "html": "report.html"}
EXPORT_FILE_NAMES = {"bodyfile": "report.body", "case": "report.case.jsonld"}
_RENDERERS = {"json": jsonreport.render, "md": markdown.render, "html": html.render,
              "bodyfile": bodyfile.render, "case": case.render}


def render(report: Report, fmt: str) -> str:
    return _RENDERERS[fmt](report)


def report_paths(out_dir: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    names = {**FILE_NAMES, **EXPORT_FILE_NAMES}
    return {fmt: Path(out_dir) / names[fmt] for fmt in formats}


def write_report(report: Report, paths: dict[str, Path], *, force: bool) -> list[Path]:
    """Write ``report`` in each format of ``paths`` (format → file, all in one directory), then
    the files saved beside it (a downloaded symbol table: kept for the next run's
    ``-s OUTDIR/symbols``; one already there with the same content is left alone). Each file is
    written atomically; none over an existing one unless ``force``."""
    out_dir = next(iter(paths.values())).parent
    rendered = {path: render(report, fmt) for fmt, path in paths.items()}
    with interrupts_deferred():  # Ctrl-C waits for the reports and the files beside them
        prepare_directory(out_dir)
        written = write_reports(rendered, force=force)
        extra = {}
        for name, data in report.files.items():
            target = out_dir / name
            if target.is_file() and target.read_bytes() == data:
                continue
            prepare_directory(target.parent)
            extra[target] = data
        return written + write_reports(extra, force=force)


__all__ = ["DEFAULT_FORMATS", "EXPORT_FILE_NAMES", "EXPORT_FORMATS", "FILE_NAMES", "FORMATS",
           "REPORT_FORMATS", "REPORT_VERSION", "Report", "build_report", "render", "report_paths",
           "write_report"]
