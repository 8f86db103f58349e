"""One dump, one Volatility context, every check: the engine behind ``iumdump analyze``.

The steps, in order, each its own progress bar (none with ``quiet``, none when stderr is not a
terminal):

1. :func:`inspect_dump` checks the file before Volatility sees it — it exists, is a regular file,
   is not empty, and a file that claims to be a crash dump (``PAGEDU64`` / ``PAGEDUMP``) has a
   known dump type and every page its header promises. A file with no known signature is read as
   raw memory. Each problem is one :class:`iumdump.errors.Error` naming the file.
2. :class:`Hasher` computes the sha256 of the evidence in a child process, so hashing runs on
   another core beside Volatility's work instead of adding a second full pass to the wall time.
3. :func:`open_kernel` builds ONE Volatility context and runs automagic ONCE for a Windows kernel
   module (as ``vol`` does for ``windows.psscan``): layers stacked, kernel found by its PDB GUID,
   symbol table loaded from ``-s`` directories, Volatility's own paths, or Volatility's download
   (never with ``offline``). Volatility's failures become one-line errors. It runs inside
   :func:`volatility_settings`, which gives Volatility a private cache and download directory
   so that nothing outside the run's own directory is written or deleted.
4. :func:`collect` lists every process once — the active list and one pool scan, through
   :mod:`.reader` — derives each with :mod:`.derive`, walks the user pages of a few normal
   processes (the control group) and of each secure process with :mod:`.pages`, and judges the
   secure processes' pages against the control group.
   What makes the listing incomplete becomes a note (the report is partial); a symbol table
   that does not fit the kernel is a one-line error.

Volatility's own logging is captured for the report instead of being printed.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import multiprocessing
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from tqdm import tqdm

from .. import hashing
from ..errors import DumpFormatError, Error, InvalidInputError, SymbolError, TruncatedDumpError
from ..isf import KERNEL_PDB_NAMES
from ..structs import crashdump
from ..structs.paging import PAGE_SIZE
from .volatility_env import PrivateDirectory, symbol_search_path

BITMAP_CHUNK = 4 << 20  # reads of a crash dump's page bitmap while counting its pages
MIN_DUMP_SIZE = PAGE_SIZE

# Crash dump signatures (Volatility framework/layers/crash.py): "PAGE" then "DU64" (x64) or
# "DUMP" (x86).
CRASH_SIGNATURE = crashdump.DUMP_SIGNATURE
CRASH_VALID_X64 = crashdump.DUMP_VALID_DUMP64
CRASH_VALID_X86 = crashdump.DUMP_VALID_DUMP
# The dump types read, by architecture: Volatility's crash dump layers read 1 and 5 (x64 and
# x86); iumdump's live dump layer (analysis.livedump) adds the x64 live kernel dump, 6.
SUPPORTED_DUMP_TYPES = {crashdump.DUMP_TYPE_FULL: "full", crashdump.DUMP_TYPE_BITMAP: "bitmap",
                        crashdump.DUMP_TYPE_LIVE_KERNEL: "live"}
SUPPORTED_DUMP_TYPES_X86 = {crashdump.DUMP_TYPE_FULL: "full",
                            crashdump.DUMP_TYPE_BITMAP: "bitmap"}

# Other containers Volatility stacks itself; recognised only to name the format in the report.
OTHER_SIGNATURES = ((b"EMiL", "lime"), (b"\x7fELF", "elf"), (b"KDMV", "vmware-vmss"),
                    (b"\xd2\xbe\xd2\xbe", "vmware-vmss"), (b"\xd0\xbe\xd2\xbe", "vmware-vmss"))
USER_MINIDUMP = b"MDMP"


ProgressCallback = Callable[[float, str], None] | None

log = logging.getLogger(__name__)


# -- 1. the file ---------------------------------------------------------------------------------

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
    dump_type: int | None = None      # a crash dump header's DumpType
    summary_signature: str | None = None  # a bitmap dump's _SUMMARY_DUMP: SDMP or FDMP

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
                    found.summary_signature)


@dataclass(frozen=True)
class _Found:
    """What the header check learnt about the file."""

    kind: str
    expected: int | None = None
    build: int | None = None
    dump_type: int | None = None
    summary_signature: str | None = None


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


def _dump_type(dump_type: int, supported: dict[int, str], architecture: str,
               given: str) -> str:
    """The kind of a supported DumpType; one line naming an unsupported one and the supported
    ones (kdmp-parser-rs and rizin name the types)."""
    if dump_type not in supported:
        name = crashdump.DUMP_TYPE_NAMES.get(dump_type)
        what = f"a {name}" if name else "a type no published parser names"
        choices = ", ".join(f"{number} ({crashdump.DUMP_TYPE_NAMES[number]})"
                            for number in supported)
        raise DumpFormatError(
            f"crash dump type {dump_type} is not a memory dump iumdump reads ({what}); "
            f"supported {architecture} dump types are {choices}", path=given)
    return supported[dump_type]


def _check_crash64(handle, head: bytes, size: int, given: str) -> _Found:
    if len(head) < crashdump.DUMP_HEADER64_SIZE:
        raise _truncated(given, "the x64 crash dump header", crashdump.DUMP_HEADER64_SIZE, size)
    try:
        header = crashdump.parse_dump_header(head)
    except Error as exc:
        raise DumpFormatError(f"unreadable crash dump header: {exc.message}", path=given) from None
    kind = _dump_type(header.DumpType, SUPPORTED_DUMP_TYPES, "x64", given)
    return _check_runs_or_bitmap(handle, kind, header.Runs, crashdump.DUMP_HEADER64_SIZE,
                                 size, given, "crash", header.MinorVersion, header.DumpType)


def _check_crash32(handle, head: bytes, size: int, given: str) -> _Found:
    if size < crashdump.DUMP_HEADER32_SIZE:
        raise _truncated(given, "the x86 crash dump header", crashdump.DUMP_HEADER32_SIZE, size)
    try:
        header = crashdump.parse_dump_header32(head[:crashdump.DUMP_HEADER32_SIZE])
    except Error as exc:
        raise DumpFormatError(f"unreadable crash dump header: {exc.message}", path=given) from None
    kind = _dump_type(header.DumpType, SUPPORTED_DUMP_TYPES_X86, "x86", given)
    return _check_runs_or_bitmap(handle, kind, header.Runs, crashdump.DUMP_HEADER32_SIZE,
                                 size, given, "crash32", header.MinorVersion, header.DumpType)


def _check_runs_or_bitmap(handle, kind: str, runs, header_size: int, size: int, given: str,
                          prefix: str, build: int, dump_type: int) -> _Found:
    """A complete dump must hold every page of its runs; a bitmap dump every page its bitmap
    marks. The _SUMMARY_DUMP of a bitmap dump follows the header (Volatility: page size ×
    header pages)."""
    signature = None
    if kind == "full":
        if not runs:
            raise DumpFormatError("crash dump header lists no physical memory runs", path=given)
        expected = header_size + sum(r.PageCount for r in runs) * PAGE_SIZE
        what = "its header's physical memory runs"
    else:
        expected, signature = _bitmap_dump_size(handle, header_size, size, given)
        what = "its page bitmap"
    if size < expected:
        raise _truncated(given, what, expected, size)
    return _Found(f"{prefix}-{kind}", expected, build or None, dump_type, signature)


def _bitmap_dump_size(handle, offset: int, size: int, given: str) -> tuple[int, str]:
    """HeaderSize + one page per set bit of the _SUMMARY_DUMP bitmap (which is what Volatility
    maps; the header's Pages count is not trusted), and the summary's signature."""
    fixed_end = offset + crashdump.SUMMARY_DUMP_FIXED_SIZE
    if size < fixed_end:
        raise _truncated(given, "the bitmap dump's summary header", fixed_end, size)
    handle.seek(offset)
    fixed = handle.read(crashdump.SUMMARY_DUMP_FIXED_SIZE)
    try:
        header_size, _pages, bitmap_size = crashdump.parse_summary_dump_fixed(fixed)
    except Error as err:
        raise DumpFormatError(f"bitmap dump's summary header: {err}; Windows writes "
                              "b'SDMPDUMP' or b'FDMPDUMP' there", path=given) from None
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
    return header_size + present * PAGE_SIZE, fixed[:4].decode("ascii")


# -- 2. the hash ---------------------------------------------------------------------------------

class _Shared:
    """The thread hasher's counter and stop flag: the ``.value`` of a shared ``RawValue``."""

    value = 0


class Hasher:
    """sha256 of a file, computed in a child process while the analysis runs.

    The hash is one sequential chain that no core can split; in a child process it runs on the
    second core without competing for the GIL (see :mod:`iumdump.hashing`). :meth:`result` waits
    for it, showing a progress bar for whatever is left.

    A daemonic process may not start children (``multiprocessing`` refuses): there — a Dask
    worker started with its default ``distributed.worker.daemon``, say — the same function runs
    in a thread instead, slower beside the analysis but the same digest."""

    def __init__(self, dump: DumpFile) -> None:
        self.dump = dump
        args = (str(dump.path),)
        if multiprocessing.current_process().daemon:
            self._done, self._stop = _Shared(), _Shared()
            self._receiver, sender = multiprocessing.Pipe(duplex=False)
            self._process = threading.Thread(target=hashing.hash_file, name="iumdump-sha256",
                                             args=args + (self._done, self._stop, sender),
                                             daemon=True)
            self._process.start()  # the thread closes its end of the pipe when done
            return
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._done = context.RawValue("Q", 0)
        self._stop = context.RawValue("B", 0)
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=hashing.hash_file, name="iumdump-sha256",
                                        args=args + (self._done, self._stop, sender),
                                        daemon=True)
        self._process.start()
        sender.close()

    @property
    def done(self) -> int:
        return self._done.value

    def cancel(self) -> None:
        self._stop.value = 1
        self._process.join()

    def result(self, quiet: bool = False) -> str:
        # Start the bar where the child already is, so the rate shown is real.
        with phase_bar("Hashing dump (sha256)", quiet, total=self.dump.size, initial=self.done,
                       unit="B", unit_scale=True, unit_divisor=1024) as bar:
            while self._process.is_alive() and not self._receiver.poll(0.1):
                bar.update(self.done - bar.n)
            bar.update(self.done - bar.n)
        try:
            outcome, value = self._receiver.recv()
        except EOFError:
            raise InvalidInputError(f"hashing process ended without a result (exit code "
                                    f"{getattr(self._process, 'exitcode', None)})",
                                    path=self.dump.given) from None
        finally:
            self._process.join()
        if outcome == "oserror":
            raise InvalidInputError(f"cannot read: {value}", path=self.dump.given)
        if outcome != "ok":
            raise InvalidInputError("hashing was cancelled", path=self.dump.given)
        if self.done != self.dump.size:
            raise InvalidInputError(f"changed size while being hashed ({self.dump.size:,} bytes "
                                    f"before, {self.done:,} read)", path=self.dump.given)
        return value


