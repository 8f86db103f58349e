"""What iumdump's Volatility plugins share beyond the analysis itself: the dump file checked as
``iumdump analyze`` checks it (as Volatility exceptions, so ``vol`` reports them and stops), and
unknown values as Volatility's absent renderer values."""

from __future__ import annotations

from volatility3.framework import exceptions, interfaces, renderers

from ..errors import Error, TruncatedDumpError
from .fields import Unknown
from .layers import dump_file_path
from .preflight import inspect_dump


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


def check_dump(context: interfaces.context.ContextInterface, kernel_module_name: str) -> None:
    """Check the dump file under the kernel's layers the way ``iumdump analyze`` does before
    trusting it (:func:`.preflight.inspect_dump`: a crash dump's header and page bitmap against
    the file's size, …): Volatility stacks a bitmap dump that lacks most of its
    pages without complaint, and a plugin would then answer with no rows. Raises
    :class:`DumpFileTruncated` or :class:`DumpFileRejected` (Volatility exceptions, so ``vol``
    reports them and stops); a dump that is not a local file is not checked."""
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


def absent_value(reason: Unknown | None) -> interfaces.renderers.BaseAbsentValue:
    """The Volatility renderer value for an unknown: unreadable memory → UnreadableValue; a field
    the build lacks or no EPROCESS field carries → NotAvailableValue."""
    if reason is Unknown.UNREADABLE:
        return renderers.UnreadableValue()
    return renderers.NotAvailableValue()
