"""Making names that come from data safe to show: terminals, Slack mrkdwn, HTML, shells. Pure.

Service names, hosts and tag values arrive on the wire, so they may hold anything a
datagram can: ESC sequences that repaint a terminal or retitle its window, C1 controls
(some terminals read U+009B as CSI), bidi overrides that make ``prod/evil`` display as
``prod/live``, line separators that forge extra lines. Every such character is shown as a
visible escape (``\\x1b``, ``\\u202e``) instead; a backslash is doubled so the escaped text
maps back to exactly one original.
"""

from __future__ import annotations

import html
import shlex
import unicodedata

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
joiners, soft hyphen), surrogates, private use, unassigned, line and paragraph separators."""

_ESCAPED: dict[str, str] = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if (known := _ESCAPED.get(ch)) is not None:
        return known
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    return ch in _ESCAPED or unicodedata.category(ch) in _UNSAFE_CATEGORIES


def printable(text: str) -> str:
    """``text`` with every control, format or separator character as a visible escape.

    Printable text (letters of any script, punctuation, spaces) is returned unchanged.
    """
    if text.isprintable() and "\\" not in text:
        return text  # the common case, checked in C
    return "".join(_escape_char(ch) if _unsafe(ch) else ch for ch in text)


def slack_mrkdwn(text: str) -> str:
    """For a Slack mrkdwn (or plain_text) field: printable, and ``& < >`` as entities, the
    three characters Slack reads as links, mentions and its own escapes."""
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_text(text: str) -> str:
    """For HTML text or a quoted attribute: printable, then HTML-escaped (quotes too)."""
    return html.escape(printable(text), quote=True)


def shell_word(text: str) -> str:
    """One shell word that the shell reads back as exactly ``text`` (POSIX quoting)."""
    return shlex.quote(text)
