"""Structures laid out by a symbol table: sizes and field positions resolved by name.

The synthetic kernel and the PE image writer fill every structure through a :class:`Record`, so
nothing carries a hard-coded offset: the symbol table (the built-in profile, a real ISF, or one
of Volatility's own tables such as pe.json) decides where each byte goes. Bit fields are written
with the flag-word definitions generated from the same table (:mod:`iumdump.structs.flagwords`),
the ones iumdump's readers parse them with.
"""

from __future__ import annotations

from ...errors import InvalidInputError, SymbolError
from ...isf import Member, SymbolTable
from ...structs.flagwords import FlagWord, flag_word


class Layout:
    """Sizes and field positions of one symbol table, resolved by name and cached.

    Every resolved or probed (type, path) is recorded in ``used`` so a test can check that
    KERNEL_FIELDS_USED stays the exact list the built-in profile must provide."""

    def __init__(self, symbols: SymbolTable) -> None:
        self.symbols = symbols
        self._members: dict[tuple[str, str], Member | None] = {}
        # (type, path, word before, value) → word after: the kernel sets the same bits into the
        # same words thousands of times (pool headers, VADs), each a construct parse and build.
        self._bit_updates: dict[tuple[str, str, int, int], int] = {}
        self.used: set[tuple[str, str]] = set()
        self.used_types: set[str] = set()

    def size(self, type_name: str) -> int:
        self.used_types.add(type_name)
        return self.symbols.size(type_name)

    def has_type(self, type_name: str) -> bool:
        self.used_types.add(type_name)
        return self.symbols.has_type(type_name)

    def member(self, type_name: str, path: str) -> Member:
        found = self._lookup(type_name, path)
        if found is None:
            raise SymbolError(f"symbol table has no field {type_name}.{path}",
                              path=self.symbols.source)
        return found

    def has(self, type_name: str, path: str) -> bool:
        return self._lookup(type_name, path) is not None

    def offset(self, type_name: str, path: str) -> int:
        return self.member(type_name, path).offset

    def flag_word(self, type_name: str, path: str) -> FlagWord:
        """The flag word holding the bit field at ``path``, defined by the symbol table."""
        self.member(type_name, path)  # recorded as used; SymbolError when absent
        return flag_word(self.symbols, type_name, path)

    def set_bits(self, type_name: str, path: str, word: int, value: int) -> int:
        """``word`` with the bit field at ``path`` set to ``value`` (the other bits kept)."""
        key = (type_name, path, word, value)
        updated = self._bit_updates.get(key)
        if updated is None:
            name = path.rsplit(".", 1)[-1]
            updated = self.flag_word(type_name, path).update(word, **{name: value})
            self._bit_updates[key] = updated
        return updated

    def _lookup(self, type_name: str, path: str) -> Member | None:
        key = (type_name, path)
        if key not in self._members:
            self.used.add(key)
            try:
                self._members[key] = self.symbols.member(type_name, path)
            except SymbolError:
                self._members[key] = None
        return self._members[key]


class Record:
    """The bytes of one structure; fields are set by (dotted) name."""

    def __init__(self, layout: Layout, type_name: str, size: int | None = None) -> None:
        self.layout = layout
        self.type_name = type_name
        self.data = bytearray(size if size is not None else layout.size(type_name))

    def set(self, path: str, value: int | bytes) -> None:
        member = self.layout.member(self.type_name, path)
        if member.is_bitfield and not isinstance(value, (bytes, bytearray)):
            self._set_bit_field(member, path, value)
        else:
            self._put(member, value)

    def set_optional(self, path: str, value: int | bytes) -> bool:
        """Set a field the layout may lack; returns whether it was there."""
        if not self.layout.has(self.type_name, path):
            return False
        self.set(path, value)
        return True

    def set_element(self, path: str, index: int, value: int) -> None:
        member = self.layout.member(self.type_name, path)
        if member.type.get("kind") != "array":
            raise SymbolError(f"{self.type_name}.{path} is not an array")
        element = self.layout.symbols.type_size(member.type["subtype"])
        if not 0 <= index < int(member.type["count"]):
            raise InvalidInputError(f"{self.type_name}.{path}[{index}] is out of range")
        start = member.offset + index * element
        self.data[start:start + element] = value.to_bytes(element, "little", signed=value < 0)

    def set_list_entry(self, path: str, flink: int, blink: int) -> None:
        self.set(f"{path}.Flink", flink)
        self.set(f"{path}.Blink", blink)

    def _set_bit_field(self, member: Member, path: str, value: int) -> None:
        start, size = member.offset, member.size
        word = int.from_bytes(self.data[start:start + size], "little")
        word = self.layout.set_bits(self.type_name, path, word, value)
        self.data[start:start + size] = word.to_bytes(size, "little")

    def _put(self, member: Member, value: int | bytes) -> None:
        start, size = member.offset, member.size
        if isinstance(value, (bytes, bytearray)):
            if len(value) > size:
                raise InvalidInputError(f"{len(value)} bytes do not fit {self.type_name}."
                                        f"{member.path} ({size} bytes)")
            self.data[start:start + len(value)] = value
            return
        self.data[start:start + size] = value.to_bytes(size, "little", signed=value < 0)

    def __bytes__(self) -> bytes:
        return bytes(self.data)


__all__ = ["Layout", "Record"]