# -- progress ------------------------------------------------------------------------------------

@contextlib.contextmanager
def phase_bar(description: str, quiet: bool, **options) -> Iterator[tqdm]:
    """One tqdm bar for one phase. ``disable=None`` turns bars off when stderr is not a
    terminal, so a redirected run or a failing one prints nothing but its result or one error
    line; ``leave=False`` clears the bar when the phase ends."""
    bar = tqdm(desc=description, disable=True if quiet else None, leave=False,
               dynamic_ncols=True, **options)
    try:
        yield bar
    finally:
        bar.close()


def percent_callback(bar: tqdm, prefix: str) -> Callable[[float, str], None]:
    """A Volatility progress callback (percent, description) that drives a 0–100 bar."""
    state = {"description": None}

    def callback(percent: float, description: str = "") -> None:
        if bar.disable:
            return
        if description != state["description"]:
            state["description"] = description
            bar.set_description_str(f"{prefix}: {description}" if description else prefix,
                                    refresh=False)
        bar.n = max(0.0, min(100.0, round(float(percent), 1)))
        # update(0) redraws at most every mininterval; the ends of a step are always drawn.
        if bar.n in (0.0, 100.0):
            bar.refresh()
        else:
            bar.update(0)

    return callback


# -- 3. Volatility -------------------------------------------------------------------------------

