"""The built-in 19041 x64 profile: a valid ISF that Volatility loads and classifies as 19041, whose
every entry is a fact of the real kernel, and which holds what the kernel and the plugins need."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
from markers import SLOW

from iumdump.errors import SymbolError
from iumdump.isf import SymbolTable
from iumdump.slat import profile
from iumdump.slat.profile import (BUILTIN_AGE, BUILTIN_GUID, BUILTIN_PDB_NAME, builtin_isf,
                                  builtin_symbol_table, parse_layout)

REPO = Path(__file__).resolve().parents[2]
SHARED_ISF = REPO.parent / "shared" / "isf"
REAL_19041 = SHARED_ISF / "606FF669409B00F7FC8C61A9C1670129-1.json.xz"  # ntoskrnl 10.0.19041.3570

# DESIGN.md §4, "Offsets seen in real symbol tables", row 19041: an oracle independent of the
# shared ISF, so these hold even where ../shared is absent.
KPROCESS_SECURESTATE_19041 = 0x3E0
EPROCESS_PROTECTION_19041 = 0x87A
EPROCESS_FLAGS3_19041 = 0x87C
EPROCESS_SIZE_19041 = 0xA40

# What iumdump's plugins read by name (DESIGN.md §4 and §5): (type, dotted path).
PLUGIN_MEMBERS = [
    ("_KPROCESS", "SecureState"),
    ("_KPROCESS", "SecureState.SecureHandle"),
    ("_KPROCESS", "SecureState.Flags.SecureProcess"),
    ("_KPROCESS", "SecureState.Flags.Unused"),
    ("_KPROCESS", "DeepFreeze"),
    ("_EPROCESS", "Pcb.DirectoryTableBase"),
    ("_EPROCESS", "Pcb.Affinity"),
    ("_EPROCESS", "Pcb.BasePriority"),
    ("_EPROCESS", "Pcb.SecureState.Flags.SecureProcess"),
    ("_EPROCESS", "Protection"),
    ("_EPROCESS", "Protection.Level"),
    ("_EPROCESS", "Protection.Type"),
    ("_EPROCESS", "Protection.Audit"),
    ("_EPROCESS", "Protection.Signer"),
    ("_EPROCESS", "Flags"),
    ("_EPROCESS", "Flags2"),
    ("_EPROCESS", "Flags3"),
    ("_EPROCESS", "WoW64Process"),
    ("_EPROCESS", "ExitStatus"),
    ("_EPROCESS", "Peb"),
    ("_EPROCESS", "UniqueProcessId"),
    ("_EPROCESS", "InheritedFromUniqueProcessId"),
    ("_EPROCESS", "VadRoot"),
    ("_EPROCESS", "ImageFileName"),
    ("_EPROCESS", "ActiveProcessLinks"),
]
# Flag bits the plugins find with SymbolTable.bitfields_at: (type, word, bit name, bit position).
PLUGIN_FLAG_BITS = [
    ("_EPROCESS", "Flags", "ProcessDelete", 3),
    ("_EPROCESS", "Flags", "Background", 20),
    ("_EPROCESS", "Flags2", "CrossSessionCreate", 7),
    ("_EPROCESS", "Flags3", "Minimal", 0),
    ("_EPROCESS", "Flags3", "SubsystemProcess", 6),
    ("_KPROCESS", "ProcessFlags", "DeepFreeze", 3),
    ("_KPROCESS", "SecureState", "SecureProcess", 0),
]


@pytest.fixture(scope="module")
def isf() -> dict:
    return builtin_isf()


@pytest.fixture(scope="module")
def real_isf() -> dict:
    if not REAL_19041.exists():
        pytest.skip(f"real 19041 symbol table not present at {REAL_19041}")
    with lzma.open(REAL_19041, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _load_in_volatility(context, path: Path, name: str, validate: bool = True) -> str:
    from volatility3.framework.symbols.windows import WindowsKernelIntermedSymbols

    # the class pdbscan uses for a kernel: its constructor binds Volatility's object classes to
    # about thirty types by name and fails if any is missing
    table = WindowsKernelIntermedSymbols(context, f"tables.{name}", name, path.as_uri(),
                                         validate=validate)
    context.symbol_space.append(table)
    return name


@pytest.fixture(scope="module")
def builtin_in_volatility(isf, tmp_path_factory):
    from volatility3.framework import contexts

    path = tmp_path_factory.mktemp("isf") / f"{BUILTIN_GUID}-{BUILTIN_AGE}.json"
    path.write_text(json.dumps(isf), encoding="utf-8")
    context = contexts.Context()
    return context, _load_in_volatility(context, path, "builtin")


# -- identity and format -------------------------------------------------------------------------
def test_pdb_identity_is_our_own():
    table = builtin_symbol_table()
    assert table.guid == BUILTIN_GUID
    assert len(BUILTIN_GUID) == 32 and int(BUILTIN_GUID, 16) >= 0
    assert table.age == BUILTIN_AGE == 1
    assert table.pdb_name == BUILTIN_PDB_NAME == "ntkrnlmp.pdb"
    assert table.pdb["machine_type"] == 0x8664
    real_guids = {p.name.split("-")[0].upper() for p in SHARED_ISF.glob("*.json.xz")}
    assert BUILTIN_GUID not in real_guids | {"606FF669409B00F7FC8C61A9C1670129",
                                             "517E128F7B7C4EA79491DE6B9B9CE190"}


def test_passes_volatility_schema(isf):
    jsonschema = pytest.importorskip("jsonschema")
    from volatility3 import schemas

    schema_path = Path(schemas.__file__).parent / f"schema-{isf['metadata']['format']}.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.validate(isf, schema)  # raises with the failing path, unlike schemas.valid
    assert schemas.valid(isf, schema, use_cache=False)


def test_document_is_deterministic_and_a_fresh_copy():
    first = builtin_isf()
    first["user_types"]["_EPROCESS"]["size"] = 0
    second = builtin_isf()
    assert second["user_types"]["_EPROCESS"]["size"] == EPROCESS_SIZE_19041
    assert json.dumps(second, sort_keys=True) == json.dumps(builtin_isf(), sort_keys=True)


def test_is_compact(isf):
    # hand-curated, not a copy of a PDB: tens of types, a few hundred fields at most
    assert len(isf["user_types"]) < 120
    assert sum(len(t["fields"]) for t in isf["user_types"].values()) < 600
    assert len(isf["symbols"]) < 60


# -- facts ---------------------------------------------------------------------------------------
def test_design_offsets(isf):
    table = builtin_symbol_table()
    assert table.member("_KPROCESS", "SecureState").offset == KPROCESS_SECURESTATE_19041
    assert table.member("_EPROCESS", "Protection").offset == EPROCESS_PROTECTION_19041
    assert table.member("_EPROCESS", "Flags3").offset == EPROCESS_FLAGS3_19041
    assert table.size("_EPROCESS") == EPROCESS_SIZE_19041
    assert not table.has_member("_KPROCESS", "SecurePid")
    assert not table.has_member("_EPROCESS", "TrustletIdentity")


def _same_descriptor(ours: dict, real: dict, isf: dict, real_isf: dict, where: str,
                     anonymous: dict[str, str]) -> None:
    assert ours["kind"] == real["kind"], where
    kind = ours["kind"]
    if kind in ("base", "enum"):
        assert ours["name"] == real["name"], where
    elif kind == "pointer":
        _same_descriptor(ours["subtype"], real["subtype"], isf, real_isf, where + "*", anonymous)
    elif kind == "array":
        assert ours["count"] == real["count"], where
        _same_descriptor(ours["subtype"], real["subtype"], isf, real_isf, where + "[]", anonymous)
    elif kind == "bitfield":
        assert (ours["bit_position"], ours["bit_length"]) == \
            (real["bit_position"], real["bit_length"]), where
        _same_descriptor(ours["type"], real["type"], isf, real_isf, where, anonymous)
    elif kind in ("struct", "union"):
        if ours["name"].startswith("__anonymous"):
            # PDB converters number anonymous types; ours are named by parent and field
            assert real["name"].startswith("__anonymous"), where
            assert anonymous.setdefault(ours["name"], real["name"]) == real["name"], where
        else:
            assert ours["name"] == real["name"], where


def test_every_entry_is_a_19041_fact(isf, real_isf):
    """Each type's kind and size, each field's offset, type and bit position, each enum constant
    and each symbol RVA equal those of the real 19041 kernel's symbol table."""
    anonymous: dict[str, str] = {}
    for name, ours in isf["user_types"].items():
        if name.startswith("__anonymous"):
            continue
        _compare_type(name, ours, real_isf["user_types"][name], isf, real_isf, anonymous)
    # anonymous types are checked through the real type their parent's field points at
    checked = set()
    while set(anonymous) - checked:
        for name in sorted(set(anonymous) - checked):
            checked.add(name)
            _compare_type(name, isf["user_types"][name],
                          real_isf["user_types"][anonymous[name]], isf, real_isf, anonymous)
    assert {n for n in isf["user_types"] if n.startswith("__anonymous")} == checked
    for name, ours in isf["enums"].items():
        real = real_isf["enums"][name]
        assert (ours["size"], ours["base"]) == (real["size"], real["base"]), name
        assert ours["constants"].items() <= real["constants"].items(), name
    for name, ours in isf["symbols"].items():
        assert ours["address"] == real_isf["symbols"][name]["address"], name


