"""Read each process's EPROCESS into plain values, by field name, as the field manifest declares.

This is the one place that touches EPROCESS fields for iumdump: the plugins in
``vol_plugins/windows`` and ``iumdump analyze`` both call it. Every field of
:data:`iumdump.analysis.fields.FIELDS` is found by name in the kernel's symbol table and probed
with ``has_member`` (DESIGN §4), so any build whose symbols carry a field is read correctly and a
build without it yields ``None`` with the reason "absent". A field whose memory cannot be read
yields ``None`` with the reason "unreadable" and marks the process partial; one bad field never
hides the others. Bit fields are decoded with the construct definition of their flag word
(:mod:`iumdump.structs.flagwords`), made from the same symbol table, as the emulator writes them.

Before believing a table it checks what one that does not fit the kernel would get wrong
(:class:`SymbolTableMismatch`, an error naming the table): ``_EPROCESS`` has its core members,
each of a type the table defines.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from volatility3.framework import constants, exceptions, interfaces
from volatility3.framework.objects import templates

from ..errors import SymbolError
from ..structs.bitfields import BitField
from ..structs.flagwords import FlagWord, flag_word_of
from .fields import FIELDS, LAYOUT_FIELDS, VALUE_FIELDS, Field, KernelLayout, ProcessFields, Read
from .layers import kernel_space_start

vollog = logging.getLogger(__name__)

# Members every Windows kernel's _EPROCESS has, without which no process can be listed or named:
# a symbol table lacking one is not the table of a Windows kernel at all. The core fields, and
# what the process list and the page walk go through.
CORE_MEMBERS = tuple(f.candidates[0] for f in FIELDS if f.core) + ("ActiveProcessLinks", "Pcb")
_PROBE_ERRORS = (exceptions.SymbolError, KeyError, AttributeError, TypeError)
DECODED_WORDS = 4096  # distinct values of one flag word whose decoding is kept (per reader)


class SymbolTableMismatch(SymbolError, exceptions.SymbolError):
    """The kernel's symbol table does not fit the kernel in the dump (another build's table, a
    damaged one). It is iumdump's one-line :class:`SymbolError` (``path`` is the table's file)
    and Volatility's ``SymbolError``, so ``vol`` reports it as a symbol-related issue and stops
    instead of printing a traceback or an empty listing."""

    def __init__(self, message: str, *, table_file: str | None, table_name: str,
                 symbol_name: str) -> None:
        SymbolError.__init__(self, message, path=table_file)
        self.table_name = table_name
        self.symbol_name = symbol_name


def symbol_table_file(context: interfaces.context.ContextInterface,
                      kernel_module_name: str) -> str:
    """Where the kernel module's symbol table was loaded from: a file path, else its URL."""
    kernel = context.modules[kernel_module_name]
    url = context.symbol_space[kernel.symbol_table_name].config.get("isf_url", None) or ""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return urllib.request.url2pathname(parsed.path)
    return url or kernel.symbol_table_name


def table_mismatch(context: interfaces.context.ContextInterface, kernel_module_name: str,
                   symbol: str, what: str) -> SymbolTableMismatch:
    """The error for a table that does not fit the kernel: ``what`` it gets wrong, at ``symbol``."""
    kernel = context.modules[kernel_module_name]
    return SymbolTableMismatch(f"symbol table does not fit the kernel in this dump: {what}",
                               table_file=symbol_table_file(context, kernel_module_name),
                               table_name=kernel.symbol_table_name, symbol_name=symbol)


# -- the probe: which member supplies each field on this build ------------------------------------

def _resolve(context: interfaces.context.ContextInterface,
             template: interfaces.objects.Template) -> interfaces.objects.Template:
    if isinstance(template, templates.ReferenceTemplate):
        return context.symbol_space.get_type(template.vol.type_name)
    return template


def _child(context, template, name: str):
    """The resolved template of member ``name``, or None when the type has no such member."""
    if template is None or not template.has_member(name):
        return None
    return _resolve(context, template.child_template(name))


