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
    fields = tuple(BitField(m.name, m.bit_position, m.bit_length) for m in members)
    try:
        construct = lsb_first_bitfield_word(fields, member.size)
    except ValueError as exc:  # overlapping fields or fields wider than the word
        raise SymbolError(f"{type_name}.{path}: {exc}", path=table.source) from None
    return FlagWord(type_name, path, member.offset, member.size, fields, construct)


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
