"""C bit fields as construct definitions.

MSVC (and every x86 C ABI) allocates bit fields of a ULONG from the least significant bit.
A little-endian word seen through ``ByteSwapped`` becomes a big-endian bit stream whose first
bit is the word's most significant one, so a ``BitStruct`` lists the fields from the top bit down.
(``BitsSwapped`` would reverse bit order inside each byte instead, which is wrong for fields that
cross a byte boundary.) Gaps between named fields become explicit fields so that any word — even
one with garbage in reserved bits — parses and rebuilds byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from construct import BitsInteger, BitStruct, ByteSwapped, Construct, ConstructError, Flag


@dataclass(frozen=True)
class BitField:
    """One C bit field: ``name`` occupies bits ``[bit, bit + length)`` of the word."""

    name: str
    bit: int
    length: int = 1


def lsb_first_bitfield_word(fields: Iterable[BitField], size: int, *,
                            gap_prefix: str = "_bits") -> Construct:
    """A construct for a ``size``-byte little-endian word holding ``fields`` (LSB-first).

    Single-bit fields parse as ``bool``; wider ones as ``int``. Uncovered bits appear as
    ``{gap_prefix}{first_bit}_{last_bit}`` integer fields so nothing is silently dropped.
    """
    width = size * 8
    ordered: Sequence[BitField] = sorted(fields, key=lambda f: f.bit)
    cursor = 0
    layout: list = []  # (name, construct) from LSB up
    for field in ordered:
        if field.bit < cursor:
            raise ValueError(f"bit field {field.name} overlaps the previous field at bit {field.bit}")
        if field.bit + field.length > width:
            raise ValueError(f"bit field {field.name} runs past bit {width - 1}")
        if field.bit > cursor:
            layout.append(_gap(gap_prefix, cursor, field.bit))
        layout.append(field.name / (Flag if field.length == 1 else BitsInteger(field.length)))
        cursor = field.bit + field.length
    if cursor < width:
        layout.append(_gap(gap_prefix, cursor, width))
    return ByteSwapped(BitStruct(*reversed(layout)))


def _gap(prefix: str, start: int, end: int):
    return f"{prefix}{start}_{end - 1}" / BitsInteger(end - start)


def field_names(word: Construct) -> list[str]:
    """Names of every field (named and gap) of a word made by ``lsb_first_bitfield_word``."""
    # ByteSwapped → BitStruct (a Transformed wrapping the Struct)
    return [sub.name for sub in word.subcon.subcon.subcons]


def build_word(word: Construct, **values) -> bytes:
    """Build a bit-field word from the named values given; every other field is zero."""
    unknown = set(values) - set(field_names(word))
    if unknown:
        raise ValueError(f"no such bit field(s): {', '.join(sorted(unknown))}")
    return word.build({name: values.get(name, 0) for name in field_names(word)})


def word_value(word: Construct, **values) -> int:
    """``build_word`` as an integer."""
    return int.from_bytes(build_word(word, **values), "little")


def construct_message(exc: ConstructError) -> str:
    """A ConstructError as one line, for wrapping into an iumdump error at the boundary.

    construct prefixes its message with ``Error in path (parsing) -> Field`` on a line of its own;
    the CLI's contract is one line per error, so the path moves to the end.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if exc.path is not None and lines and lines[0].startswith("Error in path"):
        lines = lines[1:] + [f"(at {exc.path})"]
    return " ".join(lines) or type(exc).__name__