def _container(context, eprocess, parts: list[str]):
    """The resolved template reached through the members ``parts``, or None."""
    template = eprocess
    for part in parts:
        template = _child(context, template, part)
    return template


@dataclass(frozen=True)
class _Access:
    """How one field is read on this build: ``source`` is the member reports name (relative to
    ``_EPROCESS``), ``member`` the path Volatility reaches it by; ``index`` reads an array's
    element; for a bit field, ``container`` and ``bit`` say where it lies."""

    field: Field
    source: str
    member: str
    index: int | None = None
    container: str = ""
    bit: str | None = None


def _find(context, eprocess, field: Field, candidate: str) -> _Access | None:
    """``candidate`` of ``field`` if this table has it (see :class:`fields.Read`)."""
    path = Field.source(candidate)
    parts = path.split(".")
    if field.read is Read.BIT:
        *through, word, bit = parts
        holder = _container(context, eprocess, through)
        if holder is None or not holder.has_member(bit):
            return None
        prefix = "".join(f"{part}." for part in through)
        members = holder.vol.members
        # The source names the word where the table has one holding the bit.
        source = (f"{prefix}{word}.{bit}" if word in members and members[word][0] ==
                  members[bit][0] else prefix + bit)
        return _Access(field, source, prefix + bit, container=".".join(through), bit=bit)
    holder = _container(context, eprocess, parts[:-1])
    if holder is None or not holder.has_member(parts[-1]):
        return None
    member = path
    if field.view is not None:
        member = f"{path}.{field.view}"
    elif field.read is Read.LARGE_INTEGER and _child(context, holder, parts[-1]).has_member(
            "QuadPart"):
        member = f"{path}.QuadPart"
    return _Access(field, path, member, index=0 if candidate.endswith("[0]") else None)


def _probe(context: interfaces.context.ContextInterface,
           kernel_module_name: str) -> tuple[KernelLayout, dict[str, _Access]]:
    """The layout (sources) and how each field is read, the core fields included."""
    kernel = context.modules[kernel_module_name]
    eprocess = kernel.get_type("_EPROCESS")
    found: dict[str, _Access] = {}
    for field in FIELDS:
        if field.unless is not None and field.unless in found:
            continue
        if field.needs_type is not None and not context.symbol_space.has_type(
                kernel.symbol_table_name + constants.BANG + field.needs_type):
            continue
        for candidate in field.candidates:
            access = _find(context, eprocess, field, candidate)
            if access is not None:
                found[field.attribute] = access
                break
    layout = KernelLayout(**{f.attribute: found[f.attribute].source for f in LAYOUT_FIELDS
                             if f.attribute in found})
    return layout, found


def kernel_layout(context: interfaces.context.ContextInterface,
                  kernel_module_name: str) -> KernelLayout:
    """Which field of this kernel's ``_EPROCESS`` supplies each value (paths relative to it),
    probed by name from the symbol table's types."""
    return _probe(context, kernel_module_name)[0]


def check_process_type(context: interfaces.context.ContextInterface,
                       kernel_module_name: str) -> interfaces.objects.Template:
    """The kernel's ``_EPROCESS`` type, after checking that the symbol table has it with the
    members every Windows kernel's has, each of a type the table defines. Raises
    :class:`SymbolTableMismatch` naming the table and what is missing."""
    kernel = context.modules[kernel_module_name]
    try:
        eprocess = kernel.get_type("_EPROCESS")
    except exceptions.SymbolError:
        raise table_mismatch(context, kernel_module_name, "_EPROCESS",
                             "it has no _EPROCESS type") from None
    missing = [name for name in CORE_MEMBERS if not eprocess.has_member(name)]
    if missing:
        raise table_mismatch(context, kernel_module_name, "_EPROCESS",
                             f"its _EPROCESS lacks {', '.join(missing)}")
    for path in (*CORE_MEMBERS, "Pcb.DirectoryTableBase"):
        template = eprocess
        try:
            for part in path.split("."):
                if not template.has_member(part):
                    raise table_mismatch(context, kernel_module_name, f"_EPROCESS.{path}",
                                         f"its _EPROCESS lacks {path}")
                template = _resolve(context, template.child_template(part))
            template.size  # resolves every type the member is made of
        except _PROBE_ERRORS as excp:
            raise table_mismatch(context, kernel_module_name, f"_EPROCESS.{path}",
                                 f"_EPROCESS.{path} has a type the table does not define "
                                 f"({excp})") from None
    return eprocess


