"""Pure derivations: EPROCESS field values → secure state, flags, protection text, verdicts.

Nothing here touches a dump. :mod:`iumdump.analysis.eprocess` turns an EPROCESS into a
:class:`~iumdump.analysis.fields.ProcessFields` of plain values (read by name from the kernel's
symbol table); the functions below turn those values into what the plugins, the CLI and the
reports print. Windows
facts and the flag derivations are those of DESIGN §4; names and values of DESIGN §5.

A value the dump cannot supply is ``None`` and carries a reason (:class:`Unknown`): the build's
symbols lack the field, the memory holding it could not be read, or no EPROCESS field carries it
at all. Unknown is an answer in its own right and is never turned into False.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, replace

from ..structs.process_info import FLAG_NAMES, BasicInformation, ExtendedBasicInformation
from ..structs.protection import PsProtectedSigner, PsProtectedType, parse_protection
from .fields import ProcessFields, Unknown

# -- process verdicts (DESIGN §5, windows.secureprocs) ------------------------------------------
SECURE = "secure"
NORMAL = "normal"
ENCLAVE_HOST = "enclave-host"
MASQUERADE = "masquerade"
VERDICTS = (SECURE, NORMAL, ENCLAVE_HOST, MASQUERADE)

# Trustlet images Windows ships (DESIGN §1). ImageFileName holds at most 15 characters; every name
# here fits, so an exact case-insensitive comparison is enough.
KNOWN_TRUSTLET_IMAGES = ("LsaIso.exe", "vmsp.exe", "BioIso.exe", "FsIso.exe")
_KNOWN_TRUSTLET_KEYS = frozenset(name.lower() for name in KNOWN_TRUSTLET_IMAGES)

# Trustlet IDs of the trustlets Windows 10 ships: Windows Internals, 7th edition, Part 1
# (Yosifovich, Ionescu, Russinovich, Solomon), chapter 3, "Trustlets", the table of built-in
# trustlets — 1 LsaIso.exe (Credential and Key Guard), 2 vmsp.exe (secure virtual machine worker,
# vTPM), 3 vTPM key enrollment (no image named), 4 BioIso.exe (secure biometrics), 5 FsIso.exe
# (secure frame server). Second-hand, so used to annotate and to infer, never as a reading.
TRUSTLET_IDENTITIES = {1: "LsaIso", 2: "vmsp", 3: "vTPM enrollment", 4: "BioIso", 5: "FsIso"}
TRUSTLET_IMAGE_IDS = {"lsaiso.exe": 1, "vmsp.exe": 2, "bioiso.exe": 4, "fsiso.exe": 5}
READ = "read"
INFERRED = "inferred"

# SecureState: bit 0 SecureProcess, bit 1 Unused/TrustedApp; the rest is the secure handle.
SECURE_PROCESS_BIT = 1 << 0
TRUSTED_APP_BIT = 1 << 1
SECURE_HANDLE_MASK = ~(SECURE_PROCESS_BIT | TRUSTED_APP_BIT)

FLAG_BITS = {name: bit for bit, name in enumerate(FLAG_NAMES)}

# Where a kernel has neither _KPROCESS.SecurePid nor SecureState (Windows 7, 8.1): no process can
# be secure, and this is the reason given for Secure False (DESIGN §4).
PREDATES_VBS = "kernel predates VBS"

# -- trustlet page regions (DESIGN §5, windows.trustletpages) -----------------------------------
INACCESSIBLE = "inaccessible"
PARTIALLY_READABLE = "partially-readable"
READABLE = "readable"
# Nothing of the region is in the dump, and neither are most of the normal processes' user pages
# (the control group): the dump cannot show whether VTL1 protected it.
NOT_CAPTURED = "not-captured"
# The KUSER_SHARED_DATA page every process maps: never the process's own memory.
SHARED_USER_DATA = "shared-user-data"
REGION_VERDICTS = (INACCESSIBLE, PARTIALLY_READABLE, READABLE, NOT_CAPTURED, SHARED_USER_DATA)
PARTIAL_SUFFIX = " (partial)"


@dataclass(frozen=True)
class FlagState:
    """One PROCESS_EXTENDED_BASIC_INFORMATION flag as derived from a dump."""

    name: str
    bit: int
    value: bool | None
    source: str | None  # the EPROCESS field it came from (None when not derivable)
    reason: Unknown | None = None  # why value is None

    @property
    def known(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class ExtendedFlags:
    """The ten flags, in bit order."""

    flags: tuple[FlagState, ...]

    def __getitem__(self, name: str) -> FlagState:
        for state in self.flags:
            if state.name == name:
                return state
        raise KeyError(name)

    def __iter__(self):
        return iter(self.flags)

    @property
    def value(self) -> int:
        """The Flags ULONG. An unknown flag contributes 0, as it would in the bytes
        NtQueryInformationProcess fills; :attr:`unknown` says which bits that covers."""
        word = 0
        for state in self.flags:
            if state.value:
                word |= 1 << state.bit
        return word

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(state.name for state in self.flags if state.value is None)

    def as_dict(self) -> dict[str, bool | None]:
        """``{name: True | False | None}``, the form of truth.json and report.json."""
        return {state.name: state.value for state in self.flags}


@dataclass(frozen=True)
class SecureInfo:
    """The secure state of a process (DESIGN §4)."""

    secure: bool | None
    secure_handle: int | None  # SecureState with bits 0–1 cleared, or SecurePid
    trusted_app: bool | None
    source: str | None
    reason: Unknown | None = None


@dataclass(frozen=True)
class TrustletIdentity:
    """A trustlet's identity and how it is known: ``read`` from ``_EPROCESS.TrustletIdentity``
    (up to 1703), or ``inferred`` from the image path of a genuine trustlet (``source`` is then
    that path). An inference is never presented as a reading."""

    id: int
    basis: str  # READ or INFERRED
    source: str

    @property
    def name(self) -> str | None:
        return TRUSTLET_IDENTITIES.get(self.id)

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "basis": self.basis, "source": self.source}


@dataclass(frozen=True)
class DerivedProcess:
    """Everything the plugins and reports say about one process."""

    fields: ProcessFields
    secure: SecureInfo
    flags: ExtendedFlags
    protection_text: str | None
    trustlet_id: int | None  # as read; None where the build has no TrustletIdentity
    verdict: str | None  # None when the secure state is unknown
    trustlet_identity: TrustletIdentity | None = None  # read, else inferred; None: unknown
    implied_trustlet_id: int | None = None  # what a genuine trustlet image path implies
    doubts: tuple[str, ...] = ()  # values no Windows kernel writes (see implausible_values)

    pid = property(lambda self: self.fields.pid)
    ppid = property(lambda self: self.fields.ppid)
    name = property(lambda self: self.fields.name)
    offset = property(lambda self: self.fields.offset)
    linked = property(lambda self: self.fields.linked)
    image_path = property(lambda self: self.fields.image_path)
    create_time = property(lambda self: filetime_to_datetime(self.fields.create_time))
    exit_time = property(lambda self: filetime_to_datetime(self.fields.exit_time))

    @property
    def exited(self) -> bool:
        """An ExitTime is set: the process has exited (its EPROCESS lives on while referenced)."""
        return self.exit_time is not None

    @property
    def minimal(self) -> bool | None:
        return None if self.fields.minimal is None else bool(self.fields.minimal)

    @property
    def has_trustlet_identity(self) -> bool:
        """Whether this build's EPROCESS has TrustletIdentity at all (else: N/A)."""
        return self.fields.layout.trustlet_identity is not None

    @property
    def partial(self) -> bool:
        return self.fields.partial


