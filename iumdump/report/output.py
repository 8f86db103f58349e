"""Write a set of report files: each atomically (:mod:`iumdump.atomic`), and none over an
existing one unasked. Existing reports are refused unless ``force`` is set, and the refusal
happens for every target before the first byte is written, so a set of reports is never half
replaced; a Ctrl-C that arrives while a set is written takes effect once the set is complete.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Iterator, Mapping

from ..atomic import write_atomic
from ..errors import InvalidInputError, ReportExistsError


def check_targets(paths: list[Path], *, force: bool = False) -> None:
    """Raise :class:`ReportExistsError` for the first target that exists (unless ``force``) and
    :class:`InvalidInputError` for one that is not a file (a directory of that name, say)."""
    for path in paths:
        if path.is_dir():
            raise InvalidInputError("is a directory; cannot write a report there", path=str(path))
        if path.exists() and not force:
            raise ReportExistsError("exists; pass --force to overwrite it, or choose another -o",
                                    path=str(path))


def prepare_directory(directory: Path) -> None:
    """Create the output directory (and parents) or say in one line why it cannot be used."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InvalidInputError("exists and is not a directory", path=str(directory)) from None
    except OSError as exc:
        raise InvalidInputError(f"cannot create output directory: {exc.strerror or exc}",
                                path=str(directory)) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidInputError("output directory is not writable", path=str(directory))


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt as it would
    have: the files written in the block are a set, and each alone is only atomic. Only where
    Python's own handler is in place (the main thread; not where SIGINT is ignored or handled
    by someone else, and not again inside an outer block)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def write_reports(files: Mapping[Path, str | bytes], *, force: bool = False) -> list[Path]:
    """Write every file atomically after checking that none would be overwritten unasked.
    Returns the paths written, in the order given."""
    paths = list(files)
    check_targets(paths, force=force)
    written: list[Path] = []
    with interrupts_deferred():
        for path in paths:
            try:
                write_atomic(path, files[path], what="report")
            except OSError as exc:
                raise InvalidInputError(f"cannot write report: {exc.strerror or exc}",
                                        path=str(path)) from None
            written.append(path)
    return written


__all__ = ["check_targets", "interrupts_deferred", "prepare_directory", "write_atomic",
           "write_reports"]
