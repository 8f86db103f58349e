"""From a dump's processes to verdicts: shared by the Volatility plugins and ``iumdump analyze``.

- :mod:`.derive` — pure functions: EPROCESS field values → secure state, the ten extended flags
  (each with its source field, unknown as None), protection text, process verdict, page-region
  verdict. No Volatility, no dump.
- :mod:`.reader` — the Volatility-facing reader: opens a dump, lists processes (active list and
  pool scan), reads each EPROCESS by field name into :class:`~.derive.ProcessFields`.
- :mod:`.pages` — the user page-table walk of one process and the classification of each mapped
  page as absent from the dump, zero-filled or readable, per VAD region; the shared user data
  page told apart; the control group of normal processes the verdicts are judged against.
- :mod:`.livedump` — Volatility's crash dump layer extended to live kernel dumps (DumpType 6).

Reader and pages import Volatility 3; import them explicitly (``from iumdump.analysis import
reader``) so that the pure part stays cheap to import.
"""

from .derive import (
    ENCLAVE_HOST,
    INACCESSIBLE,
    KNOWN_TRUSTLET_IMAGES,
    MASQUERADE,
    NORMAL,
    NOT_CAPTURED,
    PARTIALLY_READABLE,
    PREDATES_VBS,
    READABLE,
    SECURE,
    SHARED_USER_DATA,
    ControlGroup,
    DerivedProcess,
    ExtendedFlags,
    FlagState,
    KernelLayout,
    ProcessFields,
    ProcessPages,
    RegionPages,
    SecureInfo,
    Unknown,
    derive_flags,
    derive_process,
    derive_protection_text,
    derive_secure,
    derive_verdict,
    extended_basic_information,
    region_verdict,
    render_region_verdict,
)

__all__ = [
    "ControlGroup", "NOT_CAPTURED", "PREDATES_VBS", "SHARED_USER_DATA",
    "DerivedProcess", "ENCLAVE_HOST", "ExtendedFlags", "FlagState", "INACCESSIBLE",
    "KNOWN_TRUSTLET_IMAGES", "KernelLayout", "MASQUERADE", "NORMAL", "PARTIALLY_READABLE",
    "ProcessFields", "ProcessPages", "READABLE", "RegionPages", "SECURE", "SecureInfo", "Unknown",
    "derive_flags", "derive_process", "derive_protection_text", "derive_secure", "derive_verdict",
    "extended_basic_information", "region_verdict", "render_region_verdict",
]
