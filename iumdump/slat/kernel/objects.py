"""The object manager: the type table (ObTypeIndexTable with an ObHeaderCookie-encoded TypeIndex,
ObpInfoMaskToOffset), executive objects in pool blocks behind their optional headers and
_OBJECT_HEADER, and the named strings and file objects processes point at.

Optional headers are laid out in InfoMask bit order as Volatility derives it
(volatility3/framework/symbols/windows/extensions/pool.py); object type indices are Windows 10's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import SymbolError
from .constants import (
    BAD_TYPE_POINTER, FIRST_OBJECT_TYPE_INDEX, IO_TYPE_FILE, OBJECT_TYPE_TAGS, OBJECT_TYPES,
    POOL_BLOCK,
)
from .kernel_memory import Pool
from .records import Layout, Record

if TYPE_CHECKING:
    from .context import KernelContext


def unicode_string_bytes(layout: Layout, text: str, buffer: int) -> bytes:
    """A _UNICODE_STRING for ``text`` whose characters are at ``buffer``."""
    encoded = text.encode("utf-16-le")
    string = Record(layout, "_UNICODE_STRING")
    string.set("Length", len(encoded))
    string.set("MaximumLength", len(encoded) + 2)
    string.set("Buffer", buffer)
    return bytes(string)


def pool_string(ctx: KernelContext, text: str, *, tag: bytes = b"ObNm",
                pool: Pool | None = None) -> int:
    """``text`` as NUL-terminated UTF-16 in a pool block (paged unless ``pool`` says);
    returns the address of its characters."""
    data = text.encode("utf-16-le") + b"\0\0"
    return (pool or ctx.paged).allocate_data(data, tag)


def create_object(ctx: KernelContext, object_type: str, body_size: int, *,
                  pool: Pool | None = None, tag: bytes | None = None,
                  headers: tuple[str, ...] = (), name: str | None = None, creator_pid: int = 0,
                  pointer_count: int = 1, handle_count: int = 0) -> int:
    """An executive object: pool header, optional headers (highest InfoMask bit first),
    _OBJECT_HEADER, body. Returns the body's address."""
    layout = ctx.layout
    pool = pool or ctx.nonpaged
    tag = tag or OBJECT_TYPE_TAGS[object_type]
    present = [h for h in ctx.optional_headers if h in headers]
    if len(present) != len(headers):
        missing = sorted(set(headers) - set(present))
        raise SymbolError(f"symbol table has no _OBJECT_HEADER_{missing[0]}")
    bits = {h: i for i, h in enumerate(ctx.optional_headers)}
    sizes = {h: layout.size(f"_OBJECT_HEADER_{h}") for h in present}
    optional = sum(sizes.values())
    body_offset = layout.offset("_OBJECT_HEADER", "Body")
    block = pool.allocate(optional + body_offset + body_size, tag)
    start = block + pool.header_size
    object_header = start + optional
    body = object_header + body_offset
    # Lay the optional headers out downwards from the object header, lowest bit nearest.
    at = object_header
    for header_name in sorted(present, key=lambda h: bits[h]):
        at -= sizes[header_name]
        data = Record(layout, f"_OBJECT_HEADER_{header_name}")
        if header_name == "CREATOR_INFO":
            links = at + layout.offset("_OBJECT_HEADER_CREATOR_INFO", "TypeList")
            data.set_list_entry("TypeList", links, links)
            data.set("CreatorUniqueProcess", creator_pid)
        elif header_name == "NAME_INFO":
            buffer = pool_string(ctx, name or "")
            data.set("Name", unicode_string_bytes(layout, name or "", buffer))
            data.set("ReferenceCount", 0)
        elif header_name == "QUOTA_INFO":
            data.set("PagedPoolCharge", 0x1000)
            data.set("NonPagedPoolCharge", -(-(body_size + optional) // POOL_BLOCK) * POOL_BLOCK)
        ctx.kmem.write(at, bytes(data))
    header = Record(layout, "_OBJECT_HEADER")
    header.set("PointerCount", pointer_count)
    header.set("HandleCount", handle_count)
    index = OBJECT_TYPES.index(object_type) + FIRST_OBJECT_TYPE_INDEX
    # Windows 10 encodes TypeIndex with the header address and ObHeaderCookie
    # (ObGetObjectType: index ^ cookie ^ byte 1 of the header's address).
    header.set("TypeIndex", index ^ ctx.cookie ^ ((object_header >> 8) & 0xFF))
    header.set("InfoMask", sum(1 << bits[h] for h in present))
    ctx.kmem.write(object_header, bytes(header)[:body_offset])
    return body


def create_object_types(ctx: KernelContext) -> None:
    """_OBJECT_TYPE objects for each type, indexed from 2 in ObTypeIndexTable (entry 0 is null,
    entry 1 the 0xbad0b0b0 marker Windows 10 leaves there); ObHeaderCookie,
    ObpInfoMaskToOffset and the type pointers (PsProcessType …) beside them."""
    layout = ctx.layout
    size = layout.size("_OBJECT_TYPE")
    table = [0, BAD_TYPE_POINTER]
    for index, name in enumerate(OBJECT_TYPES, start=FIRST_OBJECT_TYPE_INDEX):
        ctx.object_types[name] = (index, 0)
    for index, name in enumerate(OBJECT_TYPES, start=FIRST_OBJECT_TYPE_INDEX):
        body = create_object(ctx, "Type", size, tag=b"ObjT",
                             headers=("CREATOR_INFO", "NAME_INFO"), name=name,
                             pointer_count=2, handle_count=0)
        obj = Record(layout, "_OBJECT_TYPE")
        links = body + layout.offset("_OBJECT_TYPE", "TypeList")
        obj.set_list_entry("TypeList", links, links)
        obj.set("Name", unicode_string_bytes(layout, name, pool_string(ctx, name)))
        obj.set("Index", index)
        obj.set("Key", int.from_bytes(OBJECT_TYPE_TAGS.get(name, name[:4].ljust(4).encode()),
                                      "little"))
        ctx.kmem.write(body, bytes(obj))
        ctx.object_types[name] = (index, body)
        table.append(body)
    table.append(0)
    ctx.store_symbol("ObTypeIndexTable", b"".join(p.to_bytes(8, "little") for p in table))
    ctx.store_symbol("ObHeaderCookie", bytes([ctx.cookie]))
    sizes = [layout.size(f"_OBJECT_HEADER_{h}") for h in ctx.optional_headers]
    info_mask_to_offset = bytes(sum(s for bit, s in enumerate(sizes) if mask & (1 << bit)) & 0xFF
                                for mask in range(256))
    ctx.store_symbol("ObpInfoMaskToOffset", info_mask_to_offset, optional=True)
    for symbol, name in (("PsProcessType", "Process"), ("PsThreadType", "Thread"),
                         ("ObpTypeObjectType", "Type")):
        ctx.store_symbol(symbol, ctx.object_types[name][1].to_bytes(8, "little"), optional=True)


def count_objects(ctx: KernelContext, type_name: str, count: int) -> None:
    """Set an object type's TotalNumberOfObjects."""
    body = ctx.object_types[type_name][1]
    offset = ctx.layout.offset("_OBJECT_TYPE", "TotalNumberOfObjects")
    ctx.kmem.write(body + offset, count.to_bytes(4, "little"))


def object_name_information(ctx: KernelContext, text: str) -> int:
    """An OBJECT_NAME_INFORMATION (UNICODE_STRING followed by its characters) in paged pool, as
    SeAuditProcessCreationInfo.ImageFileName points at one."""
    layout = ctx.layout
    header = layout.size("_OBJECT_NAME_INFORMATION")
    encoded = text.encode("utf-16-le") + b"\0\0"
    address = ctx.paged.allocate(header + len(encoded), b"SeOn") + ctx.paged.header_size
    name = Record(layout, "_OBJECT_NAME_INFORMATION")
    name.set("Name", unicode_string_bytes(layout, text, address + header))
    ctx.kmem.write(address, bytes(name) + encoded)
    return address


def create_file_object(ctx: KernelContext, path: str) -> int:
    """The FILE_OBJECT of an image file, named by its path on the volume."""
    layout = ctx.layout
    name = path.split("\\Device\\HarddiskVolume3", 1)[-1] if path.startswith("\\Device\\") else path
    body = create_object(ctx, "File", layout.size("_FILE_OBJECT"), pointer_count=32768,
                         handle_count=0)
    file_object = Record(layout, "_FILE_OBJECT")
    file_object.set("Type", IO_TYPE_FILE)
    file_object.set("Size", layout.size("_FILE_OBJECT"))
    file_object.set("ReadAccess", 1)
    file_object.set("SharedRead", 1)
    file_object.set("FileName", unicode_string_bytes(
        layout, name, pool_string(ctx, name, tag=b"FSim", pool=ctx.paged)))
    ctx.kmem.write(body, bytes(file_object))
    return body


__all__ = ["count_objects", "create_file_object", "create_object", "create_object_types",
           "object_name_information", "pool_string", "unicode_string_bytes"]
