"""The three renderings of a report: JSON against its schema, Markdown and HTML with every
finding, and dump-controlled text (process names) made visible and inert in each."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser

import jsonschema
import pytest
from report_fixtures import credential_guard_machine, make_report, pages, process

from iumdump.report import FILE_NAMES, FORMATS, html, jsonreport, markdown, render
from iumdump.report.model import REPORT_VERSION, Report, dump_format_label
from iumdump.report.text import html_text, markdown as md_text, visible

HOSTILE = "<script>|x\u202e\n"  # 15 bytes is all ImageFileName holds; this is 12 characters


def validator() -> jsonschema.Draft202012Validator:
    schema = jsonreport.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema,
                                           format_checker=jsonschema.Draft202012Validator
                                           .FORMAT_CHECKER)


def hostile_report() -> Report:
    procs, accounting = credential_guard_machine()
    evil = process(HOSTILE, 6666, ppid=4420, linked=False, secure_state=0x7001)
    procs.append(evil)
    accounting[evil.offset] = pages(evil, (0x2000_0000, 2, 0, 0, 2))
    return make_report(procs, accounting, dump_format="raw", path="/cases/<b>evil</b>.raw",
                       notes=("process listing stopped early: <boom>",))


class TestJson:
    def test_validates_against_the_schema(self, cg_report):
        data = json.loads(jsonreport.render(cg_report))
        validator().validate(data)
        assert data["report_version"] == REPORT_VERSION
        # DESIGN §5 keys.
        assert {"tool", "dump", "kernel", "processes", "pages", "findings"} <= data.keys()
        assert {"name", "version", "volatility3"} <= data["tool"].keys()
        assert {"path", "size", "sha256", "format"} <= data["dump"].keys()
        assert {"build", "pdb_guid"} <= data["kernel"].keys()
        assert {"pid", "ppid", "name", "offset", "linked", "secure", "secure_handle",
                "trustlet_id", "protection", "extended_flags", "flags", "verdict"} \
            <= data["processes"][0].keys()
        assert {"pid", "name", "pages", "absent", "zero_filled", "readable", "regions"} \
            <= data["pages"][0].keys()
        assert {"kind", "severity", "pid", "message"} <= data["findings"][0].keys()

    def test_hostile_report_validates_and_is_ascii(self):
        text = jsonreport.render(hostile_report())
        text.encode("ascii")
        data = json.loads(text)
        validator().validate(data)
        assert HOSTILE in {p["name"] for p in data["processes"]}  # lossless
        assert "\\u202e" in text

    def test_unlinked_secure_processes_are_those_summary_counts_as_secure(self):
        """Regression: fleet.json listed every unlinked process whose verdict reads "secure" as
        an unlinked secure process, one with an implausible secure state too, which report.json
        leaves out of its secure processes; the summary now lists them for fleet to read."""
        procs, accounting = credential_guard_machine()
        procs.append(process("BioIso.exe", 3892, secure_state=0x1001, linked=False))
        procs.append(process("notepad.exe", 6100, secure_state=0xFFFF_FFFF_FFFF_FFFF,
                             linked=False))
        data = make_report(procs, accounting).as_dict()
        validator().validate(data)
        assert data["summary"]["unlinked_secure"] == [{"pid": 3892, "name": "BioIso.exe"}]
        assert 6100 not in {p["pid"] for p in data["summary"]["secure_processes"]}

    def test_the_terminal_gives_every_reason_the_reports_give_for_partial_pages(self):
        """Regression: where a process's page walk had problems of its own, analyze's terminal
        summary left out its regions' problems, which report.md and report.html list."""
        import dataclasses

        from iumdump.commands.analyze import partial_reasons
        from iumdump.report.model import page_problems

        procs, accounting = credential_guard_machine()
        lsaiso = procs[2]
        walk = accounting[lsaiso.offset]
        region = dataclasses.replace(walk.regions[0], problems=("PDE at 0x1000 unreadable",))
        accounting[lsaiso.offset] = dataclasses.replace(
            walk, regions=(region, *walk.regions[1:]), problems=("VAD tree loops",))
        report = make_report(procs, accounting)
        (entry,) = [e for e in report.pages if e["pid"] == lsaiso.pid]
        assert page_problems(entry) == ["VAD tree loops", "PDE at 0x1000 unreadable"]
        reasons = partial_reasons(report)
        assert [r for r in reasons if r.startswith("pages of LsaIso.exe")] == \
            [f"pages of LsaIso.exe (PID {lsaiso.pid}): {problem}"
             for problem in page_problems(entry)]

    def test_flags_unknown_are_null_with_reason(self, cg_report):
        lsaiso = next(p for p in cg_report.processes if p["pid"] == 712)
        assert lsaiso["flags"]["IsSecureProcess"] is True
        assert lsaiso["flags"]["IsStronglyNamed"] is None
        assert lsaiso["unknown_flags"]["IsStronglyNamed"] == "not-derivable"
        assert lsaiso["flag_sources"]["IsSecureProcess"] == "Pcb.SecureState"
        assert lsaiso["extended_flags"] == 0x80

    @pytest.mark.parametrize("mutate", [
        lambda d: d.pop("findings"),
        lambda d: d["processes"][0].update(verdict="evil"),
        lambda d: d["findings"][0].update(severity="critical"),
        lambda d: d["dump"].update(sha256="XYZ"),
        lambda d: d["processes"][0]["flags"].update(IsMadeUp=True),
        lambda d: next(p for p in d["pages"] if p["regions"])["regions"][0].pop("absent"),
        lambda d: d["processes"][0].update(create_time="14/05/2024 08:02"),
        lambda d: d["processes"][0].update(exit_time="2024-05-14T08:02:11+02:00"),
        lambda d: d["processes"][0].update(image_path=42),
        lambda d: d["processes"][0].update(trustlet_identity={"id": 1, "name": "LsaIso",
                                                              "basis": "guessed", "source": "x"}),
        lambda d: d["processes"][0].update(trustlet_identity={"id": 1}),
    ])
    def test_schema_rejects_broken_reports(self, cg_report, mutate):
        data = json.loads(jsonreport.render(cg_report))
        mutate(data)
        assert not validator().is_valid(data)

    def test_image_path_times_and_identity(self):
        """Issue 13: what the kernel records of a process's image and life, and a trustlet
        identity labelled with how it is known."""
        procs, accounting = credential_guard_machine()
        path = "\\Device\\HarddiskVolume3\\Windows\\System32\\LsaIso.exe"
        procs[2] = process("LsaIso.exe", 712, ppid=572, secure_state=0xE8D6_EEC1,
                           image_path=path, create_time=133_601_473_350_000_000,
                           exit_time=133_601_477_310_000_000)
        data = json.loads(jsonreport.render(make_report(procs, accounting)))
        validator().validate(data)
        lsaiso = next(p for p in data["processes"] if p["pid"] == 712)
        assert (lsaiso["image_path"], lsaiso["create_time"], lsaiso["exit_time"]) == \
            (path, "2024-05-14T08:02:15Z", "2024-05-14T08:08:51Z")
        assert lsaiso["trustlet_id"] is None
        assert lsaiso["trustlet_identity"] == {"id": 1, "name": "LsaIso", "basis": "inferred",
                                               "source": path}
        system = next(p for p in data["processes"] if p["pid"] == 4)
        assert (system["image_path"], system["exit_time"], system["trustlet_identity"]) == \
            (None, None, None)
        text = markdown.render(make_report(procs, accounting))
        assert "| 712 | LsaIso.exe | 2024-05-14T08:02:15Z | 2024-05-14T08:08:51Z | " in text
        assert "| 1 (inferred) |" in text
        assert '<td class="num">1 (inferred)</td>' in html.render(make_report(procs, accounting))

    def test_hostile_image_path_is_inert(self):
        procs, accounting = credential_guard_machine()
        procs.append(process("x.exe", 6668, image_path="\\Device\\X\\<img src=x>|\u202e.exe"))
        report = make_report(procs, accounting)
        row = next(line for line in markdown.render(report).splitlines()
                   if line.startswith("| 6668 | x.exe |"))
        assert len(re.findall(r"(?<!\\)\|", row)) == 6  # five columns, no pipe from the path
        page = html.render(report)
        assert "<img" not in page and "&lt;img src=x&gt;|\\u202e.exe" in page

    def test_round_trip(self, cg_report):
        again = Report.from_dict(json.loads(jsonreport.render(cg_report)))
        for fmt in FORMATS:
            assert render(again, fmt) == render(cg_report, fmt)


