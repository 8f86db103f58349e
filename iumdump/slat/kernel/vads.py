"""VADs: a ``VadS`` (_MMVAD_SHORT) node for private memory, a ``Vad `` (_MMVAD) node for an image
mapping whose subsection and control area name the image's FILE_OBJECT, all linked into a
balanced search tree by start address through their VadNode (_RTL_BALANCED_NODE)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...structs.paging import PAGE_SHIFT
from ..scenario import RegionSpec
from .constants import MM_PROTECTION_INDEX, VAD_IMAGE_MAP
from .records import Record
from .results import BuiltRegion

if TYPE_CHECKING:
    from .context import KernelContext

PRIVATE_TAG = "VadS"  # the pool tags Volatility's VAD walk reads
IMAGE_TAG = "Vad "


def create_control_area(ctx: KernelContext, file_object: int, pages: int) -> int:
    """The image section behind an image VAD: _CONTROL_AREA and its first _SUBSECTION in one
    MmCi allocation, the control area's FilePointer naming the image's FILE_OBJECT. Returns the
    subsection."""
    layout = ctx.layout
    area_size = layout.size("_CONTROL_AREA")
    block = ctx.nonpaged.allocate(area_size + layout.size("_SUBSECTION"), b"MmCi")
    area_at = block + ctx.nonpaged.header_size
    area = Record(layout, "_CONTROL_AREA")
    area.set("FilePointer.Value", file_object | 0x5)  # EX_FAST_REF: low bits count refs
    area.set("NumberOfSectionReferences", 1)
    area.set("NumberOfMappedViews", 1)
    area.set("NumberOfUserReferences", 1)
    area.set_optional("u.Flags.Image", 1)
    area.set_optional("u.Flags.File", 1)
    subsection = Record(layout, "_SUBSECTION")
    subsection.set("ControlArea", area_at)
    subsection.set("PtesInSubsection", pages)
    ctx.kmem.write(area_at, bytes(area) + bytes(subsection))
    return area_at + area_size


def create_vad(ctx: KernelContext, region: RegionSpec, tag: str, subsection: int) -> int:
    """The VAD of ``region`` (an image VAD pointing at ``subsection`` when ``tag`` is
    ``IMAGE_TAG``); returns its address."""
    layout = ctx.layout
    image = tag == IMAGE_TAG
    size = layout.size("_MMVAD" if image else "_MMVAD_SHORT")
    vad = ctx.nonpaged.allocate(size, tag.encode("ascii")) + ctx.nonpaged.header_size
    short = Record(layout, "_MMVAD_SHORT")
    first, last = region.start >> PAGE_SHIFT, (region.end >> PAGE_SHIFT)
    short.set("StartingVpn", first & 0xFFFFFFFF)
    short.set("EndingVpn", last & 0xFFFFFFFF)
    short.set_optional("StartingVpnHigh", first >> 32)
    short.set_optional("EndingVpnHigh", last >> 32)
    short.set("u.VadFlags.Protection", MM_PROTECTION_INDEX[region.protection])
    short.set("u.VadFlags.PrivateMemory", 0 if image else 1)
    short.set("u.VadFlags.VadType", VAD_IMAGE_MAP if image else 0)
    short.set("u1.VadFlags1.CommitCharge", 0 if image else region.pages)
    short.set("u1.VadFlags1.MemCommit", 0 if image else 1)
    if image:
        full = Record(layout, "_MMVAD")
        full.set("Core", bytes(short))
        full.set("Subsection", subsection)
        ctx.kmem.write(vad, bytes(full))
    else:
        ctx.kmem.write(vad, bytes(short))
    return vad


def link_vad_tree(ctx: KernelContext, regions: list[BuiltRegion]) -> int:
    """A balanced binary search tree by start address (an AVL tree's shape), written into the
    VadNode of each VAD; returns the root node."""
    layout = ctx.layout
    ordered = sorted(regions, key=lambda r: r.spec.start)
    node_offset = layout.offset("_MMVAD_SHORT", "VadNode")
    left = layout.offset("_MMVAD_SHORT", "VadNode.Left")
    right = layout.offset("_MMVAD_SHORT", "VadNode.Right")
    parent = layout.offset("_MMVAD_SHORT", "VadNode.ParentValue")

    def build(lo: int, hi: int, parent_node: int) -> int:
        if lo >= hi:
            return 0
        mid = (lo + hi) // 2
        node = ordered[mid].vad + node_offset
        ctx.kmem.write(node - node_offset + parent, parent_node.to_bytes(8, "little"))
        left_child = build(lo, mid, node)
        right_child = build(mid + 1, hi, node)
        ctx.kmem.write(node - node_offset + left, left_child.to_bytes(8, "little"))
        ctx.kmem.write(node - node_offset + right, right_child.to_bytes(8, "little"))
        return node

    return build(0, len(ordered), 0)


__all__ = ["IMAGE_TAG", "PRIVATE_TAG", "create_control_area", "create_vad", "link_vad_tree"]
