"""Forensic reports of ``iumdump analyze``: the report as data (:mod:`.model`) and its
renderings — report.json (:mod:`.jsonreport`, with a JSON Schema), report.md (:mod:`.markdown`)
and a self-contained report.html (:mod:`.html`) — and its exports for other tools: a Sleuth Kit
body file (:mod:`.bodyfile`) and CASE/UCO JSON-LD (:mod:`.case`); all written atomically
(:mod:`.atomic`)."""

from __future__ import annotations

from pathlib import Path

from . import bodyfile, case, html, jsonreport, markdown
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


__all__ = ["DEFAULT_FORMATS", "EXPORT_FILE_NAMES", "EXPORT_FORMATS", "FILE_NAMES", "FORMATS",
           "REPORT_FORMATS", "REPORT_VERSION", "Report", "build_report", "render", "report_paths"]