class TestMarkdown:
    def test_every_finding_and_process(self, cg_report):
        text = markdown.render(cg_report)
        for finding in cg_report.findings:
            assert md_text(finding["message"]) in text
            assert f"**{finding['kind']}**" in text
        for proc in cg_report.processes:
            assert f"| {proc['pid']} | {proc['ppid']} | {md_text(proc['name'])} |" in text
        assert "0x16700000" in text and "inaccessible" in text

    def test_plain_messages_need_no_escaping(self, cg_report):
        text = markdown.render(cg_report)
        for finding in cg_report.findings:
            assert finding["message"] in text

    def test_hostile_name_cannot_break_the_table(self):
        text = markdown.render(hostile_report())
        row = next(line for line in text.splitlines() if line.startswith("| 6666 |"))
        # Unescaped pipes: one per column boundary, none from the name.
        assert len(re.findall(r"(?<!\\)\|", row)) == 13
        assert "\\<script\\>" in row and "<script>" not in text
        assert "\\\\u202e" in row and "\\\\x0a" in row  # visible escapes (backslash escaped)
        assert "\u202e" not in text

    def test_partial_is_said(self):
        text = markdown.render(hostile_report())
        assert "**Partial result.**" in text
        assert "process listing stopped early: \\<boom\\>" in text


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data):
        self.text.append(data)


