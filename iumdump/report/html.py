"""report.html: one self-contained file an analyst can open offline and attach to a case.

No external assets and no scripts: the CSS is inline, each secure process's address-space strip
is inline SVG, and a Content-Security-Policy forbids loading anything. Every string from the
dump goes through :func:`.text.html_text` / :func:`.text.html_attribute`.

The strip shows a process's user regions in address order, each as wide as its share of the
mapped pages (with a minimum so that small regions stay visible); inside a region the segments
show how many pages are absent, zero-filled and readable — proportions, not positions, because
the report keeps counts per region.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ..analysis.findings import SEVERITIES
from .markdown import SEVERITY_NOTES
from .model import FLAG_SHORT, Report, control_label, pages_sentence, trustlet_id_text
from .text import hex_or_dash, html_attribute as attr, html_text as text

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

COLORS = {"absent": "#475569", "zero_filled": "#cbd5e1", "readable": "#f59e0b",
          "shared": "#93c5fd"}
FATE_LABELS = {"absent": "absent from the dump", "zero_filled": "zero-filled",
               "readable": "readable (content in the dump)",
               "shared": "shared user data page (every process's; not counted)"}

STYLE = """
:root { color-scheme: light; --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc;
  --high:#b91c1c; --medium:#c2410c; --low:#a16207; --info:#1d4ed8; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--ink); background:var(--bg); }
header { background:#0f172a; color:#f8fafc; padding:20px 32px; }
header h1 { margin:0 0 4px; font-size:22px; }
header .sub { color:#cbd5e1; font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:13px;
  word-break:break-all; }
main { padding:8px 32px 32px; max-width:1400px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
  margin:16px 0; }
h2 { margin:0 0 12px; font-size:18px; } h3 { margin:18px 0 8px; font-size:15px; }
.partial { border-left:4px solid var(--medium); background:#fff7ed; padding:10px 14px;
  margin:16px 0; border-radius:4px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:150px; }
.card .n { font-size:24px; font-weight:700; } .card .l { color:var(--muted); font-size:12px; }
.sev-high { color:var(--high); } .sev-medium { color:var(--medium); }
.sev-low { color:var(--low); } .sev-info { color:var(--info); }
.finding { border-left:4px solid var(--line); padding:6px 12px; margin:8px 0; background:#fafafa; }
.finding.high { border-color:var(--high); } .finding.medium { border-color:var(--medium); }
.finding.low { border-color:var(--low); } .finding.info { border-color:var(--info); }
.kind { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12px; font-weight:600; }
.badge { display:inline-block; padding:0 6px; border-radius:9px; font-size:11px; font-weight:600;
  color:#fff; vertical-align:1px; }
.badge.high { background:var(--high); } .badge.medium { background:var(--medium); }
.badge.low { background:var(--low); } .badge.info { background:var(--info); }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f1f5f9; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.flags, td.verdict { white-space:nowrap; }
.mono { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12px; }
tr.v-secure td { background:#eff6ff; } tr.v-masquerade td { background:#fef2f2; }
tr.v-enclave-host td { background:#f5f3ff; } tr.unlinked td { font-style:italic; }
.verdict { font-weight:600; } .muted { color:var(--muted); }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; }
dl.kv dt { color:var(--muted); } dl.kv dd { margin:0; word-break:break-all; }
.legend span { display:inline-block; margin-right:16px; font-size:12px; }
.legend i { display:inline-block; width:12px; height:12px; border-radius:2px; margin-right:4px;
  vertical-align:-1px; }
.scroll { overflow-x:auto; }
svg.strip { display:block; width:100%; height:auto; margin:6px 0 4px; }
footer { color:var(--muted); font-size:12px; padding:0 32px 24px; }
"""


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _pid(value: int | None) -> str:
    return "?" if value is None else str(value)


def _rows(cells: Iterable[Iterable[str]]) -> str:
    return "".join("<tr>" + "".join(cell for cell in row) + "</tr>" for row in cells)


def strip_svg(entry: dict[str, Any], width: int = 1000, height: int = 64) -> str:
    """The address-space strip of one process's page accounting, as inline SVG."""
    regions = [r for r in entry["regions"] if r["pages"]] or entry["regions"]
    label = (f"User address space of {entry['name']} (PID {_pid(entry['pid'])}): "
             f"{entry['pages']} mapped pages, {entry['absent']} absent, "
             f"{entry['zero_filled']} zero-filled, {entry['readable']} readable")
    parts = [f'<svg class="strip" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} '
             f'{height}" role="img" aria-label="{attr(label)}"><title>{text(label)}</title>']
    if not regions:
        parts.append(f'<text x="4" y="{height // 2}" font-size="12" fill="#6b7280">no mapped user '
                     'pages</text></svg>')
        return "".join(parts)
    gap = 2
    bar_top, bar_height = 4, height - 24
    usable = width - gap * (len(regions) - 1)
    minimum = max(2.0, min(24.0, usable / (4 * len(regions))))
    total = sum(max(r["pages"], 1) for r in regions)
    # Widths ∝ pages, but never below `minimum`; the rest is shared out proportionally.
    small = {id(r) for r in regions if usable * max(r["pages"], 1) / total < minimum}
    rest_total = total - sum(max(r["pages"], 1) for r in regions if id(r) in small)
    rest_width = usable - minimum * len(small)
    x = 0.0
    label_end = -1.0
    for region in regions:
        weight = max(region["pages"], 1)
        w = minimum if id(region) in small or not rest_total else rest_width * weight / rest_total
        span = f"{region['start']:#x}–{region['end']:#x}"
        parts.append(f'<g><title>{text(span)}: {region["pages"]} pages — {region["absent"]} '
                     f'absent, {region["zero_filled"]} zero-filled, {region["readable"]} '
                     f'readable ({text(region["verdict"])})</title>')
        segment_x = x
        pages = region["pages"]
        if not pages:
            parts.append(f'<rect x="{x:.2f}" y="{bar_top}" width="{w:.2f}" height="{bar_height}" '
                         'fill="#ffffff" stroke="#94a3b8" stroke-dasharray="3 2"/>')
        if region.get("shared"):
            parts.append(f'<rect x="{x:.2f}" y="{bar_top}" width="{w:.2f}" '
                         f'height="{bar_height}" fill="{COLORS["shared"]}"/>')
        for fate in ("absent", "zero_filled", "readable"):
            if not pages or not region[fate] or region.get("shared"):
                continue
            seg = w * region[fate] / pages
            parts.append(f'<rect x="{segment_x:.2f}" y="{bar_top}" width="{seg:.2f}" '
                         f'height="{bar_height}" fill="{COLORS[fate]}"/>')
            segment_x += seg
        if region.get("partial"):
            parts.append(f'<rect x="{x:.2f}" y="{bar_top}" width="{w:.2f}" height="{bar_height}" '
                         'fill="none" stroke="#c2410c" stroke-width="2" stroke-dasharray="4 2"/>')
        parts.append("</g>")
        tick = f"{region['start']:#x}"
        tick_width = 6.2 * len(tick)
        if x >= label_end and x + tick_width <= width:
            parts.append(f'<text x="{x:.2f}" y="{height - 6}" font-size="10" fill="#475569" '
                         f'font-family="monospace">{text(tick)}</text>')
            label_end = x + tick_width + 8
        x += w + gap
    parts.append("</svg>")
    return "".join(parts)


def _flags_cell(process: dict[str, Any]) -> str:
    """The set flags by short name; the unknown ones as a muted count (named on hover)."""
    set_flags = [FLAG_SHORT[name] for name, value in process["flags"].items() if value]
    unknown = [FLAG_SHORT[name] for name, value in process["flags"].items() if value is None]
    cell = text(", ".join(set_flags) or "none")
    if unknown:
        cell += (f' <span class="muted" title="{attr("unknown: " + ", ".join(unknown))}">'
                 f'+{len(unknown)} unknown</span>')
    return cell


def _legend() -> str:
    return ('<p class="legend">' + "".join(
        f'<span><i style="background:{COLORS[fate]}"></i>{FATE_LABELS[fate]}</span>'
        for fate in ("absent", "zero_filled", "readable", "shared")) +
        '<span class="muted">Regions in address order, width ∝ mapped pages; segments show '
        'proportions within a region. A dashed orange outline marks a partial count.</span></p>')


def render(report: Report) -> str:
    dump, kernel, analysis, summary = report.dump, report.kernel, report.analysis, report.summary
    counts = summary["findings"]
    verdicts = summary["verdicts"]
    title = f"iumdump report — {os.path.basename(dump['path'])}"
    out: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{text(title)}</title><style>{STYLE}</style></head><body>",
        f'<header><h1>iumdump report</h1><div class="sub">{text(dump["path"])}</div>'
        f'<div class="sub">sha256 {text(dump["sha256"])}</div></header><main>',
    ]
    if report.partial:
        out.append('<div class="partial"><strong>Partial result.</strong> Part of the dump could '
                   'not be read; counts and verdicts cover what could be seen (see Notes).</div>')

    # Summary
    out.append('<section id="summary"><h2>Summary</h2><div class="cards">')
    for severity in reversed(SEVERITIES):
        out.append(f'<div class="card"><div class="n sev-{severity}">{counts[severity]}</div>'
                   f'<div class="l">{severity} finding{"s" if counts[severity] != 1 else ""}'
                   '</div></div>')
    facts = [
        ("Virtualization-Based Security", "active" if summary["vbs_active"] else "not seen"),
        ("Credential Guard", "active" if summary["credential_guard"] else "not seen"),
        ("Secure processes", str(verdicts.get("secure", 0))),
        ("Processes", f"{summary['processes']} ({summary['unlinked']} unlinked)"),
    ]
    out += [f'<div class="card"><div class="n">{text(value)}</div><div class="l">{text(label)}'
            '</div></div>' for label, value in facts]
    out.append("</div>")
    pages = summary["trustlet_pages"]
    if pages["mapped"]:
        out.append(f'<p>User pages of secure processes: <strong>{pages["mapped"]:,}</strong> '
                   f'mapped — {pages["absent"]:,} absent, {pages["zero_filled"]:,} zero-filled, '
                   f'{pages["readable"]:,} readable.</p>')
    control = summary.get("control")
    if control and control["pages"]:
        out.append(f'<p>User pages of normal processes (control group, '
                   f'{text(control_label(control))}): <strong>{control["pages"]:,}</strong> '
                   f'mapped — {control["absent"]:,} absent, {control["zero_filled"]:,} '
                   f'zero-filled, {control["readable"]:,} readable.</p>')
    out.append("</section>")

    # Findings
    out.append('<section id="findings"><h2>Findings</h2>')
    if not report.findings:
        out.append("<p>No findings.</p>")
    for severity, findings in report.findings_by_severity():
        out.append(f'<h3 class="sev-{severity}">{severity.capitalize()} '
                   f'<span class="muted">— {SEVERITY_NOTES[severity]}</span></h3>')
        for finding in findings:
            where = f"PID {finding['pid']}" if finding["pid"] is not None else "machine"
            out.append(f'<div class="finding {severity}"><span class="badge {severity}">'
                       f'{severity}</span> <span class="kind">{text(finding["kind"])}</span> '
                       f'<span class="muted">{text(where)}</span><br>'
                       f'{text(finding["message"])}</div>')
    out.append("</section>")

    # Pages
    out.append('<section id="pages"><h2>Pages of secure processes</h2>')
    if not report.pages:
        out.append("<p>No secure process has user pages to account for.</p>")
    else:
        out.append(_legend())
    for entry in report.pages:
        out.append(f'<h3>{text(entry["name"])} <span class="muted">PID {_pid(entry["pid"])}'
                   '</span></h3>')
        counts, rest = pages_sentence(entry)
        out.append(f"<p>{text(counts)}"
                   f"{' — <strong>partial</strong>' if entry.get('partial') else ''}"
                   f"{text(rest)}</p>")
        control = entry.get("control")
        if control and entry["pages"]:
            out.append('<table class="control"><thead><tr><th></th><th class="num">Pages</th>'
                       '<th class="num">Absent</th><th class="num">ZeroFilled</th>'
                       '<th class="num">Readable</th></tr></thead><tbody>')
            out.append(_rows(
                [f"<td>{text(label)}</td>"] + [f'<td class="num">{counts[key]:,}</td>' for key in
                                              ("pages", "absent", "zero_filled", "readable")]
                for label, counts in ((entry["name"], entry),
                                      (f"control: {control_label(control)}", control))))
            out.append("</tbody></table>")
        if not entry["regions"] or not entry["pages"] and not entry.get("partial"):
            continue
        out.append(strip_svg(entry))
        out.append('<table><thead><tr><th>Start</th><th>End</th><th class="num">Pages</th>'
                   '<th class="num">Absent</th><th class="num">ZeroFilled</th>'
                   '<th class="num">Readable</th><th>Protection</th><th>Tag</th><th>Verdict</th>'
                   '</tr></thead><tbody>')
        out.append(_rows(
            [f'<td class="mono">{hex_or_dash(r["start"])}</td>',
             f'<td class="mono">{hex_or_dash(r["end"])}</td>',
             f'<td class="num">{r["pages"]}</td>', f'<td class="num">{r["absent"]}</td>',
             f'<td class="num">{r["zero_filled"]}</td>', f'<td class="num">{r["readable"]}</td>',
             f'<td>{text(r.get("protection") or "—")}</td>',
             f'<td class="mono">{text(r.get("tag") or "—")}</td>',
             f'<td>{text(r["verdict"])}{" (partial)" if r.get("partial") else ""}</td>']
            for r in entry["regions"]))
        out.append("</tbody></table>")
        problems = list(dict.fromkeys(entry.get("problems", []) + [
            p for r in entry["regions"] for p in r.get("problems", [])]))
        if problems:
            out.append("<ul>" + "".join(f"<li>partial: {text(p)}</li>" for p in problems)
                       + "</ul>")
    out.append("</section>")

    # Processes
    out.append('<section id="processes"><h2>Processes</h2><div class="scroll"><table><thead><tr>'
               '<th class="num">PID</th><th class="num">PPID</th><th>Name</th><th>Offset(V)</th>'
               '<th>Linked</th><th>Secure</th><th>SecureHandle</th><th class="num">TrustletId</th>'
               '<th>Protection</th><th>ExtendedFlags</th><th>Flags set</th><th>Verdict</th>'
               '<th>Created</th><th>Exited</th><th>Image path</th></tr></thead><tbody>')
    for process in report.processes:
        verdict = process["verdict"] or "unknown"
        classes = f"v-{verdict}" + ("" if process["linked"] else " unlinked")
        sources = "; ".join(f"{name}: {source or 'not derivable'}"
                            for name, source in process.get("flag_sources", {}).items())
        out.append(
            f'<tr class="{attr(classes)}">'
            f'<td class="num">{_pid(process["pid"])}</td><td class="num">{_pid(process["ppid"])}</td>'
            f'<td class="mono">{text(process["name"])}</td>'
            f'<td class="mono">{hex_or_dash(process["offset"])}</td>'
            f'<td>{_yes_no(process["linked"])}</td><td>{_yes_no(process["secure"])}</td>'
            f'<td class="mono">{hex_or_dash(process["secure_handle"])}</td>'
            f'<td class="num">{text(trustlet_id_text(process))}</td>'
            f'<td>{text(process["protection"] or "unknown")}</td>'
            f'<td class="mono">{process["extended_flags"]:#010x}</td>'
            f'<td class="flags" title="{attr(sources)}">{_flags_cell(process)}</td>'
            f'<td class="verdict">{text(verdict)}'
            f'{" (partial)" if process.get("partial") else ""}</td>'
            f'<td class="mono">{text(process.get("create_time") or "—")}</td>'
            f'<td class="mono">{text(process.get("exit_time") or "—")}</td>'
            f'<td class="mono">{text(process.get("image_path"))}</td></tr>')
    out.append('</tbody></table></div><p class="muted">Flags are the PROCESS_EXTENDED_BASIC_INFORMATION '
               'bits NtQueryInformationProcess would have returned; unknown ones cannot be derived '
               'from this build\'s EPROCESS. Hover a cell for the field each flag came from. '
               'Italic rows were found only by pool scanning. A TrustletId marked inferred is '
               'the id the image path of a genuine Windows trustlet implies, where the build no '
               'longer stores TrustletIdentity. Times are UTC.</p></section>')

    # Evidence
    build = kernel.get("build")
    age = kernel.get("pdb_age")
    evidence = [
        ("Dump", dump["path"]), ("Size", f"{dump['size']:,} bytes"), ("SHA-256", dump["sha256"]),
        ("Format", dump["format"]),
        ("Kernel", f"build {build if build is not None else 'unknown'}, "
                   f"{kernel.get('pdb_name') or 'PDB'} {kernel.get('pdb_guid') or '?'}-"
                   f"{age if age is not None else '?'}"),
        ("Kernel base / DTB", f"{hex_or_dash(kernel.get('base'))} / {hex_or_dash(kernel.get('dtb'))}"),
        ("Layers", " → ".join(kernel.get("layers", []))),
        ("Symbols", kernel.get("symbols") or "—"),
        ("Analysed", f"{analysis['started']} to {analysis['finished']} "
                     f"({analysis['duration_seconds']:.1f} s)"),
        ("Tool", f"iumdump {report.tool['version']}, Volatility 3 {report.tool['volatility3']}"),
    ]
    out.append('<section id="evidence"><h2>Evidence and analysis</h2><dl class="kv">'
               + "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in evidence)
               + "</dl></section>")

    notes = analysis.get("notes", [])
    log = analysis.get("volatility_log", [])
    if notes or log:
        out.append('<section id="notes"><h2>Notes</h2><ul>'
                   + "".join(f"<li>{text(n)}</li>" for n in notes)
                   + "".join(f"<li>Volatility: {text(line)}</li>" for line in log)
                   + "</ul></section>")
    out.append(f'</main><footer>Generated by iumdump {text(report.tool["version"])} on '
               f'{text(analysis["finished"])}. This file is self-contained and loads nothing.'
               '</footer></body></html>')
    return "\n".join(out) + "\n"
