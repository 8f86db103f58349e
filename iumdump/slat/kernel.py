"""The synthetic Windows kernel, laid out by a symbol table.

Everything Volatility 3 and MemProcFS need to find and walk a Windows 10 x64 kernel is written
into guest memory with every field placed **by name** through the symbol table (ISF) of the
kernel being imitated — the built-in profile or a real ntkrnlmp ISF:

* the page maps: the system PML4 (in the range Volatility's DTB scan covers) with its randomized
  self-map entry and a slot for each system region (iumdump.slat.kspace: PFN database at
  MmPfnDatabase, non-paged and paged pool, session space, kernel stacks, KUSER_SHARED_DATA, the
  boot images), one PML4 per process sharing the kernel half;
* ntoskrnl.exe at a 2 MiB-aligned randomized base, its whole SizeOfImage mapped (2 MiB pages
  without VBS, per-section 4 KiB pages with it): the header page with the section table and a
  CodeView (RSDS) record naming ntkrnlmp.pdb with the ISF's GUID and age, and the export directory
  naming ntoskrnl.exe (iumdump.slat.peimage); hal.dll beside it;
* the debugger data: KdVersionBlock (_DBGKD_GET_VERSION64) and an unencoded KdDebuggerDataBlock
  (_KDDEBUGGER_DATA64, laid out by Volatility's own kdbg.json), and the x64 low stub
  (PROCESSOR_START_BLOCK) in the first MiB, so both of Volatility's kernel-finding methods work;
* KUSER_SHARED_DATA at 0xFFFFF78000000000 and 0x7FFE0000 (the same frame);
* the object manager's type table (ObTypeIndexTable, ObHeaderCookie-encoded TypeIndex,
  ObpInfoMaskToOffset), executive objects in non-paged pool allocations with pool headers,
  optional object headers and object headers;
* processes: EPROCESS in ``Proc`` allocations linked on PsActiveProcessHead (or not), threads in
  ``Thre`` allocations on both thread lists with kernel stacks, sessions, handle tables (System's
  holding handles to the processes), WoW64 blocks, the secure state of trustlets and enclave
  hosts, VAD trees of ``VadS``/``Vad `` nodes (System's too) with image VADs pointing through
  subsection and control area at a FILE_OBJECT, user pages with the image's PE header.

Facts that are not in an ISF are cited where they are used: the PE/COFF layout comes from
Volatility's pe.json (winnt.h), the CodeView record from the PDB 7.0 format, the low stub from the
WRK's amd64.h, x64 pool headers from Volatility's poolheader-x64.json when an ISF lacks
_POOL_HEADER, object type indices from Windows 10's ObTypeIndexTable, what a reader requires of
the kernel from MemProcFS (vmm/vmmwininit.c, vmm/vmmwin.c).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ..errors import InvalidInputError, ScenarioError, SymbolError
from ..isf import SymbolTable
from ..structs.protection import parse_protection
from .layout import Layout, Struct
from .memory import (
    FRAME_FREE, PAGE_SHIFT, PAGE_SIZE, FrameAllocator, GuestPhysicalMemory, OutOfMemoryError,
)
from .kspace import (
    KUSER_SHARED_DATA_KERNEL, NONPAGED_POOL, PAGED_POOL, PFN_DATABASE, SESSION_SPACE,
    KernelSpace,
)
from .pagetables import (
    LARGE_PAGE_FRAMES, LARGE_PAGE_SIZE, AddressSpace, PageTableStore,
)
from .peimage import (
    IMAGE_SUBSYSTEM_NATIVE, IMAGE_SUBSYSTEM_WINDOWS_GUI, KernelImagePlan, Section, codeview_record,
    export_directory, export_directory_size, header_page, plan_kernel_image, small_image_sections,
)
from .scenario import ProcessSpec, RegionSpec

# -- what the kernel reads from a symbol table (the built-in profile must provide all of it) -----

# Symbols the kernel writes. Required ones raise SymbolError when absent; optional ones are
# written when the symbol table has them.
KERNEL_SYMBOLS_REQUIRED = (
    "KdDebuggerDataBlock", "KdVersionBlock", "PsActiveProcessHead", "PsLoadedModuleList",
    "KeNumberProcessors", "ObHeaderCookie", "ObTypeIndexTable", "MmProtectToValue",
)
KERNEL_SYMBOLS_OPTIONAL = (
    "KdpDebuggerDataListHead", "KiSystemStartup", "ObpInfoMaskToOffset", "NtBuildLab",
    "NtBuildLabEx", "NtBuildNumber", "CmNtCSDVersion", "MmPfnDatabase", "PsInitialSystemProcess",
    "PsSecureSystemProcess", "PsProcessType", "PsThreadType", "ObpTypeObjectType",
    "MmHighestUserAddress", "MmUserProbeAddress", "MmSystemRangeStart", "PspCidTable",
    "ObpRootDirectoryObject", "KiProcessorBlock", "KeLoaderBlock", "MmUnloadedDrivers",
    "ExpSystemResourcesList", "KiBugCheckData", "PsLoadedModuleResource",
    "MmGetSystemRoutineAddress",
)
KERNEL_SYMBOLS_USED = KERNEL_SYMBOLS_REQUIRED + KERNEL_SYMBOLS_OPTIONAL
# Of those, the functions (the rest are variables the kernel writes).
KERNEL_FUNCTIONS = ("KiSystemStartup", "MmGetSystemRoutineAddress")
# What ntoskrnl.exe exports by name and readers look up in its export directory: MemProcFS takes
# PsInitialSystemProcess, PsLoadedModuleList and NtBuildNumber from it (vmm/vmmwininit.c); the
# WDK declares the others as kernel exports (wdm.h/ntddk.h: PsInitialSystemProcess, PsProcessType,
# PsThreadType, KeNumberProcessors, MmHighestUserAddress, MmSystemRangeStart, MmUserProbeAddress,
# MmGetSystemRoutineAddress). Exported where the symbol table has them.
KERNEL_EXPORTS = ("KeNumberProcessors", "MmGetSystemRoutineAddress", "MmHighestUserAddress",
                  "MmSystemRangeStart", "MmUserProbeAddress", "NtBuildNumber",
                  "PsInitialSystemProcess", "PsLoadedModuleList", "PsProcessType",
                  "PsThreadType")
# Bytes the kernel writes at a variable, where more than one pointer (for the section plan).
VARIABLE_SIZES = {"KdDebuggerDataBlock": 0x400, "KdVersionBlock": 0x28, "ObTypeIndexTable": 0x100,
                  "ObpInfoMaskToOffset": 0x100, "MmProtectToValue": 0x80, "NtBuildLab": 0x60,
                  "NtBuildLabEx": 0x60, "PsActiveProcessHead": 0x10, "PsLoadedModuleList": 0x10,
                  "KdpDebuggerDataListHead": 0x10}

# Types whose size the kernel needs.
KERNEL_TYPES_USED = (
    "_EPROCESS", "_KPROCESS", "_ETHREAD", "_OBJECT_HEADER", "_OBJECT_TYPE", "_MMVAD_SHORT",
    "_MMVAD", "_SUBSECTION", "_CONTROL_AREA", "_FILE_OBJECT", "_MM_SESSION_SPACE",
    "_HANDLE_TABLE", "_EWOW64PROCESS", "_KUSER_SHARED_DATA", "_DBGKD_GET_VERSION64",
    "_LDR_DATA_TABLE_ENTRY", "_PEB", "_UNICODE_STRING", "_OBJECT_NAME_INFORMATION",
    "_POOL_HEADER", "_OBJECT_HEADER_CREATOR_INFO", "_OBJECT_HEADER_NAME_INFO",
    "_OBJECT_HEADER_HANDLE_INFO", "_OBJECT_HEADER_QUOTA_INFO", "_OBJECT_HEADER_PROCESS_INFO",
    "_OBJECT_HEADER_AUDIT_INFO", "_OBJECT_HEADER_EXTENDED_INFO",
    "_OBJECT_HEADER_HANDLE_REVOCATION_INFO", "_OBJECT_HEADER_PADDING_INFO",
    "_HANDLE_TABLE_ENTRY", "_MMPFN",
)
# Probed only: the optional object headers a layout defines decide the InfoMask bits.
KERNEL_TYPES_OPTIONAL = (
    "_OBJECT_HEADER_HANDLE_INFO", "_OBJECT_HEADER_PROCESS_INFO", "_OBJECT_HEADER_AUDIT_INFO",
    "_OBJECT_HEADER_EXTENDED_INFO", "_OBJECT_HEADER_HANDLE_REVOCATION_INFO",
    "_OBJECT_HEADER_PADDING_INFO", "_POOL_HEADER", "_HANDLE_TABLE_ENTRY", "_MMPFN",
)

# (type, dotted field path) pairs the kernel writes or probes; the ones in KERNEL_FIELDS_OPTIONAL
# are probed and written only where the layout has them (SecureState on 1709+, SecurePid and
# TrustletIdentity on 1507–1703, …). A test keeps both lists exact.
KERNEL_FIELDS_USED = (
    ("_KPROCESS", "SecureState"), ("_EPROCESS", "SessionProcessLinks"),
    ("_ETHREAD", "Tcb.Teb"), ("_ETHREAD", "Tcb.KernelStack"), ("_ETHREAD", "Tcb.InitialStack"),
    ("_HANDLE_TABLE", "HandleTableList"), ("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks"),
    ("_MM_SESSION_SPACE", "ProcessList"), ("_OBJECT_HEADER_CREATOR_INFO", "TypeList"),
    ("_OBJECT_TYPE", "TypeList"),
    # KPROCESS (through _EPROCESS.Pcb)
    ("_EPROCESS", "Pcb.Header.Type"), ("_EPROCESS", "Pcb.Header.SignalState"),
    ("_EPROCESS", "Pcb.DirectoryTableBase"), ("_EPROCESS", "Pcb.ThreadListHead"),
    ("_EPROCESS", "Pcb.ThreadListHead.Flink"), ("_EPROCESS", "Pcb.ThreadListHead.Blink"),
    ("_EPROCESS", "Pcb.Affinity.Count"), ("_EPROCESS", "Pcb.Affinity.Size"),
    ("_EPROCESS", "Pcb.Affinity.Bitmap"), ("_EPROCESS", "Pcb.BasePriority"),
    ("_EPROCESS", "Pcb.DeepFreeze"),
    ("_EPROCESS", "Pcb.SecureState.SecureHandle"),  # optional (1709+)
    ("_EPROCESS", "Pcb.SecureState.Flags.SecureProcess"),  # optional (1709+)
    ("_EPROCESS", "Pcb.SecureState.Flags.TrustedApp"),  # optional (24H2+)
    ("_EPROCESS", "Pcb.SecurePid"),  # optional (1507–1703)
    # EPROCESS
    ("_EPROCESS", "UniqueProcessId"), ("_EPROCESS", "ActiveProcessLinks"),
    ("_EPROCESS", "ActiveProcessLinks.Flink"), ("_EPROCESS", "ActiveProcessLinks.Blink"),
    ("_EPROCESS", "InheritedFromUniqueProcessId"), ("_EPROCESS", "ImageFileName"),
    ("_EPROCESS", "CreateTime"), ("_EPROCESS", "ExitTime"), ("_EPROCESS", "ExitStatus"),
    ("_EPROCESS", "ActiveThreads"), ("_EPROCESS", "Peb"), ("_EPROCESS", "VadRoot.Root"),
    ("_EPROCESS", "VadHint"),
    ("_EPROCESS", "VadCount"), ("_EPROCESS", "Session"),
    ("_EPROCESS", "SessionProcessLinks.Flink"), ("_EPROCESS", "SessionProcessLinks.Blink"),
    ("_EPROCESS", "ObjectTable"), ("_EPROCESS", "WoW64Process"),
    ("_EPROCESS", "ThreadListHead"), ("_EPROCESS", "ThreadListHead.Flink"),
    ("_EPROCESS", "ThreadListHead.Blink"), ("_EPROCESS", "Protection.Level"),
    ("_EPROCESS", "ProtectedProcess"),
    ("_EPROCESS", "CreateReported"), ("_EPROCESS", "ProcessInserted"),
    ("_EPROCESS", "HasAddressSpace"), ("_EPROCESS", "AddressSpaceInitialized"),
    ("_EPROCESS", "ProcessInSession"), ("_EPROCESS", "ProcessExiting"),
    ("_EPROCESS", "ProcessDelete"), ("_EPROCESS", "Background"),
    ("_EPROCESS", "CrossSessionCreate"), ("_EPROCESS", "Minimal"),
    ("_EPROCESS", "SubsystemProcess"), ("_EPROCESS", "SystemProcess"),
    ("_EPROCESS", "TrustletIdentity"),  # optional (up to 1703)
    ("_EPROCESS", "SectionBaseAddress"), ("_EPROCESS", "ImageFilePointer"),
    ("_EPROCESS", "SeAuditProcessCreationInfo.ImageFileName"), ("_EPROCESS", "PicoContext"),
    # threads
    ("_ETHREAD", "Tcb.Header.Type"), ("_ETHREAD", "Tcb.Process"),
    ("_ETHREAD", "Tcb.ApcState.Process"), ("_ETHREAD", "Tcb.State"),
    ("_ETHREAD", "Tcb.WaitReason"), ("_ETHREAD", "Tcb.Priority"),
    ("_ETHREAD", "Tcb.BasePriority"), ("_ETHREAD", "Tcb.ThreadListEntry"),
    ("_ETHREAD", "ThreadListEntry"), ("_ETHREAD", "Cid.UniqueProcess"),
    ("_ETHREAD", "Cid.UniqueThread"), ("_ETHREAD", "CreateTime"), ("_ETHREAD", "StartAddress"),
    ("_ETHREAD", "Win32StartAddress"), ("_ETHREAD", "Tcb.StackBase"),
    ("_ETHREAD", "Tcb.StackLimit"),
    # objects and pool
    ("_POOL_HEADER", "PreviousSize"), ("_POOL_HEADER", "PoolIndex"),
    ("_POOL_HEADER", "BlockSize"), ("_POOL_HEADER", "PoolType"), ("_POOL_HEADER", "PoolTag"),
    ("_OBJECT_HEADER", "PointerCount"), ("_OBJECT_HEADER", "HandleCount"),
    ("_OBJECT_HEADER", "TypeIndex"), ("_OBJECT_HEADER", "InfoMask"), ("_OBJECT_HEADER", "Body"),
    ("_OBJECT_HEADER_CREATOR_INFO", "TypeList.Flink"),
    ("_OBJECT_HEADER_CREATOR_INFO", "TypeList.Blink"),
    ("_OBJECT_HEADER_CREATOR_INFO", "CreatorUniqueProcess"),
    ("_OBJECT_HEADER_NAME_INFO", "Name"), ("_OBJECT_HEADER_NAME_INFO", "ReferenceCount"),
    ("_OBJECT_HEADER_QUOTA_INFO", "PagedPoolCharge"),
    ("_OBJECT_HEADER_QUOTA_INFO", "NonPagedPoolCharge"),
    ("_OBJECT_TYPE", "TypeList.Flink"), ("_OBJECT_TYPE", "TypeList.Blink"),
    ("_OBJECT_TYPE", "Name"), ("_OBJECT_TYPE", "Index"), ("_OBJECT_TYPE", "TotalNumberOfObjects"),
    ("_OBJECT_TYPE", "Key"),
    ("_UNICODE_STRING", "Length"), ("_UNICODE_STRING", "MaximumLength"),
    ("_UNICODE_STRING", "Buffer"), ("_OBJECT_NAME_INFORMATION", "Name"),
    # VADs and the image file behind them
    ("_MMVAD_SHORT", "VadNode"), ("_MMVAD_SHORT", "VadNode.Left"),
    ("_MMVAD_SHORT", "VadNode.Right"), ("_MMVAD_SHORT", "VadNode.ParentValue"),
    ("_MMVAD_SHORT", "StartingVpn"), ("_MMVAD_SHORT", "EndingVpn"),
    ("_MMVAD_SHORT", "StartingVpnHigh"), ("_MMVAD_SHORT", "EndingVpnHigh"),
    ("_MMVAD_SHORT", "u.VadFlags.Protection"), ("_MMVAD_SHORT", "u.VadFlags.PrivateMemory"),
    ("_MMVAD_SHORT", "u.VadFlags.VadType"), ("_MMVAD_SHORT", "u1.VadFlags1.CommitCharge"),
    ("_MMVAD_SHORT", "u1.VadFlags1.MemCommit"),
    ("_MMVAD", "Core"), ("_MMVAD", "Subsection"),
    ("_SUBSECTION", "ControlArea"), ("_SUBSECTION", "PtesInSubsection"),
    ("_CONTROL_AREA", "FilePointer.Value"), ("_CONTROL_AREA", "NumberOfSectionReferences"),
    ("_CONTROL_AREA", "NumberOfMappedViews"), ("_CONTROL_AREA", "NumberOfUserReferences"),
    ("_CONTROL_AREA", "u.Flags.Image"), ("_CONTROL_AREA", "u.Flags.File"),
    ("_FILE_OBJECT", "Type"), ("_FILE_OBJECT", "Size"), ("_FILE_OBJECT", "FileName"),
    ("_FILE_OBJECT", "ReadAccess"), ("_FILE_OBJECT", "SharedRead"),
    # sessions, handle tables, WoW64
    ("_MM_SESSION_SPACE", "ReferenceCount"), ("_MM_SESSION_SPACE", "SessionId"),
    ("_MM_SESSION_SPACE", "ProcessList.Flink"), ("_MM_SESSION_SPACE", "ProcessList.Blink"),
    ("_HANDLE_TABLE", "UniqueProcessId"), ("_HANDLE_TABLE", "QuotaProcess"),
    ("_HANDLE_TABLE", "HandleTableList.Flink"), ("_HANDLE_TABLE", "HandleTableList.Blink"),
    ("_HANDLE_TABLE", "TableCode"), ("_HANDLE_TABLE_ENTRY", "Unlocked"),
    ("_HANDLE_TABLE_ENTRY", "ObjectPointerBits"), ("_HANDLE_TABLE_ENTRY", "GrantedAccessBits"),
    ("_EWOW64PROCESS", "Peb"), ("_EWOW64PROCESS", "Machine"),
    # PEB
    ("_PEB", "ImageBaseAddress"), ("_PEB", "BeingDebugged"), ("_PEB", "OSMajorVersion"),
    ("_PEB", "OSMinorVersion"), ("_PEB", "OSBuildNumber"), ("_PEB", "OSPlatformId"),
    ("_PEB", "ImageSubsystem"), ("_PEB", "ImageSubsystemMajorVersion"),
    ("_PEB", "NumberOfProcessors"), ("_PEB", "SessionId"),
    # loaded modules
    ("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks.Flink"),
    ("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks.Blink"), ("_LDR_DATA_TABLE_ENTRY", "DllBase"),
    ("_LDR_DATA_TABLE_ENTRY", "EntryPoint"), ("_LDR_DATA_TABLE_ENTRY", "SizeOfImage"),
    ("_LDR_DATA_TABLE_ENTRY", "FullDllName"), ("_LDR_DATA_TABLE_ENTRY", "BaseDllName"),
    ("_LDR_DATA_TABLE_ENTRY", "TimeDateStamp"),
    # version block and shared user data
    ("_DBGKD_GET_VERSION64", "MajorVersion"), ("_DBGKD_GET_VERSION64", "MinorVersion"),
    ("_DBGKD_GET_VERSION64", "ProtocolVersion"), ("_DBGKD_GET_VERSION64", "KdSecondaryVersion"),
    ("_DBGKD_GET_VERSION64", "Flags"), ("_DBGKD_GET_VERSION64", "MachineType"),
    ("_DBGKD_GET_VERSION64", "MaxPacketType"), ("_DBGKD_GET_VERSION64", "MaxStateChange"),
    ("_DBGKD_GET_VERSION64", "MaxManipulate"), ("_DBGKD_GET_VERSION64", "KernBase"),
    ("_DBGKD_GET_VERSION64", "PsLoadedModuleList"),
    ("_DBGKD_GET_VERSION64", "DebuggerDataList"),
    ("_KUSER_SHARED_DATA", "TickCountMultiplier"), ("_KUSER_SHARED_DATA", "InterruptTime.LowPart"),
    ("_KUSER_SHARED_DATA", "InterruptTime.High1Time"),
    ("_KUSER_SHARED_DATA", "InterruptTime.High2Time"),
    ("_KUSER_SHARED_DATA", "SystemTime.LowPart"), ("_KUSER_SHARED_DATA", "SystemTime.High1Time"),
    ("_KUSER_SHARED_DATA", "SystemTime.High2Time"), ("_KUSER_SHARED_DATA", "ImageNumberLow"),
    ("_KUSER_SHARED_DATA", "ImageNumberHigh"), ("_KUSER_SHARED_DATA", "NtSystemRoot"),
    ("_KUSER_SHARED_DATA", "NtBuildNumber"), ("_KUSER_SHARED_DATA", "NtProductType"),
    ("_KUSER_SHARED_DATA", "ProductTypeIsValid"),
    ("_KUSER_SHARED_DATA", "NativeProcessorArchitecture"),
    ("_KUSER_SHARED_DATA", "NtMajorVersion"), ("_KUSER_SHARED_DATA", "NtMinorVersion"),
    ("_KUSER_SHARED_DATA", "KdDebuggerEnabled"), ("_KUSER_SHARED_DATA", "ActiveConsoleId"),
    ("_KUSER_SHARED_DATA", "NumberOfPhysicalPages"), ("_KUSER_SHARED_DATA", "Cookie"),
    ("_KUSER_SHARED_DATA", "ActiveProcessorCount"), ("_KUSER_SHARED_DATA", "DbgVirtEnabled"),
    ("_KUSER_SHARED_DATA", "DbgSecureBootEnabled"),
)
KERNEL_FIELDS_OPTIONAL = (
    ("_KPROCESS", "SecureState"), ("_EPROCESS", "Pcb.SecureState.SecureHandle"),
    ("_EPROCESS", "Pcb.SecureState.Flags.SecureProcess"),
    ("_EPROCESS", "Pcb.SecureState.Flags.TrustedApp"), ("_EPROCESS", "Pcb.SecurePid"),
    ("_EPROCESS", "TrustletIdentity"), ("_EPROCESS", "Background"),
    ("_EPROCESS", "SystemProcess"), ("_EPROCESS", "Pcb.Affinity.Count"),
    ("_EPROCESS", "Pcb.Affinity.Bitmap"), ("_EPROCESS", "VadCount"),
    ("_MMVAD_SHORT", "StartingVpnHigh"), ("_MMVAD_SHORT", "EndingVpnHigh"),
    ("_EWOW64PROCESS", "Machine"), ("_CONTROL_AREA", "u.Flags.Image"),
    ("_CONTROL_AREA", "u.Flags.File"), ("_KUSER_SHARED_DATA", "NtBuildNumber"),
    ("_KUSER_SHARED_DATA", "ActiveProcessorCount"), ("_KUSER_SHARED_DATA", "DbgVirtEnabled"),
    ("_KUSER_SHARED_DATA", "DbgSecureBootEnabled"), ("_LDR_DATA_TABLE_ENTRY", "TimeDateStamp"),
    ("_ETHREAD", "Tcb.Teb"), ("_ETHREAD", "Tcb.KernelStack"), ("_ETHREAD", "Tcb.InitialStack"),
    ("_ETHREAD", "Tcb.ApcState.Process"), ("_ETHREAD", "Tcb.State"),
    ("_EPROCESS", "ProtectedProcess"),  # Windows 7's flag, before PS_PROTECTION
    ("_ETHREAD", "Tcb.StackBase"), ("_ETHREAD", "Tcb.StackLimit"), ("_EPROCESS", "VadHint"),
    ("_HANDLE_TABLE", "TableCode"), ("_HANDLE_TABLE_ENTRY", "Unlocked"),
    ("_HANDLE_TABLE_ENTRY", "ObjectPointerBits"), ("_HANDLE_TABLE_ENTRY", "GrantedAccessBits"),
)
# Not written by the kernel, but read by Volatility to interpret what it wrote: it picks its
# Vista+ pool-header class (even PoolType = non-paged) when _POOL_TRACKER_BIG_PAGES has these.
VOLATILITY_FIELDS_NEEDED = (
    ("_POOL_TRACKER_BIG_PAGES", "PoolType"), ("_POOL_TRACKER_BIG_PAGES", "SlushSize"),
)

# -- constants from Windows headers and documentation -------------------------------------------

IMAGE_FILE_MACHINE_AMD64 = 0x8664  # winnt.h
IMAGE_FILE_MACHINE_I386 = 0x014C
PROCESSOR_ARCHITECTURE_AMD64 = 9
KUSER_SHARED_DATA_USER = 0x7FFE0000  # ntddk.h MM_SHARED_USER_DATA_VA
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
POOL_NONPAGED = 2  # _POOL_HEADER.PoolType of an in-use non-paged block (Vista+ headers)
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

VOLATILITY_SYMBOLS = Path(__import__("volatility3.framework.symbols.windows",
                                     fromlist=["_"]).__file__).resolve().parent


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


def kernel_exports(symbols: SymbolTable) -> dict[str, int]:
    """ntoskrnl.exe's exports by name → RVA: KERNEL_EXPORTS that the symbol table has."""
    return {name: symbols.symbol(name) for name in KERNEL_EXPORTS if symbols.has_symbol(name)}


