"""windows.secureprocs: which processes are secure (IUM), and what the dump says about each.

Columns (DESIGN §5): PID, PPID, ImageFileName, Offset(V), Linked, Secure, SecureHandle,
TrustletId, Protection, ExtendedFlags, Verdict, ImagePath.

- Secure: ``_KPROCESS.SecureState`` bit 0 (1709+) or ``_KPROCESS.SecurePid != 0`` (1507–1703).
- SecureHandle: the SecureState word with bits 0–1 cleared (SecurePid on old builds).
- TrustletId: ``_EPROCESS.TrustletIdentity``; N/A where the build has no such field (1809+).
- Protection: ``_EPROCESS.Protection`` as ``Type/Signer`` (``+Audit``), or ``None``.
- ExtendedFlags: the PROCESS_EXTENDED_BASIC_INFORMATION Flags ULONG derived from the dump. A flag
  that cannot be derived (IsStronglyNamed always; others where the build lacks the field or the
  memory is unreadable) contributes 0, as in the bytes Windows would fill; windows.extbasicinfo
  shows each flag, unknown ones as unavailable values.
- Verdict: ``masquerade`` (LsaIso.exe, vmsp.exe, BioIso.exe or FsIso.exe on a process that is not
  secure) > ``secure`` > ``enclave-host`` (a secure handle without bit 0) > ``normal``, followed
  by `` (implausible)`` where the EPROCESS holds a value no Windows kernel writes (the row is
  printed as the dump holds it; ``iumdump analyze`` raises an ``implausible-value`` finding, and
  a process whose secure state is implausible, e.g. ``secure (implausible)``, is not counted as
  secure there nor walked by windows.trustletpages), and by `` (partial)`` where the object is
  not where the kernel keeps a process (a list link into user space: ``normal (partial)``; the
  report marks it partial). The verdict word always comes first: ``split(" (")[0]`` is one of the
  four. Unreadable fields alone do not qualify it: their cells are unreadable values.
- Linked: True for the active list's processes, False for those only the pool scan finds; an
  unreadable value where the active list could not be read at all (its head leads nowhere), so
  that the pool scan's processes are neither in it nor shown to be missing from it.
- ImagePath: ``_EPROCESS.SeAuditProcessCreationInfo.ImageFileName``, the NT device path of the
  image (``\\Device\\HarddiskVolume3\\Windows\\System32\\LsaIso.exe``), read from pool memory, so
  known for a trustlet too; minimal processes hold their bare name there, System nothing
  (windows.pstree shows the same field as Audit).

As a TimeLinerInterface, Volatility's ``timeliner`` gets the creation (Created) and exit
(Modified, as windows.pslist gives it) of every secure, masquerading and enclave-host process,
pool-scanned ones included, with the verdict, trustlet identity and image path in the
description.

Every field is read by name from the kernel's symbol table (iumdump.analysis.eprocess); a value
the build cannot give (no such field) is NotAvailableValue, one whose memory cannot be read is
UnreadableValue (both print ``-``; TrustletId prints N/A, NotApplicableValue, on builds without
TrustletIdentity); the row is still produced. ``--scan`` adds processes the pool scanner finds
that the active list does not hold (Linked False).

Values are printed as the dump holds them; one no Windows kernel writes (an undefined
Protection, a SecureState with its unused bit set or a handle no handle table issues, a process
id that is not one) or an object outside kernel space is also warned about on stderr, in the
words of the ``implausible-value`` and ``partial-analysis`` findings of ``iumdump analyze``.
"""

from __future__ import annotations

import logging
from typing import Iterator, List

from volatility3.framework import interfaces, renderers
from volatility3.framework.configuration import requirements
from volatility3.framework.renderers import format_hints
from volatility3.plugins import timeliner

from iumdump.analysis import processes, volatility_env
from iumdump.analysis.derive import (
    ENCLAVE_HOST,
    INFERRED,
    MASQUERADE,
    SECURE,
    DerivedProcess,
    derive_process,
    render_process_verdict,
)
from iumdump.analysis.plugin_support import absent_value, check_dump

vollog = logging.getLogger(__name__)
volatility_env.protect_symbol_directories()  # before vol's automagic: see volatility_env

# The verdicts whose processes go on the timeline (a normal process is windows.pslist's business),
# with what a timeline line calls such a process: an enclave host or a masquerade is not secure.
TIMELINE_VERDICTS = {SECURE: "Secure process", MASQUERADE: "Masquerading process",
                     ENCLAVE_HOST: "Enclave host"}


