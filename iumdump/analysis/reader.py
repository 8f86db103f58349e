"""Read processes from a Volatility 3 context into plain values, by field name.

This is the one place that touches EPROCESS objects for iumdump: the plugins in
``vol_plugins/windows`` and ``iumdump analyze`` both call it. Every field is found by name in the
kernel's symbol table and probed with ``has_member`` (DESIGN §4), so any build whose symbols carry
a field is read correctly and a build without it yields ``None`` with the reason "absent". A field
whose memory cannot be read yields ``None`` with the reason "unreadable" and marks the process
partial; one bad field never hides the others.

Before believing a listing it checks what a table that does not fit the kernel would get wrong
(:class:`SymbolTableMismatch`, an error naming the table): ``_EPROCESS`` has its core members,
each of a type the table defines; the listing finds processes, with process ids, and the active
list shares them with the pool scan. What leaves a listing incomplete — a cut or looping list,
an unreadable scan, an object outside kernel space — is reported, not hidden.
"""

from __future__ import annotations

import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from volatility3.framework import constants, exceptions, interfaces, renderers
from volatility3.framework.configuration import requirements
from volatility3.framework.objects import templates
from volatility3.plugins.windows import pslist, psscan

from ..errors import Error, SymbolError, TruncatedDumpError
from .derive import KernelLayout, ProcessFields, Unknown, is_process_id

vollog = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None] | None

# Attributes of ProcessFields read with a plain integer conversion of the named member.
_WORD_FIELDS = ("secure_pid", "trustlet_identity", "protected_process", "wow64_process",
                "process_delete", "cross_session_create", "deep_freeze", "background",
                "subsystem_process", "minimal", "exit_status", "peb", "base_priority",
                "create_time", "exit_time")
# The pointer to the audit image name (an _OBJECT_NAME_INFORMATION in pool), read with the
# EPROCESS and followed afterwards.
_IMAGE_NAME_POINTER = "image_name_pointer"


# Members every Windows kernel's _EPROCESS has, without which no process can be listed or named:
# a symbol table lacking one is not the table of a Windows kernel at all.
CORE_MEMBERS = ("UniqueProcessId", "InheritedFromUniqueProcessId", "ImageFileName",
                "ActiveProcessLinks", "Pcb")
MAX_LIST_ENTRIES = 1 << 20  # far beyond any process count; a longer walk is corrupt


class SymbolTableMismatch(SymbolError, exceptions.SymbolError):
    """The kernel's symbol table does not fit the kernel in the dump (another build's table, a
    damaged one). It is iumdump's one-line :class:`SymbolError` (``path`` is the table's file)
    and Volatility's ``SymbolError``, so ``vol`` reports it as a symbol-related issue and stops
    instead of printing a traceback or an empty listing."""

    def __init__(self, message: str, *, table_file: str | None, table_name: str,
                 symbol_name: str) -> None:
        SymbolError.__init__(self, message, path=table_file)
        self.table_name = table_name
        self.symbol_name = symbol_name


def symbol_table_file(context: interfaces.context.ContextInterface,
                      kernel_module_name: str) -> str:
    """Where the kernel module's symbol table was loaded from: a file path, else its URL."""
    kernel = context.modules[kernel_module_name]
    url = context.symbol_space[kernel.symbol_table_name].config.get("isf_url", None) or ""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return urllib.request.url2pathname(parsed.path)
    return url or kernel.symbol_table_name


class DumpFileTruncated(TruncatedDumpError, exceptions.InvalidAddressException):
    """The preflight found the dump shorter than its header says (see :func:`check_dump`); as a
    Volatility exception, ``vol`` reports it as an unreadable page of an incomplete file."""

    def __init__(self, err: TruncatedDumpError, layer_name: str) -> None:
        TruncatedDumpError.__init__(self, err.message, path=err.path, offset=err.offset,
                                    expected=err.expected, actual=err.actual)
        self.layer_name = layer_name
        self.invalid_address = err.offset or 0


class DumpFileRejected(Error, exceptions.LayerException):
    """The preflight refused the dump file (see :func:`check_dump`)."""

    def __init__(self, err: Error, layer_name: str) -> None:
        Error.__init__(self, err.message, path=err.path, offset=err.offset,
                       expected=err.expected, actual=err.actual)
        self.layer_name = layer_name


def layer_stack(context: interfaces.context.ContextInterface,
                layer_name: str) -> list[interfaces.layers.DataLayerInterface]:
    """The layer and every layer below it (``memory_layer`` / ``base_layer``), top first."""
    stack = []
    current = context.layers[layer_name] if layer_name in context.layers else None
    while current is not None and current not in stack:
        stack.append(current)
        below = current.config.get("memory_layer", None) or current.config.get("base_layer", None)
        current = context.layers[below] if below in context.layers else None
    return stack


