"""Names as edged shows and stores them: a "did you mean" for a misspelt one, and a name made
safe to be one file-name or MQTT-topic level. Pure functions, no I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """A name as one file-name or MQTT-topic level: "Mary Ann" -> "Mary_Ann"."""
    cleaned = _UNSAFE.sub("_", name.strip()).strip(".")
    return cleaned or "_"


def did_you_mean(word: object, choices: Sequence[str]) -> str:
    """The suffix "; did you mean 'x'?" when one of choices is close to word, else ""."""
    text = str(word)
    close = difflib.get_close_matches(text, list(choices), n=1, cutoff=0.6)
    # A shortened key ("topic" for "topic_prefix") is close too, though difflib disagrees.
    close += [c for c in choices if len(text) >= 4 and c.startswith(text)][:1]
    return f"; did you mean {close[0]!r}?" if close else ""