class TestHtml:
    def test_every_finding_and_self_contained(self, cg_report):
        text = html.render(cg_report)
        for finding in cg_report.findings:
            assert html_text(finding["message"]) in text
        parser = _Collector()
        parser.feed(text)
        assert "script" not in parser.tags and "link" not in parser.tags
        assert "img" not in parser.tags and "iframe" not in parser.tags
        names = {name for name, _ in parser.attributes}
        assert not names & {"src", "href", "srcset", "action"}
        assert "url(" not in text and "@import" not in text
        assert 'http-equiv="Content-Security-Policy"' in text
        assert f"content=\"{html.CSP}\"" in text

    def test_one_strip_per_secure_process_with_pages(self, cg_report):
        text = html.render(cg_report)
        strips = re.findall(r"<svg class=\"strip\".*?</svg>", text, re.S)
        assert len(strips) == 1  # LsaIso.exe; Secure System maps no user pages
        root = ElementTree.fromstring(strips[0])  # well-formed XML
        fills = [rect.get("fill") for rect in root.iter("{http://www.w3.org/2000/svg}rect")]
        assert fills == [html.COLORS["absent"]] * 2

    def test_strip_widths_follow_page_counts(self):
        entry = {"pid": 1, "name": "x", "pages": 9, "absent": 3, "zero_filled": 3, "readable": 3,
                 "regions": [
                     {"start": 0x10000, "end": 0x12FFF, "pages": 3, "absent": 3, "zero_filled": 0,
                      "readable": 0, "verdict": "inaccessible", "partial": False},
                     {"start": 0x40000, "end": 0x45FFF, "pages": 6, "absent": 0, "zero_filled": 3,
                      "readable": 3, "verdict": "partially-readable", "partial": True}]}
        root = ElementTree.fromstring(html.strip_svg(entry, width=1000))
        rects = [(rect.get("fill"), float(rect.get("width")))
                 for rect in root.iter("{http://www.w3.org/2000/svg}rect")]
        absent, zero, readable, outline = rects
        assert absent[0] == html.COLORS["absent"] and zero[0] == html.COLORS["zero_filled"]
        assert readable[0] == html.COLORS["readable"] and outline[0] == "none"
        assert zero[1] + readable[1] == pytest.approx(2 * absent[1], rel=0.01)
        assert zero[1] == pytest.approx(readable[1])
        assert outline[1] == pytest.approx(zero[1] + readable[1], abs=0.02)  # partial region

    def test_hostile_text_is_inert_and_visible(self):
        text = html.render(hostile_report())
        assert "<script>" not in text and "<b>evil</b>" not in text
        assert "&lt;script&gt;|x\\u202e\\x0a" in text
        assert "\u202e" not in text
        parser = _Collector()
        parser.feed(text)
        assert "script" not in parser.tags and "b" not in parser.tags
        assert "process listing stopped early: &lt;boom&gt;" in text
        assert "Partial result." in text


