"""report.case.jsonld: the report as CASE/UCO JSON-LD, for case-management and graph tools.

CASE (Cyber-investigation Analysis Standard Expression, https://caseontology.org) on UCO 1.x, as
``case_validate`` (PyPI ``case-utils``) checks it. The graph holds:

- the dump as an ``observable:File`` with a ``FileFacet`` (name, path, size, modification time)
  and a ``ContentDataFacet`` whose ``types:Hash`` is its SHA256;
- each process as an ``observable:WindowsProcess`` with a ``ProcessFacet`` (PID, creation and exit
  time, its parent where the dump has it, its image as an ``observable:File`` with the path) and
  an ``iumdump:SecureProcessFacet`` (secure state and handle, PS_PROTECTION, the extended flags
  word, trustlet identity with how it is known, the verdict and, for a secure process, its page
  accounting);
- each finding as a ``core:Annotation`` on the process it is about (or on the dump), its message
  the statement, with an ``iumdump:FindingFacet`` for kind and severity;
- the analysis as an ``investigation:InvestigativeAction`` (start, end; iumdump and Volatility 3
  as ``tool:AnalyticTool`` instruments with their versions; the dump as its object; processes and
  findings as its results).

UCO has no property for secure state, PS_PROTECTION, trustlet identity or page accounting; those
live in iumdump's own namespace, declared as OWL classes and properties with SHACL shapes in
``iumdump/data/iumdump-case.ttl`` (:func:`ontology_path`), the way CASE carries concepts outside
the ontology: ``case_validate --review-tbox --ontology-graph iumdump-case.ttl report.case.jsonld``.
The export also declares the extension classes (subclasses of ``core:Facet``) and properties it
uses, so that a reader without that file still finds a conformant graph; the file adds the
shapes that check their values.

Identifiers are UUIDv5s derived from the dump's SHA-256 and what each node is, so analysing the
same dump twice names the same dump and processes with the same IRIs; facets and hashes follow
case-utils' inherent-UUID scheme (a facet's UUID is the UUIDv5 of its class IRI in the namespace
of its object's UUID; a hash's that of ``urn:hash::sha256:<hex>``).
"""

from __future__ import annotations

import json
import os
import uuid
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from .model import Report, dump_format_label

KB = "https://iumdump.invalid/kb/"
EXTENSION = "https://iumdump.invalid/ontology/"
ONTOLOGY_RESOURCE = "iumdump-case.ttl"
UCO = "https://ontology.unifiedcyberontology.org/uco/"
CONTEXT = {
    "kb": KB,
    "iumdump": EXTENSION,
    "action": UCO + "action/",
    "core": UCO + "core/",
    "observable": UCO + "observable/",
    "tool": UCO + "tool/",
    "types": UCO + "types/",
    "investigation": "https://ontology.caseontology.org/case/investigation/",
    "owl": "http://www.w3.org/2002/07/owl#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
EXTENSION_ONTOLOGY = "https://iumdump.invalid/ontology"
_KB_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, KB)


def ontology_path() -> Path:
    """The extension ontology (OWL and SHACL, Turtle) to pass to case_validate."""
    return Path(os.fspath(resources.files("iumdump").joinpath("data", ONTOLOGY_RESOURCE)))


def _expand(term: str) -> str:
    prefix, _, local = term.partition(":")
    return CONTEXT[prefix] + local


def _uuid_of(iri: str) -> uuid.UUID:
    return uuid.UUID(iri[-36:])


def _node_id(local_class: str, key: str) -> str:
    return f"kb:{local_class}-{uuid.uuid5(_KB_NAMESPACE, key)}"


def _facet_id(object_id: str, facet_class: str) -> str:
    """case-utils' inherent UUID of a facet: UUIDv5(object's UUID, facet class IRI)."""
    return (f"kb:{facet_class.partition(':')[2]}-"
            f"{uuid.uuid5(_uuid_of(object_id), _expand(facet_class))}")


def _hash_id(method: str, value: str) -> str:
    return f"kb:Hash-{uuid.uuid5(uuid.NAMESPACE_URL, f'urn:hash::{method}:{value.lower()}')}"


def _time(iso: str | None) -> dict[str, str] | None:
    return None if iso is None else {"@type": "xsd:dateTime", "@value": iso}


def _ref(node_id: str) -> dict[str, str]:
    return {"@id": node_id}


def _compact(node: dict[str, Any]) -> dict[str, Any]:
    """Leave out properties without a value (an unknown is no statement at all in RDF)."""
    return {key: value for key, value in node.items() if value is not None and value != []}


