"""PS_PROTECTION: the protection byte of a process (``_EPROCESS.Protection``).

Source: Microsoft's public symbols for ntoskrnl (``_PS_PROTECTION``, enums ``_PS_PROTECTED_TYPE``
and ``_PS_PROTECTED_SIGNER``, as in the symbol tables under ../shared/isf) and the documented
``PS_PROTECTION`` of the Windows SDK: ``union { UCHAR Level; struct { UCHAR Type : 3;
UCHAR Audit : 1; UCHAR Signer : 4; }; }``.

Text form (DESIGN §5): ``Type/Signer`` with ``+Audit`` appended when the audit bit is set, and
plain ``None`` for an unprotected process. The rule, chosen so that no byte loses information:

- ``/Signer`` is written whenever the process is protected (Type != 0) *or* the signer is
  nonzero, so ``0x41`` is ``ProtectedLight/Lsa``, ``0x02`` is ``Protected/None`` and the anomaly
  ``0x40`` (a signer without a type) is ``None/Lsa`` rather than a misleading ``None``;
- values without a Windows name print as numbers: ``Type3``…``Type7``, ``Signer9``…``Signer15``.

Every one of the 256 bytes therefore has its own text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from construct import ConstructError

from ..errors import InvalidInputError
from .bitfields import BitField, construct_message, lsb_first_bitfield_word


class PsProtectedType(IntEnum):
    """``_PS_PROTECTED_TYPE`` (ntoskrnl symbols); ``PsProtectedTypeMax`` (3) is not a level."""

    PsProtectedTypeNone = 0
    PsProtectedTypeProtectedLight = 1
    PsProtectedTypeProtected = 2


class PsProtectedSigner(IntEnum):
    """``_PS_PROTECTED_SIGNER`` (ntoskrnl symbols); ``PsProtectedSignerMax`` (9) is not a signer."""

    PsProtectedSignerNone = 0
    PsProtectedSignerAuthenticode = 1
    PsProtectedSignerCodeGen = 2
    PsProtectedSignerAntimalware = 3
    PsProtectedSignerLsa = 4
    PsProtectedSignerWindows = 5
    PsProtectedSignerWinTcb = 6
    PsProtectedSignerWinSystem = 7
    PsProtectedSignerApp = 8


PS_PROTECTION = lsb_first_bitfield_word(
    [BitField("Type", 0, 3), BitField("Audit", 3), BitField("Signer", 4, 4)], 1)


def _type_name(value: int) -> str:
    try:
        return PsProtectedType(value).name.removeprefix("PsProtectedType")
    except ValueError:
        return f"Type{value}"


def _signer_name(value: int) -> str:
    try:
        return PsProtectedSigner(value).name.removeprefix("PsProtectedSigner")
    except ValueError:
        return f"Signer{value}"


@dataclass(frozen=True)
class Protection:
    """One decoded PS_PROTECTION byte. ``type`` and ``signer`` stay plain ints so that values
    Windows does not name (Type 3–7, Signer 9–15) survive; ``type_name``/``signer_name`` name
    them."""

    type: int
    audit: bool
    signer: int

    @property
    def level(self) -> int:
        """The byte (``PS_PROTECTION.Level``)."""
        return build_protection(self.type, self.signer, audit=self.audit)

    @property
    def is_protected(self) -> bool:
        """What ``IsProtectedProcess`` reports: any nonzero Type."""
        return self.type != 0

    @property
    def type_name(self) -> str:
        return _type_name(self.type)

    @property
    def signer_name(self) -> str:
        return _signer_name(self.signer)

    @property
    def text(self) -> str:
        text = self.type_name
        if self.type != 0 or self.signer != 0:
            text += "/" + self.signer_name
        if self.audit:
            text += "+Audit"
        return text

    def __str__(self) -> str:
        return self.text


def _level_byte(level: int | bytes) -> bytes:
    if isinstance(level, (bytes, bytearray)):
        if len(level) != 1:
            raise InvalidInputError(f"PS_PROTECTION is 1 byte, not {len(level)}",
                                    expected=1, actual=len(level))
        return bytes(level)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 0xFF:
        raise InvalidInputError(f"PS_PROTECTION level must be a byte (0-255), not {level!r}",
                                actual=level)
    return bytes([level])


def parse_protection(level: int | bytes) -> Protection:
    """Decode a PS_PROTECTION byte (an int 0–255 or one byte)."""
    parsed = PS_PROTECTION.parse(_level_byte(level))
    return Protection(type=parsed.Type, audit=parsed.Audit, signer=parsed.Signer)


def build_protection(type: int, signer: int, *, audit: bool = False) -> int:
    """The PS_PROTECTION byte for ``type``/``signer`` (enum members or ints)."""
    try:
        raw = PS_PROTECTION.build({"Type": int(type), "Audit": bool(audit), "Signer": int(signer)})
    except ConstructError as exc:
        raise InvalidInputError(f"PS_PROTECTION cannot hold Type={type!r} Signer={signer!r}: "
                                f"{construct_message(exc)}",
                                actual=(type, signer)) from None
    return raw[0]


def protection_text(level: int | bytes) -> str:
    """``0x41`` → ``ProtectedLight/Lsa``; ``0`` → ``None``; audit bit → ``+Audit`` suffix."""
    return parse_protection(level).text
