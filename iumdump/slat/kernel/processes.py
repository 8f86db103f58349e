"""Processes: an EPROCESS in a ``Proc`` allocation for each process of the scenario, linked on
PsActiveProcessHead (or cut out of it by DKOM), with its address space, secure state,
protection, flag bits, threads, session, handle table, WoW64 block, image file and audit name,
and user memory — and the PROCESS_EXTENDED_BASIC_INFORMATION flags this layout lets a reader
derive from it (DESIGN §4), which truth.json records."""

from __future__ import annotations

import datetime as _dt
import itertools
from typing import TYPE_CHECKING

from ...structs.protection import parse_protection
from ..pagetables import AddressSpace
from ..scenario import ProcessKind, ProcessSpec
from .constants import DISPATCHER_PROCESS, IMAGE_FILE_MACHINE_I386, STATUS_PENDING, windows_time
from .handle_tables import create_handle_table
from .objects import count_objects, create_file_object, create_object, object_name_information
from .records import Record
from .results import BuiltProcess
from .secure_state import secure_state, write_secure_state
from .sessions import Sessions, create_sessions
from .threads import create_threads, link_threads
from .user_memory import create_user_space, peb32_address

if TYPE_CHECKING:
    from .context import KernelContext


def create_processes(ctx: KernelContext, specs: list[ProcessSpec]) -> list[BuiltProcess]:
    """Every process of ``specs`` (System first), their sessions and the active process list;
    sets the Process and Thread types' object counts."""
    eprocess_size = ctx.layout.size("_EPROCESS")
    eprocesses: dict[int, int] = {}
    # Allocate every EPROCESS first so links can point at their neighbours.
    for spec in specs:
        headers = () if spec.kind.created_by_kernel or spec.ppid == 4 else ("QUOTA_INFO",)
        eprocesses[spec.pid] = create_object(ctx, "Process", eprocess_size, headers=headers,
                                             creator_pid=spec.ppid,
                                             pointer_count=32768 * 3 + 7, handle_count=3)
    sessions = create_sessions(ctx, specs, eprocesses)
    neighbours = _link_active_processes(ctx, specs, eprocesses)
    thread_ids = itertools.count(max(s.pid for s in specs) + 4, 4)
    built = [_create_process(ctx, spec, eprocesses[spec.pid], neighbours[spec.pid], sessions,
                             thread_ids)
             for spec in ctx.progress(specs, "processes", len(specs))]
    count_objects(ctx, "Process", len(specs))
    count_objects(ctx, "Thread", sum(len(p.threads) for p in built))
    return built


def expected_flags(ctx: KernelContext, spec: ProcessSpec, secure: bool) -> dict[str, bool | None]:
    """PROCESS_EXTENDED_BASIC_INFORMATION flags as DESIGN §4 derives them from this layout."""
    has = ctx.layout.has
    background = spec.background if has("_EPROCESS", "Background") else None
    subsystem = spec.subsystem if has("_EPROCESS", "SubsystemProcess") else None
    trusted_app = False if has("_EPROCESS", "Pcb.SecureState.Flags.TrustedApp") else None
    protected = None
    if has("_EPROCESS", "Protection.Level") or has("_EPROCESS", "ProtectedProcess"):
        protected = parse_protection(spec.protection).is_protected
    return {
        "IsProtectedProcess": protected,
        "IsWow64Process": spec.wow64,
        "IsProcessDeleting": spec.deleting,
        "IsCrossSessionCreate": spec.cross_session,
        "IsFrozen": spec.frozen,
        "IsBackground": background,
        "IsStronglyNamed": None,
        "IsSecureProcess": secure,
        "IsSubsystemProcess": subsystem,
        "IsTrustedApp": trusted_app,
    }


def _link_active_processes(ctx: KernelContext, specs: list[ProcessSpec],
                           eprocesses: dict[int, int]) -> dict[int, tuple[int, int]]:
    """PsActiveProcessHead through every linked process; returns each process's
    ActiveProcessLinks (Flink, Blink)."""
    links = ctx.layout.offset("_EPROCESS", "ActiveProcessLinks")
    head = ctx.symbol_address("PsActiveProcessHead")
    linked = [s for s in specs if s.linked]
    chain = [head] + [eprocesses[s.pid] + links for s in linked]
    neighbours: dict[int, tuple[int, int]] = {}
    for i, spec in enumerate(linked):
        neighbours[spec.pid] = (chain[(i + 2) % len(chain)], chain[i])
    for position, spec in enumerate(specs):
        if not spec.linked:
            # Unlinked by DKOM: its own links still name the neighbours it was cut from.
            before = next((eprocesses[s.pid] + links for s in reversed(specs[:position])
                           if s.linked), head)
            after = next((eprocesses[s.pid] + links for s in specs[position + 1:] if s.linked),
                         head)
            neighbours[spec.pid] = (after, before)
    ctx.store_symbol("PsActiveProcessHead", chain[1 % len(chain)].to_bytes(8, "little")
                     + chain[-1].to_bytes(8, "little"))
    return neighbours