# -- the one-read path: each field at the offset the table gives its name --------------------------

@dataclass(frozen=True)
class _Slot:
    """``length`` bytes at ``offset`` of an EPROCESS, read as the table types them."""

    offset: int
    length: int
    signed: bool = False
    pointer: bool = False  # Volatility masks pointers to the layer's address width

    def decode(self, data: bytes, address_mask: int) -> int:
        value = int.from_bytes(data[self.offset:self.offset + self.length], "little",
                               signed=self.signed)
        return value & address_mask if self.pointer else value


class _BitSlot:
    """A bit field: the named field of its flag word, the word at ``offset``."""

    def __init__(self, word: FlagWord, offset: int, bit: str,
                 parse: Callable[[bytes], dict]) -> None:
        self.word, self.offset, self.length, self.bit = word, offset, word.size, bit
        self._parse = parse

    def decode(self, data: bytes, _address_mask: int) -> int:
        return int(self._parse(data[self.offset:self.offset + self.length])[self.bit])


def _locate(context, eprocess, path: str) -> _Slot:
    """The slot of member ``path`` of ``_EPROCESS``: offsets and formats from the symbol table's
    templates. A structure or union is its whole word (SecureState); an array its first
    element (Affinity.Bitmap: the group-0 mask), except a byte array, which is whole."""
    template, offset = eprocess, 0
    for part in path.split("."):
        offset += template.relative_child_offset(part)
        template = _resolve(context, template.child_template(part))
    vol = template.vol
    if "count" in vol:  # an array
        element = _resolve(context, vol.subtype)
        if element.size == 1:
            return _Slot(offset, vol.count)
        return _Slot(offset, element.vol.data_format.length, element.vol.data_format.signed)
    if "data_format" in vol:  # an integer or a pointer
        return _Slot(offset, vol.data_format.length, vol.data_format.signed,
                     pointer="subtype" in vol)
    return _Slot(offset, template.size)  # a structure or union: the whole word


def _flag_word(context, eprocess, access: _Access) -> tuple[FlagWord, int]:
    """The flag word holding ``access``'s bit field and its offset in ``_EPROCESS``: every bit
    field the table's structure declares at the bit's offset, with the bit positions Volatility
    read from the same table (``start_bit``/``end_bit``, its BitField rule: bits [start, end))."""
    holder, offset = eprocess, 0
    for part in access.container.split(".") if access.container else ():
        offset += holder.relative_child_offset(part)
        holder = _resolve(context, holder.child_template(part))
    at, bit = holder.vol.members[access.bit]
    size = _resolve(context, bit.vol.base_type).size
    fields = [BitField(name, member.vol.start_bit, member.vol.end_bit - member.vol.start_bit)
              for name, (where, member) in holder.vol.members.items()
              if where == at and "start_bit" in member.vol
              and _resolve(context, member.vol.base_type).size == size]
    type_name = holder.vol.type_name.split(constants.BANG)[-1]
    try:
        word = flag_word_of(type_name, access.source, at, size, fields)
    except ValueError:  # views of one word that overlap (a union of flag structures)
        word = flag_word_of(type_name, access.source, at, size,
                            [f for f in fields if f.name == access.bit])
    return word, offset + at


# -- the field-by-field path: Volatility's objects, for memory the one read cannot cover -----------

