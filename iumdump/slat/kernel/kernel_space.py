"""The kernel half of a Windows 10 x64 address space: which region lives in which PML4 slot.

Windows 10 hands out system virtual address space by region type — the _MI_SYSTEM_VA_TYPE
enumeration of the real 14393 and 19041 symbol tables (MiVaPfnDatabase, MiVaNonPagedPool,
MiVaPagedPool, MiVaSystemPtes, MiVaSessionSpace, MiVaSystemCache, and from 1709 MiVaKernelStacks
…) — and since 1607 it places each region, and the page-table self-map, in top-level (PML4)
slots chosen at random at boot (Windows Internals 7th ed., Part 1, ch. 5, "Dynamic system
virtual address space management" and "x64 virtual address limitations"). Two places stay fixed:
KUSER_SHARED_DATA at 0xFFFFF78000000000 (ntddk.h KI_USER_SHARED_DATA, PML4 slot 0x1EF) and the
boot-loaded images — ntoskrnl.exe, hal.dll — in 0xFFFFF80000000000–0xFFFFF807FFFFFFFF (slot
0x1F0), the range MemProcFS scans for the kernel (vmm/vmmwininit.c, VmmWinInit_FindNtosScan64).

A real System PML4 therefore has a handful of present, writable, supervisor kernel entries plus
the self-map, shared by every process's PML4; MemProcFS takes a page for the kernel's DTB only
when it has at least six such entries besides the self-map (VmmWinInit_DTB_FindValidate_X64).
This module only plans the addresses; the kernel's builders map what lives there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable

from ...structs.address_space import KI_USER_SHARED_DATA
from ..pagetables import KERNEL_HALF_FIRST_INDEX, canonical

PML4_SLOT = 1 << 39                  # 512 GiB
KUSER_SHARED_DATA_KERNEL = KI_USER_SHARED_DATA  # structs.address_space, with its sources
KUSER_SLOT = 0x1EF
BOOT_IMAGES_BASE = 0xFFFFF80000000000
BOOT_IMAGES_SLOT = 0x1F0
_DYNAMIC_SLOTS = range(KERNEL_HALF_FIRST_INDEX, KUSER_SLOT)  # 0x100..0x1EE

# The regions every synthetic kernel populates, as _MI_SYSTEM_VA_TYPE names them.
PFN_DATABASE = "MiVaPfnDatabase"
NONPAGED_POOL = "MiVaNonPagedPool"
PAGED_POOL = "MiVaPagedPool"
SYSTEM_PTES = "MiVaSystemPtes"
SESSION_SPACE = "MiVaSessionSpace"
KERNEL_STACKS = "MiVaKernelStacks"  # its own type from 1709; before that stacks are system PTEs
DYNAMIC_REGIONS = (PFN_DATABASE, NONPAGED_POOL, PAGED_POOL, SYSTEM_PTES, SESSION_SPACE,
                   KERNEL_STACKS)


@dataclass(frozen=True)
class Region:
    """One region of system address space: ``kind`` (an _MI_SYSTEM_VA_TYPE name) at ``base``."""

    kind: str
    slot: int
    base: int


class KernelSpace:
    """The randomized placement (KASLR) of the self-map and the dynamic regions.

    ``va_types`` are the _MI_SYSTEM_VA_TYPE names the kernel's symbol table knows (``None``: all
    of them); a region type the build does not have is not placed, and its content goes where
    that build keeps it (kernel stacks in system PTEs before 1709)."""

    def __init__(self, rng: random.Random, *, va_types: Iterable[str] | None = None) -> None:
        known = set(va_types) if va_types is not None else set(DYNAMIC_REGIONS)
        slots = rng.sample(list(_DYNAMIC_SLOTS), len(DYNAMIC_REGIONS) + 1)
        self.self_map_index = slots[0]
        self.regions: dict[str, Region] = {}
        for kind, slot in zip(DYNAMIC_REGIONS, slots[1:]):
            if kind not in known and kind != PFN_DATABASE:
                continue
            # Within its slot a region starts on a random GiB, as the pools always have here.
            offset = 0 if kind == PFN_DATABASE else rng.randrange(0, 64) << 30
            self.regions[kind] = Region(kind, slot, canonical(slot * PML4_SLOT + offset))

    def base(self, kind: str) -> int:
        return self.regions[kind].base

    def has(self, kind: str) -> bool:
        return kind in self.regions

    @property
    def stacks_kind(self) -> str:
        """Where thread kernel stacks live in this build."""
        return KERNEL_STACKS if KERNEL_STACKS in self.regions else SYSTEM_PTES


__all__ = ["BOOT_IMAGES_BASE", "BOOT_IMAGES_SLOT", "DYNAMIC_REGIONS", "KERNEL_STACKS",
           "KUSER_SHARED_DATA_KERNEL", "KUSER_SLOT", "KernelSpace", "NONPAGED_POOL",
           "PAGED_POOL", "PFN_DATABASE", "Region", "SESSION_SPACE", "SYSTEM_PTES"]