class _CapturedLogs(logging.Handler):
    """Keeps Volatility's warnings for the report instead of letting them reach stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().strip()
        except Exception:  # a malformed log call must not stop the analysis
            message = str(record.msg)
        if message and message not in self.messages:
            self.messages.append(message)


class VolatilityEnvironment:
    """What :func:`volatility_settings` set up for one analysis: the captured log lines
    (``messages``) and the private directory Volatility writes into (``private``)."""

    def __init__(self, captured: _CapturedLogs, private: PrivateDirectory) -> None:
        self._captured = captured
        self.private = private

    @property
    def messages(self) -> list[str]:
        return self._captured.messages

    def location(self, dump: DumpFile) -> str:
        """The URL Volatility opens for ``dump``."""
        return self.private.location(dump.path)

    def downloaded_tables(self) -> dict[str, bytes]:
        """Symbol tables Volatility downloaded in this run (see :class:`PrivateDirectory`)."""
        return self.private.downloaded_tables()


_active: list[VolatilityEnvironment] = []  # innermost volatility_settings last


@contextlib.contextmanager
def volatility_settings(symbol_dirs: Sequence[str], offline: bool
                        ) -> Iterator[VolatilityEnvironment]:
    """Set Volatility's process-wide settings for one analysis and restore them afterwards.

    - Volatility writes nothing of the analyst's: the directory it downloads symbol tables into
      is private to this run and comes first on the symbol path, ahead of the ``-s``
      directories, because Volatility deletes a table it failed to fetch from the first
      writable directory; its cache (``CACHE_PATH``, the ISF validation cache) is iumdump's
      own (:mod:`.volatility_env` has the details).
    - The symbol search path is then the ``-s`` directories and Volatility's defaults, as
      ``vol -s``; ``offline`` is ``vol --offline`` (Volatility refuses every download).
    - Logging is captured rather than printed."""
    import volatility3.symbols
    from volatility3 import schemas
    from volatility3.framework import constants

    saved_path = list(volatility3.symbols.__path__)
    saved_offline = constants.OFFLINE
    saved_cache = constants.CACHE_PATH
    saved_validations = schemas.cached_validation_filepath
    captured = _CapturedLogs()
    loggers = [logging.getLogger(name) for name in ("volatility3", "iumdump.analysis",
                                                    "vol_plugins")]
    saved_loggers = [(lg.propagate, lg.level) for lg in loggers]
    private = PrivateDirectory(saved_cache)
    environment = VolatilityEnvironment(captured, private)
    volatility3.symbols.__path__ = symbol_search_path(private, symbol_dirs)
    constants.CACHE_PATH = str(private.cache)
    schemas.cached_validation_filepath = str(private.validations)
    schemas.cached_validations.update(private.known_validations())
    constants.OFFLINE = bool(offline) or saved_offline
    for logger in loggers:
        logger.addHandler(captured)
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)
    _active.append(environment)
    try:
        yield environment
    finally:
        _active.remove(environment)
        volatility3.symbols.__path__ = saved_path
        constants.OFFLINE = saved_offline
        constants.CACHE_PATH = saved_cache
        schemas.cached_validation_filepath = saved_validations
        for logger, (propagate, level) in zip(loggers, saved_loggers):
            logger.removeHandler(captured)
            logger.propagate = propagate
            logger.setLevel(level)
        private.close()


# Volatility memoises some methods with functools caches on the class (``lru_cache`` keyed by
# the object the method is called on): the objects they keep hold their context.
_CACHE_TYPE = type(functools.lru_cache(maxsize=None)(lambda: None))
_volatility_caches: list = []
_volatility_modules_seen = 0


def release_volatility_caches() -> None:
    """Let go of everything Volatility's process-wide caches keep of finished analyses.

    ``MMVAD_SHORT.get_tag`` (an unbounded ``lru_cache``), ``add_process_layer`` and the layers'
    page-table caches are memoised per object, and each object they keep holds its context —
    the layers and the whole symbol table of the dump it came from. A process that runs
    analysis after analysis (an ``iumdump fleet`` worker) keeps every one: measured, about 37 MB
    more per dump with a real 19041 kernel's table, without bound. Call this between analyses,
    never during one: the caches are cleared (re-scanned for when Volatility has imported new
    modules) and the freed contexts' reference cycles collected at once."""
    global _volatility_modules_seen
    loaded = sum(1 for name in list(sys.modules) if name.startswith("volatility3."))
    if loaded != _volatility_modules_seen:
        _volatility_caches[:] = [
            obj for obj in gc.get_objects() if isinstance(obj, _CACHE_TYPE)
            and (getattr(obj, "__module__", None) or "").startswith("volatility3.")]
        _volatility_modules_seen = loaded
    for cache in _volatility_caches:
        cache.cache_clear()
    gc.collect()


