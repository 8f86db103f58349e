"""The one error hierarchy of iumdump.

Every error the library raises on purpose derives from :class:`Error`; each subclass also
inherits the built-in exception a caller would naturally catch, so ``except EOFError`` still
works on a truncated dump. The CLI turns any :class:`Error` into one line on stderr and exit 2.
"""

from __future__ import annotations

from .visible import one_line, visible


class Error(Exception):
    """Root of iumdump's errors. ``str(err)`` is a complete one-line message: the path and the
    message keep no control character, newline or undecodable byte (each shown escaped), so a
    hostile file name cannot split the line or drive the terminal."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 expected: object = None, actual: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.offset = offset
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        prefix = f"{visible(self.path)}: " if self.path else ""
        return prefix + one_line(self.message)


class InvalidInputError(Error, ValueError):
    """Input that is not what it claims to be: wrong length, bad hex, contradicting fields."""


class TruncatedDumpError(Error, EOFError):
    """A dump or buffer ends before a structure it must hold."""


class DumpFormatError(Error, ValueError):
    """A dump whose header or layout is not a format iumdump or Volatility reads."""


class SymbolError(Error, LookupError):
    """A symbol table is missing, cannot be found, or lacks a type or field that is required."""


class EptViolation(Error, PermissionError):
    """A guest access that the SLAT of the accessing VTL does not permit (an EPT violation)."""

    def __init__(self, message: str, *, gpa: int, access: str, vtl: int) -> None:
        super().__init__(message, offset=gpa, expected=access)
        self.gpa = gpa
        self.access = access
        self.vtl = vtl


class ScenarioError(Error, ValueError):
    """A scenario file that cannot be turned into a machine."""


class ReportExistsError(Error, FileExistsError):
    """A report would overwrite an existing one without --force."""
