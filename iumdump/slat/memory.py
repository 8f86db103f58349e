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
from typing import Iterator

from ..errors import Error, InvalidInputError

PAGE_SIZE = 0x1000
PAGE_SHIFT = 12


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
            frame[in_page:in_page + chunk] = data[offset:offset + chunk]
            offset += chunk

    def read(self, gpa: int, length: int) -> bytes:
        self._check_range(gpa, length)
        out = bytearray()
        while length > 0:
            pfn, in_page = divmod(gpa, PAGE_SIZE)
            chunk = min(PAGE_SIZE - in_page, length)
            out += self.page(pfn)[in_page:in_page + chunk]
            gpa += chunk
            length -= chunk
        return bytes(out)

    def page(self, pfn: int) -> bytes:
        frame = self._frames.get(pfn)
        if frame is not None:
            return bytes(frame)
        return self.background_page(pfn) or bytes(PAGE_SIZE)

    def is_explicit(self, pfn: int) -> bool:
        return pfn in self._frames

    def explicit_frames(self) -> list[int]:
        return sorted(self._frames)

    def zero_page(self, pfn: int) -> None:
        """Make a frame explicit zeros (e.g. a freshly allocated page table)."""
        self._check_range(pfn << PAGE_SHIFT, PAGE_SIZE)
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

    def used_frames(self) -> Iterator[int]:
        """Every frame with content (explicit or background), ascending."""
        explicit = self.explicit_frames()
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
    """Hands out free guest frames, lowest first, skipping reserved ranges."""

    def __init__(self, memory: GuestPhysicalMemory, *, reserved: list[tuple[int, int]] = ()) -> None:
        self.memory = memory
        self._reserved = sorted(reserved)  # [start_pfn, end_pfn)
        self._next = 0
        self._taken: set[int] = set()

    def reserve(self, start_pfn: int, count: int) -> None:
        self._reserved.append((start_pfn, start_pfn + count))
        self._reserved.sort()

    def take(self, pfn: int) -> int:
        """Claim a specific frame (e.g. the DTB at a fixed address)."""
        if pfn in self._taken:
            raise InvalidInputError(f"frame {pfn:#x} is already allocated")
        self._taken.add(pfn)
        return pfn

    def allocate(self) -> int:
        while True:
            pfn = self._next
            if pfn >= self.memory.frame_count:
                raise OutOfMemoryError(f"guest memory of {self.memory.size:#x} bytes is exhausted")
            self._next += 1
            if pfn in self._taken or any(s <= pfn < e for s, e in self._reserved):
                continue
            self._taken.add(pfn)
            return pfn

    def allocate_run(self, count: int) -> int:
        """``count`` contiguous free frames; returns the first."""
        start = self._next
        while True:
            if start + count > self.memory.frame_count:
                raise OutOfMemoryError(f"no run of {count} free frames")
            clash = [p for p in range(start, start + count)
                     if p in self._taken or any(s <= p < e for s, e in self._reserved)]
            if not clash:
                break
            start = clash[-1] + 1
        for p in range(start, start + count):
            self._taken.add(p)
        if start == self._next:
            self._next = start + count
        return start

    @property
    def allocated(self) -> frozenset[int]:
        return frozenset(self._taken)
