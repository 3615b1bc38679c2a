"""Text from outside (a task id, a remote address, a result) made safe for a terminal or a log.

Control characters are escaped rather than dropped, so an operator still sees that they
were there: an escape sequence cannot recolour or clear the screen, a newline cannot
forge a log line, and bidirectional overrides cannot reorder what is shown.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the bidirectional formatting characters.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character escaped (`\\x1b`, `\\n`, `\\u202e`)."""
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escape, line) for line in text.split("\n"))
    return _UNSAFE.sub(_escape, text)


def without_surrogates(text: str) -> str:
    """Lone surrogates (valid in JSON escapes, not in UTF-8) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)
