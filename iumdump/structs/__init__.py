"""construct definitions of the Windows and x64 structures iumdump reads and writes.

Each structure parses and builds from one declaration; the public functions return dataclasses.
Paging/EPT entries (``paging``) and crash-dump headers (``crashdump``) are used by module.
"""

from .flagwords import FlagWord, flag_word
from .process_info import (
    EXTENDED_SIZES,
    FLAG_NAMES,
    PROCESS_BASIC_INFORMATION,
    PROCESS_EXTENDED_BASIC_INFORMATION,
    BasicInformation,
    ExtendedBasicInformation,
    build_basic_information,
    build_extended_basic_information,
    parse_basic_information,
    parse_extended_basic_information,
)
from .protection import (
    PS_PROTECTION,
    Protection,
    PsProtectedSigner,
    PsProtectedType,
    build_protection,
    parse_protection,
    protection_text,
)

__all__ = [
    "BasicInformation", "EXTENDED_SIZES", "ExtendedBasicInformation", "FLAG_NAMES", "FlagWord",
    "PROCESS_BASIC_INFORMATION", "PROCESS_EXTENDED_BASIC_INFORMATION", "PS_PROTECTION",
    "Protection", "PsProtectedSigner", "PsProtectedType", "build_basic_information",
    "build_extended_basic_information", "build_protection", "flag_word", "parse_basic_information",
    "parse_extended_basic_information", "parse_protection", "protection_text",
]