class SecureProcs(interfaces.plugins.PluginInterface, timeliner.TimeLinerInterface):
    """Lists processes with their secure (IUM) state, trustlet identity, protection and verdict."""

    _required_framework_version = (2, 26, 0)

    # 1.0.0 - first release: the columns of DESIGN §5
    # 1.1.0 - ImagePath appended as the last column; TimeLinerInterface (creation and exit of
    #         secure, masquerading and enclave-host processes)
    # 1.2.0 - checks the dump file first; warns of implausible values and non-kernel objects
    # 1.2.1 - timeline lines of enclave hosts and masquerades no longer begin "Secure process"
    # 1.3.0 - Verdict qualified " (implausible)" / " (partial)" as the analyze reports are; Linked
    #         is an unreadable value where the active list could not be read at all
    _version = (1, 3, 0)

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return processes.process_selection_requirements(
            architectures=["Intel32", "Intel64"],
            pid_description="Process IDs to include (all other processes are excluded)",
            scan_description="Also list processes found only by pool scanning (Linked False)",
        ) + [
            requirements.VersionRequirement(
                name="timeliner", component=timeliner.TimeLinerInterface, version=(1, 0, 0)
            ),
        ]

    @classmethod
    def list_secure_processes(
        cls,
        context: interfaces.context.ContextInterface,
        kernel_module_name: str,
        scan: bool = False,
        pids: List[int] | None = None,
        progress_callback=None,
    ) -> Iterator[DerivedProcess]:
        """Every process (active list, then with ``scan`` the unlinked ones) with its derivation."""
        for fields in processes.read_processes(
            context, kernel_module_name, scan=scan, pids=pids, progress_callback=progress_callback
        ):
            yield derive_process(fields)

    @staticmethod
    def _value(value, reason, wrap=None):
        if value is None:
            return absent_value(reason)
        return wrap(value) if wrap else value

    def _generator(self):
        for process in self.list_secure_processes(
            self.context,
            self.config["kernel"],
            scan=self.config.get("scan", False),
            pids=self.config.get("pid", None),
            progress_callback=self._progress_callback,
        ):
            fields = process.fields
            if not process.has_trustlet_identity:
                trustlet_id = renderers.NotApplicableValue()
            else:
                trustlet_id = self._value(process.trustlet_id, fields.reason("trustlet_identity"))
            if process.verdict is None:
                verdict = absent_value(process.secure.reason)
            else:
                verdict = render_process_verdict(process.verdict,
                                                 implausible=bool(process.doubts),
                                                 partial=bool(fields.problems))
            linked = renderers.UnreadableValue() if fields.linked is None else fields.linked
            if fields.partial:
                vollog.info(
                    f"Process at {fields.offset:#x}: unreadable "
                    f"{', '.join(sorted(fields.unreadable))}; row is partial"
                )
            for doubt in fields.problems + process.doubts:
                vollog.warning(f"Process at {fields.offset:#x}: {doubt}")
            yield (
                0,
                (
                    self._value(fields.pid, fields.reason("pid")),
                    self._value(fields.ppid, fields.reason("ppid")),
                    self._value(fields.name, fields.reason("name")),
                    format_hints.Hex(fields.offset),
                    linked,
                    self._value(process.secure.secure, process.secure.reason),
                    self._value(process.secure.secure_handle, process.secure.reason,
                                format_hints.Hex),
                    trustlet_id,
                    self._value(process.protection_text, fields.reason("protection")),
                    format_hints.Hex(process.flags.value),
                    verdict,
                    self._value(process.image_path, fields.reason("image_path")),
                ),
            )

    @staticmethod
    def timeline_description(process: DerivedProcess) -> str:
        """What a timeline line says about a process: who, its verdict, how it was found, its
        trustlet identity (and whether read or inferred) and its image path."""
        name = process.name if process.name is not None else "<unreadable name>"
        label = TIMELINE_VERDICTS.get(process.verdict, "Process")
        parts = [f"{label}: {process.pid} {name} ({process.offset:#x}) "
                 f"verdict {process.verdict}"]
        if process.linked is False:
            parts.append("unlinked (pool scan)")
        elif process.linked is None:
            parts.append("found by pool scan (the active list could not be read)")
        identity = process.trustlet_identity
        if identity is not None and process.secure.secure:
            label = f"trustlet {identity.id}" + (f" {identity.name}" if identity.name else "")
            parts.append(label + (" (inferred from image path)" if identity.basis == INFERRED
                                  else ""))
        if process.image_path:
            parts.append(f"image {process.image_path}")
        return ", ".join(parts)

    def generate_timeline(self):
        """(description, CREATED, CreateTime) and (description, MODIFIED, ExitTime) of every
        secure, masquerading and enclave-host process, pool-scanned ones included."""
        for process in self.list_secure_processes(
            self.context, self.config["kernel"], scan=True, pids=self.config.get("pid", None)
        ):
            if process.verdict not in TIMELINE_VERDICTS:
                continue
            description = self.timeline_description(process)
            if process.create_time is not None:
                yield description, timeliner.TimeLinerType.CREATED, process.create_time
            if process.exit_time is not None:
                yield description, timeliner.TimeLinerType.MODIFIED, process.exit_time

    def run(self) -> renderers.TreeGrid:
        check_dump(self.context, self.config["kernel"])
        return renderers.TreeGrid(
            [
                ("PID", int),
                ("PPID", int),
                ("ImageFileName", str),
                ("Offset(V)", format_hints.Hex),
                ("Linked", bool),
                ("Secure", bool),
                ("SecureHandle", format_hints.Hex),
                ("TrustletId", int),
                ("Protection", str),
                ("ExtendedFlags", format_hints.Hex),
                ("Verdict", str),
                ("ImagePath", str),
            ],
            self._generator(),
        )

