"""Activity on the box: which seconds of a camera's video have something moving in them.

A building block with no dependency on the rest of edged (only the standard library, numpy and
PyAV): zones and masks (`zones`), the frame-difference detector (`detector`) and the clip
examiner (`examine`). Nothing in the daemon uses it yet.
"""

from edged.activity.detector import Detector, Sample, Second, Settings, per_second
from edged.activity.examine import (
    DEFAULT_WIDTH,
    ClipActivity,
    Decode,
    ExamineError,
    Stopped,
    examine_file,
    examine_frames,
)
from edged.activity.zones import ActivityError, Polygon, Region

__all__ = [
    "DEFAULT_WIDTH",
    "ActivityError",
    "ClipActivity",
    "Decode",
    "Detector",
    "ExamineError",
    "Polygon",
    "Region",
    "Sample",
    "Second",
    "Settings",
    "Stopped",
    "examine_file",
    "examine_frames",
    "per_second",
]
