"""fleet.json as data: one record per dump, drawn from its report.json, and the fleet's summary.

Every machine fact here is read from the dump's own report (``summary``, ``processes``,
``findings``), never recomputed: the fleet report and the per-dump reports cannot disagree.
``iumdump/data/fleet.schema.json`` describes the result; :data:`FLEET_VERSION` changes when a key
changes meaning.

Statuses: ``analysed`` (this run), ``resumed`` (``--resume`` found a report of the same file —
size, modification time and sha256 — from an earlier run), ``failed`` (its one-line error is
kept), ``interrupted`` (the run was stopped before this dump was done).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .. import __version__
from ..analysis.derive import ENCLAVE_HOST, MASQUERADE, VERDICTS
from ..analysis.findings import SEVERITY_RANK
from ..report.model import SEVERITIES_MOST_FIRST, TOOL_NAME, iso_time, volatility_version
from .inputs import FleetDump
from .task import ANALYSED, FAILED, RESUMED

FLEET_VERSION = "1"
INTERRUPTED = "interrupted"
STATUSES = (ANALYSED, RESUMED, FAILED, INTERRUPTED)
NO_FINDINGS = "none"
SEVERITY_ORDER = SEVERITIES_MOST_FIRST + (NO_FINDINGS,)


def _processes(report: Mapping[str, Any], keep) -> list[dict[str, Any]]:
    return [{"pid": p["pid"], "name": p["name"]} for p in report["processes"] if keep(p)]


def highest_severity(counts: Mapping[str, int]) -> str:
    for severity in SEVERITIES_MOST_FIRST:
        if counts.get(severity):
            return severity
    return NO_FINDINGS


def dump_record(dump: FleetDump, status: str, *, report: Mapping[str, Any] | None = None,
                reports: Mapping[str, str] | None = None, error: str | None = None,
                note: str | None = None, task_seconds: float | None = None,
                worker: str | None = None, host: str | None = None,
                worker_rss: int | None = None, worker_peak_rss: int | None = None,
                size: int | None = None, modified: str | None = None) -> dict[str, Any]:
    """One dump's row of the fleet report. ``report`` is its report.json as a dictionary (for
    ``analysed`` and ``resumed``); ``reports`` maps format → file, relative to the output
    directory."""
    record: dict[str, Any] = {
        "path": dump.path, "id": dump.report_id, "report_dir": dump.report_dir,
        "reports": dict(reports or {}), "status": status, "error": error, "note": note,
        "size": size, "modified": modified, "sha256": None, "format": None,
        "kernel_build": None, "pdb_guid": None, "vbs": None, "credential_guard": None,
        "secure_processes": None, "masquerades": None, "unlinked_secure": None,
        "enclave_hosts": None, "processes": None, "verdicts": None, "findings": None,
        "finding_kinds": None, "highest_severity": None, "partial": None, "seconds": task_seconds,
        "task_seconds": task_seconds, "worker": worker, "host": host,
        "worker_rss": worker_rss, "worker_peak_rss": worker_peak_rss,
    }
    if report is None:
        return record
    summary, kernel, dump_info = report["summary"], report["kernel"], report["dump"]
    record.update({
        "size": dump_info["size"], "modified": dump_info.get("modified", modified),
        "sha256": dump_info["sha256"], "format": dump_info["format"],
        "kernel_build": kernel.get("build"), "pdb_guid": kernel.get("pdb_guid"),
        "vbs": summary["vbs_active"], "credential_guard": summary["credential_guard"],
        # The report's own lists: a "secure" verdict whose secure state is implausible (its
        # doubts) is not counted, as analyze does not count it, linked or not.
        "secure_processes": [{"pid": p["pid"], "name": p["name"]}
                             for p in summary["secure_processes"]],
        "masquerades": _processes(report, lambda p: p["verdict"] == MASQUERADE),
        "unlinked_secure": [{"pid": p["pid"], "name": p["name"]}
                            for p in summary["unlinked_secure"]],
        "enclave_hosts": summary["verdicts"].get(ENCLAVE_HOST, 0),
        "processes": summary["processes"], "verdicts": dict(summary["verdicts"]),
        "findings": dict(summary["findings"]),
        "finding_kinds": sorted({finding["kind"] for finding in report["findings"]}),
        "highest_severity": highest_severity(summary["findings"]),
        "partial": bool(report["analysis"].get("partial")),
        "seconds": report["analysis"].get("duration_seconds", task_seconds),
    })
    return record


def severity_key(record: Mapping[str, Any]) -> tuple:
    """Sort key, most urgent first: failures (nothing is known), then by highest severity, then
    by how many findings of each severity, then by path."""
    if record["status"] in (FAILED, INTERRUPTED):
        return (0 if record["status"] == FAILED else 1, 0, (), record["path"])
    counts = record["findings"] or {}
    rank = SEVERITY_RANK.get(record["highest_severity"], -1)
    return (2, -rank, tuple(-counts.get(s, 0) for s in SEVERITIES_MOST_FIRST), record["path"])


def ordered_by_severity(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(records, key=severity_key)


def fleet_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per status, per kernel build, per verdict and per highest severity; the machines
    without Credential Guard; totals of secure, masquerading and unlinked secure processes."""
    known = [r for r in records if r["status"] in (ANALYSED, RESUMED)]
    statuses = {status: 0 for status in STATUSES}
    for record in records:
        statuses[record["status"]] += 1
    builds: dict[str, dict[str, int]] = {}
    for record in known:
        build = "unknown" if record["kernel_build"] is None else str(record["kernel_build"])
        entry = builds.setdefault(build, {"machines": 0, "vbs": 0, "credential_guard": 0})
        entry["machines"] += 1
        entry["vbs"] += bool(record["vbs"])
        entry["credential_guard"] += bool(record["credential_guard"])
    verdicts = {verdict: {"processes": 0, "machines": 0} for verdict in VERDICTS + ("unknown",)}
    for record in known:
        for verdict, count in record["verdicts"].items():
            entry = verdicts.setdefault(verdict, {"processes": 0, "machines": 0})
            entry["processes"] += count
            entry["machines"] += bool(count)
    severities = {severity: 0 for severity in SEVERITY_ORDER}
    for record in known:
        severities[record["highest_severity"]] += 1
    return {
        "dumps": len(records),
        "statuses": statuses,
        "machines": len(known),
        "vbs": sum(1 for r in known if r["vbs"]),
        "credential_guard": sum(1 for r in known if r["credential_guard"]),
        "partial": sum(1 for r in known if r["partial"]),
        "builds": dict(sorted(builds.items(), key=lambda item: (item[0] == "unknown",
                                                                 item[0].zfill(8)))),
        "verdicts": verdicts,
        "highest_severity": severities,
        "secure_processes": sum(len(r["secure_processes"]) for r in known),
        "masquerades": sum(len(r["masquerades"]) for r in known),
        "unlinked_secure": sum(len(r["unlinked_secure"]) for r in known),
        "without_credential_guard": [r["path"] for r in known if not r["credential_guard"]],
        "failed": [{"path": r["path"], "error": r["error"]} for r in records
                   if r["status"] == FAILED],
    }


def build_fleet(records: Sequence[Mapping[str, Any]], *, started: float, finished: float,
                cluster: Mapping[str, Any], options: Mapping[str, Any],
                interrupted: bool = False, notes: Iterable[str] = ()) -> dict[str, Any]:
    """fleet.json: the run, its summary, and every dump's record in the order given."""
    return {
        "fleet_version": FLEET_VERSION,
        "tool": {"name": TOOL_NAME, "version": __version__, "volatility3": volatility_version()},
        "run": {
            "started": iso_time(started), "finished": iso_time(finished),
            "duration_seconds": round(finished - started, 3), "interrupted": interrupted,
            "cluster": dict(cluster), "options": dict(options), "notes": list(notes),
        },
        "summary": fleet_summary(records),
        "dumps": [dict(record) for record in records],
    }
