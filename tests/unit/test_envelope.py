"""Answers and callbacks of odd shapes: read by what they say, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from edged.ledger.results import Tokens
from edged.upload.envelope import MAX_TOKENS, parse_envelope


@pytest.mark.parametrize(
    ("body", "ok", "code"),
    [
        ({"status": 0, "task_id": "t", "data": {"text": "x"}}, True, "0"),
        ({"status": "0"}, True, "0"),
        ({"status": -1, "task_id": "t", "data": {}}, False, "-1"),
        ({"code": "0000", "status": -1}, False, "-1"),
        ({"code": "0402", "status": -1}, False, "0402"),
        ({"code": 200, "status": 200}, True, "200"),
        ({"code": "0000", "status": "0000"}, True, "0000"),
        ({"code": 0, "status": "success"}, True, "0"),
        ({"success": True, "status": "ok"}, True, "ok"),
        ({"success": True, "code": "0402"}, False, "0402"),
        ({"success": True}, True, None),
        ({"code": "0000", "success": False, "failed": True}, False, "0000"),
        ({"code": 0, "data": {"data": {"text": "x"}, "success": False}}, False, "0"),
    ],
)
def test_success_and_failure_by_what_the_body_says(body: dict[str, Any], ok: bool, code: str):
    envelope = parse_envelope(body)
    assert (envelope.ok, envelope.code) == (ok, code), body


@pytest.mark.parametrize(
    "odd",
    [
        {"code": 0, "msg": {"en": "success"}, "data": {"task_id": "t"}},
        {"status": 0, "message": ["SUCCESS"], "data": {"text": "x"}},
        {"code": [0], "msg": 5, "data": [1], "task_id": {"x": 1}, "text": ["a"]},
        {"code": float("nan"), "status": float("inf"), "token": {"total": "9"}},
        {"data": {"data": "\ud800 text", "token": {"input": -1, "output": 2**60}}},
    ],
)
def test_odd_shapes_never_raise_and_keep_only_text(odd: dict[str, Any]):
    envelope = parse_envelope(odd)
    assert isinstance(envelope.msg, str)
    assert envelope.task_id is None or isinstance(envelope.task_id, str)
    assert envelope.text is None or "\ud800" not in envelope.text
    counts = envelope.tokens.input, envelope.tokens.output, envelope.tokens.total
    assert all(v is None or 0 <= v < MAX_TOKENS for v in counts)


def test_absurd_token_counts_are_not_believed():
    """A count that could overflow the ledger's sums (and stop edged) is taken as unknown."""
    tokens = {"input": 2**53 - 1, "output": 12, "total": 1e300}
    assert parse_envelope({"code": 0, "token": tokens}).tokens == Tokens(
        input=None, output=12, total=None
    )