# -- secure state, protection, verdict ----------------------------------------------------------

def derive_secure(fields: ProcessFields) -> SecureInfo:
    """Secure from SecureState bit 0 (1709+) or SecurePid != 0 (1507–1703). The secure handle is
    the SecureState word with bits 0–1 masked off; bit 1 is TrustedApp only where so named. A
    kernel with neither field predates VBS: Secure is False, its source :data:`PREDATES_VBS`."""
    layout = fields.layout
    if layout.secure_state is not None:
        word = fields.secure_state
        if word is None:
            return SecureInfo(None, None, None, layout.secure_state, fields.reason("secure_state"))
        trusted = bool(word & TRUSTED_APP_BIT) if layout.trusted_app is not None else None
        return SecureInfo(bool(word & SECURE_PROCESS_BIT), word & SECURE_HANDLE_MASK, trusted,
                          layout.secure_state)
    if layout.secure_pid is not None:
        if fields.secure_pid is None:
            return SecureInfo(None, None, None, layout.secure_pid, fields.reason("secure_pid"))
        return SecureInfo(fields.secure_pid != 0, fields.secure_pid, None, layout.secure_pid)
    # Neither field: a kernel from before VBS (Windows 7, 8.1), where nothing can be secure.
    return SecureInfo(False, None, None, PREDATES_VBS)


