"""Text that came from outside — a dump, a file name — made visible and inert before it is shown.

A process can name itself anything up to 15 bytes, and a file name can hold any byte but ``/``:
control characters, a newline that splits a one-line error in two, a right-to-left override that
makes ``exe.lsass`` read as ``lsass.exe``, bytes that are not UTF-8 (Python keeps them as lone
surrogates). :func:`visible` turns every character that is not plainly printable into a visible
escape (``\\x07``, ``\\u202e``, ``\\udcff``), so what the analyst reads is what the input holds.
The report renderers (:mod:`iumdump.report.text`) and the CLI's one-line errors both use it.
"""

from __future__ import annotations

import re
import unicodedata

# Control, format (bidi overrides, zero-width), surrogate, private-use, unassigned and
# line/paragraph separator characters.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def hidden_escape(char: str) -> str | None:
    """The visible escape of a character that would not show as itself (``\\x07``,
    ``\\u202e``), or None for one that does."""
    if unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return None
    code = ord(char)
    return (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
            else f"\\U{code:08x}")


# What a backslash followed by it would read as: an escape visible() writes, or an escaped
# backslash. Only such a backslash is doubled, so that NT paths keep their single separators.
_LOOKS_ESCAPED = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|\\|$)")


def visible(text: object) -> str:
    """``text`` with a backslash escape for each character that would not show as itself. A
    backslash the text holds is doubled where it could be mistaken for such an escape (before
    ``x07``-like text, another backslash, or at the end), and stays single elsewhere (the
    separators of ``\\Device\\HarddiskVolume3\\Windows``)."""
    if text is None:
        return "—"
    text = str(text)
    out = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\" if _LOOKS_ESCAPED.match(text, index) else "\\")
        else:
            out.append(hidden_escape(char) or char)
    return "".join(out)


def one_line(text: object) -> str:
    """``text`` with its hidden characters escaped as :func:`visible` does, backslashes left as
    they are: for a message of our own wording that quotes outside text, so it stays one line."""
    return "".join(hidden_escape(char) or char for char in str(text))
