"""Write report files so that a reader never sees half a report and an existing one survives.

Each file is written to a temporary name in its own directory (so the rename stays on one file
system), flushed to disk, then renamed over the target with :func:`os.replace`, which is atomic
on POSIX and Windows. A crash or a full disk leaves either the previous file or none, never a
truncated one. Existing reports are refused unless ``force`` is set, and the refusal happens for
every target before the first byte is written, so a set of reports is never half replaced.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

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


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def write_reports(files: Mapping[Path, str | bytes], *, force: bool = False) -> list[Path]:
    """Write every file atomically after checking that none would be overwritten unasked.
    Returns the paths written, in the order given."""
    paths = list(files)
    check_targets(paths, force=force)
    written: list[Path] = []
    for path in paths:
        try:
            write_atomic(path, files[path])
        except OSError as exc:
            raise InvalidInputError(f"cannot write report: {exc.strerror or exc}",
                                    path=str(path)) from None
        written.append(path)
    return written


def _umask() -> int:
    # os.umask can only be read by setting it; restore at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