def _create_process(ctx: KernelContext, spec: ProcessSpec, address: int,
                    links: tuple[int, int], sessions: Sessions, thread_ids) -> BuiltProcess:
    layout = ctx.layout
    if spec.kind is ProcessKind.SYSTEM:
        space = ctx.system_space
    else:
        space = AddressSpace(ctx.store, root_pfn=ctx.frames.allocate_root())
    process = Record(layout, "_EPROCESS")
    created = ctx.boot_time + _dt.timedelta(seconds=spec.created)
    process.set("Pcb.Header.Type", DISPATCHER_PROCESS)
    process.set("Pcb.Header.SignalState", 1 if spec.deleting else 0)
    process.set("Pcb.DirectoryTableBase", space.dtb)
    process.set_optional("Pcb.Affinity.Count", 1)
    if layout.has("_EPROCESS", "Pcb.Affinity.Bitmap"):
        bitmap = layout.member("_EPROCESS", "Pcb.Affinity.Bitmap")
        process.set("Pcb.Affinity.Size", int(bitmap.type["count"]))
        process.set_element("Pcb.Affinity.Bitmap", 0, (1 << ctx.processors) - 1)
    process.set("Pcb.BasePriority", spec.priority)
    process.set("UniqueProcessId", spec.pid)
    process.set("InheritedFromUniqueProcessId", spec.ppid)
    process.set_list_entry("ActiveProcessLinks", *links)
    process.set("ImageFileName", spec.name.encode("ascii", "replace")[:14])
    process.set("CreateTime", windows_time(created))
    if spec.exited is not None:
        process.set("ExitTime", windows_time(ctx.boot_time + _dt.timedelta(seconds=spec.exited)))
        process.set("ExitStatus", 0)
    else:
        process.set("ExitStatus", STATUS_PENDING)

    state = secure_state(ctx, spec)
    write_secure_state(process, state)
    process.set("Pcb.DeepFreeze", int(spec.frozen))
    _set_flag_bits(ctx, process, spec)
    if layout.has("_EPROCESS", "Protection.Level"):
        process.set("Protection.Level", spec.protection)
    if parse_protection(spec.protection).is_protected:
        # Before PS_PROTECTION (Windows 7): one bit says the process is protected.
        process.set_optional("ProtectedProcess", 1)
    flags = expected_flags(ctx, spec, state.secure)

    threads = [] if spec.deleting else create_threads(ctx, spec, address, created, thread_ids)
    link_threads(ctx, process, address, threads)
    if spec.session is not None:
        process.set("Session", sessions.spaces[spec.session])
        process.set_list_entry("SessionProcessLinks", *sessions.links[spec.pid])
    if spec.kind is ProcessKind.USER and not spec.deleting:
        process.set("ObjectTable", create_handle_table(ctx, spec.pid, quota_process=address))
    if spec.subsystem:
        process.set("PicoContext", ctx.nonpaged.allocate_data(bytes(0x80), b"PsPc"))

    # Image file, audit name, user address space. The audit name of a process created from an
    # image file is its NT device path; the minimal processes (Registry, MemCompression, Secure
    # System) have no image file and carry their bare name there, and System has no name at all
    # (windows.pstree's Audit column on real Windows 10 dumps: "-" for System, "Registry" and
    # "MemCompression" for those two).
    file_object = 0
    audit_name = {ProcessKind.USER: spec.image_path, ProcessKind.MINIMAL: spec.name}.get(spec.kind)
    if spec.kind is ProcessKind.USER:
        file_object = create_file_object(ctx, spec.image_path)
        process.set("ImageFilePointer", file_object)
    if audit_name is not None:
        process.set("SeAuditProcessCreationInfo.ImageFileName",
                    object_name_information(ctx, audit_name))
    built = BuiltProcess(spec=spec, eprocess=address, physical=0, dtb=space.dtb, space=space,
                         secure_word=state.word, secure=state.secure,
                         secure_handle=state.handle, trustlet_id=state.trustlet_id,
                         flags=flags, audit_name=audit_name, threads=threads)
    if spec.regions or spec.kind is ProcessKind.SYSTEM:
        # System has no image or PEB, but a VAD tree like every process: its shared user data
        # page (MemProcFS finds EPROCESS.VadRoot by System's being set, vmm/vmmwin.c).
        root, count = create_user_space(ctx, built, file_object)
        process.set("VadRoot.Root", root)
        process.set_optional("VadHint", root)  # the last VAD looked up: the root at first
        process.set_optional("VadCount", count)
        process.set("SectionBaseAddress", spec.image_base)
        process.set("Peb", built.peb)
        if spec.wow64:
            wow = Record(layout, "_EWOW64PROCESS")
            wow.set("Peb", peb32_address(built))
            wow.set_optional("Machine", IMAGE_FILE_MACHINE_I386)
            process.set("WoW64Process", ctx.nonpaged.allocate_data(bytes(wow), b"PsWo"))
    ctx.kmem.write(address, bytes(process))
    built.physical = ctx.system_space.translate(address)
    return built


def _set_flag_bits(ctx: KernelContext, process: Record, spec: ProcessSpec) -> None:
    """The EPROCESS flag bits (Flags, Flags2, Flags3) a process of this kind and state has."""
    has = ctx.layout.has
    process.set("CreateReported", 1)
    process.set("ProcessInserted", 1)
    if spec.kind is not ProcessKind.SYSTEM:
        process.set("HasAddressSpace", 1)
        process.set("AddressSpaceInitialized", 2)
    if spec.session is not None:
        process.set("ProcessInSession", 1)
    if spec.deleting:
        process.set("ProcessExiting", 1)
        process.set("ProcessDelete", 1)
    if spec.background and has("_EPROCESS", "Background"):
        process.set("Background", 1)
    if spec.cross_session:
        process.set("CrossSessionCreate", 1)
    if spec.kind.created_by_kernel:
        if spec.kind is ProcessKind.MINIMAL:
            process.set("Minimal", 1)
        if has("_EPROCESS", "SystemProcess"):
            process.set("SystemProcess", 1)
    if spec.subsystem:
        process.set("SubsystemProcess", 1)


__all__ = ["create_processes", "expected_flags"]
