"""Physical frames for the kernel: ordinary allocations that keep page-map roots out of
Volatility's DTB scan, the bulk area at the top of memory for gigabytes of background content,
the filler frames of pages nobody reads, and the standby pages of a busy machine."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence

from ...errors import ScenarioError
from ...structs.paging import PAGE_SHIFT
from ..memory import FRAME_FREE, FrameAllocator, GuestPhysicalMemory, OutOfMemoryError
from .constants import KERNEL_LOW_FRAMES

if TYPE_CHECKING:
    from .context import KernelContext

class Frames:
    """Frame allocation for the kernel. Page-map roots never land in the physical ranges
    Volatility's DTB scan searches, so the only page there with a self-referencing entry is the
    System PML4; frames skipped that way serve ordinary allocations."""

    # automagic/windows.py WindowsIntelStacker.test_sets, first set (recent Windows).
    DTB_SCAN_RANGES = ((0x150000, 0x150000), (0x550000, 0x1A0000), (0x900000, 0x100000))

    def __init__(self, allocator: FrameAllocator) -> None:
        self.allocator = allocator
        self._spare: list[int] = []
        self._forbidden = [(start >> PAGE_SHIFT, (start + size) >> PAGE_SHIFT)
                           for start, size in self.DTB_SCAN_RANGES]

    def allocate(self) -> int:
        with _scenario_fits():
            return self._spare.pop() if self._spare else self.allocator.allocate()

    def allocate_root(self) -> int:
        while True:
            pfn = self.allocate_fresh()
            if not any(lo <= pfn < hi for lo, hi in self._forbidden):
                return pfn
            self._spare.append(pfn)

    def allocate_fresh(self) -> int:
        with _scenario_fits():
            return self.allocator.allocate()

    def allocate_run(self, count: int, *, align: int = 1, top: bool = False) -> int:
        with _scenario_fits():
            return self.allocator.allocate_run(count, align=align, top=top)


@contextmanager
def _scenario_fits() -> Iterator[None]:
    """Guest memory running out is the scenario's problem (too many processes or pages for
    the memory size), reported as such."""
    try:
        yield
    except OutOfMemoryError as exc:
        raise ScenarioError(f"guest memory is too small for the scenario ({exc.message})") from None


class BulkArea:
    """Frames at the top of memory, reserved in one piece for background-content bulk (pool
    large pages, bulk user pages, secure bulk pages) and handed out as contiguous runs."""

    def __init__(self, allocator: FrameAllocator, frame_count: int, pages: int) -> None:
        self.start = frame_count - pages
        self.top = frame_count
        if pages:
            if self.start <= KERNEL_LOW_FRAMES:  # the kernel's explicit frames come from below
                raise ScenarioError(f"{pages} bulk pages do not fit in guest memory of "
                                    f"{frame_count} frames")
            allocator.reserve(self.start, pages)

    def take(self, count: int, *, align: int = 1) -> int:
        top = (self.top - count) // align * align
        if top < self.start:
            raise ScenarioError("bulk memory plan exceeded (internal)")
        self.top = top
        return top

    @property
    def unused(self) -> tuple[int, int]:
        return self.start, self.top


class Filler:
    """Frames for pages whose content nobody reads — an image's code, a thread's stack: each
    page its own in-use frame with generated content (so a dump holds and sizes them as a real
    machine's), or, on a machine too small for that, one frame they all share."""

    def __init__(self, memory: GuestPhysicalMemory, frames: Frames, *, shared: bool) -> None:
        self.memory = memory
        self.frames = frames
        self.shared = shared
        self._shared_pfn: int | None = None

    def run(self, count: int, *, align: int = 1, top: bool = False) -> Sequence[int]:
        """``count`` frames (a contiguous run aligned to ``align`` frames unless shared; the
        highest free one with ``top``)."""
        if self.shared:
            return [self.shared_pfn] * count
        start = self.frames.allocate_run(count, align=align, top=top)
        self.memory.add_background(start, count)
        return range(start, start + count)

    @property
    def shared_pfn(self) -> int:
        if self._shared_pfn is None:
            self._shared_pfn = self.frames.allocate()
            self.memory.add_background(self._shared_pfn, 1)
        return self._shared_pfn

    def is_shared(self, pfn: int) -> bool:
        return pfn == self._shared_pfn



def fill_free_frames(ctx: KernelContext, fraction: float) -> int:
    """Give free frames background content until ``fraction`` of all frames are in use — the
    standby, cache and modified pages of a busy machine, mapped by no process. Returns how many
    frames were filled (their ranges: ``ctx.standby_frames``). Frame 0 stays free, as firmware
    keeps it."""
    memory = ctx.memory
    total = memory.frame_count
    target = int(total * fraction)
    free_runs = [(start, end) for start, end, kind in memory.frame_runs(1, total)
                 if kind == FRAME_FREE]
    used = total - 1 - sum(end - start for start, end in free_runs)
    filled = 0
    for start, end in free_runs:
        if used >= target:
            break
        count = min(end - start, target - used)
        memory.add_background(start, count)
        ctx.standby_frames.append((start, start + count))
        used += count
        filled += count
    return filled


__all__ = ["BulkArea", "Filler", "Frames", "fill_free_frames"]
