"""Read-only access to a Volatility 3 symbol table (ISF, Intermediate Symbol Format).

ISF is the JSON that Volatility 3 writes from a PDB: ``user_types`` (structs/unions with fields
at byte offsets, bit fields as ``kind: bitfield`` with ``bit_position``/``bit_length``),
``base_types``, ``enums``, ``symbols`` (addresses relative to the image base) and
``metadata.windows.pdb`` (GUID, age, database name). Anonymous unions are already flattened
into their parent by Volatility's converter, so ``_EPROCESS.Minimal`` is a direct member.
Format reference: volatility3/schemas/schema-6.*.json in the Volatility 3 distribution.
"""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import SymbolError

POINTER_SIZE = 8
# The NT kernel's PDB names: multiprocessor, PAE, PAE multiprocessor and uniprocessor builds, in
# the order of Volatility's constants.windows.KERNEL_MODULE_NAMES.
KERNEL_PDB_NAMES = ("ntkrnlmp.pdb", "ntkrnlpa.pdb", "ntkrpamp.pdb", "ntoskrnl.pdb")


@dataclass(frozen=True)
class Member:
    """A (possibly nested) field resolved to an absolute offset inside its outermost type."""

    path: str
    offset: int
    type: dict
    size: int
    bit_position: int | None = None
    bit_length: int | None = None

    @property
    def is_bitfield(self) -> bool:
        return self.bit_position is not None


@dataclass(frozen=True)
class BitFieldMember:
    name: str
    bit_position: int
    bit_length: int


