"""Text from the dump is attacker-controlled: make it visible and inert before it is rendered.

A process can name itself anything up to 15 bytes: control characters, a right-to-left override
that makes ``exe.lsass`` read as ``lsass.exe``, Markdown or HTML. :func:`visible` turns every
character that is not plainly printable into a visible escape (``\\x07``, ``\\u202e``), so what the
analyst reads is what the dump holds; the renderers then escape their own syntax.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Control, format (bidi overrides, zero-width), surrogate, private-use and line/paragraph
# separator characters.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|~&")


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
    backslash the dump holds is doubled where it could be mistaken for such an escape (before
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


def markdown(text: object) -> str:
    """Visible text with Markdown's inline syntax (and table pipes, and HTML) escaped."""
    out = []
    for char in visible(text):
        if char == "&":
            out.append("&amp;")
        elif char in _MARKDOWN_SPECIAL:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def html_text(text: object) -> str:
    """Visible text escaped for an HTML text node."""
    return html.escape(visible(text), quote=False)


def html_attribute(text: object) -> str:
    """Visible text escaped for a quoted HTML attribute value."""
    return html.escape(visible(text), quote=True)


def hex_or_dash(value: int | None, width: int = 0) -> str:
    return "—" if value is None else f"{value:#0{width + 2 if width else 0}x}"