def dump_file_path(context: interfaces.context.ContextInterface, layer_name: str) -> str | None:
    """The local file at the bottom of ``layer_name``'s stack, or None (not a local file)."""
    for layer in reversed(layer_stack(context, layer_name)):
        location = layer.config.get("location", None)
        if isinstance(location, str):
            parsed = urllib.parse.urlparse(location)
            return urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else None
    return None


def check_dump(context: interfaces.context.ContextInterface, kernel_module_name: str) -> None:
    """Check the dump file under the kernel's layers the way ``iumdump analyze`` does before
    trusting it (:func:`iumdump.analysis.session.inspect_dump`: a crash dump's header and page
    bitmap against the file's size, …): Volatility stacks a bitmap dump that lacks most of its
    pages without complaint, and a plugin would then answer with no rows. Raises
    :class:`DumpFileTruncated` or :class:`DumpFileRejected` (Volatility exceptions, so ``vol``
    reports them and stops); a dump that is not a local file is not checked."""
    from .session import inspect_dump

    layer_name = context.modules[kernel_module_name].layer_name
    path = dump_file_path(context, layer_name)
    if path is None:
        return
    try:
        inspect_dump(path)
    except TruncatedDumpError as err:
        raise DumpFileTruncated(err, layer_name) from None
    except Error as err:
        raise DumpFileRejected(err, layer_name) from None


def _mismatch(context, kernel_module_name: str, symbol: str, what: str) -> SymbolTableMismatch:
    kernel = context.modules[kernel_module_name]
    return SymbolTableMismatch(f"symbol table does not fit the kernel in this dump: {what}",
                               table_file=symbol_table_file(context, kernel_module_name),
                               table_name=kernel.symbol_table_name, symbol_name=symbol)


def kernel_space_start(layer: interfaces.layers.DataLayerInterface) -> int:
    """The lowest kernel-space address of a virtual layer: the upper half of its address range
    (x64: 0xFFFF8000'00000000, which Volatility's 48-bit layer offsets show as
    0x8000'00000000; x86: 0x80000000, the lowest system range start, 3 GB user space being
    the largest — Windows Internals 7th ed. part 1, ch. 5, "Virtual address space layouts")."""
    return (layer.address_mask + 1) >> 1


def _resolve(context: interfaces.context.ContextInterface,
             template: interfaces.objects.Template) -> interfaces.objects.Template:
    if isinstance(template, templates.ReferenceTemplate):
        return context.symbol_space.get_type(template.vol.type_name)
    return template


def _child(context, template, name: str):
    """The resolved template of member ``name``, or None when the type has no such member."""
    if template is None or not template.has_member(name):
        return None
    return _resolve(context, template.child_template(name))


def _bit(template, word: str, bit: str, prefix: str = "") -> tuple[str, str] | None:
    """(source, member) of bit field ``bit``: the source names the word it lives in
    (``Flags.ProcessDelete``) when that word is called ``word``; the member is how Volatility
    reaches it (anonymous unions are flattened, so bit fields are direct members)."""
    if template is None or not template.has_member(bit):
        return None
    members = template.vol.members
    if word in members and members[word][0] == members[bit][0]:
        return f"{prefix}{word}.{bit}", prefix + bit
    return prefix + bit, prefix + bit