def _compare_type(name, ours, real, isf, real_isf, anonymous):
    assert (ours["kind"], ours["size"]) == (real["kind"], real["size"]), name
    for field, value in ours["fields"].items():
        assert field in real["fields"], f"{name}.{field} is not in the real 19041 table"
        assert value["offset"] == real["fields"][field]["offset"], f"{name}.{field}"
        _same_descriptor(value["type"], real["fields"][field]["type"], isf, real_isf,
                         f"{name}.{field}", anonymous)


def test_base_types_match_the_pdb_converter(isf, real_isf):
    assert isf["base_types"] == real_isf["base_types"]


# -- Volatility ----------------------------------------------------------------------------------
def test_volatility_resolves_every_type_enum_and_symbol(isf, builtin_in_volatility):
    from volatility3.framework.layers.physical import BufferDataLayer

    context, table = builtin_in_volatility
    size = max(t["size"] for t in isf["user_types"].values())
    context.add_layer(BufferDataLayer(context, "layers.zero", "zero", b"\x00" * size))
    for name, declared in isf["user_types"].items():
        template = context.symbol_space.get_type(f"{table}!{name}")
        assert template.size == declared["size"], name
        assert set(template.vol.members) == set(declared["fields"]), name
        obj = context.object(f"{table}!{name}", layer_name="zero", offset=0)
        for field in declared["fields"]:
            value = obj.member(field)   # builds the member's template and reads it
            assert value.vol.offset == declared["fields"][field]["offset"], f"{name}.{field}"
    for name, declared in isf["enums"].items():
        assert context.symbol_space.get_enumeration(f"{table}!{name}").choices == \
            declared["constants"]
    for name, declared in isf["symbols"].items():
        assert context.symbol_space.get_symbol(f"{table}!{name}").address == declared["address"]


