"""Sparse, page-granular guest-physical memory.

A machine of many GiB cannot live in a Python process, and a real machine's RAM is mostly pages
whose content no test looks at. So memory holds two kinds of frames:

* explicit frames — bytes the synthetic kernel wrote (structures, page tables, user pages);
* background frames — "in use" frames whose content is generated on demand from the frame number
  and a seed (``background_page``), so a dense 8 GiB machine costs nothing until it is written out.

Frames that are neither read as zeros, like free RAM that was scrubbed.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from typing import Iterator

from ..errors import Error, InvalidInputError
from ..structs.paging import PAGE_SHIFT, PAGE_SIZE

ZERO_PAGE = bytes(PAGE_SIZE)

# Kinds of frame reported by ``GuestPhysicalMemory.frame_runs``.
FRAME_EXPLICIT = "explicit"
FRAME_BACKGROUND = "background"
FRAME_FREE = "free"

_BLOCK_PAGES = 256  # bulk copies of background/zero frames go 1 MiB at a time
_SMALL_READ_PAGES = 16
_ZERO_BLOCK = bytes(_BLOCK_PAGES * PAGE_SIZE)


class OutOfMemoryError(Error, MemoryError):
    """The frame allocator has no free frame left."""


class GuestPhysicalMemory:
    """Guest-physical address space of ``size`` bytes (a multiple of the page size)."""

    def __init__(self, size: int, *, seed: int = 0) -> None:
        if size <= 0 or size % PAGE_SIZE:
            raise InvalidInputError(f"memory size {size:#x} is not a positive multiple of {PAGE_SIZE:#x}")
        self.size = size
        self.seed = seed
        self._frames: dict[int, bytearray] = {}
        self._background: list[tuple[int, int]] = []  # sorted, disjoint [start_pfn, end_pfn)
        self._background_template = _noise_template(seed)
        self._block: bytes | None = None  # the template repeated _BLOCK_PAGES times, built on use
        self._sorted_explicit: list[int] | None = None

    @property
    def frame_count(self) -> int:
        return self.size >> PAGE_SHIFT

    # -- explicit content -------------------------------------------------------------------
    def write(self, gpa: int, data: bytes) -> None:
        self._check_range(gpa, len(data))
        offset = 0
        while offset < len(data):
            pfn, in_page = divmod(gpa + offset, PAGE_SIZE)
            chunk = min(PAGE_SIZE - in_page, len(data) - offset)
            frame = self._frames.get(pfn)
            if frame is None:
                frame = self._frames[pfn] = bytearray(self.background_page(pfn) or bytes(PAGE_SIZE))
                self._sorted_explicit = None
            frame[in_page:in_page + chunk] = data[offset:offset + chunk]
            offset += chunk

    def read(self, gpa: int, length: int) -> bytes:
        self._check_range(gpa, length)
        if length == 0:
            return b""
        first = gpa >> PAGE_SHIFT
        last = (gpa + length - 1) >> PAGE_SHIFT
        start = gpa - (first << PAGE_SHIFT)
        if last - first < _SMALL_READ_PAGES:
            # Small reads (a builder reading back pointers between writes) go page by page, so
            # they never wait for the sorted list of explicit frames that bulk reads use.
            if first == last:
                return self.page(first)[start:start + length]
            data = b"".join(self.page(pfn) for pfn in range(first, last + 1))
        else:
            data = self.frames(first, last - first + 1)
        return data[start:start + length]

    def frames(self, start_pfn: int, count: int) -> bytes:
        """Content of ``count`` consecutive frames."""
        buffer = bytearray(count << PAGE_SHIFT)
        self.frames_into(start_pfn, memoryview(buffer))
        return bytes(buffer)

    def frames_into(self, start_pfn: int, out: memoryview) -> None:
        """Fill ``out`` (a whole number of pages) with the frames from ``start_pfn``.

        The writers' hot path: a caller reuses one buffer, so a multi-GiB image costs no fresh
        allocations (a new multi-MiB buffer per chunk costs a page fault per page), and background
        runs are one copy of a pre-built block plus a strided stamp of their PFNs.
        """
        count = len(out) >> PAGE_SHIFT
        if len(out) != count << PAGE_SHIFT:
            raise InvalidInputError(f"buffer of {len(out):#x} bytes is not a whole number of pages")
        self._check_range(start_pfn << PAGE_SHIFT, len(out))
        for start, end, kind in self.frame_runs(start_pfn, start_pfn + count):
            at = (start - start_pfn) << PAGE_SHIFT
            if kind == FRAME_EXPLICIT:
                for pfn in range(start, end):
                    out[at:at + PAGE_SIZE] = self._frames[pfn]
                    at += PAGE_SIZE
                continue
            while start < end:
                n = min(end - start, _BLOCK_PAGES)
                size = n << PAGE_SHIFT
                if kind == FRAME_BACKGROUND:
                    out[at:at + size] = memoryview(self._template_block())[:size]
                    out[at:at + size].cast("Q")[::PAGE_SIZE // 8] = array("Q", range(start, start + n))
                else:
                    out[at:at + size] = memoryview(_ZERO_BLOCK)[:size]
                start += n
                at += size

    def _template_block(self) -> bytes:
        if self._block is None:
            self._block = self._background_template * _BLOCK_PAGES
        return self._block

    def page(self, pfn: int) -> bytes:
        frame = self._frames.get(pfn)
        if frame is not None:
            return bytes(frame)
        return self.background_page(pfn) or bytes(PAGE_SIZE)

    def is_explicit(self, pfn: int) -> bool:
        return pfn in self._frames

    def explicit_frames(self) -> list[int]:
        return list(self._explicit_sorted())

    def _explicit_sorted(self) -> list[int]:
        # Sorted once per change of the key set, not once per chunk the writers stream.
        if self._sorted_explicit is None:
            self._sorted_explicit = sorted(self._frames)
        return self._sorted_explicit

    def zero_page(self, pfn: int) -> None:
        """Make a frame explicit zeros (e.g. a freshly allocated page table)."""
        self._check_range(pfn << PAGE_SHIFT, PAGE_SIZE)
        if pfn not in self._frames:
            self._sorted_explicit = None
        self._frames[pfn] = bytearray(PAGE_SIZE)

    # -- background content -----------------------------------------------------------------
    def add_background(self, start_pfn: int, count: int) -> None:
        """Mark ``count`` frames from ``start_pfn`` as in-use with generated content."""
        if count <= 0:
            return
        self._check_range(start_pfn << PAGE_SHIFT, count << PAGE_SHIFT)
        ranges = self._background + [(start_pfn, start_pfn + count)]
        ranges.sort()
        merged: list[tuple[int, int]] = []
        for start, end in ranges:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self._background = merged

    def is_background(self, pfn: int) -> bool:
        index = bisect.bisect_right(self._background, (pfn, float("inf"))) - 1
        return index >= 0 and self._background[index][0] <= pfn < self._background[index][1]

    def background_page(self, pfn: int) -> bytes | None:
        """Generated content of a background frame: a per-seed noise page stamped with its PFN,
        so no two frames are equal and nothing in it looks like a page-table self-reference."""
        if not self.is_background(pfn):
            return None
        return pfn.to_bytes(8, "little") + self._background_template[8:]

    def background_ranges(self) -> list[tuple[int, int]]:
        return list(self._background)

    def frame_runs(self, start_pfn: int = 0, end_pfn: int | None = None
                   ) -> Iterator[tuple[int, int, str]]:
        """Maximal runs ``(start, end, kind)`` of one kind covering ``[start_pfn, end_pfn)``.

        Explicit frames win over background ones; anything else is ``FRAME_FREE`` (reads as zeros).
        """
        end_pfn = self.frame_count if end_pfn is None else end_pfn
        explicit = self._explicit_sorted()
        i = bisect.bisect_left(explicit, start_pfn)
        b = max(bisect.bisect_right(self._background, (start_pfn, float("inf"))) - 1, 0)
        pfn = start_pfn
        while pfn < end_pfn:
            if i < len(explicit) and explicit[i] == pfn:
                run_end = pfn + 1
                i += 1
                while i < len(explicit) and explicit[i] == run_end and run_end < end_pfn:
                    run_end += 1
                    i += 1
                yield pfn, run_end, FRAME_EXPLICIT
                pfn = run_end
                continue
            next_explicit = explicit[i] if i < len(explicit) else end_pfn
            while b < len(self._background) and self._background[b][1] <= pfn:
                b += 1
            if b < len(self._background) and self._background[b][0] <= pfn:
                kind, run_end = FRAME_BACKGROUND, self._background[b][1]
            else:
                kind = FRAME_FREE
                run_end = self._background[b][0] if b < len(self._background) else end_pfn
            run_end = min(run_end, next_explicit, end_pfn)
            yield pfn, run_end, kind
            pfn = run_end

    def used_frames(self) -> Iterator[int]:
        """Every frame with content (explicit or background), ascending."""
        explicit = self._explicit_sorted()
        i = 0
        for start, end in self._background:
            while i < len(explicit) and explicit[i] < start:
                yield explicit[i]
                i += 1
            yield from range(start, end)
            while i < len(explicit) and explicit[i] < end:
                i += 1
        yield from explicit[i:]

    def _check_range(self, gpa: int, length: int) -> None:
        if gpa < 0 or length < 0 or gpa + length > self.size:
            raise InvalidInputError(
                f"guest-physical range {gpa:#x}+{length:#x} is outside memory of {self.size:#x} bytes",
                offset=gpa)


def _noise_template(seed: int) -> bytes:
    # Noise whose 8-byte words all have bit 0 clear and reserved bits set: such a page can never
    # pass as a page-map root (Volatility's DTB scan wants valid, self-referencing entries).
    digest = b""
    counter = 0
    while len(digest) < PAGE_SIZE:
        digest += hashlib.sha256(seed.to_bytes(8, "little") + counter.to_bytes(8, "little")).digest()
        counter += 1
    words = bytearray(digest[:PAGE_SIZE])
    for i in range(0, PAGE_SIZE, 8):
        words[i] &= 0xFE
    return bytes(words)


class FrameAllocator:
    """Hands out free guest frames, lowest first, skipping reserved ranges.

    The state of every frame is one byte of a bytearray (free, reserved, taken): 2 MiB for an
    8 GiB machine, and ``bytearray.find`` searches for free frames and runs at C speed.
    """

    _FREE, _RESERVED, _TAKEN = 0, 1, 2

    def __init__(self, memory: GuestPhysicalMemory, *, reserved: list[tuple[int, int]] = ()) -> None:
        self.memory = memory
        self._state = bytearray(memory.frame_count)
        self._next = 0
        for start, end in reserved:
            self.reserve(start, end - start)

    def reserve(self, start_pfn: int, count: int) -> None:
        start = max(start_pfn, 0)
        end = min(start_pfn + count, len(self._state))
        if end <= start:
            return
        # Frames already taken stay taken; only free ones become reserved.
        window = self._state[start:end]
        self._state[start:end] = window.replace(bytes([self._FREE]), bytes([self._RESERVED]))

    def take(self, pfn: int) -> int:
        """Claim a specific frame (e.g. the DTB at a fixed address)."""
        if not 0 <= pfn < len(self._state):
            raise InvalidInputError(f"frame {pfn:#x} is outside guest memory of {self.memory.size:#x} bytes")
        if self._state[pfn] == self._TAKEN:
            raise InvalidInputError(f"frame {pfn:#x} is already allocated")
        self._state[pfn] = self._TAKEN
        return pfn

    def allocate(self) -> int:
        pfn = self._state.find(self._FREE, self._next)
        if pfn < 0:
            self._next = len(self._state)
            raise OutOfMemoryError(f"guest memory of {self.memory.size:#x} bytes is exhausted")
        self._state[pfn] = self._TAKEN
        self._next = pfn + 1
        return pfn

    def allocate_run(self, count: int, *, align: int = 1, top: bool = False) -> int:
        """``count`` contiguous free frames, the first a multiple of ``align``; returns it. With
        ``top``, the highest such run, so its size does not move the frames allocated after."""
        if count <= 0 or align <= 0:
            raise InvalidInputError(f"cannot allocate a run of {count} frames aligned to {align}")
        free, position = bytes(count), self._next
        if top:
            end = len(self._state)
            while True:
                start = self._state.rfind(free, 0, end)
                if start < 0:
                    raise OutOfMemoryError(f"no run of {count} free frames")
                aligned = start // align * align
                if self._state[aligned:start] == free[:start - aligned]:
                    break
                end = aligned + count - 1  # only runs starting below ``aligned`` remain
            self._state[aligned:aligned + count] = bytes([self._TAKEN]) * count
            return aligned
        while True:
            start = self._state.find(free, position)
            if start < 0:
                raise OutOfMemoryError(f"no run of {count} free frames")
            aligned = -(-start // align) * align
            if aligned == start:
                break
            position = aligned
        self._state[start:start + count] = bytes([self._TAKEN]) * count
        if start == self._next:
            self._next = start + count
        return start

    @property
    def allocated(self) -> frozenset[int]:
        taken = self._TAKEN
        return frozenset(pfn for pfn, state in enumerate(self._state) if state == taken)
