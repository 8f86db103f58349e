"""Which processes' pages are walked, and the control group their verdicts are judged against:
the one selection that ``windows.trustletpages``, ``iumdump analyze`` and so the reports share.

:func:`account_secure_processes` takes the processes a listing found (each EPROCESS with what
:mod:`.derive` made of it) and chooses the secure ones whose secure state is plausible (or those
``--pid`` names, secure or not); it sums the page accounting of a few normal processes into the
control group (:func:`control_group`) and then, process by process, accounts for every mapped user
page of each chosen one (:func:`.pages.process_pages`), judged against that control group.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from volatility3.framework import exceptions, interfaces

from .derive import (ControlGroup, DerivedProcess, ProcessPages, believed_secure,
                     is_control_candidate)
from .pages import SharedPage, process_pages, shared_user_data_page
from .processes import derived_processes
from .progress import ProgressCallback, share

Listed = tuple[interfaces.objects.ObjectInterface, DerivedProcess]

# Normal processes walked for the control group: enough to tell a dump that holds user memory
# from one that does not, few enough to cost little beside the trustlets' own walk.
CONTROL_PROCESSES = 16


def control_group(context: interfaces.context.ContextInterface, kernel_module_name: str,
                  candidates: Iterable[Listed], *, limit: int = CONTROL_PROCESSES,
                  shared: SharedPage | None = None,
                  progress_callback: ProgressCallback = None) -> ControlGroup:
    """The page accounting of the dump's normal processes (``candidates``: EPROCESS objects with
    what was derived of them; those :func:`derive.is_control_candidate` accepts are used), summed
    over the first ``limit`` that map user pages. The shared user data page is left out: it is
    kernel memory, in every dump."""
    chosen = [(proc, process) for proc, process in candidates if is_control_candidate(process)]
    if shared is None:
        shared = shared_user_data_page(context, kernel_module_name)
    totals = {"pages": 0, "absent": 0, "zero_filled": 0, "readable": 0}
    pids: list[int | None] = []
    problems: list[str] = []
    for proc, process in chosen:
        if len(pids) >= limit:
            break
        if progress_callback:
            progress_callback(100.0 * len(pids) / limit, f"Control group ({process.name})")
        try:
            accounting = process_pages(context, kernel_module_name, proc, pid=process.pid,
                                       name=process.name, shared=shared)
        except exceptions.VolatilityException as excp:
            problems.append(f"PID {process.pid}: {excp}")
            continue
        if not accounting.mapped:
            continue
        pids.append(process.pid)
        for key, value in (("pages", accounting.mapped), ("absent", accounting.absent),
                           ("zero_filled", accounting.zero_filled),
                           ("readable", accounting.readable)):
            totals[key] += value
        problems += [f"PID {process.pid}: {problem}" for problem in accounting.problems[:2]]
    if progress_callback:
        progress_callback(100.0, "Control group")
    return ControlGroup(processes=len(pids), pids=tuple(pids), candidates=len(chosen),
                        problems=tuple(problems), **totals)


@dataclass
class SecurePages:
    """The processes chosen for a page walk and the control group judging them; :meth:`walk`
    accounts for their pages one process at a time."""

    context: interfaces.context.ContextInterface
    kernel_module_name: str
    chosen: list[Listed]
    passed_over: list[DerivedProcess]  # secure, but implausibly so: not walked unless named
    control: ControlGroup | None
    shared: SharedPage

    def walk(self, *, progress_callback: ProgressCallback = None,
             errors: list[str] | None = None) -> Iterator[tuple[DerivedProcess, ProcessPages]]:
        """Each chosen process with its page accounting, judged against the control group.
        Progress covers them all, each process an equal share (its name in the description). A
        process whose walk raises a Volatility exception is left out with a line in ``errors``
        when given; without ``errors`` the exception propagates."""
        for index, (proc, process) in enumerate(self.chosen):
            try:
                pages = process_pages(
                    self.context, self.kernel_module_name, proc, pid=process.pid,
                    name=process.name, shared=self.shared,
                    progress_callback=share(progress_callback, index, len(self.chosen),
                                            process.name))
            except exceptions.VolatilityException as exc:
                if errors is None:
                    raise
                errors.append(f"pages of PID {process.pid} could not be walked: {exc}")
                continue
            yield process, pages.judged(self.control)


def account_secure_processes(context: interfaces.context.ContextInterface,
                             kernel_module_name: str, processes: Sequence[Listed], *,
                             pids: Collection[int] | None = None, control: bool = True,
                             control_progress: ProgressCallback = None) -> SecurePages:
    """Choose from ``processes`` (a listing: EPROCESS objects with what was derived of them) the
    secure processes whose secure state is plausible, or, with ``pids``, every process listed
    (the listing is then the one ``pids`` filtered); unless ``control`` is False, and where any
    was chosen, sum the control group — from ``processes``, or with ``pids`` from the whole
    active list. :meth:`SecurePages.walk` then accounts for the chosen processes' pages."""
    chosen: list[Listed] = []
    passed_over: list[DerivedProcess] = []
    for proc, process in processes:
        if pids or believed_secure(process):
            chosen.append((proc, process))
        elif process.secure.secure:
            passed_over.append(process)
    shared = shared_user_data_page(context, kernel_module_name)
    judged_by = None
    if control and chosen:
        candidates = derived_processes(context, kernel_module_name) if pids else processes
        judged_by = control_group(context, kernel_module_name, candidates, shared=shared,
                                  progress_callback=control_progress)
    return SecurePages(context, kernel_module_name, chosen, passed_over, judged_by, shared)
