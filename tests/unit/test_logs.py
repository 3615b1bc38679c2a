"""Log formatting: secrets redacted by the formatter, JSON lines, repeats held back."""

from __future__ import annotations

import json
import logging

from edged.logs import RedactingFormatter, Redactor, RepeatFilter


def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("edged.test", level, __file__, 1, msg, args, None)


def test_secrets_and_url_passwords_are_redacted_in_text_and_json() -> None:
    redactor = Redactor(["sk-live-123456", "hook-secret"])
    line = record(
        "connect %s with key %s and %s",
        "rtsp://admin:hunter2@10.0.0.5/s1",
        "sk-live-123456",
        "https://u:p%40ss@host/x?secret=hook-secret",
    )
    for formatter in (RedactingFormatter(redactor), RedactingFormatter(redactor, json_lines=True)):
        text = formatter.format(line)
        assert "hunter2" not in text and "sk-live-123456" not in text
        assert "p%40ss" not in text and "hook-secret" not in text
        assert "rtsp://admin:***@10.0.0.5/s1" in text
    parsed = json.loads(RedactingFormatter(redactor, json_lines=True).format(line))
    assert parsed["level"] == "warning" and parsed["logger"] == "edged.test"


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["ab"])("a cab") == "a cab"


def test_repeats_are_held_back_and_counted_per_camera() -> None:
    now = [0.0]
    repeat = RepeatFilter(window_s=60, clock=lambda: now[0])
    template = "camera=%s unreachable: %s"
    assert repeat.filter(record(template, "yard", "timeout"))
    assert repeat.filter(record(template, "gate", "timeout")), "another camera is not a repeat"
    held = [repeat.filter(record(template, "yard", f"try {n}")) for n in range(50)]
    assert not any(held)
    now[0] = 61
    after = record(template, "yard", "timeout")
    assert repeat.filter(after)
    assert "and 50 similar in the last 60s" in after.getMessage()
    assert repeat.filter(record("info lines pass", level=logging.INFO))
    assert repeat.filter(record("info lines pass", level=logging.INFO))