def derive_protection_text(level: int | None) -> str | None:
    """``0x41`` → ``ProtectedLight/Lsa``; None (unknown) stays None."""
    return None if level is None else parse_protection(level).text


def is_defined_protection(level: int) -> bool:
    """Whether a PS_PROTECTION byte has a type and signer Windows defines (an undefined one
    in a dump means smear or tampering: Windows never sets it)."""
    protection = parse_protection(level)
    return (protection.type in PsProtectedType.__members__.values()
            and protection.signer in PsProtectedSigner.__members__.values())


# A Windows handle is a 32-bit value: "only the lower 32 bits are significant", and a 64-bit
# handle is those sign-extended (Microsoft, "Interprocess Communication Between 32-bit and 64-bit
# Applications"); bits 0-1 are tag bits the system ignores (OBJ_HANDLE_TAGBITS, ntdef.h), which
# is why the kernel can keep SecureProcess and TrustedApp there. Negative values -1 to -6 are
# pseudo-handles, never stored: the current process, thread, session and the current process,
# thread and effective tokens (GetCurrentProcess, GetCurrentThread, winbase.h;
# GetCurrentProcessToken & co., processthreadsapi.h).
_HANDLE_HIGH_BITS = 0xFFFF_FFFF_0000_0000
_PSEUDO_HANDLES = range(0xFFFF_FFFF_FFFF_FFFA, 1 << 64)  # (HANDLE)-6 … (HANDLE)-1


def is_plausible_handle(value: int) -> bool:
    """Whether ``value`` (a 64-bit word, flag bits 0-1 included or masked) can be a handle a
    Windows handle table issued: a 32-bit value, zero- or sign-extended, not a pseudo-handle."""
    high = value & _HANDLE_HIGH_BITS
    if high == _HANDLE_HIGH_BITS:  # sign-extended: bit 31 set, and no pseudo-handle even with
        # its tag bits put back (the kernel masks them off)
        return bool(value & 0x8000_0000) and (value | 3) not in _PSEUDO_HANDLES
    return high == 0


def is_process_id(pid: int) -> bool:
    """Process ids are handles of the kernel's CID table (PspCidTable; Windows Internals 7th ed.
    part 1, ch. 3): a multiple of 4 (two tag bits) below 2**26 (a 24-bit table index, the
    executive handle format _EXHANDLE, MAX_HANDLES 1 << 24 in the Windows Research Kernel).
    Id 0 is the Idle process, whose EPROCESS is in no list and no pool."""
    return 0 < pid < 1 << 26 and not pid & 3


def implausible_values(fields: ProcessFields) -> tuple[str, ...]:
    """Values in this EPROCESS that no Windows kernel writes, each as a sentence (smear, a
    damaged dump or tampering): the analysis reports them and does not build on them."""
    if fields.problems:
        return ()  # not a process at all (its problems say why): its values mean nothing
    doubts = []
    if fields.pid is not None and not is_process_id(fields.pid):
        doubts.append(f"UniqueProcessId {fields.pid} is not a process id Windows issues")
    if fields.protection is not None and not is_defined_protection(fields.protection):
        doubts.append(f"Protection {fields.protection:#04x} has a type or signer Windows does "
                      "not define (smear or tampering?)")
    return tuple(doubts) + secure_state_doubts(fields)


def secure_state_doubts(fields: ProcessFields) -> tuple[str, ...]:
    """The part of :func:`implausible_values` about the secure state (SecureState, SecurePid):
    a process with such doubts is not believed to be secure (:func:`believed_secure`)."""
    doubts: list[str] = []
    layout = fields.layout
    if fields.problems:
        return ()
    if layout.secure_state is not None and fields.secure_state is not None:
        word = fields.secure_state
        if word & TRUSTED_APP_BIT and layout.trusted_app is None:
            doubts.append(f"{layout.secure_state} {word:#x} sets bit 1, which this build's "
                          "symbols name Unused (TrustedApp only from 24H2)")
        handle = word & SECURE_HANDLE_MASK
        if word & SECURE_PROCESS_BIT and not handle:
            doubts.append(f"{layout.secure_state} {word:#x} marks a secure process but holds no "
                          "secure handle")
        elif handle and not is_plausible_handle(handle):
            doubts.append(f"{layout.secure_state} {word:#x} holds secure handle {handle:#x}, "
                          "which no Windows handle table issues")
    elif layout.secure_pid is not None and fields.secure_pid:
        if not is_plausible_handle(fields.secure_pid) or fields.secure_pid & 3:
            doubts.append(f"{layout.secure_pid} {fields.secure_pid:#x} is not an id a Windows "
                          "handle table issues")
    return tuple(doubts)


