"""PS_PROTECTION: the byte, its enums and its text form (DESIGN §5)."""

from __future__ import annotations

import pytest

from iumdump.errors import InvalidInputError
from iumdump.structs.protection import (PS_PROTECTION, PsProtectedSigner, PsProtectedType,
                                        build_protection, parse_protection, protection_text)


def test_size_is_one_byte():
    assert PS_PROTECTION.sizeof() == 1


@pytest.mark.parametrize("level, text", [
    (0x00, "None"),
    (0x41, "ProtectedLight/Lsa"),        # lsass under RunAsPPL
    (0x61, "ProtectedLight/WinTcb"),     # csrss
    (0x72, "Protected/WinSystem"),       # System
    (0x31, "ProtectedLight/Antimalware"),
    (0x81, "ProtectedLight/App"),
    (0x49, "ProtectedLight/Lsa+Audit"),
    (0x08, "None+Audit"),
    (0x02, "Protected/None"),            # protected but unsigned: the signer is still shown
    (0x40, "None/Lsa"),                  # a signer without a type is not hidden behind "None"
    (0x91, "ProtectedLight/Signer9"),    # signers past App print as numbers
    (0xF2, "Protected/Signer15"),
    (0x03, "Type3/None"),                # types past Protected print as numbers
    (0xFF, "Type7/Signer15+Audit"),
])
def test_text(level, text):
    assert protection_text(level) == text
    assert protection_text(bytes([level])) == text


def test_every_byte_has_its_own_text():
    """The text rule loses no information: 256 bytes, 256 texts."""
    assert len({protection_text(level) for level in range(256)}) == 256


def test_fields_and_round_trip_of_every_byte():
    for level in range(256):
        protection = parse_protection(level)
        assert (protection.type, protection.audit, protection.signer) == \
            (level & 7, bool(level & 8), level >> 4)
        assert protection.level == level
        assert PS_PROTECTION.build(PS_PROTECTION.parse(bytes([level]))) == bytes([level])
        assert build_protection(protection.type, protection.signer,
                                audit=protection.audit) == level


def test_is_protected_follows_type_only():
    assert not parse_protection(0x40).is_protected
    assert parse_protection(0x02).is_protected
    assert parse_protection(0x41).is_protected


def test_build_from_enums():
    assert build_protection(PsProtectedType.PsProtectedTypeProtectedLight,
                            PsProtectedSigner.PsProtectedSignerLsa) == 0x41
    assert build_protection(PsProtectedType.PsProtectedTypeProtected,
                            PsProtectedSigner.PsProtectedSignerWinSystem) == 0x72
    assert build_protection(0, 0, audit=True) == 0x08


@pytest.mark.parametrize("type_, signer", [(8, 0), (-1, 0), (0, 16), (0, -1)])
def test_build_rejects_values_the_bits_cannot_hold(type_, signer):
    with pytest.raises(InvalidInputError) as info:
        build_protection(type_, signer)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("level", [-1, 256, b"", b"\x41\x00", 1.0, None, True])
def test_parse_rejects_what_is_not_a_byte(level):
    with pytest.raises(InvalidInputError):
        parse_protection(level)


def test_enums_match_the_kernel_symbols(real_isf):
    """Every value the kernel's symbols name has the same name here; below the kernel's *Max*
    nothing is missing. (14393 stops at WinSystem: its PsProtectedSignerMax is 8, and App came
    later, so 8 is ``Max`` there and ``App`` from 19041 on.)"""
    for enum, isf_name in ((PsProtectedType, "_PS_PROTECTED_TYPE"),
                           (PsProtectedSigner, "_PS_PROTECTED_SIGNER")):
        constants = dict(real_isf.data["enums"][isf_name]["constants"])
        maximum = constants.pop(next(name for name in constants if name.endswith("Max")))
        assert constants == {member.name: member.value for member in enum
                             if member.value < maximum}


def test_bit_layout_matches_the_kernel_symbols(real_isf):
    bits = {f.name: (f.bit_position, f.bit_length)
            for f in real_isf.bitfields_at("_PS_PROTECTION", "Type")}
    assert bits == {"Type": (0, 3), "Audit": (3, 1), "Signer": (4, 4)}
    assert real_isf.size("_PS_PROTECTION") == PS_PROTECTION.sizeof()
