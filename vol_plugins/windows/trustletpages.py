"""windows.trustletpages: every mapped user page of each secure process, and whether the dump
can show it.

Columns (DESIGN §5): PID, ImageFileName, Start, End, Pages, Absent, ZeroFilled, Readable, Verdict.

One row per VAD region holding mapped pages, plus one per run of mapped pages outside every VAD
(all of them, when the process has no VADs). Start/End are the region's first and last byte.
Pages counts user pages whose page-table entry is valid; each is Absent (its frame is not in the
dump, e.g. left out of a bitmap crash dump), ZeroFilled (in the dump, all zero, as acquisition
tools write for pages the hypervisor refuses to VTL0) or Readable (in the dump, with content).
Verdict is ``inaccessible`` (nothing readable), ``readable`` (every page) or
``partially-readable``.

Verdicts are judged against a control group: the same accounting over a few of the dump's normal
processes. Where their user pages are missing too (a live kernel or kernel dump, a failed
acquisition), a region with nothing readable is ``not-captured`` rather than ``inaccessible``: the
dump cannot show whether VTL1 protected it. The control figures are logged. The shared user data
page (KUSER_SHARED_DATA, the kernel's page every process maps read-only at 0x7FFE0000) has a row
of its own with the Verdict ``shared-user-data``: it is never the process's memory.

Partial rows: when part of the process cannot be seen — a page table missing from the dump or
reached twice (a loop), frames beyond the physical memory the dump describes, an unreadable VAD
tree — the counts are what could be seen and the Verdict says so with a `` (partial)`` suffix,
e.g. ``inaccessible (partial)``. A process whose page tables cannot be walked at all (its
DirectoryTableBase is 0, beyond the dump or not a PML4) gets one row spanning the user range
with zero counts and a partial verdict. The reasons are logged.

By default the secure processes of the active list are walked, except one whose secure state
no kernel writes (a warning says so); ``--scan`` adds those only the pool scanner finds (an
unlinked trustlet), ``--pid`` selects processes (secure or not). Pages
are read only to tell zero from content: no page content is printed, logged or written.
"""

from __future__ import annotations

import logging
from typing import Iterator, List

from volatility3.framework import interfaces, renderers
from volatility3.framework.configuration import requirements
from volatility3.framework.renderers import format_hints
from volatility3.plugins.windows import vadinfo

from iumdump.analysis import processes, secure_pages, volatility_env
from iumdump.analysis.derive import ControlGroup, ProcessPages
from iumdump.analysis.findings import control_basis
from iumdump.analysis.plugin_support import check_dump

vollog = logging.getLogger(__name__)
volatility_env.protect_symbol_directories()  # before vol's automagic: see volatility_env

MAX_LOGGED_PROBLEMS = 10  # per process: a damaged table can report thousands


class TrustletPages(interfaces.plugins.PluginInterface):
    """Accounts for the user pages of secure processes: absent, zero-filled or readable."""

    _required_framework_version = (2, 26, 0)

    # 1.0.0 - first release: the columns of DESIGN §5, partial rows as "<verdict> (partial)"
    # 1.1.0 - verdicts judged against a control group of normal processes ("not-captured"); the
    #         shared user data page labelled "shared-user-data"; account_processes takes control
    # 1.2.0 - checks the dump file first; walks only processes whose secure state is plausible
    _version = (1, 2, 0)

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return processes.process_selection_requirements(
            architectures=["Intel64"],
            pid_description="Process IDs to walk instead of the secure processes",
            scan_description="Also walk processes found only by pool scanning (unlinked)",
        ) + [
            requirements.VersionRequirement(
                name="vadinfo", component=vadinfo.VadInfo, version=(2, 0, 0)
            ),
        ]

    @classmethod
    def account_processes(
        cls,
        context: interfaces.context.ContextInterface,
        kernel_module_name: str,
        pids: List[int] | None = None,
        scan: bool = False,
        progress_callback=None,
        control: bool = True,
    ) -> Iterator[ProcessPages]:
        """Page accounting of the secure processes, or of the processes ``pids`` names; with
        ``scan`` also of those only the pool scanner finds. Each is judged against the control
        group (:func:`control_group`) unless ``control`` is False. The choice, the control group
        and the walk are ``iumdump analyze``'s (iumdump.analysis.secure_pages)."""
        listed = list(processes.derived_processes(context, kernel_module_name, scan=scan,
                                                  pids=pids))
        secure = secure_pages.account_secure_processes(context, kernel_module_name, listed,
                                                       pids=pids, control=control)
        for process in secure.passed_over:
            vollog.warning(
                f"PID {process.pid} at {process.offset:#x} not walked: "
                f"{'; '.join(process.fields.problems + process.doubts)} (--pid walks it anyway)"
            )
        for _process, pages in secure.walk(progress_callback=progress_callback):
            yield pages

    @classmethod
    def control_group(
        cls,
        context: interfaces.context.ContextInterface,
        kernel_module_name: str,
        shared=None,
    ) -> ControlGroup:
        """The page accounting of the dump's normal processes (the active list's), summed."""
        return secure_pages.control_group(
            context, kernel_module_name,
            processes.derived_processes(context, kernel_module_name), shared=shared
        )

    def _generator(self):
        logged_control = False
        for process in self.account_processes(
            self.context,
            self.config["kernel"],
            pids=self.config.get("pid", None),
            scan=self.config.get("scan", False),
            progress_callback=self._progress_callback,
        ):
            if process.control is not None and not logged_control:
                logged_control = True
                captured = process.control.captured
                # A dump without user memory changes every verdict: say so where it is seen.
                log = vollog.warning if captured is False else vollog.info
                basis = control_basis(process.control)
                log(
                    f"{basis[0].upper()}{basis[1:]}; the dump "
                    + {True: "holds", False: "does not hold", None: "gives no basis on"}[captured]
                    + " the normal processes' user memory"
                )
            for problem in process.problems[:MAX_LOGGED_PROBLEMS]:
                vollog.warning(f"PID {process.pid}: {problem}")
            if len(process.problems) > MAX_LOGGED_PROBLEMS:
                vollog.warning(
                    f"PID {process.pid}: {len(process.problems) - MAX_LOGGED_PROBLEMS} more "
                    "problems (rows marked partial)"
                )
            pid = process.pid if process.pid is not None else renderers.UnreadableValue()
            name = process.name if process.name is not None else renderers.UnreadableValue()
            for region in process.regions:
                yield (
                    0,
                    (
                        pid,
                        name,
                        format_hints.Hex(region.start),
                        format_hints.Hex(region.end),
                        region.pages,
                        region.absent,
                        region.zero_filled,
                        region.readable,
                        region.rendered_verdict,
                    ),
                )

    def run(self) -> renderers.TreeGrid:
        check_dump(self.context, self.config["kernel"])
        return renderers.TreeGrid(
            [
                ("PID", int),
                ("ImageFileName", str),
                ("Start", format_hints.Hex),
                ("End", format_hints.Hex),
                ("Pages", int),
                ("Absent", int),
                ("ZeroFilled", int),
                ("Readable", int),
                ("Verdict", str),
            ],
            self._generator(),
        )
