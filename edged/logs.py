"""Logging set-up: one line per event, secrets redacted and control characters escaped by the
formatter itself, whatever the message, its arguments or an exception hold.

- Secrets: every value `configure` is given (the config's API key, webhook secrets, MQTT and
  camera passwords), whatever its length, also in its URL-decoded and URL-encoded forms; and
  structurally the userinfo of any URL (everything before the last `@` of the authority), so
  a password with a space, `/` or `@` is hidden even where it was never configured.
- Control characters (ESC, CR, LF, NUL, DEL, C1, bidi overrides, line separators) are written
  as `\\xNN` / `\\uNNNN`: a camera name, file name or API answer cannot colour a terminal or
  forge a log line. A traceback keeps its lines, each indented, so none starts like a record.
- Repeats: see RepeatFilter.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from urllib.parse import quote, unquote

_SCHEME = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
# A URL inside quotes (how PyAV and Python print a file name): its userinfo may hold spaces.
_QUOTED_URL = re.compile(
    rf"(?P<q>['\"])(?P<scheme>{_SCHEME})(?P<userinfo>[^'\"\r\n]*)@(?P<rest>[^'\"@\r\n]*)(?P=q)"
)
# Anywhere else: up to the last `@` of the word (greedy), so `/` and `@` in a password are hidden.
_URL = re.compile(rf"(?P<scheme>{_SCHEME})(?P<userinfo>[^\s'\"]*)@")
_USER = re.compile(r"[^:/?#\[\]]*")


def _hidden(scheme: str, userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    keep = colon and _USER.fullmatch(user)
    return f"{scheme}{user}:***@" if keep else f"{scheme}***@"


def redact_userinfo(text: str) -> str:
    """Hide the userinfo of every URL in free text (the user name stays when it is plain)."""
    if "://" not in text:
        return text
    text = _QUOTED_URL.sub(
        lambda m: m["q"] + _hidden(m["scheme"], m["userinfo"]) + m["rest"] + m["q"], text
    )
    return _URL.sub(lambda m: _hidden(m["scheme"], m["userinfo"]), text)


def url_userinfo(url: str) -> str | None:
    """The userinfo of one URL (a config value): everything before the last `@` after the
    scheme, or None. Not urlsplit's: it ends the authority at the first `/`, which leaves
    the rest of a password with a `/` in it in the "path"."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    return rest.rpartition("@")[0]


def url_password(url: str) -> str | None:
    userinfo = url_userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return None
    return userinfo.partition(":")[2] or None


def redact_url_value(url: str) -> str:
    """One URL (a config value, no text around it) with its password hidden."""
    userinfo = url_userinfo(url)
    if userinfo is None:
        return redact_userinfo(url)
    scheme, _, rest = url.partition("://")
    return _hidden(f"{scheme}://", userinfo) + rest.rpartition("@")[2]


# ---- control characters ------------------------------------------------------------------