@dataclass(frozen=True)
class KernelInfo:
    """The Windows kernel Volatility found."""

    build: int | None
    build_source: str | None
    pdb_name: str | None
    pdb_guid: str | None
    pdb_age: int | None
    symbols: str | None          # the symbol table's location (isf_url)
    base: int | None             # kernel virtual base
    dtb: int | None              # the kernel's page map (CR3)
    architecture: str | None     # Intel64 / Intel32
    layers: tuple[str, ...] = () # Volatility's layer stack, kernel layer first

    def as_dict(self) -> dict:
        return {"build": self.build, "build_source": self.build_source,
                "pdb_name": self.pdb_name, "pdb_guid": self.pdb_guid, "pdb_age": self.pdb_age,
                "symbols": self.symbols, "base": self.base, "dtb": self.dtb,
                "architecture": self.architecture, "layers": list(self.layers)}


@dataclass
class KernelSession:
    """One Volatility context with the kernel found; every check runs against it."""

    context: object
    kernel_module_name: str
    kernel: KernelInfo
    dump: DumpFile


# The configurable whose requirements automagic satisfies: windows.psscan's (the kernel module as
# every Windows plugin requires it). Using a windows plugin also makes automagic choose only the
# Windows stackers and automagics, exactly as `vol windows.psscan` does.
_BASE_CONFIG_PATH = "plugins"


