"""Every process of a dump: the active process list, then what a pool scan finds besides.

Volatility's own classmethods walk the list (``PsList.list_processes``) and scan the pool
(``PsScan.scan_processes``); what they pass over in silence is checked here: a list that is cut or
loops (:func:`active_list_problem`), an unreadable walk or scan, a table whose offsets find no
process, or no process with a process id, or none the scan finds too. Each process is then read by
:mod:`.eprocess` and, where wanted, derived (:mod:`.derive`).
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator

from volatility3.framework import constants, exceptions, interfaces
from volatility3.framework.configuration import requirements
from volatility3.plugins.windows import pslist, psscan

from .derive import DerivedProcess, derive_process, is_process_id
from .eprocess import ProcessReader, table_mismatch
from .fields import ProcessFields
from .progress import ProgressCallback

vollog = logging.getLogger(__name__)

MAX_LIST_ENTRIES = 1 << 20  # far beyond any process count; a longer walk is corrupt


def _pid_filter(pids: Iterable[int] | None) -> Callable[[interfaces.objects.ObjectInterface], bool]:
    """PsList's filter convention (True = leave out); a process whose UniqueProcessId cannot be
    read cannot be one of ``pids``, and must not end the listing with an exception."""
    if not pids:
        return lambda _proc: False
    wanted = set(pids)

    def leave_out(proc) -> bool:
        try:
            return int(proc.UniqueProcessId) not in wanted
        except exceptions.InvalidAddressException:
            return True

    return leave_out


def process_selection_requirements(*, architectures: list[str], pid_description: str,
                                   scan_description: str
                                   ) -> list[interfaces.configuration.RequirementInterface]:
    """The requirements every iumdump plugin shares: the kernel, the PsList and PsScan versions
    whose classmethods ``iter_processes`` calls, ``--pid`` and ``--scan``."""
    return [
        requirements.ModuleRequirement(
            name="kernel", description="Windows kernel", architectures=architectures
        ),
        requirements.VersionRequirement(name="pslist", component=pslist.PsList, version=(3, 0, 0)),
        requirements.VersionRequirement(name="psscan", component=psscan.PsScan, version=(2, 0, 0)),
        requirements.ListRequirement(
            name="pid", element_type=int, description=pid_description, optional=True
        ),
        requirements.BooleanRequirement(
            name="scan", description=scan_description, default=False, optional=True
        ),
    ]


def iter_processes(context: interfaces.context.ContextInterface, kernel_module_name: str, *,
                   scan: bool = False, pids: Iterable[int] | None = None,
                   problems: list[str] | None = None
                   ) -> Iterator[tuple[interfaces.objects.ObjectInterface, bool | None]]:
    """``(EPROCESS, linked)`` for every process of the active list, then (with ``scan``) those the
    pool scanner finds that the list does not hold (``linked`` False). ``pids`` filters both.
    Where the active list cannot be read at all (PsActiveProcessHead unreadable, leading to
    unreadable memory, or empty: every Windows kernel lists System), the scan's processes are not
    shown missing from it: their ``linked`` is None (unknown), and the problem names the symbol
    table, as the error for finding no process at all does.

    A walk or scan that hits unreadable memory ends there; what it found stays. Whatever makes
    the listing incomplete — an unreadable list or scan, a list that does not lead back to its
    head (cut, or looping) — is logged as a warning and appended to ``problems``. Finding no
    process at all, unfiltered, raises :class:`SymbolTableMismatch`: every Windows kernel has
    processes, so the symbol table does not fit the kernel (or its memory is ruined)."""
    leave_out = _pid_filter(pids)
    seen: set[int] = set()
    listed = found = 0

    def problem(message: str) -> None:
        vollog.warning(message)
        if problems is not None:
            problems.append(message)

    list_problem, reached = _walk_active_list(context, kernel_module_name)
    active, walked = [], 0
    try:
        # Unfiltered, so that "the walk found nothing" is not mistaken for "--pid chose nothing".
        for proc in pslist.PsList.list_processes(context, kernel_module_name):
            walked += 1
            if not leave_out(proc):
                active.append(proc)
    except exceptions.InvalidAddressException as excp:
        problem(f"Active process list unreadable at {excp.invalid_address:#x}; "
                "the listing is partial")
    # A list that gives no entry, neither from its head's Flink nor (as Volatility also walks)
    # from its Blink, holds nothing to compare the pool scan with.
    unread = list_problem is not None and not reached and not walked
    if list_problem and not (unread and scan):
        problem(list_problem)  # (unread and scanned: said below, with what the scan found)
    if active and not pids and not any(_has_process_id(proc) for proc in active):
        raise table_mismatch(context, kernel_module_name, "_EPROCESS.UniqueProcessId",
                             f"none of the {len(active)} processes of the active process list "
                             "has a process id Windows issues (the table's _EPROCESS offsets "
                             "are not this kernel's)")
    for proc in active:
        seen.add(proc.vol.offset)
        listed += 1
        yield proc, True
    if scan:
        found, also_listed = yield from _scanned(context, kernel_module_name, leave_out, seen,
                                                 problem, linked=None if unread else False)
        if unread and found:
            problem(str(table_mismatch(
                context, kernel_module_name, "PsActiveProcessHead",
                f"no process found in the active process list ({_lower(list_problem)}); the "
                f"{_plural_processes(found)} found by pool scanning cannot be called unlinked: "
                "whether they are in the list is unknown")))
        if listed and found and not also_listed and not list_problem and not pids:
            # A closed ring of objects none of which the pool holds: the list is fine, the
            # offsets the table gives for walking it are not.
            raise table_mismatch(context, kernel_module_name, "_EPROCESS.ActiveProcessLinks",
                                 f"none of the {listed} processes of the active process list "
                                 f"is among the {found} the pool scan finds (_EPROCESS."
                                 "ActiveProcessLinks is not where the table puts it)")
    if listed + found or pids:
        return
    where = "in the active process list" + (" nor by pool scanning" if scan else "")
    cause = f" ({_lower(list_problem)})" if list_problem else ""
    raise table_mismatch(context, kernel_module_name, "PsActiveProcessHead",
                         f"no process found {where}{cause}"
                         + ("" if scan else "; --scan also searches the pool"))


def _has_process_id(proc: interfaces.objects.ObjectInterface) -> bool:
    try:
        return is_process_id(int(proc.UniqueProcessId))
    except exceptions.InvalidAddressException:
        return False


def _lower(sentence: str) -> str:
    """A sentence of :func:`active_list_problem` as a clause of another."""
    return sentence.replace("The ", "the ", 1) if sentence.startswith("The ") else sentence


def _plural_processes(count: int) -> str:
    return f"{count:,} process" + ("" if count == 1 else "es")


def _scanned(context, kernel_module_name: str, leave_out, seen: set[int], problem, *,
             linked: bool | None = False
             ) -> Iterator[tuple[interfaces.objects.ObjectInterface, bool | None]]:
    """The pool scan's processes that the list did not hold, each with ``linked``; returns how
    many, and how many the scan found that the list held too."""
    kernel = context.modules[kernel_module_name]
    found = also_listed = 0
    try:
        for proc in psscan.PsScan.scan_processes(context, kernel_module_name,
                                                 filter_func=leave_out):
            if proc.vol.layer_name != kernel.layer_name:
                # Before Windows 10 the scan runs over physical memory: bounce to the virtual
                # object.
                try:
                    virtual = psscan.PsScan.virtual_process_from_physical(
                        context, kernel_module_name, proc)
                except exceptions.InvalidAddressException:
                    virtual = None
                if virtual is None:
                    vollog.log(constants.LOGLEVEL_V,
                               f"Scanned process at physical {proc.vol.offset:#x} has no "
                               "virtual address; skipped")
                    continue
                proc = virtual
            if proc.vol.offset in seen:
                also_listed += 1
                continue
            seen.add(proc.vol.offset)
            found += 1
            yield proc, linked
    except exceptions.InvalidAddressException as excp:
        problem(f"Pool scan stopped at unreadable {excp.invalid_address:#x}; the scan is partial")
    return found, also_listed


def active_list_problem(context: interfaces.context.ContextInterface,
                        kernel_module_name: str) -> str | None:
    """Why the active process list is not a closed ring, or None when following the Flinks from
    PsActiveProcessHead leads back to it. Volatility's walk (forward, then backward) stops
    silently at an unreadable link or an entry it has seen, so a cut or a loop would otherwise
    pass for a short list."""
    return _walk_active_list(context, kernel_module_name)[0]


def _walk_active_list(context: interfaces.context.ContextInterface, kernel_module_name: str
                      ) -> tuple[str | None, int]:
    """(:func:`active_list_problem`, how many entries the Flinks reached beyond the head)."""
    kernel = context.modules[kernel_module_name]
    try:
        head = kernel.object(object_type="_LIST_ENTRY",
                             offset=kernel.get_symbol("PsActiveProcessHead").address)
    except exceptions.SymbolError as excp:
        raise table_mismatch(context, kernel_module_name, "PsActiveProcessHead",
                             f"it has no PsActiveProcessHead or _LIST_ENTRY ({excp})") from None
    layer = context.layers[head.vol.layer_name]
    width = head.vol.size // 2  # Flink, then Blink
    start = head.vol.offset
    address, visited = start, {start}
    for count in range(MAX_LIST_ENTRIES):
        try:
            link = int.from_bytes(layer.read(address, width), "little") & layer.address_mask
        except exceptions.InvalidAddressException:
            if not count:
                return f"PsActiveProcessHead at {address:#x} cannot be read", count
            return (f"The active process list is cut after {_entries(count)}: the entry at "
                    f"{address:#x} cannot be read"), count
        if link == start:
            return (None if count else "The active process list (PsActiveProcessHead) is empty"
                    ), count
        if link in visited:
            return (f"The active process list loops: entry {count} links back to "
                    f"{link:#x} instead of returning to PsActiveProcessHead"), count
        if not layer.is_valid(link, width):
            if not count:
                return f"PsActiveProcessHead at {address:#x} links to unreadable {link:#x}", count
            return (f"The active process list is cut after {_entries(count)}: the entry at "
                    f"{address:#x} links to unreadable {link:#x}"), count
        visited.add(link)
        address = link
    return (f"The active process list has more than {MAX_LIST_ENTRIES:,} entries (corrupt)",
            MAX_LIST_ENTRIES)


def _entries(count: int) -> str:
    return f"{count:,} entr{'y' if count == 1 else 'ies'}"


def read_processes(context: interfaces.context.ContextInterface, kernel_module_name: str, *,
                   scan: bool = False, pids: Iterable[int] | None = None,
                   progress_callback: ProgressCallback = None,
                   problems: list[str] | None = None) -> Iterator[ProcessFields]:
    """Each process :func:`iter_processes` lists, read (:class:`~.eprocess.ProcessReader`),
    reporting progress per process."""
    reader = ProcessReader(context, kernel_module_name)
    found = list(iter_processes(context, kernel_module_name, scan=scan, pids=pids,
                                problems=problems))
    for index, (proc, linked) in enumerate(found):
        if progress_callback:
            progress_callback(100.0 * index / max(len(found), 1), "Reading processes")
        yield reader(proc, linked=linked)
    if progress_callback:
        progress_callback(100.0, "Reading processes")


def derived_processes(context: interfaces.context.ContextInterface, kernel_module_name: str, *,
                      scan: bool = False, pids: Iterable[int] | None = None,
                      problems: list[str] | None = None
                      ) -> Iterator[tuple[interfaces.objects.ObjectInterface, DerivedProcess]]:
    """``(EPROCESS, what derive makes of it)`` for each process :func:`iter_processes` lists."""
    read = ProcessReader(context, kernel_module_name)
    for proc, linked in iter_processes(context, kernel_module_name, scan=scan, pids=pids,
                                       problems=problems):
        yield proc, derive_process(read(proc, linked=linked))
