"""Decode a PROCESS_EXTENDED_BASIC_INFORMATION buffer captured on a live system.

The buffer comes as raw bytes or as hex text (whitespace and the separators ``-`` ``:`` ``,``
between bytes are ignored, so ``xxd -p``, ``bytes.hex(' ')`` and PowerShell's
``[BitConverter]::ToString()`` output all work; UTF-8/UTF-16 text with a byte-order mark too).
Input that is entirely printable text is hex; anything else is raw. No valid raw buffer is
printable text: its Size field (0x40 or 0x20 in a SIZE_T) always holds NUL bytes.

The layout is the one the caller names, else the one whose size the buffer has; either way the
Size field must agree with the length, as it does in anything NtQueryInformationProcess wrote.
"""

from __future__ import annotations

import codecs
import string

from .errors import InvalidInputError, TruncatedDumpError
from .structs.process_info import (ARCHES, EXTENDED_SIZES, FLAG_NAMES, ExtendedBasicInformation,
                                   parse_extended_basic_information)

_TEXT_BYTES = frozenset(string.printable.encode("ascii"))
_SEPARATORS = frozenset(string.whitespace + "-:,")
_HEX_DIGITS = frozenset(string.hexdigits)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_LAYOUTS = " or ".join(f"{EXTENDED_SIZES[arch]} bytes ({arch})" for arch in ARCHES)


def buffer_bytes(data: bytes) -> bytes:
    """The structure's bytes: ``data`` itself when raw, the decoded digits when hex text."""
    text = _as_text(data)
    return data if text is None else _hex_to_bytes(text)


def _as_text(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise InvalidInputError(f"text with a {encoding} byte-order mark that is not "
                                        f"valid {encoding}") from None
    if data and all(byte in _TEXT_BYTES for byte in data):
        return data.decode("ascii")
    return None


def _hex_to_bytes(text: str) -> bytes:
    digits = []
    for position, char in enumerate(text):
        if char in _HEX_DIGITS:
            digits.append(char)
        elif char not in _SEPARATORS:
            raise InvalidInputError(f"text is not hex: unexpected {char!r} at character "
                                    f"{position}", offset=position, actual=char)
    if not digits:
        raise InvalidInputError(f"text holds no hex digits; expected {_LAYOUTS}")
    if len(digits) % 2:
        raise InvalidInputError(f"text is not hex bytes: odd number of hex digits ({len(digits)})",
                                actual=len(digits))
    return bytes.fromhex("".join(digits))


def layout_for(length: int) -> str:
    """The architecture whose PROCESS_EXTENDED_BASIC_INFORMATION is ``length`` bytes."""
    for arch in ARCHES:
        if EXTENDED_SIZES[arch] == length:
            return arch
    error = TruncatedDumpError if length < min(EXTENDED_SIZES.values()) else InvalidInputError
    raise error(f"{length} bytes fits neither layout of PROCESS_EXTENDED_BASIC_INFORMATION: "
                f"expected {_LAYOUTS}", expected=tuple(EXTENDED_SIZES.values()), actual=length)


def decode_buffer(data: bytes, arch: str | None = None) -> ExtendedBasicInformation:
    """Decode a captured buffer (raw or hex) with the layout of ``arch`` or of its length."""
    if not data:
        raise InvalidInputError(f"empty input; expected {_LAYOUTS}, raw or as hex")
    raw = buffer_bytes(data)
    if arch is None:
        arch = layout_for(len(raw))
    info = parse_extended_basic_information(raw, arch)
    if info.size != len(raw):
        raise InvalidInputError(f"Size field says {info.size:#x} but the {arch} buffer is "
                                f"{len(raw):#x} bytes", expected=len(raw), actual=info.size)
    return info


def to_json(info: ExtendedBasicInformation) -> dict:
    """The ``--json`` object: size, basic_info and flags (name → bool), plus what else was seen."""
    return {
        "arch": info.arch,
        "size": info.size,
        "basic_info": info.basic_info.as_dict(),
        "flags": dict(info.flags),
        "flags_value": info.flags_value,
        "spare_bits": info.spare_bits,
        "set_spare_bits": list(info.set_spare_bits),
        "nonzero_padding": list(info.nonzero_padding),
    }


def to_text(info: ExtendedBasicInformation) -> str:
    """Every field and each flag by name, one per line."""
    pointer = 16 if info.arch == "x64" else 8
    basic = info.basic_info
    rows = [
        ("Size", f"{info.size:#x}"),
        ("BasicInfo.ExitStatus", f"0x{basic.ExitStatus:08x}"),
        ("BasicInfo.PebBaseAddress", f"0x{basic.PebBaseAddress:0{pointer}x}"),
        ("BasicInfo.AffinityMask", f"{basic.AffinityMask:#x}"),
        ("BasicInfo.BasePriority", str(basic.BasePriority)),
        ("BasicInfo.UniqueProcessId", str(basic.UniqueProcessId)),
        ("BasicInfo.InheritedFromUniqueProcessId", str(basic.InheritedFromUniqueProcessId)),
        ("Flags", f"0x{info.flags_value:08x}"),
        *((f"  {name}", str(info.flags[name])) for name in FLAG_NAMES),
        ("  SpareBits", _spare_text(info)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"PROCESS_EXTENDED_BASIC_INFORMATION ({info.arch}, "
             f"{EXTENDED_SIZES[info.arch]} bytes)"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    if info.nonzero_padding:
        offsets = ", ".join(f"{offset:#04x}" for offset in info.nonzero_padding)
        lines.append(f"padding not zero at byte offsets {offsets}")
    return "\n".join(lines)


def _spare_text(info: ExtendedBasicInformation) -> str:
    if not info.spare_bits:
        return "0"
    bits = ", ".join(str(bit) for bit in info.set_spare_bits)
    return f"{info.spare_bits:#x} (set: Flags bit {bits}; no Windows release iumdump knows names them)"
