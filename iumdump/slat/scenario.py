"""Scenarios: TOML descriptions of the machine the emulator builds.

A scenario names the processes of one machine and what each one is (pid, parent, session, the
protection byte, whether it is a trustlet or an enclave host, the extended-flag conditions) and,
for processes with a user address space, the regions of user pages and what their frames hold.
Bundled scenarios (``--scenario NAME``) ship as package data in ``iumdump/data/scenarios``, which
``testdata/scenarios`` in the repository points to; any other file can be given by path. Every problem is reported as one :class:`ScenarioError` line naming the file.

Region contents:

* ``readable`` — frames Windows owns, with recognisable non-zero bytes;
* ``zero`` — mapped frames whose content is all zero (a page touched but never written);
* ``secure`` — frames VTL1 took from VTL0 (a trustlet's pages): non-zero, refused to VTL0;
* ``bulk`` / ``secure-bulk`` — the same two kinds for gigabytes: background frames whose content
  is generated on demand, so a dense machine costs no memory until it is written out.
"""

from __future__ import annotations

import datetime as _dt
import random
import re
import sys
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import ScenarioError
from ..structs.paging import PAGE_SIZE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

USER_SPACE_END = 0x0000_7FFF_FFFF_0000  # MmHighestUserAddress + 1 on x64
WOW64_SPACE_END = 0x8000_0000  # a 32-bit process' user space (no /LARGEADDRESSAWARE)


class ProcessKind(str, Enum):
    """What a process is to the kernel that creates it."""

    SYSTEM = "system"  # System (pid 4): the kernel's own process, in the kernel's address space
    MINIMAL = "minimal"  # a minimal process the kernel creates (Registry, MemCompression…)
    USER = "user"  # created from an image file

    def __str__(self) -> str:
        return self.value

    @property
    def created_by_kernel(self) -> bool:
        """System and the minimal processes: made by the kernel itself, from no image file and
        charged no quota; a user process is created from an image file."""
        return self is not ProcessKind.USER


class SecureKind(str, Enum):
    """A process's standing in Virtual Trust Level 1."""

    TRUSTLET = "trustlet"  # an IUM process with a trustlet identity (LsaIso.exe)
    SECURE = "secure"  # an IUM process that is not a trustlet (Secure System)
    # A VTL0 process that owns a secure enclave (SgrmBroker.exe): it has a secure handle but is
    # not secure itself.
    ENCLAVE_HOST = "enclave-host"

    def __str__(self) -> str:
        return self.value

    @property
    def is_secure_process(self) -> bool:
        """An IUM process: SecureState bit 0 set (SecurePid nonzero before 1709)."""
        return self is not SecureKind.ENCLAVE_HOST


KINDS = tuple(kind.value for kind in ProcessKind)
SECURE_KINDS = tuple(kind.value for kind in SecureKind)
CONTENTS = ("readable", "zero", "secure", "bulk", "secure-bulk")
PAGE_KINDS = ("none", "readable", "secure")
# WinNT.h page protections a VAD can carry (vadinfo prints these names).
PROTECTIONS = ("PAGE_NOACCESS", "PAGE_READONLY", "PAGE_EXECUTE", "PAGE_EXECUTE_READ",
               "PAGE_READWRITE", "PAGE_WRITECOPY", "PAGE_EXECUTE_READWRITE",
               "PAGE_EXECUTE_WRITECOPY")