def believed_secure(process: "DerivedProcess") -> bool:
    """A secure process whose secure state is plausible and whose EPROCESS lies where the
    kernel allocates processes: one whose trustlet pages are worth walking and reporting."""
    return (process.verdict == SECURE and not process.fields.problems
            and not secure_state_doubts(process.fields))


# How the secureprocs Verdict column (and the reports' verdict cells) qualify a verdict the row
# cannot be taken at its word for; the bare verdict stays first, so ``split(" (")[0]`` gives it.
IMPLAUSIBLE_SUFFIX = " (implausible)"


def render_process_verdict(verdict: str, *, implausible: bool, partial: bool) -> str:
    """A process's verdict as a row shows it: ``secure (implausible)`` where the EPROCESS holds a
    value no Windows kernel writes (:func:`implausible_values`; one in the secure state means
    the analysis does not count it as secure), ``normal (partial)`` where the row is partial
    (for the plugin: the object is not where a process can be), both in that order."""
    return (verdict + (IMPLAUSIBLE_SUFFIX if implausible else "")
            + (PARTIAL_SUFFIX if partial else ""))


def is_known_trustlet_image(name: str | None) -> bool:
    return name is not None and name.lower() in _KNOWN_TRUSTLET_KEYS


def derive_verdict(name: str | None, secure: bool | None, secure_handle: int | None) -> str | None:
    """masquerade (a trustlet's image name on a process that is not secure) > secure >
    enclave-host (a secure handle without bit 0) > normal. None when the secure state is unknown:
    neither "secure" nor "not secure" can be claimed then."""
    if secure is None:
        return None
    if not secure and is_known_trustlet_image(name):
        return MASQUERADE
    if secure:
        return SECURE
    if secure_handle:
        return ENCLAVE_HOST
    return NORMAL


# -- PROCESS_EXTENDED_BASIC_INFORMATION flags ---------------------------------------------------

def _bit_flag(name: str, fields: ProcessFields, attribute: str) -> FlagState:
    source = getattr(fields.layout, attribute)
    value = getattr(fields, attribute)
    if source is None:
        return FlagState(name, FLAG_BITS[name], None, None, Unknown.ABSENT)
    if value is None:
        return FlagState(name, FLAG_BITS[name], None, source, fields.reason(attribute))
    return FlagState(name, FLAG_BITS[name], bool(value), source)


def derive_flags(fields: ProcessFields, secure: SecureInfo | None = None) -> ExtendedFlags:
    """The ten flags of DESIGN §4, each with the field it came from, unknown (None) where not."""
    secure = secure or derive_secure(fields)
    layout = fields.layout
    states: list[FlagState] = []

    if layout.protection is None:
        # Windows 7 has no PS_PROTECTION; a legacy flag bit marks its protected processes.
        states.append(_bit_flag("IsProtectedProcess", fields, "protected_process"))
    elif fields.protection is None:
        states.append(FlagState("IsProtectedProcess", 0, None, layout.protection + ".Type",
                                fields.reason("protection")))
    else:
        states.append(FlagState("IsProtectedProcess", 0,
                                parse_protection(fields.protection).is_protected,
                                layout.protection + ".Type"))
    states.append(_bit_flag("IsWow64Process", fields, "wow64_process"))
    states.append(_bit_flag("IsProcessDeleting", fields, "process_delete"))
    states.append(_bit_flag("IsCrossSessionCreate", fields, "cross_session_create"))
    states.append(_bit_flag("IsFrozen", fields, "deep_freeze"))
    states.append(_bit_flag("IsBackground", fields, "background"))
    # Package identity lives in the token, not in EPROCESS.
    states.append(FlagState("IsStronglyNamed", FLAG_BITS["IsStronglyNamed"], None, None,
                            Unknown.NOT_DERIVABLE))
    states.append(FlagState("IsSecureProcess", FLAG_BITS["IsSecureProcess"], secure.secure,
                            secure.source, secure.reason))
    states.append(_bit_flag("IsSubsystemProcess", fields, "subsystem_process"))
    if layout.trusted_app is None:
        states.append(FlagState("IsTrustedApp", FLAG_BITS["IsTrustedApp"], None, None,
                                Unknown.ABSENT))
    else:
        states.append(FlagState("IsTrustedApp", FLAG_BITS["IsTrustedApp"], secure.trusted_app,
                                layout.trusted_app, secure.reason))
    return ExtendedFlags(tuple(states))


