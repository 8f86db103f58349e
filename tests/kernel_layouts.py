"""Kernel layouts as iumdump.analysis.reader probes them from real symbol tables, for tests of
the pure derivations and of the reports that need a ProcessFields without a dump."""

from __future__ import annotations

import dataclasses

from iumdump.analysis.derive import KernelLayout

# Windows 10 2004 (19041): SecureState, no TrustletIdentity.
LAYOUT_19041 = KernelLayout(
    secure_state="Pcb.SecureState", protection="Protection", wow64_process="WoW64Process",
    process_delete="Flags.ProcessDelete", cross_session_create="Flags2.CrossSessionCreate",
    deep_freeze="Pcb.ProcessFlags.DeepFreeze", background="Flags.Background",
    subsystem_process="Flags3.SubsystemProcess", minimal="Flags3.Minimal",
    exit_status="ExitStatus", peb="Peb", affinity="Pcb.Affinity.Bitmap",
    base_priority="Pcb.BasePriority", create_time="CreateTime", exit_time="ExitTime",
    image_path="SeAuditProcessCreationInfo.ImageFileName")
# Windows 10 1607 (14393): SecurePid and TrustletIdentity instead of SecureState.
LAYOUT_14393 = dataclasses.replace(LAYOUT_19041, secure_state=None, secure_pid="Pcb.SecurePid",
                                   trustlet_identity="TrustletIdentity")
