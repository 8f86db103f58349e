"""What a Volatility layer stack holds, as the analysis reads it: the layers under the kernel's,
the dump file at the bottom, where kernel space starts, and which physical frames the dump holds.
"""

from __future__ import annotations

import logging
import urllib.parse
import urllib.request
from typing import Iterable

from volatility3.framework import constants, exceptions, interfaces

from ..structs.crashdump import DumpType
from ..structs.paging import PAGE_SIZE

vollog = logging.getLogger(__name__)


def layer_stack(context: interfaces.context.ContextInterface,
                layer_name: str) -> list[interfaces.layers.DataLayerInterface]:
    """The layer and every layer below it (``memory_layer`` / ``base_layer``), top first."""
    stack = []
    current = context.layers[layer_name] if layer_name in context.layers else None
    while current is not None and current not in stack:
        stack.append(current)
        below = current.config.get("memory_layer", None) or current.config.get("base_layer", None)
        current = context.layers[below] if below in context.layers else None
    return stack


def dump_file_path(context: interfaces.context.ContextInterface, layer_name: str) -> str | None:
    """The local file at the bottom of ``layer_name``'s stack, or None (not a local file)."""
    for layer in reversed(layer_stack(context, layer_name)):
        location = layer.config.get("location", None)
        if isinstance(location, str):
            parsed = urllib.parse.urlparse(location)
            return urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else None
    return None


def kernel_space_start(layer: interfaces.layers.DataLayerInterface) -> int:
    """The lowest kernel-space address of a virtual layer: the upper half of its address range
    (x64: 0xFFFF8000'00000000, which Volatility's 48-bit layer offsets show as
    0x8000'00000000; x86: 0x80000000, the lowest system range start, 3 GB user space being
    the largest — Windows Internals 7th ed. part 1, ch. 5, "Virtual address space layouts")."""
    return (layer.address_mask + 1) >> 1


class PhysicalMemory:
    """What a Volatility physical layer holds: which frames are present, and their bytes."""

    def __init__(self, context: interfaces.context.ContextInterface, layer_name: str) -> None:
        self.layer = context.layers[layer_name]
        self.extent = physical_extent(self.layer)

    def read_table(self, address: int) -> bytes | None:
        try:
            return self.layer.read(address, PAGE_SIZE)
        except exceptions.InvalidAddressException:
            return None

    def present(self, start: int, end: int) -> list[tuple[int, int]]:
        """The sub-ranges of ``[start, end)`` (bytes) the dump holds, merged."""
        end = min(end, self.extent)
        if start >= end:
            return []
        found: list[tuple[int, int]] = []
        if isinstance(self.layer, interfaces.layers.TranslationLayerInterface):
            pieces: Iterable = ((offset, offset + size) for offset, size, *_ in
                                self.layer.mapping(start, end - start, ignore_errors=True)
                                if size)
        else:  # a plain file: everything from its first to its last byte
            low = max(start, self.layer.minimum_address)
            high = min(end, self.layer.maximum_address + 1)
            pieces = [(low, high)] if low < high else []
        for low, high in pieces:
            if found and found[-1][1] == low:
                found[-1] = (found[-1][0], high)
            else:
                found.append((low, high))
        return found

    def read(self, address: int, length: int) -> bytes:
        return self.layer.read(address, length)


def physical_extent(layer: interfaces.layers.DataLayerInterface) -> int:
    """End (exclusive) of the physical memory the dump describes.

    A bitmap crash dump's bitmap covers every frame of the machine, so a frame below that end
    that the dump lacks was left out, not invented; a complete crash dump (its segments are its
    header's runs) and other layers describe memory up to their last byte. A bitmap dump's run
    list is not read: Windows may leave it as nt!IoFillDumpHeader's ``PAGE`` filler (kdmp-parser
    ``PHYSMEM_DESC::LooksGood``), which read as runs would put the end beyond any machine.
    """
    end = layer.maximum_address + 1
    try:
        if hasattr(layer, "get_summary_header") and getattr(layer, "dump_type", None) in (
                DumpType.BITMAP, DumpType.BITMAP_KERNEL):
            end = max(end, int(layer.get_summary_header().BitmapSize) * PAGE_SIZE)
    except (exceptions.VolatilityException, AttributeError) as excp:
        vollog.log(constants.LOGLEVEL_VVV, f"No physical-memory description in the header: {excp}")
    return end


