"""Kernel bitmap dumps (DumpType 6: the kernel and automatic memory dumps Windows writes at a bug
check, and live kernel memory dumps) for Volatility 3, which refuses them: loading this directory
with ``vol -p`` imports this module, which registers iumdump's crash dump layer and stacker for
them (``iumdump.analysis.livedump``). Every Windows plugin, Volatility's own included, then reads
such a dump: ``vol -p "$(iumdump plugins)" -f MEMORY.DMP windows.pslist``. It defines no
plugin."""

from iumdump.analysis.livedump import WindowsLiveDump64Layer, WindowsLiveDumpStacker

__all__ = ["WindowsLiveDump64Layer", "WindowsLiveDumpStacker"]
