"""Names in the prose of a result without a verdict: a hint for the operator, never proof.

A mention counts as "seen" only when nothing around it says otherwise: not negated ("no sign
of Alice", "Bob was not there; Alice neither."), not uncertain ("It is unclear whether Alice
appears", "does not look like Alice", "rather than Alice"), not text in the picture or a quote
("a sign reading 'Alice is present'", "a poster: WANTED: Bob", "the TV shows the name Alice"),
and, for names that are also words ("Will", "May", "Hope"), written as the name. Every pattern
here runs on one clause or on a bounded window around one mention: linear in the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Kind = Literal["seen", "absent", "unsure", "quoted", "word"]

WINDOW = 160  # characters around a mention that can change what it means
MAX_MENTIONS = 40  # per person: an answer names someone a few times
CLAUSE_REACH = 400  # how far a clause is followed from a mention

#: Names that are also ordinary words: they count only written as the name, mid-sentence.
_WORDS = (
    "will may mark dawn hope grace faith joy rose june april august summer autumn bill pat"
    " sue art jack frank ray rob sky amber ruby iris ivy lily daisy holly heather carol"
    " crystal destiny honey star river stone sunny victor penny rich gay guy drew chase"
    " hunter major miles long brown white black green gray grey king young"
)
WORD_NAMES = frozenset(_WORDS.split())

# A '.' ends a sentence only before whitespace, so "12.5s" stays whole; ';' and lines end
# clauses, which is where a negation stops.
_CLAUSE_END = re.compile(r"(?<=[.!?])\s+|[;\n]+")
_VERB = (
    r"(?:appear\w*|show\w*(?:\s+up)?|enter\w*|arriv\w*|present|visible|seen|see|spot\w*"
    r"|detect\w*|identif\w*|find|found|recogni[sz]\w*|observ\w*|notic\w*|locat\w*|captur\w*"
    r"|featur\w*|confirm\w*|ma[dk]e\s+out|match\w*|there|here"
    r"|in\s+(?:the|this|any)\s+(?:clip|video|footage|scene|frame|recording|view|shot))\b"
)
_AUX = r"(?:is|are|was|were|does|do|did|has|have|had|could|can|will|would|may|might|should)"
_NOT = rf"(?:{_AUX}(?:\s*not|n[’']t)|can[’']t|won[’']t|cannot|never|not|no\s+longer)"
# Cues before the name (and the list of names it starts) that negate it.
_BEFORE = "|".join(
    (
        r"\bno\s+(?:\w+\s+)?(?:signs?|traces?|evidence|indications?|sightings?|match(?:es)?)"
        r"\s+(?:of|for)",
        r"\b(?:nobody|no\s*-?\s*one|no\s+(?:person|people|individual)s?|none|not\s+anyone)"
        r"\s+(?:\w+\s+)?(?:resembl\w*|match\w*|(?:looking\s+)?like|similar\s+to"
        r"|who\s+(?:looks|resembles|matches))",
        r"\bnone\s+of(?:\s+(?:the|these|those))?(?:\s+\w+)?(?:\s+(?:persons|people|individuals))?",
        r"\b(?:neither|nor|not|absen(?:ce|t)(?:\s+of)?|missing|without(?:\s+any)?"
        r"(?:\s+(?:signs?|traces?)\s+of)?)",
        r"(?:\b(?:not|never|cannot|unable\s+to|fail(?:ed|s)?\s+to)|n[’']t)(?:\s+\w+)?\s+"
        + _VERB
        + r"(?:\s+(?:any\s+)?(?:signs?|traces?)\s+of)?",
    )
)
# Cues after the name (and the list of names it ends) that negate it.
_AFTER = "|".join(
    (
        _NOT + r"(?:\s+\w+)?(?:\s+to)?(?:\s+be(?:en)?)?\s+" + _VERB,
        _AUX + r"(?:\s*not|n[’']t)\s*(?:[.,;!?)]|$)",
        r"(?:(?:is|are|was|were|remain(?:s|ed)?|seems?)\s+)?(?:\w+ly\s+)?"
        r"(?:absent|missing|nowhere)\b",
        r"no(?:\s+match)?\s*(?:[.,;!?)]|$)",
        r"(?:,\s*)?(?:neither|either)\b",
        r"[\"']?\s*,\s*[\"']?present[\"']?\s*:\s*[\"']?(?:false|no|0)\b",
    )
)
# Anywhere earlier in the clause: what follows is doubt, likeness or a guess.
_UNSURE_BEFORE = re.compile(
    r"\b(?:unclear|uncertain|unsure|unknown\s+(?:whether|if)|not\s+(?:sure|certain|clear)"
    r"|(?:can[’']?t|cannot|could\s*n[’']?t|could\s+not|unable\s+to|hard\s+to|difficult\s+to"
    r"|impossible\s+to|don[’']?t\s+know|do\s+not\s+know)\s+(?:\w+\s+){0,2}?"
    r"(?:tell|say|determine|confirm|know|judge|verify|be\s+sure)"
    r"|whether|rather\s+than|instead\s+of|as\s+opposed\s+to|other\s+than|except"
    r"|look\w*\s+like|seem\w*\s+(?:like|to\s+be)|appears?\s+to\s+be|resembl\w*|similar\s+to"
    r"|reminiscent\s+of|mistak\w*\s+for|possibly|perhaps|maybe|probably|likely|might\s+be"
    r"|may\s+be|could\s+be|if\s+(?:this|that|it)\s+(?:is|was))\b",
    re.I,
)
_UNSURE_AFTER = re.compile(r"[\s\"'”)]*(?:\?|,?\s*(?:perhaps|maybe|possibly|probably)\b)", re.I)
# Earlier in the clause: the name is text in the picture or words someone wrote or said.
_ON_SCREEN = re.compile(
    r"\b(?:signs?(?!\s+of\b)|signage|poster|banner|placard|billboard|screen|tv|television|monitor|display"
    r"\w*|shirt|t-shirt|hoodie|jacket|label\w*|caption\w*|subtitle\w*|written|writing|reads?"
    r"|reading|text|says|saying|said|spell\w*|print\w*|name\s*tag|badge|logo|sticker|graffiti"
    r"|wanted|headline|newspaper|magazine|letter(?:s|ing)?|message|note|the\s+name|named|called"
    r"|word(?:s)?|sticker|plate|chalk|whiteboard|board)\b",
    re.I,
)
# Before a word-like name: it is the word ("in May", "we Hope", "to Mark", "will Dawn").
_WORD_CONTEXT = re.compile(
    r"\b(?:in|of|since|until|till|during|early|late|mid|last|next|this|i|we|you|they|he|she"
    r"|it|to|can|could|may|might|must|shall|should|will|would|let|let's|please)\s+$",
    re.I,
)
_OPEN_QUOTE = re.compile(r"[\"“”«»„]|(?<!\w)['‘](?=\w)|(?<=\w)['’](?!\w)")


@dataclass(frozen=True, slots=True)
class Mention:
    kind: Kind
    clause: str  # the clause that names the person
    at: int  # where in the clause


class NameFinder:
    """Finds one configured name in prose, in NFKC and case folded, never inside a word."""

    def __init__(self, name: str, others: list[str]) -> None:
        self.name = unicodedata.normalize("NFKC", name).strip()
        body = r"\s+".join(map(re.escape, self.name.split()))
        self.word_like = self.name.casefold() in WORD_NAMES
        # No look-behind in front: the search can then skip to the name's letters; the
        # character before a hit is checked in `mentions`.
        self._pattern = re.compile(rf"{body}(?!\w)", 0 if self.word_like else re.I)
        bodies = [r"\s+".join(map(re.escape, n.split())) for n in [*others, self.name]]
        anyone = "|".join(sorted(bodies, key=len, reverse=True))
        joiner = r"(?:,|\band\b|\bor\b|\bnor\b|&|/)"
        listed_before = rf"(?:(?:the\s+)?(?:{anyone})[\s)\"'”*]*{joiner}[\s(\"'“*]*)*$"
        listed_after = rf"(?:[\s)\"'”*]*{joiner}\s*(?:the\s+)?(?:{anyone}))*"
        self._before = re.compile(rf"(?:{_BEFORE})[\s(:\"'“”*\-–—]*{listed_before}", re.I)
        self._after = re.compile(rf"{listed_after}[\s)\"'”*]*(?:[:\-–—(]\s*)?(?:{_AFTER})", re.I)

    def mentions(self, prose: str) -> Iterator[Mention]:
        """Each mention of the name with what it means, at most MAX_MENTIONS."""
        hits = 0
        for count, found in enumerate(self._pattern.finditer(prose)):
            if count >= 4 * MAX_MENTIONS or hits >= MAX_MENTIONS:
                return
            before = prose[found.start() - 1 : found.start()]
            if before.isalnum() or before == "_":
                continue  # inside a word: "MaryAlice"
            hits += 1
            clause, at = _clause(prose, found.start(), found.end())
            kind = self._kind(clause, at, at + found.end() - found.start())
            yield Mention(kind, clause, at)

    def _kind(self, clause: str, at: int, stop: int) -> Kind:
        before = clause[max(0, at - WINDOW) : at]
        after = clause[stop : stop + WINDOW]
        if self.word_like and (
            not before.strip(" \t\"'“‘(*-") or _WORD_CONTEXT.search(before[-24:])
        ):
            return "word"  # "Will you…", "Mark the time", "in May"
        if self._before.search(before) or self._after.match(after):
            return "absent"
        if _quoted(clause[max(0, at - WINDOW) : at + 1]) or _ON_SCREEN.search(before):
            return "quoted"
        if _UNSURE_BEFORE.search(before) or _UNSURE_AFTER.match(after):
            return "unsure"
        return "seen"


def _clause(prose: str, start: int, end: int) -> tuple[str, int]:
    """The clause around prose[start:end], looked for at most CLAUSE_REACH characters away,
    and where the mention is in it."""
    low = max(0, start - CLAUSE_REACH)
    before = prose[low:start]
    cuts = [m.end() for m in _CLAUSE_END.finditer(before)]
    begin = low + cuts[-1] if cuts else low
    after = prose[end : end + CLAUSE_REACH]
    stop = _CLAUSE_END.search(after)
    finish = end + stop.start() if stop else end + len(after)
    return prose[begin:finish], start - begin


def _quoted(upto: str) -> bool:
    """An odd number of quote marks before the name (`upto` ends with its first letter) in
    its clause: it is inside a quote."""
    return len(_OPEN_QUOTE.findall(upto[:-1] + (upto[-1:] and "x"))) % 2 == 1
