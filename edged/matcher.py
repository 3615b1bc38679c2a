"""Person prompts, and the parsing of analysis results into person matches.

The service answers in prose. edged asks it to end with a fenced JSON block that
lists every reference person; when that block is missing or broken, the names are
looked for in the prose, and a name mentioned as absent is not a match.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: Confidence of a person found only by name in prose: weaker than a JSON verdict, yet
#: above the default `alerts.min_confidence` (0.5) so that prose alone can still alert.
TEXT_MATCH_CONFIDENCE = 0.6
#: Confidence of a JSON entry that says present but gives no number.
DEFAULT_JSON_CONFIDENCE = 0.9
#: Only this much of a result is examined, so hostile input cannot make parsing slow.
MAX_TEXT_CHARS = 200_000
EVIDENCE_CHARS = 160

_MAX_MENTIONS = 200  # per person
_MAX_KEYS = 20  # "persons" keys tried, from the end of the text
_MAX_BRACES = 8  # enclosing "{" tried per key
_MAX_TIMESTAMPS = 100
_WINDOW = 160  # characters around a mention that can negate it

_PRESENT_KEYS = ("present", "visible", "seen", "detected", "matched", "match")
_TRUE = {"true", "yes", "y", "t", "1", "present", "visible", "seen", "detected"}
_FALSE = {"false", "no", "n", "f", "0", "absent", "not present", "not seen", "not visible"}

_PERSONS_KEY = re.compile(r'"persons"\s*:', re.I)
_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"```[^\n`]*\n?.*?```", re.S)
_CLOCK = re.compile(r"(\d{1,3}):(\d{1,2})(?::(\d{1,2}))?(\.\d+)?")
_PLAIN = re.compile(r"(\d{1,6}(?:\.\d+)?)\s*(?:s|secs?|seconds?)?(?![\w.])", re.I)
_TEXT_TIME = re.compile(
    r"(?:\b(?:at|around|about|approximately|near|from)\s+|@\s*)~?\s*(?:the\s+)?"
    r"(\d{1,3}:\d{1,2}(?::\d{1,2})?(?:\.\d+)?|\d{1,6}(?:\.\d+)?\s*(?:s|secs?|seconds?)\b)",
    re.I,
)
# A '.' ends a sentence only before whitespace, so "12.5s" stays whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|[;\n]+")

# Words saying that someone is (or is not) seen; both negation directions use them.
_VERB = (
    r"(?:appear\w*|show\w*(?:\s+up)?|enter\w*|arriv\w*|present|visible|seen|see|spot\w*"
    r"|detect\w*|identif\w*|find|found|recogni[sz]\w*|observ\w*|notic\w*|locat\w*|captur\w*"
    r"|featur\w*|confirm\w*|ma[dk]e\s+out|match\w*|there|here"
    r"|in\s+(?:the|this|any)\s+(?:clip|video|footage|scene|frame|recording|view|shot))\b"
)
_AUX = r"(?:is|are|was|were|does|do|did|has|have|had|could|can|will|would|may|might|should)"
_NOT = rf"(?:{_AUX}(?:\s*not|n[’']t)|can[’']t|won[’']t|cannot|never|not|no\s+longer)"
# Cues that negate the name, or the list of names, that follows them.
_BEFORE = "|".join(
    (
        r"\bno\s+(?:\w+\s+)?(?:signs?|traces?|evidence|indications?|sightings?|match(?:es)?)"
        r"\s+(?:of|for)",  # no (clear) sign of Alice; no match for Alice
        r"\b(?:nobody|no\s*-?\s*one|no\s+(?:person|people|individual)s?|none|not\s+anyone)"
        r"\s+(?:\w+\s+)?(?:resembl\w*|match\w*|(?:looking\s+)?like|similar\s+to"
        r"|who\s+(?:looks|resembles|matches))",  # nobody resembling Bob
        r"\bnone\s+of(?:\s+(?:the|these|those))?(?:\s+\w+)?(?:\s+(?:persons|people|individuals))?",
        r"\b(?:neither|nor|not|absen(?:ce|t)(?:\s+of)?|missing|without(?:\s+any)?"
        r"(?:\s+(?:signs?|traces?)\s+of)?)",  # neither Alice nor Bob; Absent: Bob
        r"(?:\b(?:not|never|cannot|unable\s+to|fail(?:ed|s)?\s+to)|n[’']t)(?:\s+\w+)?\s+"
        + _VERB  # could not (clearly) identify Alice
        + r"(?:\s+(?:any\s+)?(?:signs?|traces?)\s+of)?",
    )
)
# Cues that negate the name, or the list of names, that precedes them.
_AFTER = "|".join(
    (
        _NOT + r"(?:\s+\w+)?(?:\s+to)?(?:\s+be(?:en)?)?\s+" + _VERB,  # Alice does not appear
        _AUX + r"(?:\s*not|n[’']t)\s*(?:[.,;!?)]|$)",  # ... but Alice is not.
        r"(?:(?:is|are|was|were|remain(?:s|ed)?|seems?)\s+)?(?:\w+ly\s+)?"
        r"(?:absent|missing|nowhere)\b",  # Alice was absent
        r"no(?:\s+match)?\s*(?:[.,;!?)]|$)",  # Alice: no
        r"[\"']?\s*,\s*[\"']?present[\"']?\s*:\s*[\"']?(?:false|no|0)\b",  # broken JSON
    )
)


@dataclass(frozen=True, slots=True)
class Match:
    """What one result says about one configured person."""

    person: str  # the configured name, as configured
    present: bool
    confidence: float  # 0..1
    timestamps: tuple[float, ...]  # seconds into the clip
    source: Literal["json", "text"]
    evidence: str  # the excerpt that decided it, at most EVIDENCE_CHARS


def build_prompts(
    user_prompt: str,
    system_prompt: str,
    person_names: Sequence[str],
    *,
    ask_unknown: bool = False,
) -> tuple[str, str]:
    """The prompts to send: the user's, plus a request for a JSON verdict per person."""
    names = _unique(person_names)
    if not names:
        return user_prompt, system_prompt
    # One present and one absent entry show both forms; every name is listed so none is skipped.
    entries = [
        {"name": name, "present": True, "confidence": 0.92, "timestamps": [12.5]}
        if i == 0
        else {"name": name, "present": False, "confidence": 0.0, "timestamps": []}
        for i, name in enumerate(names)
    ]
    block: dict[str, Any] = {"persons": entries}
    if ask_unknown:
        block["unknown_people"] = 0
        block["unknown_timestamps"] = []
    listed = ", ".join(json.dumps(name, ensure_ascii=False) for name in names)
    lines = [
        f"Reference persons: {listed}.",
        "End your answer with a fenced ```json block of exactly this shape, with one entry for"
        " every reference person, named exactly as written above, also for those not seen:",
        "```json",
        json.dumps(block, ensure_ascii=False),
        "```",
        '"present" is true if the person is visible in the clip, else false; "confidence" is'
        ' from 0 to 1; "timestamps" are the seconds from the start of the clip at which the'
        " person is visible, empty if absent. The values above only show the format.",
    ]
    if ask_unknown:
        lines.append(
            '"unknown_people" is the number of people seen who match none of the reference persons;'
            ' "unknown_timestamps" are the seconds at which such people are visible.'
        )
    instruction = "\n".join(lines)
    prompt = f"{user_prompt.rstrip()}\n\n{instruction}" if user_prompt.strip() else instruction
    return prompt, system_prompt


