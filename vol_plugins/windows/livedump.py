"""Live kernel memory dumps (DumpType 6) for Volatility 3: loading this directory with ``vol -p``
imports this module, which registers iumdump's crash dump layer and stacker for them
(``iumdump.analysis.livedump``). Every Windows plugin, Volatility's own included, then reads such
a dump: ``vol -p "$(iumdump plugins)" -f live.dmp windows.pslist``. It defines no plugin."""

from iumdump.analysis.livedump import WindowsLiveDump64Layer, WindowsLiveDumpStacker

__all__ = ["WindowsLiveDump64Layer", "WindowsLiveDumpStacker"]
