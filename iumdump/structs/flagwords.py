"""Flag words from a symbol table: one construct per word of C bit fields, built from the ISF.

``_EPROCESS.Flags``, ``Flags2``, ``Flags3``, ``_KPROCESS.SecureState`` and the word holding
``DeepFreeze`` move their bits between Windows builds (``SubsystemProcess`` is bit 8 of Flags3 on
14393 and bit 6 on 19041). The symbol table of the exact kernel says where each bit is, so the
word's definition is made from the table's bit-field entries (Volatility ISF, ``kind:
bitfield`` with ``bit_position``/``bit_length``) and every build decodes with the same code.
Bits no field names are kept as gap fields: they survive a round trip and can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

from construct import Construct, ConstructError

from ..errors import InvalidInputError, SymbolError
from ..isf import BitFieldMember, SymbolTable
from .bitfields import BitField, build_word, construct_message, lsb_first_bitfield_word

@dataclass(frozen=True)
class FlagWord:
    """The word at ``type_name``.``path``: ``size`` bytes at byte ``offset`` of ``type_name``.

    ``path`` is the name it was asked for; words reached by different paths (``Flags3``,
    ``SubsystemProcess``) compare equal.
    """

    type_name: str
    path: str = field(compare=False)
    offset: int
    size: int
    fields: tuple[BitField, ...]
    construct: Construct = field(compare=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def has(self, name: str) -> bool:
        return name in self.names

    def bit(self, name: str) -> BitField:
        """The bit field ``name`` (its position and length in this word)."""
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise SymbolError(f"{self.type_name}.{self.path} has no bit field {name}")

    @property
    def named_mask(self) -> int:
        mask = 0
        for f in self.fields:
            mask |= ((1 << f.length) - 1) << f.bit
        return mask

    def parse(self, data: bytes) -> dict[str, bool | int]:
        """Named fields of the word in ``data`` (exactly ``size`` bytes, little-endian)."""
        if len(data) != self.size:
            raise InvalidInputError(f"{self.type_name}.{self.path} is {self.size} bytes, "
                                    f"not {len(data)}", expected=self.size, actual=len(data))
        try:
            parsed = self.construct.parse(bytes(data))
        except ConstructError as exc:
            raise InvalidInputError(f"cannot parse {self.type_name}.{self.path}: "
                                    f"{construct_message(exc)}") from None
        return {name: parsed[name] for name in self.names}

    def decode(self, value: int) -> dict[str, bool | int]:
        """Named fields of the word value ``value``: one-bit fields as bool, wider ones as int."""
        return self.parse(self._to_bytes(value))

    def unnamed_bits(self, value: int) -> int:
        """The bits of ``value`` that no field of this build names (0 when there are none)."""
        return self._check(value) & ~self.named_mask

    def build(self, **values: bool | int) -> bytes:
        """The word with the named fields given (the rest zero)."""
        try:
            return build_word(self.construct, **values)
        except ValueError as exc:  # unknown field name
            raise SymbolError(f"{self.type_name}.{self.path}: {exc}") from None
        except ConstructError as exc:
            raise InvalidInputError(f"cannot build {self.type_name}.{self.path}: "
                                    f"{construct_message(exc)}") from None

    def value(self, **values: bool | int) -> int:
        """``build`` as an integer."""
        return int.from_bytes(self.build(**values), "little")

    def update(self, word: int, **values: bool | int) -> int:
        """The word value ``word`` with the named fields set to ``values`` and every other bit
        kept: the fields not given, and the bits no field names (the secure handle that shares
        ``SecureState`` with its flags, reserved bits). What a writer uses to set one bit field
        of a structure it fills field by field."""
        widths = {name: self.bit(name).length for name in values}  # SymbolError: no such field
        for name, value in values.items():
            if not isinstance(value, int) or not 0 <= value < 1 << widths[name]:
                raise InvalidInputError(f"{value!r} does not fit the {widths[name]}-bit field "
                                        f"{name} of {self.type_name}.{self.path}",
                                        expected=widths[name], actual=value)
        try:
            parsed = self.construct.parse(self._to_bytes(word))
            for name, value in values.items():
                parsed[name] = bool(value) if widths[name] == 1 else int(value)
            return int.from_bytes(self.construct.build(parsed), "little")
        except ConstructError as exc:
            raise InvalidInputError(f"cannot build {self.type_name}.{self.path}: "
                                    f"{construct_message(exc)}") from None

    def _check(self, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) \
                or not 0 <= value < 1 << (8 * self.size):
            raise InvalidInputError(f"{self.type_name}.{self.path} is a {self.size}-byte word; "
                                    f"{value!r} does not fit", expected=self.size, actual=value)
        return value

    def _to_bytes(self, value: int) -> bytes:
        return self._check(value).to_bytes(self.size, "little")


@lru_cache(maxsize=256)
def flag_word(table: SymbolTable, type_name: str, path: str) -> FlagWord:
    """The flag word at ``path`` of ``type_name``, defined by ``table``'s bit-field entries.

    ``path`` names the word (``Flags3``, ``SecureState``) or any bit field in it
    (``SubsystemProcess``, ``Pcb.DeepFreeze``, ``SecureState.Flags.SecureProcess``). Raises
    :class:`SymbolError` when the table lacks the field or the field holds no bit fields.
    Cached per table, so a plugin can ask for the word once per process.
    """
    member = table.member(type_name, path)
    members = _bitfields(table, type_name, path)
    if not members:
        raise SymbolError(f"{type_name}.{path} is not a word of bit fields", path=table.source)
    fields = [BitField(m.name, m.bit_position, m.bit_length) for m in members]
    try:
        return flag_word_of(type_name, path, member.offset, member.size, fields)
    except ValueError as exc:  # overlapping fields or fields wider than the word
        # Several views of one word (a union of flag structures: _MMVAD_SHORT.u holds VadFlags
        # and PrivateVadFlags, _HANDLE_TABLE_ENTRY's access word overlays _EXHANDLE): a path to
        # a bit field names its view, the bit fields declared beside it.
        declared = _declared_bitfields(table, type_name, path) if member.is_bitfield else []
        if not declared:
            raise SymbolError(f"{type_name}.{path}: {exc}", path=table.source) from None
        fields = [BitField(m.name, m.bit_position, m.bit_length) for m in declared]
        try:
            return flag_word_of(type_name, path, member.offset, member.size, fields)
        except ValueError as again:
            raise SymbolError(f"{type_name}.{path}: {again}", path=table.source) from None


def flag_word_of(type_name: str, path: str, offset: int, size: int,
                 fields: Iterable[BitField]) -> FlagWord:
    """The flag word of ``fields``, bit fields of a ``size``-byte word at byte ``offset`` of
    ``type_name``, however they were found: :func:`flag_word` takes them from an ISF; the
    analyzer's reader from the same table as Volatility loaded it (its templates' ``start_bit``
    and ``end_bit``). Raises ValueError for fields that overlap or do not fit the word."""
    fields = tuple(sorted(fields, key=lambda f: f.bit))
    return FlagWord(type_name, path, offset, size, fields, lsb_first_bitfield_word(fields, size))


def _declared_bitfields(table: SymbolTable, type_name: str, path: str) -> list[BitFieldMember]:
    """The bit fields declared in the same structure as the bit field at ``path`` and sharing
    its storage unit (C allocates consecutive bit fields of one structure into one unit)."""
    *through, name = path.split(".")
    declaring = type_name
    for part in through:
        declaring = table.fields(declaring)[part]["type"]["name"]
    fields = table.fields(declaring)
    offset = int(fields[name]["offset"])
    found = [BitFieldMember(other, int(f["type"]["bit_position"]), int(f["type"]["bit_length"]))
             for other, f in fields.items()
             if f["type"]["kind"] == "bitfield" and int(f["offset"]) == offset]
    return sorted(found, key=lambda f: f.bit_position)


def _bitfields(table: SymbolTable, type_name: str, path: str) -> list[BitFieldMember]:
    found = table.bitfields_at(type_name, path)
    if found or "." not in path:
        return found
    # SymbolTable.bitfields_at flattens only anonymous and word-sized aggregates; a word inside a
    # named structure (_EPROCESS.Pcb.DeepFreeze) is looked up in that structure instead.
    head, rest = path.split(".", 1)
    descriptor = table.member(type_name, head).type
    if descriptor["kind"] in ("struct", "union", "class"):
        return _bitfields(table, descriptor["name"], rest)
    return found
