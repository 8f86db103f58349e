"""What every builder of the synthetic kernel works with: the symbol table and its records, the
seeded random choices of this boot (KASLR, cookies), the frame allocators, System's address
space and the pools. Builders are functions of a :class:`KernelContext`; the few values one
builder leaves for a later one (the PE timestamp, the shared user data frame) are its fields.
"""

from __future__ import annotations

import datetime as _dt
import random
from typing import Callable, Iterable

from ...errors import SymbolError
from ...isf import SymbolTable
from ...structs.paging import PAGE_SHIFT, PAGE_SIZE
from ..machine import SlatMachine
from ..memory import FrameAllocator, GuestPhysicalMemory
from ..pagetables import LARGE_PAGE_SIZE, AddressSpace, PageTableStore
from .boot_images import kernel_image_plan
from .constants import (
    LOW_STUB, OPTIONAL_HEADERS, POOL_NONPAGED, POOL_PAGED, SYSTEM_DTB, VOLATILITY_SYMBOLS,
    kernel_build,
)
from .frames import BulkArea, Filler, Frames
from .kernel_memory import KernelMemory, Pool
from .kernel_space import NONPAGED_POOL, PAGED_POOL, PFN_DATABASE, SESSION_SPACE, KernelSpace
from .manifest import KERNEL_SYMBOLS_REQUIRED, KERNEL_SYMBOLS_USED
from .peimage import KernelImagePlan
from .records import Layout

Progress = Callable[[Iterable, str, int], Iterable]


class KernelContext:
    """One Windows kernel being laid out in a SlatMachine's guest memory.

    Creating it checks the symbol table, reserves the fixed frames (System's PML4, the low
    stub) and makes this boot's random choices; :func:`iumdump.slat.kernel.build.build_kernel`
    then runs the builders in boot order."""

    def __init__(self, machine: SlatMachine, symbols: SymbolTable, *, seed: int, processors: int,
                 boot_time: _dt.datetime, system_time: _dt.datetime, vbs: bool,
                 allocator: FrameAllocator | None = None, bulk_pages: int = 0,
                 progress: Progress | None = None) -> None:
        self.machine = machine
        self.memory: GuestPhysicalMemory = machine.memory
        self.symbols = symbols
        self.layout = Layout(symbols)
        self.rng = random.Random(f"kernel:{seed}")
        self.seed = seed
        self.processors = processors
        self.boot_time = boot_time
        self.system_time = system_time
        self.vbs = vbs
        self.progress: Progress = progress or (lambda items, _label, _total: items)
        self.build_number, self.revision = kernel_build(symbols)
        check_symbols(symbols)

        self.allocator = allocator or FrameAllocator(self.memory, reserved=[(0, 1)])
        self.frames = Frames(self.allocator)
        self.bulk = BulkArea(self.allocator, self.memory.frame_count, bulk_pages)
        self.allocator.take(SYSTEM_DTB >> PAGE_SHIFT)
        self.allocator.take(LOW_STUB >> PAGE_SHIFT)
        self.store = PageTableStore(self.memory, self.frames.allocate)
        self.system_space = AddressSpace(self.store, root_pfn=SYSTEM_DTB >> PAGE_SHIFT)
        self.kmem = KernelMemory(self.memory, self.system_space, self.frames)

        # Randomized layout (KASLR): kernel base 2 MiB aligned, the self-map and each system
        # region in its own randomly chosen PML4 slot (iumdump.slat.kernel.kernel_space).
        self.base = 0xFFFFF80000000000 + self.rng.randrange(0x100, 0x3C00) * LARGE_PAGE_SIZE
        va_types = (symbols.data.get("enums", {}).get("_MI_SYSTEM_VA_TYPE", {}).get("constants"))
        self.kernel_space = KernelSpace(self.rng, va_types=va_types)
        self.self_map_index = self.kernel_space.self_map_index
        self.pfn_database = self.kernel_space.base(PFN_DATABASE)
        self.system_space.set_self_reference(self.self_map_index)

        self.cookie = self.rng.randrange(1, 0x100)  # ObHeaderCookie
        header_layout = self.layout if symbols.has_type("_POOL_HEADER") else Layout(
            SymbolTable.load(VOLATILITY_SYMBOLS / "poolheader-x64.json"))
        self.nonpaged = Pool(self.kmem, header_layout, self.kernel_space.base(NONPAGED_POOL),
                             pool_type=POOL_NONPAGED)
        self.paged = Pool(self.kmem, header_layout, self.kernel_space.base(PAGED_POOL),
                          pool_type=POOL_PAGED)
        self.bulk_pool_base = self.nonpaged.base + (1 << 30)  # large pages after the small blocks
        self.paged_bulk_base = self.paged.base + (1 << 30)
        self.session_cursor = self.kernel_space.base(SESSION_SPACE)
        self.stack_cursor = self.kernel_space.base(self.kernel_space.stacks_kind)
        self.kdbg_layout = Layout(SymbolTable.load(VOLATILITY_SYMBOLS / "kdbg.json"))
        self.pe_layout = Layout(SymbolTable.load(VOLATILITY_SYMBOLS / "pe.json"))
        self.object_types: dict[str, tuple[int, int]] = {}  # name → (index, _OBJECT_TYPE)
        # The optional object headers this layout defines, in InfoMask bit order.
        self.optional_headers = [h for h in OPTIONAL_HEADERS
                                 if self.layout.has_type(f"_OBJECT_HEADER_{h}")]
        self.image: KernelImagePlan = kernel_image_plan(symbols)
        self.image_size = self.image.size_of_image
        # Pages nobody reads (image code, stack contents) get frames of their own with generated
        # content when the machine has room for them; on a tiny machine they share one frame.
        self.filler = Filler(self.memory, self.frames,
                             shared=self.memory.frame_count < 2 * (self.image_size >> PAGE_SHIFT))
        self.kmem.filler = self.filler

        # Left by one builder for later ones.
        self.pe_timestamp = 0  # ntoskrnl's link time (boot_images.write_kernel_headers)
        self.kuser_pfn = 0  # KUSER_SHARED_DATA's frame (boot_structures.write_kuser_shared_data)
        self.secure_kernel_frames: tuple[int, int] | None = None  # claimed by VTL1 at boot
        self.pool_large_pages = 0
        self.standby_frames: list[tuple[int, int]] = []  # frames.fill_free_frames

    def symbol_address(self, name: str) -> int:
        return self.base + self.symbols.symbol(name)

    def store_symbol(self, name: str, data: bytes, *, optional: bool = False) -> None:
        """Write a kernel variable (``optional``: only where the symbol table has it)."""
        if optional and not self.symbols.has_symbol(name):
            return
        self.kmem.store(self.symbol_address(name), data)


def check_symbols(symbols: SymbolTable) -> None:
    """Refuse a symbol table the kernel cannot be laid out by: a required symbol or type missing,
    or a variable inside the PE header page."""
    for name in KERNEL_SYMBOLS_REQUIRED:
        symbols.symbol(name)  # SymbolError names the missing symbol
    for type_name in ("_EPROCESS", "_ETHREAD", "_OBJECT_HEADER", "_MMVAD_SHORT",
                      "_KUSER_SHARED_DATA", "_DBGKD_GET_VERSION64"):
        symbols.size(type_name)
    for name in KERNEL_SYMBOLS_USED:
        if symbols.has_symbol(name) and symbols.symbol(name) < PAGE_SIZE:
            raise SymbolError(f"symbol {name} lies in the kernel's PE header page",
                              path=symbols.source)


__all__ = ["KernelContext", "Progress", "check_symbols"]