def kernel_image_plan(symbols: SymbolTable) -> KernelImagePlan:
    """ntoskrnl's section table from where a symbol table puts the kernel's variables and
    functions (iumdump.slat.peimage)."""
    rvas = [int(v["address"]) for v in symbols.data["symbols"].values()
            if isinstance(v.get("address"), int)]
    variables = {symbols.symbol(name): VARIABLE_SIZES.get(name, 8)
                 for name in KERNEL_SYMBOLS_USED
                 if name not in KERNEL_FUNCTIONS and symbols.has_symbol(name)}
    code = [symbols.symbol(name) for name in KERNEL_FUNCTIONS if symbols.has_symbol(name)]
    return plan_kernel_image(
        rvas, variables, code, kdbg=symbols.symbol("KdDebuggerDataBlock"),
        export_size=export_directory_size("ntoskrnl.exe", kernel_exports(symbols)))


# -- layout helpers --------------------------------------------------------------------------------

def unicode_string_bytes(layout: Layout, text: str, buffer: int) -> bytes:
    """A _UNICODE_STRING for ``text`` whose characters are at ``buffer``."""
    encoded = text.encode("utf-16-le")
    string = Struct(layout, "_UNICODE_STRING")
    string.set("Length", len(encoded))
    string.set("MaximumLength", len(encoded) + 2)
    string.set("Buffer", buffer)
    return bytes(string)