def derive_trustlet_identity(fields: ProcessFields, secure: bool | None
                             ) -> tuple[TrustletIdentity | None, int | None]:
    """(identity, implied id). The identity is read where the build keeps TrustletIdentity;
    elsewhere (1809+, or unreadable) a secure process whose image is a Windows trustlet in
    ``\\Windows\\System32`` gets the id its image implies, labelled as inferred. Any other
    image stays unknown (None)."""
    implied = implied_trustlet_id(fields.image_path) if secure else None
    if fields.layout.trustlet_identity is not None and fields.trustlet_identity is not None:
        return TrustletIdentity(fields.trustlet_identity, READ, fields.layout.trustlet_identity), \
            implied
    if implied is not None:
        return TrustletIdentity(implied, INFERRED, fields.image_path), implied
    return None, implied


def derive_process(fields: ProcessFields) -> DerivedProcess:
    secure = derive_secure(fields)
    trustlet_id = fields.trustlet_identity if fields.layout.trustlet_identity is not None else None
    identity, implied = derive_trustlet_identity(fields, secure.secure)
    return DerivedProcess(
        fields=fields,
        secure=secure,
        flags=derive_flags(fields, secure),
        protection_text=derive_protection_text(fields.protection),
        trustlet_id=trustlet_id,
        verdict=derive_verdict(fields.name, secure.secure, secure.secure_handle),
        trustlet_identity=identity,
        implied_trustlet_id=implied,
        doubts=implausible_values(fields),
    )


# -- times ------------------------------------------------------------------------------------

FILETIME_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)
FILETIME_TICKS_PER_SECOND = 10_000_000  # a FILETIME counts 100 ns intervals


