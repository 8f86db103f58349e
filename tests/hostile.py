"""Damaged inputs for the hostile-input tests: dumps patched by name, symbol tables broken on
purpose, a deadline, and fingerprints that prove the inputs were not touched.

Everything is generated in the test's temporary directory from the session's synthesized dumps;
no damaged file is kept in git.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import lzma
import os
import shutil
import signal
import struct
from pathlib import Path

from iumdump.isf import SymbolTable

TIME_LIMIT = 60  # seconds for one plugin run on a 32 MiB dump; a loop would never end
ADDRESS_MASK = 0x000F_FFFF_FFFF_F000


@contextlib.contextmanager
def deadline(seconds: int = TIME_LIMIT):
    def expired(_signum, _frame):
        raise TimeoutError(f"plugin still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Patch:
    """A copy of a dump to damage, addressed the way the original's Volatility context maps it."""

    def __init__(self, original, tmp_path, session):
        self.original = original
        self.path = tmp_path / original.dump_path.name
        shutil.copyfile(original.dump_path, self.path)
        self.result = dataclasses.replace(original, dump_path=self.path)
        context = session.context
        kernel = context.modules[session.kernel_module_name]
        self.kernel_layer = context.layers[kernel.layer_name]
        self.physical = context.layers[self.kernel_layer.config["memory_layer"]]
        self.symbols = SymbolTable.load(original.isf_path)

    def process(self, pid: int) -> dict:
        return next(p for p in self.original.truth["processes"] if p["pid"] == pid)

    def field(self, pid: int, path: str) -> tuple[int, int]:
        """(virtual address, size) of ``_EPROCESS.path`` of process ``pid``."""
        member = self.symbols.member("_EPROCESS", path)
        return self.process(pid)["address"] + member.offset, member.size

    def file_offset(self, physical: int) -> int:
        if hasattr(self.physical, "mapping"):  # a crash dump: physical → file through its runs
            (_, _, offset, _, _), = self.physical.mapping(physical, 1)
            return offset
        return physical

    def read_physical(self, physical: int, length: int) -> bytes:
        return self.physical.read(physical, length)

    def write_physical(self, physical: int, data: bytes) -> None:
        with open(self.path, "r+b") as handle:
            handle.seek(self.file_offset(physical))
            handle.write(data)

    def write_virtual(self, va: int, data: bytes) -> None:
        physical, _ = self.kernel_layer.translate(va & 0xFFFF_FFFF_FFFF)
        self.write_physical(physical, data)

    def write_field(self, pid: int, path: str, value: int | bytes) -> None:
        va, size = self.field(pid, path)
        data = value if isinstance(value, bytes) else value.to_bytes(size, "little")
        assert len(data) == size
        self.write_virtual(va, data)

    def entry_address(self, dtb: int, va: int, level: int) -> int:
        """Physical address of the paging entry for ``va`` at ``level`` (4 PML4E … 1 PTE)."""
        table = dtb & ADDRESS_MASK
        for current in (4, 3, 2, 1):
            address = table + ((va >> (12 + 9 * (current - 1))) & 0x1FF) * 8
            if current == level:
                return address
            (entry,) = struct.unpack("<Q", self.read_physical(address, 8))
            assert entry & 1, f"no table for {va:#x} at level {current}"
            table = entry & ADDRESS_MASK
        raise ValueError(level)

    def write_entry(self, address: int, entry: int) -> None:
        self.write_physical(address, struct.pack("<Q", entry))



def fingerprint(*roots: Path) -> dict[str, tuple[str, int, int]]:
    """``{path: (sha256, size, mtime_ns)}`` of every file under ``roots`` (files or directories):
    equal before and after a run means nothing there was written, replaced or deleted."""
    found: dict[str, tuple[str, int, int]] = {}
    for root in roots:
        files = [Path(root)] if Path(root).is_file() else sorted(Path(root).rglob("*"))
        for file in files:
            if file.is_file():
                info = file.stat()
                digest = hashlib.sha256(file.read_bytes()).hexdigest()
                found[os.fsdecode(file)] = (digest, info.st_size, info.st_mtime_ns)
    return found


def table_copy(original, directory: Path, change=None) -> Path:
    """A symbols directory holding the dump's own symbol table under its own name, changed by
    ``change(data)`` (the parsed ISF, edited in place) when given. Returns the directory."""
    relative = original.isf_path.relative_to(original.symbols_dir)
    target = directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if change is None:
        shutil.copyfile(original.isf_path, target)
        return directory
    data = copy.deepcopy(SymbolTable.load(original.isf_path).data)
    change(data)
    with lzma.open(target, "wt", encoding="utf-8") as handle:
        json.dump(data, handle)
    return directory
