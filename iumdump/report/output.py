"""Write a set of report files: each atomically (:mod:`iumdump.atomic`), and none over an
existing one unasked. Existing reports are refused unless ``force`` is set, and the refusal
happens for every target before the first byte is written, so a set of reports is never half
replaced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

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


def write_reports(files: Mapping[Path, str | bytes], *, force: bool = False) -> list[Path]:
    """Write every file atomically after checking that none would be overwritten unasked.
    Returns the paths written, in the order given."""
    paths = list(files)
    check_targets(paths, force=force)
    written: list[Path] = []
    for path in paths:
        try:
            write_atomic(path, files[path], what="report")
        except OSError as exc:
            raise InvalidInputError(f"cannot write report: {exc.strerror or exc}",
                                    path=str(path)) from None
        written.append(path)
    return written


__all__ = ["check_targets", "prepare_directory", "write_atomic", "write_reports"]