def test_volatility_reads_the_secure_state_and_protection(builtin_in_volatility):
    """The fields the plugins need read back through Volatility's own object model."""
    from volatility3.framework.layers.physical import BufferDataLayer

    context, table = builtin_in_volatility
    data = bytearray(EPROCESS_SIZE_19041)
    data[KPROCESS_SECURESTATE_19041:KPROCESS_SECURESTATE_19041 + 8] = (0x1234 | 1).to_bytes(8, "little")
    data[EPROCESS_PROTECTION_19041] = 0x41                      # ProtectedLight/Lsa
    data[EPROCESS_FLAGS3_19041:EPROCESS_FLAGS3_19041 + 4] = (1 | 1 << 6).to_bytes(4, "little")
    context.add_layer(BufferDataLayer(context, "layers.eprocess", "eprocess", bytes(data)))
    proc = context.object(f"{table}!_EPROCESS", layer_name="eprocess", offset=0)
    assert proc.Pcb.SecureState.Flags.SecureProcess == 1
    assert proc.Pcb.SecureState.SecureHandle == 0x1235
    assert (proc.Protection.Type, proc.Protection.Signer, proc.Protection.Audit) == (1, 4, 0)
    assert (proc.Minimal, proc.SubsystemProcess, proc.ProcessFirstResume) == (1, 1, 0)


def _distinguishers():
    from volatility3.framework.symbols.windows import versions

    return {name: value for name, value in vars(versions).items()
            if isinstance(value, versions.OsDistinguisher)}


def test_volatility_classifies_it_as_windows_10_19041_x64(builtin_in_volatility):
    from volatility3.framework import symbols
    from volatility3.framework.symbols.windows.extensions import pool

    context, table = builtin_in_volatility
    checks = {name: check(context, table) for name, check in _distinguishers().items()}
    assert checks["is_windows_10"] and checks["is_win10_19041_or_later"]
    assert checks["is_windows_8_1_or_later"] and checks["is_vista_or_later"]
    assert not checks["is_win10_19577_or_later"] and not checks["is_windows_7"]
    assert symbols.symbol_table_is_64bit(context=context, symbol_table_name=table)
    # psscan's pool header: the Vista+ class, chosen from _POOL_TRACKER_BIG_PAGES.PoolType
    assert context.symbol_space[table].get_type_class("_POOL_HEADER") is pool.POOL_HEADER_VISTA


