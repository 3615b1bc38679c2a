"""On start: the clips a crash left behind become clips in the ledger.

A `.part` is a fragmented MP4 cut off wherever the process died; the packets it holds whole
are remuxed (copied, not transcoded) into the final clip, so a `kill -9` or a power cut loses
at most the fragment that was still in memory. A packet the end of the file cuts short, or
zeros where data never reached the disk, end the clip: no undecodable frame is kept. A
finished `.mp4` that never reached the ledger (a crash between the rename and the ledger) is
queued as it is. Blocking: run in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av

from edged.media.probe import ClipRejected, probe_video
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
    None when it holds no video frame (then it is deleted). A write error (a full disk)
    raises and leaves the part as it was, for a later try."""
    final = final_of(part)
    scratch = final.with_name(final.name + RECOVERING)
    try:
        source = av.open(str(part), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        log.error("unreadable part file=%s deleted: %s", part, exc)
        part.unlink()
        return None
    try:
        with source, av.open(str(scratch), "w", format="mp4", options=FRAGMENTED_MP4) as target:
            span = _remux(source, target, part)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    if span is None:
        scratch.unlink(missing_ok=True)
        part.unlink()
        log.warning("part file=%s held no complete frame: deleted", part)
        return None
    fsync_file(scratch)
    os.replace(scratch, final)
    part.unlink()
    fsync_dir(final.parent)
    return final, span[1] - span[0]


def _remux(
    source: av.container.InputContainer, target: av.container.OutputContainer, part: Path
) -> tuple[float, float] | None:
    """Copy every whole packet up to where `source` is torn; (first, end) second of its
    video, or None when it holds no video frame. Errors reading the source end the copy;
    errors writing the target (a full disk) are raised: muxing on after one would crash."""
    target.metadata.update(
        {k: v for k, v in source.metadata.items() if k in ("creation_time", "comment")}
    )
    streams = [s for s in source.streams if s.type in ("video", "audio")]
    outputs = {s.index: target.add_stream_from_template(s) for s in streams}
    last_dts: dict[int, int] = {}
    video_start: float | None = None
    video_end = 0.0

    def keep(packet: av.Packet) -> None:
        nonlocal video_start, video_end
        if packet.stream.type == "video" and packet.time_base is not None:
            t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            video_start = t if video_start is None else min(video_start, t)
            length = float((packet.duration or 0) * packet.time_base)
            video_end = max(video_end, t + length)
        packet.stream = outputs[packet.stream.index]
        target.mux(packet)

    held: av.Packet | None = None  # one packet behind: it may turn out torn
    packets = source.demux(streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except (av.FFmpegError, OSError) as exc:
            # The torn end of the file: everything before it is kept.
            log.info("part file=%s ends in a torn fragment: %s", part, exc)
            break
        index = packet.stream.index
        if packet.is_corrupt:
            # Cut off by the end of the file (the demuxer read less than the index
            # promised): copied, it would make a frame no decoder can read.
            continue
        if packet.dts is None or packet.dts <= last_dts.get(index, -(1 << 62)):
            continue  # also the demuxer's empty end-of-stream packets
        if not bytes(packet).strip(b"\0"):
            # Zeros: the index reached the disk but this data never did (a power cut on a
            # filesystem without ordered data). The packet before may be half zeros, so it
            # goes too, and nothing after it is trusted.
            log.info("part file=%s ends in unwritten (zeroed) data", part)
            held = None
            break
        last_dts[index] = packet.dts
        if held is not None:
            keep(held)
        held = packet
    if held is not None:
        keep(held)
    return None if video_start is None else (video_start, video_end)


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
