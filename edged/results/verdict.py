"""The verdict: the one fenced ```json block that edged asks the service to end with.

Everything here is linear in the text and never raises on any input. The verdict is the last
closed fenced block (language `json` or none) that validates against `Verdict`, or the whole
answer when it is one bare JSON object. JSON anywhere else (quoted from a screen, inside the
prose) is never a verdict, and validating blocks that disagree mean no verdict at all.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

#: Only the end of a result is read (the verdict is asked for at the very end).
MAX_TEXT_CHARS = 200_000
#: A verdict lists the configured persons; far more entries is not an answer to the prompt.
MAX_PERSONS = 200
MAX_TIMESTAMPS = 100
MAX_TITLE_CHARS = 120
#: Fenced blocks examined, from the end of the text.
MAX_FENCES = 32
#: Confidence of an entry that says present but gives no number.
DEFAULT_CONFIDENCE = 0.9

# ``` + an info string on its line + the body up to the next ```. No part can give back what
# it took (the old `.*?` pattern was quadratic on an unclosed fence before a long line).
_FENCED = re.compile(r"```([^\n`]{0,64}+)\n((?:[^`]++|`(?!``))*+)```")
_FENCE = "```"
_JSON_LANGS = ("", "json")
_CLOCK = re.compile(r"(\d{1,3}):(\d{1,2})(?::(\d{1,2}))?(\.\d+)?")
_PLAIN = re.compile(r"(\d{1,6}(?:\.\d+)?)\s*(?:s|secs?|seconds?)?")


def tail(text: object) -> str:
    """The part of a result that is read: its last MAX_TEXT_CHARS characters."""
    return text[-MAX_TEXT_CHARS:] if isinstance(text, str) else ""


def name_key(name: str) -> str:
    """How names compare: NFKC, case folded, inner whitespace collapsed ("José" in NFD or NFC,
    "ALICE", " alice " are one name; "not Alice" is another)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return " ".join(unicodedata.normalize("NFKC", folded).split())


