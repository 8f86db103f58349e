"""What a reader needs to find the kernel and what the boot leaves at fixed places: the Secure
Kernel's memory claimed by VTL1, the x64 low stub in the first MiB, KUSER_SHARED_DATA, and the
debugger data — KdVersionBlock, an unencoded KdDebuggerDataBlock and the kernel variables it
names — so both of Volatility's kernel-finding methods work.

Sources: PROCESSOR_START_BLOCK from the WRK's amd64.h (offsets as Volatility's
constants.windows uses them), _KDDEBUGGER_DATA64 from Volatility's kdbg.json, the version block
flags from wdbgexts.h.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...structs.paging import PAGE_SHIFT, PAGE_SIZE
from ..scenario import SecureKind
from .boot_images import kernel_entry
from .constants import (
    BUILD_LABS, IMAGE_FILE_MACHINE_AMD64, KUSER_SHARED_DATA_USER, LOW_STUB, LOW_STUB_CR3,
    LOW_STUB_JMP_AND_COMPLETION, LOW_STUB_LM_TARGET, MM_HIGHEST_USER_ADDRESS,
    MM_SYSTEM_RANGE_START, MM_USER_PROBE_ADDRESS, NO_ACCESS, PROCESSOR_ARCHITECTURE_AMD64,
    mm_protect_to_value, windows_time,
)
from .kernel_space import KUSER_SHARED_DATA_KERNEL
from .records import Record
from .results import BuiltProcess

if TYPE_CHECKING:
    from .context import KernelContext

# KDDEBUGGER_DATA64 fields holding the address of the kernel variable of (nearly) the same name.
_KDBG_VARIABLES = (
    ("PsLoadedModuleList", "PsLoadedModuleList"), ("PsActiveProcessHead", "PsActiveProcessHead"),
    ("PspCidTable", "PspCidTable"), ("ExpSystemResourcesList", "ExpSystemResourcesList"),
    ("KiBugcheckData", "KiBugCheckData"), ("ObpRootDirectoryObject", "ObpRootDirectoryObject"),
    ("ObpTypeObjectType", "ObpTypeObjectType"), ("MmPfnDatabase", "MmPfnDatabase"),
    ("MmHighestUserAddress", "MmHighestUserAddress"),
    ("MmSystemRangeStart", "MmSystemRangeStart"), ("MmUserProbeAddress", "MmUserProbeAddress"),
    ("NtBuildLab", "NtBuildLab"), ("KiProcessorBlock", "KiProcessorBlock"),
    ("MmUnloadedDrivers", "MmUnloadedDrivers"), ("CmNtCSDVersion", "CmNtCSDVersion"),
    ("KeLoaderBlock", "KeLoaderBlock"))
# Structure offsets the debugger uses (KDDEBUGGER_DATA64 "Offset…" fields).
_KDBG_OFFSETS = (
    ("OffsetEprocessPeb", "_EPROCESS", "Peb"),
    ("OffsetEprocessParentCID", "_EPROCESS", "InheritedFromUniqueProcessId"),
    ("OffsetEprocessDirectoryTableBase", "_EPROCESS", "Pcb.DirectoryTableBase"),
    ("OffsetKThreadApcProcess", "_ETHREAD", "Tcb.ApcState.Process"),
    ("OffsetKThreadTeb", "_ETHREAD", "Tcb.Teb"),
    ("OffsetKThreadState", "_ETHREAD", "Tcb.State"),
    ("OffsetKThreadKernelStack", "_ETHREAD", "Tcb.KernelStack"),
    ("OffsetKThreadInitialStack", "_ETHREAD", "Tcb.InitialStack"))


def claim_secure_kernel_memory(ctx: KernelContext) -> None:
    """The Secure Kernel's memory: frames VTL1 removes from VTL0 at boot (the secure loader
    reserves them before NT runs; HvModifyVtlProtectionMask with no access)."""
    count = max(256, ctx.memory.frame_count // 64)
    start = ctx.frames.allocate_run(count)
    ctx.memory.add_background(start, count)
    ctx.machine.modify_vtl_protection_mask(start << PAGE_SHIFT, count, NO_ACCESS)
    ctx.secure_kernel_frames = (start, start + count)


def write_low_stub(ctx: KernelContext) -> None:
    """PROCESSOR_START_BLOCK: JMP + CompletionFlag signature, LmTarget in the kernel, CR3 of the
    System address space (WRK amd64.h; Volatility pdbscan.method_low_stub_offset)."""
    block = bytearray(PAGE_SIZE)
    block[0:8] = LOW_STUB_JMP_AND_COMPLETION
    block[LOW_STUB_LM_TARGET:LOW_STUB_LM_TARGET + 8] = (kernel_entry(ctx) & ~0x3).to_bytes(
        8, "little")
    block[LOW_STUB_CR3:LOW_STUB_CR3 + 8] = ctx.system_space.dtb.to_bytes(8, "little")
    ctx.memory.write(LOW_STUB, bytes(block))


def write_kuser_shared_data(ctx: KernelContext) -> int:
    """KUSER_SHARED_DATA: one frame mapped at both fixed addresses (kernel read-write, user
    read-only), holding the version, product type, system root and time. Returns its frame."""
    symbols = ctx.symbols
    kuser = Record(ctx.layout, "_KUSER_SHARED_DATA")
    now = windows_time(ctx.system_time)
    kuser.set("TickCountMultiplier", 0x0FA00000)
    uptime = now - windows_time(ctx.boot_time)
    for name, value in (("SystemTime", now), ("InterruptTime", uptime)):
        # KSYSTEM_TIME: LowPart, then the high part twice (readers compare the copies).
        kuser.set(f"{name}.LowPart", value & 0xFFFFFFFF)
        kuser.set(f"{name}.High1Time", value >> 32)
        kuser.set(f"{name}.High2Time", value >> 32)
    kuser.set("ImageNumberLow", IMAGE_FILE_MACHINE_AMD64)
    kuser.set("ImageNumberHigh", IMAGE_FILE_MACHINE_AMD64)
    kuser.set("NtSystemRoot", "C:\\Windows".encode("utf-16-le"))
    kuser.set_optional("NtBuildNumber", ctx.build_number)
    kuser.set("NtProductType", symbols.enum_value("_NT_PRODUCT_TYPE", "NtProductWinNt")
              if "_NT_PRODUCT_TYPE" in symbols.data.get("enums", {}) else 1)
    kuser.set("ProductTypeIsValid", 1)
    kuser.set("NativeProcessorArchitecture", PROCESSOR_ARCHITECTURE_AMD64)
    kuser.set("NtMajorVersion", 10)
    kuser.set("NtMinorVersion", 0)
    kuser.set("KdDebuggerEnabled", 0)
    kuser.set("ActiveConsoleId", 1)
    kuser.set("NumberOfPhysicalPages", ctx.memory.frame_count)
    kuser.set("Cookie", ctx.rng.randrange(1, 1 << 32))
    kuser.set_optional("ActiveProcessorCount", ctx.processors)
    # SharedDataFlags. DbgVirtEnabled is UAC's file and registry virtualization (a Vista bit,
    # Geoff Chappell "SharedDataFlags in KUSER_SHARED_DATA"; the "Virtualize file and registry
    # write failures" policy, enabled by default), set with or without VBS. Secure Boot is among
    # Credential Guard's requirements (Microsoft, "Credential Guard requirements").
    kuser.set_optional("DbgVirtEnabled", 1)
    if ctx.vbs:
        kuser.set_optional("DbgSecureBootEnabled", 1)
    pfn = ctx.frames.allocate()
    ctx.memory.write(pfn << PAGE_SHIFT, bytes(kuser).ljust(PAGE_SIZE, b"\0"))
    ctx.system_space.map_page(KUSER_SHARED_DATA_KERNEL, pfn, writable=True, global_=True)
    ctx.system_space.map_page(KUSER_SHARED_DATA_USER, pfn, writable=False, user=True)
    return pfn


def write_debugger_data(ctx: KernelContext, processes: list[BuiltProcess],
                        module_list: int) -> None:
    """KdVersionBlock and KdDebuggerDataBlock (linked through KdpDebuggerDataListHead where the
    table has it), then the kernel variables readers take from them or from the exports."""
    kdbg_address = ctx.symbol_address("KdDebuggerDataBlock")
    list_head = ctx.symbol_address("KdpDebuggerDataListHead") if ctx.symbols.has_symbol(
        "KdpDebuggerDataListHead") else kdbg_address
    _write_version_block(ctx, module_list, list_head)
    _write_kdbg(ctx, list_head)
    if list_head != kdbg_address:
        ctx.store_symbol("KdpDebuggerDataListHead", kdbg_address.to_bytes(8, "little") * 2)
    _write_variables(ctx, processes)


def _write_version_block(ctx: KernelContext, module_list: int, list_head: int) -> None:
    version = Record(ctx.layout, "_DBGKD_GET_VERSION64")
    version.set("MajorVersion", 0xF)  # 0xF: a free (retail) build
    version.set("MinorVersion", ctx.build_number)
    version.set("ProtocolVersion", 6)  # DBGKD_64BIT_PROTOCOL_VERSION2
    version.set("KdSecondaryVersion", 2)  # KD_SECONDARY_VERSION_AMD64_CONTEXT
    version.set("Flags", 0x0007)  # DBGKD_VERS_FLAG_MP | _DATA | _PTR64 (wdbgexts.h)
    version.set("MachineType", IMAGE_FILE_MACHINE_AMD64)
    version.set("MaxPacketType", 0x0C)
    version.set("MaxStateChange", 0x03)
    version.set("MaxManipulate", 0x33)
    version.set("KernBase", ctx.base)
    version.set("PsLoadedModuleList", module_list)
    version.set("DebuggerDataList", list_head)
    ctx.store_symbol("KdVersionBlock", bytes(version))


def _write_kdbg(ctx: KernelContext, list_head: int) -> None:
    kdbg = Record(ctx.kdbg_layout, "_KDDEBUGGER_DATA64")
    kdbg.set("Header.List.Flink", list_head)
    kdbg.set("Header.List.Blink", list_head)
    kdbg.set("Header.OwnerTag", int.from_bytes(b"KDBG", "little"))
    kdbg.set("Header.Size", ctx.kdbg_layout.size("_KDDEBUGGER_DATA64"))
    kdbg.set("KernBase", ctx.base)
    for field_name, symbol in _KDBG_VARIABLES:
        if ctx.symbols.has_symbol(symbol):
            kdbg.set(field_name, ctx.symbol_address(symbol))
    for field_name, type_name, path in _KDBG_OFFSETS:
        if ctx.layout.has(type_name, path):
            kdbg.set(field_name, ctx.layout.offset(type_name, path))
    kdbg.set("SizeEProcess", ctx.layout.size("_EPROCESS"))
    kdbg.set("SizeEThread", ctx.layout.size("_ETHREAD"))
    kdbg.set("MmPageSize", PAGE_SIZE)
    ctx.store_symbol("KdDebuggerDataBlock", bytes(kdbg))


def _write_variables(ctx: KernelContext, processes: list[BuiltProcess]) -> None:
    build = ctx.build_number
    lab = BUILD_LABS.get(build, f"{build}.1.amd64fre.synthetic")
    ctx.store_symbol("NtBuildLab", lab.encode("ascii") + b"\0", optional=True)
    ctx.store_symbol("NtBuildLabEx", f"{build}.{ctx.revision}.amd64fre."
                     f"{lab.split('.', 3)[-1]}".encode("ascii") + b"\0", optional=True)
    ctx.store_symbol("NtBuildNumber", (0xF0000000 | build).to_bytes(4, "little"), optional=True)
    ctx.store_symbol("CmNtCSDVersion", bytes(4), optional=True)
    ctx.store_symbol("KeNumberProcessors", ctx.processors.to_bytes(4, "little"))
    ctx.store_symbol("MmPfnDatabase", ctx.pfn_database.to_bytes(8, "little"), optional=True)
    for name, value in (("MmHighestUserAddress", MM_HIGHEST_USER_ADDRESS),
                        ("MmUserProbeAddress", MM_USER_PROBE_ADDRESS),
                        ("MmSystemRangeStart", MM_SYSTEM_RANGE_START)):
        ctx.store_symbol(name, value.to_bytes(8, "little"), optional=True)
    ctx.store_symbol("MmProtectToValue",
                     b"".join(v.to_bytes(4, "little") for v in mm_protect_to_value()))
    system = next(p for p in processes if p.spec.pid == 4)
    ctx.store_symbol("PsInitialSystemProcess", system.eprocess.to_bytes(8, "little"),
                     optional=True)
    secure_system = next((p for p in processes if p.spec.secure is SecureKind.SECURE), None)
    ctx.store_symbol("PsSecureSystemProcess",
                     (secure_system.eprocess if secure_system else 0).to_bytes(8, "little"),
                     optional=True)


__all__ = ["claim_secure_kernel_memory", "write_debugger_data", "write_kuser_shared_data",
           "write_low_stub"]
