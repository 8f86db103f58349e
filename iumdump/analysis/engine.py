"""One dump, one Volatility context, every check: the engine behind ``iumdump analyze``, and
what each worker of ``iumdump fleet`` runs for each dump — :func:`analyze_dump`, a dump in, a
:class:`~iumdump.report.model.Report` out, the same function for both so that they cannot
differ. Its steps: the file checked before Volatility sees it (:mod:`.preflight`), the hash
beside the analysis (:mod:`.hasher`), one Volatility context with the run's private settings
(:mod:`.volatility_env`), then

1. :func:`open_kernel` builds ONE Volatility context and runs automagic ONCE for a Windows kernel
   module (as ``vol`` does for ``windows.psscan``): layers stacked, kernel found by its PDB GUID,
   symbol table loaded from ``-s`` directories, Volatility's own paths, or Volatility's download
   (never with ``offline``). Volatility's failures become one-line errors. It runs inside
   :func:`.volatility_env.volatility_settings`, after the preflight (:mod:`.preflight`) accepted
   the file; :func:`kernel_info` describes the kernel found.
2. :func:`collect` lists every process once — the active list and one pool scan
   (:mod:`.processes`, each read by :mod:`.eprocess`) — derives each (:mod:`.derive`), and has
   :func:`.secure_pages.account_secure_processes` choose the secure processes, sum the control
   group and walk their pages (:mod:`.pages`). Each phase has its progress bar (none with
   ``quiet``, none when stderr is not a terminal). What makes the listing incomplete becomes a
   note (the report is partial); a symbol table that does not fit the kernel is a one-line error.

and last the findings (:mod:`.findings`) and the report's data
(:func:`iumdump.report.build_report`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import volatility3.symbols
from volatility3.framework import automagic, contexts, exceptions, interfaces
from volatility3.framework.automagic import pdbscan, stacker
from volatility3.framework.layers import intel
from volatility3.framework.symbols.windows import pdbutil
from volatility3.plugins.windows import psscan

from ..errors import DumpFormatError, Error, InvalidInputError, SymbolError
from ..isf import KERNEL_PDB_NAMES, SymbolTable
from ..report import DEFAULT_FORMATS, Report, build_report
from ..report.model import iso_time
from . import livedump  # noqa: F401  (registers the DumpType 6 layer with automagic)
from .eprocess import SymbolTableMismatch
from .findings import dump_findings
from .hasher import Hasher
from .layers import layer_stack
from .preflight import DumpFile, inspect_dump
from .processes import derived_processes
from .progress import ProgressCallback, percent_callback, phase_bar
from .secure_pages import account_secure_processes
from .volatility_env import (ISF_SUFFIXES, dump_location, index_symbol_tables,
                             volatility_settings)

log = logging.getLogger(__name__)

PERCENT_BAR = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}"
SYMBOLS_DIR = "symbols"  # under OUTDIR: symbol tables Volatility downloaded during the run


# -- 1. the kernel -------------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelInfo:
    """The Windows kernel Volatility found."""

    build: int | None
    build_source: str | None
    pdb_name: str | None
    pdb_guid: str | None
    pdb_age: int | None
    symbols: str | None          # the symbol table's location (isf_url)
    base: int | None             # kernel virtual base
    dtb: int | None              # the kernel's page map (CR3)
    architecture: str | None     # Intel64 / Intel32
    layers: tuple[str, ...] = () # Volatility's layer stack, kernel layer first

    def as_dict(self) -> dict:
        return {"build": self.build, "build_source": self.build_source,
                "pdb_name": self.pdb_name, "pdb_guid": self.pdb_guid, "pdb_age": self.pdb_age,
                "symbols": self.symbols, "base": self.base, "dtb": self.dtb,
                "architecture": self.architecture, "layers": list(self.layers)}


@dataclass
class OpenedKernel:
    """One Volatility context with the kernel found; every check runs against it."""

    context: object
    kernel_module_name: str
    kernel: KernelInfo
    dump: DumpFile


# The configurable whose requirements automagic satisfies: windows.psscan's (the kernel module as
# every Windows plugin requires it). Using a windows plugin also makes automagic choose only the
# Windows stackers and automagics, exactly as `vol windows.psscan` does.
_BASE_CONFIG_PATH = "plugins"


def open_kernel(dump: DumpFile, *, offline: bool, progress_callback: ProgressCallback = None
                ) -> OpenedKernel:
    """Stack layers over ``dump`` and find its Windows kernel in one automagic pass. Must run
    inside :func:`volatility_settings`. Raises one-line errors for what Volatility cannot do."""
    configurable = psscan.PsScan
    context = contexts.Context()
    context.config["automagic.LayerStacker.single_location"] = dump_location(dump.path)
    index_symbol_tables(progress_callback)  # before automagic: see volatility_cache
    automagics = automagic.choose_automagic(automagic.available(context), configurable)
    context.config["automagic.LayerStacker.stackers"] = stacker.choose_os_stackers(configurable)
    errors = automagic.run(automagics, context, configurable, _BASE_CONFIG_PATH,
                           progress_callback=progress_callback)
    config_path = interfaces.configuration.path_join(_BASE_CONFIG_PATH, configurable.__name__)
    kernel_path = interfaces.configuration.path_join(config_path, "kernel")
    if configurable.unsatisfied(context, config_path):
        raise _explain_unsatisfied(context, kernel_path, dump, offline, errors)
    kernel_module_name = context.config[kernel_path]
    return OpenedKernel(context, kernel_module_name, kernel_info(context, kernel_module_name,
                                                                  dump), dump)


def _explain_unsatisfied(context, kernel_path: str, dump: DumpFile, offline: bool,
                         errors) -> Error:
    """Turn automagic's silence into the one line an analyst can act on."""
    join = interfaces.configuration.path_join
    layer_name = context.config.get(join(kernel_path, "layer_name"), None)
    layer = context.layers[layer_name] if layer_name in context.layers else None
    if not isinstance(layer, intel.Intel):
        for excp in errors:  # a layer that recognised its format but could not read it
            text = "".join(excp.format_exception_only()).strip()
            if "CrashDump" in text or "Lime" in text or "Vmware" in text:
                return DumpFormatError(f"Volatility cannot read this dump: {text.splitlines()[-1]}",
                                       path=dump.given)
        return DumpFormatError(
            "no Windows kernel found: Volatility found no x64 or x86 page tables in it "
            f"(read as {dump.format}); is this a memory dump of a Windows machine?",
            path=dump.given)
    kvo = layer.config.get("kernel_virtual_offset", None)
    found = _kernel_pdb(context, layer, kvo) if kvo is not None else None
    if found is None:
        return DumpFormatError(
            "no Windows kernel found: page tables were found but no ntoskrnl image with a "
            "debug (PDB) record", path=dump.given)
    guid_age = f"{found['GUID'].upper()}-{found['age']}"
    pdb = found["pdb_name"]
    where = f"windows/{pdb}/{guid_age}.json.xz"
    unusable = _unusable_table(pdb, guid_age)
    if unusable is not None:
        return unusable
    if offline:
        return SymbolError(f"no symbol table for kernel {guid_age}; pass -s DIR holding {where}, "
                           "or run without --offline to let Volatility download it",
                           path=dump.given)
    return SymbolError(f"no symbol table for kernel {guid_age} and Volatility could not download "
                       f"it; pass -s DIR holding {where}", path=dump.given)