def _probe(context: interfaces.context.ContextInterface,
           kernel_module_name: str) -> tuple[KernelLayout, dict[str, str]]:
    """The layout (sources) and the member path that reads each attribute."""
    kernel = context.modules[kernel_module_name]
    eprocess = kernel.get_type("_EPROCESS")
    kprocess = _child(context, eprocess, "Pcb")
    secure_state = _child(context, kprocess, "SecureState")
    secure_flags = _child(context, secure_state, "Flags")
    found: dict[str, tuple[str, str] | None] = {}

    def own(name: str) -> tuple[str, str] | None:
        return (name, name) if eprocess.has_member(name) else None

    def pcb(name: str) -> tuple[str, str] | None:
        return (f"Pcb.{name}", f"Pcb.{name}") if kprocess is not None \
            and kprocess.has_member(name) else None

    found["secure_state"] = pcb("SecureState")
    if secure_flags is not None and secure_flags.has_member("TrustedApp"):
        found["trusted_app"] = ("Pcb.SecureState.Flags.TrustedApp",) * 2
    found["secure_pid"] = pcb("SecurePid")
    found["trustlet_identity"] = own("TrustletIdentity")
    found["protection"] = own("Protection")
    if found["protection"] is None:
        # Windows 7: no PS_PROTECTION, but a ProtectedProcess flag bit.
        found["protected_process"] = _bit(eprocess, "Flags2", "ProtectedProcess")
    found["wow64_process"] = own("WoW64Process") or own("Wow64Process")
    found["process_delete"] = _bit(eprocess, "Flags", "ProcessDelete")
    found["cross_session_create"] = _bit(eprocess, "Flags2", "CrossSessionCreate")
    found["deep_freeze"] = _bit(kprocess, "ProcessFlags", "DeepFreeze", "Pcb.")
    # 22621+ renamed the bit Reserved: where it is not called Background, it is unknown.
    found["background"] = _bit(eprocess, "Flags", "Background")
    # SubsystemProcess was IsPicoProcess in the 1607 headers.
    found["subsystem_process"] = (_bit(eprocess, "Flags3", "SubsystemProcess")
                                  or _bit(eprocess, "Flags3", "IsPicoProcess"))
    found["minimal"] = _bit(eprocess, "Flags3", "Minimal")
    found["exit_status"] = own("ExitStatus")
    found["peb"] = own("Peb")
    affinity = _child(context, kprocess, "Affinity")
    if affinity is not None:
        # _KAFFINITY_EX (Windows 7+): the group-0 mask is the first word of Bitmap.
        found["affinity"] = (("Pcb.Affinity.Bitmap", "Pcb.Affinity.Bitmap")
                             if affinity.has_member("Bitmap") else ("Pcb.Affinity",) * 2)
    found["base_priority"] = pcb("BasePriority")
    for attribute, name in (("create_time", "CreateTime"), ("exit_time", "ExitTime")):
        # _LARGE_INTEGER: the FILETIME is its QuadPart.
        time = _child(context, eprocess, name)
        if time is not None:
            found[attribute] = (name, f"{name}.QuadPart" if time.has_member("QuadPart") else name)
    audit = _child(context, eprocess, "SeAuditProcessCreationInfo")
    name_info = kernel.symbol_table_name + constants.BANG + "_OBJECT_NAME_INFORMATION"
    if audit is not None and audit.has_member("ImageFileName") \
            and context.symbol_space.has_type(name_info):
        found["image_path"] = ("SeAuditProcessCreationInfo.ImageFileName",) * 2
    layout = KernelLayout(**{k: v[0] for k, v in found.items() if v is not None})
    access = {k: v[1] for k, v in found.items() if v is not None}
    return layout, access


def kernel_layout(context: interfaces.context.ContextInterface,
                  kernel_module_name: str) -> KernelLayout:
    """Which field of this kernel's ``_EPROCESS`` supplies each value (paths relative to it),
    probed by name from the symbol table's types."""
    return _probe(context, kernel_module_name)[0]


@dataclass(frozen=True)
class _Slot:
    """Where one value lies in an EPROCESS, found by name: ``length`` bytes at ``offset``, and
    for a bit field bits ``[start_bit, end_bit)`` of that word (Volatility's BitField rule)."""

    offset: int
    length: int
    signed: bool = False
    start_bit: int | None = None
    end_bit: int | None = None
    pointer: bool = False  # Volatility masks pointers to the layer's address width

    def decode(self, data: bytes, address_mask: int) -> int:
        value = int.from_bytes(data[self.offset:self.offset + self.length], "little",
                               signed=self.signed)
        if self.start_bit is not None:
            value = (value & ((1 << self.end_bit) - 1)) >> self.start_bit
        elif self.pointer:
            value &= address_mask
        return value


def _locate(context, eprocess, path: str) -> _Slot:
    """The slot of member ``path`` of ``_EPROCESS``: offsets and formats from the symbol table's
    templates. A structure or union is its whole word (SecureState); an array its first
    element (Affinity.Bitmap: the group-0 mask), except a byte array, which is whole."""
    template, offset = eprocess, 0
    for part in path.split("."):
        offset += template.relative_child_offset(part)
        template = _resolve(context, template.child_template(part))
    vol = template.vol
    if "start_bit" in vol:  # a bit field: read its base word
        base = _resolve(context, vol.base_type).vol.data_format
        return _Slot(offset, base.length, base.signed, vol.start_bit, vol.end_bit)
    if "count" in vol:  # an array
        element = _resolve(context, vol.subtype)
        if element.size == 1:
            return _Slot(offset, vol.count)
        return _Slot(offset, element.vol.data_format.length, element.vol.data_format.signed)
    if "data_format" in vol:  # an integer or a pointer
        return _Slot(offset, vol.data_format.length, vol.data_format.signed,
                     pointer="subtype" in vol)
    return _Slot(offset, template.size)  # a structure or union: the whole word


