"""report.case.jsonld: CASE/UCO JSON-LD of a report, checked by ``case_validate`` from PyPI
case-utils (the ``case`` extra; those tests skip where it is not installed) against CASE's own
shapes and iumdump's extension ontology (iumdump/data/iumdump-case.ttl)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from markers import SLOW
from report_fixtures import analyze_dump, credential_guard_machine, make_report

from iumdump.report import case
from iumdump.report.model import dump_format_label

CASE_VALIDATE = shutil.which("case_validate")
needs_case_validate = pytest.mark.skipif(
    CASE_VALIDATE is None, reason="case_validate (pip install case-utils, the 'case' extra) is "
                                  "not installed")


def nodes_of(document: dict, kind: str) -> list[dict]:
    return [node for node in document["@graph"] if node.get("@type") == kind]


def facet(node: dict, kind: str) -> dict:
    (found,) = [f for f in node["core:hasFacet"] if f["@type"] == kind]
    return found


@pytest.fixture(scope="module")
def adversarial(synth_dump, tmp_path_factory):
    """(truth, report.json, path of report.case.jsonld) of the adversarial machine."""
    result = synth_dump("adversarial", "crash-bitmap")
    out = tmp_path_factory.mktemp("case")
    return result.truth, analyze_dump(result, out, "json,case"), out / "report.case.jsonld"


def test_the_dump_is_a_file_with_its_hash(adversarial):
    _truth, report, path = adversarial
    document = json.loads(path.read_text())
    (tool, volatility) = nodes_of(document, "tool:AnalyticTool")
    assert (tool["core:name"], tool["tool:version"]) == ("iumdump", report["tool"]["version"])
    assert (volatility["core:name"], volatility["tool:version"]) == \
        ("Volatility 3", report["tool"]["volatility3"])
    dump = next(node for node in nodes_of(document, "observable:File")
                if node.get("core:description", "").startswith("memory dump"))
    content = facet(dump, "observable:ContentDataFacet")
    assert content["observable:sizeInBytes"] == report["dump"]["size"]
    (hash_,) = nodes_of(document, "types:Hash")
    assert content["observable:hash"] == [{"@id": hash_["@id"]}]
    assert hash_["types:hashMethod"] == "SHA256"
    assert hash_["types:hashValue"] == {"@type": "xsd:hexBinary",
                                        "@value": report["dump"]["sha256"].upper()}
    assert facet(dump, "observable:FileFacet")["observable:filePath"] == report["dump"]["path"]


def test_the_dump_s_description_names_its_format_as_the_reports_do(adversarial):
    """Regression: the CASE export described a crash dump by its format alone ("crash-bitmap"),
    where report.md and report.html add the header's DumpType, signature and bug check."""
    _truth, report, path = adversarial
    document = json.loads(path.read_text())
    (dump,) = [node for node in nodes_of(document, "observable:File")
               if node.get("core:description", "").startswith("memory dump")]
    assert dump["core:description"] == f"memory dump ({dump_format_label(report['dump'])})"
    assert "DumpType" in dump["core:description"]


def test_each_process_is_a_windows_process_with_its_secure_facet(adversarial):
    truth, report, path = adversarial
    document = json.loads(path.read_text())
    processes = nodes_of(document, "observable:WindowsProcess")
    assert len(processes) == len(truth["processes"])
    by_offset = {facet(node, "iumdump:SecureProcessFacet")["iumdump:eprocessOffset"]: node
                 for node in processes}
    files = {node["@id"]: node for node in nodes_of(document, "observable:File")}
    pages = {entry["offset"]: entry for entry in report["pages"]}
    for expected in truth["processes"]:
        node = by_offset[expected["offset"]]
        process = facet(node, "observable:ProcessFacet")
        secure = facet(node, "iumdump:SecureProcessFacet")
        assert process["observable:pid"] == expected["pid"]
        assert process["observable:observableCreatedTime"] == \
            {"@type": "xsd:dateTime", "@value": expected["create_time"]}
        assert process.get("observable:exitTime", {}).get("@value") == expected["exit_time"]
        if (expected["image_path"] or "").startswith("\\"):
            binary = files[process["observable:binary"]["@id"]]
            assert facet(binary, "observable:FileFacet")["observable:filePath"] == \
                expected["image_path"]
        else:
            assert "observable:binary" not in process
        assert secure["iumdump:isSecureProcess"] is expected["secure"]
        assert secure["iumdump:verdict"] == expected["verdict"]
        assert secure["iumdump:isLinked"] is expected["linked"]
        assert secure["iumdump:protectionLevel"] == expected["protection"]
        entry = pages.get(expected["offset"])
        assert secure.get("iumdump:mappedPages") == (entry["pages"] if entry else None)
        if expected["name"] == "LsaIso.exe" and expected["secure"]:
            assert (secure["iumdump:trustletId"], secure["iumdump:trustletIdBasis"],
                    secure["iumdump:trustletIdSource"]) == (1, "inferred", expected["image_path"])
            assert secure["iumdump:absentPages"] == entry["absent"] > 0
    # A parent is linked where the dump holds it: services.exe under wininit.exe.
    wininit = next(p for p in truth["processes"] if p["name"] == "wininit.exe")
    services = next(p for p in truth["processes"] if p["name"] == "services.exe")
    assert facet(by_offset[services["offset"]], "observable:ProcessFacet")[
        "observable:parent"] == {"@id": by_offset[wininit["offset"]]["@id"]}


