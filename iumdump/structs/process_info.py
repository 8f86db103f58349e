"""PROCESS_BASIC_INFORMATION and PROCESS_EXTENDED_BASIC_INFORMATION, x64 and x86.

These are what ``NtQueryInformationProcess(ProcessBasicInformation)`` fills: the plain structure
when the caller passes its size, the extended one when the caller passes the larger size (the
kernel then writes ``Size`` and ``Flags`` too). The plugins build the x64 bytes from a dump;
``iumdump decode`` parses bytes captured on a live system.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping

from construct import (Construct, ConstructError, Int32sl, Int32ul, Int64ul, Padding, Struct)

from ..errors import InvalidInputError, TruncatedDumpError
from .bitfields import BitField, construct_message, lsb_first_bitfield_word

ARCHES = ("x64", "x86")

# Source: Microsoft Learn, "NtQueryInformationProcess function (winternl.h)", ProcessBasicInformation:
# { NTSTATUS ExitStatus; PPEB PebBaseAddress; ULONG_PTR AffinityMask; KPRIORITY BasePriority;
# ULONG_PTR UniqueProcessId; ULONG_PTR InheritedFromUniqueProcessId; } (the field names are those
# of phnt's ntpsapi.h; winternl.h calls the undocumented ones Reserved*). NTSTATUS and KPRIORITY
# are LONGs; on x64 each is followed by 4 bytes of padding so the next pointer is 8-aligned.
# ExitStatus is kept unsigned so that it reads as the familiar 0xC0000005 / 0x103 (STATUS_PENDING).
PROCESS_BASIC_INFORMATION = {
    "x64": Struct(
        "ExitStatus" / Int32ul,
        Padding(4),
        "PebBaseAddress" / Int64ul,
        "AffinityMask" / Int64ul,
        "BasePriority" / Int32sl,
        Padding(4),
        "UniqueProcessId" / Int64ul,
        "InheritedFromUniqueProcessId" / Int64ul,
    ),
    "x86": Struct(
        "ExitStatus" / Int32ul,
        "PebBaseAddress" / Int32ul,
        "AffinityMask" / Int32ul,
        "BasePriority" / Int32sl,
        "UniqueProcessId" / Int32ul,
        "InheritedFromUniqueProcessId" / Int32ul,
    ),
}

# Source: phnt ntpsapi.h (Process Hacker / System Informer), PROCESS_EXTENDED_BASIC_INFORMATION:
# SIZE_T Size; PROCESS_BASIC_INFORMATION BasicInfo; union { ULONG Flags; struct { IsProtectedProcess
# … IsTrustedApp : 1; SpareBits : 22; }; }. Bits as in DESIGN §4 (IsSecureProcess since 1507,
# IsSubsystemProcess since 1607, IsTrustedApp since 24H2). The x64 structure is 8-aligned, hence
# 4 bytes of tail padding after Flags.
FLAG_NAMES = (
    "IsProtectedProcess", "IsWow64Process", "IsProcessDeleting", "IsCrossSessionCreate",
    "IsFrozen", "IsBackground", "IsStronglyNamed", "IsSecureProcess", "IsSubsystemProcess",
    "IsTrustedApp",
)
SPARE_BITS_SHIFT = len(FLAG_NAMES)
SPARE_BITS_LENGTH = 32 - SPARE_BITS_SHIFT
EXTENDED_FLAGS = lsb_first_bitfield_word(
    [*(BitField(name, bit) for bit, name in enumerate(FLAG_NAMES)),
     BitField("SpareBits", SPARE_BITS_SHIFT, SPARE_BITS_LENGTH)], 4)

PROCESS_EXTENDED_BASIC_INFORMATION = {
    "x64": Struct(
        "Size" / Int64ul,
        "BasicInfo" / PROCESS_BASIC_INFORMATION["x64"],
        "Flags" / EXTENDED_FLAGS,
        Padding(4),
    ),
    "x86": Struct(
        "Size" / Int32ul,
        "BasicInfo" / PROCESS_BASIC_INFORMATION["x86"],
        "Flags" / EXTENDED_FLAGS,
    ),
}

BASIC_SIZES = {arch: PROCESS_BASIC_INFORMATION[arch].sizeof() for arch in ARCHES}
EXTENDED_SIZES = {arch: PROCESS_EXTENDED_BASIC_INFORMATION[arch].sizeof() for arch in ARCHES}


@dataclass(frozen=True)
class BasicInformation:
    """PROCESS_BASIC_INFORMATION; the attributes keep the Windows field names.

    ExitStatus is an NTSTATUS (a LONG): a negative value is stored as its unsigned bit pattern,
    so ``-1073741819`` and ``0xC0000005`` are the same status.
    """

    ExitStatus: int = 0
    PebBaseAddress: int = 0
    AffinityMask: int = 0
    BasePriority: int = 0
    UniqueProcessId: int = 0
    InheritedFromUniqueProcessId: int = 0

    def __post_init__(self) -> None:
        if -(1 << 31) <= self.ExitStatus < 0:
            object.__setattr__(self, "ExitStatus", self.ExitStatus + (1 << 32))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ExtendedBasicInformation:
    """PROCESS_EXTENDED_BASIC_INFORMATION of one architecture.

    ``flags`` maps each of the ten flag names to a bool (missing names are False; an unknown
    flag given as None builds as 0, since the bytes cannot say "unknown"). ``spare_bits`` is the
    22-bit SpareBits value, kept so that bits Windows sets in a later release are reported rather
    than dropped. ``size`` defaults to the layout's size, which is what Windows writes.
    ``nonzero_padding`` lists the offsets of padding bytes that held data in a parsed buffer.
    """

    basic_info: BasicInformation = field(default_factory=BasicInformation)
    flags: Mapping[str, bool | None] = field(default_factory=dict)
    spare_bits: int = 0
    arch: str = "x64"
    size: int | None = None
    nonzero_padding: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_arch(self.arch)
        unknown = sorted(set(self.flags) - set(FLAG_NAMES))
        if unknown:
            raise InvalidInputError(f"no such PROCESS_EXTENDED_BASIC_INFORMATION flag: "
                                    f"{', '.join(unknown)}", actual=unknown)
        object.__setattr__(self, "flags", {name: bool(self.flags.get(name)) for name in FLAG_NAMES})
        if not 0 <= self.spare_bits < 1 << SPARE_BITS_LENGTH:
            raise InvalidInputError(f"SpareBits is {SPARE_BITS_LENGTH} bits wide; "
                                    f"{self.spare_bits:#x} does not fit", actual=self.spare_bits)
        if self.size is None:
            object.__setattr__(self, "size", EXTENDED_SIZES[self.arch])

    @property
    def flags_value(self) -> int:
        """The Flags ULONG."""
        word = EXTENDED_FLAGS.build({**self.flags, "SpareBits": self.spare_bits})
        return int.from_bytes(word, "little")

    @property
    def set_spare_bits(self) -> tuple[int, ...]:
        """Positions (in the Flags ULONG) of the SpareBits that are set."""
        return tuple(SPARE_BITS_SHIFT + i for i in range(SPARE_BITS_LENGTH)
                     if self.spare_bits >> i & 1)

    def to_bytes(self) -> bytes:
        return build_extended_basic_information(self)


def _check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise InvalidInputError(f"unknown architecture {arch!r}; expected x64 or x86",
                                expected=ARCHES, actual=arch)


def _build(construct: Construct, values: dict, what: str, arch: str) -> bytes:
    try:
        return construct.build(values)
    except ConstructError as exc:
        raise InvalidInputError(f"cannot build {arch} {what}: {construct_message(exc)}") from None


def _parse(construct: Construct, data: bytes, what: str, arch: str):
    """Parse exactly ``construct.sizeof()`` bytes; report the padding bytes that held data."""
    expected = construct.sizeof()
    if len(data) < expected:
        raise TruncatedDumpError(f"{arch} {what} is {expected} bytes; got only {len(data)}",
                                 expected=expected, actual=len(data))
    if len(data) > expected:
        raise InvalidInputError(f"{arch} {what} is {expected} bytes; got {len(data)}",
                                expected=expected, actual=len(data))
    try:
        parsed = construct.parse(data)
        rebuilt = construct.build(parsed)
    except ConstructError as exc:
        raise InvalidInputError(f"cannot parse {arch} {what}: {construct_message(exc)}") from None
    # Every named field round-trips, so bytes that differ after a rebuild are padding.
    padding = tuple(i for i, (a, b) in enumerate(zip(data, rebuilt)) if a != b)
    return parsed, padding


def _basic_from(parsed) -> BasicInformation:
    return BasicInformation(**{f.name: parsed[f.name] for f in fields(BasicInformation)})


def build_basic_information(info: BasicInformation, arch: str = "x64") -> bytes:
    """PROCESS_BASIC_INFORMATION bytes as NtQueryInformationProcess fills them."""
    _check_arch(arch)
    return _build(PROCESS_BASIC_INFORMATION[arch], info.as_dict(), "PROCESS_BASIC_INFORMATION",
                  arch)


def parse_basic_information(data: bytes, arch: str = "x64") -> BasicInformation:
    _check_arch(arch)
    parsed, _ = _parse(PROCESS_BASIC_INFORMATION[arch], bytes(data), "PROCESS_BASIC_INFORMATION",
                       arch)
    return _basic_from(parsed)


def build_extended_basic_information(info: ExtendedBasicInformation) -> bytes:
    """PROCESS_EXTENDED_BASIC_INFORMATION bytes (the plugins' ``Bytes`` column, for x64)."""
    values = {
        "Size": info.size,
        "BasicInfo": info.basic_info.as_dict(),
        "Flags": {**info.flags, "SpareBits": info.spare_bits},
    }
    return _build(PROCESS_EXTENDED_BASIC_INFORMATION[info.arch], values,
                  "PROCESS_EXTENDED_BASIC_INFORMATION", info.arch)


def parse_extended_basic_information(data: bytes, arch: str = "x64") -> ExtendedBasicInformation:
    """Decode exactly one structure of ``arch``; the Size field is returned, not checked."""
    _check_arch(arch)
    parsed, padding = _parse(PROCESS_EXTENDED_BASIC_INFORMATION[arch], bytes(data),
                             "PROCESS_EXTENDED_BASIC_INFORMATION", arch)
    return ExtendedBasicInformation(
        basic_info=_basic_from(parsed.BasicInfo),
        flags={name: parsed.Flags[name] for name in FLAG_NAMES},
        spare_bits=parsed.Flags.SpareBits,
        arch=arch,
        size=parsed.Size,
        nonzero_padding=padding,
    )
