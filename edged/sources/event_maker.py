"""Event clips made: each camera's held clips, once their event is over, joined into one file
under storage.dir (never in an NVR folder) and queued in their place.

With `upload: activity` the event clip is trimmed to the activity and its rolls: its first
member from the first active second less the pre-roll, its last up to the end of the last
active second plus the post-roll, each cut at a keyframe so that the footage kept covers that
(edged/media/keyframe_cut.py); its start and length in the ledger are those of the footage
kept. Frigate's events are joined whole. The file is written beside its final name, fsynced
and renamed (edged/media/concat.py), and only then does one transaction queue it and mark its
members merged; a crash before that leaves the members held, and the event is joined again.
An event of one clip, or of clips that cannot be joined without transcoding, is sent clip by
clip. Blocking work (PyAV) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from edged.clip import Clip, ClipState, NewClip
from edged.ledger.activity import Neighbour
from edged.ledger.thread import AsyncLedger
from edged.media.concat import ConcatError, Trim, concat_clips
from edged.media.recording_files import RecordingChanged
from edged.sources.activity_rolls import Rolls, Span
from edged.sources.event_rules import Limits, Piece, due
from edged.sources.rtsp_files import clips_root, source_key

log = logging.getLogger(__name__)

#: Neighbours are looked for among the camera's clips found this close to the event.
FOUND_WITHIN_S = 3600.0


def events_root(storage_dir: Path) -> Path:
    """Beside the cameras' folders, never one of them: a camera name cannot start with a dot,
    and the RTSP recovery, which looks for clips in the cameras' folders, does not come here.
    Under the configured camera's name (checked), not a name read from an NVR's paths; a
    crash between the rename and the ledger leaves a file the next try of the same event (the
    same first clip) writes over."""
    return clips_root(storage_dir) / ".events"


def active_until(piece: Piece, active: tuple[int, ...] | None) -> float | None:
    """The end of the clip's last active second, in epoch seconds."""
    # A clip of 20.4 s has 21 seconds, its last ending after the clip does.
    return min(piece.begin + max(active) + 1, piece.end) if active else None


def kept_span(members: Sequence[Clip], nearby: Iterable[Neighbour], limits: Limits) -> Trim:
    """What of an event's footage its clip keeps (`upload: activity`): from its first activity
    less the pre-roll to the end of its last plus the post-roll, in seconds from its first
    member's start and from its last's; None where that is the whole clip. Any of the
    camera's activity whose rolls reach into the event counts (a neighbour's, when
    `max_event` cut the event there). Frigate's events have no rolls, and an event with a
    member whose activity is not at hand is not trimmed either: kept whole."""
    if limits.pre_roll_s is None or limits.post_roll_s is None:
        return Trim()
    nearby = list(nearby)
    examined = {other.clip_id for other in nearby if other.active is not None}
    first, last = members[0], members[-1]
    if first.start is None or last.start is None or last.duration_s is None:
        return Trim()
    if any(member.id not in examined for member in members):
        return Trim()
    begin, last_begin = first.start.timestamp(), last.start.timestamp()
    event = Span(begin, last_begin + last.duration_s)
    rolls = Rolls(limits.pre_roll_s, limits.post_roll_s)
    windows = [
        window
        for other in nearby
        if (window := rolls.around(other.start, other.active or ())) is not None
        and window.overlaps(event)
    ]
    if not windows:
        return Trim()
    start_s = min(window.start for window in windows) - begin
    end_s = max(window.end for window in windows) - last_begin
    if end_s > 0:
        # Activity just after the event, in a clip not judged yet, takes the last pre_roll of
        # the event as its own pre-roll; once merged, that footage could not be taken again.
        end_s = max(end_s, last.duration_s - rolls.pre_s)
    # A first or last clip that the rolls do not reach into at all was held all the same:
    # it goes whole, not cut down to one group of pictures.
    return Trim(
        start_s if 0 < start_s < (first.duration_s or 0) else None,
        end_s if 0 < end_s < last.duration_s else None,
    )


