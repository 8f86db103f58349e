"""The Jinja2 environments that render report.md and report.html, and the filters their templates
use. The templates are package data in ``iumdump/report/templates``.

Text from a dump is attacker-controlled (:mod:`.text`), so each environment has one escaping
policy and every template follows it:

- HTML: autoescaping on. Dump text goes through ``|text`` (a text node) or ``|attr`` (a quoted
  attribute value), which make hidden characters visible (:func:`.text.visible`) and then escape
  it. Any expression a template leaves unfiltered is made visible by ``finalize`` and escaped by
  autoescaping, so a forgotten filter can neither inject markup nor hide a bidi override.
- Markdown: autoescaping off (HTML entities are not Markdown's escaping). Dump text goes through
  ``|md`` (:func:`.text.markdown`): visible, with Markdown's inline syntax and table pipes escaped.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping

import jinja2
from markupsafe import Markup

from . import text
from .model import (FLAG_SHORT, SEVERITIES_MOST_FIRST, SEVERITY_NOTES, control_label,
                    dump_format_label, page_problems, pages_sentence, region_verdict_text,
                    trustlet_id_text, verdict_text)

TEMPLATE_PACKAGE = "iumdump.report"
TEMPLATE_FOLDER = "templates"


def flag_lists(process: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The short names of the flags that are set, and of those that are unknown."""
    flags = process["flags"].items()
    return ([FLAG_SHORT[name] for name, value in flags if value],
            [FLAG_SHORT[name] for name, value in flags if value is None])


def flag_sources(process: Mapping[str, Any]) -> str:
    """Which field each flag came from, for a tooltip."""
    return "; ".join(f"{name}: {source or 'not derivable'}"
                     for name, source in process.get("flag_sources", {}).items())


def _html_finalize(value: Any) -> Any:
    if hasattr(value, "__html__") or isinstance(value, jinja2.Undefined):
        return value
    return text.visible(value)


_FILTERS = {
    "basename": os.path.basename,
    "control_label": control_label,
    "dump_format": dump_format_label,
    "hex": text.hex_or_dash,
    "pid": text.pid_text,
    "region_verdict": region_verdict_text,
    "thousands": "{:,}".format,
    "trustlet_id": trustlet_id_text,
    "verdict_text": verdict_text,
    "visible": text.visible,
    "yes_no": text.yes_no,
}
_GLOBALS = {
    "flag_lists": flag_lists,
    "flag_sources": flag_sources,
    "pages_sentence": pages_sentence,
    "page_problems": page_problems,
    "severities": SEVERITIES_MOST_FIRST,
    "severity_notes": SEVERITY_NOTES,
}


def _environment(**options: Any) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, TEMPLATE_FOLDER),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, **options)
    environment.filters.update(_FILTERS)
    environment.globals.update(_GLOBALS)
    return environment


@functools.cache
def html_environment() -> jinja2.Environment:
    environment = _environment(autoescape=True, finalize=_html_finalize)
    environment.filters["text"] = lambda value: Markup(text.html_text(value))
    environment.filters["attr"] = lambda value: Markup(text.html_attribute(value))
    environment.filters["px"] = "{:.2f}".format  # SVG coordinates
    return environment


@functools.cache
def markdown_environment() -> jinja2.Environment:
    environment = _environment(autoescape=False)
    environment.filters["md"] = text.markdown
    return environment
