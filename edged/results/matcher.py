"""Person prompts, and the reading of analysis results into person matches.

edged asks the service to end its answer with one fenced ```json verdict (edged/results/verdict.py).
With a verdict, its entries decide, names compared exactly after Unicode normalisation and
case folding. Without one, names found in the prose (edged/results/prose.py) are recorded at
PROSE_CONFIDENCE, below the default `alerts.min_confidence`: they show in `edged status` but
do not alert, since prose is what a sign, a screen or a T-shirt in the picture can write.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edged.results.prose import NameFinder
from edged.results.verdict import (
    DEFAULT_CONFIDENCE,
    MAX_TEXT_CHARS,
    Found,
    PersonVerdict,
    find_verdict,
    name_key,
    one_line,
    seconds,
    strip_fences,
    tail,
)

__all__ = [
    "DEFAULT_JSON_CONFIDENCE",
    "EVIDENCE_CHARS",
    "MAX_TEXT_CHARS",
    "PROSE_CONFIDENCE",
    "Match",
    "Reading",
    "build_prompts",
    "parse_matches",
    "parse_unknown",
    "parse_unknown_people",
    "read_result",
    "select_present",
    "summarize",
]

#: Confidence of a person named only in prose: below the default `alerts.min_confidence`
#: (0.5), so prose alone alerts only where the operator lowers that threshold.
PROSE_CONFIDENCE = 0.3
DEFAULT_JSON_CONFIDENCE = DEFAULT_CONFIDENCE
EVIDENCE_CHARS = 160

_TEXT_TIME = re.compile(
    r"(?:\b(?:at|around|about|approximately|near|from)\s+|@\s*)~?\s*(?:the\s+)?"
    r"(\d{1,3}:\d{1,2}(?::\d{1,2})?(?:\.\d+)?|\d{1,6}(?:\.\d+)?\s*(?:s|secs?|seconds?)\b)",
    re.I,
)
_OPEN_FENCE = re.compile(r"```[^\s`]*")

Status = Literal["ok", "missing", "invalid", "conflict"]


@dataclass(frozen=True, slots=True)
class Match:
    """What one result says about one configured person."""

    person: str  # the configured name, as configured
    present: bool
    confidence: float  # 0..1
    timestamps: tuple[float, ...]  # seconds into the clip
    source: Literal["json", "text"]
    evidence: str  # the excerpt that decided it, at most EVIDENCE_CHARS


@dataclass(frozen=True, slots=True)
class Reading:
    """Everything edged takes from one result, worked out once, off the ledger's thread."""

    matches: tuple[Match, ...]
    status: Status  # "ok": a verdict; else why there is none
    problem: str | None
    title: str | None
    threat_level: int | None
    summary: str
    unknown: Match | None = None

    @property
    def has_verdict(self) -> bool:
        return self.status == "ok"

    def detail(self) -> str:
        """The clip's `done` event detail: how its result was read."""
        record: dict[str, Any] = {"verdict": self.status}
        if self.problem:
            record["problem"] = self.problem
        if self.title is not None:
            record["title"] = self.title
        if self.threat_level is not None:
            record["threat_level"] = self.threat_level
        if not self.has_verdict:
            record["mentions"] = [
                {"person": m.person, "present": m.present, "evidence": m.evidence}
                for m in self.matches
            ]
        return json.dumps(record, ensure_ascii=False, sort_keys=True)


def build_prompts(
    user_prompt: str,
    system_prompt: str,
    person_names: Sequence[str],
    *,
    ask_unknown: bool = False,
) -> tuple[str, str]:
    """The prompts to send: the user's, plus a request for a JSON verdict at the end."""
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
    block["title"] = "Person at the front door"
    block["threat_level"] = 0
    listed = ", ".join(json.dumps(name, ensure_ascii=False) for name in names)
    lines = [
        f"Reference persons: {listed}.",
        "End your answer with exactly one fenced ```json block, the last thing in your answer,"
        " of this shape, with one entry for every reference person, named exactly as written"
        " above, also for those not seen:",
        "```json",
        json.dumps(block, ensure_ascii=False),
        "```",
        '"present" is true if the person is visible in the clip, else false; "confidence" is'
        ' a number from 0 to 1; "timestamps" are the seconds from the start of the clip at'
        ' which the person is visible, empty if absent. "title" is one line saying what'
        ' happens; "threat_level" is 0 (routine), 1 (needs review) or 2 (security concern).'
        " Text that is visible in the video (signs, screens, clothing) is not a person. The"
        " values above only show the format.",
    ]
    if ask_unknown:
        lines.append(
            '"unknown_people" is the number of people seen who match none of the reference persons;'
            ' "unknown_timestamps" are the seconds at which such people are visible.'
        )
    instruction = "\n".join(lines)
    prompt = f"{user_prompt.rstrip()}\n\n{instruction}" if user_prompt.strip() else instruction
    return prompt, system_prompt


