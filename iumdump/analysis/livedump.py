"""Volatility 3 reads kernel bitmap dumps (DumpType 6) through this layer and its stacker.

DumpType 6 is Windows' DUMP_TYPE_BITMAP_KERNEL (wdm.h, as KBUGCHECK_SECONDARY_DUMP_DATA_EX.DumpType
documents it): the kernel memory dump and the automatic memory dump Windows writes at a bug check
— its default crash dump (kdmp-parser issue #26 and Volatility 3 issue #1112: NotMyFault dumps of
type 6) — and the live kernel memory dump of Task Manager's "Create live kernel memory dump file"
(Windows 11 22H2+). Its pages are stored exactly as in a bitmap dump (DumpType 5): a _SUMMARY_DUMP
(``SDMPDUMP``) at 0x2000, its bitmap, then the frames it marks. Sources:
kdmp-parser-rs ``src/structs.rs`` (``DumpType::LiveKernelMemory = 0x6``, "Produced by TaskMgr >
System > Create live kernel Memory Dump", parsed by the same ``bmp_physmem`` as DumpType 5),
LeechCore ``leechcore/device_file.c`` (``DUMP_TYPE_ACTIVE_MEMORY 6``, read by the same bitmap
parser as 5), rizin ``librz/bin/format/dmp/dmp_specs.h`` (``DMP_DUMPTYPE_BITMAPKERNEL 6``).

Volatility 3 (``framework/layers/crash.py``, 2.28) refuses DumpType 6 ("unsupported dump format
0x6"). (The classes keep their first names, "live dump", because Volatility's configuration
records a layer by its class path.)
:class:`WindowsLiveDump64Layer` is its :class:`WindowsCrashDump64Layer` with DumpType 6 accepted
and its segments loaded by the DumpType 5 code; :class:`WindowsLiveDumpStacker` offers it to
automagic. Defining the classes registers them: Volatility's stacker automagic finds every
subclass of ``StackerLayerInterface``, and its configuration rebuilds layers from their class
path. They are imported by ``iumdump analyze`` and, through ``vol_plugins/windows/livedump.py``,
by ``vol -p "$(iumdump plugins)"``, so Volatility's own plugins (windows.pslist …) read these
dumps too.
"""

from __future__ import annotations

import logging
from typing import Optional

from volatility3.framework import constants, interfaces
from volatility3.framework.layers import crash

from ..structs.crashdump import DumpType

vollog = logging.getLogger(__name__)


class WindowsLiveDump64Layer(crash.WindowsCrashDump64Layer):
    """A kernel bitmap dump (DumpType 6: a kernel or automatic memory dump, or a live kernel
    memory dump): a bitmap crash dump holding kernel memory only."""

    supported_dumptypes = [DumpType.BITMAP_KERNEL]

    def _load_segments(self) -> None:
        # The pages are stored as DumpType 5 stores them; let Volatility's own code map them.
        self.dump_type = DumpType.BITMAP
        try:
            super()._load_segments()
        finally:
            self.dump_type = DumpType.BITMAP_KERNEL


class WindowsLiveDumpStacker(crash.WindowsCrashDumpStacker):
    """Stacks :class:`WindowsLiveDump64Layer` where Volatility's crash dump stacker declined: a
    dump whose header says DumpType 6. Other crash dumps are left to Volatility's stacker."""

    stack_order = crash.WindowsCrashDumpStacker.stack_order + 1
    exclusion_list = ["mac", "linux"]

    @classmethod
    def stack(
        cls,
        context: interfaces.context.ContextInterface,
        layer_name: str,
        progress_callback: constants.ProgressCallback = None,
    ) -> Optional[interfaces.layers.DataLayerInterface]:
        layer = WindowsLiveDump64Layer
        try:
            layer.check_header(context.layers[layer_name])
            new_name = context.layers.free_layer_name(layer.__name__)
            context.config[interfaces.configuration.path_join(new_name, "base_layer")] = \
                layer_name
            return layer(context, new_name, new_name)
        except crash.WindowsCrashDumpFormatException as excp:
            vollog.log(constants.LOGLEVEL_VVVV, f"Not a kernel bitmap dump: {excp}")
        return None


__all__ = ["WindowsLiveDump64Layer", "WindowsLiveDumpStacker"]
