"""Flag words built from a symbol table's bit-field entries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iumdump.errors import InvalidInputError, SymbolError
from iumdump.isf import SymbolTable
from iumdump.structs.bitfields import BitField
from iumdump.structs.flagwords import flag_word

# The words the plugins decode; SecureState only exists from 1709 on.
WORDS = [("_EPROCESS", "Flags"), ("_EPROCESS", "Flags2"), ("_EPROCESS", "Flags3"),
         ("_EPROCESS", "Protection"), ("_KPROCESS", "DeepFreeze"), ("_EPROCESS", "Pcb.DeepFreeze")]


def _bitfield(offset, position, length, base="unsigned long"):
    return {"offset": offset, "type": {"kind": "bitfield", "bit_position": position,
                                       "bit_length": length,
                                       "type": {"kind": "base", "name": base}}}


def _base(offset, name):
    return {"offset": offset, "type": {"kind": "base", "name": name}}


@pytest.fixture(scope="module")
def small_isf() -> SymbolTable:
    """A hand-made table: a ULONG word with a gap and a 3-bit field, a QWORD union like
    SecureState, and a named inner structure holding a word (like _EPROCESS.Pcb)."""
    return SymbolTable({
        "metadata": {"format": "6.2.0"}, "symbols": {}, "enums": {},
        "base_types": {"unsigned long": {"size": 4, "signed": False, "kind": "int",
                                         "endian": "little"},
                       "unsigned long long": {"size": 8, "signed": False, "kind": "int",
                                              "endian": "little"}},
        "user_types": {
            "_OUTER": {"kind": "struct", "size": 0x40, "fields": {
                "Before": _base(0, "unsigned long long"),
                "Flags": _base(8, "unsigned long"),
                "Alpha": _bitfield(8, 0, 1),
                "Level": _bitfield(8, 1, 3),
                "Omega": _bitfield(8, 31, 1),
                "Secure": {"offset": 0x10, "type": {"kind": "union", "name": "__anon_secure"}},
                "Inner": {"offset": 0x20, "type": {"kind": "struct", "name": "_INNER"}},
            }},
            "__anon_secure": {"kind": "union", "size": 8, "fields": {
                "Handle": _base(0, "unsigned long long"),
                "Bits": {"offset": 0, "type": {"kind": "struct", "name": "__anon_bits"}},
            }},
            "__anon_bits": {"kind": "struct", "size": 8, "fields": {
                "SecureProcess": _bitfield(0, 0, 1, "unsigned long long"),
                "TrustedApp": _bitfield(0, 1, 1, "unsigned long long"),
            }},
            "_INNER": {"kind": "struct", "size": 0x20, "fields": {
                "Pad": _base(0, "unsigned long long"),
                "Pad2": _base(8, "unsigned long long"),
                "Freeze": _bitfield(0x10, 3, 1),
                "Group": _bitfield(0x10, 8, 20),
            }},
        },
    }, source="small")


def test_word_from_hand_made_table(small_isf):
    word = flag_word(small_isf, "_OUTER", "Flags")
    assert (word.offset, word.size) == (8, 4)
    assert word.fields == (BitField("Alpha", 0, 1), BitField("Level", 1, 3), BitField("Omega", 31))
    assert word.construct.sizeof() == 4
    value = 1 | 5 << 1 | 1 << 31
    assert word.decode(value) == {"Alpha": True, "Level": 5, "Omega": True}
    assert word.value(Alpha=True, Level=5, Omega=True) == value
    assert word.named_mask == 0x8000000F


def test_a_bit_field_path_names_its_word(small_isf):
    assert flag_word(small_isf, "_OUTER", "Level") == flag_word(small_isf, "_OUTER", "Flags")


def test_union_word_like_secure_state(small_isf):
    word = flag_word(small_isf, "_OUTER", "Secure")
    assert (word.offset, word.size) == (0x10, 8)
    assert word.bit("SecureProcess") == BitField("SecureProcess", 0)
    assert word.decode(0xFFFF_FFFF_FFFF_FFF9) == {"SecureProcess": True, "TrustedApp": False}
    assert flag_word(small_isf, "_OUTER", "Secure.Bits.SecureProcess").fields == word.fields


def test_word_inside_a_named_structure(small_isf):
    word = flag_word(small_isf, "_OUTER", "Inner.Freeze")
    assert (word.offset, word.size) == (0x30, 4)
    assert word.names == ("Freeze", "Group")
    assert word.decode(1 << 3 | 0xABCDE << 8) == {"Freeze": True, "Group": 0xABCDE}


def test_unnamed_bits_are_kept_and_reported(small_isf):
    word = flag_word(small_isf, "_OUTER", "Flags")
    value = 1 << 4 | 1 << 30 | 1
    assert word.unnamed_bits(value) == 1 << 4 | 1 << 30
    raw = value.to_bytes(4, "little")
    assert word.construct.build(word.construct.parse(raw)) == raw


def test_errors(small_isf):
    with pytest.raises(SymbolError, match="not a word of bit fields"):
        flag_word(small_isf, "_OUTER", "Before")
    with pytest.raises(SymbolError, match="no field"):
        flag_word(small_isf, "_OUTER", "Missing")
    word = flag_word(small_isf, "_OUTER", "Flags")
    with pytest.raises(SymbolError, match="Nope"):
        word.bit("Nope")
    with pytest.raises(SymbolError, match="Nope"):
        word.build(Nope=True)
    with pytest.raises(InvalidInputError):
        word.build(Level=8)
    with pytest.raises(InvalidInputError):
        word.decode(1 << 32)
    with pytest.raises(InvalidInputError):
        word.parse(b"\0\0")


def test_overlapping_bit_fields_are_a_symbol_error():
    table = SymbolTable({
        "metadata": {}, "symbols": {}, "enums": {},
        "base_types": {"unsigned long": {"size": 4, "signed": False, "kind": "int",
                                         "endian": "little"}},
        "user_types": {"_T": {"kind": "struct", "size": 4, "fields": {
            "A": _bitfield(0, 0, 4), "B": _bitfield(0, 2, 4)}}}}, source="overlap")
    with pytest.raises(SymbolError, match="overlaps"):
        flag_word(table, "_T", "A")


def test_update_sets_named_fields_and_keeps_every_other_bit(small_isf):
    word = flag_word(small_isf, "_OUTER", "Flags")
    value = 1 << 31 | 1 << 4 | 1  # Omega, an unnamed bit, Alpha
    assert word.update(value, Level=6) == value | 6 << 1
    assert word.update(value, Alpha=False) == value & ~1
    assert word.decode(word.update(value, Level=6)) == {"Alpha": True, "Level": 6, "Omega": True}
    secure = flag_word(small_isf, "_OUTER", "Secure.Bits.SecureProcess")
    handle = 0x1234_5670  # a handle sharing the word with its flags (bits 2 and up)
    assert secure.update(handle, SecureProcess=True) == handle | 1


def test_update_refuses_what_does_not_fit(small_isf):
    word = flag_word(small_isf, "_OUTER", "Flags")
    with pytest.raises(InvalidInputError, match="3-bit field Level"):
        word.update(0, Level=8)
    with pytest.raises(InvalidInputError):
        word.update(0, Level=-1)
    with pytest.raises(SymbolError, match="Nope"):
        word.update(0, Nope=1)
    with pytest.raises(InvalidInputError):
        word.update(1 << 32, Alpha=True)


def test_a_bit_field_path_picks_its_view_of_a_union_word():
    """A word seen through several flag structures of one union (_MMVAD_SHORT.u: VadFlags,
    PrivateVadFlags …) whose bit fields overlap: the path names the structure to use."""
    table = SymbolTable({
        "metadata": {}, "symbols": {}, "enums": {},
        "base_types": {"unsigned long": {"size": 4, "signed": False, "kind": "int",
                                         "endian": "little"}},
        "user_types": {
            "_VAD": {"kind": "struct", "size": 8, "fields": {
                "u": {"offset": 4, "type": {"kind": "union", "name": "__anon_u"}}}},
            "__anon_u": {"kind": "union", "size": 4, "fields": {
                "LongFlags": _base(0, "unsigned long"),
                "VadFlags": {"offset": 0, "type": {"kind": "struct", "name": "_VAD_FLAGS"}},
                "PrivateFlags": {"offset": 0, "type": {"kind": "struct", "name": "_PRIV"}}}},
            "_VAD_FLAGS": {"kind": "struct", "size": 4, "fields": {
                "VadType": _bitfield(0, 0, 3), "Protection": _bitfield(0, 3, 5),
                "PrivateMemory": _bitfield(0, 15, 1)}},
            "_PRIV": {"kind": "struct", "size": 4, "fields": {
                "Spare": _bitfield(0, 0, 15), "AlwaysClear": _bitfield(0, 15, 2)}},
        }}, source="views")
    word = flag_word(table, "_VAD", "u.VadFlags.Protection")
    assert (word.offset, word.size) == (4, 4)
    assert word.names == ("VadType", "Protection", "PrivateMemory")
    assert word.value(Protection=4, PrivateMemory=True) == 4 << 3 | 1 << 15
    assert flag_word(table, "_VAD", "u.PrivateFlags.AlwaysClear").names == ("Spare", "AlwaysClear")
    with pytest.raises(SymbolError, match="overlaps"):
        flag_word(table, "_VAD", "u")  # the word itself has no single view


# -- the real kernels (../shared/isf) ---------------------------------------------------------

@pytest.mark.parametrize("type_name, word_path, bit_name, bits", [
    ("_EPROCESS", "Flags", "ProcessDelete", {14393: 3, 19041: 3}),
    ("_EPROCESS", "Flags", "Background", {14393: 20, 19041: 20}),
    ("_EPROCESS", "Flags2", "CrossSessionCreate", {14393: 7, 19041: 7}),
    ("_EPROCESS", "Flags3", "SubsystemProcess", {14393: 8, 19041: 6}),
    ("_EPROCESS", "Flags3", "Minimal", {14393: 0, 19041: 0}),
    ("_EPROCESS", "Pcb.DeepFreeze", "DeepFreeze", {14393: 3, 19041: 3}),
    ("_KPROCESS", "DeepFreeze", "DeepFreeze", {14393: 3, 19041: 3}),
])
def test_bits_on_real_kernels(real_isf, type_name, word_path, bit_name, bits):
    build = 14393 if real_isf.guid.startswith("517E") else 19041
    word = flag_word(real_isf, type_name, word_path)
    assert word.bit(bit_name) == BitField(bit_name, bits[build])
    assert word.size == 4
    assert word.decode(1 << bits[build])[bit_name] is True


@pytest.mark.parametrize("type_name, path, names", [
    ("_MMVAD_SHORT", "u.VadFlags.Protection", {"VadType", "Protection", "PrivateMemory"}),
    ("_HANDLE_TABLE_ENTRY", "GrantedAccessBits", {"GrantedAccessBits", "NoRightsUpgrade"}),
])
def test_union_words_of_real_kernels_take_the_view_their_path_names(real_isf, type_name, path,
                                                                     names):
    """Regression: the VAD flags (19041) and a handle's access word (14393, 19041) share their
    word with other flag structures, so the emulator could not write them with flag words."""
    word = flag_word(real_isf, type_name, path)
    assert names <= set(word.names)
    name = path.rsplit(".", 1)[-1]
    assert word.decode(word.value(**{name: 1}))[name] in (True, 1)


def test_secure_state_on_19041(isf_19041):
    word = flag_word(isf_19041, "_KPROCESS", "SecureState.Flags.SecureProcess")
    assert (word.offset, word.size) == (0x3E0, 8)
    assert word.bit("SecureProcess") == BitField("SecureProcess", 0)
    assert word.bit("Unused") == BitField("Unused", 1)
    handle = 0xFFFF_C08A_1234_5001  # a trustlet's handle: bit 0 set
    assert word.decode(handle) == {"SecureProcess": True, "Unused": False}
    assert word.unnamed_bits(handle) == handle & ~3
    assert flag_word(isf_19041, "_KPROCESS", "SecureState") == word


def test_14393_has_no_secure_state(isf_14393):
    with pytest.raises(SymbolError):
        flag_word(isf_14393, "_KPROCESS", "SecureState")


@pytest.mark.parametrize("build, protection, flags3", [(14393, 0x6CA, 0x6CC), (19041, 0x87A, 0x87C)])
def test_word_offsets_match_design_table(build, protection, flags3, isf_14393, isf_19041):
    table = isf_14393 if build == 14393 else isf_19041
    assert flag_word(table, "_EPROCESS", "Protection").offset == protection
    assert flag_word(table, "_EPROCESS", "Protection").size == 1
    assert flag_word(table, "_EPROCESS", "Flags3").offset == flags3


@pytest.mark.parametrize("type_name, path", WORDS)
@given(data=st.data())
def test_real_words_round_trip(real_isf, type_name, path, data):
    word = flag_word(real_isf, type_name, path)
    value = data.draw(st.integers(0, 2 ** (8 * word.size) - 1))
    raw = value.to_bytes(word.size, "little")
    parsed = word.construct.parse(raw)
    assert word.construct.build(parsed) == raw
    assert word.construct.parse(word.construct.build(parsed)) == parsed
    # The named fields and the unnamed bits together are the whole word.
    assert word.value(**word.decode(value)) | word.unnamed_bits(value) == value