def _unusable_table(pdb: str, guid_age: str) -> Error | None:
    """A table for the kernel that is on the symbol path but that Volatility did not load: name
    the file and say why (it is not readable ISF, or it describes another kernel)."""
    for directory in volatility3.symbols.__path__:
        for suffix in ISF_SUFFIXES:
            candidate = Path(directory, "windows", pdb, guid_age + suffix)
            if not candidate.is_file():
                continue
            if suffix not in (".json", ".json.xz"):
                return SymbolError(f"symbol table for kernel {guid_age} cannot be loaded by "
                                   "Volatility; replace it with a good copy", path=str(candidate))
            try:
                table = SymbolTable.load(candidate)
                named = f"{table.guid}-{table.age}"
            except SymbolError as err:
                return SymbolError(f"unusable symbol table for kernel {guid_age}: "
                                   f"{err.message}; replace it with a good copy",
                                   path=str(candidate))
            except (KeyError, TypeError, ValueError, AttributeError):
                named = "no kernel"
            if named != guid_age:
                return SymbolError(f"is named for kernel {guid_age} but its metadata describes "
                                   f"{named}: not the symbol table of this kernel",
                                   path=str(candidate))
            return SymbolError(f"symbol table for kernel {guid_age} was not accepted by "
                               "Volatility (not valid ISF?); replace it with a good copy",
                               path=str(candidate))
    return None