# -- frames ----------------------------------------------------------------------------------------

class Frames:
    """Frame allocation for the kernel. Page-map roots never land in the physical ranges
    Volatility's DTB scan searches, so the only page there with a self-referencing entry is the
    System PML4; frames skipped that way serve ordinary allocations."""

    # automagic/windows.py WindowsIntelStacker.test_sets, first set (recent Windows).
    DTB_SCAN_RANGES = ((0x150000, 0x150000), (0x550000, 0x1A0000), (0x900000, 0x100000))

    def __init__(self, allocator: FrameAllocator) -> None:
        self.allocator = allocator
        self._spare: list[int] = []
        self._forbidden = [(start >> PAGE_SHIFT, (start + size) >> PAGE_SHIFT)
                           for start, size in self.DTB_SCAN_RANGES]

    def allocate(self) -> int:
        try:
            return self._spare.pop() if self._spare else self.allocator.allocate()
        except OutOfMemoryError as exc:
            raise ScenarioError(f"guest memory is too small for the scenario ({exc.message})") from None

    def allocate_root(self) -> int:
        while True:
            pfn = self.allocate_fresh()
            if not any(lo <= pfn < hi for lo, hi in self._forbidden):
                return pfn
            self._spare.append(pfn)

    def allocate_fresh(self) -> int:
        try:
            return self.allocator.allocate()
        except OutOfMemoryError as exc:
            raise ScenarioError(f"guest memory is too small for the scenario ({exc.message})") from None

    def allocate_run(self, count: int, *, align: int = 1, top: bool = False) -> int:
        try:
            return self.allocator.allocate_run(count, align=align, top=top)
        except OutOfMemoryError as exc:
            raise ScenarioError(f"guest memory is too small for the scenario ({exc.message})") from None


class BulkArea:
    """Frames at the top of memory, reserved in one piece for background-content bulk (pool
    large pages, bulk user pages, secure bulk pages) and handed out as contiguous runs."""

    def __init__(self, allocator: FrameAllocator, frame_count: int, pages: int) -> None:
        self.start = frame_count - pages
        self.top = frame_count
        if pages:
            if self.start <= KERNEL_LOW_FRAMES:  # the kernel's explicit frames come from below
                raise ScenarioError(f"{pages} bulk pages do not fit in guest memory of "
                                    f"{frame_count} frames")
            allocator.reserve(self.start, pages)

    def take(self, count: int, *, align: int = 1) -> int:
        top = (self.top - count) // align * align
        if top < self.start:
            raise ScenarioError("bulk memory plan exceeded (internal)")
        self.top = top
        return top

    @property
    def unused(self) -> tuple[int, int]:
        return self.start, self.top


# -- kernel virtual memory ---------------------------------------------------------------------------

class Filler:
    """Frames for pages whose content nobody reads — an image's code, a thread's stack: each
    page its own in-use frame with generated content (so a dump holds and sizes them as a real
    machine's), or, on a machine too small for that, one frame they all share."""

    def __init__(self, memory: GuestPhysicalMemory, frames: Frames, *, shared: bool) -> None:
        self.memory = memory
        self.frames = frames
        self.shared = shared
        self._shared_pfn: int | None = None

    def run(self, count: int, *, align: int = 1, top: bool = False) -> Sequence[int]:
        """``count`` frames (a contiguous run aligned to ``align`` frames unless shared; the
        highest free one with ``top``)."""
        if self.shared:
            return [self.shared_pfn] * count
        start = self.frames.allocate_run(count, align=align, top=top)
        self.memory.add_background(start, count)
        return range(start, start + count)

    @property
    def shared_pfn(self) -> int:
        if self._shared_pfn is None:
            self._shared_pfn = self.frames.allocate()
            self.memory.add_background(self._shared_pfn, 1)
        return self._shared_pfn

    def is_shared(self, pfn: int) -> bool:
        return pfn == self._shared_pfn


