"""iumdump.isf's facts that restate Volatility's, kept in step with it."""

from volatility3.framework.constants import windows

from iumdump.isf import KERNEL_PDB_NAMES


def test_kernel_pdb_names_are_the_ones_volatility_scans_for():
    """isf keeps its own copy (it loads without Volatility); the engine re-reads the kernel's
    RSDS record with it and the emulator refuses other tables, so a kernel Volatility's PDB
    scanner finds must not be one iumdump's list lacks."""
    assert KERNEL_PDB_NAMES == tuple(f"{name}.pdb" for name in windows.KERNEL_MODULE_NAMES)
