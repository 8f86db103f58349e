"""What truth.json implies for page verdicts, stated from the emulator's truth (not from the
analysis): whether the dump holds the normal processes' user memory (the control group), and the
verdict each region of a process should get."""

from __future__ import annotations


def user_memory_captured(truth: dict) -> bool | None:
    """At least half the normal processes' own user pages are readable in the dump (None: no
    normal process has user pages)."""
    normal = [p for p in truth["processes"]
              if p["verdict"] == "normal" and p["linked"] and not p["minimal"]
              and p["pid"] != 4 and p["pages"] and p["pages"]["mapped"]]
    mapped = sum(p["pages"]["mapped"] for p in normal)
    if not mapped:
        return None
    return sum(p["pages"]["readable"] for p in normal) * 2 >= mapped


def expected_region_verdict(region: dict, captured: bool | None) -> str:
    """DESIGN §5's rule for windows.trustletpages, restated here rather than taken from
    iumdump.analysis.derive.region_verdict, so that the analyzer is not its own oracle: no page
    with content is inaccessible (not-captured where the control group lacks user memory too),
    every mapped page with content is readable, anything between is partially-readable."""
    pages, readable = region["pages"], region["readable"]
    assert region["absent"] + region["zero_filled"] + readable == pages, region
    if region.get("shared"):
        return "shared-user-data"
    if readable == 0:
        return "not-captured" if pages and captured is False else "inaccessible"
    return "readable" if readable == pages else "partially-readable"