def one_line(text: str, limit: int) -> str:
    """Printable text on one line, at most `limit` characters: control and format characters
    (NUL, escapes, bidirectional overrides), lone surrogates and unassigned code points become
    spaces, runs of whitespace one space."""
    work = text[: limit * 8]  # whitespace is squeezed afterwards: more than enough
    clean = "".join(ch if ch.isprintable() else " " for ch in work)
    line = " ".join(clean.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


# ---- the schema ----------------------------------------------------------------------------


def _confidence(value: object) -> float | None:
    """0..1 as a number, or an explicit percentage string ("85%"); anything else is refused,
    so that 1.5 or 5 (on some other scale) is never guessed at."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("confidence must be a number from 0 to 1")
    if isinstance(value, str):
        word = value.strip()[:32]
        percent = word.endswith("%")
        try:
            number = float(word[:-1] if percent else word)
        except ValueError:
            raise ValueError(f"confidence {word!r} is not a number") from None
        if percent:
            if not 0 <= number <= 100:
                raise ValueError(f"confidence {word!r} is outside 0%..100%")
            return number / 100
        value = number
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("confidence must be a number from 0 to 1")
    if not 0 <= value <= 1:
        raise ValueError(
            f'confidence {value!r} is outside 0..1 (a percentage must be written as "85%")'
        )
    return float(value)


def seconds(value: object) -> float | None:
    """Seconds from 12.5, "12.5s", "00:12", "1:02:03" or "00:12-00:15" (its start)."""
    if isinstance(value, dict):  # {"start": 12, "end": 15}
        low = {str(k).casefold(): v for k, v in value.items()}
        value = low.get("start", low.get("time", low.get("t")))
    if isinstance(value, str):
        word = value.strip()[:64]
        clock = _CLOCK.match(word)
        if clock:
            high, mid, low_, fraction = clock.groups()
            hours, minutes, secs = (high, mid, low_) if low_ is not None else ("0", high, mid)
            if int(secs) > 59 or (low_ is not None and int(minutes) > 59):
                return None
            return int(hours) * 3600 + int(minutes) * 60 + int(secs) + float(fraction or 0)
        plain = _PLAIN.fullmatch(word)
        value = float(plain.group(1)) if plain else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _timestamps(value: object) -> tuple[float, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_TIMESTAMPS:
        raise ValueError(f"more than {MAX_TIMESTAMPS} timestamps")
    found = [seconds(item) for item in items]
    if any(s is None for s in found):
        raise ValueError('timestamps must be seconds (12.5) or clock times ("00:12")')
    return tuple(sorted({s for s in found if s is not None}))


def _title(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("title must be a string")
    return one_line(value, MAX_TITLE_CHARS) or None


Confidence = Annotated[float | None, BeforeValidator(_confidence)]
Timestamps = Annotated[tuple[float, ...], BeforeValidator(_timestamps)]
Title = Annotated[str | None, BeforeValidator(_title)]


class PersonVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    present: bool
    confidence: Confidence = None
    timestamps: Timestamps = ()

    @property
    def score(self) -> float:
        if self.confidence is not None:
            return self.confidence
        return DEFAULT_CONFIDENCE if self.present else 0.0


class Verdict(BaseModel):
    """`persons: [{name, present, confidence, timestamps}]`, `unknown_people`,
    `unknown_timestamps`, a one-line `title`, `threat_level` 0 (routine), 1 (needs review)
    or 2 (security concern). Other keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    persons: Annotated[list[PersonVerdict], Field(max_length=MAX_PERSONS)]
    unknown_people: Annotated[int, Field(ge=0, le=10_000)] | None = None
    unknown_timestamps: Timestamps = ()
    title: Title = None
    threat_level: Literal[0, 1, 2] | None = None

    @model_validator(mode="after")
    def _names_once(self) -> Verdict:
        keys = [name_key(p.name) for p in self.persons]
        if len(set(keys)) != len(keys):
            raise ValueError("a person is listed twice")
        return self

    def person(self, name: str) -> PersonVerdict | None:
        key = name_key(name)
        return next((p for p in self.persons if name_key(p.name) == key), None)

    def gist(self) -> tuple[object, ...]:
        """What two blocks must share to agree: who is present, the unknown count, the threat."""
        present = sorted((name_key(p.name), p.present) for p in self.persons)
        return (tuple(present), bool(self.unknown_people), self.threat_level)


# ---- finding it ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """The verdict of a text, or why there is none ("missing", "invalid", "conflict")."""

    verdict: Verdict | None
    status: Literal["ok", "missing", "invalid", "conflict"]
    problem: str | None = None
    bare: bool = False  # the whole answer is the verdict: there is no prose


def strip_fences(text: str) -> str:
    """The text with every closed fenced block replaced by a line break. Linear in the text:
    every part of the pattern is possessive, so nothing is tried twice, and an unclosed fence
    fails once, at its end."""
    return _FENCED.sub("\n", text)


def find_verdict(text: str) -> Found:
    """The verdict of `text` (already cut to its tail)."""
    # The deque drains the scan in C and keeps only the last blocks, however many there are.
    last_blocks = deque(_FENCED.finditer(text), maxlen=MAX_FENCES)
    fenced = bool(last_blocks)
    end = last_blocks[-1].end() if last_blocks else -1
    candidates = [b.group(2) for b in last_blocks if b.group(1).strip().casefold() in _JSON_LANGS]
    last = text.rfind(_FENCE)
    if last >= 0 and last + len(_FENCE) != end:
        # The last ``` closes no block when a fence before it pairs the other way (one whose
        # opening the cut to the tail removed, a run of backticks): the block it closes,
        # looked for backwards, is the one the answer ends with.
        body = _block_ending_at(text, last)
        if body is not None:
            fenced = True
            candidates.append(body)
    valid: list[Verdict] = []
    problem: str | None = None
    for index, body in enumerate(candidates):
        verdict, why = validate(body)
        if verdict is not None:
            valid.append(verdict)
        elif why is not None and index == len(candidates) - 1:
            problem = why
    if not fenced:
        stripped = text.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            verdict, problem = validate(stripped)
            if verdict is not None:
                return Found(verdict, "ok", None, bare=True)
    if not valid:
        return Found(None, "invalid" if problem else "missing", problem)
    if len({v.gist() for v in valid}) > 1:
        return Found(None, "conflict", f"{len(valid)} verdict blocks that disagree")
    return Found(valid[-1], "ok", None)


def _block_ending_at(text: str, closing: int) -> str | None:
    """The body of a json (or plain) fenced block closed by the ``` at `closing`: its opening
    is the ``` before it, followed by an info string and a line break."""
    opening = text.rfind(_FENCE, 0, closing)
    if opening < 0:
        return None
    after = opening + len(_FENCE)
    newline = text.find("\n", after, min(closing, after + 65))
    if newline < 0 or "`" in text[after:newline]:
        return None
    if text[after:newline].strip().casefold() not in _JSON_LANGS:
        return None
    return text[newline + 1 : closing]


def validate(body: str) -> tuple[Verdict | None, str | None]:
    """(verdict, None), or (None, why not) when the body is JSON with "persons" that does not
    validate, or (None, None) when it is not meant as a verdict at all."""
    try:
        value = json.loads(body, object_pairs_hook=_no_repeats, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None, ("not valid JSON" if '"persons"' in body else None)
    if not isinstance(value, dict):
        return None, None
    persons = value.get("persons")
    if isinstance(persons, list) and len(persons) > MAX_PERSONS:
        return None, f"persons: more than {MAX_PERSONS} entries"
    try:
        return Verdict.model_validate(value), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "verdict"
        return None, one_line(f"{where}: {first['msg']}", 200)


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {key!r} given twice")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