# Package data, so an installed (not only an editable) iumdump finds them for `iumdump demo`.
SCENARIO_DIR = Path(__file__).resolve().parents[1] / "data" / "scenarios"
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RegionSpec:
    """A range of user pages described by one VAD."""

    start: int
    pages: int
    protection: str = "PAGE_READWRITE"
    content: str = "readable"
    image: bool = False  # an image mapping (a long VAD with the file name) rather than private
    peb: bool = False  # the region holds the PEB (a WoW64 process: PEB32, then the PEB)

    @property
    def end(self) -> int:
        """The last byte of the region, as vadinfo prints End VPN."""
        return self.start + self.pages * PAGE_SIZE - 1

    @property
    def secure(self) -> bool:
        return self.content in ("secure", "secure-bulk")

    @property
    def bulk(self) -> bool:
        return self.content in ("bulk", "secure-bulk")


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the scenario, as the kernel is to lay it out."""

    name: str
    pid: int
    ppid: int
    kind: ProcessKind = ProcessKind.USER
    session: int | None = None
    secure: SecureKind | None = None
    trustlet_id: int | None = None
    protection: int = 0
    linked: bool = True
    threads: int = 1
    wow64: bool = False
    deleting: bool = False
    cross_session: bool = False
    frozen: bool = False
    background: bool = False
    subsystem: bool = False
    priority: int = 8
    created: float = 60.0  # seconds after boot
    exited: float | None = None  # seconds after boot; set for every deleting process
    image_path: str = ""
    regions: tuple[RegionSpec, ...] = ()

    @property
    def has_address_space(self) -> bool:
        return self.kind is not ProcessKind.SYSTEM

    @property
    def image_base(self) -> int:
        images = [r.start for r in self.regions if r.image]
        return images[0] if images else 0


@dataclass(frozen=True)
class FleetSpec:
    """Parameters of a dense machine (fleet-large); ``None`` means derived from memory size."""

    processes: int = 400
    trustlet_pages: int | None = None  # default: one eighth of RAM (262,144 pages at 8 GiB)
    pool_mb: int | None = None  # mapped non-paged pool; default: RAM / 16
    process_pages: int | None = None  # user pages per generated process; default: RAM / 5 shared
    fill: float = 0.9  # fraction of all frames in use at the end


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    vbs: bool
    memory_size: int
    processors: int
    boot_time: _dt.datetime
    system_time: _dt.datetime
    processes: tuple[ProcessSpec, ...]
    fleet: FleetSpec | None = None
    source: str = "<memory>"

    def process(self, pid: int) -> ProcessSpec:
        for spec in self.processes:
            if spec.pid == pid:
                return spec
        raise ScenarioError(f"no process with pid {pid}", path=self.source)


# -- sizes ---------------------------------------------------------------------------------------
def parse_size(text: str | int) -> int:
    """``"64M"`` → 67108864; ``"8G"``, ``"512K"``, ``"1GiB"`` and plain byte counts work too."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE_RE.match(str(text))
        if not match:
            raise ScenarioError(f"memory size {text!r} is not a number with an optional K/M/G/T suffix")
        value = int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[
            match.group(2).upper()]
    if value <= 0 or value % PAGE_SIZE:
        raise ScenarioError(f"memory size {text!r} is not a positive multiple of 4 KiB")
    return value


def format_size(size: int) -> str:
    for suffix, shift in (("G", 30), ("M", 20), ("K", 10)):
        if size % (1 << shift) == 0:
            return f"{size >> shift}{suffix}"
    return str(size)