def _kernel_pdb(context, layer, kvo: int) -> dict | None:
    """Re-read the kernel's RSDS record at the base automagic settled on (the PDB scanner does
    not keep the GUID when the symbol table is missing): a few pages, not a scan."""
    try:
        for found in pdbutil.PDBUtility.pdbname_scan(
                context, layer.name, layer.page_size,
                [name.encode() for name in KERNEL_PDB_NAMES],
                start=kvo, end=kvo + pdbscan.KernelPDBScanner.max_pdb_size):
            if isinstance(found.get("GUID"), str):
                return found
    except Exception as exc:  # any failure here just means "no GUID to report"
        log.debug(f"kernel PDB record unreadable: {exc}")
    return None


def kernel_info(context, kernel_module_name: str, dump: DumpFile) -> KernelInfo:
    """Describe the kernel: build, PDB identity, symbol table, base, DTB and layer stack."""
    kernel = context.modules[kernel_module_name]
    table = context.symbol_space[kernel.symbol_table_name]
    metadata = table.metadata
    pdb_guid = getattr(metadata, "pdb_guid", None)
    pdb_age = getattr(metadata, "pdb_age", None)
    layer = context.layers[kernel.layer_name]
    stack = [type(each).__name__ for each in layer_stack(context, kernel.layer_name)]

    build, source = None, None
    try:
        version = kernel.object(object_type="_DBGKD_GET_VERSION64",
                                offset=kernel.get_symbol("KdVersionBlock").address)
        if int(version.MajorVersion) in (0xF, 0xC) and int(version.MinorVersion):
            build, source = int(version.MinorVersion), "KdVersionBlock.MinorVersion"
    except (exceptions.VolatilityException, AttributeError, KeyError) as exc:
        log.debug(f"KdVersionBlock unreadable: {exc}")
    if build is None:
        try:
            number = int(kernel.object(object_type="unsigned long",
                                       offset=kernel.get_symbol("NtBuildNumber").address))
            if number & 0xFFFF:
                build, source = number & 0xFFFF, "NtBuildNumber"
        except (exceptions.VolatilityException, AttributeError, KeyError) as exc:
            log.debug(f"NtBuildNumber unreadable: {exc}")
    if build is None and dump.build:
        build, source = dump.build, "crash dump header MinorVersion"
    return KernelInfo(
        build=build, build_source=source,
        pdb_name=getattr(metadata, "_json_data", {}).get("pdb", {}).get("database"),
        pdb_guid=pdb_guid.upper() if isinstance(pdb_guid, str) else None,
        pdb_age=pdb_age,
        symbols=table.config.get("isf_url", None),
        base=layer.config.get("kernel_virtual_offset", None),
        dtb=layer.config.get("page_map_offset", None),
        architecture=("Intel64" if isinstance(layer, intel.Intel32e)
                      else "Intel32" if isinstance(layer, intel.Intel) else None),
        layers=tuple(stack),
    )


# -- 2. the checks ------------------------------------------------------------------------------

@dataclass
class Collected:
    """What the checks found: every process once, the page accounting of the secure ones."""

    processes: list = field(default_factory=list)       # DerivedProcess, list order then scan
    pages: dict = field(default_factory=dict)           # EPROCESS offset → ProcessPages
    control: object = None                              # ControlGroup, when pages were walked
    notes: list[str] = field(default_factory=list)      # why the result is partial
    timings: dict[str, float] = field(default_factory=dict)


