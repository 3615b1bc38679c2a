"""The result corpus (tests/corpus/results.yaml) and the generated hostile texts, shared by the
unit test of the matcher and the end-to-end tests through the emulator and `edged run`."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edged.results.verdict import MAX_TEXT_CHARS

#: The corpus itself: data, beside the tests that read it.
CORPUS_FILE = Path(__file__).resolve().parents[1] / "corpus" / "results.yaml"
AB = ("Alice", "Bob")


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    names: tuple[str, ...] = AB
    alerts: tuple[str, ...] = ()
    seen: tuple[str, ...] | None = None  # None: the same as alerts
    verdict: str = "ok"
    title: str | None = None
    threat_level: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def present(self) -> tuple[str, ...]:
        return self.alerts if self.seen is None else self.seen


def load() -> list[Case]:
    raw = yaml.safe_load(CORPUS_FILE.read_text(encoding="utf-8"))
    cases = []
    for item in raw:
        text, names = item["text"], tuple(item.get("names", AB))
        if item.get("nfd") == "text":
            text = unicodedata.normalize("NFD", text)
        if item.get("nfd") == "names":
            names = tuple(unicodedata.normalize("NFD", n) for n in names)
        cases.append(
            Case(
                id=item["id"],
                text=text,
                names=names,
                alerts=tuple(item.get("alerts", ())),
                seen=tuple(item["seen"]) if "seen" in item else None,
                verdict=item["verdict"],
                title=item.get("title"),
                threat_level=item.get("threat_level"),
            )
        )
    return cases


def verdict_block(*present: str, names: tuple[str, ...] = AB, **extra: object) -> str:
    persons = [
        {"name": n, "present": n in present, "confidence": 0.9 if n in present else 0.0}
        for n in names
    ]
    return "```json\n" + json.dumps({"persons": persons, **extra}) + "\n```\n"


FILLER = "The camera shows a quiet street; leaves move in the wind and a car passes. "


def generated() -> list[Case]:
    """Texts at and beyond the cap, and shapes meant to make a parser slow or wrong."""
    cap = MAX_TEXT_CHARS
    alice = verdict_block("Alice", title="Alice at the gate", threat_level=0)
    pair = verdict_block("Bob") + verdict_block("Alice")
    long_filler = FILLER * (cap // len(FILLER) + 200)  # more than the cap on its own
    cases = [
        Case("huge-prose-then-verdict", long_filler + alice, alerts=("Alice",)),
        Case(
            "huge-verdict-first-is-cut-off",
            verdict_block("Bob") + long_filler,
            verdict="missing",
        ),
        Case(
            "unclosed-fence-then-long-line",
            "```json " + "a" * cap + "\n" + alice,
            alerts=("Alice",),
        ),
        Case("unclosed-fence-at-cap", "Alice waves.\n```json\n" + "x" * cap, verdict="missing"),
        Case("brace-tower", "{" * cap, verdict="missing"),
        Case(
            "brace-tower-in-fence", "```json\n" + "{" * cap + "\n```\n" + alice, alerts=("Alice",)
        ),
        Case("bracket-tower", '{"persons": ' + "[" * cap, verdict="missing"),
        Case(
            "thousands-of-persons-keys",
            '{"persons": [' * 12_000 + "\n" + alice,
            alerts=("Alice",),
        ),
        Case(
            "thousands-of-persons-entries",
            "```json\n"
            + json.dumps({"persons": [{"name": f"p{i}", "present": True} for i in range(5000)]})
            + "\n```\n",
            verdict="invalid",
        ),
        Case(
            "thousands-of-verdict-blocks-that-disagree",
            pair * (cap // len(pair)),
            verdict="conflict",
        ),
        Case("thousands-of-empty-fences", "```\n" * (cap // 4) + alice, alerts=("Alice",)),
        Case("backtick-runs", "`" * cap + "\n" + alice, alerts=("Alice",)),
        Case(
            "many-mentions",
            "Alice " * (cap // 6) + "\n" + verdict_block(),
            verdict="ok",
        ),
        Case("many-negated-mentions", "no sign of Bob. " * (cap // 16), verdict="missing"),
        Case(
            "huge-number",
            '```json\n{"persons": [{"name": "Alice", "present": true, "confidence": 1'
            + "0" * 5000
            + "}]}\n```",
            verdict="invalid",
        ),
        Case(
            "nul-and-escapes-in-title-and-prose",
            "Alice\x00 at the door \x1b[31mred\x1b[0m \x07\n"
            + verdict_block("Alice", title="Gate\x00\x1b]0;owned\x07 opened\r\nrm -rf /"),
            alerts=("Alice",),
            title="Gate ]0;owned opened rm -rf /",
        ),
        Case("control-characters", "".join(map(chr, range(0, 2000))), verdict="missing"),
        Case("lone-surrogates", "Alice \ud800 enters \udfff" + alice, alerts=("Alice",)),
    ]
    return cases
