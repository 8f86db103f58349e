"""Forensic reports of ``iumdump analyze``: the report as data (:mod:`.model`) and its three
renderings — report.json (:mod:`.jsonreport`, with a JSON Schema), report.md (:mod:`.markdown`)
and a self-contained report.html (:mod:`.html`) — written atomically (:mod:`.atomic`)."""

from __future__ import annotations

from pathlib import Path

from . import html, jsonreport, markdown
from .model import REPORT_VERSION, Report, build_report

FORMATS = ("json", "md", "html")
FILE_NAMES = {"json": "report.json", "md": "report.md", "html": "report.html"}
_RENDERERS = {"json": jsonreport.render, "md": markdown.render, "html": html.render}


def render(report: Report, fmt: str) -> str:
    return _RENDERERS[fmt](report)


def report_paths(out_dir: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    return {fmt: Path(out_dir) / FILE_NAMES[fmt] for fmt in formats}


__all__ = ["FILE_NAMES", "FORMATS", "REPORT_VERSION", "Report", "build_report", "render",
           "report_paths"]
