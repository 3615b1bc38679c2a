"""Log formatting: secrets redacted by the formatter, JSON lines, repeats held back."""

from __future__ import annotations

import json
import logging
import sys
import threading

import pytest

from edged import logs
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


def test_secrets_of_any_length_and_their_url_forms_are_redacted() -> None:
    assert Redactor(["ab"])("a cab") == "a c***"
    assert Redactor(["p@ss w/rd"])("rtsp said p%40ss%20w%2Frd and p@ss w/rd") == (
        "rtsp said *** and ***"
    )
    assert Redactor(["p%40ss"])("decoded p@ss") == "decoded ***"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:pa/ss@10.0.0.5/s1 down", "rtsp://admin:***@10.0.0.5/s1 down"),
        ("rtsp://admin:p@ss@10.0.0.5/s1", "rtsp://admin:***@10.0.0.5/s1"),
        ("rtsp://tok@10.0.0.5/s1", "rtsp://***@10.0.0.5/s1"),
        (
            "open 'rtsp://admin:pa ss@10.0.0.5/s1' failed",
            "open 'rtsp://admin:***@10.0.0.5/s1' failed",
        ),
        ('"http://u:a b/c@d@host:80/x"', '"http://u:***@host:80/x"'),
        ("no url here @ all", "no url here @ all"),
    ],
)
def test_url_userinfo_is_redacted_structurally_without_knowing_the_secret(
    text: str, shown: str
) -> None:
    assert Redactor()(text) == shown


def test_configured_secrets_reach_every_redactor(capsys: pytest.CaptureFixture[str]) -> None:
    made_before = Redactor()
    try:
        logs.configure(secrets=["x1"])
        assert made_before("a x1 b") == "a *** b"
        assert Redactor(["other"])("x1 other") == "*** ***"
        assert logs.redact("reason: x1") == "reason: ***"
    finally:
        logs.configure()
    assert Redactor()("x1") == "x1"


def test_control_characters_are_escaped_in_text_and_json() -> None:
    line = record(
        "camera=%s said %s", "ya\x1b[31mrd", "ok\n2026-01-01 00:00:00,000 ERROR edged: forged"
    )
    text = RedactingFormatter(Redactor()).format(line)
    assert "\n" not in text and "\x1b" not in text
    assert "ya\\x1b[31mrd" in text and "ok\\n2026" in text
    parsed = json.loads(RedactingFormatter(Redactor(), json_lines=True).format(line))
    assert (
        parsed["message"]
        == "camera=ya\\x1b[31mrd said ok\\n2026-01-01 00:00:00,000 ERROR edged: forged"
    )
    for bidi in ("\u202e", "\u2028", "\x00", "\x7f", "\x9b"):
        assert bidi not in RedactingFormatter(Redactor()).format(record("%s", f"a{bidi}b"))


def test_a_traceback_keeps_its_lines_indented_and_redacted() -> None:
    try:
        raise RuntimeError("rtsp://admin:pa/ss@cam failed\n2026-01-01 ERROR edged: forged")
    except RuntimeError:
        line = record("crash")
        line.exc_info = sys.exc_info()
    text = RedactingFormatter(Redactor()).format(line)
    first, *rest = text.splitlines()
    assert first.endswith("edged.test: crash") and rest
    assert all(part.startswith("    ") for part in rest)
    assert "pa/ss" not in text
    entry = json.loads(RedactingFormatter(Redactor(), json_lines=True).format(line))
    assert "pa/ss" not in entry["exception"] and "RuntimeError" in entry["exception"]


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


def test_lines_naming_another_clip_file_or_alert_are_never_folded() -> None:
    now = [0.0]
    repeat = RepeatFilter(window_s=60, clock=lambda: now[0])
    clip_failed = "clip failed camera=%s clip=%s: %s"
    assert repeat.filter(record(clip_failed, "yard", 1, "bad"))
    assert repeat.filter(record(clip_failed, "yard", 2, "bad")), "another clip"
    assert not repeat.filter(record(clip_failed, "yard", 2, "bad")), "the same clip again"
    skipping = "skipping camera=%s file=%s: not a complete video after %.0fs unchanged: %s"
    assert repeat.filter(record(skipping, "yard", "/nvr/a.mp4", 5.0, "x"))
    assert repeat.filter(record(skipping, "yard", "/nvr/b.mp4", 5.0, "x")), "another file"
    unreachable = "camera=%s unreachable: %s"  # names no clip: still folded
    assert repeat.filter(record(unreachable, "yard", "a"))
    assert not repeat.filter(record(unreachable, "yard", "b"))


def test_alert_lines_of_the_log_sink_are_never_held_back() -> None:
    repeat = RepeatFilter(window_s=60, clock=lambda: 0.0)
    alert = "ALERT person=%s camera=%s confidence=%.2f clip=%s at=%s alert_id=%s snapshot=%s: %s"
    for camera, clip in (("front", 1), ("back", 2), ("front", 1)):
        line = logging.LogRecord(
            "edged.alert", logging.WARNING, __file__, 1, alert,
            ("Alice", camera, 0.9, clip, "t", "id", "none", "s"), None,
        )  # fmt: skip
        assert repeat.filter(line)


def test_a_crashing_thread_is_logged_by_the_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    before = threading.excepthook, sys.excepthook
    try:
        logs.configure(json_lines=True, secrets=["x9-secret"])

        def crash() -> None:
            raise RuntimeError("the key x9-secret\nforged line")

        worker = threading.Thread(target=crash, name="worker")
        worker.start()
        worker.join()
        err = capsys.readouterr().err
    finally:
        threading.excepthook, sys.excepthook = before
        logs.configure()
    (entry,) = [json.loads(line) for line in err.splitlines()]
    assert entry["level"] == "critical" and entry["message"] == "thread worker crashed"
    assert "RuntimeError" in entry["exception"] and "x9-secret" not in err
