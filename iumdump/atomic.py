"""Write a file so that a reader never sees half of it and a previous one survives a failure: the
one writer of iumdump's outputs (reports, and the emulator's dumps, symbol tables and truth).

The file is written under a temporary name in its own directory (so the rename stays on one file
system), flushed to disk, then renamed over the target with :func:`os.replace`, which is atomic
on POSIX and Windows; the directory is then flushed so that the rename itself is durable. A crash
or a full disk leaves the previous file or none, never a truncated one, and no temporary. The
file gets the mode a plain ``open()`` would give it (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import InvalidInputError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, what: str = "file") -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` when the block
    ends without an exception and is removed when it raises. ``what`` names the file in the
    one-line error when the temporary cannot be created (``cannot create a dump in DIR: …``)."""
    target = Path(os.path.abspath(path))
    directory = target.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise InvalidInputError(f"cannot create a {what} in {directory}: {exc.strerror or exc}",
                                path=os.fspath(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.chmod(temporary, 0o666 & ~current_umask())
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def write_atomic(path: str | os.PathLike, data: str | bytes, *, what: str = "file") -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_output(path, what=what) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def current_umask() -> int:
    # os.umask can only be read by setting it; restore at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX; a no-op where a directory cannot be opened)."""
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
