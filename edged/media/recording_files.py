"""A queued recording's file, opened again for more work on it (the activity gate, an event
clip) with the same care as the upload: a regular file, not a link or a FIFO put in its place
(edged/media/regular_files.py), still the recording the ledger has (size and fingerprint,
edged/media/source_check.py), read by FFmpeg only as one of the video containers cameras and
NVRs write (no playlist that names other files)."""

from __future__ import annotations

import os
from typing import BinaryIO

from edged.clip import Clip
from edged.errors import EdgedError
from edged.media.probe import VIDEO_CONTAINERS
from edged.media.regular_files import NotRegularFile, open_regular
from edged.media.source_check import changed_since_queued

#: For av.open: the containers FFmpeg may take the file for, and nothing else.
FORMAT_OPTIONS = {"format_whitelist": ",".join(sorted(VIDEO_CONTAINERS))}


class RecordingChanged(EdgedError):
    """The file is no longer the recording that was queued; the message says how."""


def open_recording(clip: Clip) -> BinaryIO:
    """Blocking. The caller closes the returned file."""
    try:
        fd, _ = open_regular(clip.path)
    except NotRegularFile as exc:
        raise RecordingChanged(f"{clip.path.name}: {exc}") from None
    handle = os.fdopen(fd, "rb")
    try:
        reason = changed_since_queued(clip, fd)
        if reason is not None:
            raise RecordingChanged(f"{clip.path.name}: {reason}")
    except BaseException:
        handle.close()
        raise
    return handle


def is_video_container(format_name: str) -> bool:
    return bool(set(format_name.split(",")) & VIDEO_CONTAINERS)
