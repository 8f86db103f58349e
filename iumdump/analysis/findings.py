"""Findings: what the analysis means, in sentences an analyst can paste into a case note.

Pure: the input is what :mod:`.derive` and :mod:`.pages` produced for one dump, the output a list
of :class:`Finding` (kind, severity, pid, message). The kinds are those of DESIGN §5 plus three
that say how far the report can be trusted:

=============================  ========  ====================================================
kind                           severity  when
=============================  ========  ====================================================
masquerade                     high      a trustlet's image name on a process that is not secure
unlinked-process               medium    found by pool scanning, absent from the active list
                                         (never where the list could not be read at all)
trustlet-pages-readable        medium    a secure process has user pages with content in the
                                         dump, which a VTL0 acquisition cannot produce
enclave-host                   info/low  a process holds a secure (enclave) handle without being
                                         secure; low when it is not a known enclave host
vbs-active                     info      a Secure System process exists (or a secure process)
credential-guard               info      LsaIso.exe runs as a trustlet
trustlet                       info      one per secure process other than Secure System
trustlet-pages-inaccessible    info      a secure process's mapped user pages are all absent or
                                         zero-filled while the normal processes' are in the
                                         dump: VTL1 protection, by design
trustlet-pages-not-captured    low       a secure process's mapped user pages are not in the dump,
                                         but neither are most normal processes' (a live kernel or
                                         kernel dump, a failed acquisition): the dump cannot show
                                         whether VTL1 protected them
implausible-value              medium    a field holds a value no Windows kernel writes (an
                                         undefined protection, a secure state no kernel
                                         issues): smear, damage or tampering; a process whose
                                         secure state is implausible is not counted as secure
secure-state-unknown           low       the secure state of a process could not be read
partial-analysis               low       fields or page tables of a process could not be read,
                                         or the object is not where a process can be
secure-image-outside-system32  high      a secure process's image is not in \\Windows\\System32
                                         of the system volume
secure-process-exited          medium    a secure process has an ExitTime
trustlet-identity-mismatch     medium    TrustletIdentity disagrees with the id its image implies
exited-process                 low       a process in the active list has an ExitTime
nonstandard-dump-header        low       a bitmap dump's summary header is not what Windows
                                         writes (``SDMPDUMP``/``FDMPDUMP``): another tool wrote
                                         or altered the file; Volatility reads it regardless
=============================  ========  ====================================================

The image path (``SeAuditProcessCreationInfo.ImageFileName``) supports the verdicts: a masquerade
says where its binary lives, a genuine trustlet's path is quoted as support, and a secure process
run from anywhere but ``\\Windows\\System32`` of the volume the boot processes came from is high.

Severity levels, lowest first:

- ``info`` — a fact about the machine's security posture; nothing wrong.
- ``low`` — a limit on what the report can claim, or something unusual but benign-looking.
- ``medium`` — unexpected; needs an explanation before the dump is relied on.
- ``high`` — a likely sign of compromise or tampering; investigate.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ..structs.crashdump import SUMMARY_DUMP_SIGNATURES
from .derive import (
    ENCLAVE_HOST,
    INFERRED,
    MASQUERADE,
    PREDATES_VBS,
    SECURE,
    ControlGroup,
    DerivedProcess,
    ProcessPages,
    believed_secure,
    in_system32,
    is_file_path,
    is_known_trustlet_image,
    secure_state_doubts,
    split_device,
)

INFO, LOW, MEDIUM, HIGH = "info", "low", "medium", "high"
SEVERITIES = (INFO, LOW, MEDIUM, HIGH)  # ascending
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

VBS_ACTIVE = "vbs-active"
CREDENTIAL_GUARD = "credential-guard"
TRUSTLET = "trustlet"
TRUSTLET_PAGES_INACCESSIBLE = "trustlet-pages-inaccessible"
TRUSTLET_PAGES_READABLE = "trustlet-pages-readable"
TRUSTLET_PAGES_NOT_CAPTURED = "trustlet-pages-not-captured"
MASQUERADE_KIND = "masquerade"
ENCLAVE_HOST_KIND = "enclave-host"
UNLINKED_PROCESS = "unlinked-process"
SECURE_STATE_UNKNOWN = "secure-state-unknown"
PARTIAL_ANALYSIS = "partial-analysis"
SECURE_IMAGE_OUTSIDE_SYSTEM32 = "secure-image-outside-system32"
SECURE_PROCESS_EXITED = "secure-process-exited"
TRUSTLET_IDENTITY_MISMATCH = "trustlet-identity-mismatch"
EXITED_PROCESS = "exited-process"
IMPLAUSIBLE_VALUE = "implausible-value"
NONSTANDARD_DUMP_HEADER = "nonstandard-dump-header"

KINDS = (VBS_ACTIVE, CREDENTIAL_GUARD, TRUSTLET, TRUSTLET_PAGES_INACCESSIBLE,
         TRUSTLET_PAGES_READABLE, MASQUERADE_KIND, SECURE_IMAGE_OUTSIDE_SYSTEM32, ENCLAVE_HOST_KIND,
         UNLINKED_PROCESS, SECURE_PROCESS_EXITED, TRUSTLET_IDENTITY_MISMATCH, EXITED_PROCESS,
         TRUSTLET_PAGES_NOT_CAPTURED, IMPLAUSIBLE_VALUE, SECURE_STATE_UNKNOWN,
         PARTIAL_ANALYSIS, NONSTANDARD_DUMP_HEADER)
_KIND_ORDER = {kind: index for index, kind in enumerate(KINDS)}

SECURE_SYSTEM = "Secure System"
# Started by the kernel and smss from \Windows\System32 of the boot volume: where their images
# live says which volume Windows booted from.
BOOT_PROCESSES = ("smss.exe", "csrss.exe", "wininit.exe", "services.exe", "lsass.exe")
# Enclave hosts Windows ships: System Guard Runtime Monitor Broker runs its monitor in a VBS
# enclave. Another process holding an enclave is possible (third-party enclaves) but unusual.
KNOWN_ENCLAVE_HOSTS = ("SgrmBroker.exe",)
_ENCLAVE_HOST_KEYS = frozenset(name.lower() for name in KNOWN_ENCLAVE_HOSTS)

# How each dump format loses a page the hypervisor refused to VTL0 (DESIGN §1, §6).
FORMAT_ABSENT = {
    "crash-bitmap": "left out of the bitmap crash dump",
    "crash-full": "missing from the crash dump",
    "crash-live": "left out of the kernel memory dump (DumpType 6)",
}
# Formats that hold kernel memory only by default: what is said of them when no control group is
# available. A live dump holds user pages too when asked for them (NtSystemDebugControl's
# SYSDBG_LIVEDUMP_CONTROL_FLAGS.IncludeUserSpaceMemoryPages; System Informer, NtObjectManager's
# New-NtKernelCrashDump), so the sentence does not claim they are never there.
KERNEL_ONLY_FORMATS = {"crash-live": "a kernel bitmap dump (DumpType 6: a kernel or automatic "
                                     "memory dump written at a bug check, or a live kernel "
                                     "memory dump) holds kernel memory only unless it was taken "
                                     "with user-space pages included (a live dump's "
                                     "IncludeUserSpaceMemoryPages)"}


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    pid: int | None
    message: str
    name: str | None = None
    offset: int | None = None  # the EPROCESS's virtual address, to tell processes apart

    def as_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "pid": self.pid,
                "name": self.name, "offset": self.offset, "message": self.message}


def describe(process: DerivedProcess) -> str:
    """``LsaIso.exe (PID 712)`` with unreadable parts spelled out; the name is as the dump has it
    (renderers escape it)."""
    name = process.name if process.name is not None else "<unreadable name>"
    name = name or "<no name>"
    pid = process.pid if process.pid is not None else "unreadable"
    return f"{name} (PID {pid})"


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count:,} {singular if count == 1 else (plural or singular + 's')}"


def _is_secure_system(process: DerivedProcess) -> bool:
    return (process.name or "").lower() == SECURE_SYSTEM.lower()


def _is_trustlet(process: DerivedProcess) -> bool:
    """A secure process other than the Secure Kernel's own Secure System process."""
    return believed_secure(process) and not _is_secure_system(process)


