"""`edged upload FILE`: one clip through ledger → API → (async) callback listener → result.

Run again with the same file after a crash, it finds the clip in the ledger by the
file's identity and carries on from the state it reached, instead of starting over.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from edged.clip import Clip, ClipState, NewClip
from edged.config.model import Config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.ledger.uploads import RETRYABLE_STATES
from edged.results.callback_server import CallbackServer
from edged.results.listener import CallbackApp
from edged.results.matcher import parse_matches, summarize
from edged.service.wiring import analysis_template, api_client, person_directory, upload_settings
from edged.sources.recordings import file_identity
from edged.upload.api_codes import PAUSE_ADVICE, PauseReason
from edged.upload.persons import PersonDirectory
from edged.upload.uploader import Outcome, Uploader

log = logging.getLogger(__name__)


def _identify(path: Path) -> tuple[Path, int, str]:
    """Blocking: the absolute path, size and identity of the file to upload."""
    st = path.stat()
    return path.resolve(), st.st_size, file_identity(st)


async def upload_command(config: Config, path: Path, *, camera: str, sync: bool, wait: bool) -> int:
    if sync and config.api.mode != "sync":
        config = config.model_copy(update={"api": config.api.model_copy(update={"mode": "sync"})})
    try:
        resolved, size, source_key = await asyncio.to_thread(_identify, path)
    except OSError as exc:
        print(f"edged upload: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    ledger = await asyncio.to_thread(Ledger, config.storage.dir)
    db = AsyncLedger(ledger)
    try:
        clip, created = await db.call(
            ledger.clips.add, NewClip(camera, resolved, size, source_key=source_key)
        )
        print(f"clip {clip.id}: {'queued' if created else f'found in the ledger ({clip.state})'}")
        persons = await person_directory(config, db)
        if config.api.mode == "sync" or not wait:
            return await _drive(config, db, clip.id, persons, wait=wait)
        callbacks = CallbackApp(db, persons, max_attempts=config.api.max_attempts)
        async with CallbackServer(callbacks, config.callback.host, config.callback.port):
            return await _drive(config, db, clip.id, persons, wait=wait)
    finally:
        await db.aclose()


async def _drive(
    config: Config, db: AsyncLedger, clip_id: int, persons: PersonDirectory, *, wait: bool
) -> int:
    ledger = db.ledger
    settings = upload_settings(config)
    async with api_client(config) as api:
        uploader = Uploader(db, api, analysis_template(config, persons), settings)
        while True:
            clip = await db.call(ledger.clips.get, clip_id)
            assert clip is not None
            if clip.state is ClipState.UPLOADING:
                # Left mid-upload by a run that was killed: send it again.
                await db.call(ledger.uploads.resume, clip.id)
                continue
            if clip.state is ClipState.DONE:
                return await _print_result(db, clip, persons.names)
            if clip.state is ClipState.ANALYZED:
                await db.call(ledger.results.mark_done, clip.id)
                continue
            if clip.state in (ClipState.EXAMINING, ClipState.IN_EVENT, ClipState.MERGED):
                # `edged run` has this recording in hand: its gate, or its event clip.
                events = await db.call(ledger.reports.clip_events, clip.id)
                print(
                    f"clip {clip.id} {clip.state}: {events[-1].detail if events else ''}"
                    "; `edged run` sends it (edged status --clip shows its way)",
                    file=sys.stderr,
                )
                return 1
            if clip.state in (ClipState.DROPPED, *RETRYABLE_STATES - {ClipState.EXPIRED}):
                print(f"clip {clip.id} {clip.state}: {clip.last_error}", file=sys.stderr)
                print(f"  put it back in the queue with: edged retry {clip.id}", file=sys.stderr)
                return 1
            if clip.state is ClipState.SUBMITTED:
                if not wait:
                    print(
                        f"clip {clip.id} submitted (task {clip.task_id}); `edged run` receives"
                        " the result"
                    )
                    return 0
                await _await_result(
                    db, clip, config.callback.result_timeout, config.api.max_attempts
                )
                continue
            if clip.next_attempt_at and clip.next_attempt_at > time.time():
                delay = clip.next_attempt_at - time.time()
                print(f"clip {clip.id}: {clip.last_error}; retrying in {delay:.0f}s")
                await asyncio.sleep(delay)
            taken = await db.call(ledger.uploads.take_for_upload, clip.id)
            if taken is None:
                continue
            outcome = await _upload_with_bar(uploader, taken)
            if outcome is Outcome.PAUSED:
                advice = PAUSE_ADVICE[uploader.paused or PauseReason.REFUSED_KEY]
                print(
                    f"edged upload: {taken.path.name}: uploads are paused, {advice};"
                    " the clip stays queued.",
                    file=sys.stderr,
                )
                return 1


async def _upload_with_bar(uploader: Uploader, clip: Clip) -> Outcome:
    with tqdm(
        total=clip.size,
        unit="B",
        unit_scale=True,
        desc=f"clip {clip.id}",
        file=sys.stderr,
        disable=None,
        leave=False,
    ) as bar:

        def progress(sent: int, total: int) -> None:
            bar.update(sent - bar.n)

        return await uploader.upload(clip, progress)


async def _await_result(
    db: AsyncLedger, clip: Clip, result_timeout_s: float, max_attempts: int
) -> None:
    """Poll the ledger (the listener writes there) until the result lands or it expires."""
    print(f"clip {clip.id}: submitted, waiting for the result callback")
    while True:
        current = await db.call(db.ledger.clips.get, clip.id)
        if current is None or current.state is not ClipState.SUBMITTED:
            return
        expired = await db.call(db.ledger.uploads.expire_overdue, result_timeout_s, max_attempts)
        if any(c.id == clip.id for c in expired):
            print(f"clip {clip.id}: no callback within {result_timeout_s:.0f}s; resubmitting")
            return
        await asyncio.sleep(0.2)


async def _print_result(db: AsyncLedger, clip: Clip, names: tuple[str, ...]) -> int:
    result = await db.call(db.ledger.results.result, clip.id)
    text = result.text if result else ""
    matches = parse_matches(text, names)
    print(f"clip {clip.id}: done")
    print(summarize(text, limit=2000))
    for match in matches:
        seen = "present" if match.present else "absent"
        print(f"  {match.person}: {seen} (confidence {match.confidence:.2f})")
    if result and result.tokens_total is not None:
        print(f"tokens: {result.tokens_total}")
    return 0