def check_process_type(context: interfaces.context.ContextInterface,
                       kernel_module_name: str) -> interfaces.objects.Template:
    """The kernel's ``_EPROCESS`` type, after checking that the symbol table has it with the
    members every Windows kernel's has, each of a type the table defines. Raises
    :class:`SymbolTableMismatch` naming the table and what is missing."""
    kernel = context.modules[kernel_module_name]
    try:
        eprocess = kernel.get_type("_EPROCESS")
    except exceptions.SymbolError:
        raise _mismatch(context, kernel_module_name, "_EPROCESS",
                        "it has no _EPROCESS type") from None
    missing = [name for name in CORE_MEMBERS if not eprocess.has_member(name)]
    if missing:
        raise _mismatch(context, kernel_module_name, "_EPROCESS",
                        f"its _EPROCESS lacks {', '.join(missing)}")
    for path in (*CORE_MEMBERS, "Pcb.DirectoryTableBase"):
        template = eprocess
        try:
            for part in path.split("."):
                if not template.has_member(part):
                    raise _mismatch(context, kernel_module_name, f"_EPROCESS.{path}",
                                    f"its _EPROCESS lacks {path}")
                template = _resolve(context, template.child_template(part))
            template.size  # resolves every type the member is made of
        except (exceptions.SymbolError, KeyError, AttributeError, TypeError) as excp:
            raise _mismatch(context, kernel_module_name, f"_EPROCESS.{path}",
                            f"_EPROCESS.{path} has a type the table does not define "
                            f"({excp})") from None
    return eprocess