def test_volatility_classifies_it_as_the_real_19041_table_does(builtin_in_volatility, real_isf):
    """Every version check in volatility3's versions.py gives the same answer for both tables."""
    context, table = builtin_in_volatility
    real = _load_in_volatility(context, REAL_19041, "real19041", validate=False)
    for name, check in _distinguishers().items():
        assert check(context, table) == check(context, real), name
    assert context.symbol_space[table].get_type_class("_POOL_HEADER") is \
        context.symbol_space[real].get_type_class("_POOL_HEADER")


# -- what iumdump needs ----------------------------------------------------------------------------
@pytest.mark.parametrize("type_name, path", PLUGIN_MEMBERS)
def test_plugin_members_exist(type_name, path):
    assert builtin_symbol_table().has_member(type_name, path)


@pytest.mark.parametrize("type_name, word, bit, position", PLUGIN_FLAG_BITS)
def test_plugin_flag_bits(type_name, word, bit, position):
    bits = {b.name: b for b in builtin_symbol_table().bitfields_at(type_name, word)}
    assert bits[bit].bit_position == position and bits[bit].bit_length == 1


def test_every_referenced_type_is_declared(isf):
    """Pointers included: Volatility resolves pointer targets lazily, so a dangling name would
    only fail when some plugin dereferences it."""
    def names(descriptor):
        kind = descriptor["kind"]
        if kind in ("struct", "union"):
            yield "user_types", descriptor["name"]
        elif kind == "enum":
            yield "enums", descriptor["name"]
        elif kind == "base":
            yield "base_types", descriptor["name"]
        for key in ("subtype", "type"):
            if key in descriptor:
                yield from names(descriptor[key])

    for type_name, declared in isf["user_types"].items():
        for field, value in declared["fields"].items():
            for section, name in names(value["type"]):
                assert name in isf[section], f"{type_name}.{field} refers to undeclared {name}"


# What the 19041 kernel lacks among the fields the synthetic kernel probes for other builds.
KERNEL_FIELDS_ABSENT_ON_19041 = {
    ("_EPROCESS", "Pcb.SecurePid"),                     # 1507-1703
    ("_EPROCESS", "TrustletIdentity"),                  # up to 1703
    ("_EPROCESS", "Pcb.SecureState.Flags.TrustedApp"),  # 24H2
    ("_EPROCESS", "ProtectedProcess"),                  # Windows 7 (Flags2 bit 11)
}


def _kernel_lists():
    from iumdump.slat.kernel import manifest  # the KERNEL_*_USED lists: what it reads by name

    return manifest


def test_has_every_field_the_synthetic_kernel_writes():
    """Required fields all; optional ones exactly where 19041 has them, so the kernel writes
    what a real 19041 kernel would hold."""
    kernel = _kernel_lists()
    table = builtin_symbol_table()
    optional = set(kernel.KERNEL_FIELDS_OPTIONAL)
    for type_name, path in kernel.KERNEL_FIELDS_USED + kernel.VOLATILITY_FIELDS_NEEDED:
        expected = (type_name, path) not in optional \
            or (type_name, path) not in KERNEL_FIELDS_ABSENT_ON_19041
        assert table.has_member(type_name, path) == expected, f"{type_name}.{path}"


def test_has_every_type_and_symbol_the_synthetic_kernel_uses():
    kernel = _kernel_lists()
    table = builtin_symbol_table()
    for name in set(kernel.KERNEL_TYPES_USED) - set(kernel.KERNEL_TYPES_OPTIONAL):
        assert table.has_type(name), name
    for name in kernel.KERNEL_SYMBOLS_REQUIRED:
        assert table.has_symbol(name), name


def test_kernel_optionals_present_exactly_where_19041_has_them(real_isf):
    kernel = _kernel_lists()
    table = builtin_symbol_table()
    real = SymbolTable(real_isf, source=str(REAL_19041))
    for type_name, path in kernel.KERNEL_FIELDS_OPTIONAL:
        assert table.has_member(type_name, path) == real.has_member(type_name, path), path
    for name in kernel.KERNEL_TYPES_OPTIONAL:
        assert table.has_type(name) == real.has_type(name), name
    for name in kernel.KERNEL_SYMBOLS_OPTIONAL:
        assert table.has_symbol(name) == real.has_symbol(name), name