def parse_matches(text: str, person_names: Sequence[str]) -> list[Match]:
    """One Match per configured person that the result mentions, in configured order."""
    text = text[:MAX_TEXT_CHARS] if isinstance(text, str) else ""
    names = _unique(person_names)
    if not text.strip() or not names:
        return []
    patterns = _Patterns.build(names)
    found: dict[str, Match] = {}
    prose = text
    block = next(_blocks(text), None)
    if block is not None:
        start, end, obj = block
        found = _from_block(obj, names, patterns)
        prose = f"{text[:start]}\n{text[end:]}"  # a person the block leaves out: the prose decides
    sentences = _SENTENCE_END.split(prose) if len(found) < len(names) else []
    matches = (found.get(name) or _from_text(sentences, name, patterns) for name in names)
    return [match for match in matches if match is not None]


def parse_unknown_people(text: str) -> int | None:
    """The `unknown_people` count of the result's JSON block, if it gives one."""
    block = next(_blocks(text[:MAX_TEXT_CHARS] if isinstance(text, str) else ""), None)
    value = _lower_keys(block[2]).get("unknown_people") if block else None
    number = _number(value)
    return int(number) if number is not None and number >= 0 and number.is_integer() else None


def parse_unknown(text: str, name: str = "unknown") -> Match | None:
    """A match named `name` when the result's JSON block counts people who match no reference
    person; its moments are the block's `unknown_timestamps`. Prose is not read for this: a
    free-text "someone" is too vague to alert on."""
    count = parse_unknown_people(text)
    if not count:
        return None
    block = next(_blocks(text[:MAX_TEXT_CHARS]), None)
    stamps = _json_timestamps(_lower_keys(block[2]).get("unknown_timestamps", [])) if block else ()
    evidence = f"unknown_people: {count}"
    return Match(name, True, DEFAULT_JSON_CONFIDENCE, stamps, "json", evidence)


