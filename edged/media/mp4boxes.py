"""A cheap completeness check for MP4/MOV files: the top-level boxes must tile the file.

FFmpeg opens an MP4 whose index (`moov`) is cut short and reports a duration, so
"PyAV opens it" alone would let a file still being written pass as finished. Walking
the top-level box headers (a few reads, whatever the size) catches that.

A box of size 0 extends to the end of the file (ISO/IEC 14496-12, 4.2); only the last box may
be one. Recorders write `mdat` that way while recording and fill in its size at the end, so
such a file counts as complete only when it has settled (not changed for `settle`) and has
its index (`moov`) anyway: then nothing is still being written into it.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_TOP_LEVEL_HINTS = {b"ftyp", b"styp"}


def looks_like_mp4(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] in _TOP_LEVEL_HINTS


def mp4_incomplete_reason(handle: BinaryIO, size: int, *, settled: bool = True) -> str | None:
    """None when the top-level boxes end exactly at `size` and include a `moov`; otherwise
    why the file is not (yet) a complete MP4. A last box of size 0 is accepted only when the
    file is `settled`. Blocking."""
    offset = 0
    seen_moov = False
    while offset < size:
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            return f"truncated box header at byte {offset}"
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 1:
            if len(header) < 16:
                return f"truncated box header at byte {offset}"
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:
            if not settled:
                return (
                    f"box {box_type!r} at byte {offset} has no size yet (still being written,"
                    " or extends to the end of the file: decided once the file settles)"
                )
            box_size = size - offset  # to the end of the file: the last box
        if box_size < 8:
            return f"invalid box size {box_size} at byte {offset}"
        if box_type == b"moov":
            seen_moov = True
        offset += box_size
    if offset != size:
        return f"last box ends at byte {offset}, after the end of the file ({size} bytes)"
    if not seen_moov:
        return "no moov box (the index is written last: the recording is not finished)"
    return None
