"""windows.secureprocs: which processes are secure (IUM), and what the dump says about each.

Columns (DESIGN §5): PID, PPID, ImageFileName, Offset(V), Linked, Secure, SecureHandle,
TrustletId, Protection, ExtendedFlags, Verdict.

- Secure: ``_KPROCESS.SecureState`` bit 0 (1709+) or ``_KPROCESS.SecurePid != 0`` (1507–1703).
- SecureHandle: the SecureState word with bits 0–1 cleared (SecurePid on old builds).
- TrustletId: ``_EPROCESS.TrustletIdentity``; N/A where the build has no such field (1809+).
- Protection: ``_EPROCESS.Protection`` as ``Type/Signer`` (``+Audit``), or ``None``.
- ExtendedFlags: the PROCESS_EXTENDED_BASIC_INFORMATION Flags ULONG derived from the dump. A flag
  that cannot be derived (IsStronglyNamed always; others where the build lacks the field or the
  memory is unreadable) contributes 0, as in the bytes Windows would fill; windows.extbasicinfo
  shows each flag, unknown ones as unavailable values.
- Verdict: ``masquerade`` (LsaIso.exe, vmsp.exe, BioIso.exe or FsIso.exe on a process that is not
  secure) > ``secure`` > ``enclave-host`` (a secure handle without bit 0) > ``normal``.

Every field is read by name from the kernel's symbol table (iumdump.analysis.reader); a value
the build cannot give (no such field) is NotAvailableValue, one whose memory cannot be read is
UnreadableValue (both print ``-``; TrustletId prints N/A, NotApplicableValue, on builds without
TrustletIdentity); the row is still produced. ``--scan`` adds processes the pool scanner finds
that the active list does not hold (Linked False).
"""

from __future__ import annotations

import logging
from typing import Iterator, List

from volatility3.framework import interfaces, renderers
from volatility3.framework.renderers import format_hints

from iumdump.analysis import reader
from iumdump.analysis.derive import DerivedProcess, derive_process, is_defined_protection

vollog = logging.getLogger(__name__)


class SecureProcs(interfaces.plugins.PluginInterface):
    """Lists processes with their secure (IUM) state, trustlet identity, protection and verdict."""

    _required_framework_version = (2, 26, 0)

    # 1.0.0 - first release: the columns of DESIGN §5
    _version = (1, 0, 0)

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return reader.process_selection_requirements(
            architectures=["Intel32", "Intel64"],
            pid_description="Process IDs to include (all other processes are excluded)",
            scan_description="Also list processes found only by pool scanning (Linked False)",
        )

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
        for fields in reader.read_processes(
            context, kernel_module_name, scan=scan, pids=pids, progress_callback=progress_callback
        ):
            yield derive_process(fields)

    @staticmethod
    def _value(value, reason, wrap=None):
        if value is None:
            return reader.absent_value(reason)
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
                verdict = reader.absent_value(process.secure.reason)
            else:
                verdict = process.verdict
            if fields.partial:
                vollog.info(
                    f"Process at {fields.offset:#x}: unreadable "
                    f"{', '.join(sorted(fields.unreadable))}; row is partial"
                )
            if fields.protection is not None and not is_defined_protection(fields.protection):
                vollog.warning(
                    f"Process at {fields.offset:#x}: Protection {fields.protection:#04x} has a "
                    "type or signer Windows does not define (smear or tampering?)"
                )
            yield (
                0,
                (
                    self._value(fields.pid, fields.reason("pid")),
                    self._value(fields.ppid, fields.reason("ppid")),
                    self._value(fields.name, fields.reason("name")),
                    format_hints.Hex(fields.offset),
                    fields.linked,
                    self._value(process.secure.secure, process.secure.reason),
                    self._value(process.secure.secure_handle, process.secure.reason,
                                format_hints.Hex),
                    trustlet_id,
                    self._value(process.protection_text, fields.reason("protection")),
                    format_hints.Hex(process.flags.value),
                    verdict,
                ),
            )

    def run(self) -> renderers.TreeGrid:
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
            ],
            self._generator(),
        )