def filetime_to_datetime(value: int | None) -> _dt.datetime | None:
    """A FILETIME as UTC, to the whole second (as Volatility's ``wintime_to_datetime`` shows it);
    None for 0 (never set, e.g. ExitTime of a running process) and for a value outside the
    calendar (negative, or past year 9999: smear or tampering)."""
    if not value or value < 0:
        return None
    try:
        return FILETIME_EPOCH + _dt.timedelta(seconds=value // FILETIME_TICKS_PER_SECOND)
    except OverflowError:
        return None


# -- image paths ------------------------------------------------------------------------------
# SeAuditProcessCreationInfo.ImageFileName holds the NT device path of the process's image
# (\Device\HarddiskVolume3\Windows\System32\lsass.exe); the minimal processes keep their bare
# name there (Registry, MemCompression) and System none (DESIGN §4; windows.pstree's Audit).

SYSTEM32 = ("windows", "system32")


def is_file_path(path: str | None) -> bool:
    """Whether the audit name is an NT path (not a minimal process's bare name)."""
    return bool(path) and path.startswith("\\")


def split_device(path: str) -> tuple[str, tuple[str, ...]]:
    """``(device, components)`` of an NT path: ``\\Device\\HarddiskVolume3\\Windows\\x.exe`` →
    ``("\\Device\\HarddiskVolume3", ("Windows", "x.exe"))``; a DOS-device path (``\\??\\C:\\…``)
    keeps its drive as the device; ``\\SystemRoot`` stands for the system volume's Windows."""
    parts = [part for part in path.split("\\")]
    parts = parts[1:] if parts and parts[0] == "" else parts
    lowered = [part.lower() for part in parts]
    if len(parts) >= 2 and lowered[0] in ("device", "??", "global??"):
        return "\\" + "\\".join(parts[:2]), tuple(parts[2:])
    if parts and lowered[0] == "systemroot":
        return "\\SystemRoot", ("Windows",) + tuple(parts[1:])
    return "", tuple(parts)


def image_file_name(path: str | None) -> str | None:
    """The file name at the end of an image path."""
    if not is_file_path(path):
        return None
    return path.rsplit("\\", 1)[-1] or None


def in_system32(path: str | None) -> bool:
    """The image lies under ``\\Windows\\System32\\`` of its volume (no ``.`` or ``..`` steps,
    no empty components: the kernel records normalized paths)."""
    if not is_file_path(path):
        return False
    device, parts = split_device(path)
    if not device or len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
        return False
    return tuple(part.lower() for part in parts[:2]) == SYSTEM32


def implied_trustlet_id(path: str | None) -> int | None:
    """The trustlet id a Windows trustlet image in System32 implies; None for any other image."""
    if not in_system32(path):
        return None
    _device, parts = split_device(path)
    if len(parts) != 3:  # directly in System32, where Windows installs its trustlets
        return None
    return TRUSTLET_IMAGE_IDS.get(parts[2].lower())


@dataclass(frozen=True)
class BasicInfoValue:
    """One member of PROCESS_BASIC_INFORMATION and the ProcessFields attribute that supplies it;
    ``hexadecimal`` where it is an address, a mask or an NTSTATUS (how windows.extbasicinfo shows
    it)."""

    name: str
    attribute: str
    hexadecimal: bool


# In the structure's order (its columns in windows.extbasicinfo, DESIGN §5).
BASIC_INFO = (
    BasicInfoValue("ExitStatus", "exit_status", True),
    BasicInfoValue("PebBaseAddress", "peb", True),
    BasicInfoValue("AffinityMask", "affinity", True),
    BasicInfoValue("BasePriority", "base_priority", False),
    BasicInfoValue("UniqueProcessId", "pid", False),
    BasicInfoValue("InheritedFromUniqueProcessId", "ppid", False),
)


def extended_basic_information(process: DerivedProcess, arch: str = "x64"
                               ) -> ExtendedBasicInformation | None:
    """What NtQueryInformationProcess(ProcessBasicInformation) with the extended size would have
    returned, or None when one of the BasicInfo values is unknown (a made-up 0 there would be a
    lie). Unknown flags are 0 in the Flags word, as documented on :attr:`ExtendedFlags.value`."""
    values = {}
    for member in BASIC_INFO:
        value = getattr(process.fields, member.attribute)
        if value is None:
            return None
        values[member.name] = value
    return ExtendedBasicInformation(basic_info=BasicInformation(**values),
                                    flags=process.flags.as_dict(), arch=arch)


# -- trustlet pages ---------------------------------------------------------------------------

def region_verdict(pages: int, absent: int, zero_filled: int, readable: int) -> str:
    """inaccessible: nothing of the region's content is in the dump (every mapped page is absent
    or zero-filled, or none is mapped); readable: every mapped page has content;
    partially-readable: in between."""
    if absent + zero_filled + readable != pages:
        raise ValueError(f"page counts do not add up: {absent} + {zero_filled} + {readable} "
                         f"!= {pages}")
    if readable == 0:
        return INACCESSIBLE
    if readable == pages:
        return READABLE
    return PARTIALLY_READABLE


def judged_verdict(verdict: str, pages: int, user_memory_captured: bool | None) -> str:
    """An ``inaccessible`` count of mapped pages becomes ``not-captured`` where the control group
    shows the dump lacks the normal processes' user memory too: the absence then says nothing of
    VTL1. With no control group (None) the verdict stands."""
    if verdict == INACCESSIBLE and pages and user_memory_captured is False:
        return NOT_CAPTURED
    return verdict


def render_region_verdict(verdict: str, partial: bool) -> str:
    """The Verdict column: a partial count (the page walk could not see everything) keeps its
    verdict and says so, e.g. ``inaccessible (partial)``."""
    return verdict + PARTIAL_SUFFIX if partial else verdict


# The control group is judged to hold the dump's user memory when at least this share of its
# mapped pages is readable: a normal process's pages have content, but some are legitimately zero.
CAPTURED_SHARE = 0.5


@dataclass(frozen=True)
class ControlGroup:
    """The page accounting of the dump's normal processes, summed: what the dump holds of user
    memory that no hypervisor protects. It is the basis on which a trustlet's missing pages are
    put down to VTL1 (the control's pages are there) or to the dump (they are missing too)."""

    processes: int = 0           # normal processes with mapped user pages that were walked
    pages: int = 0
    absent: int = 0
    zero_filled: int = 0
    readable: int = 0
    pids: tuple[int | None, ...] = ()
    candidates: int = 0          # normal processes in the dump that could have been walked
    problems: tuple[str, ...] = ()

    @property
    def captured(self) -> bool | None:
        """Whether the dump holds the normal processes' user memory; None without a basis."""
        if not self.pages:
            return None
        return self.readable >= CAPTURED_SHARE * self.pages

    def as_dict(self) -> dict:
        return {"processes": self.processes, "candidates": self.candidates, "pids": list(self.pids),
                "pages": self.pages, "absent": self.absent, "zero_filled": self.zero_filled,
                "readable": self.readable, "captured": self.captured,
                "problems": list(self.problems)}


def is_control_candidate(process: DerivedProcess) -> bool:
    """A process whose user pages no hypervisor protects: normal, in the active list, not a
    minimal (System-like) process, not System itself, and nothing implausible about it."""
    return (process.verdict == NORMAL and process.linked and process.minimal is not True
            and process.pid not in (None, 0, 4)
            and not process.fields.problems and not process.doubts)


@dataclass(frozen=True)
class RegionPages:
    """The mapped pages of one user region. ``end`` is the last byte (as VAD ends are).

    ``shared`` marks the KUSER_SHARED_DATA page (the kernel's frame, mapped read-only into every
    process): it is listed, labelled, and never counted as the process's own.
    ``user_memory_captured`` is the control group's judgement of the dump (None: none)."""

    start: int
    end: int
    pages: int = 0
    absent: int = 0
    zero_filled: int = 0
    readable: int = 0
    protection: str | None = None
    tag: str | None = None  # the VAD's pool tag; None for a run of pages outside every VAD
    problems: tuple[str, ...] = ()  # why the counts are partial; empty when complete
    shared: bool = False
    user_memory_captured: bool | None = None

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    @property
    def verdict(self) -> str:
        counted = region_verdict(self.pages, self.absent, self.zero_filled, self.readable)
        if self.shared:
            return SHARED_USER_DATA
        return judged_verdict(counted, self.pages, self.user_memory_captured)

    @property
    def rendered_verdict(self) -> str:
        return render_region_verdict(self.verdict, self.partial)

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "pages": self.pages, "absent": self.absent,
                "zero_filled": self.zero_filled, "readable": self.readable,
                "protection": self.protection, "tag": self.tag, "shared": self.shared,
                "verdict": self.verdict, "partial": self.partial}


