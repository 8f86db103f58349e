"""The synthetic Windows kernel, laid out by a symbol table.

Everything Volatility 3 and MemProcFS need to find and walk a Windows 10 x64 kernel is written
into guest memory with every field placed **by name** through the symbol table (ISF) of the
kernel being imitated — the built-in profile or a real ntkrnlmp ISF. A :class:`KernelContext`
holds what the builders share; :func:`build_kernel` runs them in boot order:

* ``kernel_space`` — the system PML4 (in the range Volatility's DTB scan covers) with its
  randomized self-map entry and a slot for each system region (PFN database at MmPfnDatabase,
  non-paged and paged pool, session space, kernel stacks, KUSER_SHARED_DATA, the boot images);
  one PML4 per process shares the kernel half;
* ``boot_images`` — ntoskrnl.exe at a 2 MiB-aligned randomized base, its whole SizeOfImage mapped
  (2 MiB pages without VBS, per-section 4 KiB pages with it): the header page with the section
  table and a CodeView (RSDS) record naming ntkrnlmp.pdb with the ISF's GUID and age, and the
  export directory naming ntoskrnl.exe (the PE structures: ``peimage``); hal.dll beside it;
  PsLoadedModuleList;
* ``boot_structures`` — the Secure Kernel's memory claimed by VTL1, the x64 low stub
  (PROCESSOR_START_BLOCK) in the first MiB, KUSER_SHARED_DATA at 0xFFFFF78000000000 and
  0x7FFE0000 (the same frame), and the debugger data: KdVersionBlock (_DBGKD_GET_VERSION64) and
  an unencoded KdDebuggerDataBlock (_KDDEBUGGER_DATA64, laid out by Volatility's own kdbg.json),
  so both of Volatility's kernel-finding methods work;
* ``kernel_memory`` — kernel virtual memory, the pools, the PFN database and the pool a running
  system has in use;
* ``objects`` — the object manager's type table (ObTypeIndexTable, ObHeaderCookie-encoded
  TypeIndex, ObpInfoMaskToOffset), executive objects in pool allocations with pool headers,
  optional object headers and object headers;
* ``processes`` — EPROCESS in ``Proc`` allocations linked on PsActiveProcessHead (or not), with
  ``secure_state`` (trustlets and enclave hosts), ``threads`` (``Thre`` allocations on both
  thread lists, with kernel stacks), ``sessions``, ``handle_tables`` (System's holding handles to
  the processes) and WoW64 blocks;
* ``user_memory`` and ``vads`` — user pages with the image's PE header and the PEB, VAD trees of
  ``VadS``/``Vad `` nodes (System's too) with image VADs pointing through subsection and control
  area at a FILE_OBJECT;
* ``results`` — what was built where, for the dump writer and truth.json.

Underneath: ``manifest`` (every symbol, type and field read by name), ``constants`` (Windows
headers and documentation), ``records`` (the one encoder of structures by a symbol table, bit
fields through :mod:`iumdump.structs.flagwords`), ``frames`` (physical frame allocation).

Facts that are not in an ISF are cited where they are used: the PE/COFF layout comes from
Volatility's pe.json (winnt.h), the CodeView record from the PDB 7.0 format, the low stub from the
WRK's amd64.h, x64 pool headers from Volatility's poolheader-x64.json when an ISF lacks
_POOL_HEADER, object type indices from Windows 10's ObTypeIndexTable, what a reader requires of
the kernel from MemProcFS (vmm/vmmwininit.c, vmm/vmmwin.c).
"""

from .build import build_kernel
from .context import KernelContext
from .frames import fill_free_frames
from .results import BuiltProcess, BuiltRegion, KernelBuild

__all__ = ["BuiltProcess", "BuiltRegion", "KernelBuild", "KernelContext", "build_kernel",
           "fill_free_frames"]
