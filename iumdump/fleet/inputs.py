"""Which files a fleet run analyses, and where each one's reports go.

The analyst names dumps three ways, freely mixed: a file (taken whatever its name), a directory
(searched recursively for files with a memory-dump extension — evidence folders also hold
symbols, notes and hashes, which are not dumps), or a glob pattern (quoted, so the shell leaves it
alone; ``**`` spans directories). A name that is none of these is a typo, refused before any
work starts. The same file named twice (or through a link) is analysed once.

Each dump's reports go to ``reports/<id>`` under the output directory. The id is readable — the
dump's parent folder and file name, because estate collections are often ``HOST/memory.dmp`` —
and made unique and stable by eight hex digits of the sha256 of the dump's absolute path: the
same dump gets the same folder in every run, which is what ``--resume`` relies on.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import InvalidInputError

# Extensions of memory images and crash dumps as acquisition tools write them (WinPmem, DumpIt,
# Magnet RAM Capture, FTK Imager, LiME, VMware, Hyper-V, VirtualBox, QEMU, Windows itself).
DUMP_EXTENSIONS = frozenset({
    ".dmp", ".raw", ".mem", ".vmem", ".img", ".bin", ".lime", ".aff4", ".core", ".elf",
    ".vmss", ".vmsn", ".vmrs", ".dump", ".crash", ".memory",
})
REPORTS_DIR = "reports"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ID_STEM_MAX = 64


@dataclass(frozen=True)
class FleetDump:
    """One dump of the fleet: its absolute path (as every worker must see it), how the analyst
    named it, and the folder of its reports relative to the output directory."""

    path: str
    given: str
    report_id: str

    @property
    def report_dir(self) -> str:
        return f"{REPORTS_DIR}/{self.report_id}"


def report_id(path: str) -> str:
    """``<parent>_<name>-<8 hex>``: readable, safe in any file system, stable per path."""
    absolute = os.path.abspath(path)
    parent = os.path.basename(os.path.dirname(absolute))
    stem = _ID_UNSAFE.sub("_", f"{parent}_{os.path.basename(absolute)}" if parent
                          else os.path.basename(absolute)).strip("._") or "dump"
    digest = hashlib.sha256(os.fsencode(absolute)).hexdigest()[:8]
    return f"{stem[:_ID_STEM_MAX]}-{digest}"


def _walk(directory: str, skip: Sequence[str]) -> Iterable[str]:
    """Files under ``directory`` with a dump extension, hidden entries and ``skip`` (the output
    directory, should it lie inside) left out; symbolic links to directories are not followed
    (no loops), links to files are. A folder that cannot be listed is refused, not skipped: a
    dump in it would be left out of the audit without a word."""
    def refuse(error: OSError) -> None:
        raise InvalidInputError(f"cannot read this folder ({error.strerror or error}); make it "
                                "readable, or name the dumps to analyse",
                                path=error.filename or directory)

    for root, dirs, files in os.walk(directory, onerror=refuse, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(root, d)) not in skip)
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in DUMP_EXTENSIONS:
                continue
            yield os.path.join(root, name)


def expand(arguments: Sequence[str], *, exclude: Sequence[str | os.PathLike] = ()
           ) -> list[FleetDump]:
    """The dumps ``arguments`` name, in the order given (each directory and pattern sorted),
    once each. Raises a one-line :class:`InvalidInputError` for a name that matches nothing."""
    skip = [os.path.abspath(os.fspath(path)) for path in exclude]
    found: list[tuple[str, str]] = []
    for argument in arguments:
        if os.path.isdir(argument):
            matches = list(_walk(argument, skip))
            if not matches:
                raise InvalidInputError("directory holds no file with a memory-dump extension "
                                        f"({', '.join(sorted(DUMP_EXTENSIONS))}); name the "
                                        "files themselves to analyse them", path=argument)
            found += [(match, match) for match in matches]
        elif os.path.lexists(argument):
            found.append((argument, argument))  # a file, or something inspect_dump will refuse
        elif glob.has_magic(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                raise InvalidInputError("no file matches this pattern", path=argument)
            for match in matches:
                if os.path.isdir(match):
                    found += [(inner, inner) for inner in _walk(match, skip)]
                else:
                    found.append((match, match))
        else:
            raise InvalidInputError("no such file or directory", path=argument)

    dumps: list[FleetDump] = []
    seen: set[tuple[int, int] | str] = set()
    ids: set[str] = set()
    for path, given in found:
        absolute = os.path.abspath(path)
        if any(absolute == s or absolute.startswith(s + os.sep) for s in skip):
            continue
        try:
            info = os.stat(absolute)
            identity: tuple[int, int] | str = ((info.st_dev, info.st_ino)
                                               if stat.S_ISREG(info.st_mode) else absolute)
        except OSError:
            identity = absolute  # analysed anyway: the task records why it cannot be read
        if identity in seen:
            continue
        seen.add(identity)
        name = report_id(absolute)
        while name in ids:  # two paths whose digests share 32 bits: vanishingly rare
            name = f"{name}x"
        ids.add(name)
        dumps.append(FleetDump(path=absolute, given=given, report_id=name))
    return dumps