class KernelMemory:
    """Writes through the System address space; pages are backed with fresh frames on demand."""

    def __init__(self, memory: GuestPhysicalMemory, space: AddressSpace, frames: Frames) -> None:
        self.memory = memory
        self.space = space
        self.frames = frames
        self.backed_pages = 0
        self.filler: Filler | None = None

    def back(self, va: int, length: int, *, writable: bool = True) -> None:
        """Make every page of the range writable memory of its own: map a fresh zero frame where
        nothing is mapped, give a page on the shared filler frame a frame of its own, and start
        a page of generated filler content from zeros (a variable's page holds data, not noise)."""
        for page in range(va & ~0xFFF, va + length, PAGE_SIZE):
            pa = self.space.translate(page)
            if pa is None:
                pfn = self.frames.allocate()
                self.memory.zero_page(pfn)
                self.space.map_page(page, pfn, writable=writable, global_=True)
                self.backed_pages += 1
                continue
            pfn = pa >> PAGE_SHIFT
            if self.filler is not None and self.filler.is_shared(pfn):
                pfn = self.frames.allocate()
                self.space.remap_page(page, pfn)
                self.backed_pages += 1
            if not self.memory.is_explicit(pfn):
                self.memory.zero_page(pfn)

    def write(self, va: int, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            at = va + offset
            pa = self.space.translate(at)
            if pa is None:
                raise InvalidInputError(f"kernel address {at:#x} is not mapped")
            chunk = min(PAGE_SIZE - (at & 0xFFF), len(data) - offset)
            self.memory.write(pa, data[offset:offset + chunk])
            offset += chunk

    def store(self, va: int, data: bytes) -> None:
        """Back (if needed) and write."""
        self.back(va, len(data))
        self.write(va, data)

    def read(self, va: int, length: int) -> bytes:
        out = bytearray()
        while length:
            pa = self.space.translate(va)
            if pa is None:
                raise InvalidInputError(f"kernel address {va:#x} is not mapped")
            chunk = min(PAGE_SIZE - (va & 0xFFF), length)
            out += self.memory.read(pa, chunk)
            va += chunk
            length -= chunk
        return bytes(out)


class Pool:
    """A kernel pool region: small blocks packed into pages behind _POOL_HEADERs, as the
    (pre-segment-heap and VS-segment) small-block allocator lays them out, and page-aligned big
    allocations without a header (tracked by the big-page table in Windows)."""

    def __init__(self, kmem: KernelMemory, header: Layout, base: int, *, pool_type: int) -> None:
        self.kmem = kmem
        self.header_layout = header
        self.base = base
        self.pool_type = pool_type
        self._page: int | None = None
        self._used = 0  # bytes used in the current page
        self._previous_blocks = 0
        self._next_page = base
        self.header_size = header.size("_POOL_HEADER")
        self.allocations = 0

    def allocate(self, size: int, tag: bytes) -> int:
        """A block for ``size`` bytes; returns the address of its _POOL_HEADER (the caller's
        data starts ``header_size`` bytes later)."""
        if len(tag) != 4:
            raise InvalidInputError(f"pool tag {tag!r} is not 4 bytes")
        total = -(-(self.header_size + size) // POOL_BLOCK) * POOL_BLOCK
        if total > PAGE_SIZE:
            raise InvalidInputError(f"a {size:#x}-byte allocation needs the big pool")
        if self._page is None or self._used + total > PAGE_SIZE:
            self._page = self._new_pages(1)
            self._used = 0
            self._previous_blocks = 0
        address = self._page + self._used
        header = Struct(self.header_layout, "_POOL_HEADER")
        header.set("PreviousSize", self._previous_blocks)
        header.set("PoolIndex", 0)
        header.set("BlockSize", total // POOL_BLOCK)
        header.set("PoolType", self.pool_type)
        header.set("PoolTag", int.from_bytes(tag, "little"))
        self.kmem.write(address, bytes(header))
        self._used += total
        self._previous_blocks = total // POOL_BLOCK
        self.allocations += 1
        return address

    def allocate_data(self, data: bytes, tag: bytes) -> int:
        """A block holding ``data``; returns the address of the data."""
        address = self.allocate(len(data), tag) + self.header_size
        self.kmem.write(address, data)
        return address

    def allocate_pages(self, size: int) -> int:
        """A page-aligned big allocation (no pool header); returns its address."""
        pages = -(-size // PAGE_SIZE)
        return self._new_pages(pages)

    def _new_pages(self, count: int) -> int:
        address = self._next_page
        self._next_page += count * PAGE_SIZE
        self.kmem.back(address, count * PAGE_SIZE)
        return address


# -- results -------------------------------------------------------------------------------------------

@dataclass
class BuiltRegion:
    spec: RegionSpec
    vad: int  # address of the VAD node
    tag: str
    pfns: list[int] | range  # frame of each page, in address order (a range for bulk runs)


@dataclass
class BuiltProcess:
    spec: ProcessSpec
    eprocess: int
    physical: int
    dtb: int
    space: AddressSpace | None
    secure_word: int  # SecureState word (1709+) or SecurePid (older); 0 when not secure
    secure: bool
    secure_handle: int
    trustlet_id: int | None
    flags: dict[str, bool | None]
    audit_name: str | None = None  # SeAuditProcessCreationInfo.ImageFileName; None: no pointer
    regions: list[BuiltRegion] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    peb: int = 0


@dataclass
class KernelBuild:
    """What the synthetic kernel put where; synth turns it into writer facts and truth."""

    build: int
    revision: int
    guid: str
    age: int
    base: int
    image_size: int
    dtb: int
    self_map_index: int
    kdbg: int
    version_block: int
    ps_active_process_head: int
    ps_loaded_module_list: int
    pfn_database: int
    number_processors: int
    system_time: int
    machine_type: int
    object_header_cookie: int
    has_secure_state: bool
    has_trustlet_identity: bool
    processes: list[BuiltProcess]
    secure_kernel_frames: tuple[int, int] | None  # [start, end) claimed by VTL1
    kernel_pages: int = 0
    pool_large_pages: int = 0


# -- the kernel ------------------------------------------------------------------------------------

class SyntheticKernel:
    """Lays out one Windows kernel in a SlatMachine's guest memory."""

    def __init__(self, machine, symbols: SymbolTable, *, seed: int, processors: int,
                 boot_time: _dt.datetime, system_time: _dt.datetime, vbs: bool,
                 allocator: FrameAllocator | None = None, bulk_pages: int = 0,
                 progress: Callable[[Iterable, str, int], Iterable] | None = None) -> None:
        self.machine = machine
        self.memory: GuestPhysicalMemory = machine.memory
        self.symbols = symbols
        self.layout = Layout(symbols)
        self.rng = random.Random(f"kernel:{seed}")
        self.seed = seed
        self.processors = processors
        self.boot_time = boot_time
        self.system_time = system_time
        self.vbs = vbs
        self._progress = progress or (lambda items, _label, _total: items)
        self.build_number, self.revision = kernel_build(symbols)
        self._check_symbols()

        self.allocator = allocator or FrameAllocator(self.memory, reserved=[(0, 1)])
        self.frames = Frames(self.allocator)
        self.bulk = BulkArea(self.allocator, self.memory.frame_count, bulk_pages)
        self.allocator.take(SYSTEM_DTB >> PAGE_SHIFT)
        self.allocator.take(LOW_STUB >> PAGE_SHIFT)
        self.store = PageTableStore(self.memory, self.frames.allocate)
        self.system_space = AddressSpace(self.store, root_pfn=SYSTEM_DTB >> PAGE_SHIFT)
        self.kmem = KernelMemory(self.memory, self.system_space, self.frames)

        # Randomized layout (KASLR): kernel base 2 MiB aligned, the self-map and each system
        # region in its own randomly chosen PML4 slot (iumdump.slat.kspace).
        self.base = 0xFFFFF80000000000 + self.rng.randrange(0x100, 0x3C00) * LARGE_PAGE_SIZE
        va_types = (symbols.data.get("enums", {}).get("_MI_SYSTEM_VA_TYPE", {}).get("constants"))
        self.space = KernelSpace(self.rng, va_types=va_types)
        self.self_map_index = self.space.self_map_index
        self.pfn_database = self.space.base(PFN_DATABASE)
        self.system_space.set_self_reference(self.self_map_index)

        self.cookie = self.rng.randrange(1, 0x100)
        header_layout = self.layout if symbols.has_type("_POOL_HEADER") else Layout(
            SymbolTable.load(VOLATILITY_SYMBOLS / "poolheader-x64.json"))
        self.nonpaged = Pool(self.kmem, header_layout, self.space.base(NONPAGED_POOL),
                             pool_type=POOL_NONPAGED)
        self.paged = Pool(self.kmem, header_layout, self.space.base(PAGED_POOL),
                          pool_type=POOL_PAGED)
        self.bulk_pool_base = self.nonpaged.base + (1 << 30)  # large pages after the small blocks
        self.paged_bulk_base = self.paged.base + (1 << 30)
        self.session_cursor = self.space.base(SESSION_SPACE)
        self.stack_cursor = self.space.base(self.space.stacks_kind)
        self.kdbg_layout = Layout(SymbolTable.load(VOLATILITY_SYMBOLS / "kdbg.json"))
        self.pe_layout = Layout(SymbolTable.load(VOLATILITY_SYMBOLS / "pe.json"))
        self.object_types: dict[str, tuple[int, int]] = {}  # name → (index, _OBJECT_TYPE)
        self._optional_headers = [h for h in OPTIONAL_HEADERS
                                  if self.layout.has_type(f"_OBJECT_HEADER_{h}")]
        self._next_tid = 0
        self._session_links: dict[int, tuple[int, int]] = {}
        self.image = kernel_image_plan(symbols)
        self.image_size = self.image.size_of_image
        self.pe_timestamp = 0
        # Pages nobody reads (image code, stack contents) get frames of their own with generated
        # content when the machine has room for them; on a tiny machine they share one frame.
        self.filler = Filler(self.memory, self.frames,
                             shared=self.memory.frame_count < 2 * (self.image_size >> PAGE_SHIFT))
        self.kmem.filler = self.filler
        self.secure_kernel_frames: tuple[int, int] | None = None
        self.pool_large_pages = 0
        self.kuser_pfn = 0
        self.standby_frames: list[tuple[int, int]] = []  # filled by fill_free_frames

    # -- public ------------------------------------------------------------------------------
    def build(self, processes: Iterable[ProcessSpec], *, pool_pages: int = 0,
              paged_pool_pages: int = 0) -> KernelBuild:
        """Lay the kernel out. ``pool_pages`` of non-paged pool (2 MiB pages) and
        ``paged_pool_pages`` of paged pool come from the bulk area with generated content: the
        pool a running system has in use, beyond the allocations the emulator writes."""
        specs = sorted(processes, key=lambda s: s.pid != 4)  # System first (stable otherwise)
        self._map_kernel_image()
        if self.vbs:
            self._claim_secure_kernel_memory()
        self._write_low_stub()
        self._write_pe_image()
        self.kuser_pfn = self._write_kuser_shared_data()
        self._map_pfn_database()
        self._create_object_types()
        module_list = self._write_loaded_modules()
        if pool_pages:  # first: its 2 MiB-aligned runs come from the top of the bulk area
            self._map_bulk_pool(pool_pages)
        if paged_pool_pages:
            self._map_paged_bulk_pool(paged_pool_pages)
        built = self._create_processes(specs)
        self._create_system_handle_table(built)
        self._write_debugger_data(built, module_list)
        for process in built:
            if process.space is not None and process.space is not self.system_space:
                process.space.share_kernel_half(self.system_space)
        self.store.flush()
        return KernelBuild(
            build=self.build_number, revision=self.revision, guid=self.symbols.guid,
            age=self.symbols.age, base=self.base, image_size=self.image_size,
            dtb=self.system_space.dtb, self_map_index=self.self_map_index,
            kdbg=self.symbol_address("KdDebuggerDataBlock"),
            version_block=self.symbol_address("KdVersionBlock"),
            ps_active_process_head=self.symbol_address("PsActiveProcessHead"),
            ps_loaded_module_list=self.symbol_address("PsLoadedModuleList"),
            pfn_database=self.pfn_database, number_processors=self.processors,
            system_time=windows_time(self.system_time), machine_type=IMAGE_FILE_MACHINE_AMD64,
            object_header_cookie=self.cookie,
            has_secure_state=self.layout.has("_KPROCESS", "SecureState"),
            has_trustlet_identity=self.layout.has("_EPROCESS", "TrustletIdentity"),
            processes=built, secure_kernel_frames=self.secure_kernel_frames,
            kernel_pages=self.kmem.backed_pages, pool_large_pages=self.pool_large_pages)

    def symbol_address(self, name: str) -> int:
        return self.base + self.symbols.symbol(name)

    # -- setup -------------------------------------------------------------------------------
    def _check_symbols(self) -> None:
        for name in KERNEL_SYMBOLS_REQUIRED:
            self.symbols.symbol(name)  # SymbolError names the missing symbol
        for type_name in ("_EPROCESS", "_ETHREAD", "_OBJECT_HEADER", "_MMVAD_SHORT",
                          "_KUSER_SHARED_DATA", "_DBGKD_GET_VERSION64"):
            self.symbols.size(type_name)
        for name in KERNEL_SYMBOLS_USED:
            if self.symbols.has_symbol(name) and self.symbols.symbol(name) < PAGE_SIZE:
                raise SymbolError(f"symbol {name} lies in the kernel's PE header page",
                                  path=self.symbols.source)

    def _claim_secure_kernel_memory(self) -> None:
        """The Secure Kernel's memory: frames VTL1 removes from VTL0 at boot (the secure
        loader reserves them before NT runs; HvModifyVtlProtectionMask with no access)."""
        count = max(256, self.memory.frame_count // 64)
        start = self.frames.allocate_run(count)
        self.memory.add_background(start, count)
        self.machine.modify_vtl_protection_mask(start << PAGE_SHIFT, count, NO_ACCESS)
        self.secure_kernel_frames = (start, start + count)

    # -- low stub, PE image, shared data ------------------------------------------------------
    def _write_low_stub(self) -> None:
        """PROCESSOR_START_BLOCK: JMP + CompletionFlag signature, LmTarget in the kernel, CR3 of
        the System address space (WRK amd64.h; Volatility pdbscan.method_low_stub_offset)."""
        target = self.symbol_address("KiSystemStartup") if self.symbols.has_symbol(
            "KiSystemStartup") else self.base + 0x1000
        block = bytearray(PAGE_SIZE)
        block[0:8] = LOW_STUB_JMP_AND_COMPLETION
        block[LOW_STUB_LM_TARGET:LOW_STUB_LM_TARGET + 8] = (target & ~0x3).to_bytes(8, "little")
        block[LOW_STUB_CR3:LOW_STUB_CR3 + 8] = self.system_space.dtb.to_bytes(8, "little")
        self.memory.write(LOW_STUB, bytes(block))

    def _map_kernel_image(self) -> None:
        """Map the whole SizeOfImage of ntoskrnl.exe. Without VBS the loader maps the kernel
        with 2 MiB pages; with VBS (HVCI enforcing per-section rights) each page carries its
        section's rights and the header page is non-executable — what MemProcFS's kernel
        scans expect of either (vmm/vmmwininit.c: "ntoskrnl.exe is loaded in 2MB pages except in
        low memory situations", and the small-page walk of VmmWinInit_FindNtosScan64 that wants
        a writable no-execute header page followed by read-only ones)."""
        pages = self.image_size >> PAGE_SHIFT
        if not self.vbs and not self.filler.shared:
            large, tail = divmod(pages, LARGE_PAGE_FRAMES)
            first = self.filler.run(large * LARGE_PAGE_FRAMES + tail, align=LARGE_PAGE_FRAMES,
                                    top=True)
            for index in range(large):
                self.system_space.map_large_page(
                    self.base + index * LARGE_PAGE_SIZE, first[index * LARGE_PAGE_FRAMES],
                    writable=True, executable=True, global_=True)
            done = large * LARGE_PAGE_FRAMES
            self.system_space.map_frames(self.base + done * PAGE_SIZE, first[done:],
                                         writable=True, executable=True, global_=True)
            return
        self._map_sections(self.base, self.filler.run(pages, top=True), self.image.sections)

    def _map_sections(self, base: int, frames: Sequence[int], sections: Iterable[Section]) -> None:
        """Map an image page by page: the header page writable and no-execute, each section
        with its own rights."""
        self.system_space.map_page(base, frames[0], writable=True, global_=True)
        for section in sections:
            lo, hi = section.rva >> PAGE_SHIFT, min(section.end >> PAGE_SHIFT, len(frames))
            self.system_space.map_frames(base + section.rva, frames[lo:hi],
                                         writable=section.writable,
                                         executable=section.executable, global_=True)

    def _map_driver_image(self, name: str, base: int, size: int) -> None:
        """A boot driver loaded beside the kernel (hal.dll): its whole image mapped, the header
        page naming its sections."""
        pages = size >> PAGE_SHIFT
        sections = small_image_sections(pages, driver=True)
        self._map_sections(base, self.filler.run(pages), sections)
        init = next((s.rva for s in sections if s.name == "INIT"), sections[0].rva)
        self.kmem.store(base, header_page(
            self.pe_layout, image_base=base, size_of_image=size, sections=sections,
            entry_point=init, timestamp=self.pe_timestamp - self.rng.randrange(1, 30) * 86400,
            checksum=self.rng.randrange(0x10000, 0x100000), subsystem=IMAGE_SUBSYSTEM_NATIVE))

    def _map_pfn_database(self) -> None:
        """The PFN database at MmPfnDatabase: one _MMPFN per physical frame. Its entries are
        not modelled (nothing here reads them), so every page of the array is one zero frame —
        the region is mapped, sized to the machine, as a reader following MmPfnDatabase finds
        it."""
        entry = self.layout.size("_MMPFN") if self.layout.has_type("_MMPFN") else MMPFN_SIZE
        pages = -(-self.memory.frame_count * entry // PAGE_SIZE)
        zero = self.frames.allocate()
        self.memory.zero_page(zero)
        self.system_space.map_frames(self.pfn_database, itertools.repeat(zero, pages),
                                     writable=True, global_=True)

    def _write_pe_image(self) -> None:
        """The header page of ntoskrnl.exe at the kernel base (sections, the CodeView record
        naming ntkrnlmp.pdb with the symbol table's GUID and age — what pdbscan matches) and its
        export directory, naming the image ntoskrnl.exe."""
        # Link time: some months before the boot (the image was built, then installed).
        self.pe_timestamp = int(self.boot_time.timestamp()) - self.rng.randrange(30, 400) * 86400
        exports = kernel_exports(self.symbols)
        directory = export_directory("ntoskrnl.exe", self.image.export_rva, exports,
                                     self.pe_timestamp)
        entry = (self.symbols.symbol("KiSystemStartup") if self.symbols.has_symbol(
            "KiSystemStartup") else self.image.sections[0].rva)
        header = header_page(
            self.pe_layout, image_base=self.base, size_of_image=self.image_size,
            sections=self.image.sections, entry_point=entry, timestamp=self.pe_timestamp,
            checksum=self.rng.randrange(0x900000, 0xB00000), subsystem=IMAGE_SUBSYSTEM_NATIVE,
            exports=(self.image.export_rva, len(directory)),
            codeview=codeview_record(self.symbols.guid, self.symbols.age, self.symbols.pdb_name))
        self.kmem.store(self.base, header)
        self.kmem.store(self.base + self.image.export_rva, directory)

    def _write_kuser_shared_data(self) -> int:
        """KUSER_SHARED_DATA: one frame mapped at both fixed addresses (kernel read-write, user
        read-only), holding the version, product type, system root and time."""
        kuser = Struct(self.layout, "_KUSER_SHARED_DATA")
        now = windows_time(self.system_time)
        kuser.set("TickCountMultiplier", 0x0FA00000)
        uptime = now - windows_time(self.boot_time)
        for name, value in (("SystemTime", now), ("InterruptTime", uptime)):
            # KSYSTEM_TIME: LowPart, then the high part twice (readers compare the copies).
            kuser.set(f"{name}.LowPart", value & 0xFFFFFFFF)
            kuser.set(f"{name}.High1Time", value >> 32)
            kuser.set(f"{name}.High2Time", value >> 32)
        kuser.set("ImageNumberLow", IMAGE_FILE_MACHINE_AMD64)
        kuser.set("ImageNumberHigh", IMAGE_FILE_MACHINE_AMD64)
        kuser.set("NtSystemRoot", "C:\\Windows".encode("utf-16-le"))
        kuser.set_optional("NtBuildNumber", self.build_number)
        kuser.set("NtProductType", self.symbols.enum_value("_NT_PRODUCT_TYPE", "NtProductWinNt")
                  if "_NT_PRODUCT_TYPE" in self.symbols.data.get("enums", {}) else 1)
        kuser.set("ProductTypeIsValid", 1)
        kuser.set("NativeProcessorArchitecture", PROCESSOR_ARCHITECTURE_AMD64)
        kuser.set("NtMajorVersion", 10)
        kuser.set("NtMinorVersion", 0)
        kuser.set("KdDebuggerEnabled", 0)
        kuser.set("ActiveConsoleId", 1)
        kuser.set("NumberOfPhysicalPages", self.memory.frame_count)
        kuser.set("Cookie", self.rng.randrange(1, 1 << 32))
        kuser.set_optional("ActiveProcessorCount", self.processors)
        if self.vbs:
            kuser.set_optional("DbgVirtEnabled", 1)
            kuser.set_optional("DbgSecureBootEnabled", 1)
        pfn = self.frames.allocate()
        self.memory.write(pfn << PAGE_SHIFT, bytes(kuser).ljust(PAGE_SIZE, b"\0"))
        self.system_space.map_page(KUSER_SHARED_DATA_KERNEL, pfn, writable=True, global_=True)
        self.system_space.map_page(KUSER_SHARED_DATA_USER, pfn, writable=False, user=True)
        return pfn

    # -- objects -------------------------------------------------------------------------------
    def _optional_header_sizes(self) -> list[int]:
        return [self.layout.size(f"_OBJECT_HEADER_{h}") for h in self._optional_headers]

    def create_object(self, object_type: str, body_size: int, *, pool: Pool | None = None,
                      tag: bytes | None = None, headers: tuple[str, ...] = (),
                      name: str | None = None, creator_pid: int = 0, pointer_count: int = 1,
                      handle_count: int = 0) -> int:
        """An executive object: pool header, optional headers (highest InfoMask bit first),
        _OBJECT_HEADER, body. Returns the body's address."""
        pool = pool or self.nonpaged
        tag = tag or OBJECT_TYPE_TAGS[object_type]
        present = [h for h in self._optional_headers if h in headers]
        if len(present) != len(headers):
            missing = sorted(set(headers) - set(present))
            raise SymbolError(f"symbol table has no _OBJECT_HEADER_{missing[0]}")
        bits = {h: i for i, h in enumerate(self._optional_headers)}
        sizes = {h: self.layout.size(f"_OBJECT_HEADER_{h}") for h in present}
        optional = sum(sizes.values())
        body_offset = self.layout.offset("_OBJECT_HEADER", "Body")
        block = pool.allocate(optional + body_offset + body_size, tag)
        start = block + pool.header_size
        object_header = start + optional
        body = object_header + body_offset
        # Lay the optional headers out downwards from the object header, lowest bit nearest.
        at = object_header
        for header_name in sorted(present, key=lambda h: bits[h]):
            at -= sizes[header_name]
            data = Struct(self.layout, f"_OBJECT_HEADER_{header_name}")
            if header_name == "CREATOR_INFO":
                links = at + self.layout.offset("_OBJECT_HEADER_CREATOR_INFO", "TypeList")
                data.set_list_entry("TypeList", links, links)
                data.set("CreatorUniqueProcess", creator_pid)
            elif header_name == "NAME_INFO":
                buffer = self._pool_string(name or "")
                data.set("Name", unicode_string_bytes(self.layout, name or "", buffer))
                data.set("ReferenceCount", 0)
            elif header_name == "QUOTA_INFO":
                data.set("PagedPoolCharge", 0x1000)
                data.set("NonPagedPoolCharge", -(-(body_size + optional) // POOL_BLOCK) * POOL_BLOCK)
            self.kmem.write(at, bytes(data))
        header = Struct(self.layout, "_OBJECT_HEADER")
        header.set("PointerCount", pointer_count)
        header.set("HandleCount", handle_count)
        index = OBJECT_TYPES.index(object_type) + FIRST_OBJECT_TYPE_INDEX
        # Windows 10 encodes TypeIndex with the header address and ObHeaderCookie
        # (ObGetObjectType: index ^ cookie ^ byte 1 of the header's address).
        header.set("TypeIndex", index ^ self.cookie ^ ((object_header >> 8) & 0xFF))
        header.set("InfoMask", sum(1 << bits[h] for h in present))
        self.kmem.write(object_header, bytes(header)[:body_offset])
        return body

    def _pool_string(self, text: str, *, tag: bytes = b"ObNm", pool: Pool | None = None) -> int:
        data = text.encode("utf-16-le") + b"\0\0"
        return (pool or self.paged).allocate_data(data, tag)

    def _create_object_types(self) -> None:
        """_OBJECT_TYPE objects for each type, indexed from 2 in ObTypeIndexTable (entry 0 is
        null, entry 1 the 0xbad0b0b0 marker Windows 10 leaves there)."""
        size = self.layout.size("_OBJECT_TYPE")
        table = [0, BAD_TYPE_POINTER]
        for index, name in enumerate(OBJECT_TYPES, start=FIRST_OBJECT_TYPE_INDEX):
            self.object_types[name] = (index, 0)
        for index, name in enumerate(OBJECT_TYPES, start=FIRST_OBJECT_TYPE_INDEX):
            body = self.create_object("Type", size, tag=b"ObjT",
                                      headers=("CREATOR_INFO", "NAME_INFO"), name=name,
                                      pointer_count=2, handle_count=0)
            obj = Struct(self.layout, "_OBJECT_TYPE")
            links = body + self.layout.offset("_OBJECT_TYPE", "TypeList")
            obj.set_list_entry("TypeList", links, links)
            obj.set("Name", unicode_string_bytes(self.layout, name, self._pool_string(name)))
            obj.set("Index", index)
            obj.set("Key", int.from_bytes(OBJECT_TYPE_TAGS.get(name, name[:4].ljust(4).encode()),
                                          "little"))
            self.kmem.write(body, bytes(obj))
            self.object_types[name] = (index, body)
            table.append(body)
        table.append(0)
        self._store_symbol("ObTypeIndexTable", b"".join(p.to_bytes(8, "little") for p in table))
        self._store_symbol("ObHeaderCookie", bytes([self.cookie]))
        sizes = self._optional_header_sizes()
        info_mask_to_offset = bytes(sum(s for bit, s in enumerate(sizes) if mask & (1 << bit)) & 0xFF
                                    for mask in range(256))
        self._store_symbol("ObpInfoMaskToOffset", info_mask_to_offset, optional=True)
        for symbol, name in (("PsProcessType", "Process"), ("PsThreadType", "Thread"),
                             ("ObpTypeObjectType", "Type")):
            self._store_symbol(symbol, self.object_types[name][1].to_bytes(8, "little"),
                               optional=True)

    def _count_objects(self, type_name: str, count: int) -> None:
        body = self.object_types[type_name][1]
        offset = self.layout.offset("_OBJECT_TYPE", "TotalNumberOfObjects")
        self.kmem.write(body + offset, count.to_bytes(4, "little"))

    def _store_symbol(self, name: str, data: bytes, *, optional: bool = False) -> None:
        if optional and not self.symbols.has_symbol(name):
            return
        self.kmem.store(self.symbol_address(name), data)

    # -- loaded modules --------------------------------------------------------------------------
    def _write_loaded_modules(self) -> int:
        """PsLoadedModuleList with ntoskrnl.exe and hal.dll (_LDR_DATA_TABLE_ENTRY in MmLd
        allocations), so the kernel can be found by its module list too."""
        head = self.symbol_address("PsLoadedModuleList")
        hal_base = (self.base + self.image_size + LARGE_PAGE_SIZE) & ~(LARGE_PAGE_SIZE - 1)
        modules = [("ntoskrnl.exe", self.base, self.image_size,
                    self.symbol_address("KiSystemStartup") if self.symbols.has_symbol(
                        "KiSystemStartup") else self.base + 0x1000),
                   ("hal.dll", hal_base, HAL_IMAGE_SIZE, hal_base + 0x1000)]
        self._map_driver_image("hal.dll", hal_base, HAL_IMAGE_SIZE)
        entries = []
        size = self.layout.size("_LDR_DATA_TABLE_ENTRY")
        for name, _base, _size, _entry in modules:
            entries.append(self.nonpaged.allocate(size, b"MmLd") + self.nonpaged.header_size)
        links = self.layout.offset("_LDR_DATA_TABLE_ENTRY", "InLoadOrderLinks")
        chain = [head] + [e + links for e in entries]
        for i, (entry, (name, base, image_size, entry_point)) in enumerate(zip(entries, modules)):
            ldr = Struct(self.layout, "_LDR_DATA_TABLE_ENTRY")
            ldr.set("InLoadOrderLinks.Flink", chain[(i + 2) % len(chain)])
            ldr.set("InLoadOrderLinks.Blink", chain[i])
            ldr.set("DllBase", base)
            ldr.set("EntryPoint", entry_point)
            ldr.set("SizeOfImage", image_size)
            full = rf"\SystemRoot\system32\{name}"
            ldr.set("FullDllName", unicode_string_bytes(
                self.layout, full, self._pool_string(full, tag=b"MmLd", pool=self.nonpaged)))
            ldr.set("BaseDllName", unicode_string_bytes(
                self.layout, name, self._pool_string(name, tag=b"MmLd", pool=self.nonpaged)))
            ldr.set_optional("TimeDateStamp", self.pe_timestamp)
            self.kmem.write(entry, bytes(ldr))
        self.kmem.store(head, chain[1].to_bytes(8, "little") + chain[-1].to_bytes(8, "little"))
        return head

    # -- debugger data -----------------------------------------------------------------------------
    def _write_debugger_data(self, processes: list[BuiltProcess], module_list: int) -> None:
        kdbg_address = self.symbol_address("KdDebuggerDataBlock")
        list_head = self.symbol_address("KdpDebuggerDataListHead") if self.symbols.has_symbol(
            "KdpDebuggerDataListHead") else kdbg_address
        version = Struct(self.layout, "_DBGKD_GET_VERSION64")
        version.set("MajorVersion", 0xF)  # 0xF: a free (retail) build
        version.set("MinorVersion", self.build_number)
        version.set("ProtocolVersion", 6)  # DBGKD_64BIT_PROTOCOL_VERSION2
        version.set("KdSecondaryVersion", 2)  # KD_SECONDARY_VERSION_AMD64_CONTEXT
        version.set("Flags", 0x0007)  # DBGKD_VERS_FLAG_MP | _DATA | _PTR64 (wdbgexts.h)
        version.set("MachineType", IMAGE_FILE_MACHINE_AMD64)
        version.set("MaxPacketType", 0x0C)
        version.set("MaxStateChange", 0x03)
        version.set("MaxManipulate", 0x33)
        version.set("KernBase", self.base)
        version.set("PsLoadedModuleList", module_list)
        version.set("DebuggerDataList", list_head)
        self._store_symbol("KdVersionBlock", bytes(version))

        kdbg = Struct(self.kdbg_layout, "_KDDEBUGGER_DATA64")
        kdbg.set("Header.List.Flink", list_head)
        kdbg.set("Header.List.Blink", list_head)
        kdbg.set("Header.OwnerTag", int.from_bytes(b"KDBG", "little"))
        kdbg.set("Header.Size", self.kdbg_layout.size("_KDDEBUGGER_DATA64"))
        kdbg.set("KernBase", self.base)
        # Fields holding the address of the kernel variable of (nearly) the same name.
        for field_name, symbol in (
                ("PsLoadedModuleList", "PsLoadedModuleList"),
                ("PsActiveProcessHead", "PsActiveProcessHead"), ("PspCidTable", "PspCidTable"),
                ("ExpSystemResourcesList", "ExpSystemResourcesList"),
                ("KiBugcheckData", "KiBugCheckData"),
                ("ObpRootDirectoryObject", "ObpRootDirectoryObject"),
                ("ObpTypeObjectType", "ObpTypeObjectType"), ("MmPfnDatabase", "MmPfnDatabase"),
                ("MmHighestUserAddress", "MmHighestUserAddress"),
                ("MmSystemRangeStart", "MmSystemRangeStart"),
                ("MmUserProbeAddress", "MmUserProbeAddress"), ("NtBuildLab", "NtBuildLab"),
                ("KiProcessorBlock", "KiProcessorBlock"), ("MmUnloadedDrivers", "MmUnloadedDrivers"),
                ("CmNtCSDVersion", "CmNtCSDVersion"), ("KeLoaderBlock", "KeLoaderBlock")):
            if self.symbols.has_symbol(symbol):
                kdbg.set(field_name, self.symbol_address(symbol))
        # Structure offsets the debugger uses (KDDEBUGGER_DATA64 "Offset…" and "Size…" fields).
        for field_name, type_name, path in (
                ("OffsetEprocessPeb", "_EPROCESS", "Peb"),
                ("OffsetEprocessParentCID", "_EPROCESS", "InheritedFromUniqueProcessId"),
                ("OffsetEprocessDirectoryTableBase", "_EPROCESS", "Pcb.DirectoryTableBase"),
                ("OffsetKThreadApcProcess", "_ETHREAD", "Tcb.ApcState.Process"),
                ("OffsetKThreadTeb", "_ETHREAD", "Tcb.Teb"),
                ("OffsetKThreadState", "_ETHREAD", "Tcb.State"),
                ("OffsetKThreadKernelStack", "_ETHREAD", "Tcb.KernelStack"),
                ("OffsetKThreadInitialStack", "_ETHREAD", "Tcb.InitialStack")):
            if self.layout.has(type_name, path):
                kdbg.set(field_name, self.layout.offset(type_name, path))
        kdbg.set("SizeEProcess", self.layout.size("_EPROCESS"))
        kdbg.set("SizeEThread", self.layout.size("_ETHREAD"))
        kdbg.set("MmPageSize", PAGE_SIZE)
        self._store_symbol("KdDebuggerDataBlock", bytes(kdbg))
        if list_head != kdbg_address:
            self._store_symbol("KdpDebuggerDataListHead", kdbg_address.to_bytes(8, "little") * 2)

        lab = BUILD_LABS.get(self.build_number, f"{self.build_number}.1.amd64fre.synthetic")
        self._store_symbol("NtBuildLab", lab.encode("ascii") + b"\0", optional=True)
        self._store_symbol("NtBuildLabEx", f"{self.build_number}.{self.revision}.amd64fre."
                           f"{lab.split('.', 3)[-1]}".encode("ascii") + b"\0", optional=True)
        self._store_symbol("NtBuildNumber", (0xF0000000 | self.build_number).to_bytes(4, "little"),
                           optional=True)
        self._store_symbol("CmNtCSDVersion", bytes(4), optional=True)
        self._store_symbol("KeNumberProcessors", self.processors.to_bytes(4, "little"))
        self._store_symbol("MmPfnDatabase", self.pfn_database.to_bytes(8, "little"), optional=True)
        self._store_symbol("MmHighestUserAddress", MM_HIGHEST_USER_ADDRESS.to_bytes(8, "little"),
                           optional=True)
        self._store_symbol("MmUserProbeAddress", MM_USER_PROBE_ADDRESS.to_bytes(8, "little"),
                           optional=True)
        self._store_symbol("MmSystemRangeStart", MM_SYSTEM_RANGE_START.to_bytes(8, "little"),
                           optional=True)
        self._store_symbol("MmProtectToValue",
                           b"".join(v.to_bytes(4, "little") for v in mm_protect_to_value()))
        system = next(p for p in processes if p.spec.pid == 4)
        self._store_symbol("PsInitialSystemProcess", system.eprocess.to_bytes(8, "little"),
                           optional=True)
        secure_system = next((p for p in processes if p.spec.secure == "secure"), None)
        self._store_symbol("PsSecureSystemProcess",
                           (secure_system.eprocess if secure_system else 0).to_bytes(8, "little"),
                           optional=True)

    # -- processes ----------------------------------------------------------------------------------
    def _create_processes(self, specs: list[ProcessSpec]) -> list[BuiltProcess]:
        eprocess_size = self.layout.size("_EPROCESS")
        built: list[BuiltProcess] = []
        addresses: dict[int, int] = {}
        self._next_tid = max(s.pid for s in specs) + 4
        # Allocate every EPROCESS first so links can point at their neighbours.
        for spec in specs:
            headers = () if spec.kind in ("system", "minimal") or spec.ppid == 4 else ("QUOTA_INFO",)
            body = self.create_object("Process", eprocess_size, headers=headers,
                                      creator_pid=spec.ppid, pointer_count=32768 * 3 + 7,
                                      handle_count=3)
            addresses[spec.pid] = body
        sessions = self._create_sessions(specs, addresses)
        links = self.layout.offset("_EPROCESS", "ActiveProcessLinks")
        head = self.symbol_address("PsActiveProcessHead")
        linked = [s for s in specs if s.linked]
        chain = [head] + [addresses[s.pid] + links for s in linked]
        neighbours: dict[int, tuple[int, int]] = {}
        for i, spec in enumerate(linked):
            neighbours[spec.pid] = (chain[(i + 2) % len(chain)], chain[i])
        for spec in specs:
            if not spec.linked:
                # Unlinked by DKOM: its own links still name the neighbours it was cut from.
                position = specs.index(spec)
                before = next((addresses[s.pid] + links for s in reversed(specs[:position]) if s.linked), head)
                after = next((addresses[s.pid] + links for s in specs[position + 1:] if s.linked), head)
                neighbours[spec.pid] = (after, before)
        self._store_symbol("PsActiveProcessHead", chain[1 % len(chain)].to_bytes(8, "little")
                           + chain[-1].to_bytes(8, "little"))
        items = self._progress(specs, "processes", len(specs))
        for spec in items:
            built.append(self._create_process(spec, addresses[spec.pid], neighbours[spec.pid],
                                              sessions))
        self._count_objects("Process", len(specs))
        self._count_objects("Thread", sum(len(p.threads) for p in built))
        return built

    def _create_sessions(self, specs: list[ProcessSpec], addresses: dict[int, int]) -> dict[int, int]:
        """One _MM_SESSION_SPACE per session, page-aligned in the session-space region, its
        process list threading the members' SessionProcessLinks."""
        sessions: dict[int, int] = {}
        links = self.layout.offset("_EPROCESS", "SessionProcessLinks")
        size = self.layout.size("_MM_SESSION_SPACE")
        for session_id in sorted({s.session for s in specs if s.session is not None}):
            members = [s for s in specs if s.session == session_id]
            address = self.session_cursor
            self.session_cursor += -(-size // PAGE_SIZE) * PAGE_SIZE
            self.kmem.back(address, size)
            space = Struct(self.layout, "_MM_SESSION_SPACE")
            head = address + self.layout.offset("_MM_SESSION_SPACE", "ProcessList")
            chain = [head] + [addresses[s.pid] + links for s in members]
            space.set("ReferenceCount", len(members))
            space.set("SessionId", session_id)
            space.set_list_entry("ProcessList", chain[1], chain[-1])
            self.kmem.write(address, bytes(space))
            sessions[session_id] = address
            for i, spec in enumerate(members, start=1):
                self._session_links[spec.pid] = (chain[(i + 1) % len(chain)], chain[i - 1])
        return sessions

    def _create_process(self, spec: ProcessSpec, address: int, links: tuple[int, int],
                        sessions: dict[int, int]) -> BuiltProcess:
        layout = self.layout
        if spec.kind == "system":
            space = self.system_space
        else:
            space = AddressSpace(self.store, root_pfn=self.frames.allocate_root())
        process = Struct(layout, "_EPROCESS")
        created = self.boot_time + _dt.timedelta(seconds=spec.created)
        process.set("Pcb.Header.Type", DISPATCHER_PROCESS)
        process.set("Pcb.Header.SignalState", 1 if spec.deleting else 0)
        process.set("Pcb.DirectoryTableBase", space.dtb)
        process.set_optional("Pcb.Affinity.Count", 1)
        if layout.has("_EPROCESS", "Pcb.Affinity.Bitmap"):
            bitmap = layout.member("_EPROCESS", "Pcb.Affinity.Bitmap")
            process.set("Pcb.Affinity.Size", int(bitmap.type["count"]))
            process.set_element("Pcb.Affinity.Bitmap", 0, (1 << self.processors) - 1)
        process.set("Pcb.BasePriority", spec.priority)
        process.set("UniqueProcessId", spec.pid)
        process.set("InheritedFromUniqueProcessId", spec.ppid)
        process.set_list_entry("ActiveProcessLinks", *links)
        process.set("ImageFileName", spec.name.encode("ascii", "replace")[:14])
        process.set("CreateTime", windows_time(created))
        if spec.exited is not None:
            process.set("ExitTime", windows_time(self.boot_time
                                                 + _dt.timedelta(seconds=spec.exited)))
            process.set("ExitStatus", 0)
        else:
            process.set("ExitStatus", STATUS_PENDING)

        # Secure state. 1709+: the SecureState union — bit 0 (SecureProcess) marks an IUM
        # process, the rest is the handle the Secure Kernel gave it; an enclave host has a handle
        # with bit 0 clear. 1507–1703: SecurePid (nonzero = secure) and TrustletIdentity; an
        # enclave host has no representation there and stays an ordinary process.
        secure_word = secure_handle = 0
        secure = False
        handle = self.rng.randrange(0x10, 0x40000000) << 2 if spec.secure else 0
        is_secure_process = spec.secure in ("trustlet", "secure")
        if layout.has("_EPROCESS", "Pcb.SecureState.SecureHandle"):
            if spec.secure:
                bit = layout.member("_EPROCESS", "Pcb.SecureState.Flags.SecureProcess").bit_position
                secure_word = handle | ((1 << bit) if is_secure_process else 0)
                process.set("Pcb.SecureState.SecureHandle", secure_word)
                secure, secure_handle = is_secure_process, handle
        elif layout.has("_EPROCESS", "Pcb.SecurePid"):
            if is_secure_process:
                secure_word = secure_handle = handle
                process.set("Pcb.SecurePid", secure_word)
                secure = True
        trustlet_id = None
        if layout.has("_EPROCESS", "TrustletIdentity"):
            trustlet_id = (spec.trustlet_id or 0) if spec.secure == "trustlet" else 0
            process.set("TrustletIdentity", trustlet_id)

        process.set("Pcb.DeepFreeze", int(spec.frozen))
        self._set_flag_bits(process, spec)
        if layout.has("_EPROCESS", "Protection.Level"):
            process.set("Protection.Level", spec.protection)
        if parse_protection(spec.protection).is_protected:
            # Before PS_PROTECTION (Windows 7): one bit says the process is protected.
            process.set_optional("ProtectedProcess", 1)
        flags = self._expected_flags(spec, secure)

        # Threads (ETHREADs on both lists) and the thread list heads.
        thread_head = address + layout.offset("_EPROCESS", "ThreadListHead")
        kthread_head = address + layout.offset("_EPROCESS", "Pcb.ThreadListHead")
        threads = [] if spec.deleting else self._create_threads(spec, address, created)
        entry = layout.offset("_ETHREAD", "ThreadListEntry")
        kentry = layout.offset("_ETHREAD", "Tcb.ThreadListEntry")
        chain = [thread_head] + [t + entry for t in threads]
        kchain = [kthread_head] + [t + kentry for t in threads]
        process.set_list_entry("ThreadListHead", chain[1 % len(chain)], chain[-1])
        process.set_list_entry("Pcb.ThreadListHead", kchain[1 % len(kchain)], kchain[-1])
        for i, thread in enumerate(threads, start=1):
            self.kmem.write(thread + entry, chain[(i + 1) % len(chain)].to_bytes(8, "little")
                            + chain[i - 1].to_bytes(8, "little"))
            self.kmem.write(thread + kentry, kchain[(i + 1) % len(kchain)].to_bytes(8, "little")
                            + kchain[i - 1].to_bytes(8, "little"))
        process.set("ActiveThreads", len(threads))

        if spec.session is not None:
            process.set("Session", sessions[spec.session])
            process.set_list_entry("SessionProcessLinks", *self._session_links[spec.pid])
        if spec.kind == "user" and not spec.deleting:
            table = self.paged.allocate(self.layout.size("_HANDLE_TABLE"), b"Obtb") + self.paged.header_size
            handles = Struct(layout, "_HANDLE_TABLE")
            handles.set("UniqueProcessId", spec.pid)
            handles.set("QuotaProcess", address)
            links_at = table + layout.offset("_HANDLE_TABLE", "HandleTableList")
            handles.set_list_entry("HandleTableList", links_at, links_at)
            self.kmem.write(table, bytes(handles))
            process.set("ObjectTable", table)
        if spec.subsystem:
            process.set("PicoContext", self.nonpaged.allocate_data(bytes(0x80), b"PsPc"))

        # Image file, audit name, user address space. The audit name of a process created from
        # an image file is its NT device path; the minimal processes (Registry, MemCompression,
        # Secure System) have no image file and carry their bare name there, and System has no
        # name at all (windows.pstree's Audit column on real Windows 10 dumps: "-" for System,
        # "Registry" and "MemCompression" for those two).
        file_object = 0
        audit_name = {"user": spec.image_path, "minimal": spec.name}.get(spec.kind)
        if spec.kind == "user":
            file_object = self._create_file_object(spec.image_path)
            process.set("ImageFilePointer", file_object)
        if audit_name is not None:
            name_info = self._object_name_information(audit_name)
            process.set("SeAuditProcessCreationInfo.ImageFileName", name_info)
        built = BuiltProcess(spec=spec, eprocess=address, physical=0, dtb=space.dtb,
                             space=space, secure_word=secure_word, secure=secure,
                             secure_handle=secure_handle, trustlet_id=trustlet_id, flags=flags,
                             audit_name=audit_name, threads=threads)
        if spec.regions or spec.kind == "system":
            # System has no image or PEB, but a VAD tree like every process: its shared user
            # data page (MemProcFS finds EPROCESS.VadRoot by System's being set, vmm/vmmwin.c).
            root, count = self._create_user_space(built, file_object)
            process.set("VadRoot.Root", root)
            process.set_optional("VadHint", root)  # the last VAD looked up: the root at first
            process.set_optional("VadCount", count)
            process.set("SectionBaseAddress", spec.image_base)
            process.set("Peb", built.peb)
            if spec.wow64:
                wow = Struct(layout, "_EWOW64PROCESS")
                wow.set("Peb", self._peb32_address(built))
                wow.set_optional("Machine", IMAGE_FILE_MACHINE_I386)
                process.set("WoW64Process", self.nonpaged.allocate_data(bytes(wow), b"PsWo"))
        self.kmem.write(address, bytes(process))
        built.physical = self.system_space.translate(address)
        return built

    def _set_flag_bits(self, process: Struct, spec: ProcessSpec) -> None:
        has = lambda name: self.layout.has("_EPROCESS", name)  # noqa: E731
        process.set("CreateReported", 1)
        process.set("ProcessInserted", 1)
        if spec.kind != "system":
            process.set("HasAddressSpace", 1)
            process.set("AddressSpaceInitialized", 2)
        if spec.session is not None:
            process.set("ProcessInSession", 1)
        if spec.deleting:
            process.set("ProcessExiting", 1)
            process.set("ProcessDelete", 1)
        if spec.background and has("Background"):
            process.set("Background", 1)
        if spec.cross_session:
            process.set("CrossSessionCreate", 1)
        if spec.kind in ("system", "minimal"):
            if spec.kind == "minimal":
                process.set("Minimal", 1)
            if has("SystemProcess"):
                process.set("SystemProcess", 1)
        if spec.subsystem:
            process.set("SubsystemProcess", 1)

    def _expected_flags(self, spec: ProcessSpec, secure: bool) -> dict[str, bool | None]:
        """PROCESS_EXTENDED_BASIC_INFORMATION flags as DESIGN §4 derives them from this layout."""
        has = self.layout.has
        background = spec.background if has("_EPROCESS", "Background") else None
        subsystem = spec.subsystem if has("_EPROCESS", "SubsystemProcess") else None
        trusted_app = False if has("_EPROCESS", "Pcb.SecureState.Flags.TrustedApp") else None
        protected = None
        if has("_EPROCESS", "Protection.Level") or has("_EPROCESS", "ProtectedProcess"):
            protected = parse_protection(spec.protection).is_protected
        return {
            "IsProtectedProcess": protected,
            "IsWow64Process": spec.wow64,
            "IsProcessDeleting": spec.deleting,
            "IsCrossSessionCreate": spec.cross_session,
            "IsFrozen": spec.frozen,
            "IsBackground": background,
            "IsStronglyNamed": None,
            "IsSecureProcess": secure,
            "IsSubsystemProcess": subsystem,
            "IsTrustedApp": trusted_app,
        }

    def _create_threads(self, spec: ProcessSpec, process: int, created: _dt.datetime) -> list[int]:
        size = self.layout.size("_ETHREAD")
        threads = []
        for number in range(spec.threads):
            headers = () if spec.kind in ("system", "minimal") else ("QUOTA_INFO",)
            body = self.create_object("Thread", size, headers=headers, creator_pid=spec.pid,
                                      pointer_count=32768 + 3, handle_count=1)
            thread = Struct(self.layout, "_ETHREAD")
            thread.set("Tcb.Header.Type", DISPATCHER_THREAD)
            thread.set("Tcb.Process", process)
            thread.set("Tcb.ApcState.Process", process)
            thread.set("Tcb.State", THREAD_WAITING)
            thread.set("Tcb.WaitReason", WAIT_USER_REQUEST)
            thread.set("Tcb.Priority", spec.priority)
            thread.set("Tcb.BasePriority", spec.priority)
            thread.set("Cid.UniqueProcess", spec.pid)
            thread.set("Cid.UniqueThread", self._next_tid)
            self._next_tid += 4
            thread.set("CreateTime", windows_time(created + _dt.timedelta(milliseconds=5 + 40 * number)))
            start = (spec.image_base + 0x1000 + 0x40 * number) if spec.image_base else (
                self.base + 0x1000 + 0x40 * number)
            thread.set("StartAddress", start)
            thread.set("Win32StartAddress", start)
            stack_base = self._kernel_stack()
            thread.set_optional("Tcb.StackBase", stack_base)
            thread.set_optional("Tcb.StackLimit", stack_base - KERNEL_STACK_SIZE)
            thread.set_optional("Tcb.InitialStack", stack_base - INITIAL_STACK_RESERVE)
            thread.set_optional("Tcb.KernelStack",
                                stack_base - INITIAL_STACK_RESERVE - WAIT_FRAME_SIZE)
            # List links are written once the whole list is known.
            self.kmem.write(body, bytes(thread))
            threads.append(body)
        return threads

    def _kernel_stack(self) -> int:
        """A thread's kernel stack: KERNEL_STACK_SIZE bytes of system PTEs (the kernel-stacks
        region from 1709) below an unmapped guard page, as MmCreateKernelStack leaves it; returns
        the stack base (its top)."""
        pages = KERNEL_STACK_SIZE >> PAGE_SHIFT
        bottom = self.stack_cursor + PAGE_SIZE  # the guard page stays unmapped
        self.system_space.map_frames(bottom, self.filler.run(pages), writable=True, global_=True)
        self.stack_cursor = bottom + KERNEL_STACK_SIZE
        return self.stack_cursor

    def _object_name_information(self, text: str) -> int:
        """An OBJECT_NAME_INFORMATION (UNICODE_STRING followed by its characters)."""
        header = self.layout.size("_OBJECT_NAME_INFORMATION")
        encoded = text.encode("utf-16-le") + b"\0\0"
        address = self.paged.allocate(header + len(encoded), b"SeOn") + self.paged.header_size
        name = Struct(self.layout, "_OBJECT_NAME_INFORMATION")
        name.set("Name", unicode_string_bytes(self.layout, text, address + header))
        self.kmem.write(address, bytes(name) + encoded)
        return address

    def _create_file_object(self, path: str) -> int:
        name = path.split("\\Device\\HarddiskVolume3", 1)[-1] if path.startswith("\\Device\\") else path
        body = self.create_object("File", self.layout.size("_FILE_OBJECT"), pointer_count=32768,
                                  handle_count=0)
        file_object = Struct(self.layout, "_FILE_OBJECT")
        file_object.set("Type", IO_TYPE_FILE)
        file_object.set("Size", self.layout.size("_FILE_OBJECT"))
        file_object.set("ReadAccess", 1)
        file_object.set("SharedRead", 1)
        file_object.set("FileName", unicode_string_bytes(
            self.layout, name, self._pool_string(name, tag=b"FSim", pool=self.paged)))
        self.kmem.write(body, bytes(file_object))
        return body

    # -- user address space ------------------------------------------------------------------------
    def _create_user_space(self, built: BuiltProcess, file_object: int) -> tuple[int, int]:
        spec = built.spec
        space = built.space
        regions: list[BuiltRegion] = []
        control_area = 0
        specs = list(spec.regions)
        # NT maps KUSER_SHARED_DATA read-only and no-execute into every process it creates,
        # trustlets included (their address space is built in VTL0 like any other), under a
        # read-only VAD of its own (MiInsertSharedUserPageVad; ReactOS ntoskrnl/mm/ARM3/procsup.c).
        specs.append(RegionSpec(KUSER_SHARED_DATA_USER, 1, "PAGE_READONLY", SHARED_CONTENT))
        for region in sorted(specs, key=lambda r: r.start):
            pfns = self._user_frames(region)
            writable = region.protection in ("PAGE_READWRITE", "PAGE_EXECUTE_READWRITE")
            executable = "EXECUTE" in region.protection
            if isinstance(pfns, range):
                space.map_range(region.start, pfns.start, len(pfns), writable=writable, user=True,
                                executable=executable)
            else:
                space.map_frames(region.start, pfns, writable=writable, user=True,
                                 executable=executable)
            if region.image and control_area == 0 and file_object:
                control_area = self._create_control_area(file_object, region.pages)
            tag = "Vad " if region.image and control_area else "VadS"
            vad = self._allocate_vad(region, tag, control_area if tag == "Vad " else 0)
            regions.append(BuiltRegion(spec=region, vad=vad, tag=tag, pfns=pfns))
        built.regions = regions
        image = next((r.spec for r in regions if r.spec.image and not r.spec.bulk), None)
        if image is not None:
            self._write_image_header(built, image)
        self._write_user_structures(built)
        root = self._link_vad_tree(regions)
        return root, len(regions)

    def _write_image_header(self, built: BuiltProcess, region: RegionSpec) -> None:
        """The process image's header page at its base, as the image loader maps it (PE32 for
        a WoW64 process): what a reader sees at EPROCESS.SectionBaseAddress — MemProcFS, for one,
        tells the PEB from the image by this MZ (vmm/vmmwin.c, VmmWinProcess_OffsetLocator64)."""
        sections = small_image_sections(region.pages)
        header = header_page(
            self.pe_layout, image_base=region.start, size_of_image=region.pages * PAGE_SIZE,
            sections=sections, entry_point=sections[0].rva if sections else 0,
            timestamp=self.pe_timestamp - self.rng.randrange(1, 400) * 86400,
            checksum=self.rng.randrange(0x1000, 0x100000), subsystem=IMAGE_SUBSYSTEM_WINDOWS_GUI,
            pe32=built.spec.wow64)
        self._write_user(built, region.start, header)

    def _create_system_handle_table(self, processes: list[BuiltProcess]) -> None:
        """System's ObjectTable, the kernel's handle table: a _HANDLE_TABLE in an ``Obtb``
        paged-pool block whose TableCode points at pages of _HANDLE_TABLE_ENTRY (one page: level
        0; more: a level-1 page of pointers to them, the level in TableCode's low bits), holding
        a handle with full access to every other process. Entry 0 of each page is never a handle.
        x64 Windows 8.1+ encoding, read by name: ObjectPointerBits = object header >> 4, the
        entry Unlocked, GrantedAccessBits the access mask (Volatility windows.handles, MemProcFS
        VmmWinHandle_InitializeCore_ReadHandleTable)."""
        system = next(p for p in processes if p.spec.kind == "system")
        if not (self.layout.has("_HANDLE_TABLE", "TableCode")
                and self.layout.has_type("_HANDLE_TABLE_ENTRY")):
            return
        layout = self.layout
        header_offset = layout.offset("_OBJECT_HEADER", "Body")
        targets = [p.eprocess - header_offset for p in processes if p is not system]
        per_page = HANDLE_TABLE_ENTRIES - 1
        pages = []
        for first in range(0, max(len(targets), 1), per_page):
            page = self.paged.allocate_pages(PAGE_SIZE)
            entries = bytearray(PAGE_SIZE)
            for slot, header in enumerate(targets[first:first + per_page], start=1):
                entry = Struct(layout, "_HANDLE_TABLE_ENTRY")
                entry.set("Unlocked", 1)
                entry.set("ObjectPointerBits", (header >> 4) & ((1 << 44) - 1))
                entry.set("GrantedAccessBits", PROCESS_ALL_ACCESS)
                entries[slot * 16:slot * 16 + 16] = bytes(entry)
            self.kmem.write(page, bytes(entries))
            pages.append(page)
        if len(pages) == 1:
            table_code = pages[0]
        else:
            directory = self.paged.allocate_pages(PAGE_SIZE)
            self.kmem.write(directory, b"".join(p.to_bytes(8, "little") for p in pages))
            table_code = directory | 1
        table = self.paged.allocate(layout.size("_HANDLE_TABLE"), b"Obtb") + self.paged.header_size
        handles = Struct(layout, "_HANDLE_TABLE")
        handles.set("TableCode", table_code)
        handles.set("UniqueProcessId", system.spec.pid)
        links_at = table + layout.offset("_HANDLE_TABLE", "HandleTableList")
        handles.set_list_entry("HandleTableList", links_at, links_at)
        self.kmem.write(table, bytes(handles))
        self.kmem.write(system.eprocess + layout.offset("_EPROCESS", "ObjectTable"),
                        table.to_bytes(8, "little"))

    def _user_frames(self, region: RegionSpec) -> list[int] | range:
        if region.content == SHARED_CONTENT:
            return [self.kuser_pfn]
        if region.bulk:
            start = self.bulk.take(region.pages)
            self.memory.add_background(start, region.pages)
            pfns: list[int] | range = range(start, start + region.pages)
        else:
            pfns = [self.frames.allocate() for _ in range(region.pages)]
            for index, pfn in enumerate(pfns):
                if region.content == "zero":
                    self.memory.zero_page(pfn)
                else:
                    self.memory.write(pfn << PAGE_SHIFT, self._page_content(region, index))
        if region.secure:
            for start, count in _runs(pfns):
                self.machine.modify_vtl_protection_mask(start << PAGE_SHIFT, count, NO_ACCESS)
        return pfns

    def _page_content(self, region: RegionSpec, index: int) -> bytes:
        va = region.start + index * PAGE_SIZE
        label = b"IUM-SECRET" if region.secure else b"VTL0-DATA"
        line = label + f" va={va:#014x} ".encode() + bytes([0x41 + index % 26]) * 5
        return (line * (PAGE_SIZE // len(line) + 1))[:PAGE_SIZE]

    def _write_user_structures(self, built: BuiltProcess) -> None:
        """The PEB (and before it the PEB32 of a WoW64 process) in the region marked ``peb``,
        written into its frames as the process sees them."""
        spec = built.spec
        peb_region = next((r for r in built.regions if r.spec.peb), None)
        if peb_region is None:
            return
        built.peb = peb_region.spec.start + (PAGE_SIZE if spec.wow64 else 0)
        peb = Struct(self.layout, "_PEB")
        peb.set("ImageBaseAddress", spec.image_base)
        peb.set("BeingDebugged", 0)
        peb.set("OSMajorVersion", 10)
        peb.set("OSMinorVersion", 0)
        peb.set("OSBuildNumber", self.build_number)
        peb.set("OSPlatformId", 2)  # VER_PLATFORM_WIN32_NT
        peb.set("ImageSubsystem", 2)  # IMAGE_SUBSYSTEM_WINDOWS_GUI
        peb.set("ImageSubsystemMajorVersion", 10)
        peb.set("NumberOfProcessors", self.processors)
        peb.set("SessionId", spec.session or 0)
        self._write_user(built, built.peb, bytes(peb))
        if spec.wow64:
            peb32 = Struct(Layout(SymbolTable.load(VOLATILITY_SYMBOLS / "wow64.json")), "_PEB32")
            peb32.set("ImageBaseAddress", spec.image_base)
            peb32.set("OSMajorVersion", 10)
            peb32.set("OSBuildNumber", self.build_number)
            self._write_user(built, self._peb32_address(built), bytes(peb32))

    def _peb32_address(self, built: BuiltProcess) -> int:
        return next(r for r in built.regions if r.spec.peb).spec.start

    def _write_user(self, built: BuiltProcess, va: int, data: bytes) -> None:
        pa = built.space.translate(va)
        if pa is None:
            raise InvalidInputError(f"user address {va:#x} of pid {built.spec.pid} is not mapped")
        self.memory.write(pa, data)

    def _create_control_area(self, file_object: int, pages: int) -> int:
        """The image section behind an image VAD: _CONTROL_AREA and its first _SUBSECTION in
        one MmCi allocation, the control area's FilePointer naming the image's FILE_OBJECT."""
        area_size = self.layout.size("_CONTROL_AREA")
        block = self.nonpaged.allocate(area_size + self.layout.size("_SUBSECTION"), b"MmCi")
        area_at = block + self.nonpaged.header_size
        area = Struct(self.layout, "_CONTROL_AREA")
        area.set("FilePointer.Value", file_object | 0x5)  # EX_FAST_REF: low bits count refs
        area.set("NumberOfSectionReferences", 1)
        area.set("NumberOfMappedViews", 1)
        area.set("NumberOfUserReferences", 1)
        area.set_optional("u.Flags.Image", 1)
        area.set_optional("u.Flags.File", 1)
        subsection = Struct(self.layout, "_SUBSECTION")
        subsection.set("ControlArea", area_at)
        subsection.set("PtesInSubsection", pages)
        self.kmem.write(area_at, bytes(area) + bytes(subsection))
        return area_at + area_size  # the subsection

    def _allocate_vad(self, region: RegionSpec, tag: str, subsection: int) -> int:
        type_name = "_MMVAD" if tag == "Vad " else "_MMVAD_SHORT"
        size = self.layout.size(type_name)
        vad = self.nonpaged.allocate(size, tag.encode("ascii")) + self.nonpaged.header_size
        short = Struct(self.layout, "_MMVAD_SHORT")
        first, last = region.start >> PAGE_SHIFT, (region.end >> PAGE_SHIFT)
        short.set("StartingVpn", first & 0xFFFFFFFF)
        short.set("EndingVpn", last & 0xFFFFFFFF)
        short.set_optional("StartingVpnHigh", first >> 32)
        short.set_optional("EndingVpnHigh", last >> 32)
        short.set("u.VadFlags.Protection", MM_PROTECTION_INDEX[region.protection])
        short.set("u.VadFlags.PrivateMemory", 0 if tag == "Vad " else 1)
        short.set("u.VadFlags.VadType", VAD_IMAGE_MAP if tag == "Vad " else 0)
        short.set("u1.VadFlags1.CommitCharge", 0 if tag == "Vad " else region.pages)
        short.set("u1.VadFlags1.MemCommit", 0 if tag == "Vad " else 1)
        if tag == "Vad ":
            full = Struct(self.layout, "_MMVAD")
            full.set("Core", bytes(short))
            full.set("Subsection", subsection)
            self.kmem.write(vad, bytes(full))
        else:
            self.kmem.write(vad, bytes(short))
        return vad

    def _link_vad_tree(self, regions: list[BuiltRegion]) -> int:
        """A balanced binary search tree by start address (an AVL tree's shape), written into
        the VadNode (_RTL_BALANCED_NODE) of each VAD; returns the root node."""
        ordered = sorted(regions, key=lambda r: r.spec.start)
        node_offset = self.layout.offset("_MMVAD_SHORT", "VadNode")
        left = self.layout.offset("_MMVAD_SHORT", "VadNode.Left")
        right = self.layout.offset("_MMVAD_SHORT", "VadNode.Right")
        parent = self.layout.offset("_MMVAD_SHORT", "VadNode.ParentValue")

        def build(lo: int, hi: int, parent_node: int) -> int:
            if lo >= hi:
                return 0
            mid = (lo + hi) // 2
            node = ordered[mid].vad + node_offset
            self.kmem.write(node - node_offset + parent, parent_node.to_bytes(8, "little"))
            left_child = build(lo, mid, node)
            right_child = build(mid + 1, hi, node)
            self.kmem.write(node - node_offset + left, left_child.to_bytes(8, "little"))
            self.kmem.write(node - node_offset + right, right_child.to_bytes(8, "little"))
            return node

        return build(0, len(ordered), 0)

    # -- density ---------------------------------------------------------------------------------
    def fill_free_frames(self, fraction: float) -> int:
        """Give free frames background content until ``fraction`` of all frames are in use —
        the standby, cache and modified pages of a busy machine, mapped by no process. Returns
        how many frames were filled (their ranges: ``standby_frames``). Frame 0 stays free, as
        firmware keeps it."""
        total = self.memory.frame_count
        target = int(total * fraction)
        free_runs = [(start, end) for start, end, kind in self.memory.frame_runs(1, total)
                     if kind == FRAME_FREE]
        used = total - 1 - sum(end - start for start, end in free_runs)
        filled = 0
        for start, end in free_runs:
            if used >= target:
                break
            count = min(end - start, target - used)
            self.memory.add_background(start, count)
            self.standby_frames.append((start, start + count))
            used += count
            filled += count
        return filled

    # -- bulk pool ---------------------------------------------------------------------------------
    def _map_bulk_pool(self, pool_pages: int) -> None:
        """Non-paged pool in 2 MiB large pages over background frames (a busy machine's pool):
        mapped kernel memory every pool scan has to read."""
        count = pool_pages // LARGE_PAGE_FRAMES
        items = self._progress(range(count), "kernel pool", count)
        for index in items:
            start = self.bulk.take(LARGE_PAGE_FRAMES, align=LARGE_PAGE_FRAMES)
            self.memory.add_background(start, LARGE_PAGE_FRAMES)
            self.system_space.map_large_page(self.bulk_pool_base + index * LARGE_PAGE_SIZE, start,
                                             writable=True, global_=True)
            self.pool_large_pages += 1

    def _map_paged_bulk_pool(self, pages: int) -> None:
        """Paged pool in 4 KiB pages over background frames, after the small blocks."""
        start = self.bulk.take(pages)
        self.memory.add_background(start, pages)
        self.system_space.map_range(self.paged_bulk_base, start, pages, writable=True,
                                    global_=True)


def _runs(pfns: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Maximal runs of consecutive frame numbers as (start, count)."""
    if isinstance(pfns, range):
        if len(pfns):
            yield pfns.start, len(pfns)
        return
    start = previous = None
    for pfn in pfns:
        if start is None:
            start = previous = pfn
        elif pfn == previous + 1:
            previous = pfn
        else:
            yield start, previous - start + 1
            start = previous = pfn
    if start is not None:
        yield start, previous - start + 1
