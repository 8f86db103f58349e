"""Text from the dump is attacker-controlled: make it visible and inert before it is rendered.

A process can name itself anything up to 15 bytes: control characters, a right-to-left override
that makes ``exe.lsass`` read as ``lsass.exe``, Markdown or HTML. :func:`visible` turns every
character that is not plainly printable into a visible escape (``\\x07``, ``\\u202e``), so what the
analyst reads is what the dump holds (:mod:`iumdump.visible`); the renderers then escape their own
syntax.
"""

from __future__ import annotations

import html

from ..visible import hidden_escape, one_line, visible

__all__ = ["hex_or_dash", "hidden_escape", "html_attribute", "html_message", "html_text",
           "markdown", "pid_text", "visible", "yes_no"]

_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|~&")


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


def html_message(text: object) -> str:
    """A message of our own wording whose outside text is already visible (an error naming a
    file), escaped for an HTML text node: kept on one line, not made visible a second time."""
    return html.escape(one_line(text), quote=False)


def hex_or_dash(value: int | None, width: int = 0) -> str:
    return "—" if value is None else f"{value:#0{width + 2 if width else 0}x}"


def pid_text(value: int | None) -> str:
    return "?" if value is None else str(value)


def yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")
