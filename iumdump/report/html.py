"""report.html: one self-contained file an analyst can open offline and attach to a case.

No external assets and no scripts: the CSS (``templates/report.css``) is inline, each secure
process's address-space strip is inline SVG, and a Content-Security-Policy forbids loading
anything. The page is the template ``templates/report.html.j2``, rendered with autoescaping on;
every string from the dump goes through its ``|text`` / ``|attr`` filters (:mod:`.templating`).

The strip shows a process's user regions in address order, each as wide as its share of the
mapped pages (with a minimum so that small regions stay visible); inside a region the segments
show how many pages are absent, zero-filled and readable — proportions, not positions, because
the report keeps counts per region. :func:`strip_geometry` computes it, ``templates/strip.svg.j2``
draws it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from markupsafe import Markup

from .model import Report
from .templating import TEMPLATE_FOLDER, html_environment
from .text import pid_text

TEMPLATE = "report.html.j2"
STRIP_TEMPLATE = "strip.svg.j2"

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = resources.files(__package__).joinpath(TEMPLATE_FOLDER, "report.css").read_text("utf-8")

COLORS = {"absent": "#475569", "zero_filled": "#cbd5e1", "readable": "#f59e0b",
          "shared": "#93c5fd"}
FATES = ("absent", "zero_filled", "readable")

_GAP = 2            # between regions
_BAR_TOP = 4
_TICK_ROOM = 24     # below the bar, for the start-address ticks
_TICK_CHAR = 6.2    # width of a 10px monospace character


def strip_geometry(entry: dict[str, Any], width: int = 1000, height: int = 64
                   ) -> dict[str, Any]:
    """Where the strip of one process's page accounting draws each region and its fates."""
    regions = [r for r in entry["regions"] if r["pages"]] or entry["regions"]
    label = (f"User address space of {entry['name']} (PID {pid_text(entry['pid'])}): "
             f"{entry['pages']} mapped pages, {entry['absent']} absent, "
             f"{entry['zero_filled']} zero-filled, {entry['readable']} readable")
    strip = {"width": width, "height": height, "label": label, "bar_top": _BAR_TOP,
             "bar_height": height - _TICK_ROOM, "regions": []}
    if not regions:
        return strip
    usable = width - _GAP * (len(regions) - 1)
    minimum = max(2.0, min(24.0, usable / (4 * len(regions))))
    total = sum(max(r["pages"], 1) for r in regions)
    # Widths ∝ pages, but never below `minimum`; the rest is shared out proportionally.
    small = {id(r) for r in regions if usable * max(r["pages"], 1) / total < minimum}
    rest_total = total - sum(max(r["pages"], 1) for r in regions if id(r) in small)
    rest_width = usable - minimum * len(small)
    x = 0.0
    label_end = -1.0
    for region in regions:
        pages = region["pages"]
        w = (minimum if id(region) in small or not rest_total
             else rest_width * max(pages, 1) / rest_total)
        segments = []
        if region.get("shared"):
            segments.append({"x": x, "width": w, "color": COLORS["shared"]})
        elif pages:
            segment_x = x
            for fate in FATES:
                if region[fate]:
                    share = w * region[fate] / pages
                    segments.append({"x": segment_x, "width": share, "color": COLORS[fate]})
                    segment_x += share
        tick = f"{region['start']:#x}"
        shown = x >= label_end and x + _TICK_CHAR * len(tick) <= width
        if shown:
            label_end = x + _TICK_CHAR * len(tick) + 8
        strip["regions"].append({
            **region, "x": x, "width": w, "empty": not pages, "segments": segments,
            "partial": bool(region.get("partial")),
            "span": f"{region['start']:#x}–{region['end']:#x}", "tick": tick if shown else None})
        x += w + _GAP
    return strip


def strip_svg(entry: dict[str, Any], width: int = 1000, height: int = 64) -> Markup:
    """The address-space strip of one process's page accounting, as inline SVG."""
    macros = html_environment().get_template(STRIP_TEMPLATE).module
    return macros.strip(strip_geometry(entry, width, height))


def render(report: Report) -> str:
    return html_environment().get_template(TEMPLATE).render(
        report=report, csp=Markup(CSP), style=Markup(STYLE), colors=COLORS,
        strip_geometry=strip_geometry)