def _member(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _read_secure_state(context, proc) -> int:
    """The whole SecureState word, whatever the union's members are called in this build."""
    state = proc.Pcb.SecureState
    data = context.layers[state.vol.layer_name].read(state.vol.offset, state.vol.size)
    return int.from_bytes(data, "little")


def _read_affinity(proc, path: str) -> int:
    # NtQueryInformationProcess returns the group-0 mask: the first word of the bitmap.
    return int(proc.Pcb.Affinity.Bitmap[0]) if path.endswith("Bitmap") else int(proc.Pcb.Affinity)


def read_name(proc) -> str:
    return proc.ImageFileName.cast("string", max_length=proc.ImageFileName.vol.count,
                                   errors="replace")


class _UnicodeStringReader:
    """Reads the UNICODE_STRING of an _OBJECT_NAME_INFORMATION (the audit image name: pool
    memory, so readable even for a trustlet), its members placed by the symbol table."""

    def __init__(self, context, kernel_module_name: str) -> None:
        kernel = context.modules[kernel_module_name]
        name_info = kernel.get_type("_OBJECT_NAME_INFORMATION")
        string = _resolve(context, name_info.child_template("Name"))
        self._name = name_info.relative_child_offset("Name")
        self._length = string.relative_child_offset("Length")
        self._maximum = string.relative_child_offset("MaximumLength")
        self._buffer = string.relative_child_offset("Buffer")
        self._pointer_size = string.child_template("Buffer").size
        self._size = string.size

    def read(self, layer, address: int) -> str | None:
        """The string, as Volatility's ``get_string`` gives it (UTF-16, undecodable units
        replaced, cut at a NUL); None for an empty one. Raises InvalidAddressException for
        memory the dump lacks and for a header no kernel writes (Length past MaximumLength,
        or odd)."""
        header = layer.read(address + self._name, self._size)
        length = int.from_bytes(header[self._length:self._length + 2], "little")
        maximum = int.from_bytes(header[self._maximum:self._maximum + 2], "little")
        buffer = int.from_bytes(header[self._buffer:self._buffer + self._pointer_size],
                                "little") & layer.address_mask
        if length == 0:
            return None
        if length > maximum or length % 2 or not buffer:
            raise exceptions.InvalidAddressException(
                layer.name, address, f"implausible UNICODE_STRING at {address:#x}: Length "
                f"{length}, MaximumLength {maximum}, Buffer {buffer:#x}")
        text = layer.read(buffer, length).decode("utf-16-le", errors="replace")
        end = text.find("\x00")
        return (text if end < 0 else text[:end]) or None


class ProcessReader:
    """Reads processes of one kernel: the symbol table is probed once, then each EPROCESS is read
    by the member names found. Construct one per kernel module and call it per process.

    The usual case reads the EPROCESS in one piece and decodes each field at the offset the
    symbol table gives its name (Volatility's object machinery costs milliseconds per process
    at the dozen fields read here). When that read fails — the structure runs into memory the
    dump lacks — each field is read on its own through Volatility's objects, so the readable
    ones still come back and the others are marked unreadable.
    """

    def __init__(self, context: interfaces.context.ContextInterface,
                 kernel_module_name: str) -> None:
        self.context = context
        self.kernel_module_name = kernel_module_name
        eprocess = check_process_type(context, kernel_module_name)
        try:
            self.layout, self._access = _probe(context, kernel_module_name)
        except (exceptions.SymbolError, KeyError, AttributeError, TypeError) as excp:
            raise _mismatch(context, kernel_module_name, "_EPROCESS",
                            f"a member type of _EPROCESS or _KPROCESS is not defined "
                            f"({excp})") from None
        paths = {"pid": "UniqueProcessId", "ppid": "InheritedFromUniqueProcessId",
                 "name": "ImageFileName", **self._access}
        if "protection" in paths:
            paths["protection"] = "Protection.Level"
        paths.pop("trusted_app", None)  # a bit of the SecureState word, decoded by derive
        if "image_path" in paths:
            paths[_IMAGE_NAME_POINTER] = paths.pop("image_path")
        self._slots = {}
        for attribute, path in paths.items():
            try:
                self._slots[attribute] = _locate(context, eprocess, path)
            except (exceptions.SymbolError, KeyError, AttributeError, TypeError) as excp:
                raise _mismatch(context, kernel_module_name, f"_EPROCESS.{path}",
                                f"_EPROCESS.{path} has a type the table does not define "
                                f"({excp})") from None
        self._span = max(slot.offset + slot.length for slot in self._slots.values())
        self._strings = (_UnicodeStringReader(context, kernel_module_name)
                         if "image_path" in self._access else None)
        self._kernel_space = kernel_space_start(
            context.layers[context.modules[kernel_module_name].layer_name])

    def _image_path(self, layer, pointer: int) -> str | None:
        """The audit image name the pointer leads to; None where it is NULL (System)."""
        return self._strings.read(layer, pointer) if pointer else None

    def __call__(self, proc: interfaces.objects.ObjectInterface, *,
                 linked: bool = True) -> ProcessFields:
        """Every value iumdump derives from, read from one EPROCESS object. Never raises for
        unreadable memory: such fields come back None and are listed in ``unreadable``."""
        layer = self.context.layers[proc.vol.layer_name]
        try:
            data = layer.read(proc.vol.offset, self._span)
        except exceptions.InvalidAddressException:
            return self.read_fields(proc, linked=linked)
        values: dict[str, object] = {attribute: slot.decode(data, layer.address_mask)
                                     for attribute, slot in self._slots.items()}
        name = self._slots["name"]
        values["name"] = _decode_name(data[name.offset:name.offset + name.length])
        unreadable: set[str] = set()
        if _IMAGE_NAME_POINTER in values:
            pointer = values.pop(_IMAGE_NAME_POINTER)
            try:
                values["image_path"] = self._image_path(layer, pointer)
            except exceptions.InvalidAddressException as excp:
                vollog.debug(f"Process at {proc.vol.offset:#x}: audit image name: {excp}")
                unreadable.add("image_path")
        return ProcessFields(offset=proc.vol.offset, linked=linked, layout=self.layout,
                             unreadable=frozenset(unreadable), problems=self._placement(proc),
                             **values)

    def _placement(self, proc: interfaces.objects.ObjectInterface) -> tuple[str, ...]:
        """Why the object cannot be an EPROCESS where it lies: the kernel allocates processes
        in kernel space, so one in user space came from a corrupt link (e.g. into the user
        alias of KUSER_SHARED_DATA) and its fields are not a process's."""
        if proc.vol.offset < self._kernel_space:
            return (f"EPROCESS at {proc.vol.offset:#x} lies in user space, where the kernel "
                    "never allocates a process: a corrupt list link, not a process",)
        return ()

    def read_fields(self, proc: interfaces.objects.ObjectInterface, *,
                    linked: bool = True) -> ProcessFields:
        """Each field on its own through Volatility's objects (the path for damaged memory)."""
        values: dict[str, object] = {}
        unreadable: set[str] = set()

        def attempt(attribute: str, read: Callable[[], object]) -> None:
            try:
                values[attribute] = read()
            except exceptions.InvalidAddressException:
                unreadable.add(attribute)

        attempt("pid", lambda: int(proc.UniqueProcessId))
        attempt("ppid", lambda: int(proc.InheritedFromUniqueProcessId))
        attempt("name", lambda: read_name(proc))
        access = self._access
        if "secure_state" in access:
            attempt("secure_state", lambda: _read_secure_state(self.context, proc))
        if "protection" in access:
            attempt("protection", lambda: int(proc.Protection.Level))
        if "affinity" in access:
            attempt("affinity", lambda: _read_affinity(proc, access["affinity"]))
        for attribute in _WORD_FIELDS:
            if attribute in access:
                attempt(attribute, lambda path=access[attribute]: int(_member(proc, path)))
        if "image_path" in access:
            layer = self.context.layers[proc.vol.layer_name]
            attempt("image_path", lambda: self._image_path(
                layer, int(proc.SeAuditProcessCreationInfo.ImageFileName)))
        return ProcessFields(offset=proc.vol.offset, linked=linked, layout=self.layout,
                             unreadable=frozenset(unreadable), problems=self._placement(proc),
                             **values)


def _decode_name(data: bytes) -> str:
    """ImageFileName as Volatility's ``cast("string", errors="replace")`` gives it."""
    text = data.decode("utf-8", errors="replace")
    end = text.find("\x00")
    return text if end < 0 else text[:end]


def read_process(context: interfaces.context.ContextInterface, kernel_module_name: str,
                 proc: interfaces.objects.ObjectInterface, *, linked: bool = True) -> ProcessFields:
    """One process (probes the symbol table each call: use :class:`ProcessReader` for many)."""
    return ProcessReader(context, kernel_module_name)(proc, linked=linked)


def _pid_filter(pids: Iterable[int] | None) -> Callable[[interfaces.objects.ObjectInterface], bool]:
    """PsList's filter convention (True = leave out); a process whose UniqueProcessId cannot be
    read cannot be one of ``pids``, and must not end the listing with an exception."""
    if not pids:
        return lambda _proc: False
    wanted = set(pids)

    def leave_out(proc) -> bool:
        try:
            return int(proc.UniqueProcessId) not in wanted
        except exceptions.InvalidAddressException:
            return True

    return leave_out


def process_selection_requirements(*, architectures: list[str], pid_description: str,
                                   scan_description: str
                                   ) -> list[interfaces.configuration.RequirementInterface]:
    """The requirements every iumdump plugin shares: the kernel, the PsList and PsScan versions
    whose classmethods ``iter_processes`` calls, ``--pid`` and ``--scan``."""
    return [
        requirements.ModuleRequirement(
            name="kernel", description="Windows kernel", architectures=architectures
        ),
        requirements.VersionRequirement(name="pslist", component=pslist.PsList, version=(3, 0, 0)),
        requirements.VersionRequirement(name="psscan", component=psscan.PsScan, version=(2, 0, 0)),
        requirements.ListRequirement(
            name="pid", element_type=int, description=pid_description, optional=True
        ),
        requirements.BooleanRequirement(
            name="scan", description=scan_description, default=False, optional=True
        ),
    ]


def iter_processes(context: interfaces.context.ContextInterface, kernel_module_name: str, *,
                   scan: bool = False, pids: Iterable[int] | None = None,
                   problems: list[str] | None = None
                   ) -> Iterator[tuple[interfaces.objects.ObjectInterface, bool]]:
    """``(EPROCESS, linked)`` for every process of the active list, then (with ``scan``) those the
    pool scanner finds that the list does not hold (``linked`` False). ``pids`` filters both.

    A walk or scan that hits unreadable memory ends there; what it found stays. Whatever makes
    the listing incomplete — an unreadable list or scan, a list that does not lead back to its
    head (cut, or looping) — is logged as a warning and appended to ``problems``. Finding no
    process at all, unfiltered, raises :class:`SymbolTableMismatch`: every Windows kernel has
    processes, so the symbol table does not fit the kernel (or its memory is ruined)."""
    leave_out = _pid_filter(pids)
    seen: set[int] = set()
    listed = found = 0

    def problem(message: str) -> None:
        vollog.warning(message)
        if problems is not None:
            problems.append(message)

    list_problem = active_list_problem(context, kernel_module_name)
    if list_problem:
        problem(list_problem)
    active = []
    try:
        for proc in pslist.PsList.list_processes(context, kernel_module_name,
                                                 filter_func=leave_out):
            active.append(proc)
    except exceptions.InvalidAddressException as excp:
        problem(f"Active process list unreadable at {excp.invalid_address:#x}; "
                "the listing is partial")
    if active and not pids and not any(_has_process_id(proc) for proc in active):
        raise _mismatch(context, kernel_module_name, "_EPROCESS.UniqueProcessId",
                        f"none of the {len(active)} processes of the active process list has "
                        "a process id Windows issues (the table's _EPROCESS offsets are not "
                        "this kernel's)")
    for proc in active:
        seen.add(proc.vol.offset)
        listed += 1
        yield proc, True
    if scan:
        found, also_listed = yield from _scanned(context, kernel_module_name, leave_out, seen,
                                                 problem)
        if listed and found and not also_listed and not list_problem and not pids:
            # A closed ring of objects none of which the pool holds: the list is fine, the
            # offsets the table gives for walking it are not.
            raise _mismatch(context, kernel_module_name, "_EPROCESS.ActiveProcessLinks",
                            f"none of the {listed} processes of the active process list is "
                            f"among the {found} the pool scan finds (_EPROCESS."
                            "ActiveProcessLinks is not where the table puts it)")
    if listed + found or pids:
        return
    where = "in the active process list" + (" nor by pool scanning" if scan else "")
    raise _mismatch(context, kernel_module_name, "PsActiveProcessHead",
                    f"no process found {where}"
                    + (f" ({list_problem.replace('The ', 'the ', 1)})" if list_problem else "")
                    + ("" if scan else "; --scan also searches the pool"))


def _has_process_id(proc: interfaces.objects.ObjectInterface) -> bool:
    try:
        return is_process_id(int(proc.UniqueProcessId))
    except exceptions.InvalidAddressException:
        return False


def _scanned(context, kernel_module_name: str, leave_out, seen: set[int], problem
             ) -> Iterator[tuple[interfaces.objects.ObjectInterface, bool]]:
    """The pool scan's processes that the list did not hold; returns how many, and how many
    the scan found that the list held too."""
    kernel = context.modules[kernel_module_name]
    found = also_listed = 0
    try:
        for proc in psscan.PsScan.scan_processes(context, kernel_module_name,
                                                 filter_func=leave_out):
            if proc.vol.layer_name != kernel.layer_name:
                # Before Windows 10 the scan runs over physical memory: bounce to the virtual
                # object.
                try:
                    virtual = psscan.PsScan.virtual_process_from_physical(
                        context, kernel_module_name, proc)
                except exceptions.InvalidAddressException:
                    virtual = None
                if virtual is None:
                    vollog.log(constants.LOGLEVEL_V,
                               f"Scanned process at physical {proc.vol.offset:#x} has no "
                               "virtual address; skipped")
                    continue
                proc = virtual
            if proc.vol.offset in seen:
                also_listed += 1
                continue
            seen.add(proc.vol.offset)
            found += 1
            yield proc, False
    except exceptions.InvalidAddressException as excp:
        problem(f"Pool scan stopped at unreadable {excp.invalid_address:#x}; the scan is partial")
    return found, also_listed


def active_list_problem(context: interfaces.context.ContextInterface,
                        kernel_module_name: str) -> str | None:
    """Why the active process list is not a closed ring, or None when following the Flinks from
    PsActiveProcessHead leads back to it. Volatility's walk (forward, then backward) stops
    silently at an unreadable link or an entry it has seen, so a cut or a loop would otherwise
    pass for a short list."""
    kernel = context.modules[kernel_module_name]
    try:
        head = kernel.object(object_type="_LIST_ENTRY",
                             offset=kernel.get_symbol("PsActiveProcessHead").address)
    except exceptions.SymbolError as excp:
        raise _mismatch(context, kernel_module_name, "PsActiveProcessHead",
                        f"it has no PsActiveProcessHead or _LIST_ENTRY ({excp})") from None
    layer = context.layers[head.vol.layer_name]
    width = head.vol.size // 2  # Flink, then Blink
    start = head.vol.offset
    address, visited = start, {start}
    for count in range(MAX_LIST_ENTRIES):
        try:
            link = int.from_bytes(layer.read(address, width), "little") & layer.address_mask
        except exceptions.InvalidAddressException:
            if not count:
                return f"PsActiveProcessHead at {address:#x} cannot be read"
            return (f"The active process list is cut after {_entries(count)}: the entry at "
                    f"{address:#x} cannot be read")
        if link == start:
            return None if count else "The active process list (PsActiveProcessHead) is empty"
        if link in visited:
            return (f"The active process list loops: entry {count} links back to "
                    f"{link:#x} instead of returning to PsActiveProcessHead")
        if not layer.is_valid(link, width):
            if not count:
                return f"PsActiveProcessHead at {address:#x} links to unreadable {link:#x}"
            return (f"The active process list is cut after {_entries(count)}: the entry at "
                    f"{address:#x} links to unreadable {link:#x}")
        visited.add(link)
        address = link
    return f"The active process list has more than {MAX_LIST_ENTRIES:,} entries (corrupt)"


def _entries(count: int) -> str:
    return f"{count:,} entr{'y' if count == 1 else 'ies'}"


def read_processes(context: interfaces.context.ContextInterface, kernel_module_name: str, *,
                   scan: bool = False, pids: Iterable[int] | None = None,
                   progress_callback: ProgressCallback = None,
                   problems: list[str] | None = None) -> Iterator[ProcessFields]:
    """:func:`read_process` over :func:`iter_processes`, reporting progress per process."""
    reader = ProcessReader(context, kernel_module_name)
    found = list(iter_processes(context, kernel_module_name, scan=scan, pids=pids,
                                problems=problems))
    for index, (proc, linked) in enumerate(found):
        if progress_callback:
            progress_callback(100.0 * index / max(len(found), 1), "Reading processes")
        yield reader(proc, linked=linked)
    if progress_callback:
        progress_callback(100.0, "Reading processes")


def absent_value(reason: Unknown | None) -> interfaces.renderers.BaseAbsentValue:
    """The Volatility renderer value for an unknown: unreadable memory → UnreadableValue; a field
    the build lacks or no EPROCESS field carries → NotAvailableValue."""
    if reason is Unknown.UNREADABLE:
        return renderers.UnreadableValue()
    return renderers.NotAvailableValue()


class VolatilitySession:
    """One dump opened in one Volatility context: the layers are stacked and the kernel found
    once, then any number of plugins (or the reader functions) run against the same context."""

    BASE_CONFIG_PATH = "iumdump.plugins"  # each run is configured under plugins<N>.<Name>

    def __init__(self, context: interfaces.context.ContextInterface, kernel_config_path: str,
                 progress_callback: ProgressCallback = None) -> None:
        self.context = context
        self._kernel_config_path = kernel_config_path
        self.kernel_module_name: str = context.config[kernel_config_path]
        self._progress_callback = progress_callback
        self._runs = 0

    def plugin(self, plugin_class: type, **options) -> interfaces.plugins.PluginInterface:
        """``plugin_class`` configured on this session's kernel, with ``options`` (requirement
        name → value, e.g. ``pid=[4]``, ``scan=True``) set in its configuration. Each call gets
        its own configuration path, so no option leaks from one run into the next."""
        self._runs += 1
        path = interfaces.configuration.path_join(f"{self.BASE_CONFIG_PATH}{self._runs}",
                                                  plugin_class.__name__)
        kernel_path = interfaces.configuration.path_join(path, "kernel")
        kernel_config = self.context.config.branch(self._kernel_config_path)
        self.context.config.splice(kernel_path, kernel_config)
        self.context.config[kernel_path] = self.kernel_module_name
        for name, value in options.items():
            self.context.config[interfaces.configuration.path_join(path, name)] = value
        return plugin_class(self.context, path, progress_callback=self._progress_callback)

    @classmethod
    def for_module(cls, context: interfaces.context.ContextInterface, kernel_module_name: str,
                   progress_callback: ProgressCallback = None) -> "VolatilitySession":
        """A session on a context whose kernel module someone else (e.g. a plugin run) found."""
        return cls(context, context.modules[kernel_module_name].config_path, progress_callback)

    def rows(self, plugin_class: type, **options) -> list[dict]:
        """The plugin's rows as ``{column: value}`` with Volatility's own values (absent values
        stay absent-value objects; :func:`json_value` turns a value into what ``-r json``
        prints)."""
        grid = self.plugin(plugin_class, **options).run()
        names = [column.name for column in grid.columns]
        rows: list[dict] = []

        def visit(node, accumulator):
            accumulator.append(dict(zip(names, node.values)))
            return accumulator

        grid.populate(visit, rows)
        return rows


def json_value(value):
    """A cell as Volatility's JSON renderer writes it for the types the plugins use: absent
    values become None, Hex its int, everything else itself."""
    if isinstance(value, interfaces.renderers.BaseAbsentValue):
        return None
    return value


def load_plugins() -> dict[str, type]:
    """Volatility's plugins and iumdump's, by registered name (``windows.secureprocs.SecureProcs``),
    as ``vol -p <iumdump plugins>`` would load them.

    ``volatility3.plugins.windows`` computes its search path when first imported, and importing
    Volatility's Windows symbols imports it, so the plugin directory goes on both paths.
    """
    import os

    import volatility3.plugins
    import volatility3.plugins.windows
    from volatility3 import framework

    from ..volplugins import plugin_directory

    directory = str(plugin_directory())
    if directory not in volatility3.plugins.__path__:
        volatility3.plugins.__path__ = [directory] + list(volatility3.plugins.__path__)
    windows = os.path.join(directory, "windows")
    if windows not in volatility3.plugins.windows.__path__:
        volatility3.plugins.windows.__path__.append(windows)
    framework.import_files(volatility3.plugins, True)
    return framework.list_plugins()


def open_dump(path: str, symbol_dirs: Iterable[str] = (), *,
              progress_callback: ProgressCallback = None, offline: bool = True
              ) -> VolatilitySession:
    """Open the dump at ``path`` as ``iumdump analyze`` does (checked, one automagic pass, the
    symbol tables under ``symbol_dirs`` first, as ``vol -s``) and return a session for running
    plugins and the reader on it. Raises :class:`iumdump.errors.Error` subclasses (e.g.
    DumpFormatError) with one-line messages when it is not a readable Windows dump."""
    from .session import inspect_dump, open_kernel, volatility_settings

    dump = inspect_dump(path)
    with volatility_settings(list(symbol_dirs), offline):
        kernel = open_kernel(dump, offline=offline, progress_callback=progress_callback)
    return VolatilitySession.for_module(kernel.context, kernel.kernel_module_name,
                                        progress_callback)
