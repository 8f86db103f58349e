"""Building a synthetic kernel for a test and reading it back: the symbol tables (the real ones
skip when ../shared/isf lacks them), a kernel built from a bundled scenario, and a reader of its
kernel virtual memory that decodes fields by name from the same symbol table."""

from __future__ import annotations

from pathlib import Path

import pytest

from iumdump.isf import SymbolTable
from iumdump.slat import scenario as scenarios
from iumdump.slat.kernel import KernelContext, build_kernel
from iumdump.slat.machine import SlatMachine
from iumdump.slat.memory import GuestPhysicalMemory
from iumdump.slat.profile import builtin_symbol_table
from iumdump.structs.flagwords import flag_word

SHARED = Path(__file__).resolve().parents[4] / "shared" / "isf"
REAL = {"14393": SHARED / "517E128F7B7C4EA79491DE6B9B9CE190-1.json.xz",
        "19041": SHARED / "606FF669409B00F7FC8C61A9C1670129-1.json.xz"}
PROFILES = ("builtin", "14393", "19041")
_tables: dict[str, SymbolTable] = {}


def symbols(profile: str) -> SymbolTable:
    if profile not in _tables:
        if profile == "builtin":
            _tables[profile] = builtin_symbol_table()
        else:
            if not REAL[profile].is_file():
                pytest.skip(f"{REAL[profile]} is absent")
            _tables[profile] = SymbolTable.load(REAL[profile])
    return _tables[profile]


def context(profile: str, scenario: str = "credential-guard", *, seed: int = 0,
            memory: int = 32 << 20) -> tuple[KernelContext, SlatMachine]:
    """A kernel context for ``scenario``'s machine, nothing built yet."""
    loaded = scenarios.load(scenario)
    machine = SlatMachine(GuestPhysicalMemory(memory, seed=seed))
    kernel = KernelContext(machine, symbols(profile), seed=seed, processors=loaded.processors,
                           boot_time=loaded.boot_time, system_time=loaded.system_time,
                           vbs=loaded.vbs)
    return kernel, machine


def build(profile: str, scenario: str = "credential-guard", *, seed: int = 0,
          memory: int = 32 << 20):
    kernel, machine = context(profile, scenario, seed=seed, memory=memory)
    return kernel, build_kernel(kernel, scenarios.load(scenario).processes), machine


class Reader:
    """Reads kernel virtual memory of a built machine through its System address space."""

    def __init__(self, kernel: KernelContext, machine: SlatMachine) -> None:
        self.kernel, self.memory = kernel, machine.memory
        self.symbols = kernel.symbols

    def read(self, va: int, length: int, space=None) -> bytes:
        space = space or self.kernel.system_space
        out = b""
        while length:
            pa = space.translate(va)
            assert pa is not None, f"{va:#x} is not mapped"
            chunk = min(0x1000 - (va & 0xFFF), length)
            out += self.memory.read(pa, chunk)
            va, length = va + chunk, length - chunk
        return out

    def u(self, va: int, size: int = 8) -> int:
        return int.from_bytes(self.read(va, size), "little")

    def field(self, type_name: str, base: int, path: str) -> int:
        """A field by name; a bit field decoded with its flag word from the symbol table."""
        member = self.symbols.member(type_name, path)
        if member.bit_position is None:
            return self.u(base + member.offset, member.size)
        word = flag_word(self.symbols, type_name, path)
        value = word.decode(self.u(base + word.offset, word.size))
        return int(value[path.rsplit(".", 1)[-1]])
