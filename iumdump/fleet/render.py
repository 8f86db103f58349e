"""The three fleet reports: fleet.json (with its schema), fleet.csv and a self-contained fleet.html.

fleet.json is ASCII-only like report.json, so a process name's control or bidi characters show as
escapes. fleet.csv has one row per dump for a spreadsheet: text from dumps and file names is made
visible (:func:`iumdump.report.text.visible`) and a cell that a spreadsheet would take for a
formula (``=``, ``+``, ``-``, ``@``) is quoted with a leading apostrophe. fleet.html is rendered
from ``templates/fleet.html.j2`` in report.html's Jinja2 environment (autoescaping, dump text
through ``|text`` and ``|attr``) and under its Content-Security-Policy: no script, nothing
loaded, every link relative to the output directory.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from typing import Any, Mapping

from ..report import html as report_html
from ..report import jsonreport as report_json
from ..report.templating import html_environment
from ..report.text import html_message, visible
from ..visible import one_line
from .model import ordered_by_severity

SCHEMA_RESOURCE = "fleet.schema.json"
TEMPLATE = "fleet.html.j2"
FILE_NAMES = {"json": "fleet.json", "csv": "fleet.csv", "html": "fleet.html"}
# fleet.csv: the columns the issue names, in its order, then the error and the report's path.
CSV_COLUMNS = ("path", "sha256", "kernel_build", "vbs", "credential_guard", "secure_processes",
               "masquerades", "unlinked_secure", "highest_severity", "status", "seconds",
               "error", "report")
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
REPORT_LINK_ORDER = ("html", "md", "json")


def render_json(fleet: Mapping[str, Any]) -> str:
    return json.dumps(fleet, indent=2, ensure_ascii=True) + "\n"


def fleet_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every fleet.json satisfies."""
    return report_json.schema(SCHEMA_RESOURCE)


def report_link(record: Mapping[str, Any]) -> str | None:
    """The dump's report to open first: report.html, else report.md, else report.json."""
    for fmt in REPORT_LINK_ORDER:
        if fmt in record["reports"]:
            return record["reports"][fmt]
    return None


def error_reason(record: Mapping[str, Any]) -> str | None:
    """The error without the dump's path in front (for a table whose row already names it). An
    error names the path as :class:`iumdump.errors.Error` does, made visible."""
    error, prefix = record.get("error"), f"{visible(record['path'])}: "
    if error and error.startswith(prefix):
        return error[len(prefix):]
    return error


def _cell(value: Any, *, message: bool = False) -> str:
    """A CSV cell; ``message``: text of our own wording whose outside text is already visible
    (an error), which visible() would escape a second time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = len(value)
    text = ((one_line if message else visible)(value) if isinstance(value, str)
            else str(value))
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def render_csv(fleet: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in fleet["dumps"]:
        row = dict(record, report=report_link(record))
        writer.writerow([_cell(row[column], message=column == "error")
                         for column in CSV_COLUMNS])
    return out.getvalue()


@functools.cache
def _environment():
    """report.html's environment — autoescaping, and its ``|text`` / ``|attr`` filters and
    ``finalize`` that make dump text visible before escaping it — over fleet's own templates."""
    import jinja2
    from markupsafe import Markup

    environment = html_environment().overlay(
        loader=jinja2.PackageLoader("iumdump.fleet", "templates"))
    environment.filters["message"] = lambda value: Markup(html_message(value))
    return environment


def render_html(fleet: Mapping[str, Any]) -> str:
    from markupsafe import Markup

    template = _environment().get_template(TEMPLATE)
    return template.render(fleet=fleet, machines=ordered_by_severity(fleet["dumps"]),
                           csp=Markup(report_html.CSP), base_style=Markup(report_html.STYLE),
                           report_link=report_link, error_reason=error_reason)


RENDERERS = {"json": render_json, "csv": render_csv, "html": render_html}
