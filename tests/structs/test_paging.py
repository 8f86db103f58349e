"""x64 paging and EPT entries against the Intel SDM's tables, arithmetic and ctypes.

The expected layouts below are transcribed from the SDM independently of iumdump/structs/paging.py:
Vol. 3A Tables 4-15..4-20 (4-level paging) and Vol. 3C Tables 29-1..29-6 (EPT).
"""

from __future__ import annotations

import ctypes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iumdump.structs import paging
from iumdump.structs.bitfields import field_names, word_value

_GUEST = {"Present": (0, 1), "ReadWrite": (1, 1), "UserSupervisor": (2, 1),
          "PageWriteThrough": (3, 1), "PageCacheDisable": (4, 1), "Accessed": (5, 1),
          "ExecuteDisable": (63, 1)}
_GUEST_TABLE = {**_GUEST, "PageSize": (7, 1), "PageFrameNumber": (12, 40)}
_GUEST_LEAF = {**_GUEST, "Dirty": (6, 1), "Global": (8, 1), "ProtectionKey": (59, 4)}
_EPT = {"Read": (0, 1), "Write": (1, 1), "Execute": (2, 1)}
_EPT_TABLE = {**_EPT, "Accessed": (8, 1), "UserModeExecute": (10, 1)}
_EPT_LEAF = {**_EPT, "MemoryType": (3, 3), "IgnorePat": (6, 1), "Accessed": (8, 1),
             "Dirty": (9, 1), "UserModeExecute": (10, 1), "VerifyGuestPaging": (57, 1),
             "PagingWriteAccess": (58, 1), "SupervisorShadowStack": (60, 1),
             "SubPageWritePermissions": (61, 1), "SuppressVe": (63, 1)}

SDM = {
    "PML4E": _GUEST_TABLE,
    "PDPTE": _GUEST_TABLE,
    "PDE": _GUEST_TABLE,
    "PDPTE_1GB": {**_GUEST_LEAF, "PageSize": (7, 1), "Pat": (12, 1), "PageFrameNumber": (30, 22)},
    "PDE_2MB": {**_GUEST_LEAF, "PageSize": (7, 1), "Pat": (12, 1), "PageFrameNumber": (21, 31)},
    "PTE": {**_GUEST_LEAF, "Pat": (7, 1), "PageFrameNumber": (12, 40)},
    "EPT_PML4E": {**_EPT_TABLE, "PageFrameNumber": (12, 40)},
    "EPT_PDPTE": {**_EPT_TABLE, "LargePage": (7, 1), "PageFrameNumber": (12, 40)},
    "EPT_PDE": {**_EPT_TABLE, "LargePage": (7, 1), "PageFrameNumber": (12, 40)},
    "EPT_PDPTE_1GB": {**_EPT_LEAF, "LargePage": (7, 1), "PageFrameNumber": (30, 22)},
    "EPT_PDE_2MB": {**_EPT_LEAF, "LargePage": (7, 1), "PageFrameNumber": (21, 31)},
    "EPT_PTE": {**_EPT_LEAF, "PageFrameNumber": (12, 40)},
}
ENTRIES = sorted(SDM)


def ctypes_entry(layout):
    """The entry as a C structure of ULONG64 bit fields, gaps included."""
    fields, cursor = [], 0
    for name, (bit, length) in sorted(layout.items(), key=lambda item: item[1]):
        if bit > cursor:
            fields.append((f"gap{cursor}", ctypes.c_uint64, bit - cursor))
        fields.append((name, ctypes.c_uint64, length))
        cursor = bit + length
    if cursor < 64:
        fields.append((f"gap{cursor}", ctypes.c_uint64, 64 - cursor))

    class Entry(ctypes.Structure):
        _fields_ = fields
    assert ctypes.sizeof(Entry) == 8
    return Entry


CTYPES = {name: ctypes_entry(layout) for name, layout in SDM.items()}


@pytest.mark.parametrize("name", ENTRIES)
def test_size_and_field_names(name):
    entry = getattr(paging, name)
    assert entry.sizeof() == 8
    assert {f for f in field_names(entry) if not f.startswith("_bits")} == set(SDM[name])


@pytest.mark.parametrize("name", ENTRIES)
def test_each_field_sits_where_the_sdm_puts_it(name):
    entry = getattr(paging, name)
    for field, (bit, length) in SDM[name].items():
        ones = (1 << length) - 1
        assert word_value(entry, **{field: ones}) == ones << bit, field


@pytest.mark.parametrize("name", ENTRIES)
@given(value=st.integers(0, 2 ** 64 - 1))
def test_round_trip_and_ctypes_oracle(name, value):
    entry = getattr(paging, name)
    raw = value.to_bytes(8, "little")
    parsed = entry.parse(raw)
    assert entry.build(parsed) == raw
    assert entry.parse(entry.build(parsed)) == parsed
    oracle = CTYPES[name].from_buffer_copy(raw)
    for field, (bit, length) in SDM[name].items():
        assert int(parsed[field]) == (value >> bit) & ((1 << length) - 1) == getattr(oracle, field)


def test_constants_agree_with_the_definitions():
    assert paging.PRESENT == word_value(paging.PTE, Present=True)
    assert paging.READ_WRITE == word_value(paging.PTE, ReadWrite=True)
    assert paging.USER == word_value(paging.PTE, UserSupervisor=True)
    assert paging.PAGE_SIZE_BIT == word_value(paging.PDE_2MB, PageSize=True)
    assert paging.EXECUTE_DISABLE == word_value(paging.PTE, ExecuteDisable=True)
    assert paging.ADDRESS_MASK == word_value(paging.PTE, PageFrameNumber=(1 << 40) - 1)
    assert paging.EPT_READ | paging.EPT_WRITE | paging.EPT_EXECUTE == \
        word_value(paging.EPT_PTE, Read=True, Write=True, Execute=True)
    assert paging.EPT_LARGE_PAGE == word_value(paging.EPT_PDE_2MB, LargePage=True)
    for name, shift in paging.LARGE_PAGE_SHIFT.items():
        assert SDM[name]["PageFrameNumber"][0] == shift
    assert paging.EPT_MEMORY_TYPE == {"UC": 0, "WC": 1, "WT": 4, "WP": 5, "WB": 6}


def test_large_page_frames():
    """A 2 MiB leaf's frame field holds address bits 21 and up; a 1 GiB leaf's bits 30 and up."""
    address = 0x1_2340_0000
    assert word_value(paging.PDE_2MB, Present=True, PageSize=True,
                      PageFrameNumber=address >> 21) == address | paging.PRESENT | paging.PAGE_SIZE_BIT
    address = 0x40_0000_0000
    assert word_value(paging.EPT_PDPTE_1GB, Read=True, LargePage=True, MemoryType=6,
                      PageFrameNumber=address >> 30) == address | 1 | 6 << 3 | 1 << 7


@given(address=st.integers(0, 2 ** 48 - 1))
def test_table_indices_and_pfn(address):
    pml4, pdpt, pd, pt = paging.table_indices(address)
    assert (pml4 << 39 | pdpt << 30 | pd << 21 | pt << 12) == address & ~0xFFF
    entry = word_value(paging.PTE, Present=True, ExecuteDisable=True,
                       PageFrameNumber=address >> 12)
    assert paging.pfn_of(entry) == address >> 12