# -- loading -------------------------------------------------------------------------------------
def bundled_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def resolve(name_or_path: str | Path) -> Path:
    """A bundled scenario's name (``credential-guard``) or a path to a TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists() or "/" in str(name_or_path):
        if not candidate.is_file():
            raise ScenarioError("scenario file not found", path=str(candidate))
        return candidate
    bundled = SCENARIO_DIR / f"{name_or_path}.toml"
    if not bundled.is_file():
        known = ", ".join(bundled_scenarios()) or "none"
        raise ScenarioError(f"no scenario named {name_or_path!r} (bundled: {known})")
    return bundled


def load(name_or_path: str | Path, *, params: dict[str, Any] | None = None) -> Scenario:
    """Load and validate a scenario; ``params`` override keys of its ``[fleet]`` table."""
    path = resolve(name_or_path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML: {exc}", path=str(path)) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", path=str(path)) from None
    return from_dict(data, source=str(path), params=params)


def from_dict(data: dict, *, source: str = "<memory>",
              params: dict[str, Any] | None = None) -> Scenario:
    reader = _Reader(source)
    return reader.scenario(data, params or {})


class _Reader:
    """Type-checked access to the TOML document, every failure a one-line ScenarioError."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ScenarioError:
        return ScenarioError(f"{where}: {message}" if where else message, path=self.source)

    def get(self, table: dict, key: str, kind, where: str, default=...):
        if key not in table:
            if default is ...:
                raise self.fail(where, f"missing required key '{key}'")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(where, f"'{key}' must be {_kind_names(kinds)}, not a boolean")
        if not isinstance(value, kinds):
            raise self.fail(where, f"'{key}' must be {_kind_names(kinds)}, not {type(value).__name__}")
        return value

    def check_keys(self, table: dict, allowed: set[str], where: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(where, f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")

    def scenario(self, data: dict, params: dict[str, Any]) -> Scenario:
        self.check_keys(data, {"name", "description", "vbs", "memory", "processors", "boot_time",
                               "system_time", "process", "fleet"}, "")
        name = self.get(data, "name", str, "")
        vbs = self.get(data, "vbs", bool, "")
        memory = self.get(data, "memory", (str, int), "", "64M")
        try:
            memory_size = parse_size(memory)
        except ScenarioError as exc:
            raise self.fail("", exc.message) from None
        processors = self.get(data, "processors", int, "", 2)
        if not 1 <= processors <= 64:
            raise self.fail("", f"processors must be 1..64, not {processors}")
        boot = self._time(data, "boot_time", _dt.datetime(2024, 5, 14, 8, 2, 11, tzinfo=_dt.timezone.utc))
        now = self._time(data, "system_time", boot + _dt.timedelta(hours=1, minutes=39, seconds=16))
        if now <= boot:
            raise self.fail("", "system_time must be after boot_time")
        raw = self.get(data, "process", list, "", [])
        lifetime = (now - boot).total_seconds()
        processes = [self.process(entry, index, lifetime) for index, entry in enumerate(raw)]
        fleet = None
        if "fleet" in data or params:
            fleet = self.fleet(self.get(data, "fleet", dict, "", {}), params)
        if not processes and fleet is None:
            raise self.fail("", "a scenario needs at least one [[process]]")
        scenario = Scenario(name=name, description=self.get(data, "description", str, "", ""),
                            vbs=vbs, memory_size=memory_size, processors=processors,
                            boot_time=boot, system_time=now, processes=tuple(processes),
                            fleet=fleet, source=self.source)
        self.validate(scenario)
        return scenario

    def _time(self, data: dict, key: str, default: _dt.datetime) -> _dt.datetime:
        value = self.get(data, key, _dt.datetime, "", default)
        if value.tzinfo is None:
            raise self.fail("", f"'{key}' needs a time zone offset (e.g. 2024-05-14T08:02:11Z)")
        if not 1999 <= value.year <= 2100:
            raise self.fail("", f"'{key}' year {value.year} is outside 1999..2100")
        return value.astimezone(_dt.timezone.utc)

    def process(self, entry: Any, index: int, lifetime: float) -> ProcessSpec:
        if not isinstance(entry, dict):
            raise self.fail(f"process #{index + 1}", "must be a table ([[process]])")
        where = f"process #{index + 1}"
        name = self.get(entry, "name", str, where)
        where = f"process #{index + 1} ({name})"
        self.check_keys(entry, {"name", "pid", "ppid", "kind", "session", "secure", "trustlet_id",
                                "protection", "linked", "threads", "wow64", "deleting",
                                "cross_session", "frozen", "background", "subsystem", "priority",
                                "created", "exited", "image_path", "pages", "region"}, where)
        if not name or len(name.encode("ascii", "replace")) > 255 or "\x00" in name:
            raise self.fail(where, "name must be 1..255 printable characters")
        pid = self.get(entry, "pid", int, where)
        if pid <= 0 or pid % 4 or pid > 0xFFFFFFFC:
            raise self.fail(where, f"pid {pid} is not a positive multiple of 4 (NT process ids are)")
        ppid = self.get(entry, "ppid", int, where, 0)
        if ppid < 0 or ppid % 4:
            raise self.fail(where, f"ppid {ppid} is not a multiple of 4")
        kind = self.get(entry, "kind", str, where, "system" if pid == 4 else "user")
        if kind not in KINDS:
            raise self.fail(where, f"kind {kind!r} is not one of {', '.join(KINDS)}")
        kind = ProcessKind(kind)
        if (kind is ProcessKind.SYSTEM) != (pid == 4):
            raise self.fail(where, "exactly the process with pid 4 is kind 'system'")
        session = self.get(entry, "session", int, where, None)
        if session is not None and not 0 <= session < 0x10000:
            raise self.fail(where, f"session {session} is out of range")
        secure = self.get(entry, "secure", (str, bool), where, None)
        if secure is False:
            secure = None
        if secure is not None and secure not in SECURE_KINDS:
            raise self.fail(where, f"secure must be one of {', '.join(SECURE_KINDS)} or false")
        secure = SecureKind(secure) if secure is not None else None
        trustlet_id = self.get(entry, "trustlet_id", int, where, None)
        if trustlet_id is not None and secure is not SecureKind.TRUSTLET:
            raise self.fail(where, "trustlet_id is only for secure = \"trustlet\"")
        if secure is SecureKind.TRUSTLET and trustlet_id is None:
            trustlet_id = 0
        protection = self.get(entry, "protection", int, where, 0)
        if not 0 <= protection <= 0xFF:
            raise self.fail(where, f"protection {protection:#x} is not a byte")
        threads = self.get(entry, "threads", int, where, 1)
        if not 0 <= threads <= 512:
            raise self.fail(where, f"threads {threads} is out of range 0..512")
        priority = self.get(entry, "priority", int, where, 8)
        if not 0 <= priority <= 31:
            raise self.fail(where, f"priority {priority} is out of range 0..31")
        created = self.get(entry, "created", (int, float), where, 60.0 + pid / 100)
        if created < 0:
            raise self.fail(where, "created must be seconds after boot (>= 0)")
        if created >= lifetime:
            raise self.fail(where, f"created {created} s is not before system_time "
                                   f"({lifetime:.0f} s after boot)")
        flags = {key: self.get(entry, key, bool, where, default) for key, default in (
            ("linked", True), ("wow64", False), ("deleting", False), ("cross_session", False),
            ("frozen", False), ("background", False), ("subsystem", False))}
        exited = self._exit_time(entry, where, created, lifetime, flags)
        default_pages = "none" if kind.created_by_kernel or flags["deleting"] else (
            "secure" if secure is SecureKind.TRUSTLET else "readable")
        pages = self.get(entry, "pages", str, where, default_pages)
        if pages not in PAGE_KINDS:
            raise self.fail(where, f"pages must be one of {', '.join(PAGE_KINDS)}")
        image_path = self.get(entry, "image_path", str, where, default_image_path(name))
        spec = ProcessSpec(name=name, pid=pid, ppid=ppid, kind=kind, session=session,
                           secure=secure, trustlet_id=trustlet_id, protection=protection,
                           threads=threads, priority=priority, created=float(created),
                           exited=exited, image_path=image_path, **flags)
        explicit = self.get(entry, "region", list, where, None)
        if explicit is not None:
            regions = tuple(self.region(item, f"{where} region #{i + 1}", spec)
                            for i, item in enumerate(explicit))
        else:
            regions = default_regions(spec, pages)
        return replace(spec, regions=regions)

    def _exit_time(self, entry: dict, where: str, created: float, lifetime: float,
                   flags: dict[str, bool]) -> float | None:
        """ExitTime in seconds after boot. A process that has exited has ProcessDelete set (its
        last thread is gone; the object lives on while something references it), so ``exited``
        implies ``deleting``; a deleting process without ``exited`` exited shortly before the
        dump was taken."""
        exited = self.get(entry, "exited", (int, float), where, None)
        if exited is None:
            if not flags["deleting"]:
                return None
            return max(created + 5.0, lifetime - 3.0)
        if "deleting" in entry and not flags["deleting"]:
            raise self.fail(where, "a process that has exited is deleting (ProcessDelete); "
                                   "leave out deleting = false")
        if not created <= exited < lifetime:
            raise self.fail(where, f"exited {exited} s must lie between created ({created} s) "
                                   f"and system_time ({lifetime:.0f} s after boot)")
        flags["deleting"] = True
        return float(exited)

    def region(self, item: Any, where: str, spec: ProcessSpec) -> RegionSpec:
        if not isinstance(item, dict):
            raise self.fail(where, "must be a table ([[process.region]])")
        self.check_keys(item, {"start", "pages", "protection", "content", "image", "peb"}, where)
        start = self.get(item, "start", int, where)
        pages = self.get(item, "pages", int, where)
        protection = self.get(item, "protection", str, where, "PAGE_READWRITE")
        content = self.get(item, "content", str, where, "readable")
        image = self.get(item, "image", bool, where, False)
        peb = self.get(item, "peb", bool, where, False)
        if start % PAGE_SIZE or start <= 0:
            raise self.fail(where, f"start {start:#x} is not a page-aligned user address")
        if pages <= 0:
            raise self.fail(where, "pages must be positive")
        if protection not in PROTECTIONS:
            raise self.fail(where, f"protection {protection!r} is not one of {', '.join(PROTECTIONS)}")
        if content not in CONTENTS:
            raise self.fail(where, f"content {content!r} is not one of {', '.join(CONTENTS)}")
        limit = WOW64_SPACE_END if spec.wow64 and start < WOW64_SPACE_END else USER_SPACE_END
        if start + pages * PAGE_SIZE > limit:
            raise self.fail(where, f"region {start:#x}+{pages} pages leaves the user address space")
        if peb and (image or content in ("bulk", "secure-bulk") or pages < (2 if spec.wow64 else 1)):
            raise self.fail(where, "the PEB region must be private, not bulk, and hold the "
                                   "PEB (and a WoW64 process' PEB32)")
        return RegionSpec(start=start, pages=pages, protection=protection, content=content,
                          image=image, peb=peb)

    def fleet(self, table: dict, params: dict[str, Any]) -> FleetSpec:
        allowed = {"processes", "trustlet_pages", "pool_mb", "process_pages", "fill"}
        self.check_keys(table, allowed, "[fleet]")
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise self.fail("[fleet]", f"unknown parameter '{unknown[0]}' "
                                       f"(allowed: {', '.join(sorted(allowed))})")
        merged = {**table, **params}
        values: dict[str, Any] = {}
        for key in ("processes", "trustlet_pages", "pool_mb", "process_pages"):
            value = merged.get(key, "auto")
            if value == "auto" and key != "processes":
                values[key] = None
                continue
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise self.fail("[fleet]", f"{key} must be a whole number or \"auto\", not {value!r}") from None
            if number < 0 or (key == "processes" and number > 20000):
                raise self.fail("[fleet]", f"{key} {number} is out of range")
            values[key] = number
        try:
            fill = float(merged.get("fill", 0.9))
        except (TypeError, ValueError):
            raise self.fail("[fleet]", f"fill must be a fraction, not {merged.get('fill')!r}") from None
        if not 0.0 <= fill <= 1.0:
            raise self.fail("[fleet]", f"fill {fill} is not a fraction between 0 and 1")
        return FleetSpec(fill=fill, **values)

    def validate(self, scenario: Scenario) -> None:
        seen: dict[int, str] = {}
        for spec in scenario.processes:
            if spec.pid in seen:
                raise self.fail("", f"pid {spec.pid} is used by both {seen[spec.pid]} and {spec.name}")
            seen[spec.pid] = spec.name
            if spec.secure and not scenario.vbs:
                raise self.fail("", f"{spec.name} (pid {spec.pid}) is secure but the scenario has vbs = false")
            if any(r.secure for r in spec.regions) and spec.secure is not SecureKind.TRUSTLET:
                raise self.fail("", f"{spec.name} (pid {spec.pid}) has secure pages but is not a trustlet")
            if spec.regions and not spec.has_address_space:
                raise self.fail("", f"{spec.name} (pid {spec.pid}) is the System process and has no user pages")
            ordered = sorted(spec.regions, key=lambda r: r.start)
            for before, after in zip(ordered, ordered[1:]):
                if before.end >= after.start:
                    raise self.fail("", f"{spec.name} (pid {spec.pid}): regions at {before.start:#x} "
                                        f"and {after.start:#x} overlap")
            if sum(r.peb for r in spec.regions) > 1:
                raise self.fail("", f"{spec.name} (pid {spec.pid}) has more than one PEB region")
            if spec.wow64 and spec.subsystem:
                raise self.fail("", f"{spec.name} (pid {spec.pid}) cannot be both WoW64 and a subsystem process")
        if 4 not in seen and scenario.processes:
            raise self.fail("", "the scenario has no System process (pid 4)")


def _kind_names(kinds: tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "an array", dict: "a table", _dt.datetime: "a date-time"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


# -- defaults ------------------------------------------------------------------------------------
# Where the images that do not live in System32 are installed on a Windows 10 machine (folders
# relative to the system volume; the default is \Windows\System32).
_IMAGE_FOLDERS = {
    "explorer.exe": r"\Windows",
    "msmpeng.exe": r"\ProgramData\Microsoft\Windows Defender\Platform\4.18.24030.9-0",
    "chrome.exe": r"\Program Files\Google\Chrome\Application",
    "msedge.exe": r"\Program Files (x86)\Microsoft\Edge\Application",
    "onedrive.exe": r"\Users\analyst\AppData\Local\Microsoft\OneDrive",
    "teams.exe": r"\Users\analyst\AppData\Local\Microsoft\Teams\current",
    "code.exe": r"\Users\analyst\AppData\Local\Programs\Microsoft VS Code",
    "outlook.exe": r"\Program Files\Microsoft Office\root\Office16",
    "searchapp.exe": r"\Windows\SystemApps\Microsoft.Windows.Search_cw5n1h2txyewy",
    "init": r"\Windows\System32\lxss\tools",
}
SYSTEM_VOLUME = r"\Device\HarddiskVolume3"


def default_image_path(name: str) -> str:
    """Where Windows keeps the image of a process of this name: the NT device path the kernel
    records in SeAuditProcessCreationInfo."""
    folder = _IMAGE_FOLDERS.get(name.lower(), r"\Windows\System32")
    return rf"{SYSTEM_VOLUME}{folder}\{name}"


def default_regions(spec: ProcessSpec, pages: str) -> tuple[RegionSpec, ...]:
    """The user regions of a process that only says what its pages hold: image, PEB, stack, heap
    (and a zero-filled page run for ordinary processes). Addresses depend on the pid only, like
    ASLR seeded per process, so a scenario's layout is stable across seeds."""
    if pages == "none" or not spec.has_address_space:
        return ()
    content = "secure" if pages == "secure" else "readable"
    rng = random.Random(f"regions:{spec.pid}:{spec.name}")
    if spec.wow64:
        image = 0x0040_0000 + rng.randrange(0x10, 0x200) * 0x10000
        peb = 0x0030_0000 + rng.randrange(0, 0x10) * 0x1000
        stack = 0x0010_0000
        heap = 0x0060_0000 + rng.randrange(0x40, 0x100) * 0x10000
    else:
        image = 0x7FF6_0000_0000 + rng.randrange(0x1000, 0xFFFF) * 0x10000
        peb = 0x0000_0010_0000_0000 + rng.randrange(0x100, 0xF000) * 0x100000 + rng.randrange(0, 0x100) * 0x1000
        stack = 0x0000_0000_0010_0000 + rng.randrange(0x10, 0x300) * 0x100000
        heap = 0x0000_0200_0000_0000 + rng.randrange(0x100, 0xF000) * 0x100000
    regions = [RegionSpec(image, 6, "PAGE_EXECUTE_WRITECOPY", content, image=True),
               RegionSpec(peb, 2 if spec.wow64 else 1, "PAGE_READWRITE", content, peb=True),
               RegionSpec(stack, 3, "PAGE_READWRITE", content),
               RegionSpec(heap, 5, "PAGE_READWRITE", content)]
    if content == "readable":
        regions.append(RegionSpec(heap + 0x100000, 2, "PAGE_READWRITE", "zero"))
    return tuple(sorted(regions, key=lambda r: r.start))


# -- fleet expansion -----------------------------------------------------------------------------
_FLEET_NAMES = ("svchost.exe", "RuntimeBroker.exe", "chrome.exe", "msedge.exe", "conhost.exe",
                "dllhost.exe", "taskhostw.exe", "sihost.exe", "ctfmon.exe", "SearchApp.exe",
                "backgroundTaskHost.exe", "OneDrive.exe", "Teams.exe", "WmiPrvSE.exe",
                "audiodg.exe", "spoolsv.exe", "powershell.exe", "cmd.exe", "code.exe",
                "outlook.exe")


@dataclass(frozen=True)
class FleetPlan:
    """A fleet scenario resolved against a memory size: every count is a number of pages."""

    trustlet_pages: int
    pool_pages: int  # a multiple of 512 (2 MiB large pages)
    process_pages: int
    fill: float


def pool_pages_for(pool_mb: int) -> int:
    """Pages of pool mapped with 2 MiB pages for ``pool_mb`` MiB (whole large pages)."""
    return (pool_mb // 2) * 512


def default_pool_pages(memory_size: int) -> int:
    """The non-paged pool a running machine has in use beyond what the emulator writes:
    RAM / 16, as fleet-large's ``pool_mb = "auto"``."""
    return pool_pages_for((memory_size >> 20) // 16)


def default_paged_pool_pages(memory_size: int) -> int:
    """The paged pool in use: RAM / 8 — a booted Windows holds more paged than non-paged pool
    (registry hives, section and file-system structures live there)."""
    return (memory_size >> 12) // 8


def plan_fleet(fleet: FleetSpec, memory_size: int) -> FleetPlan:
    frames = memory_size // PAGE_SIZE
    trustlet = fleet.trustlet_pages if fleet.trustlet_pages is not None else frames // 8
    pool_pages = (pool_pages_for(fleet.pool_mb) if fleet.pool_mb is not None
                  else default_pool_pages(memory_size))
    per_process = fleet.process_pages
    if per_process is None:
        per_process = max(8, frames // 5 // max(fleet.processes, 1))
    return FleetPlan(trustlet_pages=trustlet, pool_pages=pool_pages, process_pages=per_process,
                     fill=fleet.fill)


def expand_fleet(scenario: Scenario, memory_size: int) -> tuple[tuple[ProcessSpec, ...], FleetPlan | None]:
    """The scenario's processes plus the generated fleet: ``processes`` more user processes with
    bulk pages, and the trustlet (the first trustlet of the scenario) grown by ``trustlet_pages``
    pages of secure bulk memory."""
    if scenario.fleet is None:
        return scenario.processes, None
    plan = plan_fleet(scenario.fleet, memory_size)
    processes = list(scenario.processes)
    for index, spec in enumerate(processes):
        if spec.secure is SecureKind.TRUSTLET and plan.trustlet_pages:
            start = 0x0000_0100_0000_0000
            grown = spec.regions + (RegionSpec(start, plan.trustlet_pages, "PAGE_READWRITE",
                                               "secure-bulk"),)
            processes[index] = replace(spec, regions=tuple(sorted(grown, key=lambda r: r.start)))
            break
    rng = random.Random(f"fleet:{scenario.name}")
    used = {spec.pid for spec in processes}
    parents = [spec.pid for spec in processes
               if spec.kind is ProcessKind.USER and spec.session is not None]
    pid = max(used) + 4
    for number in range(scenario.fleet.processes):
        while pid in used:
            pid += 4
        used.add(pid)
        name = _FLEET_NAMES[number % len(_FLEET_NAMES)]
        session = 0 if name in ("svchost.exe", "WmiPrvSE.exe", "spoolsv.exe", "audiodg.exe") else 1
        ppid = rng.choice(parents) if parents else 4
        spec = ProcessSpec(name=name, pid=pid, ppid=ppid, session=session, threads=rng.randint(1, 4),
                           created=120.0 + number, image_path=default_image_path(name))
        regions = list(default_regions(spec, "readable"))
        bulk_start = 0x0000_0300_0000_0000 + rng.randrange(0, 0x1000) * 0x10000000
        if plan.process_pages:
            regions.append(RegionSpec(bulk_start, plan.process_pages, "PAGE_READWRITE", "bulk"))
        processes.append(replace(spec, regions=tuple(sorted(regions, key=lambda r: r.start))))
        pid += rng.choice((4, 8, 12, 16, 20, 28))
    return tuple(processes), plan


def scenario_summary(scenario: Scenario) -> str:
    trustlets = [p.name for p in scenario.processes if p.secure is SecureKind.TRUSTLET]
    return (f"{scenario.name}: {len(scenario.processes)} processes, VBS {'on' if scenario.vbs else 'off'}"
            + (f", trustlets {', '.join(trustlets)}" if trustlets else ""))


__all__ = ["CONTENTS", "FleetPlan", "FleetSpec", "KINDS", "PROTECTIONS", "ProcessKind",
           "ProcessSpec", "RegionSpec", "SCENARIO_DIR", "SECURE_KINDS", "Scenario", "SecureKind",
           "bundled_scenarios",
           "default_image_path", "default_paged_pool_pages", "default_pool_pages",
           "default_regions", "expand_fleet",
           "format_size", "from_dict", "load", "parse_size", "plan_fleet", "resolve",
           "scenario_summary"]