def as_piece(clip: Clip) -> Piece | None:
    if clip.start is None or clip.duration_s is None:
        return None
    return Piece(clip.id, clip.start, clip.duration_s, clip.size, clip.state, clip.found_at)


class EventMaker:
    def __init__(
        self,
        db: AsyncLedger,
        storage_dir: Path,
        limits: Mapping[str, Limits],
        *,
        on_queued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._storage_dir = storage_dir
        self._limits = limits
        self._on_queued = on_queued
        self._clock = clock

    @property
    def cameras(self) -> frozenset[str]:
        """The cameras whose clips are joined into events."""
        return frozenset(self._limits)

    def set_limits(self, limits: Mapping[str, Limits]) -> None:
        self._limits = limits

    async def close_due(self) -> None:
        """Join and queue every event that is over."""
        ledger = self._db.ledger
        held = await self._db.call(ledger.clips.in_state, ClipState.IN_EVENT)
        by_camera: dict[str, list[Clip]] = defaultdict(list)
        for clip in held:
            by_camera[clip.camera].append(clip)
        for camera, clips in by_camera.items():
            limits = self._limits.get(clips[0].source or camera)
            timeless = [clip for clip in clips if as_piece(clip) is None]
            if limits is None or timeless:
                # No longer gated (a reload), or without a time to order them by: one by one.
                gone = [clip.id for clip in (clips if limits is None else timeless)]
                await self._release(camera, gone, "sent on its own")
                if limits is None:
                    continue
            pieces = [piece for clip in clips if (piece := as_piece(clip)) is not None]
            if not pieces:
                continue
            nearby = await self._db.call(
                ledger.activity.neighbours, camera, max(p.found_at for p in pieces), FOUND_WITHIN_S
            )
            found = {n.clip_id: n.active for n in nearby}
            pieces = [
                replace(p, active_until=active_until(p, found.get(p.clip_id))) for p in pieces
            ]
            others = [
                Piece(n.clip_id, n.start, n.duration_s, 0, n.state, 0.0)
                for n in nearby
                if n.start is not None and n.duration_s is not None
            ]
            for group in due(pieces, others, limits, self._clock()):
                members = [c for c in clips if c.id in {p.clip_id for p in group}]
                await self._close(camera, members, nearby, limits)

    async def _close(
        self, camera: str, members: list[Clip], nearby: list[Neighbour], limits: Limits
    ) -> None:
        members.sort(key=lambda clip: (clip.start or 0, clip.id))
        ids = [clip.id for clip in members]
        if len(members) == 1:
            await self._release(camera, ids, "an event of one clip: sent as it is")
            return
        first = members[0]
        output = events_root(self._storage_dir) / (first.source or camera) / f"{first.id}.mp4"
        try:
            trim = kept_span(members, nearby, limits)
            joined = await asyncio.to_thread(concat_clips, members, output, trim)
        except (ConcatError, RecordingChanged) as exc:
            await self._release(camera, ids, f"not joined into an event clip: {exc}")
            return
        except OSError as exc:
            reason = f"not joined into an event clip: {exc.strerror or exc}"
            await self._release(camera, ids, reason)
            return
        # The footage kept, not the members': alerts name the event's start and end from it.
        start = None if first.start is None else first.start + timedelta(seconds=joined.head_s)
        event = NewClip(
            camera,
            joined.path,
            joined.size,
            start,
            joined.duration_s,
            source_key(self._storage_dir, joined.path),
            source=first.source,
        )
        clip = await self._db.call(self._db.ledger.event_clips.merge, ids, event)
        log.info(
            "event clip camera=%s clip=%s: %d clips, %.0f s from %s",
            camera,
            clip.id,
            len(ids),
            joined.duration_s,
            start.isoformat() if start else "-",
        )
        self._on_queued()

    async def _release(self, camera: str, ids: list[int], reason: str) -> None:
        if not ids:
            return
        if await self._db.call(self._db.ledger.event_clips.release, ids, reason):
            log.info("camera=%s clips %s: %s", camera, ids, reason)
            self._on_queued()