def open_kernel(dump: DumpFile, *, offline: bool, progress_callback: ProgressCallback = None
                ) -> KernelSession:
    """Stack layers over ``dump`` and find its Windows kernel in one automagic pass. Must run
    inside :func:`volatility_settings`. Raises one-line errors for what Volatility cannot do."""
    from volatility3.framework import automagic, contexts, interfaces
    from volatility3.framework.automagic import stacker
    from volatility3.framework.configuration import requirements
    from volatility3.plugins.windows import psscan

    from . import livedump  # noqa: F401  (registers the DumpType 6 layer with automagic)

    configurable = psscan.PsScan
    context = contexts.Context()
    context.config["automagic.LayerStacker.single_location"] = (
        _active[-1].location(dump) if _active
        else requirements.URIRequirement.location_from_file(str(dump.path)))
    automagics = automagic.choose_automagic(automagic.available(context), configurable)
    context.config["automagic.LayerStacker.stackers"] = stacker.choose_os_stackers(configurable)
    errors = automagic.run(automagics, context, configurable, _BASE_CONFIG_PATH,
                           progress_callback=progress_callback)
    config_path = interfaces.configuration.path_join(_BASE_CONFIG_PATH, configurable.__name__)
    kernel_path = interfaces.configuration.path_join(config_path, "kernel")
    if configurable.unsatisfied(context, config_path):
        raise _explain_unsatisfied(context, kernel_path, dump, offline, errors)
    kernel_module_name = context.config[kernel_path]
    return KernelSession(context, kernel_module_name, kernel_info(context, kernel_module_name,
                                                                  dump), dump)


def _explain_unsatisfied(context, kernel_path: str, dump: DumpFile, offline: bool,
                         errors) -> Error:
    """Turn automagic's silence into the one line an analyst can act on."""
    from volatility3.framework import interfaces
    from volatility3.framework.layers import intel

    join = interfaces.configuration.path_join
    layer_name = context.config.get(join(kernel_path, "layer_name"), None)
    layer = context.layers[layer_name] if layer_name in context.layers else None
    if not isinstance(layer, intel.Intel):
        for excp in errors:  # a layer that recognised its format but could not read it
            text = "".join(excp.format_exception_only()).strip()
            if "CrashDump" in text or "Lime" in text or "Vmware" in text:
                return DumpFormatError(f"Volatility cannot read this dump: {text.splitlines()[-1]}",
                                       path=dump.given)
        return DumpFormatError(
            "no Windows kernel found: Volatility found no x64 or x86 page tables in it "
            f"(read as {dump.format}); is this a memory dump of a Windows machine?",
            path=dump.given)
    kvo = layer.config.get("kernel_virtual_offset", None)
    found = _kernel_pdb(context, layer, kvo) if kvo is not None else None
    if found is None:
        return DumpFormatError(
            "no Windows kernel found: page tables were found but no ntoskrnl image with a "
            "debug (PDB) record", path=dump.given)
    guid_age = f"{found['GUID'].upper()}-{found['age']}"
    pdb = found["pdb_name"]
    where = f"windows/{pdb}/{guid_age}.json.xz"
    unusable = _unusable_table(pdb, guid_age)
    if unusable is not None:
        return unusable
    if offline:
        return SymbolError(f"no symbol table for kernel {guid_age}; pass -s DIR holding {where}, "
                           "or run without --offline to let Volatility download it",
                           path=dump.given)
    return SymbolError(f"no symbol table for kernel {guid_age} and Volatility could not download "
                       f"it; pass -s DIR holding {where}", path=dump.given)


