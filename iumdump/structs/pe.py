"""PE/COFF structures that Volatility's pe.json does not define: the export directory.

Source: Microsoft PE/COFF specification, §6.3 "The .edata Section (Image Only)" — the Export
Directory Table (IMAGE_EXPORT_DIRECTORY in winnt.h, 40 bytes on both architectures: every field
is a DWORD or WORD, addresses are RVAs), followed by the Export Address Table (a DWORD RVA per
ordinal), the Name Pointer Table (a DWORD RVA per name, names in ascending lexical order so a
loader can binary-search them), the Ordinal Table (a WORD per name: its index into the address
table) and the NUL-terminated names. The other PE headers are built from Volatility's pe.json.
"""

from __future__ import annotations

from construct import Int16ul, Int32ul, Struct

# IMAGE_FILE_HEADER.Machine (Microsoft, "PE Format", Machine Types; winnt.h IMAGE_FILE_MACHINE_*),
# also the machine a crash dump header and KUSER_SHARED_DATA.ImageNumberLow name.
IMAGE_FILE_MACHINE_I386 = 0x014C
IMAGE_FILE_MACHINE_AMD64 = 0x8664

IMAGE_DIRECTORY_ENTRY_EXPORT = 0  # winnt.h: index of the export directory in DataDirectory
IMAGE_DIRECTORY_ENTRY_DEBUG = 6

IMAGE_EXPORT_DIRECTORY = Struct(
    "Characteristics" / Int32ul,
    "TimeDateStamp" / Int32ul,
    "MajorVersion" / Int16ul,
    "MinorVersion" / Int16ul,
    "Name" / Int32ul,  # RVA of the image's own name, e.g. "ntoskrnl.exe"
    "Base" / Int32ul,  # the ordinal of the address table's first entry
    "NumberOfFunctions" / Int32ul,
    "NumberOfNames" / Int32ul,
    "AddressOfFunctions" / Int32ul,
    "AddressOfNames" / Int32ul,
    "AddressOfNameOrdinals" / Int32ul,
)
IMAGE_EXPORT_DIRECTORY_SIZE = 40

__all__ = ["IMAGE_DIRECTORY_ENTRY_DEBUG", "IMAGE_DIRECTORY_ENTRY_EXPORT", "IMAGE_EXPORT_DIRECTORY",
           "IMAGE_EXPORT_DIRECTORY_SIZE", "IMAGE_FILE_MACHINE_AMD64", "IMAGE_FILE_MACHINE_I386"]
