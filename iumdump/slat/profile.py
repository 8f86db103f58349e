"""The built-in profile: a Windows 10 19041 x64 kernel symbol table written by the project.

The emulator lays its synthetic kernel out by a symbol table. Without ``--isf`` it uses this one,
so that iumdump needs no downloaded or third-party symbol file. The layout lives in
``iumdump/data/ntkrnlmp-19041-x64.layout``: a hand-curated table of only the types, fields,
enums and symbols that Volatility 3 (windows.info, pslist, psscan, vadinfo, memmap and its
version checks), the synthetic kernel and iumdump's plugins use. Every field keeps its real
19041 offset, size and bit position and every type its real size, so a dump made with this
profile reads as 19041 to any tool; fields nobody reads are simply left out.

From the table :func:`builtin_isf` builds a complete Volatility ISF document (format 6.1.0, the
format Volatility's own PDB converter writes) whose PDB identity is our own GUID: Volatility will
not find it on Microsoft's symbol server, and nobody can mistake the file for a real build's.

Layout grammar (``#`` starts a comment; fields and constants are indented)::

    struct|union NAME SIZE          a user type and its real size
      OFFSET FIELD TYPE             TYPE: NAME | TYPE* | TYPE[N] | BASE:BIT_POSITION:BIT_LENGTH | function
    enum NAME SIZE BASE
      CONSTANT VALUE
    symbol NAME RVA                 address relative to the kernel image base

NAME is a base type (``unsigned long``), a user type or an enum declared anywhere in the file.
Anonymous unions and structures are named ``__anonymous_<Parent>_<Field>``; anonymous members
that Volatility's PDB converter flattens into their parent are flattened here the same way.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from .. import __version__
from ..errors import SymbolError
from ..isf import SymbolTable
from ..structs.pe import IMAGE_FILE_MACHINE_AMD64

LAYOUT_RESOURCE = "ntkrnlmp-19041-x64.layout"

#: Our own PDB identity for the built-in kernel: derived from a fixed phrase, so it is stable
#: across runs and versions and cannot collide with a Microsoft build's GUID by accident.
BUILTIN_GUID = hashlib.sha256(b"iumdump built-in 19041").hexdigest()[:32].upper()
BUILTIN_AGE = 1
BUILTIN_PDB_NAME = "ntkrnlmp.pdb"
ISF_FORMAT = "6.1.0"

# The base types Volatility's PDB converter writes for every x64 PDB (names are the converter's).
BASE_TYPES: dict[str, dict] = {
    name: {"endian": "little", "kind": kind, "signed": signed, "size": size}
    for name, kind, signed, size in (
        ("HRESULT", "int", False, 4),
        ("char", "char", True, 1),
        ("double", "float", True, 8),
        ("f32", "float", True, 4),
        ("int", "int", True, 4),
        ("long", "int", True, 4),
        ("long long", "int", True, 8),
        ("pointer", "int", False, 8),
        ("short", "int", True, 2),
        ("unsigned char", "char", False, 1),
        ("unsigned int", "int", False, 4),
        ("unsigned long", "int", False, 4),
        ("unsigned long long", "int", False, 8),
        ("unsigned short", "int", False, 2),
        ("void", "void", True, 0),
        ("wchar", "int", True, 2),
    )
}
POINTER_SIZE = BASE_TYPES["pointer"]["size"]

_BITFIELD = re.compile(r"^(?P<base>.+):(?P<position>\d+):(?P<length>\d+)$")
_ARRAY = re.compile(r"^(?P<subtype>.+)\[(?P<count>\d+)\]$")
_FIELD = re.compile(r"^(?P<offset>0x[0-9a-fA-F]+|\d+)\s+(?P<name>\S+)\s+(?P<type>\S.*)$")
_CONSTANT = re.compile(r"^(?P<name>\S+)\s+(?P<value>-?(?:0x[0-9a-fA-F]+|\d+))$")


@dataclass(frozen=True)
class _Line:
    number: int
    text: str
    indented: bool


def _lines(text: str) -> list[_Line]:
    result = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.split("#", 1)[0].rstrip()
        if body.strip():
            result.append(_Line(number, body.strip(), body[0].isspace()))
    return result


class _Parser:
    """Two passes: declarations first (types may refer to ones declared later), then bodies."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = _lines(text)
        self.kinds: dict[str, str] = {}      # user type or enum name -> struct/union/enum
        self.sizes: dict[str, int] = {}      # user type or enum name -> size in bytes
        self.user_types: dict[str, dict] = {}
        self.enums: dict[str, dict] = {}
        self.symbols: dict[str, dict] = {}

    def error(self, line: _Line, message: str) -> SymbolError:
        return SymbolError(f"line {line.number}: {message}", path=self.source)

    def parse(self) -> tuple[dict, dict, dict]:
        for line in self.lines:
            if line.indented:
                continue
            words = line.text.split()
            if words[0] in ("struct", "union", "enum"):
                if len(words) < 3:
                    raise self.error(line, f"{words[0]} needs a name and a size")
                if words[1] in self.kinds or words[1] in BASE_TYPES:
                    raise self.error(line, f"{words[1]} is declared twice")
                self.kinds[words[1]] = words[0]
                self.sizes[words[1]] = self._number(line, words[2])
        current: tuple[str, str] | None = None   # (kind, name) of the open declaration
        for line in self.lines:
            if line.indented:
                if current is None:
                    raise self.error(line, "indented line outside a declaration")
                if current[0] == "enum":
                    self._constant(line, current[1])
                else:
                    self._field(line, current[1])
                continue
            words = line.text.split()
            if words[0] in ("struct", "union"):
                self._user_type(line, words)
                current = (words[0], words[1])
            elif words[0] == "enum":
                self._enum(line, words)
                current = ("enum", words[1])
            elif words[0] == "symbol":
                self._symbol(line, words)
                current = None
            else:
                raise self.error(line, f"unknown declaration {words[0]!r}")
        return self.user_types, self.enums, self.symbols

    def _number(self, line: _Line, text: str) -> int:
        try:
            return int(text, 0)
        except ValueError:
            raise self.error(line, f"{text!r} is not a number") from None

    def _user_type(self, line: _Line, words: list[str]) -> None:
        if len(words) != 3:
            raise self.error(line, "expected: struct|union NAME SIZE")
        self.user_types[words[1]] = {"fields": {}, "kind": words[0], "size": self.sizes[words[1]]}

    def _enum(self, line: _Line, words: list[str]) -> None:
        base = " ".join(words[3:])
        if len(words) < 4 or base not in BASE_TYPES:
            raise self.error(line, "expected: enum NAME SIZE BASE (a base type)")
        self.enums[words[1]] = {"base": base, "constants": {}, "size": self.sizes[words[1]]}

    def _symbol(self, line: _Line, words: list[str]) -> None:
        if len(words) != 3:
            raise self.error(line, "expected: symbol NAME RVA")
        if words[1] in self.symbols:
            raise self.error(line, f"symbol {words[1]} is declared twice")
        self.symbols[words[1]] = {"address": self._number(line, words[2])}

    def _constant(self, line: _Line, enum: str) -> None:
        match = _CONSTANT.match(line.text)
        if not match:
            raise self.error(line, "expected: CONSTANT VALUE")
        constants = self.enums[enum]["constants"]
        if match["name"] in constants:
            raise self.error(line, f"{enum}.{match['name']} is declared twice")
        constants[match["name"]] = self._number(line, match["value"])

    def _field(self, line: _Line, owner: str) -> None:
        match = _FIELD.match(line.text)
        if not match:
            raise self.error(line, "expected: OFFSET FIELD TYPE")
        fields = self.user_types[owner]["fields"]
        if match["name"] in fields:
            raise self.error(line, f"{owner}.{match['name']} is declared twice")
        offset = self._number(line, match["offset"])
        descriptor = self._descriptor(line, match["type"].strip())
        size = self._size(descriptor)
        if offset + size > self.user_types[owner]["size"]:
            # the cheapest guard against a mistyped offset: nothing may overhang its type
            raise self.error(line, f"{owner}.{match['name']} ends at {offset + size:#x}, "
                                   f"beyond the size of {owner}")
        fields[match["name"]] = {"offset": offset, "type": descriptor}

    def _descriptor(self, line: _Line, text: str) -> dict:
        bitfield = _BITFIELD.match(text)
        if bitfield:
            base = self._descriptor(line, bitfield["base"].strip())
            if base["kind"] not in ("base", "enum"):
                raise self.error(line, f"bit field of {bitfield['base']!r}: not a base type or enum")
            position, length = int(bitfield["position"]), int(bitfield["length"])
            if length == 0 or position + length > 8 * self._size(base):
                raise self.error(line, f"bit field {text!r} does not fit its base type")
            return {"bit_length": length, "bit_position": position, "kind": "bitfield", "type": base}
        array = _ARRAY.match(text)
        if array:
            return {"count": int(array["count"]), "kind": "array",
                    "subtype": self._descriptor(line, array["subtype"].strip())}
        if text.endswith("*"):
            return {"kind": "pointer", "subtype": self._descriptor(line, text[:-1].strip())}
        if text == "function":
            return {"kind": "function"}
        if text in BASE_TYPES:
            return {"kind": "base", "name": text}
        if text in self.kinds:
            return {"kind": self.kinds[text], "name": text}
        raise self.error(line, f"unknown type {text!r}")

    def _size(self, descriptor: dict) -> int:
        kind = descriptor["kind"]
        if kind == "base":
            return BASE_TYPES[descriptor["name"]]["size"]
        if kind == "pointer":
            return POINTER_SIZE
        if kind == "array":
            return descriptor["count"] * self._size(descriptor["subtype"])
        if kind == "bitfield":
            return self._size(descriptor["type"])
        if kind == "function":
            return 0
        return self.sizes[descriptor["name"]]


