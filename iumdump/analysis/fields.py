"""The field manifest: every value iumdump reads from a process, declared once.

Each :class:`Field` names the attribute it fills, the members of ``_EPROCESS`` that can hold it
— paths in order of preference: the first one the kernel's symbol table has is read, and it is
the ``source`` reported beside each flag — and how it is read (:class:`Read`). The rest is made
from this one list:

- :class:`KernelLayout`: which member supplies each value on one kernel build (the reader's probe,
  :func:`iumdump.analysis.eprocess.kernel_layout`, fills it from the symbol table by name);
- :class:`ProcessFields`: the values read from one EPROCESS;
- the reader (:mod:`.eprocess`): its probe, its one-read decoding and its field-by-field path;
- the layouts the tests expect (``tests/kernel_layouts.py``).

A new value is one line in :data:`FIELDS` (and whatever :mod:`.derive` makes of it). Which member
holds what, and since which build, is DESIGN §4. Pure: nothing here touches Volatility or a dump.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class Read(enum.Enum):
    """How a member is read."""

    # An integer, or a pointer (masked to the layer's address width, as Volatility reads one).
    # ``Name[0]`` reads an array's first element.
    INTEGER = "integer"
    # A bit field, written ``Word.Bit``: decoded from its flag word with the word's construct
    # definition (iumdump.structs.flagwords). Volatility flattens anonymous unions, so ``Bit`` is
    # a member of the structure holding ``Word``; the source names the word when the table has
    # one at the bit's offset.
    BIT = "bit"
    # A structure or union read whole, as one little-endian word (SecureState: flags and handle).
    WORD = "word"
    # A _LARGE_INTEGER: its QuadPart (the member itself where its type has no QuadPart).
    LARGE_INTEGER = "large-integer"
    # A character array (ImageFileName).
    TEXT = "text"
    # A pointer to an _OBJECT_NAME_INFORMATION, whose UNICODE_STRING is read (pool memory).
    NAME_POINTER = "name-pointer"
    # Not read: known only to exist where the symbols name it (TrustedApp, a bit of the
    # SecureState word that derive decodes with the rest of it).
    NAMED = "named"


@dataclass(frozen=True)
class Field:
    """One value read from each EPROCESS (see the module docstring)."""

    attribute: str
    candidates: tuple[str, ...]  # member paths relative to _EPROCESS, preferred first
    read: Read
    view: str | None = None  # the union member read (PS_PROTECTION: its Level byte)
    core: bool = False  # every _EPROCESS has it: always read, not part of KernelLayout
    unless: str | None = None  # looked for only where this attribute has no member
    needs_type: str | None = None  # looked for only where the table defines this type

    @staticmethod
    def source(candidate: str) -> str:
        """The member a candidate names, as reports show it (``Pcb.Affinity.Bitmap``)."""
        return candidate.removesuffix("[0]")

    @property
    def value_type(self) -> type:
        return str if self.read in (Read.TEXT, Read.NAME_POINTER) else int


FIELDS: tuple[Field, ...] = (
    Field("pid", ("UniqueProcessId",), Read.INTEGER, core=True),
    Field("ppid", ("InheritedFromUniqueProcessId",), Read.INTEGER, core=True),
    Field("name", ("ImageFileName",), Read.TEXT, core=True),
    Field("secure_state", ("Pcb.SecureState",), Read.WORD),  # 1709+
    Field("trusted_app", ("Pcb.SecureState.Flags.TrustedApp",), Read.NAMED),  # 24H2+
    Field("secure_pid", ("Pcb.SecurePid",), Read.INTEGER),  # 1507-1703
    Field("trustlet_identity", ("TrustletIdentity",), Read.INTEGER),  # up to 1703
    Field("protection", ("Protection",), Read.INTEGER, view="Level"),  # Windows 8.1+
    # Windows 7 marks its protected processes with a flag bit instead of PS_PROTECTION.
    Field("protected_process", ("Flags2.ProtectedProcess",), Read.BIT, unless="protection"),
    Field("wow64_process", ("WoW64Process", "Wow64Process"), Read.INTEGER),
    Field("process_delete", ("Flags.ProcessDelete",), Read.BIT),
    Field("cross_session_create", ("Flags2.CrossSessionCreate",), Read.BIT),
    Field("deep_freeze", ("Pcb.ProcessFlags.DeepFreeze",), Read.BIT),
    Field("background", ("Flags.Background",), Read.BIT),  # named Reserved from 22621
    # SubsystemProcess was IsPicoProcess in the 1607 headers.
    Field("subsystem_process", ("Flags3.SubsystemProcess", "Flags3.IsPicoProcess"), Read.BIT),
    Field("minimal", ("Flags3.Minimal",), Read.BIT),
    Field("exit_status", ("ExitStatus",), Read.INTEGER),
    Field("peb", ("Peb",), Read.INTEGER),
    # _KAFFINITY_EX (Windows 7+): the group-0 mask NtQueryInformationProcess returns is the
    # first word of its Bitmap.
    Field("affinity", ("Pcb.Affinity.Bitmap[0]", "Pcb.Affinity"), Read.INTEGER),
    Field("base_priority", ("Pcb.BasePriority",), Read.INTEGER),
    Field("create_time", ("CreateTime",), Read.LARGE_INTEGER),  # FILETIME; 0 = never set
    Field("exit_time", ("ExitTime",), Read.LARGE_INTEGER),
    # The audit image name; None also where the pointer is NULL (System).
    Field("image_path", ("SeAuditProcessCreationInfo.ImageFileName",), Read.NAME_POINTER,
          needs_type="_OBJECT_NAME_INFORMATION"),
)

FIELDS_BY_ATTRIBUTE = {f.attribute: f for f in FIELDS}
# The values each EPROCESS yields (every field but those only known to exist).
VALUE_FIELDS = tuple(f for f in FIELDS if f.read is not Read.NAMED)
LAYOUT_FIELDS = tuple(f for f in FIELDS if not f.core)


class Unknown(enum.Enum):
    """Why a value is unknown."""

    ABSENT = "absent"              # the build's symbols have no such field
    UNREADABLE = "unreadable"      # the field exists but its memory could not be read
    NOT_DERIVABLE = "not-derivable"  # no EPROCESS field carries it (e.g. IsStronglyNamed)


def _made_here(cls: type) -> type:
    cls.__module__ = __name__  # so that the classes pickle, and print, under this module
    return cls


KernelLayout = _made_here(dataclasses.make_dataclass(
    "KernelLayout",
    [(f.attribute, str | None, dataclasses.field(default=None)) for f in LAYOUT_FIELDS],
    frozen=True,
    namespace={"__doc__": """Where a kernel build keeps each value: the member of ``_EPROCESS``
    (a path relative to it) read for each attribute of :data:`LAYOUT_FIELDS`, or None where the
    build has none. The paths are the ``source`` reported with each flag. ``trusted_app`` is set
    only where bit 1 of SecureState is named TrustedApp (24H2+); on earlier builds that bit is
    ``Unused`` and says nothing."""}))


class _ProcessValues:
    """What :class:`ProcessFields` adds to its generated attributes."""

    __slots__ = ()

    def reason(self, attribute: str) -> Unknown | None:
        """Why ``attribute`` is None (None when it has a value)."""
        if getattr(self, attribute) is not None:
            return None
        return Unknown.UNREADABLE if attribute in self.unreadable else Unknown.ABSENT

    @property
    def partial(self) -> bool:
        """Some field the build has could not be read, or the object is not where an EPROCESS
        can be."""
        return bool(self.unreadable or self.problems)


ProcessFields = _made_here(dataclasses.make_dataclass(
    "ProcessFields",
    # linked: in the active list; False: found only by the pool scan; None: the list could not be
    # read at all, so the scan's processes are neither in it nor known to be missing from it
    [("offset", int), ("linked", bool | None, dataclasses.field(default=True))]
    + [(f.attribute, f.value_type | None, dataclasses.field(default=None))
       for f in VALUE_FIELDS]
    + [("layout", KernelLayout, dataclasses.field(default_factory=KernelLayout)),
       ("unreadable", frozenset, dataclasses.field(default=frozenset())),
       # why the object itself is suspect (e.g. not in kernel space)
       ("problems", tuple, dataclasses.field(default=()))],
    bases=(_ProcessValues,),
    frozen=True,
    namespace={"__doc__": """The plain values read from one EPROCESS, one attribute per field
    of :data:`VALUE_FIELDS`. ``None`` means unknown; ``unreadable`` names the attributes whose
    field exists but could not be read (the others that are None are absent from the build).
    Integers are as stored: ``secure_state`` is the whole SecureState word, ``protection`` the
    PS_PROTECTION byte, ``affinity`` the group-0 mask."""}))
