"""windows.extbasicinfo: what NtQueryInformationProcess(ProcessBasicInformation) would have
returned for every process, reconstructed from the dump.

Columns (DESIGN §5): PID, ImageFileName, ExitStatus, PebBaseAddress, AffinityMask, BasePriority,
UniqueProcessId, InheritedFromUniqueProcessId, then one column per flag of
PROCESS_EXTENDED_BASIC_INFORMATION (IsProtectedProcess … IsTrustedApp), Flags, Bytes.

- ExitStatus ``_EPROCESS.ExitStatus`` (NTSTATUS, shown unsigned: STATUS_PENDING while the process
  runs), PebBaseAddress ``Peb``, AffinityMask the group-0 word of ``Pcb.Affinity``
  (``_KAFFINITY_EX``), BasePriority ``Pcb.BasePriority``, UniqueProcessId,
  InheritedFromUniqueProcessId.
- A flag is True/False where the build's symbols carry its field (DESIGN §4). Otherwise it is
  unknown, never False: NotAvailableValue where the build lacks the field or no EPROCESS field
  carries it (IsStronglyNamed: the token's package identity), UnreadableValue where the field's
  memory cannot be read (both print ``-`` as text and null as JSON). Unknown flags are 0 in
  ``Flags`` and ``Bytes``.
- Bytes: hex of the 0x40-byte x64 PROCESS_EXTENDED_BASIC_INFORMATION (Size = 0x40), built with
  iumdump's construct definition; UnreadableValue when one of the BasicInfo values is.
"""

from __future__ import annotations

import logging
from typing import List

from volatility3.framework import interfaces, renderers
from volatility3.framework.renderers import format_hints

from iumdump.analysis import processes, volatility_env
from iumdump.analysis.derive import BASIC_INFO, derive_process, extended_basic_information
from iumdump.analysis.plugin_support import absent_value, check_dump
from iumdump.structs.process_info import FLAG_NAMES

vollog = logging.getLogger(__name__)
volatility_env.protect_symbol_directories()  # before vol's automagic: see volatility_env


def _column_type(member) -> type:
    return format_hints.Hex if member.hexadecimal else int


class ExtBasicInfo(interfaces.plugins.PluginInterface):
    """Reconstructs PROCESS_EXTENDED_BASIC_INFORMATION (with its flags) for every process."""

    _required_framework_version = (2, 26, 0)

    # 1.0.0 - first release: the columns of DESIGN §5
    # 1.1.0 - checks the dump file first; warns of objects outside kernel space
    _version = (1, 1, 0)

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return processes.process_selection_requirements(
            architectures=["Intel32", "Intel64"],
            pid_description="Process IDs to include (all other processes are excluded)",
            scan_description="Also list processes found only by pool scanning",
        )

    @classmethod
    def basic_values(cls, fields) -> list:
        """The PROCESS_BASIC_INFORMATION cells of one process, unknowns as absent values."""
        cells = []
        for member in BASIC_INFO:
            value = getattr(fields, member.attribute)
            if value is None:
                cells.append(absent_value(fields.reason(member.attribute)))
            elif member.attribute == "exit_status":
                cells.append(format_hints.Hex(value % (1 << 32)))  # NTSTATUS bit pattern
            else:
                cells.append(_column_type(member)(value))
        return cells

    def _generator(self):
        for fields in processes.read_processes(
            self.context,
            self.config["kernel"],
            scan=self.config.get("scan", False),
            pids=self.config.get("pid", None),
            progress_callback=self._progress_callback,
        ):
            process = derive_process(fields)
            for problem in fields.problems:
                vollog.warning(f"Process at {fields.offset:#x}: {problem}")
            flags = [
                state.value if state.value is not None else absent_value(state.reason)
                for state in process.flags
            ]
            info = extended_basic_information(process, "x64")
            data = info.to_bytes().hex() if info is not None else renderers.UnreadableValue()
            name = fields.name if fields.name is not None else absent_value(fields.reason("name"))
            pid = fields.pid if fields.pid is not None else absent_value(fields.reason("pid"))
            yield (
                0,
                (pid, name, *self.basic_values(fields), *flags,
                 format_hints.Hex(process.flags.value), data),
            )

    def run(self) -> renderers.TreeGrid:
        check_dump(self.context, self.config["kernel"])
        return renderers.TreeGrid(
            [
                ("PID", int),
                ("ImageFileName", str),
                *((member.name, _column_type(member)) for member in BASIC_INFO),
                *((name, bool) for name in FLAG_NAMES),
                ("Flags", format_hints.Hex),
                ("Bytes", str),
            ],
            self._generator(),
        )
