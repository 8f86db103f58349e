"""Kernel layouts as iumdump.analysis.eprocess probes them from real symbol tables, made from the
field manifest (iumdump.analysis.fields): each field's preferred member, except those a build
does not have. For tests of the probe, of the pure derivations and of the reports that need a
ProcessFields without a dump."""

from __future__ import annotations

from iumdump.analysis.fields import LAYOUT_FIELDS, Field, KernelLayout


def layout_without(*absent: str) -> KernelLayout:
    """Every field of the manifest at its first candidate member, but the ``absent`` ones."""
    return KernelLayout(**{f.attribute: Field.source(f.candidates[0]) for f in LAYOUT_FIELDS
                           if f.attribute not in absent})


# Both builds keep PS_PROTECTION (so not Windows 7's ProtectedProcess bit) and name bit 1 of
# SecureState Unused (TrustedApp only from 24H2).
_NEITHER = ("protected_process", "trusted_app")
# Windows 10 2004 (19041): SecureState, no TrustletIdentity.
LAYOUT_19041 = layout_without(*_NEITHER, "secure_pid", "trustlet_identity")
# Windows 10 1607 (14393): SecurePid and TrustletIdentity instead of SecureState.
LAYOUT_14393 = layout_without(*_NEITHER, "secure_state")
