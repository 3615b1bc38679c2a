"""The alert body is read once from the outbox's text, and written back the same."""

from __future__ import annotations

import json

import pytest

from edged.alert_body import AlertBody, ClipRef, Snapshot
from edged.ledger.outbox import Alert

BODY = AlertBody(
    alert_id="al_1",
    person="Alice",
    confidence=0.913,
    camera="porch",
    clip=ClipRef(1, "2024-01-01T00:00:00Z", None, None, "a.mp4", "/nvr/a.mp4"),
    moment_s=1.5,
    timestamps=(1.5, 2),
    seen_at="2024-01-01T00:00:01.500000Z",
    summary="Alice at the gate.",
    title=None,
    threat_level=0,
    snapshot=Snapshot("porch/al_1.jpg", 320, 180, 1.5),
    instance="box",
    created_at="2024-01-01T00:01:00Z",
)


def test_the_stored_text_reads_back_to_the_same_body_and_the_same_text():
    text = BODY.to_json()
    assert AlertBody.from_json(text) == BODY
    assert AlertBody.from_json(text).to_json() == text


def test_rendered_replaces_only_the_snapshot():
    stored, shown = json.loads(BODY.to_json()), json.loads(BODY.rendered({"topic": "t"}))
    assert shown.pop("snapshot") == {"topic": "t"}
    assert stored.pop("snapshot") is not None
    assert shown == stored


def test_an_alert_whose_text_is_no_body_fails_when_its_body_is_read():
    alert = Alert("al_1", "log", 1, "porch", "Alice", 0.9, 0.0, "{", 0, 0.0)
    with pytest.raises(ValueError):
        _ = alert.body
    with pytest.raises(ValueError):
        _ = Alert("al_1", "log", 1, "porch", "Alice", 0.9, 0.0, "[]", 0, 0.0).body
