"""``synthesize``: scenario → SLAT machine → synthetic kernel → acquisition writer → files.

Writes into ``out_dir``:

* ``memory.raw`` or ``memory.dmp`` — the dump, as the chosen acquisition tool would write it;
* ``symbols/windows/<pdb>/<GUID>-<AGE>.json.xz`` — the kernel's symbol table where Volatility's
  ``-s`` looks for it (``vol -f out/memory.dmp -s out/symbols windows.pslist``);
* ``truth.json`` — what the emulator built (see :mod:`iumdump.slat.truth`).

Defaults: the ``credential-guard`` scenario, a ``crash-bitmap`` dump (a bitmap dump is what Windows
writes, and it is the format where VTL1 pages are simply missing), the built-in
19041 profile, the scenario's memory size (64 MiB for the bundled ones), seed 0. The same inputs
always give byte-identical outputs.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm import tqdm

from ..atomic import atomic_output
from ..errors import InvalidInputError, ScenarioError, SymbolError
from ..isf import KERNEL_PDB_NAMES, SymbolTable, isf_file_name
from .kernel import KernelBuild, KernelContext, build_kernel, fill_free_frames
from .kernel.constants import KERNEL_LOW_FRAMES, SHARED_CONTENT, windows_time
from .machine import FrameRanges, SlatMachine
from .memory import FrameAllocator, GuestPhysicalMemory
from .pagetables import LARGE_PAGE_FRAMES
from .scenario import (
    Scenario, default_paged_pool_pages, default_pool_pages, expand_fleet, load, parse_size,
)
from .truth import build_truth, write_truth
from .writers import (
    FORMATS, KERNEL_ONLY_FORMATS, KernelFacts, WriteResult, default_filename, write_dump,
)

DEFAULT_SCENARIO = "credential-guard"
DEFAULT_FORMAT = "crash-bitmap"
MIN_MEMORY = 16 << 20  # Volatility's DTB scan and the kernel's own frames need the first 10 MiB
PROGRESS_THRESHOLD = 64  # phases with fewer items than this get no progress bar


@dataclass(frozen=True)
class SynthResult:
    """Where ``synthesize`` put things, and the truth it recorded."""

    dump_path: Path
    symbols_dir: Path  # give this to Volatility's -s
    truth_path: Path
    truth: dict[str, Any]
    isf_path: Path  # the symbol table file inside symbols_dir
    format: str
    scenario: str
    kernel: KernelBuild
    write: WriteResult


def synthesize(scenario: str | os.PathLike | Scenario = DEFAULT_SCENARIO,
               out_dir: str | os.PathLike = "out", *, fmt: str = DEFAULT_FORMAT,
               isf: str | os.PathLike | None = None, memory_size: int | str | None = None,
               seed: int = 0, params: dict[str, Any] | None = None,
               progress: bool = True) -> SynthResult:
    """Build the machine a scenario describes and write its dump, symbols and truth.

    ``scenario`` is a bundled name, a TOML path or a loaded :class:`Scenario`; ``isf`` a Volatility
    symbol table for the kernel (default: the built-in 19041 profile); ``memory_size`` bytes or a
    size like ``"8G"`` (default: the scenario's); ``params`` override a fleet scenario's
    ``[fleet]`` keys (``processes``, ``trustlet_pages``, ``pool_mb``, ``process_pages``, ``fill``).
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown dump format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if isinstance(scenario, Scenario):
        if params:
            raise ScenarioError("params apply to a scenario loaded by name or path")
        loaded = scenario
    else:
        loaded = load(scenario, params=params)
    size = loaded.memory_size if memory_size is None else parse_size(memory_size)
    if size < MIN_MEMORY:
        raise ScenarioError(f"memory size {size >> 20} MiB is below the minimum of "
                            f"{MIN_MEMORY >> 20} MiB", path=loaded.source)
    symbols, profile = _symbol_table(isf)

    processes, plan = expand_fleet(loaded, size)
    bulk_pages = sum(r.pages for p in processes for r in p.regions if r.bulk)
    # Pool in use: non-paged (2 MiB pages) a fleet's pool_mb or RAM / 16; paged RAM / 8, as far
    # as the bulk area leaves the kernel its first 16 MiB (a tiny machine has none).
    pool_pages = plan.pool_pages if plan else default_pool_pages(size)
    if pool_pages:
        bulk_pages += pool_pages + LARGE_PAGE_FRAMES  # slack for 2 MiB alignment
    paged_pool_pages = max(0, min(default_paged_pool_pages(size),
                                  size // 4096 - KERNEL_LOW_FRAMES - 1 - bulk_pages))
    bulk_pages += paged_pool_pages
    if bulk_pages and bulk_pages > size // 4096 - KERNEL_LOW_FRAMES:
        raise ScenarioError(f"{bulk_pages} pages of bulk memory (trustlet, pool and process "
                            f"pages) do not fit in {size >> 20} MiB; lower the fleet parameters "
                            f"or raise --memory", path=loaded.source)

    memory = GuestPhysicalMemory(size, seed=seed)
    machine = SlatMachine(memory)
    kernel = KernelContext(
        machine, symbols, seed=seed, processors=loaded.processors, boot_time=loaded.boot_time,
        system_time=loaded.system_time, vbs=loaded.vbs,
        allocator=FrameAllocator(memory, reserved=[(0, 1)]), bulk_pages=bulk_pages,
        progress=_progress_factory(progress))
    built = build_kernel(kernel, processes, pool_pages=pool_pages,
                         paged_pool_pages=paged_pool_pages)
    if plan is not None:
        fill_free_frames(kernel, plan.fill)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    facts = KernelFacts(
        directory_table_base=built.dtb, pfn_database=built.pfn_database,
        ps_loaded_module_list=built.ps_loaded_module_list,
        ps_active_process_head=built.ps_active_process_head,
        kd_debugger_data_block=built.kdbg, number_processors=built.number_processors,
        system_time=built.system_time, machine_image_type=built.machine_type,
        minor_version=built.build,
        system_up_time=built.system_time - windows_time(loaded.boot_time))
    dump_path = out / default_filename(fmt)
    not_kernel = (not_kernel_frames(built, kernel.standby_frames)
                  if fmt in KERNEL_ONLY_FORMATS else None)
    result = write_dump(machine, dump_path, fmt, facts, progress=progress, not_kernel=not_kernel)
    symbols_dir = out / "symbols"
    isf_path = _write_symbols(symbols, isf, symbols_dir)
    truth = build_truth(scenario=loaded.name, fmt=fmt, seed=seed, memory=memory, kernel=built,
                        write_result=result, profile=profile, dump_name=dump_path.name,
                        boot_time=loaded.boot_time)
    truth_path = out / "truth.json"
    write_truth(truth_path, truth)
    return SynthResult(dump_path=dump_path, symbols_dir=symbols_dir, truth_path=truth_path,
                       truth=truth, isf_path=isf_path, format=fmt, scenario=loaded.name,
                       kernel=built, write=result)


def not_kernel_frames(built: KernelBuild, standby: Iterable[tuple[int, int]]) -> FrameRanges:
    """The frames that are not kernel memory: every process's user pages (but the shared user
    data page, a kernel frame every process maps) and the standby pages no one maps. What a live
    kernel dump, and a kernel memory dump written at a bug check, leave out."""
    ranges: list[tuple[int, int]] = list(standby)
    for process in built.processes:
        for region in process.regions:
            if region.spec.content == SHARED_CONTENT:
                continue
            pfns = region.pfns
            if isinstance(pfns, range):
                ranges.append((pfns.start, pfns.stop))
            else:
                ranges.extend((pfn, pfn + 1) for pfn in pfns)
    return FrameRanges(ranges)


def _symbol_table(isf: str | os.PathLike | None) -> tuple[SymbolTable, str]:
    if isf is None:
        from .profile import builtin_symbol_table
        symbols, profile = builtin_symbol_table(), "builtin"
    else:
        symbols, profile = SymbolTable.load(isf), str(isf)
    if symbols.pdb_name.lower() not in KERNEL_PDB_NAMES:
        raise SymbolError(f"symbol table is for {symbols.pdb_name}, not an NT kernel "
                          f"({', '.join(KERNEL_PDB_NAMES)})", path=symbols.source)
    return symbols, profile


def _write_symbols(symbols: SymbolTable, isf: str | os.PathLike | None, symbols_dir: Path) -> Path:
    """Put the symbol table where Volatility's symbol finder looks: windows/<pdb>/<GUID>-<AGE>."""
    target_dir = symbols_dir / "windows" / symbols.pdb_name
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / isf_file_name(symbols.guid, symbols.age)
    with atomic_output(target, what="symbol table") as out:
        if isf is not None and str(isf).endswith(".json.xz"):
            with open(isf, "rb") as source:
                shutil.copyfileobj(source, out)
        else:
            with lzma.open(out, "wt", encoding="utf-8") as compressed:
                json.dump(symbols.data, compressed, sort_keys=True)
    return target


def _progress_factory(enabled: bool) -> Callable[[Iterable, str, int], Iterable]:
    def wrap(items: Iterable, label: str, total: int) -> Iterable:
        if not enabled or total < PROGRESS_THRESHOLD:
            return items
        return tqdm(items, desc=f"synth: {label}", total=total, unit=" items", leave=False)
    return wrap


__all__ = ["DEFAULT_FORMAT", "DEFAULT_SCENARIO", "FORMATS", "SynthResult", "synthesize"]