@dataclass(frozen=True)
class ProcessPages:
    """The page accounting of one process: its regions in address order. The totals count the
    process's own pages: the shared user data page is counted apart (``shared_pages``)."""

    pid: int | None
    name: str | None
    regions: tuple[RegionPages, ...]
    problems: tuple[str, ...] = ()  # process-wide (VAD tree, page-table walk)
    control: ControlGroup | None = None  # the basis of the verdict, when one was computed

    @property
    def partial(self) -> bool:
        return bool(self.problems) or any(r.partial for r in self.regions)

    def _own(self):
        return (r for r in self.regions if not r.shared)

    mapped = property(lambda self: sum(r.pages for r in self._own()))
    absent = property(lambda self: sum(r.absent for r in self._own()))
    zero_filled = property(lambda self: sum(r.zero_filled for r in self._own()))
    readable = property(lambda self: sum(r.readable for r in self._own()))
    shared_pages = property(lambda self: sum(r.pages for r in self.regions if r.shared))
    outside_vad_pages = property(lambda self: sum(r.pages for r in self._own() if r.tag is None))

    @property
    def user_memory_captured(self) -> bool | None:
        return None if self.control is None else self.control.captured

    @property
    def verdict(self) -> str:
        counted = region_verdict(self.mapped, self.absent, self.zero_filled, self.readable)
        return judged_verdict(counted, self.mapped, self.user_memory_captured)

    def judged(self, control: ControlGroup | None) -> ProcessPages:
        """This accounting with its verdicts judged against ``control``."""
        captured = None if control is None else control.captured
        return replace(self, control=control, regions=tuple(
            replace(region, user_memory_captured=captured) for region in self.regions))

    def as_dict(self) -> dict:
        return {"pid": self.pid, "name": self.name, "pages": self.mapped, "absent": self.absent,
                "zero_filled": self.zero_filled, "readable": self.readable,
                "shared_pages": self.shared_pages, "outside_vad_pages": self.outside_vad_pages,
                "verdict": self.verdict, "partial": self.partial, "problems": list(self.problems),
                "control": None if self.control is None else self.control.as_dict(),
                "regions": [r.as_dict() for r in self.regions]}