def test_visible():
    assert visible("LsaIso.exe") == "LsaIso.exe"
    assert visible("a\u202eb\x00c\\") == "a\\u202eb\\x00c\\\\"
    assert visible(None) == "—"
    assert md_text("a_b*c|d") == "a\\_b\\*c\\|d"


def test_file_names():
    assert FILE_NAMES == {"json": "report.json", "md": "report.md", "html": "report.html"}


def live_dump_report() -> Report:
    """LsaIso.exe's pages with the shared user data page, judged against a control group whose
    pages are missing too (a live kernel dump)."""
    from iumdump.analysis.derive import ControlGroup, ProcessPages, RegionPages

    procs, accounting = credential_guard_machine()
    lsaiso = procs[2]
    own = accounting[lsaiso.offset]
    shared = RegionPages(0x7FFE_0000, 0x7FFE_0FFF, 1, 0, 0, 1, "PAGE_READONLY", "VadS",
                         shared=True)
    control = ControlGroup(processes=4, pages=120, absent=120, pids=(724, 840, 896, 5108),
                           candidates=9)
    accounting[lsaiso.offset] = ProcessPages(
        lsaiso.pid, lsaiso.name, tuple(sorted(own.regions + (shared,), key=lambda r: r.start))
    ).judged(control)
    return make_report(procs, accounting, dump_format="crash-live")


class TestControlAndSharedPage:
    def test_json_carries_the_basis_and_validates(self):
        data = json.loads(jsonreport.render(live_dump_report()))
        validator().validate(data)
        (entry,) = [e for e in data["pages"] if e["pid"] == 712]
        assert (entry["pages"], entry["readable"], entry["shared_pages"], entry["verdict"]) == \
            (9, 0, 1, "not-captured")
        assert entry["control"]["captured"] is False and entry["control"]["pages"] == 120
        assert [r["verdict"] for r in entry["regions"]] == [
            "not-captured", "shared-user-data", "not-captured"]
        assert data["summary"]["control"]["processes"] == 4
        assert {f["kind"] for f in data["findings"]} >= {"trustlet-pages-not-captured"}
        assert "trustlet-pages-inaccessible" not in {f["kind"] for f in data["findings"]}

    def test_markdown_shows_control_figures_beside_the_trustlets(self):
        text = markdown.render(live_dump_report())
        assert ("9 mapped user pages: 9 absent from the dump, 0 zero-filled, 0 readable; "
                "verdict not-captured.") in text
        assert "Control group (4 normal processes): 0 of 120 user pages readable — the dump " \
               "does not hold the normal processes' user memory." in text
        assert "| control: 4 normal processes | 120 | 120 | 0 | 0 |" in text
        assert "| LsaIso.exe | 9 | 9 | 0 | 0 |" in text
        assert "shared-user-data" in text

    def test_html_shows_control_figures_and_labels_the_shared_page(self):
        text = html.render(live_dump_report())
        assert "control: 4 normal processes" in text
        assert "shared user data page (every process&#x27;s; not counted)" in text or \
            "shared user data page (every process's; not counted)" in text
        assert "shared-user-data" in text and "not-captured" in text


@pytest.mark.parametrize("dump, label", [
    ({"format": "raw"}, "raw"),  # a report.json written before the header keys existed
    ({"format": "raw", "dump_type": None, "summary_signature": None, "bug_check": None}, "raw"),
    ({"format": "crash-live", "dump_type": 6, "summary_signature": "SDMP", "bug_check": 0xE2},
     "crash-live, DumpType 6, SDMP, bug check 0xe2"),
    ({"format": "crash-live", "dump_type": 6, "summary_signature": "SDMP", "bug_check": 0x161},
     "crash-live, DumpType 6, SDMP, bug check 0x161"),
])
def test_the_format_says_what_the_crash_dump_header_says(dump, label):
    """DumpType 6 is a live dump or a kernel dump written at a bug check: the bug check, shown
    beside the format in the summary, Markdown and HTML, is what tells an analyst which."""
    assert dump_format_label(dump) == label