def parse_layout(text: str, source: str = "<layout>") -> tuple[dict, dict, dict]:
    """Parse a layout table into ISF ``user_types``, ``enums`` and ``symbols`` sections."""
    return _Parser(text, source).parse()


@functools.lru_cache(maxsize=1)
def _builtin_document() -> dict:
    text = resources.files("iumdump").joinpath("data", LAYOUT_RESOURCE).read_text(encoding="utf-8")
    user_types, enums, symbols = parse_layout(text, source=LAYOUT_RESOURCE)
    return {
        "base_types": BASE_TYPES,
        "enums": enums,
        "metadata": {
            "format": ISF_FORMAT,
            "producer": {"name": "iumdump", "version": __version__},
            "windows": {"pdb": {"GUID": BUILTIN_GUID, "age": BUILTIN_AGE,
                                "database": BUILTIN_PDB_NAME,
                                "machine_type": IMAGE_FILE_MACHINE_AMD64}},
        },
        "symbols": symbols,
        "user_types": user_types,
    }


def builtin_isf() -> dict:
    """The built-in profile as a Volatility ISF document (a fresh copy the caller may change)."""
    return copy.deepcopy(_builtin_document())


def builtin_symbol_table() -> SymbolTable:
    """The built-in Windows 10 19041 x64 kernel profile as a :class:`~iumdump.isf.SymbolTable`."""
    return SymbolTable(builtin_isf(), source=f"<iumdump built-in {LAYOUT_RESOURCE}>")