def read_result(
    text: object, person_names: Sequence[str], *, unknown_name: str | None = None
) -> Reading:
    """Blocking and CPU-bound (run it in a worker thread): linear in the text, whatever it is."""
    body = tail(text)
    found = find_verdict(body)
    names = _unique(person_names)
    verdict = found.verdict
    matches: list[Match] = []
    prose = _prose(body, found)
    for name in names:
        entry = verdict.person(name) if verdict is not None else None
        if entry is not None:
            matches.append(_from_entry(name, entry))
            continue
        match = _from_prose(name, names, prose)
        if match is not None:
            matches.append(match)
    unknown = None
    if unknown_name is not None and verdict is not None and verdict.unknown_people:
        evidence = f"unknown_people: {verdict.unknown_people}"
        stamps = verdict.unknown_timestamps
        unknown = Match(unknown_name, True, DEFAULT_CONFIDENCE, stamps, "json", evidence)
    return Reading(
        matches=tuple(matches),
        status=found.status,
        problem=found.problem,
        title=verdict.title if verdict is not None else None,
        threat_level=verdict.threat_level if verdict is not None else None,
        summary=_summary(prose, 280),
        unknown=unknown,
    )


def parse_matches(text: str, person_names: Sequence[str]) -> list[Match]:
    """One Match per configured person that the result mentions, in configured order."""
    return list(read_result(text, person_names).matches)


def parse_unknown_people(text: str) -> int | None:
    """The `unknown_people` count of the result's verdict, if it has one."""
    verdict = find_verdict(tail(text)).verdict
    return verdict.unknown_people if verdict is not None else None


def parse_unknown(text: str, name: str = "unknown") -> Match | None:
    """A match named `name` when the verdict counts people who match no reference person; its
    moments are the verdict's `unknown_timestamps`. Prose is never read for this."""
    return read_result(text, [], unknown_name=name).unknown


def select_present(matches: Iterable[Match], min_confidence: float) -> list[Match]:
    """The matches that should alert."""
    return [m for m in matches if m.present and m.confidence >= min_confidence]


def summarize(text: str, limit: int = 280) -> str:
    """The result without its fenced blocks, on one line, cut on a word boundary."""
    body = tail(text)
    return _summary(_prose(body, find_verdict(body)), limit)


# ---- helpers -------------------------------------------------------------------------------


def _from_entry(name: str, entry: PersonVerdict) -> Match:
    stamps = entry.timestamps if entry.present else ()
    evidence = json.dumps(entry.model_dump(mode="json"), ensure_ascii=False)
    return Match(
        name, entry.present, entry.score, stamps, "json", _truncate(one_line(evidence, 400))
    )


def _prose(body: str, found: Found) -> str:
    """The text outside fenced blocks (and outside a bare verdict)."""
    # NFKC, as names are: "José" written in NFD, or in full-width letters, is found too.
    return "" if found.bare else unicodedata.normalize("NFKC", strip_fences(body))


def _from_prose(name: str, names: list[str], prose: str) -> Match | None:
    if not prose:
        return None
    finder = _finder(name, tuple(n for n in names if n != name))
    absent: str | None = None
    for mention in finder.mentions(prose):
        if mention.kind == "seen":
            stamps = {seconds(t.group(1)) for t in _TEXT_TIME.finditer(mention.clause)}
            found = tuple(sorted(s for s in stamps if s is not None))
            excerpt = _excerpt(mention.clause, mention.at)
            return Match(name, True, PROSE_CONFIDENCE, found, "text", excerpt)
        if mention.kind == "absent" and absent is None:
            absent = _excerpt(mention.clause, mention.at)
    return Match(name, False, 0.0, (), "text", absent) if absent is not None else None


@functools.lru_cache(maxsize=256)
def _finder(name: str, others: tuple[str, ...]) -> NameFinder:
    return NameFinder(name, list(others))


def _summary(prose: str, limit: int) -> str:
    text = prose[: limit * 4]
    opened = _OPEN_FENCE.search(text)
    if opened:  # a fence left open: what follows is a broken block
        text = text[: opened.start()]
    return _truncate(one_line(text, limit * 4), limit)


def _unique(names: Iterable[str]) -> list[str]:
    """Configured names, without blanks or repeats that differ only in case, spacing or
    Unicode form."""
    unique: dict[str, str] = {}
    for name in names:
        if isinstance(name, str) and name.strip():
            unique.setdefault(name_key(name), name)
    return list(unique.values())


def _excerpt(clause: str, at: int) -> str:
    return _truncate(one_line(clause[max(0, at - 60) : at + 200], 400), EVIDENCE_CHARS)


def _truncate(text: str, limit: int = EVIDENCE_CHARS) -> str:
    if len(text) <= limit:
        return text
    if limit < 2:
        return "…"[: max(limit, 0)]
    cut = text[: limit - 1]
    if not text[limit - 1].isspace():
        space = cut.rfind(" ")
        cut = cut[:space] if space >= limit // 2 else cut  # one huge word: cut inside it
    return cut.rstrip(" ,;:-–—") + "…"
