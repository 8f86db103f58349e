"""Threads: ETHREADs in ``Thre`` allocations on both of their process's thread lists, each with a
kernel stack of system PTEs below an unmapped guard page, as MmCreateKernelStack leaves it."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Iterator

from ...structs.paging import PAGE_SHIFT, PAGE_SIZE
from ..scenario import ProcessSpec
from .constants import (
    DISPATCHER_THREAD, INITIAL_STACK_RESERVE, KERNEL_STACK_SIZE, THREAD_WAITING,
    WAIT_FRAME_SIZE, WAIT_USER_REQUEST, windows_time,
)
from .objects import create_object
from .records import Record

if TYPE_CHECKING:
    from .context import KernelContext


def create_threads(ctx: KernelContext, spec: ProcessSpec, process: int, created: _dt.datetime,
                   thread_ids: Iterator[int]) -> list[int]:
    """``spec.threads`` waiting threads of the EPROCESS at ``process``, created just after it;
    their list links are written by :func:`link_threads` once the list is known."""
    layout = ctx.layout
    size = layout.size("_ETHREAD")
    threads = []
    for number in range(spec.threads):
        headers = () if spec.kind.created_by_kernel else ("QUOTA_INFO",)
        body = create_object(ctx, "Thread", size, headers=headers, creator_pid=spec.pid,
                             pointer_count=32768 + 3, handle_count=1)
        thread = Record(layout, "_ETHREAD")
        thread.set("Tcb.Header.Type", DISPATCHER_THREAD)
        thread.set("Tcb.Process", process)
        thread.set("Tcb.ApcState.Process", process)
        thread.set("Tcb.State", THREAD_WAITING)
        thread.set("Tcb.WaitReason", WAIT_USER_REQUEST)
        thread.set("Tcb.Priority", spec.priority)
        thread.set("Tcb.BasePriority", spec.priority)
        thread.set("Cid.UniqueProcess", spec.pid)
        thread.set("Cid.UniqueThread", next(thread_ids))
        thread.set("CreateTime", windows_time(created + _dt.timedelta(
            milliseconds=5 + 40 * number)))
        start = (spec.image_base + 0x1000 + 0x40 * number) if spec.image_base else (
            ctx.base + 0x1000 + 0x40 * number)
        thread.set("StartAddress", start)
        thread.set("Win32StartAddress", start)
        stack_base = kernel_stack(ctx)
        thread.set_optional("Tcb.StackBase", stack_base)
        thread.set_optional("Tcb.StackLimit", stack_base - KERNEL_STACK_SIZE)
        thread.set_optional("Tcb.InitialStack", stack_base - INITIAL_STACK_RESERVE)
        thread.set_optional("Tcb.KernelStack",
                            stack_base - INITIAL_STACK_RESERVE - WAIT_FRAME_SIZE)
        ctx.kmem.write(body, bytes(thread))
        threads.append(body)
    return threads


def link_threads(ctx: KernelContext, process: Record, address: int, threads: list[int]) -> None:
    """Thread the ETHREADs on the process's ThreadListHead and its KPROCESS's (the process
    record is written later, with its other fields)."""
    layout = ctx.layout
    thread_head = address + layout.offset("_EPROCESS", "ThreadListHead")
    kthread_head = address + layout.offset("_EPROCESS", "Pcb.ThreadListHead")
    entry = layout.offset("_ETHREAD", "ThreadListEntry")
    kentry = layout.offset("_ETHREAD", "Tcb.ThreadListEntry")
    chain = [thread_head] + [t + entry for t in threads]
    kchain = [kthread_head] + [t + kentry for t in threads]
    process.set_list_entry("ThreadListHead", chain[1 % len(chain)], chain[-1])
    process.set_list_entry("Pcb.ThreadListHead", kchain[1 % len(kchain)], kchain[-1])
    for i, thread in enumerate(threads, start=1):
        ctx.kmem.write(thread + entry, chain[(i + 1) % len(chain)].to_bytes(8, "little")
                       + chain[i - 1].to_bytes(8, "little"))
        ctx.kmem.write(thread + kentry, kchain[(i + 1) % len(kchain)].to_bytes(8, "little")
                       + kchain[i - 1].to_bytes(8, "little"))
    process.set("ActiveThreads", len(threads))


def kernel_stack(ctx: KernelContext) -> int:
    """A thread's kernel stack: KERNEL_STACK_SIZE bytes of system PTEs (the kernel-stacks region
    from 1709) below an unmapped guard page; returns the stack base (its top)."""
    pages = KERNEL_STACK_SIZE >> PAGE_SHIFT
    bottom = ctx.stack_cursor + PAGE_SIZE  # the guard page stays unmapped
    ctx.system_space.map_frames(bottom, ctx.filler.run(pages), writable=True, global_=True)
    ctx.stack_cursor = bottom + KERNEL_STACK_SIZE
    return ctx.stack_cursor


__all__ = ["create_threads", "kernel_stack", "link_threads"]