def _not_secure_because(process: DerivedProcess) -> str:
    """The field that says so, as this build keeps it (DESIGN §4)."""
    source = process.secure.source or "the secure state"
    if source == PREDATES_VBS:
        return ("the kernel predates VBS: its _KPROCESS has neither SecurePid nor SecureState, so "
                "no process on it can be secure")
    if source.endswith("SecurePid"):
        return f"{source} is 0"
    return f"{source} bit 0 is clear"


def utc(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _trustlet_label(process: DerivedProcess) -> str:
    identity = process.trustlet_identity
    if identity is None:
        return ""
    known = f" ({identity.name})" if identity.name else ""
    if identity.basis == INFERRED:
        return (f", trustlet identity {identity.id}{known} inferred from its image path (this "
                "build's EPROCESS does not store TrustletIdentity)")
    return f", trustlet identity {identity.id}{known}"


def _image_clause(process: DerivedProcess) -> str:
    """Where the process's image lives, for a message."""
    if process.image_path:
        return f"Its image is {process.image_path}."
    if "image_path" in process.fields.unreadable:
        return "Its image path could not be read from the dump."
    if process.fields.layout.image_path is None:
        return ""
    return "The kernel recorded no image path for it."


def system_volume(processes: Sequence[DerivedProcess]) -> str | None:
    """The device the boot processes' images live on (``\\Device\\HarddiskVolume3``), or None."""
    devices = Counter(split_device(p.image_path)[0] for p in processes
                      if (p.name or "").lower() in BOOT_PROCESSES and in_system32(p.image_path))
    return devices.most_common(1)[0][0] if devices else None


def _outside_system32(process: DerivedProcess, volume: str | None) -> str | None:
    """Why a secure process's image is not where Windows installs trustlets, or None."""
    path = process.image_path
    if not is_file_path(path):
        return None  # a minimal process's bare name (Secure System), or no path
    if not in_system32(path):
        return "not under \\Windows\\System32"
    device = split_device(path)[0]
    if volume and device.lower() != volume.lower() and device != "\\SystemRoot":
        return (f"on {device}, not on {volume} where the boot processes (smss.exe, csrss.exe, "
                "wininit.exe) were started from")
    return None


# What Windows writes at the head of a bitmap dump's _SUMMARY_DUMP, as the preflight names it
# (preflight.summary_signature_text): the signatures of structs.crashdump, where their sources are.
WINDOWS_SUMMARY_SIGNATURES = tuple(s.decode("ascii") for s in SUMMARY_DUMP_SIGNATURES)


def header_findings(summary_signature: str | None) -> list[Finding]:
    """A summary header Windows would not have written: the preflight accepted it because
    Volatility reads such a file (it never looks at the signature), but the analyst should know
    the file did not come from Windows' own dump writer unaltered."""
    if summary_signature is None or summary_signature in WINDOWS_SUMMARY_SIGNATURES:
        return []
    return [Finding(
        NONSTANDARD_DUMP_HEADER, LOW, None,
        f"The bitmap dump's summary header (_SUMMARY_DUMP) begins {summary_signature!r}, where "
        "Windows writes 'SDMPDUMP' (kernel, automatic or live kernel dump) or 'FDMPDUMP' "
        "(complete memory dump): a tool other than Windows wrote the file, or it was altered "
        "afterwards. Volatility locates the pages by the bitmap whatever the signature says, so "
        "the analysis stands; MemProcFS (LeechCore) and kdmp-parser refuse such a file.")]


def vbs_findings(processes: Sequence[DerivedProcess]) -> list[Finding]:
    # A "Secure System" the kernel says is not secure (e.g. on a kernel that predates VBS) is a
    # name, not evidence of VBS; nor is an object that is not where a process can be.
    systems = [p for p in processes
               if _is_secure_system(p) and p.linked is not False
               and p.secure.secure is not False
               and not p.fields.problems]
    if systems:
        process = systems[0]
        return [Finding(VBS_ACTIVE, INFO, process.pid,
                        f"{describe(process)} exists: Virtualization-Based Security was running "
                        "when the dump was taken. The Secure Kernel and trustlets run in Virtual "
                        "Trust Level 1, whose memory a dump taken inside Windows (VTL0) cannot "
                        "show.", process.name, process.offset)]
    trustlets = [p for p in processes if believed_secure(p)]
    if trustlets:
        process = trustlets[0]
        return [Finding(VBS_ACTIVE, INFO, process.pid,
                        f"No Secure System process was listed, but {describe(process)} is a "
                        "secure process, which only runs under Virtualization-Based Security: "
                        "VBS was running when the dump was taken.", process.name, process.offset)]
    return []


def process_findings(process: DerivedProcess, genuine: Mapping[str, DerivedProcess],
                     volume: str | None = None) -> list[Finding]:
    """Findings about one process on its own (not its pages). ``volume`` is the system volume
    (:func:`system_volume`), against which a secure process's image is checked."""
    found: list[Finding] = []
    who = describe(process)

    def add(kind: str, severity: str, message: str) -> None:
        found.append(Finding(kind, severity, process.pid, message, process.name, process.offset))

    if process.verdict == MASQUERADE:
        real = genuine.get((process.name or "").lower())
        also = (f" The genuine {real.name} in this dump is PID {real.pid}"
                + (f", image {real.image_path}" if real.image_path else "") + "."
                if real is not None else "")
        where = _image_clause(process)
        add(MASQUERADE_KIND, HIGH,
            f"{who} carries the image name of a Windows trustlet but is not a secure process "
            f"({_not_secure_because(process)}): the real one runs in VTL1 as a trustlet. A normal "
            f"process borrowing the name is a likely sign of masquerading; examine its image, "
            f"parent (PPID {process.ppid}) and threads.{' ' + where if where else ''}{also}")
    elif _is_trustlet(process):
        support = ""
        if process.implied_trustlet_id is not None and not _outside_system32(process, volume):
            support = (f" Its image {process.image_path} is where Windows installs this "
                       "trustlet.")
        elif process.image_path:
            support = f" Its image is {process.image_path}."
        running = ("that ran in Virtual Trust Level 1 and has exited" if process.exited
                   else "running in Virtual Trust Level 1")
        add(TRUSTLET, INFO,
            f"{who} is a secure (IUM) process: a trustlet {running}"
            f"{_trustlet_label(process)}. Its user memory is protected by the hypervisor and "
            "cannot be read by VTL0, nor attached to or debugged; its kernel-side EPROCESS is in "
            f"the dump.{support}")
        if (process.name or "").lower() == "lsaiso.exe" and not process.exited:
            add(CREDENTIAL_GUARD, INFO,
                f"{who} runs as a trustlet, so Credential Guard is active: the secrets it "
                "isolates (NTLM password hashes, Kerberos ticket-granting tickets, saved domain "
                "credentials) live in VTL1 and cannot be recovered from this dump; lsass.exe "
                "keeps only protected copies.")
    elif process.verdict == SECURE and not believed_secure(process):
        pass  # its implausible secure state or placement is the finding (below)
    elif process.verdict == ENCLAVE_HOST and not secure_state_doubts(process.fields):
        handle = process.secure.secure_handle
        if (process.name or "").lower() in _ENCLAVE_HOST_KEYS:
            add(ENCLAVE_HOST_KIND, INFO,
                f"{who} hosts a VBS enclave (secure handle {handle:#x}) but is not itself a "
                "secure process. This is expected for the System Guard Runtime Monitor Broker; "
                "the enclave's memory is VTL1-protected, which no dump taken inside Windows "
                "(VTL0) can show.")
        else:
            add(ENCLAVE_HOST_KIND, LOW,
                f"{who} holds a secure (enclave) handle {handle:#x} without being a secure "
                "process: it hosts a VBS enclave. Windows' own enclave host is SgrmBroker.exe; "
                "identify the software that created this enclave. Its enclave memory is "
                "VTL1-protected, which no dump taken inside Windows (VTL0) can show.")
    elif process.verdict is None:
        reason = process.secure.reason.value if process.secure.reason else "unknown"
        add(SECURE_STATE_UNKNOWN, LOW,
            f"The secure state of {who} could not be determined ({reason}: "
            f"{process.secure.source or 'no secure-state field in this build'}); the report "
            "cannot say whether it is a trustlet.")

    if believed_secure(process):
        outside = _outside_system32(process, volume)
        if outside:
            add(SECURE_IMAGE_OUTSIDE_SYSTEM32, HIGH,
                f"{who} is a secure process whose image {process.image_path} is {outside}. "
                "Windows installs its trustlets in \\Windows\\System32; a signed trustlet "
                "binary run from elsewhere (an older, vulnerable version brought along, say) "
                "still runs in VTL1. Acquire the file and compare it with the system's copy.")
        if process.exited:
            lost = (" Credential Guard is not isolating credentials since then: lsass.exe cannot "
                    "reach its isolated secrets." if (process.name or "").lower() == "lsaiso.exe"
                    else "")
            add(SECURE_PROCESS_EXITED, MEDIUM,
                f"{who} is a secure process that exited at {utc(process.exit_time)} (created "
                f"{utc(process.create_time) if process.create_time else 'at an unreadable time'})"
                f"; its EPROCESS is kept by a reference.{lost} Find out what ended it: a "
                "trustlet exits with the feature it serves (vmsp.exe with its virtual machine), "
                "or because it was stopped.")
        identity = process.trustlet_identity
        implied = process.implied_trustlet_id
        if identity is not None and identity.basis != INFERRED and implied is not None \
                and identity.id != implied:
            add(TRUSTLET_IDENTITY_MISMATCH, MEDIUM,
                f"{who} has TrustletIdentity {identity.id}, but its image "
                f"{process.image_path} is the trustlet with identity {implied}. The Secure "
                "Kernel checks the identity against the image's policy when it starts a "
                "trustlet, so the EPROCESS was altered or is not what it seems.")
    elif process.exited and process.linked:
        add(EXITED_PROCESS, LOW,
            f"{who} exited at {utc(process.exit_time)} but is still in the active process list: "
            "its EPROCESS is kept by a reference (an open handle, often its parent's). Normal "
            "for a moment after exit; a process that lingers long, or an ExitTime on a process "
            "that still has threads, deserves a look.")

    if process.linked is False:  # (None: the list could not be read; the report says so)
        kind_of = {SECURE: "secure process", MASQUERADE: "process with a trustlet's name"}.get(
            process.verdict or "", "process")
        if process.exited:
            when = (f" Its ExitTime is {utc(process.exit_time)}: it has exited, so a freed "
                    "EPROCESS not yet reused is the likely reading. Check its threads and "
                    "handles.")
        elif process.fields.layout.exit_time is not None and process.fields.exit_time == 0:
            when = (" It has no ExitTime: a process that never exited is missing from the list, "
                    "which points to unlinking. Check its threads and handles.")
        else:
            when = " Check its exit time, threads and handles."
        add(UNLINKED_PROCESS, MEDIUM,
            f"{who}, a {kind_of}, was found by pool scanning but is not in the active process "
            "list: either it has exited and its EPROCESS was not yet reused, or it was unlinked "
            f"to hide it (DKOM).{when}")
    for doubt in process.doubts:
        unbelieved = (" It is not counted as a secure process."
                      if process.verdict in (SECURE, ENCLAVE_HOST)
                      and doubt in secure_state_doubts(process.fields) else "")
        add(IMPLAUSIBLE_VALUE, MEDIUM,
            f"{who}: {doubt}. No Windows kernel writes this value: memory smear, a damaged "
            f"dump or tampering; examine the EPROCESS at {process.offset:#x}.{unbelieved}")
    for problem in process.fields.problems:
        add(PARTIAL_ANALYSIS, LOW, f"{who}: {problem}; its fields are not a process's.")
    if process.fields.unreadable:
        add(PARTIAL_ANALYSIS, LOW,
            f"Some fields of {who} could not be read from the dump "
            f"({', '.join(sorted(process.fields.unreadable))}); they are reported as unknown.")
    return found


def control_basis(control: ControlGroup | None) -> str:
    """The control group's figures, as a sentence fragment for a finding."""
    if control is None or not control.pages:
        return "no normal process's user pages could be compared"
    processes = _plural(control.processes, "normal process", "normal processes")
    pages = _plural(control.pages, "mapped user page")
    return (f"the control group of {processes} has {control.readable:,} of its {pages} readable"
            f" ({control.absent:,} absent, {control.zero_filled:,} zero-filled)")


def page_findings(process: DerivedProcess, pages: ProcessPages, dump_format: str | None
                  ) -> list[Finding]:
    """Findings about the user pages of one secure process, judged against the control group
    (``pages.control``): pages missing where the normal processes' are present are VTL1's doing;
    pages missing where theirs are missing too say nothing about VTL1."""
    found: list[Finding] = []
    who = describe(process)

    def add(kind: str, severity: str, message: str) -> None:
        found.append(Finding(kind, severity, process.pid, message, process.name, process.offset))

    mapped, absent, zero, readable = pages.mapped, pages.absent, pages.zero_filled, pages.readable
    control = pages.control
    captured = pages.user_memory_captured
    basis = control_basis(control)
    partial = ""
    if pages.partial:
        problems = list(pages.problems) or [p for r in pages.regions for p in r.problems]
        partial = (f" The page walk was partial ({'; '.join(dict.fromkeys(problems))}); "
                   "the counts cover what could be seen.")
    shared = ""
    if pages.shared_pages:
        shared = (" The shared user data page (KUSER_SHARED_DATA at 0x7FFE0000, the kernel's page "
                  "every process maps) is not counted.")
    if mapped and readable == 0 and (captured is False or captured is None
                                     and dump_format in KERNEL_ONLY_FORMATS):
        why = (basis if captured is False
               else f"{KERNEL_ONLY_FORMATS[dump_format]}, and {basis}")
        add(TRUSTLET_PAGES_NOT_CAPTURED, LOW,
            f"{who}: its {_plural(mapped, 'mapped user page')} {'is' if mapped == 1 else 'are'} "
            f"not in this dump ({absent:,} absent, {zero:,} zero-filled), but the dump does not "
            f"hold the normal processes' user memory either: {why}. This dump cannot show "
            "whether its pages were protected by VTL1; the absence is the dump's, not evidence "
            f"of VTL1 protection.{shared}{partial}")
    elif mapped and readable == 0:
        how = []
        if absent:
            how.append(f"{absent:,} {FORMAT_ABSENT.get(dump_format or '', 'absent from the file')}")
        if zero:
            how.append(f"{zero:,} written as zeros by the acquisition, as tools do for a read the "
                       "hypervisor refuses")
        because = (f" The dump does hold the normal processes' user pages: {basis}."
                   if captured else f" ({basis[0].upper()}{basis[1:]}.)")
        add(TRUSTLET_PAGES_INACCESSIBLE, INFO,
            f"{who}: its {_plural(mapped, 'mapped user page')} "
            f"{'is' if mapped == 1 else 'are'} VTL1-protected and absent from this dump by "
            f"design ({'; '.join(how)}) — not memory smear, not tampering, not a broken "
            f"acquisition.{because}{shared}{partial}")
    elif readable:
        add(TRUSTLET_PAGES_READABLE, MEDIUM,
            f"{who}: {readable:,} of its {_plural(mapped, 'mapped user page')} have content in "
            "this dump. A dump taken inside Windows (VTL0) cannot read a trustlet's pages, so "
            "this is expected only if the dump was acquired from the host (a hypervisor-side "
            "capture or VM snapshot); otherwise VTL1 protection was not in force or the content "
            f"was written into the dump afterwards. Establish how the dump was acquired "
            f"({basis}).{shared}{partial}")
    elif pages.partial:
        add(PARTIAL_ANALYSIS, LOW,
            f"The user pages of {who} could not be accounted for.{partial}")
    return found


def sort_key(finding: Finding) -> tuple:
    return (-SEVERITY_RANK[finding.severity], _KIND_ORDER.get(finding.kind, len(KINDS)),
            finding.pid if finding.pid is not None else -1, finding.offset or 0)


def dump_findings(processes: Sequence[DerivedProcess],
            pages: Mapping[int, ProcessPages] | Iterable[tuple[int, ProcessPages]] = (),
            dump_format: str | None = None,
            summary_signature: str | None = None) -> list[Finding]:
    """Every finding for one dump, most severe first. ``pages`` maps a process's EPROCESS offset
    to its page accounting (the secure processes whose pages were walked);
    ``summary_signature`` is the preflight's reading of a bitmap dump's summary header."""
    pages = dict(pages)
    genuine = {(p.name or "").lower(): p for p in processes
               if believed_secure(p) and is_known_trustlet_image(p.name)}
    volume = system_volume(processes)
    found = header_findings(summary_signature) + vbs_findings(processes)
    for process in processes:
        found += process_findings(process, genuine, volume)
        if process.offset in pages:
            found += page_findings(process, pages[process.offset], dump_format)
    return sorted(found, key=sort_key)


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {severity: 0 for severity in reversed(SEVERITIES)}
    for finding in findings:
        counts[finding.severity] += 1
    return counts