class SymbolTable:
    """One ISF document, with look-ups by name that raise :class:`SymbolError` when absent."""

    def __init__(self, data: dict, *, source: str = "<memory>") -> None:
        for key in ("user_types", "base_types", "symbols", "metadata"):
            if key not in data:
                raise SymbolError(f"not a Volatility symbol table: no '{key}' section", path=source)
        self.data = data
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> "SymbolTable":
        path = Path(path)
        try:
            opener = lzma.open if path.suffix == ".xz" else open
            with opener(path, "rt", encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise SymbolError("symbol table not found", path=str(path)) from None
        except (OSError, EOFError, lzma.LZMAError, json.JSONDecodeError,
                UnicodeDecodeError) as exc:  # EOFError: an xz stream cut short
            raise SymbolError(f"cannot read symbol table: {exc}", path=str(path)) from None
        if not isinstance(data, dict):
            raise SymbolError("not a Volatility symbol table: top level is not an object", path=str(path))
        return cls(data, source=str(path))

    # -- identity -------------------------------------------------------------------------------
    @property
    def pdb(self) -> dict:
        try:
            return self.data["metadata"]["windows"]["pdb"]
        except KeyError:
            raise SymbolError("symbol table has no metadata.windows.pdb", path=self.source) from None

    @property
    def guid(self) -> str:
        return self.pdb["GUID"].upper()

    @property
    def age(self) -> int:
        return int(self.pdb["age"])

    @property
    def pdb_name(self) -> str:
        return self.pdb.get("database", "ntkrnlmp.pdb")

    # -- types ----------------------------------------------------------------------------------
    def has_type(self, name: str) -> bool:
        return name in self.data["user_types"]

    def user_type(self, name: str) -> dict:
        try:
            return self.data["user_types"][name]
        except KeyError:
            raise SymbolError(f"symbol table has no type {name}", path=self.source) from None

    def size(self, type_name: str) -> int:
        return int(self.user_type(type_name)["size"])

    def type_size(self, descriptor: dict) -> int:
        kind = descriptor["kind"]
        if kind == "base":
            return int(self.data["base_types"][descriptor["name"]]["size"])
        if kind == "pointer":
            return POINTER_SIZE
        if kind in ("struct", "union", "class"):
            return self.size(descriptor["name"])
        if kind == "array":
            return int(descriptor["count"]) * self.type_size(descriptor["subtype"])
        if kind == "enum":
            return int(self.data["enums"][descriptor["name"]]["size"])
        if kind == "bitfield":
            return self.type_size(descriptor["type"])
        if kind == "function":
            return 0
        raise SymbolError(f"unknown ISF type kind {kind!r}", path=self.source)

    def fields(self, type_name: str) -> dict:
        return self.user_type(type_name).get("fields", {})

    def has_member(self, type_name: str, path: str) -> bool:
        try:
            self.member(type_name, path)
        except SymbolError:
            return False
        return True

    def member(self, type_name: str, path: str) -> Member:
        """Resolve ``path`` (``Pcb.SecureState.Flags.SecureProcess``) inside ``type_name``."""
        offset = 0
        current = type_name
        parts = path.split(".")
        for depth, part in enumerate(parts):
            fields = self.fields(current)
            if part not in fields:
                raise SymbolError(f"symbol table has no field {type_name}.{path}", path=self.source)
            field = fields[part]
            offset += int(field["offset"])
            descriptor = field["type"]
            last = depth == len(parts) - 1
            if last:
                if descriptor["kind"] == "bitfield":
                    return Member(path, offset, descriptor, self.type_size(descriptor),
                                  int(descriptor["bit_position"]), int(descriptor["bit_length"]))
                return Member(path, offset, descriptor, self.type_size(descriptor))
            if descriptor["kind"] not in ("struct", "union", "class"):
                raise SymbolError(f"{type_name}.{'.'.join(parts[:depth + 1])} is not a structure",
                                  path=self.source)
            current = descriptor["name"]
        raise SymbolError(f"empty field path for {type_name}", path=self.source)

    def bitfields_at(self, type_name: str, path: str) -> list[BitFieldMember]:
        """Every bit field that shares the word at ``path`` (a word or one of its bit fields).

        For ``_EPROCESS`` / ``Flags3`` this returns ``Minimal``, ``SubsystemProcess``, …; for
        ``_KPROCESS`` / ``SecureState`` it descends into the union's ``Flags`` structure.
        """
        anchor = self.member(type_name, path)
        found: dict[str, BitFieldMember] = {}
        for name, offset, descriptor in self._flattened(type_name):
            if descriptor["kind"] == "bitfield" and offset == anchor.offset:
                found.setdefault(name, BitFieldMember(name, int(descriptor["bit_position"]),
                                                      int(descriptor["bit_length"])))
        return sorted(found.values(), key=lambda f: f.bit_position)

    def _flattened(self, type_name: str, base: int = 0, prefix: str = "",
                   depth: int = 0) -> Iterator[tuple[str, int, dict]]:
        if depth > 8:
            return
        for name, field in self.fields(type_name).items():
            offset = base + int(field["offset"])
            descriptor = field["type"]
            yield prefix + name, offset, descriptor
            if descriptor["kind"] in ("struct", "union") and descriptor["name"].startswith("__"):
                # anonymous aggregates (e.g. SecureState's union) hold the named bit fields
                yield from self._flattened(descriptor["name"], offset, "", depth + 1)
            elif descriptor["kind"] in ("struct", "union") and self.has_type(descriptor["name"]) \
                    and self.size(descriptor["name"]) <= 8:
                yield from self._flattened(descriptor["name"], offset, "", depth + 1)

    # -- symbols --------------------------------------------------------------------------------
    def has_symbol(self, name: str) -> bool:
        return name in self.data["symbols"]

    def symbol(self, name: str) -> int:
        """Address of a symbol relative to the image base."""
        try:
            return int(self.data["symbols"][name]["address"])
        except KeyError:
            raise SymbolError(f"symbol table has no symbol {name}", path=self.source) from None

    def enum_value(self, enum_name: str, constant: str) -> int:
        try:
            return int(self.data["enums"][enum_name]["constants"][constant])
        except KeyError:
            raise SymbolError(f"symbol table has no constant {enum_name}.{constant}",
                              path=self.source) from None


def isf_file_name(guid: str, age: int) -> str:
    """Volatility's file name for a PDB's symbol table: ``<GUID>-<AGE>.json.xz``."""
    return f"{guid.upper()}-{age}.json.xz"
