"""Logging set-up: one line per event, secrets redacted by the formatter itself."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable

# user:password@ in any URL (rtsp, http) keeps the user, hides the password.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@"
)


class Redactor:
    """Replaces known secret values and URL passwords in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class RepeatFilter(logging.Filter):
    """Lets the first of a run of similar warnings through, then one line per window with how
    many were held back: a camera or the API down for hours must not flood the journal.
    Similar means: same logger, same message template, same first argument (the camera)."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.name, str(record.msg), str(args[0]) if args else "")
        now = self._clock()
        since, held = self._seen.get(key, (float("-inf"), 0))
        if now - since < self._window_s:
            self._seen[key] = (since, held + 1)
            return False
        if len(self._seen) > 10_000:  # bounded memory whatever the messages
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} similar in the last {self._window_s:.0f}s)"
        return True


class RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor, *, json_lines: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redactor
        self._json = json_lines

    def format(self, record: logging.LogRecord) -> str:
        if not self._json:
            return self._redact(super().format(record))
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(entry))


def configure(
    *, level: str = "INFO", json_lines: bool = False, secrets: Iterable[str] = ()
) -> Redactor:
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor, json_lines=json_lines))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every probe of the public listener.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redactor
