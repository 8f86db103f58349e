"""The manifest of the synthetic kernel: every symbol, type and field it reads from a symbol
table by name. The built-in profile must provide all of it; a real ISF provides what its build
has, and the optional entries are written only where the table has them. Tests keep each list
exact (every entry used by some layout, nothing used that is not listed).
"""

from __future__ import annotations

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

__all__ = ["KERNEL_EXPORTS", "KERNEL_FIELDS_OPTIONAL", "KERNEL_FIELDS_USED", "KERNEL_FUNCTIONS",
           "KERNEL_SYMBOLS_OPTIONAL", "KERNEL_SYMBOLS_REQUIRED", "KERNEL_SYMBOLS_USED",
           "KERNEL_TYPES_OPTIONAL", "KERNEL_TYPES_USED", "VARIABLE_SIZES",
           "VOLATILITY_FIELDS_NEEDED"]
