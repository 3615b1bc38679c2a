"""A clip's timings are the steps of `reports.CLIP_STEPS`: one definition of the columns."""

from __future__ import annotations

from dataclasses import fields

from edged.ledger.reports import CLIP_STEPS
from edged.ledger.results import ClipTimings


def test_clip_timings_has_a_field_for_each_step_column_in_order() -> None:
    assert [f.name for f in fields(ClipTimings)] == [column for column, _ in CLIP_STEPS]
