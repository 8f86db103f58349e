"""Sessions: one _MM_SESSION_SPACE per session in session space, its process list threading the
members' SessionProcessLinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...structs.paging import PAGE_SIZE
from ..scenario import ProcessSpec
from .records import Record

if TYPE_CHECKING:
    from .context import KernelContext


@dataclass
class Sessions:
    spaces: dict[int, int]  # session id → its _MM_SESSION_SPACE
    links: dict[int, tuple[int, int]]  # pid → its SessionProcessLinks (Flink, Blink)


def create_sessions(ctx: KernelContext, specs: list[ProcessSpec],
                    eprocesses: dict[int, int]) -> Sessions:
    """The session spaces of the scenario's sessions, page-aligned in the session-space region;
    ``eprocesses`` maps each pid to its EPROCESS."""
    layout = ctx.layout
    sessions = Sessions({}, {})
    links = layout.offset("_EPROCESS", "SessionProcessLinks")
    size = layout.size("_MM_SESSION_SPACE")
    for session_id in sorted({s.session for s in specs if s.session is not None}):
        members = [s for s in specs if s.session == session_id]
        address = ctx.session_cursor
        ctx.session_cursor += -(-size // PAGE_SIZE) * PAGE_SIZE
        ctx.kmem.back(address, size)
        space = Record(layout, "_MM_SESSION_SPACE")
        head = address + layout.offset("_MM_SESSION_SPACE", "ProcessList")
        chain = [head] + [eprocesses[s.pid] + links for s in members]
        space.set("ReferenceCount", len(members))
        space.set("SessionId", session_id)
        space.set_list_entry("ProcessList", chain[1], chain[-1])
        ctx.kmem.write(address, bytes(space))
        sessions.spaces[session_id] = address
        for i, spec in enumerate(members, start=1):
            sessions.links[spec.pid] = (chain[(i + 1) % len(chain)], chain[i - 1])
    return sessions


__all__ = ["Sessions", "create_sessions"]
