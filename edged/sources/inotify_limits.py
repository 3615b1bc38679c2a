"""What the folder cameras ask of inotify, against the kernel's limits (`edged check-config`).

All folder cameras share one inotify instance (edged/sources/folder_watch.py), so
`fs.inotify.max_user_instances` matters only for the other programs of edged's user. Each
folder of a watched tree is one watch, counted per user against `fs.inotify.max_user_watches`:
past it a camera is polled instead (with an error line). Polled cameras (`poll:`) need none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edged.config.cameras import FolderCamera
from edged.config.model import Config

PROC = Path("/proc/sys/fs/inotify")
_LIMITS = ("max_user_watches", "max_user_instances", "max_queued_events")


@dataclass(frozen=True, slots=True)
class InotifyReport:
    cameras: int  # folder cameras watched with inotify
    watches: int  # folders in their trees now
    limits: dict[str, int | None]  # None: not readable here (not Linux, a restricted /proc)

    @property
    def lines(self) -> list[str]:
        found = ", ".join(
            f"fs.inotify.{key}={'unknown' if value is None else value}"
            for key, value in self.limits.items()
        )
        return [
            f"inotify: {self.cameras} folder cameras watch {self.watches} folders (one watch"
            " each) in one inotify instance",
            f"inotify limits: {found}",
        ]

    @property
    def warning(self) -> str | None:
        limit = self.limits.get("max_user_watches")
        if limit is None or self.watches <= limit:
            return None
        return (
            f"the folder cameras need {self.watches} inotify watches, more than"
            f" fs.inotify.max_user_watches ({limit}): cameras past the limit are polled instead;"
            f" raise it (sysctl fs.inotify.max_user_watches={2 * self.watches}) or set poll: on"
            " cameras with big trees"
        )


def _read_limit(proc: Path, key: str) -> int | None:
    try:
        return int((proc / key).read_text().strip())
    except (OSError, ValueError):
        return None


def _folders(root: Path) -> int:
    """Blocking: the folder and every folder under it (not through links), as inotify would."""
    count = 0
    for top, dirs, _files in os.walk(root):
        count += 1
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
    return count


def inotify_report(config: Config, proc: Path = PROC) -> InotifyReport:
    """Blocking (walks the camera folders)."""
    watched = [c.folder for c in config.cameras if isinstance(c, FolderCamera) and c.poll is None]
    watches = sum(_folders(root) for root in set(watched))  # cameras on one folder share it
    limits = {key: _read_limit(proc, key) for key in _LIMITS}
    return InotifyReport(len(watched), watches, limits)
