"""The dump file, checked before Volatility sees it: the first step of every analysis.

:func:`inspect_dump` checks that the file exists, is a regular file and is not empty, and that a
file claiming to be a Windows crash dump (``PAGEDU64`` / ``PAGEDUMP``) has a dump type iumdump
reads and holds every page its header promises: the x64 and x86 headers and the bitmap dump's
summary are parsed with their construct definitions (:mod:`iumdump.structs.crashdump`). A file with
no known signature is read as raw memory. Each problem is one :class:`iumdump.errors.Error` naming
the file; nothing here imports Volatility, and the evidence is only ever opened read-only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import DumpFormatError, Error, InvalidInputError, TruncatedDumpError
from ..structs import crashdump
from ..structs.crashdump import DumpType
from ..structs.paging import PAGE_SIZE

BITMAP_CHUNK = 4 << 20  # reads of a crash dump's page bitmap while counting its pages
MIN_DUMP_SIZE = PAGE_SIZE

# Crash dump signatures (Volatility framework/layers/crash.py): "PAGE" then "DU64" (x64) or
# "DUMP" (x86).
CRASH_SIGNATURE = crashdump.DUMP_SIGNATURE
CRASH_VALID_X64 = crashdump.DUMP_VALID_DUMP64
CRASH_VALID_X86 = crashdump.DUMP_VALID_DUMP
# The dump types read, by architecture: Volatility's crash dump layers read 1 and 5 (x64 and
# x86); iumdump's layer (analysis.livedump) adds the x64 kernel bitmap dump, 6.
SUPPORTED_DUMP_TYPES = {DumpType.FULL: "full", DumpType.BITMAP: "bitmap",
                        DumpType.BITMAP_KERNEL: "live"}
SUPPORTED_DUMP_TYPES_X86 = {DumpType.FULL: "full", DumpType.BITMAP: "bitmap"}

# Other containers Volatility stacks itself; recognised only to name the format in the report.
OTHER_SIGNATURES = ((b"EMiL", "lime"), (b"\x7fELF", "elf"), (b"KDMV", "vmware-vmss"),
                    (b"\xd2\xbe\xd2\xbe", "vmware-vmss"), (b"\xd0\xbe\xd2\xbe", "vmware-vmss"))
USER_MINIDUMP = b"MDMP"


@dataclass(frozen=True)
class DumpFile:
    """The evidence file as found before analysis. ``format`` is ``crash-full``,
    ``crash-bitmap``, ``crash-live`` (DumpType 6), ``crash32-full``, ``crash32-bitmap``, a
    container Volatility reads (``lime``, ``elf``, ``vmware-vmss``) or ``raw``."""

    path: Path             # absolute
    given: str             # as the user wrote it, for messages
    size: int
    format: str
    mtime_ns: int
    device: int
    inode: int
    expected_size: int | None = None  # what a crash dump's header says the file must hold
    build: int | None = None          # a crash dump header's MinorVersion (the build number)
    dump_type: DumpType | None = None  # a crash dump header's DumpType
    # A bitmap dump's _SUMMARY_DUMP: SDMP or FDMP, or its eight bytes escaped when they are not
    # what Windows writes (summary_signature_text).
    summary_signature: str | None = None
    # A crash dump header's BugCheckCode: 0x161 (LIVE_SYSTEM_DUMP) for a live dump taken on
    # request, the code of the crash for a dump written at a bug check (Microsoft's bug check
    # code reference).
    bug_check: int | None = None

    def changed(self) -> str | None:
        """Why the file on disk is no longer the file that was analysed, or None."""
        try:
            now = os.stat(self.path)
        except OSError as exc:
            return f"cannot be examined any more: {exc.strerror or exc}"
        if (now.st_size, now.st_mtime_ns, now.st_ino, now.st_dev) != \
                (self.size, self.mtime_ns, self.inode, self.device):
            return "was modified or replaced while it was being analysed"
        return None


def inspect_dump(path: str | os.PathLike) -> DumpFile:
    """Validate the dump at ``path`` without trusting anything in it; raise a one-line
    :class:`Error` naming the file for each way it cannot be a memory dump."""
    given = os.fspath(path)
    absolute = Path(os.path.abspath(given))
    try:
        info = os.stat(absolute)
    except FileNotFoundError:
        raise InvalidInputError("no such file", path=given) from None
    except OSError as exc:
        raise InvalidInputError(f"cannot examine: {exc.strerror or exc}", path=given) from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInputError("is a directory, not a memory dump", path=given)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError("is not a regular file", path=given)
    try:
        # Read-only, and only the header: the evidence is never opened for writing.
        with open(absolute, "rb", buffering=0) as handle:
            head = handle.read(crashdump.DUMP_HEADER64_SIZE)
            size = os.fstat(handle.fileno()).st_size
            found = _classify(handle, head, size, given)
    except OSError as exc:
        raise InvalidInputError(f"cannot read: {exc.strerror or exc}", path=given) from None
    return DumpFile(absolute, given, size, found.kind, info.st_mtime_ns, info.st_dev,
                    info.st_ino, found.expected, found.build, found.dump_type,
                    found.summary_signature, found.bug_check)


@dataclass(frozen=True)
class _Found:
    """What the header check learnt about the file."""

    kind: str
    expected: int | None = None
    build: int | None = None
    dump_type: DumpType | None = None
    summary_signature: str | None = None
    bug_check: int | None = None


def _classify(handle, head: bytes, size: int, given: str) -> _Found:
    if size == 0:
        raise DumpFormatError("is empty (0 bytes), not a memory dump", path=given)
    signature, valid = head[:4], head[4:8]
    if signature == CRASH_SIGNATURE or valid in (CRASH_VALID_X64, CRASH_VALID_X86):
        if signature != CRASH_SIGNATURE or valid not in (CRASH_VALID_X64, CRASH_VALID_X86):
            raise DumpFormatError(
                f"wrong crash dump signature {head[:8]!r}: a Windows crash dump starts with "
                "b'PAGEDU64' (x64) or b'PAGEDUMP' (x86)", path=given)
        if valid == CRASH_VALID_X64:
            return _check_crash64(handle, head, size, given)
        return _check_crash32(handle, head, size, given)
    if signature == USER_MINIDUMP:
        raise DumpFormatError("is a user-mode minidump (MDMP) of one process, not a memory dump "
                              "of the machine", path=given)
    if size < MIN_DUMP_SIZE:
        raise DumpFormatError(f"is {size} bytes, too small to be a memory dump", path=given)
    for magic, name in OTHER_SIGNATURES:
        if head.startswith(magic):
            return _Found(name)
    return _Found("raw")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _truncated(given: str, what: str, expected: int, size: int) -> TruncatedDumpError:
    missing = expected - size
    pages = -(-missing // PAGE_SIZE)
    return TruncatedDumpError(
        f"truncated crash dump: {what} needs {expected:,} bytes but the file has {size:,} "
        f"({_count(missing, 'byte')}, {_count(pages, 'page')}, missing)",
        path=given, offset=size, expected=expected, actual=size)


def _dump_type(dump_type: int, supported: dict[DumpType, str], architecture: str,
               given: str) -> DumpType:
    """The header's DumpType where iumdump reads it; one line naming an unsupported one and the
    supported ones (kdmp-parser-rs and rizin name the types)."""
    if dump_type not in supported:
        name = crashdump.DUMP_TYPE_NAMES.get(dump_type)
        what = f"a {name}" if name else "a type no published parser names"
        choices = ", ".join(f"{int(number)} ({number.description})" for number in supported)
        raise DumpFormatError(
            f"crash dump type {dump_type} is not a memory dump iumdump reads ({what}); "
            f"supported {architecture} dump types are {choices}", path=given)
    return DumpType(dump_type)


def _check_crash64(handle, head: bytes, size: int, given: str) -> _Found:
    if len(head) < crashdump.DUMP_HEADER64_SIZE:
        raise _truncated(given, "the x64 crash dump header", crashdump.DUMP_HEADER64_SIZE, size)
    dump_type = _dump_type(crashdump.header_dump_type(head), SUPPORTED_DUMP_TYPES, "x64", given)
    try:
        header = crashdump.parse_dump_header(
            head, run_list=SUPPORTED_DUMP_TYPES[dump_type] == "full")
    except Error as exc:
        raise DumpFormatError(f"unreadable crash dump header: {exc.message}", path=given) from None
    return _check_runs_or_bitmap(handle, dump_type, SUPPORTED_DUMP_TYPES[dump_type], header,
                                 crashdump.DUMP_HEADER64_SIZE, size, given, "crash")


def _check_crash32(handle, head: bytes, size: int, given: str) -> _Found:
    if size < crashdump.DUMP_HEADER32_SIZE:
        raise _truncated(given, "the x86 crash dump header", crashdump.DUMP_HEADER32_SIZE, size)
    dump_type = _dump_type(crashdump.header_dump_type(head), SUPPORTED_DUMP_TYPES_X86, "x86",
                           given)
    try:
        header = crashdump.parse_dump_header32(
            head[:crashdump.DUMP_HEADER32_SIZE],
            run_list=SUPPORTED_DUMP_TYPES_X86[dump_type] == "full")
    except Error as exc:
        raise DumpFormatError(f"unreadable crash dump header: {exc.message}", path=given) from None
    return _check_runs_or_bitmap(handle, dump_type, SUPPORTED_DUMP_TYPES_X86[dump_type],
                                 header, crashdump.DUMP_HEADER32_SIZE, size, given, "crash32")


def _check_runs_or_bitmap(handle, dump_type: DumpType, kind: str, header, header_size: int,
                          size: int, given: str, prefix: str) -> _Found:
    """A complete dump must hold every page of its runs; a bitmap dump every page its bitmap
    marks (its run list is not read: Volatility locates its pages by the bitmap alone). The
    _SUMMARY_DUMP of a bitmap dump follows the header (Volatility: page size × header pages)."""
    signature = None
    if kind == "full":
        if not header.Runs:
            raise DumpFormatError("crash dump header lists no physical memory runs", path=given)
        expected = header_size + sum(r.PageCount for r in header.Runs) * PAGE_SIZE
        what = "its header's physical memory runs"
    else:
        expected, signature = _bitmap_dump_size(handle, header_size, size, given)
        what = "its page bitmap"
    if size < expected:
        raise _truncated(given, what, expected, size)
    return _Found(f"{prefix}-{kind}", expected, header.MinorVersion or None, dump_type,
                  signature, header.BugCheckCode)


def _bitmap_dump_size(handle, offset: int, size: int, given: str) -> tuple[int, str]:
    """HeaderSize + one page per set bit of the _SUMMARY_DUMP bitmap (which is what Volatility
    maps; the header's Pages count is not trusted), and the summary's signature."""
    fixed_end = offset + crashdump.SUMMARY_DUMP_FIXED_SIZE
    if size < fixed_end:
        raise _truncated(given, "the bitmap dump's summary header", fixed_end, size)
    handle.seek(offset)
    fixed = handle.read(crashdump.SUMMARY_DUMP_FIXED_SIZE)
    try:
        summary = crashdump.read_summary_dump_fixed(fixed)
    except Error as err:
        raise DumpFormatError(f"bitmap dump's summary header: {err}", path=given) from None
    header_size, bitmap_size = summary.header_size, summary.bitmap_size
    bitmap_end = fixed_end + crashdump.bitmap_bytes(bitmap_size)
    if size < bitmap_end:
        raise _truncated(given, f"the page bitmap of {bitmap_size:,} frames", bitmap_end, size)
    if header_size < bitmap_end:
        raise DumpFormatError(f"bitmap dump's HeaderSize {header_size:#x} lies inside its own "
                              f"bitmap (which ends at {bitmap_end:#x})", path=given)
    present = 0
    remaining = crashdump.bitmap_bytes(bitmap_size)
    while remaining:
        chunk = handle.read(min(remaining, BITMAP_CHUNK))
        present += int.from_bytes(chunk, "little").bit_count()
        remaining -= len(chunk)
    if not present:
        raise DumpFormatError("bitmap dump's bitmap marks no page as present", path=given)
    return header_size + present * PAGE_SIZE, summary_signature_text(summary)


def summary_signature_text(summary: crashdump.StoredSummary) -> str:
    """``SDMP`` or ``FDMP`` for a summary header as Windows writes it; otherwise all eight bytes
    as read, escaped (``SDMPDU64``, ``\\x00\\x00\\x00\\x00DUMP``): Volatility reads such a
    file all the same, so it is analysed, and the report says what the header holds."""
    if summary.as_windows_writes:
        return summary.signature[:4].decode("ascii")
    return repr(summary.signature)[2:-1]
