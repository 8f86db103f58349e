"""The LSB-first bit-field helper against ctypes (the C compiler's bit-field rules) and arithmetic."""

from __future__ import annotations

import ctypes

import pytest
from construct import ConstructError, Int32ul
from hypothesis import given
from hypothesis import strategies as st

from iumdump.structs.bitfields import (BitField, build_word, construct_message, field_names,
                                       lsb_first_bitfield_word, word_value)

CTYPE = {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32, 8: ctypes.c_uint64}


@st.composite
def layouts(draw):
    """A word size and a partition of its bits into segments, each named or left as a gap."""
    size = draw(st.sampled_from([1, 2, 4, 8]))
    width = size * 8
    cuts = sorted(draw(st.sets(st.integers(1, width - 1), max_size=min(width - 1, 12))))
    bounds = [0, *cuts, width]
    segments = list(zip(bounds, bounds[1:]))
    named = draw(st.lists(st.booleans(), min_size=len(segments), max_size=len(segments)))
    if not any(named):
        named[0] = True
    fields = [BitField(f"F{start}", start, end - start)
              for (start, end), keep in zip(segments, named) if keep]
    return size, segments, fields


def ctypes_word(size, segments):
    """A ctypes structure with one bit field per segment (gaps too: C needs them placed)."""
    class Word(ctypes.Structure):
        _fields_ = [(f"F{start}", CTYPE[size], end - start) for start, end in segments]
    return Word


@given(layout=layouts(), data=st.data())
def test_random_layouts_agree_with_ctypes_and_arithmetic(layout, data):
    size, segments, fields = layout
    word = lsb_first_bitfield_word(fields, size)
    value = data.draw(st.integers(0, 2 ** (8 * size) - 1))
    raw = value.to_bytes(size, "little")
    parsed = word.parse(raw)
    oracle = ctypes_word(size, segments).from_buffer_copy(raw)
    for field in fields:
        expected = (value >> field.bit) & ((1 << field.length) - 1)
        assert int(parsed[field.name]) == expected == getattr(oracle, field.name)
        if field.length == 1:
            assert isinstance(parsed[field.name], bool)
    assert word.sizeof() == size
    assert word.build(parsed) == raw
    assert word.parse(word.build(parsed)) == parsed


@given(layout=layouts(), data=st.data())
def test_build_word_sets_only_the_named_values(layout, data):
    size, _, fields = layout
    word = lsb_first_bitfield_word(fields, size)
    values = {f.name: data.draw(st.integers(0, (1 << f.length) - 1)) for f in fields}
    expected = sum(value << f.bit for f, value in zip(fields, values.values()))
    assert word_value(word, **values) == expected
    assert build_word(word, **values) == expected.to_bytes(size, "little")


def test_gaps_are_named_fields_that_keep_their_bits():
    word = lsb_first_bitfield_word([BitField("Low", 0), BitField("High", 12, 4)], 2)
    assert field_names(word) == ["High", "_bits1_11", "Low"]
    raw = (0xFFFF).to_bytes(2, "little")
    assert word.parse(raw)["_bits1_11"] == 0x7FF
    assert word.build(word.parse(raw)) == raw


def test_a_field_crossing_a_byte_boundary():
    """The case BitsSwapped gets wrong: bits 6..9 of a little-endian word."""
    word = lsb_first_bitfield_word([BitField("Cross", 6, 4)], 2)
    assert word.parse((0b1011 << 6).to_bytes(2, "little"))["Cross"] == 0b1011


@pytest.mark.parametrize("fields, message", [
    ([BitField("A", 0, 4), BitField("B", 3)], "overlaps"),
    ([BitField("A", 30, 4)], "runs past bit 31"),
])
def test_bad_layouts(fields, message):
    with pytest.raises(ValueError, match=message):
        lsb_first_bitfield_word(fields, 4)


def test_build_word_rejects_unknown_names():
    word = lsb_first_bitfield_word([BitField("A", 0)], 1)
    with pytest.raises(ValueError, match="Nope"):
        build_word(word, Nope=1)


def test_construct_message_is_one_line():
    with pytest.raises(ConstructError) as raised:
        lsb_first_bitfield_word([BitField("A", 0, 3)], 1).build({"A": 9, "_bits3_7": 0})
    message = construct_message(raised.value)
    assert "\n" not in message and "A" in message and "out of range" in message
    with pytest.raises(ConstructError) as raised:
        Int32ul.parse(b"\x00")
    assert "\n" not in construct_message(raised.value)