# -- the layout grammar ----------------------------------------------------------------------------
def test_layout_grammar():
    user_types, enums, symbols = parse_layout(
        "struct _A 0x10  # a comment\n"
        "  0x0 Next _A*\n"
        "  0x8 Bits unsigned long:3:2\n"
        "  0xc Kind _E\n"
        "  0x8 Later _B[2]\n"
        "struct _B 0x2\n"
        "enum _E 4 int\n"
        "  One 1\n"
        "symbol Head 0x40\n")
    fields = user_types["_A"]["fields"]
    assert fields["Next"]["type"] == {"kind": "pointer", "subtype": {"kind": "struct", "name": "_A"}}
    assert fields["Bits"] == {"offset": 8, "type": {"bit_length": 2, "bit_position": 3,
                                                    "kind": "bitfield",
                                                    "type": {"kind": "base", "name": "unsigned long"}}}
    assert fields["Kind"]["type"] == {"kind": "enum", "name": "_E"}
    assert fields["Later"]["type"]["count"] == 2
    assert enums == {"_E": {"base": "int", "constants": {"One": 1}, "size": 4}}
    assert symbols == {"Head": {"address": 0x40}}


@pytest.mark.parametrize("text, message", [
    ("struct _A 0x8\n  0x0 X _Missing\n", "unknown type"),
    ("struct _A 0x8\n  0x4 X unsigned long long\n", "beyond the size"),
    ("struct _A 0x4\n  0x0 X unsigned long:30:4\n", "does not fit"),
    ("struct _A 0x4\n  0x0 X unsigned long\n  0x0 X unsigned long\n", "declared twice"),
    ("struct _A 0x4\nstruct _A 0x4\n", "declared twice"),
    ("  0x0 X unsigned long\n", "outside a declaration"),
    ("symbol Head zero\n", "not a number"),
])
def test_layout_errors_name_the_line(text, message):
    with pytest.raises(SymbolError, match=message) as caught:
        parse_layout(text, source="test.layout")
    assert "line " in str(caught.value) and "test.layout" in str(caught.value)


def test_layout_resource_is_packaged():
    from importlib import resources

    assert resources.files("iumdump").joinpath("data", profile.LAYOUT_RESOURCE).is_file()


# -- end to end ------------------------------------------------------------------------------------
# Volatility plugins whose every row must be the same on the same machine synthesized with the
# built-in profile and with the real 19041 table: the oracle five, the process plugins that
# follow EPROCESS into the PEB and the thread lists, and iumdump's own.
DIFFERENTIAL_PLUGINS = [
    "windows.info.Info", "windows.pslist.PsList", "windows.psscan.PsScan",
    "windows.vadinfo.VadInfo", "windows.memmap.Memmap", "windows.pstree.PsTree",
    "windows.cmdline.CmdLine", "windows.dlllist.DllList", "windows.sessions.Sessions",
    "windows.threads.Threads", "windows.malware.malfind.Malfind",
    "windows.secureprocs.SecureProcs", "windows.extbasicinfo.ExtBasicInfo",
    "windows.trustletpages.TrustletPages",
]


def _comparable(rows: list[dict]) -> list[dict]:
    from volatility3.framework.interfaces.renderers import BaseAbsentValue

    def value(v):
        # absent values (Unreadable, NotApplicable …) have no equality of their own
        return (type(v).__name__,) if isinstance(v, BaseAbsentValue) else v

    # info's Symbols row names the symbol file, which differs by design
    return [{k: value(v) for k, v in row.items()} for row in rows
            if row.get("Variable") != "Symbols"]


@SLOW  # each of Volatility's plugins on two dumps, one laid out by a real kernel's table
@pytest.mark.parametrize("plugin", DIFFERENTIAL_PLUGINS)
def test_volatility_reads_a_builtin_dump_as_it_reads_a_real_19041_one(plugin, synth_dump,
                                                                     volatility):
    if plugin not in volatility.plugins:
        pytest.skip(f"{plugin} is not available to Volatility here")
    builtin = synth_dump("credential-guard", "crash-bitmap", "builtin")
    real = synth_dump("credential-guard", "crash-bitmap", "19041")
    options = {}
    if plugin == "windows.memmap.Memmap":   # a trustlet's address space (LsaIso.exe)
        options["pid"] = next(p["pid"] for p in builtin.truth["processes"]
                              if p["secure"] and p["pages"] and p["linked"])
    ours = _comparable(volatility.run(builtin, plugin, **options).rows)
    theirs = _comparable(volatility.run(real, plugin, **options).rows)
    assert ours == theirs
    if plugin in ("windows.pslist.PsList", "windows.psscan.PsScan", "windows.vadinfo.VadInfo",
                  "windows.memmap.Memmap", "windows.secureprocs.SecureProcs"):
        assert ours, "the comparison must not pass on two empty results"