_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_ESCAPES |= {code: f"\\u{code:04x}" for code in (0x2028, 0x2029, 0x200E, 0x200F, 0x061C)}
_ESCAPES |= {code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


#: Code points that are never written as they are (escaped here, removed by the command sink).
CONTROL_CODES = frozenset(_ESCAPES)


def escape_controls(text: str) -> str:
    return text.translate(_ESCAPES)


# ---- secrets -------------------------------------------------------------------------------

#: The secrets of the running config (set by `configure`); every Redactor hides them too.
_configured: frozenset[str] = frozenset()


def _spellings(secret: str) -> set[str]:
    return {s for s in (secret, unquote(secret), quote(secret, safe="")) if s}


class Redactor:
    """Replaces secret values and URL userinfo in any text. Every redactor holds the
    configured secrets (those given to `configure`) besides its own."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._own = frozenset(spelling for secret in secrets for spelling in _spellings(secret))

    def __call__(self, text: str) -> str:
        # The known secrets first: a password with a space or an `@` is found whole, before
        # the structural pass (which cannot tell where such a password ends) cuts into it.
        pattern = _secrets_pattern(self._own, _configured)
        if pattern is not None:
            text = pattern.sub("***", text)
        return redact_userinfo(text)


@functools.lru_cache(maxsize=64)
def _secrets_pattern(*sets: frozenset[str]) -> re.Pattern[str] | None:
    values = sorted(frozenset().union(*sets), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, values))) if values else None


def redact(text: str) -> str:
    """With the configured secrets (for text stored or shown outside the log: outage reasons)."""
    return Redactor()(text)


# ---- repeats -------------------------------------------------------------------------------

#: Arguments after these keys name one clip, file or alert: lines differing there are distinct.
_DISTINCT_KEYS = ("clip", "file", "alert", "alert_id", "path", "person", "task")
_PLACEHOLDER = re.compile(
    r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]"
)


@functools.lru_cache(maxsize=1024)
def _distinct_positions(template: str) -> tuple[int, ...]:
    """Indices of the %-arguments of `template` that follow `clip=`, `file=`, ... ."""
    positions, index = [], 0
    for match in _PLACEHOLDER.finditer(template):
        if match.group() == "%%":
            continue
        before = template[: match.start()]
        if before.endswith(tuple(f"{key}=" for key in _DISTINCT_KEYS)):
            positions.append(index)
        index += 1
    return tuple(positions)


class RepeatFilter(logging.Filter):
    """Lets the first of a run of similar warnings through, then one line per window with how
    many were held back: a camera or the API down for hours must not flood the journal.
    Similar means: same logger, same message template, same first argument (the camera), and
    the same clip, file, alert or person where the template names one (`clip=%s`): a line
    about another clip or file is news, never a repeat. Alerts (logger `edged.alert`, the log
    sink) are deliveries, never held back."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, ...], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name == "edged.alert":
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        template = str(record.msg)
        distinct = [str(args[i]) for i in _distinct_positions(template) if i < len(args)]
        key = (record.name, template, str(args[0]) if args else "", *distinct)
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


# ---- the formatter -------------------------------------------------------------------------


class RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor, *, json_lines: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redactor
        self._json = json_lines

    def _clean(self, text: str) -> str:
        return escape_controls(self._redact(text))

    def format(self, record: logging.LogRecord) -> str:
        message = self._clean(record.getMessage())
        trace = self.formatException(record.exc_info) if record.exc_info else None
        if record.stack_info:
            trace = (trace + "\n" if trace else "") + self.formatStack(record.stack_info)
        if self._json:
            entry = {
                "time": self.formatTime(record),
                "level": record.levelname.lower(),
                "logger": escape_controls(record.name),
                "message": message,
            }
            if trace:
                entry["exception"] = "\n".join(self._clean(line) for line in trace.splitlines())
            return json.dumps(entry)
        head = f"{self.formatTime(record)} {record.levelname} {escape_controls(record.name)}"
        line = f"{head}: {message}"
        if trace:
            line += "".join(f"\n    {self._clean(part)}" for part in trace.splitlines())
        return line


def _log_crash(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    """sys.excepthook: a crash is logged by edged's formatter (redacted, JSON if asked)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("edged").critical(
        "crashed: %s", kind.__name__, exc_info=(kind, value, traceback)
    )


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook: a worker thread's crash goes through the formatter too."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    logging.getLogger("edged").critical("thread %s crashed", name, exc_info=exc_info)


def configure(
    *, level: str = "INFO", json_lines: bool = False, secrets: Iterable[str] = ()
) -> Redactor:
    global _configured
    _configured = frozenset(spelling for secret in secrets for spelling in _spellings(secret))
    redactor = Redactor()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor, json_lines=json_lines))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every probe of the public listener.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    sys.excepthook = _log_crash
    threading.excepthook = _log_thread_crash
    return redactor
