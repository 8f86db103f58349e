"""A process's standing in VTL1 as its EPROCESS records it.

1709+: the _KPROCESS.SecureState union — bit 0 (Flags.SecureProcess) marks an IUM process, the
rest is the handle the Secure Kernel gave it; an enclave host has a handle with bit 0 clear.
1507–1703: SecurePid (nonzero = secure) and TrustletIdentity; an enclave host has no
representation there and stays an ordinary process (DESIGN §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..scenario import ProcessSpec, SecureKind
from .records import Record

if TYPE_CHECKING:
    from .context import KernelContext


@dataclass(frozen=True)
class SecureState:
    word: int  # the SecureState word (1709+) or SecurePid (older); 0 when not secure
    secure: bool  # an IUM process, as the layout can say it
    handle: int  # the secure handle (SecureState without its flag bits; SecurePid)
    trustlet_id: int | None  # TrustletIdentity; None where the layout has no such field


def secure_state(ctx: KernelContext, spec: ProcessSpec) -> SecureState:
    """What the layout records of ``spec``'s secure kind (a handle drawn for any secure kind)."""
    layout = ctx.layout
    handle = ctx.rng.randrange(0x10, 0x40000000) << 2 if spec.secure else 0
    is_secure_process = spec.secure is not None and spec.secure.is_secure_process
    word, secure, secure_handle = 0, False, 0
    if layout.has("_EPROCESS", "Pcb.SecureState.SecureHandle"):
        if spec.secure:
            flags = layout.flag_word("_EPROCESS", "Pcb.SecureState.Flags.SecureProcess")
            word = flags.update(handle, SecureProcess=is_secure_process)
            secure, secure_handle = is_secure_process, handle
    elif layout.has("_EPROCESS", "Pcb.SecurePid"):
        if is_secure_process:
            word = secure_handle = handle
            secure = True
    trustlet_id = None
    if layout.has("_EPROCESS", "TrustletIdentity"):
        trustlet_id = (spec.trustlet_id or 0) if spec.secure is SecureKind.TRUSTLET else 0
    return SecureState(word, secure, secure_handle, trustlet_id)


def write_secure_state(process: Record, state: SecureState) -> None:
    """Put ``state`` into an _EPROCESS record, in the fields its layout has."""
    layout = process.layout
    if state.word:
        path = ("Pcb.SecureState.SecureHandle"
                if layout.has("_EPROCESS", "Pcb.SecureState.SecureHandle") else "Pcb.SecurePid")
        process.set(path, state.word)
    if state.trustlet_id is not None:
        process.set("TrustletIdentity", state.trustlet_id)


__all__ = ["SecureState", "secure_state", "write_secure_state"]
