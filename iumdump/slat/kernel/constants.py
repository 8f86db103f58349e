"""Constants from Windows headers and documentation, and the small encodings the kernel's
builders share (FILETIME, MmProtectToValue, which build a symbol table describes)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import volatility3.framework.symbols.windows as _volatility_windows_symbols

from ...isf import SymbolTable
from ...structs.address_space import MM_SHARED_USER_DATA_VA
from ...structs.paging import PAGE_SIZE
from ...structs.pe import IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_I386

PROCESSOR_ARCHITECTURE_AMD64 = 9
KUSER_SHARED_DATA_USER = MM_SHARED_USER_DATA_VA  # structs.address_space, with its sources
MM_HIGHEST_USER_ADDRESS = 0x00007FFFFFFEFFFF
MM_USER_PROBE_ADDRESS = 0x00007FFFFFFF0000
MM_SYSTEM_RANGE_START = 0xFFFF800000000000
SYSTEM_DTB = 0x1AD000  # where Windows 10 x64 keeps the System PML4 (Volatility scans 0x150000+)
LOW_STUB = 0x1000  # PROCESSOR_START_BLOCK in the second page of physical memory
STATUS_PENDING = 0x103
DISPATCHER_PROCESS = 3  # KOBJECTS: ProcessObject
DISPATCHER_THREAD = 6  # KOBJECTS: ThreadObject
THREAD_WAITING = 5  # KTHREAD_STATE: Waiting
WAIT_USER_REQUEST = 6  # KWAIT_REASON: UserRequest
IO_TYPE_FILE = 5  # wdm.h
VAD_IMAGE_MAP = 2  # _MI_VAD_TYPE: VadImageMap
# _POOL_HEADER.PoolType of an in-use block, Vista+ headers: nonzero, even for non-paged and odd
# for paged pool (Volatility 3 extensions/pool.py, POOL_HEADER_VISTA.is_nonpaged_pool).
POOL_NONPAGED = 2
POOL_PAGED = 3
POOL_BLOCK = 16  # x64 pool granularity (POOL_BLOCK_SHIFT 4)
BAD_TYPE_POINTER = 0xBAD0B0B0  # ObTypeIndexTable[1] on Windows 10
NO_ACCESS = 0  # HV_MAP_GPA_* mask with no bit set: VTL0 may not read, write or execute
SHARED_CONTENT = "shared"  # a region's frames are KUSER_SHARED_DATA's (added by the kernel)
KERNEL_STACK_SIZE = 0x6000  # wdm.h, AMD64
# Where InitialStack and a waiting thread's KernelStack sit below StackBase: inside the stack,
# room for the initial frames and a saved context (plausible values, not one build's).
INITIAL_STACK_RESERVE = 0x200
WAIT_FRAME_SIZE = 0x500
HAL_IMAGE_SIZE = 0x100000
KERNEL_LOW_FRAMES = 0x1000  # the bulk area leaves the first 16 MiB to the kernel's frames
MMPFN_SIZE = 0x30  # sizeof(_MMPFN) in the 14393 and 19041 x64 symbol tables
HANDLE_TABLE_ENTRIES = PAGE_SIZE // 16  # _HANDLE_TABLE_ENTRY is 16 bytes on x64
PROCESS_ALL_ACCESS = 0x1FFFFF  # winnt.h (Vista+): STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0xFFFF

# MmProtectToValue: MM_* protection index → WinNT PAGE_* (Windows Internals, ch. 5 "VADs";
# Volatility 2's vadinfo.PROTECT_FLAGS).
_PAGE = {"PAGE_NOACCESS": 0x01, "PAGE_READONLY": 0x02, "PAGE_READWRITE": 0x04,
         "PAGE_WRITECOPY": 0x08, "PAGE_EXECUTE": 0x10, "PAGE_EXECUTE_READ": 0x20,
         "PAGE_EXECUTE_READWRITE": 0x40, "PAGE_EXECUTE_WRITECOPY": 0x80}
_MM_PROTECTIONS = ("PAGE_NOACCESS", "PAGE_READONLY", "PAGE_EXECUTE", "PAGE_EXECUTE_READ",
                   "PAGE_READWRITE", "PAGE_WRITECOPY", "PAGE_EXECUTE_READWRITE",
                   "PAGE_EXECUTE_WRITECOPY")
MM_PROTECTION_INDEX = {name: index for index, name in enumerate(_MM_PROTECTIONS)}


def mm_protect_to_value() -> list[int]:
    values = [_PAGE[name] for name in _MM_PROTECTIONS]
    nocache, guard, writecombine = 0x200, 0x100, 0x400
    table = list(values)
    for modifier in (nocache, guard, writecombine):
        table += [_PAGE["PAGE_NOACCESS"]] + [v | modifier for v in values[1:]]
    return table


# Object types by index, as Windows 10 numbers them (2 Type … 8 Thread are the same on every
# Windows 10 build; WinDbg "!object \ObjectTypes").
OBJECT_TYPES = ("Type", "Directory", "SymbolicLink", "Token", "Job", "Process", "Thread",
                "Partition", "UserApcReserve", "IoCompletionReserve", "DebugObject", "Event",
                "Mutant", "Callback", "Semaphore", "Timer", "Session", "Key", "File", "Section",
                "Device", "Driver")
OBJECT_TYPE_TAGS = {"Process": b"Proc", "Thread": b"Thre", "File": b"File", "Type": b"ObjT",
                    "Token": b"Toke", "Job": b"Job ", "Directory": b"Dire", "Event": b"Even",
                    "Mutant": b"Muta", "Section": b"Sect", "Key": b"Key ", "Session": b"Sess",
                    "Driver": b"Driv", "Device": b"Devi"}
FIRST_OBJECT_TYPE_INDEX = 2

# Optional object headers in InfoMask bit order, as Volatility derives them (extensions/pool.py):
# the bit of each is its position among those the symbol table defines.
OPTIONAL_HEADERS = ("CREATOR_INFO", "NAME_INFO", "HANDLE_INFO", "QUOTA_INFO", "PROCESS_INFO",
                    "AUDIT_INFO", "EXTENDED_INFO", "HANDLE_REVOCATION_INFO", "PADDING_INFO")

# NT build lab strings of the releases whose layouts ship with the project (ntoskrnl version
# resources; also what WinDbg's "vertarget" prints).
BUILD_LABS = {14393: "14393.0.amd64fre.rs1_release.160715-1616",
              19041: "19041.1.amd64fre.vb_release.191206-1406"}
# The real symbol tables in ../shared/isf (README there): GUID → (build, revision).
KNOWN_KERNELS = {"606FF669409B00F7FC8C61A9C1670129": (19041, 3570),
                 "517E128F7B7C4EA79491DE6B9B9CE190": (14393, 4583)}

# PROCESSOR_START_BLOCK (WRK amd64.h; offsets as Volatility's constants.windows uses them).
LOW_STUB_JMP_AND_COMPLETION = bytes([0xE9, 0x4D, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00])
LOW_STUB_LM_TARGET = 0x70
LOW_STUB_CR3 = 0xA0

# Volatility's own tables of structures no kernel ISF holds (pe.json, kdbg.json, wow64.json,
# poolheader-x64.json): the kernel writes those structures by them.
VOLATILITY_SYMBOLS = Path(_volatility_windows_symbols.__file__).resolve().parent


def windows_time(moment: _dt.datetime) -> int:
    """A FILETIME: 100 ns intervals since 1601-01-01 UTC."""
    epoch = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)
    delta = moment - epoch
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def kernel_build(symbols: SymbolTable) -> tuple[int, int]:
    """(build, revision) of the kernel a symbol table describes.

    An ISF written with PE version metadata says so (``metadata.windows.pe``); the shared real
    tables are known by GUID; otherwise the layout decides (SecureState appeared in 1709, so a
    table with it is laid out as 19041, one without as 14393)."""
    pe = symbols.data.get("metadata", {}).get("windows", {}).get("pe", {})
    if pe.get("major") == 10 and isinstance(pe.get("revision"), int):
        return int(pe["revision"]), int(pe.get("build") or 0)
    known = KNOWN_KERNELS.get(symbols.guid)
    if known:
        return known
    return (19041, 0) if symbols.has_member("_KPROCESS", "SecureState") else (14393, 0)
