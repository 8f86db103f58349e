"""report.json: the report as data, for tools and for the case file.

ASCII-only output: any character a process name smuggles in (a right-to-left override, a control
character) appears as a visible ``\\u`` escape (e.g. ``\\u202e``) in any viewer instead of
rearranging the text around it. ``iumdump/data/report.schema.json`` is its JSON Schema.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .model import Report

SCHEMA_RESOURCE = "report.schema.json"


def render(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=True) + "\n"


def schema(resource: str = SCHEMA_RESOURCE) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of iumdump/data: by default the one every report.json
    satisfies."""
    text = resources.files("iumdump").joinpath("data", resource).read_text("utf-8")
    return json.loads(text)