def _facet(object_id: str, facet_class: str, **properties: Any) -> dict[str, Any]:
    return _compact({"@id": _facet_id(object_id, facet_class), "@type": facet_class,
                     **properties})


class _Graph:
    """The nodes of one report's graph, keyed by id so a node is written once."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.sha256 = report.dump["sha256"]
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, node: dict[str, Any]) -> str:
        self.nodes.setdefault(node["@id"], _compact(node))
        return node["@id"]

    def tool(self, name: str, version: str) -> str:
        node_id = _node_id("AnalyticTool", f"tool:{name}:{version}")
        return self.add({"@id": node_id, "@type": "tool:AnalyticTool", "core:name": name,
                         "tool:version": version, "tool:toolType": "memory forensics"})

    def dump(self) -> str:
        dump = self.report.dump
        node_id = _node_id("File", f"dump:sha256:{self.sha256}")
        hash_id = _hash_id("sha256", self.sha256)
        self.add({"@id": hash_id, "@type": "types:Hash", "types:hashMethod": "SHA256",
                  "types:hashValue": {"@type": "xsd:hexBinary", "@value": self.sha256.upper()}})
        path = dump["path"]
        return self.add({
            "@id": node_id, "@type": "observable:File", "core:name": os.path.basename(path),
            "core:description": f"memory dump ({dump_format_label(dump)})",
            "core:hasFacet": [
                _facet(node_id, "observable:FileFacet", **{
                    "observable:fileName": os.path.basename(path),
                    "observable:filePath": path,
                    "observable:sizeInBytes": dump["size"],
                    "observable:modifiedTime": _time(dump.get("modified"))}),
                _facet(node_id, "observable:ContentDataFacet", **{
                    "observable:sizeInBytes": dump["size"],
                    "observable:hash": [_ref(hash_id)]}),
            ]})

    def image(self, path: str) -> str:
        """The image file of a process, as the kernel named it (an NT device path)."""
        node_id = _node_id("File", f"image:{self.sha256}:{path}")
        name = path.rsplit("\\", 1)[-1]
        return self.add({"@id": node_id, "@type": "observable:File", "core:name": name,
                         "core:hasFacet": [_facet(node_id, "observable:FileFacet", **{
                             "observable:fileName": name, "observable:filePath": path})]})

    def process_id(self, process: dict[str, Any]) -> str:
        return _node_id("WindowsProcess", f"process:{self.sha256}:{process['offset']}")

    def process(self, process: dict[str, Any], parent: str | None,
                pages: dict[str, Any] | None) -> str:
        node_id = self.process_id(process)
        image = process.get("image_path")
        binary = self.image(image) if image and image.startswith("\\") else None
        identity = process.get("trustlet_identity")
        secure = {
            "iumdump:isSecureProcess": process["secure"],
            "iumdump:secureHandle": process["secure_handle"],
            "iumdump:secureStateSource": process.get("secure_state_source"),
            "iumdump:verdict": process["verdict"],
            "iumdump:isLinked": process["linked"],
            "iumdump:eprocessOffset": process["offset"],
            "iumdump:protectionLevel": process.get("protection_level"),
            "iumdump:protection": process["protection"],
            "iumdump:extendedFlags": process["extended_flags"],
            "iumdump:trustletId": identity["id"] if identity else None,
            "iumdump:trustletIdBasis": identity["basis"] if identity else None,
            "iumdump:trustletIdSource": identity["source"] if identity else None,
            "iumdump:isPartial": process.get("partial", False) or bool(pages and
                                                                        pages.get("partial")),
        }
        if pages is not None:
            secure.update({"iumdump:mappedPages": pages["pages"],
                           "iumdump:absentPages": pages["absent"],
                           "iumdump:zeroFilledPages": pages["zero_filled"],
                           "iumdump:readablePages": pages["readable"],
                           "iumdump:pageVerdict": pages.get("verdict")})
        return self.add({
            "@id": node_id, "@type": "observable:WindowsProcess", "core:name": process["name"],
            "core:hasFacet": [
                _facet(node_id, "observable:ProcessFacet", **{
                    "observable:pid": process["pid"],
                    "observable:observableCreatedTime": _time(process.get("create_time")),
                    "observable:exitTime": _time(process.get("exit_time")),
                    "observable:binary": _ref(binary) if binary else None,
                    "observable:parent": _ref(parent) if parent else None}),
                _facet(node_id, "iumdump:SecureProcessFacet", **secure),
            ]})

    def finding(self, index: int, finding: dict[str, Any], target: str) -> str:
        node_id = _node_id("Annotation", f"finding:{self.sha256}:{self.report.analysis['started']}"
                                         f":{index}:{finding['kind']}")
        return self.add({
            "@id": node_id, "@type": "core:Annotation", "core:name": finding["kind"],
            "core:statement": finding["message"], "core:object": [_ref(target)],
            "core:tag": [finding["severity"]],
            "core:hasFacet": [_facet(node_id, "iumdump:FindingFacet", **{
                "iumdump:findingKind": finding["kind"],
                "iumdump:severity": finding["severity"]})]})


def _parents(processes: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """offset → the process that is its parent: the one whose PID is its PPID and that was
    created before it (PIDs are reused, so the latest such one); none when the dump has no
    such process (the parent has gone, as smss's children find)."""
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for process in processes:
        if process["pid"] is not None and process.get("create_time") is not None:
            by_pid.setdefault(process["pid"], []).append(process)
    found: dict[int, dict[str, Any]] = {}
    for child in processes:
        born = child.get("create_time")
        candidates = [p for p in by_pid.get(child["ppid"], ())
                      if p is not child and born is not None and p["create_time"] <= born]
        if candidates:  # ISO 8601 UTC strings of one form sort as times
            found[child["offset"]] = max(candidates, key=lambda p: p["create_time"])
    return found


def document(report: Report) -> dict[str, Any]:
    """The JSON-LD document (a dict) of a report."""
    graph = _Graph(report)
    tools = [graph.tool(report.tool["name"], report.tool["version"]),
             graph.tool("Volatility 3", report.tool["volatility3"])]
    dump = graph.dump()
    pages = {entry.get("offset"): entry for entry in report.pages}
    parents = _parents(report.processes)
    results = []
    for process in report.processes:
        parent = parents.get(process["offset"])
        results.append(graph.process(process, graph.process_id(parent) if parent else None,
                                     pages.get(process["offset"])))
    by_offset = {p["offset"]: p for p in report.processes}
    for index, finding in enumerate(report.findings):
        about = by_offset.get(finding.get("offset"))
        results.append(graph.finding(index, finding, graph.process_id(about) if about else dump))
    kernel = report.kernel
    action_id = _node_id("InvestigativeAction",
                         f"analysis:{graph.sha256}:{report.analysis['started']}")
    graph.add({
        "@id": action_id, "@type": "investigation:InvestigativeAction",
        "core:name": "iumdump analyze",
        "core:description": (
            "Secure (IUM) processes, PS_PROTECTION, PROCESS_EXTENDED_BASIC_INFORMATION flags and "
            "trustlet page accounting of a Windows memory dump; kernel build "
            f"{kernel.get('build') or 'unknown'}, {kernel.get('pdb_name') or 'PDB'} "
            f"{kernel.get('pdb_guid') or '?'}-{kernel.get('pdb_age')}"
            + (" (partial: see the report's notes)" if report.partial else "")),
        "action:startTime": _time(report.analysis["started"]),
        "action:endTime": _time(report.analysis["finished"]),
        "action:instrument": [_ref(tool) for tool in tools],
        "action:object": [_ref(dump)],
        "action:result": [_ref(node) for node in _unique(results)],
    })
    return {"@context": CONTEXT, "@graph": list(graph.nodes.values())
            + _extension_terms(graph.nodes.values())}


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _extension_terms(nodes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Declarations of the extension classes and properties the graph uses (their shapes are in
    the ontology file)."""
    classes: dict[str, None] = {}
    properties: dict[str, None] = {}

    def visit(node: dict[str, Any]) -> None:
        if str(node.get("@type", "")).startswith("iumdump:"):
            classes[node["@type"]] = None
        for key, value in node.items():
            if key.startswith("iumdump:"):
                properties[key] = None
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and "@type" in item and "@id" in item:
                    visit(item)

    for node in nodes:
        visit(node)
    defined_by = {"@id": EXTENSION_ONTOLOGY}
    return ([{"@id": name, "@type": "owl:Class", "rdfs:subClassOf": {"@id": "core:Facet"},
              "rdfs:label": name.partition(":")[2], "rdfs:isDefinedBy": defined_by}
             for name in classes]
            + [{"@id": name, "@type": "owl:DatatypeProperty",
                "rdfs:label": name.partition(":")[2], "rdfs:isDefinedBy": defined_by}
               for name in properties])


def render(report: Report) -> str:
    """ASCII JSON (any character from the dump is a ``\\u`` escape, as in report.json)."""
    return json.dumps(document(report), indent=2, ensure_ascii=True) + "\n"
