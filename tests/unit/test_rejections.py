"""Turned-away requests are counted, and the log is bounded however many addresses send."""

from __future__ import annotations

import logging

import pytest

from edged.results.rejections import FIRST_LINES_PER_MINUTE, Rejections


def test_three_thousand_addresses_write_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
):
    now = [0.0]
    counted: list[str] = []
    rejections = Rejections(on_count=counted.append, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="edged.results.rejections")
    for _round in range(2):
        for number in range(3000):
            rejections.reject(f"10.{number // 250}.{number % 250}.1", "unknown_clip_or_token")
        now[0] += 1
    assert len(counted) == 6000 and rejections.counts["unknown_clip_or_token"] == 6000
    assert len(caplog.records) == FIRST_LINES_PER_MINUTE
    now[0] += 61  # the next minute: one summary line for the addresses not named
    rejections.reject("192.0.2.1", "method")
    lines = [record.getMessage() for record in caplog.records]
    assert any("from 2990 more addresses" in line for line in lines), lines[-2:]
    assert len(lines) == FIRST_LINES_PER_MINUTE + 2


def test_one_address_gets_a_line_then_one_a_minute_with_its_count(
    caplog: pytest.LogCaptureFixture,
):
    now = [0.0]
    rejections = Rejections(clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="edged.results.rejections")
    for _ in range(300):
        rejections.reject("192.0.2.7", "unknown_clip_or_token")
    assert len(caplog.records) == 1
    now[0] += 60
    rejections.reject("192.0.2.7", "malformed_url")
    assert len(caplog.records) == 2
    assert "300 more requests" in caplog.records[-1].getMessage()
