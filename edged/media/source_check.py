"""Is the file at a clip's path still the recording that was queued?

An NVR may replace a recording after edged queued it (rewritten in place, or another file
renamed over it). The new file is queued as a clip of its own by the folder source; sending it
under the old clip too would upload it twice, with the old clip's size and times. Checked on
the open file that is then uploaded, so nothing can change between the check and the upload.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from edged.clip import Clip

#: Bytes hashed at each end of a file for its fingerprint (the folder source's too).
FINGERPRINT_BYTES = 64 * 1024


def fingerprint_of(fd: int, size: int) -> str:
    """Blocking: a hash of the size and the first and last 64 KiB, read without moving the
    file position (the upload reads from the start)."""
    digest = hashlib.sha256(str(size).encode())
    digest.update(os.pread(fd, FINGERPRINT_BYTES, 0))
    # The last 64 KiB; in a file under 128 KiB, what follows the first 64 KiB.
    tail_at = size - FINGERPRINT_BYTES if size > 2 * FINGERPRINT_BYTES else FINGERPRINT_BYTES
    digest.update(os.pread(fd, FINGERPRINT_BYTES, tail_at))
    return digest.hexdigest()[:32]


def changed_since_queued(clip: Clip, fd: int) -> str | None:
    """Blocking: None when the open file is the clip's recording, else what differs. Only
    recordings of NVR folders (those with a fingerprint) are checked: edged's own RTSP clips
    and files given to `edged upload` change in no one else's hands."""
    if clip.fingerprint is None:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return "source changed since it was queued: no longer a regular file"
    opened = _opened_path(fd)
    if opened is not None and opened != _real_parent(clip.path):
        # A symbolic link put in its place: the descriptor names another file.
        return f"source changed since it was queued: the path now leads to {opened}"
    size = st.st_size
    if size != clip.size:
        return f"source changed since it was queued: {clip.size} bytes then, {size} now"
    if fingerprint_of(fd, size) != clip.fingerprint:
        return "source changed since it was queued: same size, other content"
    return None


def _opened_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _real_parent(path: Path) -> str:
    """The path with its folder resolved but not its last part (which must not be a link)."""
    return os.path.join(os.path.realpath(path.parent), path.name)
