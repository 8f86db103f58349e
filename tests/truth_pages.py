"""What truth.json implies for page verdicts, stated from the emulator's truth (not from the
analysis): whether the dump holds the normal processes' user memory (the control group), and the
verdict each region of a process should get."""

from __future__ import annotations

from iumdump.analysis.derive import region_verdict


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
    if region.get("shared"):
        return "shared-user-data"
    verdict = region_verdict(region["pages"], region["absent"], region["zero_filled"],
                             region["readable"])
    if verdict == "inaccessible" and region["pages"] and captured is False:
        return "not-captured"
    return verdict
