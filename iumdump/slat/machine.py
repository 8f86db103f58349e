"""The SLAT machine: guest-physical memory seen through one EPT per Virtual Trust Level.

Hyper-V's Virtual Secure Mode gives VTL0 (Windows) and VTL1 (the Secure Kernel and trustlets) each
their own SLAT over the same guest RAM. VTL1 takes pages away from VTL0 with the hypercall
HvModifyVtlProtectionMask (Hyper-V TLFS, "HvCallModifyVtlProtectionMask", call code 0x000C, and
"Virtual Secure Mode: VTL memory protections"): the mask it passes becomes VTL0's permissions on
those pages. A VTL0 access the mask does not allow is an EPT violation, which the hypervisor refuses
— that is what a VTL0 memory acquisition tool meets on a trustlet's pages.

``view(vtl)`` reads as that VTL does, consulting its EPT on every access; ``host_view()`` reads
guest RAM as the host does (a LiveCloudKd-style capture), with no EPT in the way.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Iterable, Iterator

from ..errors import InvalidInputError
from ..structs.paging import PAGE_SHIFT, PAGE_SIZE
from .ept import (
    EPT_EXECUTE, EPT_FULL_ACCESS, EPT_READ, EPT_USER_EXECUTE, EPT_WRITE, GUEST_RAM_SPA_BASE, Ept,
    EptRun, EptWalk, HypervisorMemory, access_bit, violation,
)
from .memory import GuestPhysicalMemory

# HV_MAP_GPA_PERMISSIONS (Hyper-V TLFS, "HvCallModifyVtlProtectionMask" / VSM memory protections).
HV_MAP_GPA_PERMISSIONS_NONE = 0x0
HV_MAP_GPA_READABLE = 0x1
HV_MAP_GPA_WRITABLE = 0x2
HV_MAP_GPA_KERNEL_EXECUTABLE = 0x4
HV_MAP_GPA_USER_EXECUTABLE = 0x8
HV_MAP_GPA_EXECUTABLE = HV_MAP_GPA_KERNEL_EXECUTABLE | HV_MAP_GPA_USER_EXECUTABLE
HV_MAP_GPA_PERMISSIONS_MASK = 0xF

VTL0, VTL1 = 0, 1
VTLS = (VTL0, VTL1)

# Each mask bit and the EPT bit that carries it (kernel/user execute through mode-based execute
# control, which is how Hyper-V enforces HVCI's separate kernel and user execute rights).
_MASK_TO_EPT = ((HV_MAP_GPA_READABLE, EPT_READ), (HV_MAP_GPA_WRITABLE, EPT_WRITE),
                (HV_MAP_GPA_KERNEL_EXECUTABLE, EPT_EXECUTE),
                (HV_MAP_GPA_USER_EXECUTABLE, EPT_USER_EXECUTE))


def mask_to_ept(mask: int) -> int:
    """EPT permission bits for an HV_MAP_GPA_* mask."""
    return sum(ept for bit, ept in _MASK_TO_EPT if mask & bit)


def ept_to_mask(access: int) -> int:
    """HV_MAP_GPA_* mask for EPT permission bits."""
    return sum(bit for bit, ept in _MASK_TO_EPT if access & ept)


class FrameRanges(Sequence):
    """A sorted set of frame numbers held as disjoint ``[start, end)`` ranges.

    Iterates, indexes and tests membership like the sorted list of PFNs it stands for, and
    compares equal to such a list (or to a set of the same PFNs), without costing 28 bytes per
    frame when a gigabyte of frames is refused.
    """

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(r for r in ranges if r[1] > r[0]):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self._ranges = merged
        self._starts = [start for start, _ in merged]
        self._offsets = [0]  # index of each range's first frame in the sequence
        for start, end in merged:
            self._offsets.append(self._offsets[-1] + end - start)

    @classmethod
    def from_pfns(cls, pfns: Iterable[int]) -> FrameRanges:
        return cls((pfn, pfn + 1) for pfn in pfns)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return list(self._ranges)

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("frame index out of range")
        which = bisect.bisect_right(self._offsets, index) - 1
        return self._ranges[which][0] + index - self._offsets[which]

    def __iter__(self) -> Iterator[int]:
        for start, end in self._ranges:
            yield from range(start, end)

    def __contains__(self, pfn: object) -> bool:
        if not isinstance(pfn, int):
            return False
        which = bisect.bisect_right(self._starts, pfn) - 1
        return which >= 0 and pfn < self._ranges[which][1]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameRanges):
            return self._ranges == other._ranges
        if isinstance(other, (set, frozenset)):
            return len(other) == len(self) and all(pfn in self for pfn in other)
        if isinstance(other, (list, tuple, range)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # mutable-looking sequence semantics: not hashable, like a list

    def __repr__(self) -> str:
        shown = ", ".join(f"{s:#x}-{e - 1:#x}" if e - s > 1 else f"{s:#x}"
                          for s, e in self._ranges[:8])
        more = ", …" if len(self._ranges) > 8 else ""
        return f"FrameRanges([{shown}{more}], frames={len(self)})"


class SlatMachine:
    """Guest RAM, the hypervisor's memory, and an EPT for each of VTL0 and VTL1.

    Both EPTs start by granting everything (read, write, kernel and user execute). With
    ``hvci=True`` the machine refuses to make a page both writable and kernel-executable for
    VTL0, as the Secure Kernel does for kernel code under HVCI (W^X).
    """

    def __init__(self, memory: GuestPhysicalMemory, *, hvci: bool = False,
                 spa_base: int = GUEST_RAM_SPA_BASE) -> None:
        self.memory = memory
        self.hvci = hvci
        self.spa_base = spa_base
        self.hypervisor = HypervisorMemory()
        self.epts = {vtl: Ept(self.hypervisor, vtl=vtl, ram_size=memory.size, spa_base=spa_base,
                              access=EPT_FULL_ACCESS) for vtl in VTLS}
        self._refused_cache: dict[int, FrameRanges] = {}

    @property
    def frame_count(self) -> int:
        return self.memory.frame_count

    def modify_vtl_protection_mask(self, gpa: int, page_count: int, mask: int,
                                   target_vtl: int = VTL0) -> None:
        """HvModifyVtlProtectionMask as issued by VTL1: set ``target_vtl``'s permissions on the
        ``page_count`` pages from ``gpa`` to ``mask`` (HV_MAP_GPA_* bits).

        The TLFS rules apply: a VTL can only place protections on a lower VTL (so the target is
        VTL0), and protections on non-RAM ranges fail (InvalidInputError here, for
        HV_STATUS_INVALID_PARAMETER).
        """
        if target_vtl != VTL0:
            raise InvalidInputError(f"VTL1 cannot place protections on VTL{target_vtl}: "
                                    "a VTL can only protect pages from a lower VTL")
        if mask & ~HV_MAP_GPA_PERMISSIONS_MASK:
            raise InvalidInputError(f"protection mask {mask:#x} has bits outside "
                                    f"HV_MAP_GPA_PERMISSIONS_MASK ({HV_MAP_GPA_PERMISSIONS_MASK:#x})")
        if mask & HV_MAP_GPA_WRITABLE and not mask & HV_MAP_GPA_READABLE:
            # Write without read is an EPT misconfiguration (SDM Vol. 3C §29.3.3.1).
            raise InvalidInputError(f"protection mask {mask:#x} is writable but not readable")
        if self.hvci and mask & HV_MAP_GPA_WRITABLE and mask & HV_MAP_GPA_KERNEL_EXECUTABLE:
            raise InvalidInputError(f"protection mask {mask:#x} is writable and kernel-executable, "
                                    "which HVCI forbids (W^X)")
        if gpa % PAGE_SIZE:
            raise InvalidInputError(f"GPA {gpa:#x} is not page aligned")
        if page_count <= 0 or gpa + page_count * PAGE_SIZE > self.memory.size:
            raise InvalidInputError(f"GPA range {gpa:#x}+{page_count:#x} pages is not guest RAM "
                                    f"of {self.memory.size:#x} bytes")
        self.epts[target_vtl].set_access(gpa >> PAGE_SHIFT, page_count, mask_to_ept(mask))
        self._refused_cache.pop(target_vtl, None)

    def protection_mask(self, gpa: int, vtl: int = VTL0) -> int:
        """The HV_MAP_GPA_* mask ``vtl`` has on the page of ``gpa``, read back from its EPT."""
        walk = self._ept(vtl).walk(gpa)
        return ept_to_mask(walk.access) if walk.present else HV_MAP_GPA_PERMISSIONS_NONE

    def view(self, vtl: int) -> VtlView:
        return VtlView(self, vtl)

    def host_view(self) -> HostView:
        return HostView(self)

    def refused_frames(self, vtl: int = VTL0) -> FrameRanges:
        """Frames ``vtl`` cannot read, found by scanning its EPT leaves (cached until the next
        protection change)."""
        cached = self._refused_cache.get(vtl)
        if cached is None:
            cached = self._refused_cache[vtl] = FrameRanges(
                (run.start_pfn, run.end_pfn) for run in self._ept(vtl).runs()
                if not run.access & EPT_READ)
        return cached

    def _ept(self, vtl: int) -> Ept:
        try:
            return self.epts[vtl]
        except KeyError:
            raise InvalidInputError(f"no VTL{vtl}: the machine has VTL0 and VTL1") from None


class VtlView:
    """Guest RAM as one VTL sees it: every access goes through that VTL's EPT."""

    def __init__(self, machine: SlatMachine, vtl: int) -> None:
        self.machine = machine
        self.vtl = vtl
        self.ept = machine._ept(vtl)

    def walk(self, gpa: int) -> EptWalk:
        return self.ept.walk(gpa)

    def check(self, gpa: int, access: str = "read") -> int:
        """Host-physical address of ``gpa`` if ``access`` is allowed; EptViolation otherwise."""
        return self.ept.translate(gpa, access)

    def read(self, gpa: int, length: int) -> bytes:
        self._check_bounds(gpa, length)
        parts = []
        end = gpa + length
        while gpa < end:
            walk = self.ept.walk(gpa)
            if not walk.allows(EPT_READ):
                raise violation(self.vtl, gpa, "read", walk)
            chunk = min(end, walk.leaf_gpa + walk.leaf_size) - gpa
            parts.append(self.machine.memory.read(walk.spa - self.machine.spa_base, chunk))
            gpa += chunk
        return b"".join(parts)

    def read_page(self, pfn: int) -> bytes:
        return self.read(pfn << PAGE_SHIFT, PAGE_SIZE)

    def write(self, gpa: int, data: bytes) -> None:
        """A guest write: every page it touches must be writable for this VTL."""
        self._check_bounds(gpa, len(data))
        at, end = gpa, gpa + len(data)
        spans = []
        while at < end:  # check every page first: a denied write changes nothing
            walk = self.ept.walk(at)
            if not walk.allows(EPT_WRITE):
                raise violation(self.vtl, at, "write", walk)
            chunk = min(end, walk.leaf_gpa + walk.leaf_size) - at
            spans.append((walk.spa - self.machine.spa_base, at - gpa, chunk))
            at += chunk
        for target, offset, chunk in spans:
            self.machine.memory.write(target, data[offset:offset + chunk])

    def runs(self, start_pfn: int = 0, end_pfn: int | None = None) -> Iterator[EptRun]:
        """Runs of frames with one effective access, from the EPT leaves."""
        return self.ept.runs(start_pfn, end_pfn)

    def read_frames_into(self, start_pfn: int, out: memoryview) -> None:
        """Fill ``out`` with whole frames from ``start_pfn``, all of which must be readable (the
        EPT is consulted once per leaf, so a 1 GiB leaf costs one check)."""
        count = len(out) >> PAGE_SHIFT
        for run in self.ept.runs(start_pfn, start_pfn + count):
            if not run.access & EPT_READ:
                raise violation(self.vtl, run.start_pfn << PAGE_SHIFT, "read",
                                self.ept.walk(run.start_pfn << PAGE_SHIFT))
            at = (run.start_pfn - start_pfn) << PAGE_SHIFT
            self.machine.memory.frames_into((run.spa - self.machine.spa_base) >> PAGE_SHIFT,
                                            out[at:at + (run.count << PAGE_SHIFT)])

    def _check_bounds(self, gpa: int, length: int) -> None:
        if gpa < 0 or length < 0:
            raise InvalidInputError(f"guest-physical range {gpa:#x}+{length:#x} is invalid")


class HostView:
    """Guest RAM as the host reads it (e.g. LiveCloudKd): every frame, no EPT."""

    vtl = None

    def __init__(self, machine: SlatMachine) -> None:
        self.machine = machine

    def check(self, gpa: int, access: str = "read") -> int:
        access_bit(access)
        self.machine.memory._check_range(gpa, 1)
        return self.machine.spa_base + gpa

    def read(self, gpa: int, length: int) -> bytes:
        return self.machine.memory.read(gpa, length)

    def read_page(self, pfn: int) -> bytes:
        return self.machine.memory.read(pfn << PAGE_SHIFT, PAGE_SIZE)

    def runs(self, start_pfn: int = 0, end_pfn: int | None = None) -> Iterator[EptRun]:
        end_pfn = self.machine.frame_count if end_pfn is None else min(end_pfn,
                                                                       self.machine.frame_count)
        if end_pfn > start_pfn:
            yield EptRun(start_pfn, end_pfn - start_pfn, EPT_FULL_ACCESS,
                         self.machine.spa_base + (start_pfn << PAGE_SHIFT))

    def read_frames_into(self, start_pfn: int, out: memoryview) -> None:
        self.machine.memory.frames_into(start_pfn, out)
