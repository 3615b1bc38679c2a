"""What a recording file in an NVR folder is: which camera, when, is it finished, is it new.

Shared by the live folder watcher and `edged backfill`. Only reads files.
"""

from __future__ import annotations

import asyncio
import enum
import fnmatch
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edged.aio import within
from edged.clip import Clip, NewClip
from edged.config.cameras import FolderCamera
from edged.ledger.thread import AsyncLedger
from edged.media.probe import ClipRejected, probe_video
from edged.media.regular_files import TRANSIENT_ERRNOS, kind_of, opened_regular
from edged.media.source_check import fingerprint_of
from edged.nvr.presets import PathTemplate, camera_allowed

#: Generous limits for telling whether a file is complete; the uploader applies the
#: configured API limits later and fails the clip with a clear reason.
_PROBE_LIMIT_BYTES = 1 << 62
_PROBE_LIMIT_S = float("inf")
#: How long reading one file may take (a hung network share): then it is looked at later.
EXAMINE_TIMEOUT_S = 60.0
#: File names the default `pattern` takes: the containers cameras and NVRs record into.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".ts", ".mts", ".m2ts", ".avi", ".mpg"}
    | {".mpeg", ".ps", ".flv", ".dav", ".3gp"}
)


def identity_prefix(st: os.stat_result) -> str:
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:"


def file_identity(st: os.stat_result) -> str:
    """Device, inode, size and mtime: the same recording, even after a rename."""
    return f"{identity_prefix(st)}{st.st_mtime_ns}"


def file_fingerprint(path: str | Path, size: int, *, inside: Path | None = None) -> str:
    """Blocking: a hash of the first and last 64 KiB and the size. Cheap even for big files.
    Reads only a regular file (inside `inside`): see edged/media/regular_files.py."""
    with opened_regular(path, inside=inside) as (fd, _):
        return fingerprint_of(fd, size)


@dataclass(frozen=True, slots=True)
class Naming:
    """Which files of a folder camera are recordings, and whose."""

    camera: FolderCamera
    template: PathTemplate | None

    @classmethod
    def of(cls, camera: FolderCamera) -> Naming:
        return cls(camera, camera.path_template())

    @property
    def folder(self) -> Path:
        return self.camera.folder

    def wanted(self, path: str) -> bool:
        name = os.path.basename(path)
        pattern = self.camera.pattern
        if pattern is None:
            if os.path.splitext(name)[1].lower() not in VIDEO_EXTENSIONS:
                return False
        elif not fnmatch.fnmatch(name, pattern):
            return False
        return not any(fnmatch.fnmatch(name, pattern) for pattern in self.camera.ignore)

    def identify(self, path: str) -> tuple[str, datetime | None] | None:
        """(camera name, start from the path or None); None when the file is not one of this
        camera's recordings (wrong name, no preset match, filtered camera)."""
        if not self.wanted(path):
            return None
        if self.template is None:
            return self.camera.name, None
        relative = os.path.relpath(path, self.folder).replace(os.sep, "/")
        info = self.template.match(relative)
        if info is None or not camera_allowed(info.camera, self.camera.cameras):
            return None
        return info.camera, info.start


class Verdict(enum.Enum):
    QUEUED = "queued"  # a new clip in the ledger
    KNOWN = "known"  # already in the ledger (restart, rename, touch)
    CHANGING = "changing"  # written to while examined: look again later
    GONE = "gone"  # deleted meanwhile
    INCOMPLETE = "incomplete"  # not (yet) a complete video
    NOT_OURS = "not_ours"  # does not match the camera's naming


@dataclass(frozen=True, slots=True)
class Examined:
    verdict: Verdict
    clip: Clip | None = None
    reason: str | None = None
    unreadable: bool = False  # INCOMPLETE because edged may not read it (permissions)