def _unusable_table(pdb: str, guid_age: str) -> Error | None:
    """A table for the kernel that is on the symbol path but that Volatility did not load: name
    the file and say why (it is not readable ISF, or it describes another kernel)."""
    import volatility3.symbols

    from ..isf import SymbolTable
    from .volatility_env import ISF_SUFFIXES

    for directory in volatility3.symbols.__path__:
        for suffix in ISF_SUFFIXES:
            candidate = Path(directory, "windows", pdb, guid_age + suffix)
            if not candidate.is_file():
                continue
            if suffix not in (".json", ".json.xz"):
                return SymbolError(f"symbol table for kernel {guid_age} cannot be loaded by "
                                   "Volatility; replace it with a good copy", path=str(candidate))
            try:
                table = SymbolTable.load(candidate)
                named = f"{table.guid}-{table.age}"
            except SymbolError as err:
                return SymbolError(f"unusable symbol table for kernel {guid_age}: "
                                   f"{err.message}; replace it with a good copy",
                                   path=str(candidate))
            except (KeyError, TypeError, ValueError, AttributeError):
                named = "no kernel"
            if named != guid_age:
                return SymbolError(f"is named for kernel {guid_age} but its metadata describes "
                                   f"{named}: not the symbol table of this kernel",
                                   path=str(candidate))
            return SymbolError(f"symbol table for kernel {guid_age} was not accepted by "
                               "Volatility (not valid ISF?); replace it with a good copy",
                               path=str(candidate))
    return None


def _kernel_pdb(context, layer, kvo: int) -> dict | None:
    """Re-read the kernel's RSDS record at the base automagic settled on (the PDB scanner does
    not keep the GUID when the symbol table is missing): a few pages, not a scan."""
    from volatility3.framework.automagic import pdbscan
    from volatility3.framework.symbols.windows import pdbutil

    try:
        for found in pdbutil.PDBUtility.pdbname_scan(
                context, layer.name, layer.page_size,
                [name.encode() for name in KERNEL_PDB_NAMES],
                start=kvo, end=kvo + pdbscan.KernelPDBScanner.max_pdb_size):
            if isinstance(found.get("GUID"), str):
                return found
    except Exception as exc:  # any failure here just means "no GUID to report"
        log.debug(f"kernel PDB record unreadable: {exc}")
    return None