def select_present(matches: Iterable[Match], min_confidence: float) -> list[Match]:
    """The matches that should alert."""
    return [m for m in matches if m.present and m.confidence >= min_confidence]


def summarize(text: str, limit: int = 280) -> str:
    """The result without its JSON block, on one line, cut on a word boundary."""
    text = text[:MAX_TEXT_CHARS] if isinstance(text, str) else ""
    text = _FENCE.sub(" ", text)
    for start, end, _ in list(_blocks(text)):  # from the end, so earlier offsets stay valid
        text = f"{text[:start]} {text[end:]}"
    text = re.sub(r"```\w*", " ", text)  # the marker of a fence left open
    return _truncate(" ".join(text.split()), limit)


# ---- JSON path -----------------------------------------------------------------------------


def _blocks(text: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Objects with a persons key as (start, end, object), the last one first."""
    keys = [m.start() for m in _PERSONS_KEY.finditer(text)][-_MAX_KEYS:]
    floor = len(text) + 1
    for key in reversed(keys):
        if key >= floor:  # inside an object already yielded
            continue
        brace = key
        for _ in range(_MAX_BRACES):
            brace = text.rfind("{", 0, brace)
            if brace < 0:
                break
            try:
                obj, end = _DECODER.raw_decode(text, brace)
            except (ValueError, RecursionError):
                continue
            if end > key and isinstance(obj, dict) and _persons(obj) is not None:
                floor = brace  # keys inside this object belong to it
                yield brace, end, obj
                break


def _persons(obj: dict[str, Any]) -> list[Any] | None:
    value = _lower_keys(obj).get("persons")
    return value if isinstance(value, list) else None


def _from_block(obj: dict[str, Any], names: list[str], patterns: _Patterns) -> dict[str, Match]:
    by_key = {_key(name): name for name in names}
    found: dict[str, Match] = {}
    for item in _persons(obj) or []:
        if not isinstance(item, dict):
            continue
        entry = _lower_keys(item)
        raw = entry.get("name", entry.get("person"))
        if not isinstance(raw, str):
            continue
        name = by_key.get(_key(raw)) or patterns.single_name_in(raw)
        present = next((_present(entry[k]) for k in _PRESENT_KEYS if k in entry), None)
        if name is None or name in found or present is None:
            continue
        confidence = _confidence(entry.get("confidence"))
        if confidence is None:
            confidence = DEFAULT_JSON_CONFIDENCE if present else 0.0
        stamps = (
            _json_timestamps(entry.get("timestamps", entry.get("timestamp"))) if present else ()
        )
        evidence = _truncate(json.dumps(entry, ensure_ascii=False), EVIDENCE_CHARS)
        found[name] = Match(name, present, confidence, stamps, "json", evidence)
    return found


def _present(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = " ".join(value.split()).casefold()
        return True if word in _TRUE else False if word in _FALSE else None
    return None


def _confidence(value: object) -> float | None:
    number = _number(value)
    if number is None or number < 0:
        return None
    if number > 1 or (isinstance(value, str) and value.strip().endswith("%")):
        number /= 100  # a percentage: 87, "87%"
    return min(number, 1.0)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value.strip().rstrip("%")[:64] if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _json_timestamps(value: object) -> tuple[float, ...]:
    items = value[:_MAX_TIMESTAMPS] if isinstance(value, list) else [value]
    seconds = []
    for item in items:
        if isinstance(item, dict):  # {"start": 12, "end": 15}
            low = _lower_keys(item)
            item = low.get("start", low.get("time", low.get("t")))
        seconds.append(_seconds(item))
    return tuple(sorted({s for s in seconds if s is not None}))


def _seconds(value: object) -> float | None:
    """Seconds from 12.5, "12.5s", "00:12", "1:02:03" or "00:12-00:15" (its start)."""
    if isinstance(value, str):
        value = value.strip()[:64]
        clock = _CLOCK.search(value)
        if clock:
            high, mid, low, fraction = clock.groups()
            hours, minutes, secs = (high, mid, low) if low is not None else ("0", high, mid)
            if int(secs) > 59 or (low is not None and int(minutes) > 59):
                return None
            return int(hours) * 3600 + int(minutes) * 60 + int(secs) + float(fraction or 0)
        plain = _PLAIN.search(value)
        value = plain.group(1) if plain else None
    number = _number(value)
    return number if number is not None and number >= 0 else None


# ---- text path -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Patterns:
    names: dict[str, re.Pattern[str]]
    negated_before: re.Pattern[str]
    negated_after: re.Pattern[str]

    @classmethod
    def build(cls, names: list[str]) -> _Patterns:
        bodies = {name: r"\s+".join(map(re.escape, name.split())) for name in names}
        anyone = "|".join(sorted(bodies.values(), key=len, reverse=True))
        # Other names of a list ("neither Alice nor Bob") sit between a cue and the name.
        joiner = r"(?:,|\band\b|\bor\b|\bnor\b|&|/)"
        before = rf"(?:(?:the\s+)?(?:{anyone})[\s)\"'”*]*{joiner}[\s(\"'“*]*)*$"
        after = rf"(?:[\s)\"'”*]*{joiner}\s*(?:the\s+)?(?:{anyone}))*"
        return cls(
            {name: re.compile(rf"(?<!\w){body}(?!\w)", re.I) for name, body in bodies.items()},
            re.compile(rf"(?:{_BEFORE})[\s(:\"'“”*\-–—]*{before}", re.I),
            re.compile(rf"{after}[\s)\"'”*]*(?:[:\-–—(]\s*)?(?:{_AFTER})", re.I),
        )

    def single_name_in(self, label: str) -> str | None:
        """The one configured name inside a label such as "Alice (reference 1)"."""
        hits = [name for name, pattern in self.names.items() if pattern.search(label)]
        return hits[0] if len(hits) == 1 else None


def _from_text(sentences: list[str], name: str, patterns: _Patterns) -> Match | None:
    pattern = patterns.names[name]
    seen_in: str | None = None
    absent_in: str | None = None
    stamps: set[float] = set()
    mentions = 0
    for sentence in sentences:
        for mention in pattern.finditer(sentence):
            mentions += 1
            if mentions > _MAX_MENTIONS:
                break
            start, end = mention.span()
            negated = patterns.negated_before.search(
                sentence[max(0, start - _WINDOW) : start]
            ) or patterns.negated_after.match(sentence[end : end + _WINDOW])
            if negated:
                absent_in = absent_in or _excerpt(sentence, start)
                continue
            seen_in = seen_in or _excerpt(sentence, start)
            for time in _TEXT_TIME.finditer(sentence):
                seconds = _seconds(time.group(1))
                if seconds is not None:
                    stamps.add(seconds)
            break  # the sentence's timestamps are taken; further mentions add nothing
        if mentions > _MAX_MENTIONS:
            break
    if seen_in is not None:
        return Match(name, True, TEXT_MATCH_CONFIDENCE, tuple(sorted(stamps)), "text", seen_in)
    if absent_in is not None:
        return Match(name, False, 0.0, (), "text", absent_in)
    return None


# ---- helpers -------------------------------------------------------------------------------


def _unique(names: Iterable[str]) -> list[str]:
    """Configured names, without blanks or repeats that differ only in case or spacing."""
    unique: dict[str, str] = {}
    for name in names:
        if isinstance(name, str) and name.strip():
            unique.setdefault(_key(name), name)
    return list(unique.values())


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _lower_keys(obj: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).strip().casefold(): v for k, v in obj.items()}


def _excerpt(sentence: str, at: int) -> str:
    return _truncate(" ".join(sentence[max(0, at - 60) : at + 200].split()), EVIDENCE_CHARS)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit < 2:
        return "…"[: max(limit, 0)]
    cut = text[: limit - 1]
    if not text[limit - 1].isspace():
        space = cut.rfind(" ")
        cut = cut[:space] if space >= limit // 2 else cut  # one huge word: cut inside it
    return cut.rstrip(" ,;:-–—") + "…"