async def examine(
    db: AsyncLedger,
    naming: Naming,
    path: str,
    *,
    again_tag: str | None = None,
    settled: bool = True,
    timeout_s: float = EXAMINE_TIMEOUT_S,
) -> Examined:
    """Queue `path` if it is a complete recording not yet in the ledger. `again_tag` queues
    a known file once more under a new identity (re-analysis by `edged backfill`);
    `settled`: unchanged for the camera's `settle` (see edged/media/mp4boxes.py)."""
    owner = naming.identify(path)
    if owner is None:
        return Examined(Verdict.NOT_OURS)
    camera, start = owner
    folder = naming.folder
    try:
        st = await asyncio.to_thread(os.lstat, path)
        if not stat.S_ISREG(st.st_mode):
            return Examined(Verdict.NOT_OURS, reason=kind_of(st.st_mode))
        key = file_identity(st)
        known = await db.call(db.ledger.clips.fingerprints_with_prefix, identity_prefix(st))
        if again_tag is None and key in known:
            return Examined(Verdict.KNOWN)  # the common case on restart: no read needed
        fingerprint = await within(
            asyncio.to_thread(file_fingerprint, path, st.st_size, inside=folder), timeout_s
        )
        if again_tag is None and fingerprint in known.values():
            return Examined(Verdict.KNOWN)  # renamed or touched, same content
        probe = asyncio.to_thread(
            probe_video,
            Path(path),
            max_bytes=_PROBE_LIMIT_BYTES,
            max_duration_s=_PROBE_LIMIT_S,
            inside=folder,
            settled=settled,
        )
        info = await within(probe, timeout_s)
        if file_identity(await asyncio.to_thread(os.lstat, path)) != key:
            return Examined(Verdict.CHANGING)
    except FileNotFoundError:
        return Examined(Verdict.GONE)
    except TimeoutError:
        return Examined(Verdict.CHANGING, reason=f"not read within {timeout_s:g}s")
    except PermissionError as exc:
        reason = f"{exc.strerror or 'permission denied'} for edged's user (uid {os.geteuid()})"
        return Examined(Verdict.INCOMPLETE, reason=reason, unreadable=True)
    except ClipRejected as exc:
        return Examined(Verdict.INCOMPLETE, reason=str(exc))
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:  # out of descriptors, a share's hiccup: look again
            return Examined(Verdict.CHANGING, reason=exc.strerror or str(exc))
        return Examined(Verdict.INCOMPLETE, reason=exc.strerror or str(exc))
    if start is None:  # the file was finished at its mtime
        start = datetime.fromtimestamp(st.st_mtime - info.duration_s, UTC)
    source_key = key if again_tag is None else f"{key}#{again_tag}"
    new = NewClip(
        camera,
        Path(path),
        st.st_size,
        start,
        info.duration_s,
        source_key,
        fingerprint,
        source=naming.camera.name,
        examine=naming.camera.gated,
    )
    clip, created = await db.call(db.ledger.clips.add, new)
    return Examined(Verdict.QUEUED if created else Verdict.KNOWN, clip)


def scan(
    naming: Naming,
    not_before: float | None = None,
    *,
    under: str | None = None,
    unlisted: list[OSError] | None = None,
) -> list[tuple[float, str]]:
    """Blocking: (mtime, path) of the recordings under the folder (or `under`, a file or a
    folder inside it), oldest first. Folders that cannot be listed (permissions) are
    skipped, their errors appended to `unlisted`."""
    found: list[tuple[float, str]] = []
    if under is not None and not _is_folder(under):
        walk: Iterable[tuple[str, list[str], list[str]]] = [
            (os.path.dirname(under), [], [os.path.basename(under)])
        ]
    else:
        on_error = unlisted.append if unlisted is not None else None
        walk = os.walk(under or naming.folder, onerror=on_error)
    for root, dirs, files in walk:
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.join(root, name)
            if naming.identify(path) is None:
                continue
            try:
                st = os.lstat(path)  # a link is never followed: the source reports it
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            mtime = st.st_mtime
            if not_before is None or mtime >= not_before:
                found.append((mtime, path))
    found.sort()
    return found


def _is_folder(path: str) -> bool:
    """A folder itself, not a link to one (which would lead out of the NVR folder)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