def test_findings_and_the_investigative_action(adversarial):
    _truth, report, path = adversarial
    document = json.loads(path.read_text())
    annotations = nodes_of(document, "core:Annotation")
    assert [(a["core:name"], a["core:statement"]) for a in annotations] == \
        [(f["kind"], f["message"]) for f in report["findings"]]
    for annotation, finding in zip(annotations, report["findings"]):
        assert facet(annotation, "iumdump:FindingFacet") == {
            "@id": facet(annotation, "iumdump:FindingFacet")["@id"],
            "@type": "iumdump:FindingFacet", "iumdump:findingKind": finding["kind"],
            "iumdump:severity": finding["severity"]}
    (action,) = nodes_of(document, "investigation:InvestigativeAction")
    assert action["action:startTime"]["@value"] == report["analysis"]["started"]
    results = {ref["@id"] for ref in action["action:result"]}
    assert {a["@id"] for a in annotations} <= results
    assert {p["@id"] for p in nodes_of(document, "observable:WindowsProcess")} <= results
    assert len(action["action:instrument"]) == 2


def test_identifiers_are_stable_and_the_text_ascii():
    procs, accounting = credential_guard_machine()
    report = make_report(procs, accounting)
    text = case.render(report)
    assert text == case.render(report) and text.isascii()
    ids = [node["@id"] for node in json.loads(text)["@graph"]]
    assert len(ids) == len(set(ids))
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert all(re.fullmatch(rf"kb:\w+-{uuid}", i) for i in ids if i.startswith("kb:"))


def test_every_extension_term_is_declared_in_the_ontology(adversarial):
    """What the export declares of iumdump's namespace, the ontology file defines (with a shape
    for each class)."""
    _truth, _report, path = adversarial
    document = json.loads(path.read_text())
    ontology = case.ontology_path().read_text()
    terms = [node for node in document["@graph"] if node["@id"].startswith("iumdump:")]
    assert {node["@id"] for node in terms} >= {"iumdump:SecureProcessFacet",
                                              "iumdump:FindingFacet", "iumdump:trustletIdBasis"}
    for node in terms:
        if node["@type"] == "owl:Class":
            assert re.search(rf"^{node['@id']}\n\ta\n\t\towl:Class ,\n\t\tsh:NodeShape", ontology,
                             re.MULTILINE), node["@id"]
        else:
            assert re.search(rf"^{node['@id']} a owl:DatatypeProperty", ontology, re.MULTILINE)
            assert f"sh:path {node['@id']} ;" in ontology


@needs_case_validate
@SLOW  # runs case_validate, another program (about 25 s on two cores)
def test_case_validate_conforms(adversarial):
    """CASE's shapes, iumdump's extension shapes and the review of the extension's classes and
    properties (--review-tbox, as the CASE examples validate their drafting terms)."""
    _truth, _report, path = adversarial
    done = subprocess.run([CASE_VALIDATE, "--review-tbox", "--ontology-graph",
                           str(case.ontology_path()), str(path)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Conforms: True" in done.stdout


@needs_case_validate
@SLOW  # runs case_validate, another program (about 25 s on two cores)
def test_case_validate_holds_values_to_the_extension_shapes(adversarial, tmp_path):
    """The shapes are not decoration: a severity outside info/low/medium/high fails."""
    _truth, _report, path = adversarial
    broken = tmp_path / "broken.jsonld"
    broken.write_text(path.read_text().replace('"iumdump:severity": "high"',
                                               '"iumdump:severity": "critical"'))
    done = subprocess.run([CASE_VALIDATE, "--ontology-graph", str(case.ontology_path()),
                           str(broken)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode != 0
    assert "Conforms: False" in done.stdout and "critical" in done.stdout


def test_the_extension_shapes_admit_every_value_iumdump_writes():
    """Regression: issue 8 added the not-captured page verdict after the shapes were written;
    the vocabularies of the extension ontology must follow what derive and findings produce."""
    from iumdump.analysis.derive import REGION_VERDICTS, SHARED_USER_DATA, VERDICTS
    from iumdump.analysis.findings import SEVERITIES

    ontology = case.ontology_path().read_text()

    def vocabulary(path: str) -> set[str]:
        match = re.search(rf"sh:path iumdump:{path} ;[^]]*?sh:in \(([^)]*)\)", ontology)
        return set(re.findall(r'"([^"]+)"', match.group(1)))

    # A process's page verdict is never the shared page's own label.
    assert vocabulary("pageVerdict") == set(REGION_VERDICTS) - {SHARED_USER_DATA}
    assert vocabulary("verdict") == set(VERDICTS)
    assert vocabulary("severity") == set(SEVERITIES)
    assert vocabulary("trustletIdBasis") == {"read", "inferred"}
