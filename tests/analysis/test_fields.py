"""The field manifest: each value read from an EPROCESS declared once, and what is made of it."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from markers import quick_only

from iumdump.analysis.fields import (FIELDS, LAYOUT_FIELDS, VALUE_FIELDS, Field, KernelLayout,
                                     ProcessFields, Read)
from iumdump.isf import SymbolTable
from iumdump.structs.flagwords import flag_word


def test_the_layout_and_the_values_are_made_from_the_manifest():
    """A field is one line of FIELDS: the layout has a member path for each field but the core
    ones, the values one attribute for each field that is read."""
    assert [f.name for f in dataclasses.fields(KernelLayout)] == [f.attribute
                                                                 for f in LAYOUT_FIELDS]
    names = [f.name for f in dataclasses.fields(ProcessFields)]
    assert names == (["offset", "linked"] + [f.attribute for f in VALUE_FIELDS]
                     + ["layout", "unreadable", "problems"])
    assert len({f.attribute for f in FIELDS}) == len(FIELDS)


def test_each_candidate_is_a_path_its_way_of_reading_can_take():
    for field in FIELDS:
        assert field.candidates, field.attribute
        for candidate in field.candidates:
            parts = Field.source(candidate).split(".")
            assert all(parts), candidate
            if field.read is Read.BIT:
                assert len(parts) >= 2, f"{candidate}: a bit field is named Word.Bit"
            assert not candidate.endswith("[0]") or field.read is Read.INTEGER, candidate
    assert Field.source("Pcb.Affinity.Bitmap[0]") == "Pcb.Affinity.Bitmap"


def test_values_of_one_process_travel_between_processes():
    """Generated classes still pickle (a fleet worker hands results to its client)."""
    fields = ProcessFields(offset=0x1000, pid=712, name="LsaIso.exe",
                           layout=KernelLayout(secure_state="Pcb.SecureState"))
    assert pickle.loads(pickle.dumps(fields)) == fields
    assert type(fields).__module__ == "iumdump.analysis.fields"


@pytest.mark.parametrize("profile", quick_only(["builtin", "14393", "19041"], "builtin"))
def test_the_reader_decodes_bits_with_the_flag_words_of_the_symbol_table(profile, synth_dump,
                                                                         volatility):
    """The flag words the reader builds from Volatility's templates are those
    iumdump.structs.flagwords builds from the same symbol table file, the emulator's codec."""
    from iumdump.analysis.eprocess import ProcessReader

    dump = synth_dump("credential-guard", "crash-bitmap", profile)
    reader = ProcessReader(volatility.context(dump), volatility.kernel_module(dump))
    table = SymbolTable.load(dump.isf_path)
    bits = [f for f in VALUE_FIELDS if f.read is Read.BIT and getattr(reader.layout, f.attribute)]
    assert {f.attribute for f in bits} >= {"process_delete", "minimal", "deep_freeze"}
    for field in bits:
        slot = reader._slots[field.attribute]
        member = reader._access[field.attribute].member  # ProcessDelete, Pcb.DeepFreeze
        expected = flag_word(table, "_EPROCESS", member)
        assert slot.word.fields == expected.fields, member
        assert (slot.offset, slot.length, slot.bit) == (expected.offset, expected.size,
                                                        member.rsplit(".", 1)[-1])
