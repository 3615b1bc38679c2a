"""Person prompts and the parsing of results into person matches, on varied result texts."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from edged.results.matcher import (
    EVIDENCE_CHARS,
    PROSE_CONFIDENCE,
    Match,
    build_prompts,
    parse_matches,
    parse_unknown_people,
    select_present,
    summarize,
)

AB = ("Alice", "Bob")
ABC = ("Alice", "Bob", "Carol Ann")

# What the emulator answers for a clip whose title names Alice, with Alice and Bob as persons.
EMULATOR_TEXT = (
    "A person walks through the scene, pauses near the door and leaves the frame. "
    "The lighting is steady and nothing else moves. Alice appears near the door at 00:01. "
    "There is no sign of Bob.\n\n```json\n"
    '{"persons": [{"name": "Alice", "present": true, "confidence": 0.92, "timestamps": [1.0]}, '
    '{"name": "Bob", "present": false, "confidence": 0.05, "timestamps": []}]}'
    "\n```\n"
)


def block(*entries: dict[str, object], fence: str = "json") -> str:
    return f"```{fence}\n{json.dumps({'persons': list(entries)})}\n```"


def row(
    text: str, present: tuple[str, ...], absent: tuple[str, ...] = (), names: tuple[str, ...] = AB
) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return (text, names, present, absent)


ROWS = {
    # ---- JSON block ----
    "emulator-block": row(EMULATOR_TEXT, ("Alice",), ("Bob",)),
    "fenced-json": row(
        "Two people at the gate.\n"
        + block({"name": "Alice", "present": True}, {"name": "Bob", "present": False}),
        ("Alice",),
        ("Bob",),
    ),
    "fence-without-language": row(
        block({"name": "Bob", "present": True}, {"name": "Alice", "present": False}, fence=""),
        ("Bob",),
        ("Alice",),
    ),
    "json-in-prose-is-not-a-verdict": row(
        'A courier rings. {"persons": [{"name": "Bob", "present": true, "confidence": 0.8}, '
        '{"name": "Alice", "present": false}]} That is all.',
        (),
        ("Alice",),
    ),
    "json-then-prose-after": row(
        block({"name": "Alice", "present": True}, {"name": "Bob", "present": True})
        + "\n\nLet me know if you want a closer look at the second person.",
        ("Alice", "Bob"),
    ),
    "two-blocks-that-disagree-are-no-verdict": row(
        block({"name": "Alice", "present": True}, {"name": "Bob", "present": False})
        + "\nCorrection:\n"
        + block({"name": "Alice", "present": False}, {"name": "Bob", "present": True}),
        (),
    ),
    "two-blocks-that-agree": row(
        block({"name": "Alice", "present": True}, {"name": "Bob", "present": False})
        + "\nAgain:\n"
        + block(
            {"name": "Alice", "present": True, "confidence": 0.7}, {"name": "Bob", "present": False}
        ),
        ("Alice",),
        ("Bob",),
    ),
    "broken-last-block-ignored": row(
        block({"name": "Alice", "present": True}, {"name": "Bob", "present": False})
        + '\n```json\n{"persons": [{"name": "Alice", "present": false,}]}\n```',
        ("Alice",),
        ("Bob",),
    ),
    "nested-object-is-not-a-verdict": row(
        '{"result": {"summary": {"people": 2}, "persons": [{"name": "Bob", "present": true}]}}',
        (),
    ),
    "string-booleans": row(
        block({"name": "Alice", "present": "yes"}, {"name": "Bob", "present": "no"}),
        ("Alice",),
        ("Bob",),
    ),
    "string-true-false": row(
        block({"name": "Alice", "present": "false"}, {"name": "Bob", "present": "True"}),
        ("Bob",),
        ("Alice",),
    ),
    "percent-confidence": row(
        block(
            {"name": "Alice", "present": True, "confidence": "87%"},
            {"name": "Bob", "present": True, "confidence": 0.64},
        ),
        ("Alice", "Bob"),
    ),
    "confidence-on-another-scale-is-no-verdict": row(
        block(
            {"name": "Alice", "present": True, "confidence": "87%"},
            {"name": "Bob", "present": True, "confidence": 64},
        ),
        (),
    ),
    "mm-ss-timestamps": row(
        block({"name": "Bob", "present": True, "timestamps": ["00:12", "1:02:03", "12.5s"]}),
        ("Bob",),
    ),
    "names-differ-in-case-and-spacing": row(
        block({"name": "  alice ", "present": True}, {"name": "BOB", "present": False}),
        ("Alice",),
        ("Bob",),
    ),
    "unconfigured-person-ignored": row(
        block({"name": "Mallory", "present": True}, {"name": "Bob", "present": False}),
        (),
        ("Bob",),
    ),
    "block-wins-over-prose": row(
        "There is no sign of Alice at first.\n"
        + block({"name": "Alice", "present": True}, {"name": "Bob", "present": False}),
        ("Alice",),
        ("Bob",),
    ),
    "person-left-out-of-block-uses-prose": row(
        "Bob leaves through the side door at 00:30.\n" + block({"name": "Alice", "present": False}),
        ("Bob",),
        ("Alice",),
    ),
    "malformed-json-falls-back-to-text": row(
        '```json\n{"persons": [{"name": "Alice", "present": false,},]}\n```\n'
        "Bob waits at the gate.",
        ("Bob",),
    ),
    "python-dict-is-quoted-text": row(
        "{'persons': [{'name': 'Alice', 'present': True}, {'name': 'Bob', 'present': False}]}",
        (),
        ("Bob",),
    ),
    # ---- text: plain mentions ----
    "plain-mention": row("Alice walks to the car at 00:12 and drives off.", ("Alice",)),
    "both-mentioned": row("Alice and Bob talk at the door.", ("Alice", "Bob")),
    "possessive": row("Bob's van is parked; Bob unloads boxes.", ("Bob",)),
    "case-insensitive-mention": row("ALICE opens the gate. later bob follows.", ("Alice", "Bob")),
    "substrings-do-not-match": row("Bobby and Alicent chat by the fence.", ()),
    "non-english-filler": row(
        "Eine Person betritt den Raum. 一个人走进房间。 Alice ouvre la porte. Пусто.", ("Alice",)
    ),
    "multi-word-name": row(
        "Carol Ann enters at 00:05 while nobody resembling Bob is around.",
        ("Carol Ann",),
        ("Bob",),
        ABC,
    ),
    "multi-word-name-split": row("Carol walks in; Ann leaves.", (), (), ABC),
    "multi-word-name-on-two-spaces": row(
        "Carol  Ann waves at the camera.", ("Carol Ann",), (), ABC
    ),
    # ---- text: negations ----
    "no-sign-of": row("There is no sign of Alice in this clip.", (), ("Alice",)),
    "does-not-appear": row("Alice does not appear in the footage.", (), ("Alice",)),
    "is-not-present": row("Alice is not present.", (), ("Alice",)),
    "is-not-visible": row("Bob isn't visible at any point.", (), ("Bob",)),
    "is-not-seen": row("Alice was not seen by the camera.", (), ("Alice",)),
    "nobody-resembling": row("Nobody resembling Bob shows up.", (), ("Bob",)),
    "no-one-matching": row("No one matching Bob is in the video.", (), ("Bob",)),
    "was-absent": row("Alice was absent the whole time.", (), ("Alice",)),
    "neither-nor": row("Neither Alice nor Bob can be seen.", (), ("Alice", "Bob")),
    "without": row("A delivery is made without Alice.", (), ("Alice",)),
    "could-not-see": row("I could not see Alice.", (), ("Alice",)),
    "could-not-identify": row("We couldn't identify Bob.", (), ("Bob",)),
    "no-match-for": row("No match for Alice.", (), ("Alice",)),
    "none-of-the-reference-persons": row(
        "None of the reference persons (Alice, Bob) appear.", (), ("Alice", "Bob")
    ),
    "list-then-does-not-appear": row("Alice and Bob do not appear.", (), ("Alice", "Bob")),
    "cannot-be-seen": row("Bob cannot be seen anywhere.", (), ("Bob",)),
    "does-not-seem-to-be-here": row("Alice doesn't seem to be here.", (), ("Alice",)),
    "nowhere-to-be-seen": row("Bob is nowhere to be seen.", (), ("Bob",)),
    # ---- text: mixed ----
    "mixed-semicolon": row("Alice enters; there is no sign of Bob.", ("Alice",), ("Bob",)),
    "mixed-but-not": row("I can see Alice, but not Bob.", ("Alice",), ("Bob",)),
    "mixed-elliptical": row("Bob is seen, but Alice is not.", ("Bob",), ("Alice",)),
    "mixed-negated-then-present": row(
        "No sign of Alice at first, but Alice enters at 00:40.", ("Alice",)
    ),
    "present-absent-labels": row("Present: Alice. Absent: Bob.", ("Alice",), ("Bob",)),
    "markdown-list": row(
        "**Reference persons**\n- Alice: not present\n- Bob: present at 01:05",
        ("Bob",),
        ("Alice",),
    ),
    "negation-is-about-something-else": row(
        "Alice is not wearing a hat. Bob does not leave the porch.", ("Alice", "Bob")
    ),
    # ---- no verdict ----
    "empty": row("", ()),
    "whitespace-only": row(" \n\t ", ()),
    "no-names": row("A cat crosses the yard at 00:03.", ()),
    "binary-ish": row('\x00\x01\xff\ufffd{["persons":\x00', ()),
}


@pytest.mark.parametrize(("text", "names", "present", "absent"), ROWS.values(), ids=ROWS.keys())
def test_parse_matches_finds_who_is_present(
    text: str, names: tuple[str, ...], present: tuple[str, ...], absent: tuple[str, ...]
) -> None:
    matches = parse_matches(text, names)
    assert [m.person for m in matches if m.present] == list(present)
    assert [m.person for m in matches if not m.present] == list(absent)
    for match in matches:
        assert 0.0 <= match.confidence <= 1.0
        assert len(match.evidence) <= EVIDENCE_CHARS


def alice(present: bool, **fields: object) -> str:
    return block({"name": "Alice", "present": present, **fields})


DETAILS = {
    "emulator": (EMULATOR_TEXT, "Alice", True, 0.92, (1.0,), "json"),
    "emulator-absent": (EMULATOR_TEXT, "Bob", False, 0.05, (), "json"),
    "percent-string": (alice(True, confidence="87%"), "Alice", True, 0.87, (), "json"),
    "percent-fraction-string": (alice(True, confidence="0.5"), "Alice", True, 0.5, (), "json"),
    "missing-confidence-present": (alice(True), "Alice", True, 0.9, (), "json"),
    "missing-confidence-absent": (alice(False), "Alice", False, 0.0, (), "json"),
    "timestamp-forms": (
        block({"name": "Bob", "present": "yes", "timestamps": ["00:12", "1:02:03", "12.5s", 4]}),
        "Bob",
        True,
        0.9,
        (4.0, 12.0, 12.5, 3723.0),
        "json",
    ),
    "text-timestamps": (
        "Bob enters at 00:12, returns at 1:02:03 and waves at 7s.",
        "Bob",
        True,
        PROSE_CONFIDENCE,
        (7.0, 12.0, 3723.0),
        "text",
    ),
    "text-absent": ("There is no sign of Bob at 00:12.", "Bob", False, 0.0, (), "text"),
}


@pytest.mark.parametrize(
    ("text", "person", "present", "confidence", "timestamps", "source"),
    DETAILS.values(),
    ids=DETAILS.keys(),
)
def test_parse_matches_values(
    text: str,
    person: str,
    present: bool,
    confidence: float,
    timestamps: tuple[float, ...],
    source: str,
) -> None:
    (match,) = [m for m in parse_matches(text, AB) if m.person == person]
    assert match.present is present
    assert match.confidence == pytest.approx(confidence)
    assert match.timestamps == pytest.approx(timestamps)
    assert match.source == source
    assert match.evidence


def test_parse_matches_keeps_configured_order_and_spelling() -> None:
    text = block({"name": "bob", "present": True}, {"name": "alice", "present": True})
    assert [m.person for m in parse_matches(text, ["ALICE", "Bob"])] == ["ALICE", "Bob"]


def test_parse_matches_evidence_is_short() -> None:
    text = "Alice " + "walks slowly around the parked cars near the gate " * 20 + "at 00:12."
    (match,) = parse_matches(text, AB)
    assert 0 < len(match.evidence) <= EVIDENCE_CHARS
    assert match.evidence.startswith("Alice walks")


HOSTILE = {
    "open-braces": "{" * 100_000,
    "deep-brackets": '{"persons": ' + "[" * 50_000,
    "many-persons-keys": '{"persons": [' * 5_000,
    "backticks": "```" * 10_000,
    "many-negated-mentions": "no sign of Alice " * 10_000,
    "many-mentions-then-block": "Alice " * 40_000 + block({"name": "Alice", "present": True}),
    "huge-int": '{"persons": [{"name": "Alice", "present": true, "confidence": 1'
    + "0" * 5000
    + "}]}",
    "odd-values": '{"persons": [{"name": "Alice", "present": 1, "confidence": NaN, "timestamps": '
    '[Infinity, -1, "99:99", null, {"start": "00:10"}, [1]]}]}',
    "odd-entries": '{"persons": [{"name": null}, "Alice", 3, {"present": true}, '
    '{"name": ["Bob"]}]}',
    "control-chars": "".join(map(chr, range(1, 2000))),
    "lone-surrogate": "Alice \ud800 enters",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_parse_matches_survives_hostile_input(text: str) -> None:
    for match in parse_matches(text, AB):
        assert match.person in AB
        assert 0.0 <= match.confidence <= 1.0
        assert all(t >= 0 for t in match.timestamps)
    summarize(text)
    parse_unknown_people(text)


def test_parse_matches_without_persons_is_empty() -> None:
    assert parse_matches(EMULATOR_TEXT, []) == []
    assert parse_matches(EMULATOR_TEXT, ["", "  "]) == []


# ---- build_prompts ------------------------------------------------------------------------


def _requested_block(prompt: str) -> dict[str, object]:
    found = re.search(r"```json\n(.*?)\n```", prompt, re.S)
    assert found, prompt
    parsed = json.loads(found.group(1))
    assert isinstance(parsed, dict)
    return parsed


def test_build_prompts_unchanged_without_persons() -> None:
    assert build_prompts("Describe.", "You are an analyst.", []) == (
        "Describe.",
        "You are an analyst.",
    )
    assert build_prompts("Describe.", "Sys.", [], ask_unknown=True) == ("Describe.", "Sys.")


def test_build_prompts_asks_for_a_block_listing_every_person() -> None:
    names = ["Alice", "Bob", "Carol Ann", 'Dr. "Q"']
    user, system = build_prompts("Describe what happens.", "You are an analyst.", names)
    assert system == "You are an analyst."
    assert user.startswith("Describe what happens.\n\n")
    requested = _requested_block(user)
    persons = requested["persons"]
    assert isinstance(persons, list)
    assert [p["name"] for p in persons] == names
    for person in persons:
        assert set(person) == {"name", "present", "confidence", "timestamps"}
    assert "unknown_people" not in user


def test_build_prompts_asks_for_unknown_people() -> None:
    user, _ = build_prompts("Describe.", "Sys.", AB, ask_unknown=True)
    assert _requested_block(user)["unknown_people"] == 0
    assert "match none of the reference persons" in user


def test_build_prompts_with_empty_user_prompt() -> None:
    user, _ = build_prompts("", "Sys.", AB)
    assert user.startswith("Reference persons:")


def test_requested_shape_is_what_parse_matches_reads() -> None:
    user, _ = build_prompts("Describe.", "Sys.", ABC)
    example = json.dumps(_requested_block(user))
    matches = parse_matches(f"A quiet yard.\n```json\n{example}\n```", ABC)
    assert [(m.person, m.source) for m in matches] == [(n, "json") for n in ABC]


# ---- select_present -----------------------------------------------------------------------


def _match(person: str, present: bool, confidence: float) -> Match:
    return Match(person, present, confidence, (), "json", "")


@pytest.mark.parametrize(
    ("min_confidence", "expected"),
    [
        (0.0, ["a", "b", "c", "d"]),
        (0.3, ["b", "c", "d"]),
        (0.31, ["b", "d"]),
        (0.5, ["b", "d"]),
        (1.0, ["d"]),
        (1.01, []),
    ],
)
def test_select_present_boundaries(min_confidence: float, expected: list[str]) -> None:
    matches = [
        _match("a", True, 0.0),
        _match("b", True, 0.5),
        _match("c", True, PROSE_CONFIDENCE),
        _match("d", True, 1.0),
        _match("absent", False, 1.0),
    ]
    assert [m.person for m in select_present(matches, min_confidence)] == expected


def test_select_present_on_parsed_text() -> None:
    present = select_present(parse_matches(EMULATOR_TEXT, AB), 0.5)
    assert [m.person for m in present] == ["Alice"]


def test_match_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _match("a", True, 1.0).present = False  # type: ignore[misc]


# ---- summarize ----------------------------------------------------------------------------


def test_summarize_removes_the_block() -> None:
    summary = summarize(EMULATOR_TEXT)
    assert "persons" not in summary and "```" not in summary and "{" not in summary
    assert summary.endswith("There is no sign of Bob.")
    assert "  " not in summary


def test_summarize_of_a_bare_verdict_is_empty() -> None:
    assert summarize('  {"persons": [{"name": "Bob", "present": true}]}\n') == ""


def test_summarize_removes_an_unclosed_fence_marker() -> None:
    text = 'A van stops.\n```json\n{"persons": []}'
    assert summarize(text) == "A van stops."


def test_summarize_truncates_on_a_word_boundary() -> None:
    text = "The courier walks up the path and rings the doorbell twice before leaving."
    summary = summarize(text, limit=30)
    assert len(summary) <= 30
    assert summary == "The courier walks up the path…"
    assert summarize(text, limit=len(text)) == text


def test_summarize_cuts_one_long_word() -> None:
    summary = summarize("x" * 500, limit=20)
    assert summary == "x" * 19 + "…"


def test_summarize_of_only_a_block_is_empty() -> None:
    assert summarize(block({"name": "Alice", "present": True})) == ""
    assert summarize("") == ""


# ---- unknown people -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"persons": [], "unknown_people": 2}\n```', 2),
        ('{"persons": [], "unknown_people": "3"}', 3),
        ('{"persons": [], "unknown_people": -1}', None),
        ('{"persons": [], "unknown_people": 1.5}', None),
        ('{"persons": []}', None),
        ("two strangers", None),
    ],
)
def test_parse_unknown_people(text: str, expected: int | None) -> None:
    assert parse_unknown_people(text) == expected