def kernel_info(context, kernel_module_name: str, dump: DumpFile) -> KernelInfo:
    """Describe the kernel: build, PDB identity, symbol table, base, DTB and layer stack."""
    from volatility3.framework import exceptions
    from volatility3.framework.layers import intel

    from .reader import layer_stack

    kernel = context.modules[kernel_module_name]
    table = context.symbol_space[kernel.symbol_table_name]
    metadata = table.metadata
    pdb_guid = getattr(metadata, "pdb_guid", None)
    pdb_age = getattr(metadata, "pdb_age", None)
    layer = context.layers[kernel.layer_name]
    stack = [type(each).__name__ for each in layer_stack(context, kernel.layer_name)]

    build, source = None, None
    try:
        version = kernel.object(object_type="_DBGKD_GET_VERSION64",
                                offset=kernel.get_symbol("KdVersionBlock").address)
        if int(version.MajorVersion) in (0xF, 0xC) and int(version.MinorVersion):
            build, source = int(version.MinorVersion), "KdVersionBlock.MinorVersion"
    except (exceptions.VolatilityException, AttributeError, KeyError) as exc:
        log.debug(f"KdVersionBlock unreadable: {exc}")
    if build is None:
        try:
            number = int(kernel.object(object_type="unsigned long",
                                       offset=kernel.get_symbol("NtBuildNumber").address))
            if number & 0xFFFF:
                build, source = number & 0xFFFF, "NtBuildNumber"
        except (exceptions.VolatilityException, AttributeError, KeyError) as exc:
            log.debug(f"NtBuildNumber unreadable: {exc}")
    if build is None and dump.build:
        build, source = dump.build, "crash dump header MinorVersion"
    return KernelInfo(
        build=build, build_source=source,
        pdb_name=getattr(metadata, "_json_data", {}).get("pdb", {}).get("database"),
        pdb_guid=pdb_guid.upper() if isinstance(pdb_guid, str) else None,
        pdb_age=pdb_age,
        symbols=table.config.get("isf_url", None),
        base=layer.config.get("kernel_virtual_offset", None),
        dtb=layer.config.get("page_map_offset", None),
        architecture=("Intel64" if isinstance(layer, intel.Intel32e)
                      else "Intel32" if isinstance(layer, intel.Intel) else None),
        layers=tuple(stack),
    )


# -- 4. the checks -------------------------------------------------------------------------------

@dataclass
class Collected:
    """What the checks found: every process once, the page accounting of the secure ones."""

    processes: list = field(default_factory=list)       # DerivedProcess, list order then scan
    pages: dict = field(default_factory=dict)           # EPROCESS offset → ProcessPages
    control: object = None                              # ControlGroup, when pages were walked
    notes: list[str] = field(default_factory=list)      # why the result is partial
    timings: dict[str, float] = field(default_factory=dict)


def collect(session: KernelSession, *, quiet: bool = False) -> Collected:
    """List (active list + one pool scan), derive, and walk the secure processes' pages."""
    from volatility3.framework import exceptions

    from . import pages as page_accounting
    from . import reader
    from .derive import believed_secure, derive_process

    context, kernel = session.context, session.kernel_module_name
    result = Collected()
    secure_objects = []
    listed = []
    started = time.monotonic()
    read = reader.ProcessReader(context, kernel)
    with phase_bar("Processes (active list, then pool scan)", quiet, unit=" processes") as bar:
        try:
            for proc, linked in reader.iter_processes(context, kernel, scan=True,
                                                      problems=result.notes):
                process = derive_process(read(proc, linked=linked))
                result.processes.append(process)
                listed.append((proc, process))
                if believed_secure(process):
                    secure_objects.append((proc, process))
                bar.update(1)
        except reader.SymbolTableMismatch:
            raise
        except exceptions.VolatilityException as exc:
            # Keep what was listed; the report says the list may be incomplete.
            result.notes.append(f"process listing stopped early: {exc}")
    result.timings["processes"] = time.monotonic() - started

    control = None
    shared = page_accounting.shared_user_data_page(context, kernel)
    if secure_objects:
        # The basis of every page verdict: what the dump holds of normal processes' user pages.
        started = time.monotonic()
        with phase_bar("Control group (normal processes' pages)", quiet, total=100.0, unit="%",
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}") as bar:
            control = page_accounting.control_group(
                context, kernel, listed, shared=shared,
                progress_callback=percent_callback(bar, "Control group"))
        result.control = control
        result.timings["control"] = time.monotonic() - started

    started = time.monotonic()
    with phase_bar("Trustlet pages", quiet, total=100.0, unit="%",
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}") as bar:
        count = len(secure_objects)
        for index, (proc, process) in enumerate(secure_objects):
            def stage(percent, text, index=index, name=process.name):
                if not bar.disable:
                    bar.set_description_str(f"Trustlet pages: {name}", refresh=False)
                    bar.n = round((index + percent / 100) * 100 / count, 1)
                    bar.update(0)

            try:
                result.pages[process.offset] = page_accounting.process_pages(
                    context, kernel, proc, pid=process.pid, name=process.name, shared=shared,
                    progress_callback=stage).judged(control)
            except exceptions.VolatilityException as exc:
                result.notes.append(f"pages of PID {process.pid} could not be walked: {exc}")
    result.timings["pages"] = time.monotonic() - started
    return result