def _member(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def read_name(proc) -> str:
    return proc.ImageFileName.cast("string", max_length=proc.ImageFileName.vol.count,
                                   errors="replace")


def _decode_name(data: bytes) -> str:
    """ImageFileName as Volatility's ``cast("string", errors="replace")`` gives it."""
    text = data.decode("utf-8", errors="replace")
    end = text.find("\x00")
    return text if end < 0 else text[:end]


class _UnicodeStringReader:
    """Reads the UNICODE_STRING of an _OBJECT_NAME_INFORMATION (the audit image name: pool
    memory, so readable even for a trustlet), its members placed by the symbol table."""

    def __init__(self, context, kernel_module_name: str) -> None:
        kernel = context.modules[kernel_module_name]
        name_info = kernel.get_type("_OBJECT_NAME_INFORMATION")
        string = _resolve(context, name_info.child_template("Name"))
        self._name = name_info.relative_child_offset("Name")
        self._length = string.relative_child_offset("Length")
        self._maximum = string.relative_child_offset("MaximumLength")
        self._buffer = string.relative_child_offset("Buffer")
        self._pointer_size = string.child_template("Buffer").size
        self._size = string.size

    def read(self, layer, address: int) -> str | None:
        """The string, as Volatility's ``get_string`` gives it (UTF-16, undecodable units
        replaced, cut at a NUL); None for an empty one or a NULL pointer (System). Raises
        InvalidAddressException for memory the dump lacks and for a header no kernel writes
        (Length past MaximumLength, or odd)."""
        if not address:
            return None
        header = layer.read(address + self._name, self._size)
        length = int.from_bytes(header[self._length:self._length + 2], "little")
        maximum = int.from_bytes(header[self._maximum:self._maximum + 2], "little")
        buffer = int.from_bytes(header[self._buffer:self._buffer + self._pointer_size],
                                "little") & layer.address_mask
        if length == 0:
            return None
        if length > maximum or length % 2 or not buffer:
            raise exceptions.InvalidAddressException(
                layer.name, address, f"implausible UNICODE_STRING at {address:#x}: Length "
                f"{length}, MaximumLength {maximum}, Buffer {buffer:#x}")
        text = layer.read(buffer, length).decode("utf-16-le", errors="replace")
        end = text.find("\x00")
        return (text if end < 0 else text[:end]) or None


class ProcessReader:
    """Reads processes of one kernel: the symbol table is probed once, then each EPROCESS is read
    by the member names found. Construct one per kernel module and call it per process.

    The usual case reads the EPROCESS in one piece and decodes each field at the offset the
    symbol table gives its name (Volatility's object machinery costs milliseconds per process
    at the dozen fields read here). When that read fails — the structure runs into memory the
    dump lacks — each field is read on its own through Volatility's objects, so the readable
    ones still come back and the others are marked unreadable.
    """

    def __init__(self, context: interfaces.context.ContextInterface,
                 kernel_module_name: str) -> None:
        self.context = context
        self.kernel_module_name = kernel_module_name
        eprocess = check_process_type(context, kernel_module_name)
        try:
            self.layout, self._access = _probe(context, kernel_module_name)
        except _PROBE_ERRORS as excp:
            raise table_mismatch(context, kernel_module_name, "_EPROCESS",
                                 f"a member type of _EPROCESS or _KPROCESS is not defined "
                                 f"({excp})") from None
        self._slots: dict[str, _Slot | _BitSlot] = {}
        parsers: dict[FlagWord, Callable[[bytes], dict]] = {}  # one decoding cache per word
        for attribute, access in self._access.items():
            if access.field.read is Read.NAMED:
                continue
            try:
                if access.field.read is Read.BIT:
                    word, offset = _flag_word(context, eprocess, access)
                    parse = parsers.setdefault(
                        word, functools.lru_cache(maxsize=DECODED_WORDS)(word.parse))
                    self._slots[attribute] = _BitSlot(word, offset, access.bit, parse)
                else:
                    self._slots[attribute] = _locate(context, eprocess, access.member)
            except _PROBE_ERRORS as excp:
                raise table_mismatch(context, kernel_module_name, f"_EPROCESS.{access.member}",
                                     f"_EPROCESS.{access.member} has a type the table does "
                                     f"not define ({excp})") from None
        self._span = max(slot.offset + slot.length for slot in self._slots.values())
        # Decoded by kind, per process: numbers (bit fields included), text, names behind pointers.
        kinds = {attribute: self._access[attribute].field.read for attribute in self._slots}
        self._numbers = [(attribute, slot) for attribute, slot in self._slots.items()
                         if kinds[attribute] not in (Read.TEXT, Read.NAME_POINTER)]
        self._texts = [(a, slot) for a, slot in self._slots.items() if kinds[a] is Read.TEXT]
        self._names = [(a, slot) for a, slot in self._slots.items()
                       if kinds[a] is Read.NAME_POINTER]
        self._strings = (_UnicodeStringReader(context, kernel_module_name)
                         if "image_path" in self._access else None)
        self._kernel_space = kernel_space_start(
            context.layers[context.modules[kernel_module_name].layer_name])

    def __call__(self, proc: interfaces.objects.ObjectInterface, *,
                 linked: bool = True) -> ProcessFields:
        """Every value iumdump derives from, read from one EPROCESS object. Never raises for
        unreadable memory: such fields come back None and are listed in ``unreadable``."""
        layer = self.context.layers[proc.vol.layer_name]
        try:
            data = layer.read(proc.vol.offset, self._span)
        except exceptions.InvalidAddressException:
            return self.read_fields(proc, linked=linked)
        mask = layer.address_mask
        values: dict[str, object] = {attribute: slot.decode(data, mask)
                                     for attribute, slot in self._numbers}
        for attribute, slot in self._texts:
            values[attribute] = _decode_name(data[slot.offset:slot.offset + slot.length])
        unreadable: set[str] = set()
        for attribute, slot in self._names:
            try:
                values[attribute] = self._strings.read(layer, slot.decode(data, mask))
            except exceptions.InvalidAddressException as excp:
                vollog.debug(f"Process at {proc.vol.offset:#x}: {attribute}: {excp}")
                unreadable.add(attribute)
        return ProcessFields(offset=proc.vol.offset, linked=linked, layout=self.layout,
                             unreadable=frozenset(unreadable), problems=self._placement(proc),
                             **values)

    def _placement(self, proc: interfaces.objects.ObjectInterface) -> tuple[str, ...]:
        """Why the object cannot be an EPROCESS where it lies: the kernel allocates processes
        in kernel space, so one in user space came from a corrupt link (e.g. into the user
        alias of KUSER_SHARED_DATA) and its fields are not a process's."""
        if proc.vol.offset < self._kernel_space:
            return (f"EPROCESS at {proc.vol.offset:#x} lies in user space, where the kernel "
                    "never allocates a process: a corrupt list link, not a process",)
        return ()

    def read_fields(self, proc: interfaces.objects.ObjectInterface, *,
                    linked: bool = True) -> ProcessFields:
        """Each field on its own through Volatility's objects (the path for damaged memory, and
        a reader independent of the one-read path: Volatility decodes the bit fields)."""
        values: dict[str, object] = {}
        unreadable: set[str] = set()
        layer = self.context.layers[proc.vol.layer_name]
        for field in VALUE_FIELDS:
            access = self._access.get(field.attribute)
            if access is None:
                continue
            try:
                values[field.attribute] = self._read_member(proc, layer, access)
            except exceptions.InvalidAddressException:
                unreadable.add(field.attribute)
        return ProcessFields(offset=proc.vol.offset, linked=linked, layout=self.layout,
                             unreadable=frozenset(unreadable), problems=self._placement(proc),
                             **values)

    def _read_member(self, proc, layer, access: _Access):
        read = access.field.read
        if read is Read.TEXT:
            return read_name(proc)
        member = _member(proc, access.member)
        if read is Read.WORD:  # the whole structure, whatever its members are called
            data = self.context.layers[member.vol.layer_name].read(member.vol.offset,
                                                                   member.vol.size)
            return int.from_bytes(data, "little")
        if access.index is not None:
            member = member[access.index]
        if read is Read.NAME_POINTER:
            return self._strings.read(layer, int(member))
        return int(member)
