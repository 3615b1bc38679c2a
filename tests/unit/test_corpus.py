"""Every text of the result corpus gives the matches it must; the generated hostile texts too,
each read in bounded time."""

from __future__ import annotations

import time
import unicodedata

import pytest

from edged.results.matcher import read_result, select_present
from tests.support.corpus import Case, generated, load

CORPUS = load()
GENERATED = generated()
#: Generous for a loaded test machine; bench/parse_worst.py measures the real figure.
SLOW_S = 1.0


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def check(case: Case) -> float:
    started = time.perf_counter()
    reading = read_result(case.text, case.names)
    took = time.perf_counter() - started
    # Configured names come back as configured; NFC compares them with the corpus's.
    alerting = [nfc(m.person) for m in select_present(reading.matches, 0.5)]
    present = [nfc(m.person) for m in reading.matches if m.present]
    assert (reading.status, reading.problem is not None) == (
        case.verdict,
        case.verdict == "invalid" or case.verdict == "conflict",
    ), reading.problem
    assert alerting == list(case.alerts)
    assert present == list(case.present)
    if case.title is not None:
        assert reading.title == case.title
    if case.threat_level is not None:
        assert reading.threat_level == case.threat_level
    for match in reading.matches:
        assert 0.0 <= match.confidence <= 1.0
        assert match.evidence.isprintable()
        if match.source == "text":
            assert match.confidence < 0.5  # prose never alerts at the default threshold
    assert reading.summary.isprintable()
    assert reading.title is None or reading.title.isprintable()
    return took


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    assert len(CORPUS) + len(GENERATED) >= 80
    assert {case.verdict for case in CORPUS} == {"ok", "missing", "invalid", "conflict"}
    assert sum(len(case.text) > 200_000 for case in GENERATED) >= 4


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_corpus(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", GENERATED, ids=[case.id for case in GENERATED])
def test_generated_hostile_texts(case: Case) -> None:
    assert check(case) < SLOW_S