def collect(kernel: OpenedKernel, *, quiet: bool = False) -> Collected:
    """List (active list + one pool scan), derive, and walk the secure processes' pages."""
    context, module = kernel.context, kernel.kernel_module_name
    result = Collected()
    listed = []
    started = time.monotonic()
    with phase_bar("Processes (active list, then pool scan)", quiet, unit=" processes") as bar:
        try:
            for proc, process in derived_processes(context, module, scan=True,
                                                   problems=result.notes):
                result.processes.append(process)
                listed.append((proc, process))
                bar.update(1)
        except SymbolTableMismatch:
            raise
        except exceptions.VolatilityException as exc:
            # Keep what was listed; the report says the list may be incomplete.
            result.notes.append(f"process listing stopped early: {exc}")
    result.timings["processes"] = time.monotonic() - started

    started = time.monotonic()
    with phase_bar("Control group (normal processes' pages)", quiet, total=100.0, unit="%",
                   bar_format=PERCENT_BAR) as bar:
        secure = account_secure_processes(
            context, module, listed, control_progress=percent_callback(bar, "Control group"))
    if secure.control is not None:
        result.control = secure.control
        result.timings["control"] = time.monotonic() - started

    started = time.monotonic()
    with phase_bar("Trustlet pages", quiet, total=100.0, unit="%",
                   bar_format=PERCENT_BAR) as bar:
        for process, pages in secure.walk(progress_callback=percent_callback(
                bar, "Trustlet pages"), errors=result.notes):
            result.pages[process.offset] = pages
    result.timings["pages"] = time.monotonic() - started
    return result


# -- the whole pass ------------------------------------------------------------------------------

def analyze_dump(dump: str, *, symbol_dirs: list[str] | tuple[str, ...] = (),
                 offline: bool = False, quiet: bool = False,
                 formats: tuple[str, ...] = DEFAULT_FORMATS) -> Report:
    """Run every check on ``dump`` with one Volatility context and return the report."""
    started = time.time()
    timings: dict[str, float] = {}
    for directory in symbol_dirs:
        if not os.path.isdir(directory):
            raise InvalidInputError("symbol directory does not exist or is not a directory",
                                    path=directory)
    dump_file = inspect_dump(dump)
    hasher = Hasher(dump_file)
    try:
        with volatility_settings(symbol_dirs, offline) as logs:
            phase = time.monotonic()
            with phase_bar("Finding the Windows kernel", quiet, total=100.0, unit="%",
                           bar_format=PERCENT_BAR) as bar:
                kernel = open_kernel(dump_file, offline=offline,
                                     progress_callback=percent_callback(
                                         bar, "Finding the Windows kernel"))
            timings["kernel"] = time.monotonic() - phase
            collected = collect(kernel, quiet=quiet)
            timings.update(collected.timings)
            volatility_log = list(logs.messages)
            downloaded = {f"{SYMBOLS_DIR}/{name}": data
                          for name, data in logs.downloaded_tables().items()}
        phase = time.monotonic()
        sha256 = hasher.result(quiet)
        timings["sha256_wait"] = time.monotonic() - phase
    except BaseException:
        hasher.cancel()
        raise
    finished = time.time()
    changed = dump_file.changed()
    notes = list(collected.notes)
    if changed:
        notes.append(f"the dump {changed}; the sha256 may not match what was analysed")
    found = dump_findings(collected.processes, collected.pages, dump_file.format,
                          dump_file.summary_signature)

    described = kernel.kernel.as_dict()
    if downloaded:
        # The table lived in the run's private directory, removed by now: point at its copy.
        described["symbols"] = next((name for name in downloaded if name.endswith(
            os.path.basename(str(described["symbols"])))), described["symbols"])
    report = build_report(
        dump={"path": str(dump_file.path), "size": dump_file.size, "sha256": sha256,
              "format": dump_file.format, "modified": iso_time(dump_file.mtime_ns / 1e9),
              "expected_size": dump_file.expected_size, "unchanged": changed is None,
              "dump_type": None if dump_file.dump_type is None else int(dump_file.dump_type),
              "summary_signature": dump_file.summary_signature,
              "bug_check": dump_file.bug_check},
        kernel=described, processes=collected.processes, pages=collected.pages,
        findings=found, started=started, finished=finished,
        options={"offline": bool(offline), "symbol_dirs": [os.path.abspath(d)
                                                           for d in symbol_dirs],
                 "formats": list(formats)},
        notes=notes, volatility_log=volatility_log, timings=timings, control=collected.control)
    report.files = downloaded
    return report
