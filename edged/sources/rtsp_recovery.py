"""On start: the clips a crash left behind become clips in the ledger.

A `.part` is a fragmented MP4 cut off wherever the process died; its complete fragments are
remuxed (copied, not transcoded) into the final clip, so a `kill -9` or a power cut loses at
most the fragment that was still in memory. A finished `.mp4` that never reached the ledger
(a crash between the rename and the ledger) is queued as it is. Blocking: run in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av

from edged.probe import ClipRejected, probe_video
from edged.sources.rtsp_files import (
    RECOVERING,
    final_of,
    fsync_dir,
    fsync_file,
    list_camera_files,
    source_key,
)
from edged.sources.rtsp_writer import FRAGMENTED_MP4, read_start

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recovered:
    path: Path
    start: datetime
    duration_s: float
    size: int
    source_key: str
    from_part: bool


def start_from_name(path: Path) -> datetime:
    """`…/<YYYY-MM-DD>/<HHMMSS>[-n].mp4[.part]` → that time, UTC (second precision)."""
    stem = path.name.split(".")[0].split("-")[0]
    try:
        return datetime.strptime(f"{path.parent.name} {stem}", "%Y-%m-%d %H%M%S").replace(
            tzinfo=UTC
        )
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def recover_part(part: Path) -> tuple[Path, float] | None:
    """Remux the readable packets of `part` into its final clip; returns (clip, duration) or
    None when it holds no video frame (then it is deleted)."""
    final = final_of(part)
    scratch = final.with_name(final.name + RECOVERING)
    video_start: float | None = None
    video_end = 0.0
    written = 0
    try:
        source = av.open(str(part), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        log.error("unreadable part file=%s deleted: %s", part, exc)
        part.unlink()
        return None
    with source, av.open(str(scratch), "w", format="mp4", options=FRAGMENTED_MP4) as target:
        target.metadata.update(
            {k: v for k, v in source.metadata.items() if k in ("creation_time", "comment")}
        )
        streams = [s for s in source.streams if s.type in ("video", "audio")]
        outputs = {s.index: target.add_stream_from_template(s) for s in streams}
        last_dts: dict[int, int] = {}
        try:
            for packet in source.demux(streams):
                index = packet.stream.index
                if packet.dts is None or packet.dts <= last_dts.get(index, -(1 << 62)):
                    continue
                last_dts[index] = packet.dts
                if packet.stream.type == "video" and packet.time_base is not None:
                    t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
                    video_start = t if video_start is None else min(video_start, t)
                    length = float((packet.duration or 0) * packet.time_base)
                    video_end = max(video_end, t + length)
                    written += 1
                packet.stream = outputs[index]
                target.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            # The torn end of the file: everything before it is kept.
            log.info("part file=%s ends in a torn fragment: %s", part, exc)
    if not written or video_start is None:
        scratch.unlink(missing_ok=True)
        part.unlink()
        log.warning("part file=%s held no complete frame: deleted", part)
        return None
    fsync_file(scratch)
    os.replace(scratch, final)
    part.unlink()
    fsync_dir(final.parent)
    return final, video_end - video_start


def recover_camera(storage_dir: Path, camera_dir: Path, known: Iterable[str]) -> list[Recovered]:
    """Every clip under `camera_dir` that is not in the ledger (`known` source keys)."""
    known_keys = set(known)
    parts, finished = list_camera_files(camera_dir)
    found: list[Recovered] = []
    for path in finished:
        key = source_key(storage_dir, path)
        if key in known_keys:
            continue
        try:
            info = probe_video(path, max_bytes=1 << 62, max_duration_s=float("inf"))
        except (ClipRejected, OSError) as exc:
            log.error("clip file=%s is not a readable video, left in place: %s", path, exc)
            continue
        start = read_start(path, start_from_name(path))
        found.append(Recovered(path, start, info.duration_s, info.size, key, False))
    for part in parts:
        fallback = start_from_name(part)
        start = read_start(part, fallback)
        try:
            result = recover_part(part)
        except (av.FFmpegError, OSError) as exc:
            log.error("recovering part file=%s failed, left in place: %s", part, exc)
            continue
        if result is not None:
            path, duration = result
            key = source_key(storage_dir, path)
            found.append(Recovered(path, start, duration, path.stat().st_size, key, True))
    found.sort(key=lambda item: item.start)
    return found
