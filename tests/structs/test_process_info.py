"""PROCESS_BASIC_INFORMATION / PROCESS_EXTENDED_BASIC_INFORMATION, x64 and x86."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iumdump.errors import InvalidInputError, TruncatedDumpError
from iumdump.structs.process_info import (
    FLAG_NAMES, PROCESS_BASIC_INFORMATION, PROCESS_EXTENDED_BASIC_INFORMATION, BasicInformation,
    ExtendedBasicInformation, build_basic_information, build_extended_basic_information,
    parse_basic_information, parse_extended_basic_information)

# Byte offsets of the padding of each layout (DESIGN §4): ExitStatus and BasePriority are LONGs
# followed by 4 bytes on x64, and the x64 extended structure has 4 bytes of tail padding.
BASIC_PADDING = {"x64": [*range(0x04, 0x08), *range(0x1C, 0x20)], "x86": []}
EXTENDED_PADDING = {"x64": [*(0x08 + i for i in BASIC_PADDING["x64"]), *range(0x3C, 0x40)],
                    "x86": []}
POINTER_BITS = {"x64": 64, "x86": 32}


def test_sizes():
    assert PROCESS_BASIC_INFORMATION["x64"].sizeof() == 0x30
    assert PROCESS_BASIC_INFORMATION["x86"].sizeof() == 0x18
    assert PROCESS_EXTENDED_BASIC_INFORMATION["x64"].sizeof() == 0x40
    assert PROCESS_EXTENDED_BASIC_INFORMATION["x86"].sizeof() == 0x20


def test_flag_bits_are_those_of_design_section_4():
    info = ExtendedBasicInformation(flags={"IsSecureProcess": True})
    assert info.flags_value == 1 << 7
    for bit, name in enumerate(FLAG_NAMES):
        assert ExtendedBasicInformation(flags={name: True}).flags_value == 1 << bit
    assert FLAG_NAMES[0] == "IsProtectedProcess" and FLAG_NAMES[9] == "IsTrustedApp"


def basic_infos(arch):
    pointer = st.integers(0, 2 ** POINTER_BITS[arch] - 1)
    return st.builds(BasicInformation, ExitStatus=st.integers(0, 2 ** 32 - 1),
                     PebBaseAddress=pointer, AffinityMask=pointer,
                     BasePriority=st.integers(-2 ** 31, 2 ** 31 - 1),
                     UniqueProcessId=pointer, InheritedFromUniqueProcessId=pointer)


def extended_infos(arch):
    return st.builds(ExtendedBasicInformation, basic_info=basic_infos(arch),
                     flags=st.fixed_dictionaries({name: st.booleans() for name in FLAG_NAMES}),
                     spare_bits=st.integers(0, 2 ** 22 - 1), arch=st.just(arch),
                     size=st.integers(0, 2 ** POINTER_BITS[arch] - 1))


def zero_padding(arch, table):
    """Windows zero-fills padding; parsing reports padding that is not zero (tested below)."""
    return lambda data: bytes(0 if i in table[arch] else b for i, b in enumerate(data))


@pytest.mark.parametrize("arch", ["x64", "x86"])
@given(data=st.data())
def test_extended_parse_of_build_is_identity(arch, data):
    info = data.draw(extended_infos(arch))
    raw = build_extended_basic_information(info)
    assert len(raw) == PROCESS_EXTENDED_BASIC_INFORMATION[arch].sizeof()
    assert parse_extended_basic_information(raw, arch) == info
    assert info.to_bytes() == raw


@pytest.mark.parametrize("arch", ["x64", "x86"])
@given(data=st.data())
def test_extended_build_of_parse_is_identity(arch, data):
    size = PROCESS_EXTENDED_BASIC_INFORMATION[arch].sizeof()
    raw = data.draw(st.binary(min_size=size, max_size=size).map(zero_padding(arch, EXTENDED_PADDING)))
    info = parse_extended_basic_information(raw, arch)
    assert build_extended_basic_information(info) == raw
    assert info.nonzero_padding == ()


@pytest.mark.parametrize("arch", ["x64", "x86"])
@given(data=st.data())
def test_basic_round_trips(arch, data):
    info = data.draw(basic_infos(arch))
    raw = build_basic_information(info, arch)
    assert len(raw) == PROCESS_BASIC_INFORMATION[arch].sizeof()
    assert parse_basic_information(raw, arch) == info
    size = len(raw)
    raw = data.draw(st.binary(min_size=size, max_size=size).map(zero_padding(arch, BASIC_PADDING)))
    assert build_basic_information(parse_basic_information(raw, arch), arch) == raw


def test_construct_round_trips_with_the_same_declaration():
    """The construct definitions themselves (not only the dataclass wrappers) round-trip."""
    for arch in ("x64", "x86"):
        definition = PROCESS_EXTENDED_BASIC_INFORMATION[arch]
        raw = bytes(range(1, definition.sizeof() + 1))
        raw = zero_padding(arch, EXTENDED_PADDING)(raw)
        assert definition.build(definition.parse(raw)) == raw


def test_field_offsets_x64():
    info = ExtendedBasicInformation(BasicInformation(
        ExitStatus=0x11111111, PebBaseAddress=0x2222222222222222, AffinityMask=0x3333333333333333,
        BasePriority=0x44444444, UniqueProcessId=0x5555555555555555,
        InheritedFromUniqueProcessId=0x6666666666666666), flags={"IsFrozen": True},
        spare_bits=1)
    raw = info.to_bytes()
    assert raw[0x00:0x08] == (0x40).to_bytes(8, "little")
    assert raw[0x08:0x0C] == b"\x11" * 4 and raw[0x0C:0x10] == bytes(4)
    assert raw[0x10:0x18] == b"\x22" * 8
    assert raw[0x18:0x20] == b"\x33" * 8
    assert raw[0x20:0x24] == b"\x44" * 4 and raw[0x24:0x28] == bytes(4)
    assert raw[0x28:0x30] == b"\x55" * 8
    assert raw[0x30:0x38] == b"\x66" * 8
    assert raw[0x38:0x3C] == (1 << 4 | 1 << 10).to_bytes(4, "little")
    assert raw[0x3C:0x40] == bytes(4)


def test_field_offsets_x86():
    info = ExtendedBasicInformation(BasicInformation(
        ExitStatus=0x11111111, PebBaseAddress=0x22222222, AffinityMask=0x33333333,
        BasePriority=0x44444444, UniqueProcessId=0x55555555,
        InheritedFromUniqueProcessId=0x66666666), flags={"IsTrustedApp": True}, arch="x86")
    raw = info.to_bytes()
    assert raw == (0x20).to_bytes(4, "little") + bytes.fromhex(
        "11111111" "22222222" "33333333" "44444444" "55555555" "66666666") \
        + (1 << 9).to_bytes(4, "little")


def test_negative_exit_status_is_the_same_ntstatus():
    assert BasicInformation(ExitStatus=-1073741819) == BasicInformation(ExitStatus=0xC0000005)


def test_negative_base_priority_survives():
    info = BasicInformation(BasePriority=-2)
    assert parse_basic_information(build_basic_information(info, "x86"), "x86") == info


def test_missing_flags_are_false_and_unknown_flags_build_as_zero():
    info = ExtendedBasicInformation(flags={"IsSecureProcess": True, "IsBackground": None})
    assert info.flags == {name: name == "IsSecureProcess" for name in FLAG_NAMES}


def test_unknown_flag_name_is_refused():
    with pytest.raises(InvalidInputError, match="IsEnclave"):
        ExtendedBasicInformation(flags={"IsEnclave": True})


def test_unknown_arch_is_refused():
    with pytest.raises(InvalidInputError, match="arm64"):
        ExtendedBasicInformation(arch="arm64")
    with pytest.raises(InvalidInputError, match="arm64"):
        parse_extended_basic_information(bytes(64), "arm64")


def test_spare_bits_are_kept_and_located():
    raw = bytearray(ExtendedBasicInformation().to_bytes())
    raw[0x38:0x3C] = (1 << 7 | 1 << 10 | 1 << 31).to_bytes(4, "little")
    info = parse_extended_basic_information(bytes(raw))
    assert info.flags["IsSecureProcess"]
    assert info.spare_bits == 1 | 1 << 21
    assert info.set_spare_bits == (10, 31)
    assert info.to_bytes() == bytes(raw)


def test_spare_bits_must_fit():
    with pytest.raises(InvalidInputError, match="22 bits"):
        ExtendedBasicInformation(spare_bits=1 << 22)


def test_nonzero_padding_is_reported():
    raw = bytearray(ExtendedBasicInformation().to_bytes())
    raw[0x0D] = 0xAA
    raw[0x3F] = 0x01
    info = parse_extended_basic_information(bytes(raw))
    assert info.nonzero_padding == (0x0D, 0x3F)


def test_value_too_wide_for_x86_is_one_line_error():
    info = ExtendedBasicInformation(BasicInformation(UniqueProcessId=1 << 32), arch="x86")
    with pytest.raises(InvalidInputError) as raised:
        info.to_bytes()
    assert "UniqueProcessId" in str(raised.value) and "\n" not in str(raised.value)


def test_short_and_long_buffers():
    with pytest.raises(TruncatedDumpError):
        parse_extended_basic_information(bytes(63), "x64")
    with pytest.raises(InvalidInputError):
        parse_extended_basic_information(bytes(65), "x64")
    with pytest.raises(TruncatedDumpError):
        parse_basic_information(bytes(0x17), "x86")
